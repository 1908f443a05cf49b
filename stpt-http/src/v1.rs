//! The versioned API under `/api/v1/`: plans answer every id, events address tests by id,
//! a client event id makes a retry safe, and a batch applies many events in order.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stpt_core::{
    BACKLOG_HEADER, EventId, EventReceipt, FailureDetails, ItemDetail, ItemRef, MachineId,
    MachineSummary, Page, PlanPayload, Recorded, RunDetail, RunEta, RunId, RunSummary, RunnerTime,
    ScenarioId, Status, TestAction, TestEvent, TestId, TestStartPayload, TestTarget,
};

use crate::error::ErrorEnvelope;
use crate::extract::{Pagination, RunnerJson, parse_id};
use crate::schemas::{EventRecorded, PageQuery, examples};
use crate::security::RunnerAccess;
use crate::{ApiError, AppState};
use stpt_core::openapi::RunnerTimestamp;
use utoipa::ToSchema;

/// Most events one batch may carry.
pub(crate) const MAX_BATCH_EVENTS: usize = 1000;

/// The header carrying a client event id on single-event endpoints.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The OpenAPI description of the `/api/v1/` routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create_plan,
    start_test,
    stop_test,
    batch,
    machines,
    machine,
    machine_runs,
    run,
    run_eta,
    master_scenario,
    scenario,
    test
))]
pub(crate) struct V1Api;

/// The tag of the v1 write endpoints.
const EVENTS_TAG: &str = "v1 runner API";
/// The tag of the v1 read endpoints.
const READ_TAG: &str = "v1 read API";

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
        .route("/api/v1/runs/{id}/eta", get(run_eta))
        .route("/api/v1/runs/{id}/master_scenario", get(master_scenario))
        .route("/api/v1/scenarios/{id}", get(scenario))
        .route("/api/v1/tests/{id}", get(test))
}

/// What the `Stpt-Backlog` header says: how many events the runner's spool still holds after
/// this request, while it replays what it kept during an outage; `None` without the header.
/// Read before anything is applied, so a bad value changes nothing.
fn backlog_header(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(BACKLOG_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                BACKLOG_HEADER,
                "the Stpt-Backlog header must be a whole number of events",
            )
        })
}

/// The `Stpt-Backlog` header of the runner endpoints.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Only documents the header; handlers read it from the `HeaderMap`.
struct BacklogHeader {
    /// Sent by a runner's client while it replays events its spool kept when the server was
    /// unreachable: how many are still queued after this request. Machine pages and the
    /// machine's API answer show the replay until a request says `0` or comes without the
    /// header, or for 30 seconds after the last one. Not stored.
    #[param(rename = "Stpt-Backlog", minimum = 0, example = 312)]
    stpt_backlog: Option<u64>,
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
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PlanCreated {
    /// The machine (created if its name is new).
    machine_id: MachineId,
    /// The new run.
    run_id: RunId,
    /// The run's master scenario (the same id as the run).
    master_scenario_id: RunId,
    /// The plan's scenarios in plan order, each with its tests' ids in plan order.
    scenarios: Vec<PlannedScenarioIds>,
    /// Runs of the machine that were still ongoing and were abandoned by this plan.
    abandoned_runs: Vec<RunId>,
    /// `true` when the `Idempotency-Key` was seen before: nothing was stored now and the ids
    /// are those of the first time.
    replayed: bool,
}

/// A planned scenario's id and its tests' ids.
#[derive(Debug, Serialize, ToSchema)]
struct PlannedScenarioIds {
    /// The scenario.
    id: ScenarioId,
    /// Its tests, in plan order.
    test_ids: Vec<TestId>,
}

/// Stores a plan
///
/// As `POST /tm_api/dry_run/`, but the answer holds the id of every scenario and test, so
/// later events can address tests by id. With an `Idempotency-Key`, a retried post stores
/// the plan once and answers `200` with the first answer's ids.
#[utoipa::path(
    post,
    operation_id = "v1_create_plan",
    path = "/api/v1/plans",
    tag = EVENTS_TAG,
    params(IdempotencyKey, BacklogHeader),
    request_body(content = PlanPayload, content_type = "application/json", example = json!(examples::plan())),
    responses(
        (status = 201, description = "The plan is stored as a new run.", body = PlanCreated),
        (status = 200, description = "A retry: this `Idempotency-Key` stored a plan before; nothing new is stored (`replayed` is `true`).", body = PlanCreated),
        (status = 400, description = "Malformed JSON, a missing or mistyped field, a blank machine name, an oversized name or path, or a blank `Idempotency-Key` (`malformed_json`, `invalid_input`). Nothing is stored.", body = ErrorEnvelope, example = json!(examples::invalid_input())),
        (status = 422, description = "The `Idempotency-Key` was used before on this machine for a different event (`idempotency_key_reused`). Nothing is stored; do not retry with this key.", body = ErrorEnvelope, example = json!(examples::key_reused())),
    )
)]
async fn create_plan(
    State(state): State<AppState>,
    access: RunnerAccess,
    headers: HeaderMap,
    RunnerJson(payload): RunnerJson<PlanPayload>,
) -> Result<(StatusCode, Json<PlanCreated>), ApiError> {
    let plan = payload.validate()?;
    access.permit(&plan.machine)?;
    let backlog = backlog_header(&headers)?;
    let recorded = match idempotency_key(&headers)? {
        Some(id) => state.tracker.record_plan_once(plan, &id).await?,
        None => Recorded {
            receipt: state.tracker.record_plan(plan).await?,
            replayed: false,
        },
    };
    let receipt = recorded.receipt;
    state.tracker.note_backlog(receipt.machine_id, backlog);
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

/// The `Idempotency-Key` header of the single-event endpoints.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Only documents the header; handlers read it from the `HeaderMap`.
struct IdempotencyKey {
    /// A client's id for this request, unique per machine, at most 128 characters, not blank.
    /// A retry with the same key is applied once: the retry answers `200` with the first
    /// answer and `replayed: true`.
    #[param(
        rename = "Idempotency-Key",
        max_length = 128,
        nullable = false,
        example = "rig-7/run-42/test-3/start"
    )]
    idempotency_key: Option<String>,
}

