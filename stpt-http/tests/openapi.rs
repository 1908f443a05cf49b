//! `/openapi.json` and `/docs/`: the document lists every route, pins the wire format, and
//! matches what the endpoints really answer; the docs page renders it offline.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use stpt_core::{Clock, InProcessBus, Tracker};
use stpt_http::HttpConfig;
use stpt_store_memory::MemoryStore;
use tower::ServiceExt;

const PLAN: &str = include_str!("../../stpt-core/fixtures/plan-python-runner.json");
const EVENTS: &str = include_str!("../../stpt-core/fixtures/events-python-runner.json");

/// Every route of the JSON API and the docs, as the other tests exercise them (method and
/// documented path; the seed's paths are served without the trailing slash too).
const ROUTES: [(&str, &str); 32] = [
    ("get", "/api/v1/runs"),
    ("get", "/api/v1/runs/{id}/diff"),
    ("get", "/api/v1/runs/{id}/flaky"),
    ("get", "/api/v1/runs/{id}/export"),
    ("get", "/api/v1/test-identities"),
    ("get", "/api/v1/test-identities/{key}/history"),
    ("get", "/api/v1/flaky"),
    ("get", "/api/v1/matrix"),
    ("post", "/tm_api/dry_run/"),
    ("post", "/tm_api/test_start/"),
    ("post", "/tm_api/test_stop/"),
    ("get", "/tm_api/machines/"),
    ("get", "/tm_api/machine_dry_run_datas/{machine_id}/"),
    ("get", "/tm_api/machine_last_data/{machine_id}/"),
    ("get", "/tm_api/test/{id}/"),
    ("get", "/tm_api/scenario/{id}/"),
    ("get", "/tm_api/master_scenario/{id}/"),
    ("post", "/api/v1/plans"),
    ("post", "/api/v1/tests/{id}/start"),
    ("post", "/api/v1/tests/{id}/stop"),
    ("post", "/api/v1/events"),
    ("post", "/api/v1/imports/junit"),
    ("get", "/api/v1/machines"),
    ("get", "/api/v1/machines/{id}"),
    ("get", "/api/v1/machines/{id}/runs"),
    ("get", "/api/v1/runs/{id}"),
    ("get", "/api/v1/runs/{id}/eta"),
    ("get", "/api/v1/runs/{id}/master_scenario"),
    ("get", "/api/v1/scenarios/{id}"),
    ("get", "/api/v1/tests/{id}"),
    ("get", "/openapi.json"),
    ("get", "/docs/"),
];

#[derive(Debug)]
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap()
    }
}

fn tracker() -> Tracker {
    Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()))
        .with_clock(Arc::new(FixedClock))
}

fn app() -> Router {
    support::open_router(tracker(), HttpConfig::default())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, bytes.to_vec())
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let (status, _, bytes) = send(app, request.body(body).unwrap()).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get_text(app: &Router, uri: &str) -> (StatusCode, String, String) {
    let (status, content_type, bytes) =
        send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (status, content_type, String::from_utf8(bytes).unwrap())
}

async fn document(app: &Router) -> Value {
    let (status, content_type, text) = get_text(app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    serde_json::from_str(&text).unwrap()
}

fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                found.push((method.clone(), path.clone(), operation));
            }
        }
    }
    found
}

#[tokio::test]
async fn the_document_is_openapi_3_and_lists_every_route() {
    let app = app();
    let document = document(&app).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        document["openapi"]
    );
    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    // The JSON-only router serves the same document without the page it does not serve.
    let api_document = self::document(&api_app()).await;
    let api_paths: BTreeSet<&String> = api_document["paths"].as_object().unwrap().keys().collect();
    assert!(
        !api_paths.iter().any(|path| path.starts_with("/docs")),
        "{api_paths:?}"
    );
    let mut without_docs = document.clone();
    without_docs["paths"]
        .as_object_mut()
        .unwrap()
        .remove("/docs/");
    assert_eq!(api_document, without_docs);
    // ... and the function hosts call returns the JSON API's.
    assert_eq!(
        serde_json::to_value(stpt_http::openapi()).unwrap(),
        api_document
    );
}

