//! History and insight over `/api/v1/`: a test identity's results across runs and machines,
//! flaky tests, a run compared with the previous one, the test × machine matrix, search, and
//! exports. The definitions are `stpt_core::history`'s; this layer parses, reads and
//! writes.

pub(crate) mod export;
pub(crate) mod params;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use stpt_core::history::{
    self, FlakyTest, HistoryStats, Matrix, RunDiff, RunListing, TestFlakiness, TestHistory,
    TestListing,
};
use stpt_core::{Page, RunId};
use utoipa::ToSchema;

use crate::error::ErrorEnvelope;
use crate::extract::{Pagination, parse_id};
use crate::schemas::examples;
use crate::v1::PageJson;
use crate::{ApiError, AppState};
use params::{Format, Params};

/// The OpenAPI description of the history routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    search_runs,
    run_diff,
    run_flakiness,
    run_export,
    search_tests,
    test_history,
    flaky_tests,
    matrix
))]
pub(crate) struct InsightApi;

const TAG: &str = "v1 history API";

/// The most flaky tests one list answers.
const MAX_FLAKY: u32 = 500;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/runs", get(search_runs))
        .route("/api/v1/runs/{id}/diff", get(run_diff))
        .route("/api/v1/runs/{id}/flaky", get(run_flakiness))
        .route("/api/v1/runs/{id}/export", get(run_export))
        .route("/api/v1/test-identities", get(search_tests))
        .route("/api/v1/test-identities/{key}/history", get(test_history))
        .route("/api/v1/flaky", get(flaky_tests))
        .route("/api/v1/matrix", get(matrix))
}

/// Finds runs
///
/// Runs whose master scenario's path or name contains `q` (ignoring case), with the given
/// status, on the given machine, received in `[since, until)`; newest first.
#[utoipa::path(
    get,
    operation_id = "v1_search_runs",
    path = "/api/v1/runs",
    tag = TAG,
    params(
        ("q" = Option<String>, Query, description = "Text in the master scenario's path or name."),
        ("status" = Option<String>, Query, description = "The run's status."),
        ("machine" = Option<i64>, Query, description = "The machine's id."),
        ("since" = Option<String>, Query, description = "Received at or after: a date or an RFC 3339 time."),
        ("until" = Option<String>, Query, description = "Received before: a date or an RFC 3339 time."),
        ("page" = Option<u32>, Query, description = "Page, from 1."),
        ("page_size" = Option<u32>, Query, description = "Runs per page, 1 to 100."),
    ),
    responses(
        (status = 200, description = "A page of runs.", body = inline(PageJson<RunListing>)),
        (status = 400, description = "A filter does not parse (`invalid_input`).", body = ErrorEnvelope),
        (status = 404, description = "The page is past the last one (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("page 3"))),
    )
)]
async fn search_runs(
    State(state): State<AppState>,
    Pagination(page): Pagination,
    Query(query): Query<Params>,
) -> Result<Json<PageJson<RunListing>>, ApiError> {
    let search = params::run_search(&query)?;
    Ok(Json(
        state
            .tracker
            .store()
            .search_runs(&search, page)
            .await
            .and_then(Page::within_range)?
            .into(),
    ))
}

