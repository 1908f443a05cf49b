//! The seed's API under `/tm_api/`: runner endpoints and read endpoints, paths, shapes,
//! status codes and error bodies as the seed had them (each path with and without its
//! trailing slash). Ids of what a runner posted, and everything richer, are in `/api/v1`.

pub(crate) mod form;
mod pagination;
pub(crate) mod views;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::json;
use stpt_core::{
    Error, ItemRef, MachineId, MachineSummary, Page, PageRequest, PlanPayload, RunId, ScenarioId,
    TestId, TestStartPayload, TestStopPayload, Tracker,
};

use crate::error::ErrorEnvelope;
use crate::extract::{MountPrefix, SeedRunnerBody};
use crate::schemas::examples;
use crate::security::RunnerAccess;
use crate::{ApiError, AppState};
use form::SeedFormBody;
use pagination::{PageNumber, SeedPageQuery, SeedPagination};
use views::{
    ItemJson, MachineJson, MachineLastDataJson, Paginated, PlanEcho, RunJson, TestStartEcho,
    TestStopEcho, rest_framework_time,
};

/// The OpenAPI description of the `/tm_api/` routes: each path is documented once, with the
/// trailing slash the seed's runners use; the path without it is served too.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    record_plan,
    record_test_start,
    record_test_stop,
    machines,
    machine_runs,
    machine_last_run,
    test_detail,
    scenario_detail,
    master_scenario_detail
))]
pub(crate) struct SeedApi;

/// How the runner endpoints' bodies may be sent.
const FORM_BODIES: &str = "JSON, or, as the seed took them, a form (`application/x-www-form-urlencoded`) or \
     `multipart/form-data` naming the same fields flat: `master_scenario.file_name`, \
     `master_scenario.scenarios[0]file_name`, `master_scenario.scenarios[0]tests[0]file_name`. \
     The same rules and answers apply; a form that cannot be read is `400 malformed_form`, and \
     one a browser posts from another site `403`.";

/// The tag of the seed's runner endpoints.
const RUNNER_TAG: &str = "seed runner protocol";
/// The tag of the seed's read endpoints.
const READ_TAG: &str = "seed read API";

/// The `/tm_api/` routes.
pub(crate) fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for (path, handler) in [
        ("/tm_api/dry_run", post(record_plan)),
        ("/tm_api/test_start", post(record_test_start)),
        ("/tm_api/test_stop", post(record_test_stop)),
        ("/tm_api/machines", get(machines)),
        (
            "/tm_api/machine_dry_run_datas/{machine_id}",
            get(machine_runs),
        ),
        (
            "/tm_api/machine_last_data/{machine_id}",
            get(machine_last_run),
        ),
        ("/tm_api/test/{id}", get(test_detail)),
        ("/tm_api/scenario/{id}", get(scenario_detail)),
        ("/tm_api/master_scenario/{id}", get(master_scenario_detail)),
    ] {
        router = with_and_without_slash(router, path, handler);
    }
    router
}

fn with_and_without_slash(
    router: Router<AppState>,
    path: &str,
    handler: MethodRouter<AppState>,
) -> Router<AppState> {
    router
        .route(path, handler.clone())
        .route(&format!("{path}/"), handler)
}

/// The seed's runner paths, where an error answer also carries a `detail` string.
const RUNNER_PATHS: [&str; 3] = ["/tm_api/dry_run", "/tm_api/test_start", "/tm_api/test_stop"];

/// Middleware: an error answer to a runner POST keeps stpt's `{"error": {...}}` envelope and
/// gets the message as `detail` beside it, where a Django REST framework client looks.
pub(crate) async fn runner_errors_with_detail(request: Request, next: Next) -> Response {
    let is_runner_post = request.method() == Method::POST
        && RUNNER_PATHS.contains(&request.uri().path().trim_end_matches('/'));
    let response = next.run(request).await;
    let status = response.status();
    if !is_runner_post || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Error envelopes are small; anything else passes as it was.
    let Ok(bytes) = axum::body::to_bytes(body, ERROR_BODY_LIMIT).await else {
        return (parts.status, "").into_response();
    };
    let with_detail = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|mut envelope| {
            let message = envelope.pointer("/error/message")?.as_str()?.to_owned();
            envelope
                .as_object_mut()?
                .insert("detail".into(), message.into());
            serde_json::to_vec(&envelope).ok()
        });
    match with_detail {
        Some(bytes) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        None => Response::from_parts(parts, axum::body::Body::from(bytes)),
    }
}

