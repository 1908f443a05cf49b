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

use crate::extract::{MountPrefix, Pagination, RunnerJson, parse_id};
use crate::{ApiError, AppState};
use views::{ItemJson, MachineJson, Paginated, RunDataJson, RunJson};

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
#[derive(Debug, Serialize)]
struct PlanCreated {
    machine_id: MachineId,
    run_id: RunId,
    abandoned_runs: Vec<RunId>,
}

async fn record_plan(
    State(state): State<AppState>,
    RunnerJson(payload): RunnerJson<PlanPayload>,
) -> Result<(StatusCode, Json<PlanCreated>), ApiError> {
    let receipt = state.tracker.record_plan(payload.validate()?).await?;
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
#[derive(Debug, Serialize)]
struct EventAccepted {
    machine_id: MachineId,
    run_id: RunId,
    test_id: TestId,
    test_status: Status,
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

async fn record_test_start(
    State(state): State<AppState>,
    RunnerJson(payload): RunnerJson<TestStartPayload>,
) -> Result<(StatusCode, Json<EventAccepted>), ApiError> {
    let receipt = state.tracker.record_test_start(payload.validate()?).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt.into())))
}

async fn record_test_stop(
    State(state): State<AppState>,
    RunnerJson(payload): RunnerJson<TestStopPayload>,
) -> Result<(StatusCode, Json<EventAccepted>), ApiError> {
    let receipt = state.tracker.record_test_stop(payload.validate()?).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt.into())))
}

async fn machines(
    State(state): State<AppState>,
    Pagination(page): Pagination,
    MountPrefix(prefix): MountPrefix,
) -> Result<Json<Paginated<MachineJson>>, ApiError> {
    let page = state.tracker.machines(page).await?;
    Ok(Json(Paginated::new(page, |m| MachineJson::new(m, &prefix))))
}

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

async fn test_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemJson>, ApiError> {
    item(&state, ItemRef::Test(TestId(parse_id("test", &id)?))).await
}

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
