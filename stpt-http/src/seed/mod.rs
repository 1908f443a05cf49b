//! The seed's API under `/tm_api/`: runner endpoints and read endpoints, paths and shapes as
//! the seed had them (each path with and without its trailing slash).

mod views;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get, post};
use serde::Serialize;
use stpt_core::{
    ItemRef, MachineId, PlanPayload, RunId, ScenarioId, Status, TestId, TestStartPayload,
    TestStopPayload,
};

use crate::error::ErrorEnvelope;
use crate::extract::{MountPrefix, Pagination, RunnerJson, parse_id};
use crate::schemas::{PageQuery, examples};
use crate::security::RunnerAccess;
use crate::{ApiError, AppState};
use views::{ItemJson, MachineJson, Paginated, RunDataJson, RunJson};

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

/// What a stored plan answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SeedPlanCreated)]
struct PlanCreated {
    /// The machine (created if its name is new).
    machine_id: MachineId,
    /// The new run; its master scenario has the same id.
    run_id: RunId,
    /// Runs of the machine that were still ongoing and were abandoned by this plan.
    abandoned_runs: Vec<RunId>,
}

/// Posts a plan
///
/// Stores the plan a runner sends before it executes anything: a new run whose tests all
/// wait. Any run of the machine still ongoing is abandoned (its waiting and running tests
/// become `unknown`). Empty lists may be `null` or absent. Also served without the trailing
/// slash.
#[utoipa::path(
    post,
    operation_id = "seed_record_plan",
    path = "/tm_api/dry_run/",
    tag = RUNNER_TAG,
    request_body(content = PlanPayload, content_type = "application/json", example = json!(examples::plan())),
    responses(
        (status = 201, description = "The plan is stored as a new run.", body = PlanCreated),
        (status = 400, description = "Malformed JSON, a missing or mistyped field, a blank machine name, file path or file name, or an oversized name or path (`malformed_json`, `invalid_input`, `unreadable_body`). Nothing is stored.", body = ErrorEnvelope, example = json!(examples::invalid_input())),
    )
)]
async fn record_plan(
    State(state): State<AppState>,
    access: RunnerAccess,
    RunnerJson(payload): RunnerJson<PlanPayload>,
) -> Result<(StatusCode, Json<PlanCreated>), ApiError> {
    let plan = payload.validate()?;
    access.permit(&plan.machine)?;
    let receipt = state.tracker.record_plan(plan).await?;
    Ok((
        StatusCode::CREATED,
        Json(PlanCreated {
            machine_id: receipt.machine_id,
            run_id: receipt.ids.run_id,
            abandoned_runs: receipt.abandoned,
        }),
    ))
}

/// What an applied event answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SeedEventAccepted)]
struct EventAccepted {
    /// The machine.
    machine_id: MachineId,
    /// The run the test belongs to.
    run_id: RunId,
    /// The test the event matched.
    test_id: TestId,
    /// The test's new status.
    test_status: Status,
    /// The run's new aggregated status.
    run_status: Status,
}

impl From<stpt_core::EventReceipt> for EventAccepted {
    fn from(receipt: stpt_core::EventReceipt) -> Self {
        EventAccepted {
            machine_id: receipt.machine_id,
            run_id: receipt.run_id,
            test_id: receipt.test_id,
            test_status: receipt.status,
            run_status: receipt.run_status,
        }
    }
}

/// Starts a test
///
/// Marks the first waiting test with this path and name in the machine's ongoing run as
/// running (machine names compare case-insensitively). Also served without the trailing slash.
#[utoipa::path(
    post,
    operation_id = "seed_record_test_start",
    path = "/tm_api/test_start/",
    tag = RUNNER_TAG,
    request_body(content = TestStartPayload, content_type = "application/json", example = json!(examples::test_start())),
    responses(
        (status = 202, description = "The event is applied.", body = EventAccepted),
        (status = 400, description = "Malformed JSON, a missing or mistyped field, a blank machine name, an unknown status (`malformed_json`, `invalid_input`). Nothing is changed.", body = ErrorEnvelope, example = json!(examples::invalid_input())),
        (status = 409, description = "The event matched nothing (`no_match`: unknown machine, no ongoing run, no waiting test of that path and name). Nothing is changed; the seed's runner ignores this answer.", body = ErrorEnvelope, example = json!(examples::no_match())),
    )
)]
async fn record_test_start(
    State(state): State<AppState>,
    access: RunnerAccess,
    RunnerJson(payload): RunnerJson<TestStartPayload>,
) -> Result<(StatusCode, Json<EventAccepted>), ApiError> {
    let start = payload.validate_at(state.tracker.now())?;
    access.permit(&start.machine)?;
    let receipt = state.tracker.record_test_start(start).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt.into())))
}

