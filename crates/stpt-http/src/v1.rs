//! The versioned API under `/api/v1/`: plans answer every id, events address tests by id,
//! a client event id makes a retry safe, and a batch applies many events in order.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stpt_core::{
    EventId, EventReceipt, ItemDetail, ItemRef, MachineId, MachineName, MachineSummary, Page,
    PlanPayload, Recorded, RunDetail, RunId, RunSummary, ScenarioId, Status, TestAction, TestEvent,
    TestId, TestTarget, deserialize_timestamp,
};

use crate::extract::{Pagination, RunnerJson, parse_id};
use crate::{ApiError, AppState};

/// Most events one batch may carry.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// The header carrying a client event id on single-event endpoints.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/plans", post(create_plan))
        .route("/api/v1/tests/{id}/start", post(start_test))
        .route("/api/v1/tests/{id}/stop", post(stop_test))
        .route("/api/v1/events", post(batch))
        .route("/api/v1/machines", get(machines))
        .route("/api/v1/machines/{id}", get(machine))
        .route("/api/v1/machines/{id}/runs", get(machine_runs))
        .route("/api/v1/runs/{id}", get(run))
        .route("/api/v1/runs/{id}/master_scenario", get(master_scenario))
        .route("/api/v1/scenarios/{id}", get(scenario))
        .route("/api/v1/tests/{id}", get(test))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<EventId>, ApiError> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::invalid("Idempotency-Key", "the Idempotency-Key header must be text")
            })?;
            Ok(Some(EventId::new(text)?))
        }
    }
}

/// The answer to a plan: every id the runner may address events with.
#[derive(Debug, Serialize)]
pub(crate) struct PlanCreated {
    machine_id: MachineId,
    run_id: RunId,
    master_scenario_id: RunId,
    scenarios: Vec<PlannedScenarioIds>,
    abandoned_runs: Vec<RunId>,
    replayed: bool,
}

#[derive(Debug, Serialize)]
struct PlannedScenarioIds {
    id: ScenarioId,
    test_ids: Vec<TestId>,
}

async fn create_plan(
    State(state): State<AppState>,
    headers: HeaderMap,
    RunnerJson(payload): RunnerJson<PlanPayload>,
) -> Result<(StatusCode, Json<PlanCreated>), ApiError> {
    let plan = payload.validate()?;
    let recorded = match idempotency_key(&headers)? {
        Some(id) => state.tracker.record_plan_once(plan, &id).await?,
        None => Recorded {
            receipt: state.tracker.record_plan(plan).await?,
            replayed: false,
        },
    };
    let receipt = recorded.receipt;
    let status = if recorded.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(PlanCreated {
            machine_id: receipt.machine_id,
            run_id: receipt.ids.run_id,
            master_scenario_id: receipt.ids.run_id,
            scenarios: receipt
                .ids
                .scenario_ids
                .into_iter()
                .zip(receipt.ids.test_ids)
                .map(|(id, test_ids)| PlannedScenarioIds { id, test_ids })
                .collect(),
            abandoned_runs: receipt.abandoned,
            replayed: recorded.replayed,
        }),
    ))
}

#[derive(Debug, Deserialize)]
struct StartBody {
    #[serde(deserialize_with = "deserialize_timestamp")]
    timestamp: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct StopBody {
    status: Status,
    #[serde(deserialize_with = "deserialize_timestamp")]
    timestamp: DateTime<Utc>,
}

async fn apply(
    state: &AppState,
    event: TestEvent,
    event_id: Option<EventId>,
) -> Result<(StatusCode, Json<Recorded<EventReceipt>>), ApiError> {
    let recorded = state
        .tracker
        .record_test_event(event, event_id.as_ref())
        .await?;
    let status = if recorded.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(recorded)))
}

async fn start_test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RunnerJson(body): RunnerJson<StartBody>,
) -> Result<(StatusCode, Json<Recorded<EventReceipt>>), ApiError> {
    let event = TestEvent {
        target: TestTarget::Id(TestId(parse_id("test", &id)?)),
        action: TestAction::Start,
        at: body.timestamp,
    };
    apply(&state, event, idempotency_key(&headers)?).await
}

async fn stop_test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RunnerJson(body): RunnerJson<StopBody>,
) -> Result<(StatusCode, Json<Recorded<EventReceipt>>), ApiError> {
    let event = TestEvent {
        target: TestTarget::Id(TestId(parse_id("test", &id)?)),
        action: TestAction::Stop(body.status),
        at: body.timestamp,
    };
    apply(&state, event, idempotency_key(&headers)?).await
}

/// A batch: events applied in order.
#[derive(Debug, Deserialize)]
struct BatchBody {
    events: Vec<BatchEvent>,
}