/// The largest error body `runner_errors_with_detail` rewrites, in bytes.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// An error answer of the seed's read paths: the seed's bodies exactly.
#[derive(Debug)]
enum SeedReadError {
    /// `404 {"detail": "Not found."}`: no such id (or not an id at all).
    NotFound,
    /// `404 {"detail": "Invalid page."}`: `page` is past the end, below 1 or not a number.
    InvalidPage,
    /// Anything else (a busy or failing store): stpt's error envelope.
    Api(ApiError),
}

impl From<Error> for SeedReadError {
    fn from(error: Error) -> Self {
        match error {
            Error::NotFound { .. } => SeedReadError::NotFound,
            other => SeedReadError::Api(other.into()),
        }
    }
}

impl IntoResponse for SeedReadError {
    fn into_response(self) -> Response {
        let detail = match self {
            SeedReadError::NotFound => "Not found.",
            SeedReadError::InvalidPage => "Invalid page.",
            SeedReadError::Api(error) => return error.into_response(),
        };
        (StatusCode::NOT_FOUND, Json(json!({ "detail": detail }))).into_response()
    }
}

/// An id from the path; the seed's routes matched digits only, so anything else is not found.
fn seed_id(text: &str) -> Result<i64, SeedReadError> {
    let digits = text.trim_end_matches('/');
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(SeedReadError::NotFound);
    }
    digits.parse().map_err(|_| SeedReadError::NotFound)
}

/// What Django's `request.get_host()` gave: the `Host` header, else the URI's authority.
fn current_site(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|authority| authority.to_string()))
        .unwrap_or_default()
}

/// Reads one page as the seed's paginator did: `page=last` is the last page; a page past the
/// end is `Invalid page.` (an empty list still has its page 1).
async fn read_page<T, F, Fut>(pagination: SeedPagination, read: F) -> Result<Page<T>, SeedReadError>
where
    F: Fn(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, Error>>,
{
    let size = pagination.size;
    let number = match pagination.number {
        PageNumber::Invalid => return Err(SeedReadError::InvalidPage),
        PageNumber::Number(number) => number,
        PageNumber::Last => {
            let first = read(first_page(size)?).await.map_err(page_error)?;
            let last = first.total_pages();
            if last == 1 {
                return Ok(first);
            }
            last
        }
    };
    let request = PageRequest::new(number, size).map_err(|_| SeedReadError::InvalidPage)?;
    read(request).await.map_err(page_error)
}

fn first_page(size: u32) -> Result<PageRequest, SeedReadError> {
    PageRequest::first(size).map_err(|error| SeedReadError::Api(error.into()))
}

/// A page past the end is the only `NotFound` a list read gives.
fn page_error(error: Error) -> SeedReadError {
    match error {
        Error::NotFound { .. } => SeedReadError::InvalidPage,
        other => SeedReadError::Api(other.into()),
    }
}

/// Posts a plan
///
/// Stores the plan a runner sends before it executes anything: a new run whose tests all
/// wait. Any run of the machine still ongoing is abandoned (its waiting and running tests
/// become `unknown`). Empty lists may be `null` or absent. Answers the seed's echo of the
/// plan; the new ids are in `/api/v1`'s answer to the same plan. Also served without the
/// trailing slash.
#[utoipa::path(
    post,
    operation_id = "seed_record_plan",
    path = "/tm_api/dry_run/",
    tag = RUNNER_TAG,
    request_body(description = FORM_BODIES, content(
        (PlanPayload = "application/json", example = json!(examples::plan())),
        (SeedFormBody = "application/x-www-form-urlencoded", example = json!(form::flattened_example(&examples::plan()))),
        (SeedFormBody = "multipart/form-data", example = json!(form::flattened_example(&examples::plan()))),
    )),
    responses(
        (status = 201, description = "The plan is stored as a new run; the answer echoes it as the seed did.", body = PlanEcho),
        (status = 400, description = "Malformed JSON or form, a missing or mistyped field, a blank machine name, file path or file name, or an oversized name or path (`malformed_json`, `malformed_form`, `invalid_input`, `unreadable_body`). Nothing is stored. The message is also in `detail`.", body = ErrorEnvelope, example = json!(examples::invalid_input())),
    )
)]
async fn record_plan(
    State(state): State<AppState>,
    access: RunnerAccess,
    SeedRunnerBody(payload): SeedRunnerBody<PlanPayload>,
) -> Result<(StatusCode, Json<PlanEcho>), ApiError> {
    let echo = PlanEcho::new(
        echoed_time(&state, payload.timestamp),
        payload.master_scenario.clone(),
    );
    let plan = payload.validate()?;
    access.permit(&plan.machine)?;
    state.tracker.record_plan(plan).await?;
    Ok((StatusCode::CREATED, Json(echo)))
}