/// Compares a run with the previous one
///
/// The machine's previous run of the same master scenario, and what changed: new failures,
/// fixed, still failing, new and removed tests, tests not executed, and the biggest duration
/// changes.
#[utoipa::path(
    get,
    operation_id = "v1_run_diff",
    path = "/api/v1/runs/{id}/diff",
    tag = TAG,
    params(("id" = i64, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The comparison (empty lists without a previous run).", body = RunDiff),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such run (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("run 99"))),
    )
)]
async fn run_diff(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDiff>, ApiError> {
    let id = RunId(parse_id("run", &id)?);
    Ok(Json(
        history::run_diff(state.tracker.store().as_ref(), id).await?,
    ))
}

/// Lists a run's flaky tests
///
/// The run's tests whose outcomes on the run's machine flipped between pass and fail at
/// least `min_flips` times in their last 20 results, in plan order.
#[utoipa::path(
    get,
    operation_id = "v1_run_flakiness",
    path = "/api/v1/runs/{id}/flaky",
    tag = TAG,
    params(
        ("id" = i64, Path, description = "The run's id."),
        ("min_flips" = Option<u32>, Query, description = "Flips that make a test flaky (default 3; 0 lists every test with a window)."),
    ),
    responses(
        (status = 200, description = "The flaky tests of the run.", body = Vec<TestFlakiness>),
        (status = 400, description = "The id or `min_flips` is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such run (`not_found`).", body = ErrorEnvelope),
    )
)]
async fn run_flakiness(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Params>,
) -> Result<Json<Vec<TestFlakiness>>, ApiError> {
    let id = RunId(parse_id("run", &id)?);
    let min_flips = params::min_flips(&query)?;
    Ok(Json(
        state.tracker.store().run_flakiness(id, min_flips).await?,
    ))
}

/// Downloads a run
///
/// The run with its tests as JSON (as `GET /api/v1/runs/{id}`), CSV (one test a row) or
/// JUnit XML (scenarios as suites).
#[utoipa::path(
    get,
    operation_id = "v1_run_export",
    path = "/api/v1/runs/{id}/export",
    tag = TAG,
    params(
        ("id" = i64, Path, description = "The run's id."),
        ("format" = Option<String>, Query, description = "`json` (default), `csv` or `junit`."),
    ),
    responses(
        (status = 200, description = "The file, as an attachment."),
        (status = 400, description = "Unknown format (`invalid_input`).", body = ErrorEnvelope),
        (status = 404, description = "No such run (`not_found`).", body = ErrorEnvelope),
    )
)]
async fn run_export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Params>,
) -> Result<Response, ApiError> {
    let id = RunId(parse_id("run", &id)?);
    let format = params::format(&query, true)?;
    let run = state.tracker.run(id).await?;
    Ok(match format {
        Format::Json => {
            let body = serde_json::to_string_pretty(&run).map_err(|_| ApiError::internal())?;
            export::download(body, "application/json", &format!("run-{id}.json"))
        }
        Format::Csv => export::download(
            export::run_csv(&run)?,
            "text/csv; charset=utf-8",
            &format!("run-{id}.csv"),
        ),
        Format::Junit => export::download(
            export::run_junit(&run, &export::failures(&state.tracker, &run).await?),
            "application/xml; charset=utf-8",
            &format!("run-{id}.junit.xml"),
        ),
    })
}

/// Finds tests
///
/// Test identities (a scenario's file with a test's file) whose paths or names contain `q`,
/// ignoring case; all of them without `q`.
#[utoipa::path(
    get,
    operation_id = "v1_search_tests",
    path = "/api/v1/test-identities",
    tag = TAG,
    params(
        ("q" = Option<String>, Query, description = "Text in the scenario's or test's path or name."),
        ("page" = Option<u32>, Query, description = "Page, from 1."),
        ("page_size" = Option<u32>, Query, description = "Identities per page, 1 to 100."),
    ),
    responses(
        (status = 200, description = "A page of identities, by test file name.", body = inline(PageJson<TestListing>)),
        (status = 400, description = "`q` is over 200 characters (`invalid_input`).", body = ErrorEnvelope),
        (status = 404, description = "The page is past the last one (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("page 3"))),
    )
)]
async fn search_tests(
    State(state): State<AppState>,
    Pagination(page): Pagination,
    Query(query): Query<Params>,
) -> Result<Json<PageJson<TestListing>>, ApiError> {
    let text = params::text(&query)?;
    Ok(Json(
        state
            .tracker
            .store()
            .search_tests(text.as_ref(), page)
            .await
            .and_then(Page::within_range)?
            .into(),
    ))
}

/// A page of a test's history with statistics over it.
#[derive(Debug, Serialize, ToSchema)]
struct HistoryJson {
    #[serde(flatten)]
    history: TestHistory,
    /// Pass rate, failures and median duration over this page's results.
    stats: HistoryStats,
}