/// Starts a test addressed by id.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = V1StartBody)]
struct StartBody {
    /// When the test started (the runner's clock).
    #[schema(value_type = RunnerTimestamp)]
    timestamp: RunnerTime,
}

/// Stops a test addressed by id.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = V1StopBody)]
struct StopBody {
    /// The final status: not `waiting` or `running`.
    status: Status,
    /// When the test stopped (the runner's clock).
    #[schema(value_type = RunnerTimestamp)]
    timestamp: RunnerTime,
    /// A short message on how the test ended, usually one line such as the failed
    /// assertion; at most 1000 characters, no NUL.
    #[schema(max_length = 1000, example = "assert 2 + 2 == 5")]
    message: Option<String>,
    /// A longer text: a traceback, the tail of a log; at most 65536 bytes of UTF-8, no NUL.
    /// Longer texts are refused, not cut: send the part that matters.
    #[schema(
        example = "Traceback (most recent call last):\n  File \"test_calc.py\", line 3, in test_add\n    assert 2 + 2 == 5\nAssertionError"
    )]
    details: Option<String>,
}

async fn apply(
    state: &AppState,
    headers: &HeaderMap,
    event: TestEvent,
) -> Result<(StatusCode, Json<Recorded<EventReceipt>>), ApiError> {
    let event_id = idempotency_key(headers)?;
    let backlog = backlog_header(headers)?;
    let recorded = state
        .tracker
        .record_test_event(event, event_id.as_ref())
        .await?;
    state
        .tracker
        .note_backlog(recorded.receipt.machine_id, backlog);
    let status = if recorded.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(recorded)))
}