/// Starts a test
///
/// Marks the first waiting test with this path and name in the machine's ongoing run as
/// running (machine names compare case-insensitively). Answers the seed's echo of the event
/// (the start time used: the receipt time when none was sent). Also served without the
/// trailing slash.
#[utoipa::path(
    post,
    operation_id = "seed_record_test_start",
    path = "/tm_api/test_start/",
    tag = RUNNER_TAG,
    request_body(description = FORM_BODIES, content(
        (TestStartPayload = "application/json", example = json!(examples::test_start())),
        (SeedFormBody = "application/x-www-form-urlencoded", example = json!(form::flattened_example(&examples::test_start()))),
        (SeedFormBody = "multipart/form-data", example = json!(form::flattened_example(&examples::test_start()))),
    )),
    responses(
        (status = 202, description = "The event is applied; the answer echoes it as the seed did.", body = TestStartEcho),
        (status = 400, description = "Malformed JSON or form, a missing or mistyped field, a blank machine name, an unknown status (`malformed_json`, `malformed_form`, `invalid_input`). Nothing is changed. The message is also in `detail`.", body = ErrorEnvelope, example = json!(examples::invalid_input())),
        (status = 409, description = "The event matched nothing (`no_match`: unknown machine, no ongoing run, no waiting test of that path and name). Nothing is changed; the seed's runner ignores this answer. The message is also in `detail`.", body = ErrorEnvelope, example = json!(examples::no_match())),
    )
)]
async fn record_test_start(
    State(state): State<AppState>,
    access: RunnerAccess,
    SeedRunnerBody(payload): SeedRunnerBody<TestStartPayload>,
) -> Result<(StatusCode, Json<TestStartEcho>), ApiError> {
    let start = payload.validate_at(state.tracker.now())?;
    access.permit(&start.machine)?;
    let echo = TestStartEcho {
        machine_name: start.machine.as_str().to_owned(),
        file_name: start.file_name.clone(),
        file_path: start.file_path.clone(),
        timestamp_start: rest_framework_time(echoed_time(&state, start.at)),
    };
    state.tracker.record_test_start(start).await?;
    Ok((StatusCode::ACCEPTED, Json(echo)))
}

/// Stops a test
///
/// Gives the running test with this path and name in the machine's ongoing run its final
/// status; `cancelled` cancels the whole run. Answers the seed's echo of the event (the stop
/// time used: the receipt time when none was sent). Also served without the trailing slash.
#[utoipa::path(
    post,
    operation_id = "seed_record_test_stop",
    path = "/tm_api/test_stop/",
    tag = RUNNER_TAG,
    request_body(description = FORM_BODIES, content(
        (TestStopPayload = "application/json", example = json!(examples::test_stop())),
        (SeedFormBody = "application/x-www-form-urlencoded", example = json!(form::flattened_example(&examples::test_stop()))),
        (SeedFormBody = "multipart/form-data", example = json!(form::flattened_example(&examples::test_stop()))),
    )),
    responses(
        (status = 202, description = "The event is applied; the answer echoes it as the seed did.", body = TestStopEcho),
        (status = 400, description = "Malformed JSON or form, a missing or mistyped field, a blank machine name, an unknown status, `waiting` or `running` as a final status (`malformed_json`, `malformed_form`, `invalid_input`). Nothing is changed. The message is also in `detail`.", body = ErrorEnvelope, example = json!(examples::invalid_input())),
        (status = 409, description = "The event matched nothing (`no_match`: unknown machine, no ongoing run, no running test of that path and name). Nothing is changed; the seed's runner ignores this answer. The message is also in `detail`.", body = ErrorEnvelope, example = json!(examples::no_match())),
    )
)]
async fn record_test_stop(
    State(state): State<AppState>,
    access: RunnerAccess,
    SeedRunnerBody(payload): SeedRunnerBody<TestStopPayload>,
) -> Result<(StatusCode, Json<TestStopEcho>), ApiError> {
    let stop = payload.validate_at(state.tracker.now())?;
    access.permit(&stop.machine)?;
    let echo = TestStopEcho {
        machine_name: stop.machine.as_str().to_owned(),
        file_name: stop.file_name.clone(),
        file_path: stop.file_path.clone(),
        timestamp_stop: rest_framework_time(echoed_time(&state, stop.at)),
        status: stop.status,
    };
    state.tracker.record_test_stop(stop).await?;
    Ok((StatusCode::ACCEPTED, Json(echo)))
}