/// The JSON API alone.
fn api_app() -> Router {
    stpt_http::api_router(
        tracker(),
        &HttpConfig::default().with_ingest_access(stpt_http::IngestAccess::open()),
    )
}

#[tokio::test]
async fn every_documented_operation_is_served_by_the_router_documenting_it() {
    for app in [app(), api_app()] {
        every_documented_operation_is_served(&app).await;
    }
}

async fn every_documented_operation_is_served(app: &Router) {
    let document = document(app).await;
    for (method, path, _) in operations(&document) {
        let concrete = path.replace("{machine_id}", "1").replace("{id}", "1");
        let mut variants = vec![concrete.clone()];
        if path.starts_with("/tm_api/") || path == "/docs/" {
            variants.push(concrete.trim_end_matches('/').to_owned());
        }
        for uri in variants {
            let body = (method == "post").then(|| json!({}));
            let (status, answer) = call(app, &method.to_uppercase(), &uri, body.as_ref()).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            // An unrouted path is a bare 404 (the routers have no fallback) or stpt's
            // fallback's "no such endpoint"; a routed one that finds nothing names what.
            // The seed's read paths answer a missing item with the seed's own body.
            assert!(
                status != StatusCode::NOT_FOUND
                    || (answer["error"]["code"] == "not_found"
                        && answer["error"]["message"] != "no such endpoint")
                    || answer == json!({"detail": "Not found."}),
                "{method} {uri} is documented but not routed: {answer}"
            );
        }
    }
}