/// One event of a batch: a test addressed by `test_id`, or by `machine_name`, `file_path`
/// and `file_name` as in the seed protocol.
#[derive(Debug, Deserialize)]
struct BatchEvent {
    event_id: Option<String>,
    #[serde(rename = "type")]
    kind: BatchEventKind,
    test_id: Option<i64>,
    machine_name: Option<String>,
    file_path: Option<String>,
    file_name: Option<String>,
    status: Option<Status>,
    #[serde(deserialize_with = "deserialize_timestamp")]
    timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BatchEventKind {
    TestStart,
    TestStop,
}

impl BatchEvent {
    fn validate(self, index: usize) -> Result<(TestEvent, Option<EventId>), ApiError> {
        let field = |name: &str| format!("events[{index}].{name}");
        let action = match (self.kind, self.status) {
            (BatchEventKind::TestStart, None) => TestAction::Start,
            (BatchEventKind::TestStart, Some(_)) => {
                return Err(ApiError::invalid(
                    field("status"),
                    "a test_start has no status",
                ));
            }
            (BatchEventKind::TestStop, Some(status)) if status.is_finished() => {
                TestAction::Stop(status)
            }
            (BatchEventKind::TestStop, Some(status)) => {
                return Err(ApiError::invalid(
                    field("status"),
                    format!("`{status}` is not a final status"),
                ));
            }
            (BatchEventKind::TestStop, None) => {
                return Err(ApiError::invalid(
                    field("status"),
                    "a test_stop needs a status",
                ));
            }
        };
        let target = match (
            self.test_id,
            self.machine_name,
            self.file_path,
            self.file_name,
        ) {
            (Some(id), None, None, None) => TestTarget::Id(TestId(id)),
            (None, Some(machine), Some(file_path), Some(file_name)) => TestTarget::Named {
                machine: MachineName::new(machine)
                    .map_err(|e| ApiError::invalid(field("machine_name"), e.to_string()))?,
                file_path,
                file_name,
            },
            _ => {
                return Err(ApiError::invalid(
                    format!("events[{index}]"),
                    "address the test either by `test_id` or by `machine_name`, `file_path` and `file_name`",
                ));
            }
        };
        let event_id = self
            .event_id
            .map(EventId::new)
            .transpose()
            .map_err(|e| ApiError::invalid(field("event_id"), e.to_string()))?;
        Ok((
            TestEvent {
                target,
                action,
                at: self.timestamp,
            },
            event_id,
        ))
    }
}

#[derive(Debug, Serialize)]
struct BatchResults {
    results: Vec<BatchResult>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum BatchResult {
    Applied { receipt: EventReceipt },
    Replayed { receipt: EventReceipt },
    Rejected { error: serde_json::Value },
}

/// Validates every event first (a bad one rejects the whole batch, nothing applied), then
/// applies them in order; an event that matches nothing does not stop the ones after it.
async fn batch(
    State(state): State<AppState>,
    RunnerJson(body): RunnerJson<BatchBody>,
) -> Result<Json<BatchResults>, ApiError> {
    if body.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::invalid(
            "events",
            format!(
                "at most {MAX_BATCH_EVENTS} events per batch, got {}",
                body.events.len()
            ),
        ));
    }
    let events = body
        .events
        .into_iter()
        .enumerate()
        .map(|(index, event)| event.validate(index))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = Vec::with_capacity(events.len());
    for (event, event_id) in events {
        let result = match state
            .tracker
            .record_test_event(event, event_id.as_ref())
            .await
        {
            Ok(Recorded {
                receipt,
                replayed: false,
            }) => BatchResult::Applied { receipt },
            Ok(Recorded {
                receipt,
                replayed: true,
            }) => BatchResult::Replayed { receipt },
            Err(error) => {
                let api = ApiError::from(error);
                if api.status().is_server_error() {
                    return Err(api);
                }
                BatchResult::Rejected {
                    error: api.body_json(),
                }
            }
        };
        results.push(result);
    }
    Ok(Json(BatchResults { results }))
}

/// A page of results in the v1 shape.
#[derive(Debug, Serialize)]
struct PageJson<T> {
    items: Vec<T>,
    page: u32,
    page_size: u32,
    total: u64,
    total_pages: u32,
}

impl<T> From<Page<T>> for PageJson<T> {
    fn from(page: Page<T>) -> Self {
        PageJson {
            page: page.request.number(),
            page_size: page.request.size(),
            total: page.total,
            total_pages: page.total_pages(),
            items: page.items,
        }
    }
}

async fn machines(
    State(state): State<AppState>,
    Pagination(page): Pagination,
) -> Result<Json<PageJson<MachineSummary>>, ApiError> {
    Ok(Json(state.tracker.machines(page).await?.into()))
}

async fn machine(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MachineSummary>, ApiError> {
    let id = MachineId(parse_id("machine", &id)?);
    Ok(Json(state.tracker.machine(id).await?))
}

async fn machine_runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Pagination(page): Pagination,
) -> Result<Json<PageJson<RunSummary>>, ApiError> {
    let id = MachineId(parse_id("machine", &id)?);
    Ok(Json(state.tracker.runs(id, page).await?.into()))
}

async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let id = RunId(parse_id("run", &id)?);
    Ok(Json(state.tracker.run(id).await?))
}

async fn master_scenario(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemDetail>, ApiError> {
    let id = RunId(parse_id("run", &id)?);
    Ok(Json(state.tracker.item(ItemRef::MasterScenario(id)).await?))
}

async fn scenario(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemDetail>, ApiError> {
    let id = ScenarioId(parse_id("scenario", &id)?);
    Ok(Json(state.tracker.item(ItemRef::Scenario(id)).await?))
}

async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemDetail>, ApiError> {
    let id = TestId(parse_id("test", &id)?);
    Ok(Json(state.tracker.item(ItemRef::Test(id)).await?))
}