/// Shows a test's history
///
/// A test identity's results across runs and machines, newest run first, with pass rate,
/// failures and median duration over the page. Pages go back with `before` (the answer's
/// `next_before`). `format=csv` downloads the page.
#[utoipa::path(
    get,
    operation_id = "v1_test_history",
    path = "/api/v1/test-identities/{key}/history",
    tag = TAG,
    params(
        ("key" = String, Path, description = "The identity's key: 16 hexadecimal digits."),
        ("machine" = Option<i64>, Query, description = "Only this machine's results."),
        ("status" = Option<String>, Query, description = "Only results with this status."),
        ("before" = Option<i64>, Query, description = "Only results older than this test id."),
        ("limit" = Option<u32>, Query, description = "Results per page (default 50, at most 500)."),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`."),
    ),
    responses(
        (status = 200, description = "The history.", body = HistoryJson),
        (status = 400, description = "A bad key or filter (`invalid_input`).", body = ErrorEnvelope),
        (status = 404, description = "No test ever had this identity (`not_found`).", body = ErrorEnvelope),
    )
)]
async fn test_history(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<Params>,
) -> Result<Response, ApiError> {
    let key = params::key(&key)?;
    let format = params::format(&query, false)?;
    let history = state
        .tracker
        .store()
        .test_history(key, params::history_query(&query)?)
        .await?;
    Ok(match format {
        Format::Csv => export::download(
            export::history_csv(&history)?,
            "text/csv; charset=utf-8",
            &format!("test-{key}-history.csv"),
        ),
        _ => Json(HistoryJson {
            stats: HistoryStats::of(&history.results),
            history,
        })
        .into_response(),
    })
}

/// Lists the flakiest tests
///
/// Test identities whose outcomes on a machine flipped between pass and fail at least
/// `min_flips` times in their last 20 results there, most flips first.
#[utoipa::path(
    get,
    operation_id = "v1_flaky_tests",
    path = "/api/v1/flaky",
    tag = TAG,
    params(
        ("min_flips" = Option<u32>, Query, description = "Flips that make a test flaky (default 3)."),
        ("limit" = Option<u32>, Query, description = "At most this many (default 50, at most 500)."),
    ),
    responses(
        (status = 200, description = "The flakiest (identity, machine) pairs.", body = Vec<FlakyTest>),
        (status = 400, description = "A bad number (`invalid_input`).", body = ErrorEnvelope),
    )
)]
async fn flaky_tests(
    State(state): State<AppState>,
    Query(query): Query<Params>,
) -> Result<Json<Vec<FlakyTest>>, ApiError> {
    let min_flips = params::min_flips(&query)?;
    let limit = params::limit(&query, 50, MAX_FLAKY)?;
    Ok(Json(
        state.tracker.store().flaky_tests(min_flips, limit).await?,
    ))
}

/// Shows the test × machine matrix
///
/// For a master scenario file: rows are its tests, columns the machines that ran it, each
/// cell the machine's latest result with its pass rate over the last 20 results there.
#[utoipa::path(
    get,
    operation_id = "v1_matrix",
    path = "/api/v1/matrix",
    tag = TAG,
    params(
        ("master_path" = String, Query, description = "The master scenario's path."),
        ("master_name" = String, Query, description = "The master scenario's file name."),
        ("machines" = Option<String>, Query, description = "Comma-separated machine ids (default: every machine that ran it)."),
        ("sort" = Option<String>, Query, description = "`plan` (default) or `failure_rate`."),
    ),
    responses(
        (status = 200, description = "The matrix.", body = Matrix),
        (status = 400, description = "A missing master or bad filter (`invalid_input`).", body = ErrorEnvelope),
    )
)]
async fn matrix(
    State(state): State<AppState>,
    Query(query): Query<Params>,
) -> Result<Json<Matrix>, ApiError> {
    let asked = params::matrix(&query)?;
    Ok(Json(
        history::matrix(
            state.tracker.store().as_ref(),
            &asked.master,
            &asked.machines,
            asked.sort,
        )
        .await?,
    ))
}