/// Stops a test
///
/// Gives the running test with this path and name in the machine's ongoing run its final
/// status; `cancelled` cancels the whole run. Also served without the trailing slash.
#[utoipa::path(
    post,
    operation_id = "seed_record_test_stop",
    path = "/tm_api/test_stop/",
    tag = RUNNER_TAG,
    request_body(content = TestStopPayload, content_type = "application/json", example = json!(examples::test_stop())),
    responses(
        (status = 202, description = "The event is applied.", body = EventAccepted),
        (status = 400, description = "Malformed JSON, a missing or mistyped field, a blank machine name, an unknown status, `waiting` or `running` as a final status (`malformed_json`, `invalid_input`). Nothing is changed.", body = ErrorEnvelope, example = json!(examples::invalid_input())),
        (status = 409, description = "The event matched nothing (`no_match`: unknown machine, no ongoing run, no running test of that path and name). Nothing is changed; the seed's runner ignores this answer.", body = ErrorEnvelope, example = json!(examples::no_match())),
    )
)]
async fn record_test_stop(
    State(state): State<AppState>,
    access: RunnerAccess,
    RunnerJson(payload): RunnerJson<TestStopPayload>,
) -> Result<(StatusCode, Json<EventAccepted>), ApiError> {
    let stop = payload.validate_at(state.tracker.now())?;
    access.permit(&stop.machine)?;
    let receipt = state.tracker.record_test_stop(stop).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt.into())))
}

/// Lists machines
///
/// Every machine with its live status, paginated as the seed did. Also served without
/// the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_machines",
    path = "/tm_api/machines/",
    tag = READ_TAG,
    params(PageQuery),
    responses(
        (status = 200, description = "A page of machines.", body = Paginated<MachineJson>),
        (status = 400, description = "`page` or `page_size` is not a whole number in range (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_page())),
        (status = 404, description = "The page is past the last one (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("page 3"))),
    )
)]
async fn machines(
    State(state): State<AppState>,
    Pagination(page): Pagination,
    MountPrefix(prefix): MountPrefix,
) -> Result<Json<Paginated<MachineJson>>, ApiError> {
    let page = state.tracker.machines(page).await?;
    Ok(Json(Paginated::new(page, |m| MachineJson::new(m, &prefix))))
}

/// Lists a machine's runs
///
/// The machine's runs, newest first, paginated. Also served without the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_machine_runs",
    path = "/tm_api/machine_dry_run_datas/{machine_id}/",
    tag = READ_TAG,
    params(("machine_id" = i64, Path, description = "The machine's id."), PageQuery),
    responses(
        (status = 200, description = "A page of runs.", body = Paginated<RunJson>),
        (status = 400, description = "The id is not a number, or `page`/`page_size` is not a whole number in range (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_page())),
        (status = 404, description = "No such machine, or the page is past the last one (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("machine 99"))),
    )
)]
async fn machine_runs(
    State(state): State<AppState>,
    Path(machine_id): Path<String>,
    Pagination(page): Pagination,
    MountPrefix(prefix): MountPrefix,
) -> Result<Json<Paginated<RunJson>>, ApiError> {
    let machine = MachineId(parse_id("machine", &machine_id)?);
    let page = state.tracker.runs(machine, page).await?;
    Ok(Json(Paginated::new(page, |r| RunJson::new(r, &prefix))))
}

/// Shows a machine's latest run
///
/// The run the machine planned last, in full: timestamps in the seed's display format,
/// started/finished ago, duration, status, statistics and every scenario with its tests.
/// Also served without the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_machine_last_run",
    path = "/tm_api/machine_last_data/{machine_id}/",
    tag = READ_TAG,
    params(("machine_id" = i64, Path, description = "The machine's id.")),
    responses(
        (status = 200, description = "The latest run.", body = RunDataJson),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such machine, or it has no run yet (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("machine 99"))),
    )
)]
async fn machine_last_run(
    State(state): State<AppState>,
    Path(machine_id): Path<String>,
    MountPrefix(prefix): MountPrefix,
) -> Result<Json<RunDataJson>, ApiError> {
    let machine = MachineId(parse_id("machine", &machine_id)?);
    let run = state.tracker.latest_run(machine).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("machine {machine} has no run yet"),
        )
    })?;
    Ok(Json(RunDataJson::new(run, state.tracker.now(), &prefix)))
}

async fn item(state: &AppState, item: ItemRef) -> Result<Json<ItemJson>, ApiError> {
    Ok(Json(ItemJson::new(state.tracker.item(item).await?)))
}

/// Shows a test
///
/// The test's file, script, status and timestamps. Also served without the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_test_detail",
    path = "/tm_api/test/{id}/",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The test's id.")),
    responses(
        (status = 200, description = "The test.", body = ItemJson),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such test (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("test 99"))),
    )
)]
async fn test_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemJson>, ApiError> {
    item(&state, ItemRef::Test(TestId(parse_id("test", &id)?))).await
}

/// Shows a scenario
///
/// The scenario's file, script, status and timestamps. Also served without the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_scenario_detail",
    path = "/tm_api/scenario/{id}/",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The scenario's id.")),
    responses(
        (status = 200, description = "The scenario.", body = ItemJson),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such scenario (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("scenario 99"))),
    )
)]
async fn scenario_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemJson>, ApiError> {
    item(
        &state,
        ItemRef::Scenario(ScenarioId(parse_id("scenario", &id)?)),
    )
    .await
}

/// Shows a master scenario
///
/// The master scenario's file, script, status and timestamps. A master scenario has its run's id. Also served without the trailing slash.
#[utoipa::path(
    get,
    operation_id = "seed_master_scenario_detail",
    path = "/tm_api/master_scenario/{id}/",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The master scenario's id.")),
    responses(
        (status = 200, description = "The master scenario.", body = ItemJson),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such master scenario (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("master scenario 99"))),
    )
)]
async fn master_scenario_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemJson>, ApiError> {
    item(
        &state,
        ItemRef::MasterScenario(RunId(parse_id("master scenario", &id)?)),
    )
    .await
}