/// Starts a test by id
///
/// Marks the waiting test `id` as running.
#[utoipa::path(
    post,
    operation_id = "v1_start_test",
    path = "/api/v1/tests/{id}/start",
    tag = EVENTS_TAG,
    params(("id" = i64, Path, description = "The test's id, from the plan's answer."), IdempotencyKey, BacklogHeader),
    request_body(content = StartBody, content_type = "application/json", example = json!({"timestamp": "2026-11-24 13:02:01.000001"})),
    responses(
        (status = 202, description = "The event is applied.", body = EventRecorded),
        (status = 200, description = "A retry: this `Idempotency-Key` was applied before; nothing is applied now (`replayed` is `true`, the receipt is the first one's).", body = EventRecorded),
        (status = 400, description = "The id is not a number, malformed JSON, a missing or mistyped field, or a blank `Idempotency-Key` (`malformed_json`, `invalid_input`). Nothing is changed.", body = ErrorEnvelope, example = json!(examples::invalid_input())),
        (status = 404, description = "No test has this id (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("test 99"))),
        (status = 409, description = "The test is not waiting in its machine's ongoing run (`no_match`). Nothing is changed.", body = ErrorEnvelope, example = json!(examples::no_match_by_id())),
        (status = 422, description = "The `Idempotency-Key` was used before on this machine for a different event (`idempotency_key_reused`). Nothing is changed; do not retry with this key.", body = ErrorEnvelope, example = json!(examples::key_reused())),
    )
)]
async fn start_test(
    State(state): State<AppState>,
    access: RunnerAccess,
    Path(id): Path<String>,
    headers: HeaderMap,
    RunnerJson(body): RunnerJson<StartBody>,
) -> Result<(StatusCode, Json<Recorded<EventReceipt>>), ApiError> {
    let test = TestId(parse_id("test", &id)?);
    access.permit_test(&state.tracker, test).await?;
    let event = TestEvent {
        target: TestTarget::Id(test),
        action: TestAction::Start,
        at: body.timestamp,
        failure: None,
    };
    apply(&state, &headers, event).await
}

/// Stops a test by id
///
/// Gives the running test `id` its final status; `cancelled` cancels the whole run.
#[utoipa::path(
    post,
    operation_id = "v1_stop_test",
    path = "/api/v1/tests/{id}/stop",
    tag = EVENTS_TAG,
    params(("id" = i64, Path, description = "The test's id, from the plan's answer."), IdempotencyKey, BacklogHeader),
    request_body(content = StopBody, content_type = "application/json", example = json!({"status": "passed", "timestamp": "2026-11-24T13:02:04Z"})),
    responses(
        (status = 202, description = "The event is applied.", body = EventRecorded),
        (status = 200, description = "A retry: this `Idempotency-Key` was applied before; nothing is applied now (`replayed` is `true`, the receipt is the first one's).", body = EventRecorded),
        (status = 400, description = "The id is not a number, malformed JSON, a missing or mistyped field, an unknown status, `waiting` or `running` as a final status, a `message` over 1000 characters or `details` over 65536 bytes (or with a NUL), or a blank `Idempotency-Key` (`malformed_json`, `invalid_input`). Nothing is changed.", body = ErrorEnvelope, example = json!(examples::invalid_input())),
        (status = 404, description = "No test has this id (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("test 99"))),
        (status = 409, description = "The test is not running in its machine's ongoing run (`no_match`). Nothing is changed.", body = ErrorEnvelope, example = json!(examples::no_match_by_id())),
        (status = 422, description = "The `Idempotency-Key` was used before on this machine for a different event (`idempotency_key_reused`). Nothing is changed; do not retry with this key.", body = ErrorEnvelope, example = json!(examples::key_reused())),
    )
)]
async fn stop_test(
    State(state): State<AppState>,
    access: RunnerAccess,
    Path(id): Path<String>,
    headers: HeaderMap,
    RunnerJson(body): RunnerJson<StopBody>,
) -> Result<(StatusCode, Json<Recorded<EventReceipt>>), ApiError> {
    let failure = FailureDetails::validate(body.message, body.details)?;
    let test = TestId(parse_id("test", &id)?);
    access.permit_test(&state.tracker, test).await?;
    let event = TestEvent {
        target: TestTarget::Id(test),
        action: TestAction::Stop(body.status),
        at: body.timestamp,
        failure,
    };
    apply(&state, &headers, event).await
}

/// A batch: events applied in order.
#[derive(Debug, Deserialize, ToSchema)]
struct BatchBody {
    /// The events, applied in this order; at most 1000.
    #[schema(max_items = 1000)]
    events: Vec<BatchEvent>,
}

