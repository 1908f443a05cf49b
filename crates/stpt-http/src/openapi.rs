//! The OpenAPI 3.1 document of the JSON API, generated from the handlers' `#[utoipa::path]`
//! attributes and the types' `ToSchema` derives, and served at `/openapi.json`.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use std::sync::LazyLock;
use stpt_core::{MachineId, RunId, Status, TestId};
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::server::Server;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::extract::MountPrefix;

pub(crate) use crate::error::ErrorEnvelope;

/// The root of the document: its info, tags, and the routes of this module.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "stpt",
        description = "System Test Progress Tracking: runners on test rigs post their plans and \
            test events as JSON; stpt stores the runs and shows them live.\n\n\
            The seed's protocol lives under `/tm_api/` unchanged, so existing runners keep \
            working; `/api/v1/` adds ids in the plan's answer, events addressed by id, \
            idempotent retries (`Idempotency-Key`, `event_id`) and batches.\n\n\
            Request bodies are JSON (`Content-Type: application/json`), at most 8 MiB by \
            default. Every error answers `{\"error\": {\"code\", \"message\", ...}}` with a \
            stable `code`. Runner timestamps may be naive (`2018-12-30 13:01:57.461401`, taken \
            as UTC) or RFC 3339; timestamps stpt writes are RFC 3339 in UTC, except where the \
            seed's display format `dd-mm-YYYY  HH:MM:SS` is noted.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(openapi_json),
    tags(
        (name = "seed runner protocol", description = "What the seed's runners post: a plan, then a start and a stop per test. Paths work with and without the trailing slash."),
        (name = "seed read API", description = "The seed's read endpoints, paths and shapes unchanged. Paths work with and without the trailing slash."),
        (name = "v1 runner API", description = "The versioned write API: plans answer every id, events address tests by id, retries are safe, batches apply many events in order."),
        (name = "v1 read API", description = "The versioned read API: the stored model as it is, RFC 3339 timestamps, ids everywhere."),
        (name = "documentation", description = "This document and its human-readable page."),
    )
)]
struct RootApi;

/// The whole document: root, `/tm_api/`, `/api/v1/`, and the docs page.
static DOCUMENT: LazyLock<Document> = LazyLock::new(|| {
    let mut document = RootApi::openapi();
    document.merge(crate::seed::SeedApi::openapi());
    document.merge(crate::v1::V1Api::openapi());
    document.merge(crate::pages::DocsApi::openapi());
    // The version is the crate's; utoipa would take it from the crate that derives.
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    require_runner_token(&mut document);
    document
});

/// Every POST is a runner event: it takes a runner token (unless the operator opened
/// ingestion to the runner's network) and can answer 401 and 403.
fn require_runner_token(document: &mut Document) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    const SCHEME: &str = "runner_token";
    document
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A runner token, created by an admin (admin page or `stpt-server token create`). \
                         Not needed from networks the operator opened with `--open-ingest`.",
                    ))
                    .build(),
            ),
        );
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                    .build(),
            )
            .build()
    };
    for item in document.paths.paths.values_mut() {
        if let Some(operation) = item.post.as_mut() {
            operation.security = Some(vec![
                SecurityRequirement::new(SCHEME, Vec::<String>::new()),
                SecurityRequirement::default(),
            ]);
            operation.responses.responses.insert(
                "401".to_owned(),
                error("No runner token, or an unknown or revoked one, from a network not opened to tokenless runners (`unauthorized`). Nothing is changed.").into(),
            );
            operation.responses.responses.insert(
                "403".to_owned(),
                error("The runner token is bound to other machines (`forbidden`). Nothing is changed.").into(),
            );
        }
    }
}

/// The document serialised once.
static DOCUMENT_JSON: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string(&*DOCUMENT).unwrap_or_else(|_| "{}".to_owned()));

/// The OpenAPI document of every JSON endpoint of [`router`](crate::router) and
/// [`api_router`](crate::api_router), for hosts that merge it into their own.
pub fn openapi() -> Document {
    DOCUMENT.clone()
}

/// The document as [`openapi`] returns it, for the docs page.
pub(crate) fn document() -> &'static Document {
    &DOCUMENT
}

/// `GET /openapi.json`.
pub(crate) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The OpenAPI document
///
/// This document, OpenAPI 3.1 as JSON. Mounted under a prefix, its `servers` names the prefix.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "documentation",
    responses(
        (status = 200, description = "The OpenAPI document.", content_type = "application/json", body = Object),
    )
)]
async fn openapi_json(MountPrefix(prefix): MountPrefix) -> Response {
    let body = if prefix.is_empty() {
        DOCUMENT_JSON.clone()
    } else {
        let mut document = openapi();
        document.servers = Some(vec![Server::new(prefix)]);
        serde_json::to_string(&document).unwrap_or_else(|_| "{}".to_owned())
    };
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

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

    /// A `415`.
    pub(crate) fn media_type() -> Value {
        error(
            "unsupported_media_type",
            "expected `Content-Type: application/json`, got `text/plain`",
        )
    }
}