/// The seed's error answer on its read paths.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Only documents the body `SeedReadError` answers.
struct SeedError {
    /// `Not found.` or `Invalid page.`
    detail: String,
}

/// The seed's answer to a bad read, for the documentation.
fn seed_not_found() -> serde_json::Value {
    json!({"detail": "Not found."})
}

/// The seed's answer to a page past the end, for the documentation.
fn seed_invalid_page() -> serde_json::Value {
    json!({"detail": "Invalid page."})
}

/// Lists machines
///
/// Every machine with its status, in id order, paginated as the seed did: `page_size` over
/// 100 is 100, `0` or not a number is 10; `page=last` is the last page. Also served without
/// the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_machines",
    path = "/tm_api/machines/",
    tag = READ_TAG,
    params(SeedPageQuery),
    responses(
        (status = 200, description = "A page of machines.", body = Paginated<MachineJson>),
        (status = 404, description = "The page is past the last one, below 1 or not a number.", body = SeedError, example = json!(seed_invalid_page())),
    )
)]
async fn machines(
    State(state): State<AppState>,
    pagination: SeedPagination,
    MountPrefix(prefix): MountPrefix,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Json<Paginated<MachineJson>>, SeedReadError> {
    let machines = machines_in_id_order(&state.tracker).await?;
    let page = read_page(pagination, |page| {
        let items: Vec<MachineSummary> = machines
            .iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(page.size() as usize)
            .cloned()
            .collect();
        let page = Page::new(items, page, machines.len() as u64);
        std::future::ready(page.within_range())
    })
    .await?;
    Ok(Json(Paginated::new(
        current_site(&headers, &uri),
        page,
        |m| MachineJson::new(m, &prefix),
    )))
}

/// Every machine, in id order as the seed listed them (stpt's own lists go by name).
async fn machines_in_id_order(tracker: &Tracker) -> Result<Vec<MachineSummary>, SeedReadError> {
    let mut machines = Vec::new();
    let mut request = first_page(PageRequest::MAX_SIZE)?;
    loop {
        let page = tracker.machines(request).await?;
        let has_next = page.has_next();
        machines.extend(page.items);
        if !has_next {
            break;
        }
        request = PageRequest::new(request.number() + 1, request.size())
            .map_err(|error| SeedReadError::Api(error.into()))?;
    }
    machines.sort_by_key(|machine| machine.id);
    Ok(machines)
}

/// Lists a machine's runs
///
/// The machine's runs, newest first, paginated as the machines; an unknown machine has an
/// empty list, as in the seed. Also served without the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_machine_runs",
    path = "/tm_api/machine_dry_run_datas/{machine_id}/",
    tag = READ_TAG,
    params(("machine_id" = i64, Path, description = "The machine's id."), SeedPageQuery),
    responses(
        (status = 200, description = "A page of runs (an empty page for an unknown machine).", body = Paginated<RunJson>),
        (status = 404, description = "The page is past the last one, below 1 or not a number; or the id is not a number.", body = SeedError, example = json!(seed_invalid_page())),
    )
)]
async fn machine_runs(
    State(state): State<AppState>,
    Path(machine_id): Path<String>,
    pagination: SeedPagination,
    MountPrefix(prefix): MountPrefix,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Json<Paginated<RunJson>>, SeedReadError> {
    let machine = MachineId(seed_id(&machine_id)?);
    let known = match state.tracker.machine(machine).await {
        Ok(_) => true,
        Err(Error::NotFound { .. }) => false,
        Err(other) => return Err(SeedReadError::Api(other.into())),
    };
    let page = read_page(pagination, |page| {
        let tracker = state.tracker.clone();
        async move {
            if known {
                tracker.runs(machine, page).await
            } else {
                // The seed filtered runs by machine id: an unknown one has none.
                Page::new(Vec::new(), page, 0).within_range()
            }
        }
    })
    .await?;
    Ok(Json(Paginated::new(
        current_site(&headers, &uri),
        page,
        |r| RunJson::new(r, &prefix),
    )))
}

/// Shows a machine's latest run
///
/// The machine's name and the run it planned last, in full: times in the seed's display
/// format, `started_ago`, `finished_ago` and `duration` as Django's `timesince` text, status,
/// statistics and every scenario with its tests; `last_master_scenario` is `null` before the
/// machine's first plan. Also served without the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_machine_last_run",
    path = "/tm_api/machine_last_data/{machine_id}/",
    tag = READ_TAG,
    params(("machine_id" = i64, Path, description = "The machine's id.")),
    responses(
        (status = 200, description = "The machine and its latest run.", body = MachineLastDataJson),
        (status = 404, description = "No such machine.", body = SeedError, example = json!(seed_not_found())),
    )
)]
async fn machine_last_run(
    State(state): State<AppState>,
    Path(machine_id): Path<String>,
) -> Result<Json<MachineLastDataJson>, SeedReadError> {
    let machine = MachineId(seed_id(&machine_id)?);
    Ok(Json(machine_last_data(&state.tracker, machine).await?))
}