#[tokio::test]
async fn errors_status_codes_and_headers_are_documented() {
    let document = document(&app()).await;
    let mut operation_ids = BTreeSet::new();
    for (method, path, operation) in operations(&document) {
        assert!(
            operation_ids.insert(operation["operationId"].as_str().unwrap().to_owned()),
            "duplicate operationId at {method} {path}"
        );
        assert!(
            operation["summary"].is_string(),
            "{method} {path} has no summary"
        );
        assert!(!operation["tags"].as_array().unwrap().is_empty());
        let responses = operation["responses"].as_object().unwrap();
        let codes: BTreeSet<&str> = responses.keys().map(String::as_str).collect();
        let is_api = path.starts_with("/tm_api/") || path.starts_with("/api/");
        // The seed's reads answer errors as the seed did: `{"detail": ...}`, never a 400.
        let is_seed_read = path.starts_with("/tm_api/") && method == "get";
        if is_api {
            let error_schema = if is_seed_read {
                "#/components/schemas/SeedError"
            } else {
                "#/components/schemas/ErrorEnvelope"
            };
            for (code, response) in responses.iter().filter(|(code, _)| code.starts_with('4')) {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"], error_schema,
                    "{method} {path} {code}"
                );
            }
            assert!(
                is_seed_read || codes.contains("400"),
                "{method} {path}: {codes:?}"
            );
        }
        if is_api && method == "post" {
            for code in ["400", "413", "415", "503"] {
                assert!(codes.contains(code), "{method} {path} lacks {code}");
            }
            assert!(
                responses["503"]["headers"]["Retry-After"].is_object(),
                "{method} {path}: 503 without Retry-After"
            );
            // The JUnit import is the one POST of an XML body.
            let media = if path == "/api/v1/imports/junit" {
                "application/xml"
            } else {
                "application/json"
            };
            assert!(operation["requestBody"]["content"][media]["schema"].is_object());
            // The seed's runner paths also take forms, as the seed did.
            if path.starts_with("/tm_api/") {
                for media in ["application/x-www-form-urlencoded", "multipart/form-data"] {
                    let content = &operation["requestBody"]["content"][media];
                    assert!(content["schema"].is_object(), "{path} {media}");
                    assert!(
                        content["example"]["machine_name"].is_string(),
                        "{path} {media}: {content}"
                    );
                }
                let media = &responses["415"]["description"];
                assert!(
                    media.as_str().unwrap().contains("multipart/form-data"),
                    "{path}: {media}"
                );
            }
        }
        // Lists that are never "not found": an empty list answers when nothing matches.
        let unpaged_list = ["/api/v1/flaky", "/api/v1/matrix"].contains(&path.as_str());
        if is_api && method == "get" {
            assert!(
                codes.contains("200") && (codes.contains("404") || unpaged_list),
                "{method} {path}"
            );
        }
        let headers: Vec<&str> = operation["parameters"]
            .as_array()
            .map(|params| {
                params
                    .iter()
                    .filter(|p| p["in"] == "header")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        // Runner writes take an `Idempotency-Key`; those a spool replays also say how much
        // of its backlog is left.
        let expected: &[&str] = match path.as_str() {
            "/api/v1/plans" | "/api/v1/tests/{id}/start" | "/api/v1/tests/{id}/stop" => {
                &["Idempotency-Key", "Stpt-Backlog"]
            }
            "/api/v1/imports/junit" => &["Idempotency-Key"],
            "/api/v1/events" => &["Stpt-Backlog"],
            _ => &[],
        };
        assert_eq!(headers, expected, "{method} {path}");
    }
    let expected: [(&str, &str, &[&str]); 6] = [
        (
            "post",
            "/tm_api/dry_run/",
            &["201", "400", "401", "403", "413", "415", "503"],
        ),
        (
            "post",
            "/tm_api/test_start/",
            &["202", "400", "401", "403", "409", "413", "415", "503"],
        ),
        (
            "post",
            "/api/v1/plans",
            &[
                "200", "201", "400", "401", "403", "413", "415", "422", "503",
            ],
        ),
        (
            "post",
            "/api/v1/tests/{id}/stop",
            &[
                "200", "202", "400", "401", "403", "404", "409", "413", "415", "422", "503",
            ],
        ),
        (
            "post",
            "/api/v1/events",
            &["200", "400", "401", "403", "413", "415", "503"],
        ),
        (
            "get",
            "/tm_api/machine_last_data/{machine_id}/",
            &["200", "404"],
        ),
    ];
    for (method, path, codes) in expected {
        let documented: BTreeSet<&str> = document["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            documented,
            codes.iter().copied().collect(),
            "{method} {path}"
        );
    }
    let error = &document["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], json!(["code", "message"]));
    for field in ["code", "message", "field", "no_match"] {
        assert!(error["properties"][field].is_object(), "ErrorBody.{field}");
    }
}

#[tokio::test]
async fn the_document_is_pinned() {
    let document = document(&app()).await;
    insta::assert_json_snapshot!("openapi", document, {".info.version" => "[version]"});
}

#[tokio::test]
async fn a_nested_router_names_its_prefix() {
    let app = Router::new().nest("/stpt", app());
    let document = document_at(&app, "/stpt/openapi.json").await;
    assert_eq!(document["servers"], json!([{"url": "/stpt"}]));
    let (status, _, html) = get_text(&app, "/stpt/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"href="/stpt/openapi.json""#), "{html}");
    assert!(html.contains(r#"href="/stpt/static/stpt.css?v="#));
}

async fn document_at(app: &Router, uri: &str) -> Value {
    let (status, _, text) = get_text(app, uri).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn the_docs_page_renders_every_path_offline() {
    let app = app();
    let document = document(&app).await;
    for uri in ["/docs/", "/docs"] {
        let (status, content_type, html) = get_text(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(content_type.starts_with("text/html"), "{content_type}");
        for (method, path, operation) in operations(&document) {
            assert!(
                html.contains(&format!("<code class=\"path\">{path}</code>")),
                "{path} missing"
            );
            assert!(html.contains(&method.to_uppercase()));
            let summary = operation["summary"]
                .as_str()
                .unwrap()
                .replace('\'', "&#x27;");
            assert!(html.contains(&summary), "{summary}");
        }
        for schema in document["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
        {
            assert!(
                html.contains(&format!("<h3><code>{schema}</code>")),
                "{schema}"
            );
        }
        assert!(html.contains("Idempotency-Key"));
        assert!(html.contains("ErrorEnvelope"));
        // The seed's runner paths say they also take forms.
        assert!(
            html.contains("Also accepted as <code>application/x-www-form-urlencoded</code>, <code>multipart/form-data</code>."),
            "forms are documented"
        );
        assert!(html.contains("413"));
        // Nothing from another host: no absolute URL, no protocol-relative one.
        for needle in ["http://", "https://", "src=\"//", "href=\"//"] {
            assert!(!html.contains(needle), "{uri} contains {needle}");
        }
        assert!(!html.contains("<script>"), "no inline script");
        // Example JSON is escaped text, not markup.
        assert!(html.contains("&quot;machine_name&quot;"));
    }
}

// --- Structural validation of bodies against the documented schemas ----------------------

/// Checks `value` against `schema` (types, required fields, properties, items, enums,
/// `oneOf`, `$ref`s); returns the problems found, each with its path.
fn validate(document: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(target) = schema["$ref"].as_str() {
        let name = target.rsplit('/').next().unwrap();
        let resolved = &document["components"]["schemas"][name];
        assert!(resolved.is_object(), "dangling $ref {target}");
        return validate(document, resolved, value, at, problems);
    }
    if let Some(variants) = schema["oneOf"].as_array() {
        let matching = variants
            .iter()
            .filter(|variant| {
                let mut inner = Vec::new();
                validate(document, variant, value, at, &mut inner);
                inner.is_empty()
            })
            .count();
        if matching != 1 {
            problems.push(format!(
                "{at}: matches {matching} variants of oneOf: {value}"
            ));
        }
        return;
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            validate(document, part, value, at, problems);
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(kind) => vec![kind.as_str()],
        Value::Array(kinds) => kinds.iter().map(|k| k.as_str().unwrap()).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !fits {
            problems.push(format!("{at}: expected {types:?}, got {value}"));
            return;
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(value) {
            problems.push(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    if let Value::Object(object) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap();
            if !object.contains_key(name) {
                problems.push(format!("{at}: missing required `{name}`"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => {
                    validate(document, property, field, &format!("{at}.{name}"), problems);
                }
                None if properties.is_some() => {
                    problems.push(format!("{at}: `{name}` is not documented"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            validate(
                document,
                item_schema,
                item,
                &format!("{at}[{index}]"),
                problems,
            );
        }
    }
}

fn assert_valid(document: &Value, schema: &Value, value: &Value, what: &str) {
    let mut problems = Vec::new();
    validate(document, schema, value, "$", &mut problems);
    assert!(problems.is_empty(), "{what}: {problems:#?}\n{value}");
}

fn request_schema<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    let schema =
        &document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents no request body"
    );
    schema
}

#[tokio::test]
async fn fixtures_and_examples_match_the_documented_payloads() {
    let document = document(&app()).await;
    let plan: Value = serde_json::from_str(PLAN).unwrap();
    for path in ["/tm_api/dry_run/", "/api/v1/plans"] {
        assert_valid(
            &document,
            request_schema(&document, "post", path),
            &plan,
            PLAN,
        );
    }
    let plan_schema = &document["components"]["schemas"]["PlanPayload"];
    let mut problems = Vec::new();
    validate(
        &document,
        plan_schema,
        &json!({"machine_name": "rig"}),
        "$",
        &mut problems,
    );
    assert!(
        problems.iter().any(|p| p.contains("timestamp"))
            && problems.iter().any(|p| p.contains("master_scenario")),
        "a plan without its required fields must not validate: {problems:?}"
    );
    for event in serde_json::from_str::<Vec<Value>>(EVENTS).unwrap() {
        let endpoint = event["endpoint"].as_str().unwrap();
        assert_valid(
            &document,
            request_schema(&document, "post", endpoint),
            &event["body"],
            endpoint,
        );
    }
    // Every example in the document fits its own schema.
    for (method, path, operation) in operations(&document) {
        if let Some(content) = operation["requestBody"]["content"]["application/json"].as_object() {
            if let Some(example) = content.get("example") {
                assert_valid(
                    &document,
                    &content["schema"],
                    example,
                    &format!("{method} {path} example"),
                );
            }
        }
        for (code, response) in operation["responses"].as_object().unwrap() {
            let content = &response["content"]["application/json"];
            if content["example"].is_object() {
                assert_valid(
                    &document,
                    &content["schema"],
                    &content["example"],
                    &format!("{method} {path} {code} example"),
                );
            }
        }
    }
}

/// Calls `uri` and checks the answer against the documented response of `path` for the
/// status it got (which must be documented).
async fn checked(
    app: &Router,
    document: &Value,
    method: &str,
    path: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, answer) = call(app, &method.to_uppercase(), uri, body.as_ref()).await;
    let response = &document["paths"][path][method]["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {uri} answered undocumented {status}: {answer}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert_valid(
        document,
        schema,
        &answer,
        &format!("{method} {uri} {status}"),
    );
    (status, answer)
}

#[tokio::test]
async fn real_answers_match_the_documented_responses() {
    let app = app();
    let document = document(&app).await;
    let doc = &document;
    let plan: Value = serde_json::from_str(PLAN).unwrap();

    // Seed: a plan, a replay of the fixture's events, every read.
    let (status, _) = checked(
        &app,
        doc,
        "post",
        "/tm_api/dry_run/",
        "/tm_api/dry_run/",
        Some(plan.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let events = serde_json::from_str::<Vec<Value>>(EVENTS).unwrap();
    for event in events.iter().take(6) {
        let endpoint = event["endpoint"].as_str().unwrap();
        let (status, _) = checked(
            &app,
            doc,
            "post",
            endpoint,
            endpoint,
            Some(event["body"].clone()),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, _) = checked(
        &app,
        doc,
        "post",
        "/tm_api/test_start/",
        "/tm_api/test_start/",
        Some(events[0]["body"].clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the first test is not waiting any more"
    );
    for (path, uri) in [
        ("/tm_api/machines/", "/tm_api/machines/"),
        (
            "/tm_api/machine_dry_run_datas/{machine_id}/",
            "/tm_api/machine_dry_run_datas/1/",
        ),
        (
            "/tm_api/machine_last_data/{machine_id}/",
            "/tm_api/machine_last_data/1/",
        ),
        ("/tm_api/test/{id}/", "/tm_api/test/1/"),
        ("/tm_api/scenario/{id}/", "/tm_api/scenario/1/"),
        (
            "/tm_api/master_scenario/{id}/",
            "/tm_api/master_scenario/1/",
        ),
    ] {
        let (status, _) = checked(&app, doc, "get", path, uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    for (path, uri, expected) in [
        (
            "/tm_api/machines/",
            "/tm_api/machines/?page=9",
            StatusCode::NOT_FOUND,
        ),
        (
            "/tm_api/machines/",
            "/tm_api/machines/?page=x",
            StatusCode::NOT_FOUND,
        ),
        (
            "/tm_api/test/{id}/",
            "/tm_api/test/abc/",
            StatusCode::NOT_FOUND,
        ),
        (
            "/tm_api/machine_last_data/{machine_id}/",
            "/tm_api/machine_last_data/7/",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, _) = checked(&app, doc, "get", path, uri, None).await;
        assert_eq!(status, expected, "{uri}");
    }
    let (status, _) = checked(
        &app,
        doc,
        "post",
        "/tm_api/dry_run/",
        "/tm_api/dry_run/",
        Some(json!({"machine_name": " "})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // v1: a plan (and its replay), events by id, a batch, every read.
    let (status, created) = checked(
        &app,
        doc,
        "post",
        "/api/v1/plans",
        "/api/v1/plans",
        Some(plan.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let test = created["scenarios"][0]["test_ids"][0].as_i64().unwrap();
    let start = format!("/api/v1/tests/{test}/start");
    let stop = format!("/api/v1/tests/{test}/stop");
    let (status, _) = checked(
        &app,
        doc,
        "post",
        "/api/v1/tests/{id}/start",
        &start,
        Some(json!({"timestamp": "2026-11-24 13:05:00"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = checked(
        &app,
        doc,
        "post",
        "/api/v1/tests/{id}/start",
        &start,
        Some(json!({"timestamp": "2026-11-24 13:05:00"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = checked(
        &app,
        doc,
        "post",
        "/api/v1/tests/{id}/start",
        "/api/v1/tests/999/start",
        Some(json!({"timestamp": "2026-11-24 13:05:00"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = checked(
        &app,
        doc,
        "post",
        "/api/v1/tests/{id}/stop",
        &stop,
        Some(json!({"status": "passed", "timestamp": "2026-11-24T13:06:00Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let second = created["scenarios"][0]["test_ids"][1].clone();
    let batch = json!({"events": [
        {"type": "test_start", "test_id": second, "timestamp": "2026-11-24 13:07:00", "event_id": "b1"},
        {"type": "test_start", "test_id": second, "timestamp": "2026-11-24 13:07:00", "event_id": "b1"},
        {"type": "test_stop", "test_id": test, "status": "passed", "timestamp": "2026-11-24 13:08:00"},
    ]});
    let (status, results) = checked(
        &app,
        doc,
        "post",
        "/api/v1/events",
        "/api/v1/events",
        Some(batch),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let outcomes: Vec<&str> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["applied", "replayed", "rejected"]);
    let (status, _) = checked(&app, doc, "post", "/api/v1/events", "/api/v1/events", Some(json!({"events": [{"type": "test_stop", "test_id": 1, "timestamp": "2026-11-24 13:08:00"}]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for (path, uri) in [
        ("/api/v1/machines", "/api/v1/machines".to_owned()),
        ("/api/v1/machines/{id}", "/api/v1/machines/1".to_owned()),
        (
            "/api/v1/machines/{id}/runs",
            "/api/v1/machines/1/runs".to_owned(),
        ),
        ("/api/v1/runs/{id}", "/api/v1/runs/2".to_owned()),
        ("/api/v1/runs/{id}/eta", "/api/v1/runs/2/eta".to_owned()),
        (
            "/api/v1/runs/{id}/master_scenario",
            "/api/v1/runs/2/master_scenario".to_owned(),
        ),
        ("/api/v1/scenarios/{id}", "/api/v1/scenarios/1".to_owned()),
        ("/api/v1/tests/{id}", format!("/api/v1/tests/{test}")),
    ] {
        let (status, _) = checked(&app, doc, "get", path, &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    let (status, _) = checked(
        &app,
        doc,
        "get",
        "/api/v1/runs/{id}",
        "/api/v1/runs/99",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Content type and size limits.
    let small = stpt_http::router(
        tracker(),
        &HttpConfig::default()
            .with_body_limit(64)
            .with_ingest_access(stpt_http::IngestAccess::open()),
    );
    let (status, answer) = call(&small, "POST", "/api/v1/plans", Some(&plan)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_valid(
        doc,
        &document["paths"]["/api/v1/plans"]["post"]["responses"]["413"]["content"]["application/json"]
            ["schema"],
        &answer,
        "413",
    );
    let form = Request::post("/tm_api/dry_run/")
        .header("content-type", "text/plain")
        .body(Body::from(PLAN))
        .unwrap();
    let (status, _, bytes) = send(&app, form).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_valid(
        doc,
        &document["paths"]["/tm_api/dry_run/"]["post"]["responses"]["415"]["content"]["application/json"]
            ["schema"],
        &answer,
        "415",
    );
}
