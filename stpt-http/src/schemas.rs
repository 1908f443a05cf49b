//! The schemas and examples the handler modules share in their OpenAPI descriptions. This
//! module depends on no handler module; the document is assembled in `openapi`.

use serde::Serialize;
use stpt_core::{MachineId, RunId, Status, TestId};
use utoipa::{IntoParams, ToSchema};

/// `?page=&page_size=` of the paginated endpoints.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only documents the query; `Pagination` parses it.
pub(crate) struct PageQuery {
    /// The page, from 1; past the last page is a `404`.
    #[param(minimum = 1, default = 1, nullable = false)]
    page: Option<u32>,
    /// Items per page, 1 to 100.
    #[param(minimum = 1, maximum = 100, default = 10, nullable = false)]
    page_size: Option<u32>,
}

/// What applying a test event did: an `EventReceipt` and whether it was a retry.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // Only documents `Recorded<EventReceipt>`, which stpt-core serialises.
pub(crate) struct EventRecorded {
    /// The machine.
    machine_id: MachineId,
    /// The run.
    run_id: RunId,
    /// The test the event matched.
    test_id: TestId,
    /// The test's new status.
    status: Status,
    /// The run's new aggregated status.
    run_status: Status,
    /// `true` when the event's key was applied before: nothing was applied now and the other
    /// fields are the first time's.
    replayed: bool,
}

/// What applying a test event did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventReceipt)]
#[allow(dead_code)] // Only documents `EventReceipt`, which stpt-core serialises.
pub(crate) struct EventReceiptSchema {
    /// The machine.
    machine_id: MachineId,
    /// The run.
    run_id: RunId,
    /// The test the event matched.
    test_id: TestId,
    /// The test's new status.
    status: Status,
    /// The run's new aggregated status.
    run_status: Status,
}

/// Examples shown in the document.
pub(crate) mod examples {
    use serde_json::{Value, json};

    /// A small plan as a Python runner sends it: naive timestamps, `null` lists and scripts.
    pub(crate) fn plan() -> Value {
        json!({
            "machine_name": "rig-7",
            "timestamp": "2026-11-24 13:01:57.461401",
            "master_scenario": {
                "file_path": "/rig/test_cases/scenarios",
                "file_name": "scenario_master.py",
                "script": "run_test_scenario('scenario_01_lamp.py')\n",
                "scenarios": [
                    {
                        "file_path": "/rig/test_cases/scenarios",
                        "file_name": "scenario_01_lamp.py",
                        "script": null,
                        "tests": [
                            {"file_path": "/rig/test_cases/01_lamp", "file_name": "01_01_test_lamp.py", "script": "assert lamp.on()\n"},
                            {"file_path": "/rig/test_cases/01_lamp", "file_name": "01_02_test_lamp.py", "script": ""}
                        ]
                    },
                    {"file_path": "/rig/test_cases/scenarios", "file_name": "scenario_02_empty.py", "script": null, "tests": null}
                ]
            }
        })
    }

    /// A seed `test_start`.
    pub(crate) fn test_start() -> Value {
        json!({
            "machine_name": "rig-7",
            "file_path": "/rig/test_cases/01_lamp",
            "file_name": "01_01_test_lamp.py",
            "timestamp_start": "2026-11-24 13:02:01.000001"
        })
    }

    /// A seed `test_stop`.
    pub(crate) fn test_stop() -> Value {
        json!({
            "machine_name": "rig-7",
            "file_path": "/rig/test_cases/01_lamp",
            "file_name": "01_01_test_lamp.py",
            "status": "passed",
            "timestamp_stop": "2026-11-24 13:02:04.250000"
        })
    }

    /// A batch addressing tests both ways.
    pub(crate) fn batch() -> Value {
        json!({"events": [
            {"type": "test_start", "test_id": 3, "timestamp": "2026-11-24 13:02:01", "event_id": "rig-7/42/start-3"},
            {"type": "test_stop", "test_id": 3, "status": "passed", "timestamp": "2026-11-24 13:02:04", "event_id": "rig-7/42/stop-3"},
            {"type": "test_start", "machine_name": "rig-7", "file_path": "/rig/test_cases/01_lamp",
             "file_name": "01_02_test_lamp.py", "timestamp": "2026-11-24T13:02:05Z"}
        ]})
    }

    fn error(code: &str, message: &str) -> Value {
        json!({"error": {"code": code, "message": message}})
    }

    /// A `400 invalid_input`.
    pub(crate) fn invalid_input() -> Value {
        json!({"error": {"code": "invalid_input", "message": "`machine_name` must not be blank", "field": "machine_name"}})
    }

    /// A `400` about the batch's third event.
    pub(crate) fn bad_batch() -> Value {
        json!({"error": {"code": "invalid_input", "message": "a test_stop needs a status", "field": "events[2].status"}})
    }

    /// A `400` about pagination.
    pub(crate) fn bad_page() -> Value {
        json!({"error": {"code": "invalid_input", "message": "`page` must be a positive whole number, got `abc`", "field": "page"}})
    }

    /// A `400` about an id in the path.
    pub(crate) fn bad_id() -> Value {
        json!({"error": {"code": "invalid_input", "message": "`abc` is not a valid test id", "field": "test"}})
    }

    /// A `404` about `what` (e.g. `machine 99`).
    pub(crate) fn not_found(what: &str) -> Value {
        error("not_found", &format!("{what} not found"))
    }

    /// A `409 no_match` of a seed event.
    pub(crate) fn no_match() -> Value {
        json!({"error": {"code": "no_match",
            "message": "event matched nothing: no waiting test `01_01_test_lamp.py` at `/rig/test_cases/01_lamp` in the ongoing run",
            "no_match": {"reason": "no_waiting_test", "file_path": "/rig/test_cases/01_lamp", "file_name": "01_01_test_lamp.py"}}})
    }

    /// A `409 no_match` of an event by id.
    pub(crate) fn no_match_by_id() -> Value {
        json!({"error": {"code": "no_match",
            "message": "event matched nothing: test 3 is not in its machine's ongoing run",
            "no_match": {"reason": "test_not_in_ongoing_run", "test_id": 3}}})
    }

    /// A `413`.
    pub(crate) fn too_large() -> Value {
        error(
            "body_too_large",
            "the request body is larger than this server accepts",
        )
    }

    /// A `503 busy`.
    pub(crate) fn busy() -> Value {
        error(
            "busy",
            "a concurrent update got in the way and nothing was changed; retry: database is locked",
        )
    }

    /// A `422 idempotency_key_reused`.
    pub(crate) fn key_reused() -> Value {
        error(
            "idempotency_key_reused",
            "event id `rig-7/run-42/test-3/start` was already used for a different event on this machine; nothing was changed. Do not retry with this id: give each event its own id",
        )
    }

    /// A `415` on the seed's runner paths, which also take forms.
    pub(crate) fn seed_media_type() -> Value {
        error(
            "unsupported_media_type",
            "expected `Content-Type: application/json`, `application/x-www-form-urlencoded` or `multipart/form-data`, got `text/plain`",
        )
    }

    /// A `415`.
    pub(crate) fn media_type() -> Value {
        error(
            "unsupported_media_type",
            "expected `Content-Type: application/json`, got `text/plain`",
        )
    }
}