/// `machine_last_data` of a machine, as the read API and the seed's last-run socket send it.
pub(crate) async fn machine_last_data(
    tracker: &Tracker,
    machine: MachineId,
) -> Result<MachineLastDataJson, Error> {
    let summary = tracker.machine(machine).await?;
    let run = match summary.latest_run {
        Some(run) => Some(tracker.run(run).await?),
        None => None,
    };
    Ok(MachineLastDataJson::new(summary.name, run, tracker.now()))
}

async fn item(state: &AppState, item: ItemRef) -> Result<Json<ItemJson>, SeedReadError> {
    Ok(Json(ItemJson::new(state.tracker.item(item).await?)))
}

/// Shows a test
///
/// The test's file, script and timestamps (the runner's own). Also served without the trailing
/// slash.
#[utoipa::path(
    get,
    operation_id = "seed_test_detail",
    path = "/tm_api/test/{id}/",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The test's id.")),
    responses(
        (status = 200, description = "The test.", body = ItemJson),
        (status = 404, description = "No such test.", body = SeedError, example = json!(seed_not_found())),
    )
)]
async fn test_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemJson>, SeedReadError> {
    item(&state, ItemRef::Test(TestId(seed_id(&id)?))).await
}

/// Shows a scenario
///
/// The scenario's file, script and timestamps (server clock). Also served without the trailing
/// slash.
#[utoipa::path(
    get,
    operation_id = "seed_scenario_detail",
    path = "/tm_api/scenario/{id}/",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The scenario's id.")),
    responses(
        (status = 200, description = "The scenario.", body = ItemJson),
        (status = 404, description = "No such scenario.", body = SeedError, example = json!(seed_not_found())),
    )
)]
async fn scenario_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemJson>, SeedReadError> {
    item(&state, ItemRef::Scenario(ScenarioId(seed_id(&id)?))).await
}

/// Shows a master scenario
///
/// The master scenario's file, script and timestamps (server clock). A master scenario has
/// its run's id. Also served without the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_master_scenario_detail",
    path = "/tm_api/master_scenario/{id}/",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The master scenario's id.")),
    responses(
        (status = 200, description = "The master scenario.", body = ItemJson),
        (status = 404, description = "No such master scenario.", body = SeedError, example = json!(seed_not_found())),
    )
)]
async fn master_scenario_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemJson>, SeedReadError> {
    item(&state, ItemRef::MasterScenario(RunId(seed_id(&id)?))).await
}

/// A runner time as the echo shows it: read in the server's default zone, as the seed read
/// every naive time in its own (a machine's own zone applies to what is stored).
fn echoed_time(state: &AppState, time: stpt_core::RunnerTime) -> chrono::DateTime<chrono::Utc> {
    time.in_zone(state.tracker.runner_timezone())
        .or_else(|| time.in_zone(stpt_core::RunnerTimezone::UTC))
        .unwrap_or_default()
}