/// One event of a batch: a test addressed by `test_id`, or by `machine_name`, `file_path`
/// and `file_name` as in the seed protocol.
#[derive(Debug, Deserialize, ToSchema)]
struct BatchEvent {
    /// A client's id for this event, unique per machine (at most 128 characters): an event
    /// whose id was applied before is not applied again and reports `replayed`.
    #[schema(max_length = 128)]
    event_id: Option<String>,
    /// What happened to the test.
    #[serde(rename = "type")]
    kind: BatchEventKind,
    /// The test's id; or leave it out and give `machine_name`, `file_path` and `file_name`.
    test_id: Option<i64>,
    /// The machine's name (with `file_path` and `file_name`, instead of `test_id`).
    machine_name: Option<String>,
    /// The test script's directory (with `machine_name` and `file_name`).
    file_path: Option<String>,
    /// The test script's file name (with `machine_name` and `file_path`).
    file_name: Option<String>,
    /// With `test_stop` only, required there: the final status (not `waiting` or `running`).
    status: Option<Status>,
    /// When it happened (the runner's clock).
    #[schema(value_type = RunnerTimestamp)]
    timestamp: RunnerTime,
    /// With `test_stop` only: a short message on how the test ended (at most 1000
    /// characters), as in a single stop.
    #[schema(max_length = 1000)]
    message: Option<String>,
    /// With `test_stop` only: a longer text, a traceback or log tail (at most 65536 bytes),
    /// as in a single stop.
    details: Option<String>,
}

/// What happened to the test.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum BatchEventKind {
    /// The test started.
    TestStart,
    /// The test stopped (with `status`).
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
        let failure = match self.kind {
            BatchEventKind::TestStop => FailureDetails::validate(self.message, self.details)
                .map_err(|error| in_event(index, error))?,
            BatchEventKind::TestStart if self.message.is_some() || self.details.is_some() => {
                let name = if self.message.is_some() {
                    "message"
                } else {
                    "details"
                };
                return Err(ApiError::invalid(
                    field(name),
                    "a test_start has no message or details; send them with the test_stop",
                ));
            }
            BatchEventKind::TestStart => None,
        };
        let target = match (
            self.test_id,
            self.machine_name,
            self.file_path,
            self.file_name,
        ) {
            (Some(id), None, None, None) => TestTarget::Id(TestId(id)),
            (None, Some(machine_name), Some(file_path), Some(file_name)) => {
                // Exactly the checks of a single `test_start` (lengths, NUL, machine name).
                let start = TestStartPayload {
                    machine_name,
                    file_path,
                    file_name,
                    timestamp_start: Some(self.timestamp),
                }
                .validate()
                .map_err(|error| in_event(index, error))?;
                TestTarget::Named {
                    machine: start.machine,
                    file_path: start.file_path,
                    file_name: start.file_name,
                }
            }
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
            .map_err(|error| in_event(index, error))?;
        Ok((
            TestEvent {
                target,
                action,
                at: self.timestamp,
                failure,
            },
            event_id,
        ))
    }
}

/// A validation error of event `index` of a batch, its field named within the batch.
fn in_event(index: usize, error: stpt_core::Error) -> ApiError {
    match error {
        stpt_core::Error::InvalidInput { field, problem } => {
            let field = format!("events[{index}].{field}");
            let message = format!("`{field}` {problem}");
            ApiError::invalid(field, message)
        }
        other => other.into(),
    }
}

/// The outcome of each event of a batch.
#[derive(Debug, Serialize, ToSchema)]
struct BatchResults {
    /// One result per event, in the batch's order.
    results: Vec<BatchResult>,
}

/// The outcome of one event of a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum BatchResult {
    /// The event was applied.
    Applied {
        /// What it did.
        #[schema(value_type = crate::schemas::EventReceiptSchema)]
        receipt: EventReceipt,
    },
    /// The event's `event_id` was applied before; nothing was applied now.
    Replayed {
        /// What it did the first time.
        #[schema(value_type = crate::schemas::EventReceiptSchema)]
        receipt: EventReceipt,
    },
    /// The event matched nothing (`no_match`), or its `event_id` was used before for a
    /// different event (`idempotency_key_reused`); the events after it were still applied.
    Rejected {
        /// Why, as in an error answer's `error` object.
        #[schema(value_type = crate::error::ErrorBody)]
        error: serde_json::Value,
    },
}

/// Posts a batch of events
///
/// Validates every event first (one bad event rejects the whole batch with `400` and nothing
/// is applied), then applies them in order. An event that matches nothing is reported as
/// `rejected` and does not stop the ones after it. Each event may carry an `event_id` so a
/// retried batch applies each event once. A `503` (`busy`) stops the batch at the event a
/// concurrent writer got in the way of: the events before it stay applied, so retry the
/// batch with `event_id`s.
#[utoipa::path(
    post,
    operation_id = "v1_batch",
    path = "/api/v1/events",
    tag = EVENTS_TAG,
    params(BacklogHeader),
    request_body(content = BatchBody, content_type = "application/json", example = json!(examples::batch())),
    responses(
        (status = 200, description = "Every event was tried, in order; `results` tells what each did.", body = BatchResults),
        (status = 400, description = "Malformed JSON, more than 1000 events, or an event that is invalid: a missing or mistyped field, a `test_start` with a status, a `test_stop` without a final status, a `test_start` with `message` or `details`, a `message` or `details` over its bound, neither or both ways of addressing the test (`malformed_json`, `invalid_input`; `field` names the event, e.g. `events[2].status`). Nothing is applied.", body = ErrorEnvelope, example = json!(examples::bad_batch())),
    )
)]
async fn batch(
    State(state): State<AppState>,
    access: RunnerAccess,
    headers: HeaderMap,
    RunnerJson(body): RunnerJson<BatchBody>,
) -> Result<Json<BatchResults>, ApiError> {
    let backlog = backlog_header(&headers)?;
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
    // A token bound to machines must cover every event before any is applied.
    for (event, _) in &events {
        match &event.target {
            TestTarget::Named { machine, .. } => access.permit(machine)?,
            TestTarget::Id(test) => access.permit_test(&state.tracker, *test).await?,
        }
    }
    let outcomes = state.tracker.record_test_events(events).await?;
    let machines: std::collections::BTreeSet<MachineId> = outcomes
        .iter()
        .flatten()
        .map(|recorded| recorded.receipt.machine_id)
        .collect();
    for machine in machines {
        state.tracker.note_backlog(machine, backlog);
    }
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let result = match outcome {
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
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Page)]
pub(crate) struct PageJson<T> {
    /// This page's items.
    items: Vec<T>,
    /// This page, from 1.
    page: u32,
    /// Items per page.
    page_size: u32,
    /// Items on all pages.
    total: u64,
    /// Pages in all (at least 1).
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

/// Only machines with this liveness.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LivenessQuery {
    /// `online`, `quiet` or `offline`: only the machines judged so, e.g. for a wall screen
    /// of rigs that need someone.
    liveness: Option<String>,
    /// `name` (default) or `liveness`: offline machines first, then quiet, then online, each
    /// group by name.
    sort: Option<String>,
}

/// Lists machines
///
/// Every machine with its live status, liveness and latest run, paginated; with `liveness`,
/// only the machines judged so.
#[utoipa::path(
    get,
    operation_id = "v1_machines",
    path = "/api/v1/machines",
    tag = READ_TAG,
    params(PageQuery, LivenessQuery),
    responses(
        (status = 200, description = "A page of machines.", body = PageJson<MachineSummary>),
        (status = 400, description = "`page` or `page_size` is not a whole number in range, `liveness` is not `online`, `quiet` or `offline`, or `sort` is not `name` or `liveness` (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_page())),
        (status = 404, description = "The page is past the last one (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("page 3"))),
    )
)]
async fn machines(
    State(state): State<AppState>,
    Pagination(page): Pagination,
    Query(filter): Query<LivenessQuery>,
) -> Result<Json<PageJson<MachineSummary>>, ApiError> {
    let by_liveness = crate::extract::parse_sort(filter.sort.as_deref())?;
    let machines = match crate::extract::parse_liveness(filter.liveness.as_deref())? {
        Some(liveness) => state.tracker.machines_by_liveness(liveness, page).await?,
        None if by_liveness => state.tracker.machines_least_alive_first(page).await?,
        None => state.tracker.machines(page).await?,
    };
    Ok(Json(machines.into()))
}

/// Shows a machine
///
/// The machine with its live status and latest run, and `backlog` while its runner replays
/// events its spool kept during an outage.
#[utoipa::path(
    get,
    operation_id = "v1_machine",
    path = "/api/v1/machines/{id}",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The machine's id.")),
    responses(
        (status = 200, description = "The machine.", body = MachineSummary),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such machine (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("machine 99"))),
    )
)]
async fn machine(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MachineSummary>, ApiError> {
    let id = MachineId(parse_id("machine", &id)?);
    Ok(Json(state.tracker.machine(id).await?))
}

/// Lists a machine's runs
///
/// The machine's runs, newest first, paginated.
#[utoipa::path(
    get,
    operation_id = "v1_machine_runs",
    path = "/api/v1/machines/{id}/runs",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The machine's id."), PageQuery),
    responses(
        (status = 200, description = "A page of runs.", body = PageJson<RunSummary>),
        (status = 400, description = "The id is not a number, or `page`/`page_size` is not a whole number in range (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such machine, or the page is past the last one (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("machine 99"))),
    )
)]
async fn machine_runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Pagination(page): Pagination,
) -> Result<Json<PageJson<RunSummary>>, ApiError> {
    let id = MachineId(parse_id("machine", &id)?);
    Ok(Json(state.tracker.runs(id, page).await?.into()))
}

/// Shows a run
///
/// The run in full (without scripts): header, counts, and every scenario with its tests.
#[utoipa::path(
    get,
    operation_id = "v1_run",
    path = "/api/v1/runs/{id}",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run.", body = RunDetail),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such run (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("run 99"))),
    )
)]
async fn run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let id = RunId(parse_id("run", &id)?);
    Ok(Json(state.tracker.run(id).await?))
}

/// Estimates when a run ends
///
/// Expected time left and end, progress by expected time, and the running test against its
/// usual duration. Estimates come from each test's median duration over its last 20 results
/// on this machine (else across machines); tests with no history take this run's own pace so
/// far, and the answer says it is `rough`. A finished run has 0 left.
#[utoipa::path(
    get,
    operation_id = "v1_run_eta",
    path = "/api/v1/runs/{id}/eta",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The estimate.", body = RunEta),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such run (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("run 99"))),
    )
)]
async fn run_eta(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunEta>, ApiError> {
    let id = RunId(parse_id("run", &id)?);
    Ok(Json(state.tracker.eta(id).await?))
}

/// Shows a run's master scenario
///
/// The master scenario's file, script, status and timestamps.
#[utoipa::path(
    get,
    operation_id = "v1_master_scenario",
    path = "/api/v1/runs/{id}/master_scenario",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The master scenario.", body = ItemDetail),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such run (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("run 99"))),
    )
)]
async fn master_scenario(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemDetail>, ApiError> {
    let id = RunId(parse_id("run", &id)?);
    Ok(Json(state.tracker.item(ItemRef::MasterScenario(id)).await?))
}

/// Shows a scenario
///
/// The scenario's file, script, status and timestamps.
#[utoipa::path(
    get,
    operation_id = "v1_scenario",
    path = "/api/v1/scenarios/{id}",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The scenario's id.")),
    responses(
        (status = 200, description = "The scenario.", body = ItemDetail),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such scenario (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("scenario 99"))),
    )
)]
async fn scenario(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemDetail>, ApiError> {
    let id = ScenarioId(parse_id("scenario", &id)?);
    Ok(Json(state.tracker.item(ItemRef::Scenario(id)).await?))
}

/// Shows a test
///
/// The test's file, script, status and timestamps.
#[utoipa::path(
    get,
    operation_id = "v1_test",
    path = "/api/v1/tests/{id}",
    tag = READ_TAG,
    params(("id" = i64, Path, description = "The test's id.")),
    responses(
        (status = 200, description = "The test.", body = ItemDetail),
        (status = 400, description = "The id is not a number (`invalid_input`).", body = ErrorEnvelope, example = json!(examples::bad_id())),
        (status = 404, description = "No such test (`not_found`).", body = ErrorEnvelope, example = json!(examples::not_found("test 99"))),
    )
)]
async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ItemDetail>, ApiError> {
    let id = TestId(parse_id("test", &id)?);
    Ok(Json(state.tracker.item(ItemRef::Test(id)).await?))
}
