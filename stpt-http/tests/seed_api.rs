//! The seed's `/tm_api/` through the router (oneshot) and over a real socket.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use stpt_core::{Clock, InProcessBus, Tracker};
use stpt_http::HttpConfig;
use stpt_store_memory::MemoryStore;
use tower::ServiceExt;

const PLAN: &str = include_str!("../../stpt-core/fixtures/plan-python-runner.json");
const EVENTS: &str = include_str!("../../stpt-core/fixtures/events-python-runner.json");

#[derive(Debug)]
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap()
    }
}

fn app_with(config: HttpConfig) -> Router {
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()))
        .with_clock(Arc::new(FixedClock));
    support::open_router(tracker, config)
}

fn app() -> Router {
    app_with(HttpConfig::default())
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    send(app, request).await
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

async fn replay(app: &Router, events: &[Value]) {
    for event in events {
        let (status, body) = call(
            app,
            "POST",
            event["endpoint"].as_str().unwrap(),
            Some(&event["body"].to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event}: {body}");
    }
}

#[tokio::test]
async fn python_runner_replay_and_every_read_shape() {
    let app = app();
    let (status, created) = call(&app, "POST", "/tm_api/dry_run/", Some(PLAN)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    insta::assert_json_snapshot!("plan_created", created);
    let events: Vec<Value> = serde_json::from_str(EVENTS).unwrap();
    replay(&app, &events[..15]).await;

    let (status, machines) = call(&app, "GET", "/tm_api/machines/", None).await;
    assert_eq!(status, StatusCode::OK);
    insta::assert_json_snapshot!("machines", machines);
    let (_, runs) = call(&app, "GET", "/tm_api/machine_dry_run_datas/1", None).await;
    insta::assert_json_snapshot!("machine_runs", runs);
    let (_, last) = call(&app, "GET", "/tm_api/machine_last_data/1/", None).await;
    insta::assert_json_snapshot!("machine_last_data", last);
    let (_, test) = call(&app, "GET", "/tm_api/test/1", None).await;
    insta::assert_json_snapshot!("test", test);
    let (_, scenario) = call(&app, "GET", "/tm_api/scenario/4", None).await;
    insta::assert_json_snapshot!("scenario", scenario);
    let (_, master) = call(&app, "GET", "/tm_api/master_scenario/1/", None).await;
    insta::assert_json_snapshot!("master_scenario", master);
    let stop = &events[15];
    assert_eq!(stop["endpoint"], "/tm_api/test_stop/");
    let (status, accepted) = call(
        &app,
        "POST",
        "/tm_api/test_stop/",
        Some(&stop["body"].to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    insta::assert_json_snapshot!("event_accepted", accepted);
}

#[tokio::test]
async fn paths_work_with_and_without_trailing_slash() {
    let app = app();
    let (status, _) = call(&app, "POST", "/tm_api/dry_run", Some(PLAN)).await;
    assert_eq!(status, StatusCode::CREATED);
    let events: Vec<Value> = serde_json::from_str(EVENTS).unwrap();
    let start = events[0]["body"].to_string();
    let (status, _) = call(&app, "POST", "/tm_api/test_start", Some(&start)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for uri in [
        "/tm_api/machines",
        "/tm_api/machines/",
        "/tm_api/machine_dry_run_datas/1",
        "/tm_api/machine_dry_run_datas/1/",
        "/tm_api/machine_last_data/1",
        "/tm_api/machine_last_data/1/",
        "/tm_api/test/1",
        "/tm_api/test/1/",
        "/tm_api/scenario/1",
        "/tm_api/scenario/1/",
        "/tm_api/master_scenario/1",
        "/tm_api/master_scenario/1/",
    ] {
        let (status, body) = call(&app, "GET", uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
}

#[tokio::test]
async fn unmatched_events_answer_409_and_change_nothing() {
    let app = app();
    let stop = json!({"machine_name": "ghost", "file_path": "/t", "file_name": "a.py",
        "status": "passed", "timestamp_stop": "2026-11-24 13:00:00"});
    let (status, body) = call(&app, "POST", "/tm_api/test_stop/", Some(&stop.to_string())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "no_match");
    assert_eq!(body["error"]["no_match"]["reason"], "unknown_machine");
    call(&app, "POST", "/tm_api/dry_run/", Some(PLAN)).await;
    let (_, before) = call(&app, "GET", "/tm_api/machine_last_data/1/", None).await;
    let unmatched = json!({"machine_name": "MACHINE #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py", "status": "failed", "timestamp_stop": "2026-11-24 13:00:00"});
    let (status, body) = call(
        &app,
        "POST",
        "/tm_api/test_stop/",
        Some(&unmatched.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["no_match"]["reason"], "no_running_test");
    let (_, after) = call(&app, "GET", "/tm_api/machine_last_data/1/", None).await;
    assert_eq!(before, after);
}

/// Every bad input is a 4xx with a JSON error, and nothing is stored.
#[tokio::test]
async fn bad_plans_are_rejected_and_store_nothing() {
    let app = app_with(HttpConfig::default().with_body_limit(64 * 1024));
    let plan: Value = serde_json::from_str(PLAN).unwrap();
    let mut cases: Vec<(String, String)> = vec![
        ("malformed".into(), "{\"machine_name\": ".into()),
        ("not an object".into(), "[1, 2]".into()),
        ("trailing garbage".into(), format!("{PLAN} x")),
        ("empty body".into(), String::new()),
    ];
    for field in ["machine_name", "timestamp", "master_scenario"] {
        let mut broken = plan.clone();
        broken.as_object_mut().unwrap().remove(field);
        cases.push((format!("missing {field}"), broken.to_string()));
    }
    for field in ["file_path", "file_name"] {
        let mut broken = plan.clone();
        broken["master_scenario"]
            .as_object_mut()
            .unwrap()
            .remove(field);
        cases.push((format!("missing master {field}"), broken.to_string()));
        let mut broken = plan.clone();
        broken["master_scenario"]["scenarios"][0]["tests"][1]
            .as_object_mut()
            .unwrap()
            .remove(field);
        cases.push((format!("missing test {field}"), broken.to_string()));
    }
    let wrong_types: [(&str, Value); 6] = [
        ("/machine_name", json!(5)),
        ("/timestamp", json!("yesterday")),
        ("/timestamp", json!(1_546_174_917)),
        ("/master_scenario/scenarios", json!("none")),
        ("/master_scenario/scenarios/0/tests/0/script", json!(["x"])),
        ("/master_scenario/file_name", json!(null)),
    ];
    for (pointer, value) in wrong_types {
        let mut broken = plan.clone();
        *broken.pointer_mut(pointer).unwrap() = value.clone();
        cases.push((format!("{pointer} = {value}"), broken.to_string()));
    }
    for (pointer, value) in [
        ("/machine_name", json!("   ")),
        ("/machine_name", json!("m".repeat(257))),
        (
            "/master_scenario/scenarios/1/tests/0/file_name",
            json!("n".repeat(257)),
        ),
        (
            "/master_scenario/scenarios/1/tests/0/file_path",
            json!("p".repeat(1025)),
        ),
    ] {
        let mut broken = plan.clone();
        *broken.pointer_mut(pointer).unwrap() = value;
        cases.push((format!("bad value at {pointer}"), broken.to_string()));
    }
    let mut huge = plan.clone();
    huge["master_scenario"]["script"] = json!("x".repeat(100 * 1024));
    cases.push(("over the body limit".into(), huge.to_string()));

    for (case, body) in &cases {
        let (status, error) = call(&app, "POST", "/tm_api/dry_run/", Some(body)).await;
        assert!(status.is_client_error(), "{case}: {status} {error}");
        assert!(error["error"]["code"].is_string(), "{case}: {error}");
        assert!(
            !error["error"]["message"].as_str().unwrap().is_empty(),
            "{case}"
        );
    }

    let invalid_utf8 = Request::post("/tm_api/dry_run/")
        .header("content-type", "application/json")
        .body(Body::from(vec![
            b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}',
        ]))
        .unwrap();
    let (status, _) = send(&app, invalid_utf8).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = Request::post("/tm_api/dry_run/")
        .header("content-type", "text/plain")
        .body(Body::from(PLAN))
        .unwrap();
    let (status, error) = send(&app, text).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error["error"]["code"], "unsupported_media_type");
    // JSON sent as a form (curl's `--data` without a content type) is told what to do.
    let json_as_form = Request::post("/tm_api/dry_run/")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(PLAN))
        .unwrap();
    let (status, error) = send(&app, json_as_form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "malformed_form");
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("Content-Type: application/json"),
        "{error}"
    );

    let (_, machines) = call(&app, "GET", "/tm_api/machines/", None).await;
    assert_eq!(machines["count"], 0, "nothing was stored");
}

#[tokio::test]
async fn bad_events_are_rejected() {
    let app = app();
    call(&app, "POST", "/tm_api/dry_run/", Some(PLAN)).await;
    let start = json!({"machine_name": "machine #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py", "timestamp_start": "2026-11-24 13:00:00"});
    let stop = json!({"machine_name": "machine #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py", "status": "passed", "timestamp_stop": "2026-11-24 13:00:01"});
    let mut cases = Vec::new();
    for (endpoint, body) in [
        ("/tm_api/test_start/", &start),
        ("/tm_api/test_stop/", &stop),
    ] {
        for field in body.as_object().unwrap().keys() {
            // A missing time is the receipt time, as the seed took it (see below).
            if !field.starts_with("timestamp") {
                let mut broken = body.clone();
                broken.as_object_mut().unwrap().remove(field);
                cases.push((endpoint, format!("missing {field}"), broken));
            }
            let mut broken = body.clone();
            broken[field] = json!({"nested": true});
            cases.push((endpoint, format!("{field} as object"), broken));
        }
        let mut blank = body.clone();
        blank["machine_name"] = json!("");
        cases.push((endpoint, "blank machine".into(), blank));
    }
    for status in ["running", "waiting", "PASSED", "done", ""] {
        let mut broken = stop.clone();
        broken["status"] = json!(status);
        cases.push(("/tm_api/test_stop/", format!("status {status:?}"), broken));
    }
    for (endpoint, case, body) in cases {
        let (status, error) = call(&app, "POST", endpoint, Some(&body.to_string())).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{endpoint} {case}: {error}"
        );
        assert!(error["error"]["message"].is_string());
        // Beside stpt's envelope, the message where a DRF client looks for it.
        assert_eq!(
            error["detail"], error["error"]["message"],
            "{endpoint} {case}"
        );
    }
    let (_, last) = call(&app, "GET", "/tm_api/machine_last_data/1/", None).await;
    assert_eq!(
        last["last_master_scenario"]["status"], "waiting",
        "nothing was applied"
    );
}

/// As the seed: a missing or `null` event time is the server's receipt time; times without
/// seconds or with a `+HHMM` offset are read; a plan naming a blank file is refused.
#[tokio::test]
async fn lenient_runner_input_as_the_seed() {
    let app = app();
    call(&app, "POST", "/tm_api/dry_run/", Some(PLAN)).await;
    let start = json!({"machine_name": "machine #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py"});
    let (status, body) = call(
        &app,
        "POST",
        "/tm_api/test_start/",
        Some(&start.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let stop = json!({"machine_name": "machine #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py", "status": "passed", "timestamp_stop": null});
    let (status, body) = call(&app, "POST", "/tm_api/test_stop/", Some(&stop.to_string())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, run) = call(&app, "GET", "/api/v1/runs/1", None).await;
    let test = &run["scenarios"][0]["tests"][0];
    for field in ["timestamp_start", "timestamp_stop"] {
        // The tracker's clock (`FixedClock`).
        assert_eq!(test[field], "2026-11-24T15:30:00Z", "{field}: {test}");
    }
    let start = json!({"machine_name": "machine #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_02_test_lamp.py", "timestamp_start": "2026-11-24T14:00+0100"});
    let (status, body) = call(
        &app,
        "POST",
        "/tm_api/test_start/",
        Some(&start.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, run) = call(&app, "GET", "/api/v1/runs/1", None).await;
    assert_eq!(
        run["scenarios"][0]["tests"][1]["timestamp_start"],
        "2026-11-24T13:00:00Z"
    );

    let mut blank: Value = serde_json::from_str(PLAN).unwrap();
    blank["master_scenario"]["scenarios"][0]["tests"][0]["file_name"] = json!("");
    let (status, error) = call(&app, "POST", "/tm_api/dry_run/", Some(&blank.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}

#[tokio::test]
async fn bad_reads_are_clear() {
    let app = app();
    call(&app, "POST", "/tm_api/dry_run/", Some(PLAN)).await;
    // The seed's answers: a bad page is `Invalid page.`, a bad or unknown id `Not found.`.
    let invalid_page = json!({"detail": "Invalid page."});
    let not_found = json!({"detail": "Not found."});
    for (uri, expected) in [
        ("/tm_api/machines/?page=0", &invalid_page),
        ("/tm_api/machines/?page=abc", &invalid_page),
        ("/tm_api/machines/?page=-1", &invalid_page),
        ("/tm_api/machines/?page=99999999999", &invalid_page),
        ("/tm_api/machines/?page=2", &invalid_page),
        ("/tm_api/machine_dry_run_datas/1?page=2", &invalid_page),
        ("/tm_api/machine_dry_run_datas/99?page=2", &invalid_page),
        ("/tm_api/machine_dry_run_datas/x", &not_found),
        ("/tm_api/machine_last_data/99/", &not_found),
        ("/tm_api/test/99999", &not_found),
        ("/tm_api/test/abc", &not_found),
        ("/tm_api/scenario/0", &not_found),
        ("/tm_api/master_scenario/-4", &not_found),
    ] {
        let (status, body) = call(&app, "GET", uri, None).await;
        assert_eq!((status, &body), (StatusCode::NOT_FOUND, expected), "{uri}");
    }
    let (status, body) = call(&app, "GET", "/tm_api/nothing_here/", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["code"].is_string(), "{body}");
    // Sizes the seed took leniently.
    for (uri, size) in [
        ("/tm_api/machines/?page_size=0", 10),
        ("/tm_api/machines/?page_size=abc", 10),
        ("/tm_api/machines/?page_size=101", 100),
    ] {
        let (status, page) = call(&app, "GET", uri, None).await;
        assert_eq!((status, &page["page_size"]), (StatusCode::OK, &json!(size)));
    }
    let (status, empty) = call(&app, "GET", "/tm_api/machine_dry_run_datas/99", None).await;
    assert_eq!(status, StatusCode::OK, "an unknown machine has no runs");
    assert_eq!(
        (&empty["count"], &empty["results"]),
        (&json!(0), &json!([]))
    );
    let (status, page) = call(&app, "GET", "/tm_api/machines/?page=1&page_size=100", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["page_size"], 100);
}

#[tokio::test]
async fn links_survive_a_nesting_prefix() {
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let app: Router = Router::new().nest(
        "/stpt",
        support::open_router(tracker, HttpConfig::default()),
    );
    call(&app, "POST", "/stpt/tm_api/dry_run/", Some(PLAN)).await;
    let (status, machines) = call(&app, "GET", "/stpt/tm_api/machines/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(machines["results"][0]["absolute_url"], "/stpt/machine/1");
}

/// The whole seed protocol over a real socket with a real HTTP client: a plan with naive
/// timestamps and `null` lists, a test file listed twice, a second plan abandoning the first,
/// and a cancel.
#[tokio::test]
async fn runner_story_over_a_real_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app()).await });
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let request = client.post(format!("{base}{path}")).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let get = |path: &str| {
        let request = client.get(format!("{base}{path}"));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    let plan: Value = serde_json::from_str(PLAN).unwrap();
    assert_eq!(post("/tm_api/dry_run/", plan.clone()).await.0, 201);
    let events: Vec<Value> = serde_json::from_str(EVENTS).unwrap();
    for event in &events {
        let (status, body) = post(event["endpoint"].as_str().unwrap(), event["body"].clone()).await;
        assert_eq!(status, 202, "{body}");
    }
    let last = get("/tm_api/machine_last_data/1/").await;
    let last = &last["last_master_scenario"];
    let statuses: Vec<(String, String)> = last["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tests"].as_array().unwrap().iter())
        .map(|t| {
            (
                t["file_name"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["endpoint"] == "/tm_api/test_stop/")
        .map(|e| {
            (
                e["body"]["file_name"].as_str().unwrap().to_owned(),
                e["body"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(statuses, expected, "trunk listed twice ran in plan order");
    assert_eq!(last["status"], "failed");
    assert_eq!(last["tests_count"], 10);
    assert_eq!(last["tests_statistics"]["passed"], 4);
    assert_eq!(last["duration"], "0\u{a0}minutes");
    // The server's clock (fixed in these tests), as the seed took it.
    assert_eq!(last["timestamp_start"], "24-11-2026  15:30:00");

    // A second plan, one test run, then a third plan abandons it mid-test.
    let mut second = plan.clone();
    second["timestamp"] = json!("2026-11-24T14:00:00Z");
    assert_eq!(post("/tm_api/dry_run", second.clone()).await.0, 201);
    let start = json!({"machine_name": "MACHINE #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py", "timestamp_start": "2026-11-24 14:00:01.5"});
    assert_eq!(post("/tm_api/test_start/", start.clone()).await.0, 202);
    let mut third = plan.clone();
    third["timestamp"] = json!("2026-11-24 14:10:00");
    // `/api/v1/plans` takes the seed's plan and says which runs it abandoned.
    let (status, created) = post("/api/v1/plans", third).await;
    assert_eq!(status, 201);
    assert_eq!(created["abandoned_runs"], json!([2]));
    let runs = get("/tm_api/machine_dry_run_datas/1").await;
    let run_statuses: Vec<&str> = runs["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tests_status"].as_str().unwrap())
        .collect();
    assert_eq!(run_statuses, ["waiting", "unknown", "failed"]);
    assert_eq!(get("/api/v1/tests/11").await["status"], "unknown");
    let abandoned = get("/tm_api/test/11").await;
    assert_eq!(abandoned["timestamp_stop"], "24-11-2026  14:10:00");

    // Cancel the third run from its first test.
    assert_eq!(post("/tm_api/test_start/", start).await.0, 202);
    let cancel = json!({"machine_name": "machine #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py", "status": "cancelled", "timestamp_stop": "2026-11-24 14:11:00"});
    assert_eq!(post("/tm_api/test_stop/", cancel).await.0, 202);
    let last = get("/tm_api/machine_last_data/1").await;
    assert_eq!(last["last_master_scenario"]["status"], "cancelled");
    assert_eq!(
        last["last_master_scenario"]["tests_statistics"]["cancelled"],
        10
    );
    let machines = get("/tm_api/machines/").await;
    assert_eq!(
        machines["results"][0]["get_last_master_scenario_status"],
        "cancelled"
    );
    assert_eq!(machines["count"], 1);
    server.abort();
}

/// A JSON body as the flat fields of a form, named as the seed's Django REST framework read
/// them: `a.b` for a field of an object, `a[0]b` for a field of a list item; `null` left out.
fn form_fields(json: &Value) -> Vec<(String, String)> {
    fn walk(value: &Value, name: String, out: &mut Vec<(String, String)>) {
        match value {
            Value::Null => {}
            Value::Object(fields) => {
                for (field, value) in fields {
                    let name = if name.is_empty() || name.ends_with(']') {
                        format!("{name}{field}")
                    } else {
                        format!("{name}.{field}")
                    };
                    walk(value, name, out);
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, format!("{name}[{index}]"), out);
                }
            }
            Value::String(text) => out.push((name, text.clone())),
            other => out.push((name, other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk(json, String::new(), &mut out);
    out
}

/// A form's fields: names and values, in order.
type Fields = Vec<(String, String)>;

fn form_request(uri: &str, fields: &[(String, String)]) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(fields).unwrap()))
        .unwrap()
}

const BOUNDARY: &str = "stpt-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body of `parts` (name, file name if a file part, content).
fn multipart_body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: text/x-python\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn multipart_request(uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .unwrap()
}

/// The seed took form-encoded and multipart bodies on its runner paths: each is read into
/// the same payload as JSON, so the answers and what is stored are the JSON's.
#[tokio::test]
async fn form_and_multipart_bodies_are_read_like_json() {
    let plan: Value = serde_json::from_str(PLAN).unwrap();
    let events: Vec<Value> = serde_json::from_str(EVENTS).unwrap();
    let story: Vec<(&str, &Value)> = std::iter::once(("/tm_api/dry_run/", &plan))
        .chain(
            events[..6]
                .iter()
                .map(|event| (event["endpoint"].as_str().unwrap(), &event["body"])),
        )
        .collect();
    assert!(story.iter().any(|(uri, _)| *uri == "/tm_api/test_stop/"));

    let by_json = app();
    let by_form = app();
    let by_multipart = app();
    for (uri, body) in &story {
        let json = call(&by_json, "POST", uri, Some(&body.to_string())).await;
        let fields = form_fields(body);
        assert!(fields.len() >= 4, "{uri}: {fields:?}");
        let form = send(&by_form, form_request(uri, &fields)).await;
        assert_eq!(form, json, "{uri}: a form answers as JSON does");
        let parts: Vec<(&str, Option<&str>, &[u8])> = fields
            .iter()
            .map(|(name, value)| {
                // Scripts go as files, as `curl -F script=@test.py` sends them.
                let file = name.ends_with("script").then_some("test.py");
                (name.as_str(), file, value.as_bytes())
            })
            .collect();
        let multipart = send(
            &by_multipart,
            multipart_request(uri, multipart_body(&parts)),
        )
        .await;
        assert_eq!(multipart, json, "{uri}: multipart answers as JSON does");
    }
    let read = |app: Router| async move {
        let (_, last) = call(&app, "GET", "/tm_api/machine_last_data/1/", None).await;
        let (_, run) = call(&app, "GET", "/api/v1/runs/1", None).await;
        let (_, test) = call(&app, "GET", "/tm_api/test/1", None).await;
        (last, run, test)
    };
    let stored = read(by_json).await;
    assert_eq!(
        stored.0["last_master_scenario"]["tests_statistics"]["warning"],
        1
    );
    assert_eq!(
        read(by_form).await,
        stored,
        "the form stored what JSON stored"
    );
    assert_eq!(
        read(by_multipart).await,
        stored,
        "multipart stored what JSON stored"
    );
}

/// What is lenient in the seed's forms: a blank time is the receipt time, fields the seed
/// ignored are ignored, list items go by index (gaps closed up), the last of repeated fields
/// counts, and `[0].name` works beside the seed's `[0]name`.
#[tokio::test]
async fn forms_read_the_seeds_shape() {
    let app = app();
    let plan = [
        ("machine_name", "rig-1"),
        ("timestamp", "2026-11-24 13:00"),
        ("master_scenario.file_path", "/rig"),
        ("master_scenario.file_name", "master.py"),
        ("master_scenario.scenarios[5]file_path", "/rig"),
        ("master_scenario.scenarios[5]file_name", "second.py"),
        ("master_scenario.scenarios[5]tests[0]file_path", "/rig/b"),
        ("master_scenario.scenarios[5]tests[0]file_name", "b.py"),
        ("master_scenario.scenarios[2].file_path", "/rig"),
        ("master_scenario.scenarios[2].file_name", "first.py"),
        ("master_scenario.scenarios[2].tests[0].file_path", "/rig/a"),
        ("master_scenario.scenarios[2].tests[0].file_name", "a.py"),
        ("csrfmiddlewaretoken", "ignored"),
        ("machine_name", "rig-2"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()));
    let (status, echo) = send(&app, form_request("/tm_api/dry_run/", &plan)).await;
    assert_eq!(status, StatusCode::CREATED, "{echo}");
    let scenarios = &echo["master_scenario"]["scenarios"];
    assert_eq!(scenarios[0]["file_name"], "first.py", "{echo}");
    assert_eq!(scenarios[1]["tests"][0]["file_name"], "b.py", "{echo}");
    let (_, machines) = call(&app, "GET", "/tm_api/machines/", None).await;
    assert_eq!(machines["results"][0]["machine_name"], "rig-2");

    let start = [
        ("machine_name", "rig-2"),
        ("file_path", "/rig/a"),
        ("file_name", "a.py"),
        ("timestamp_start", ""),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()));
    let (status, echo) = send(&app, form_request("/tm_api/test_start/", &start)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{echo}");
    let (_, run) = call(&app, "GET", "/api/v1/runs/1", None).await;
    assert_eq!(
        run["scenarios"][0]["tests"][0]["timestamp_start"], "2026-11-24T15:30:00Z",
        "a blank time is the receipt time: {run}"
    );
}

/// A form or multipart body that cannot be read is a `400` naming the problem, past the
/// body limit `413`, any other content type `415`, and a form a browser posts from another
/// site `403`; nothing is stored.
#[tokio::test]
async fn bad_form_bodies_are_refused_and_store_nothing() {
    let app = app_with(HttpConfig::default().with_body_limit(64 * 1024));
    let plan: Value = serde_json::from_str(PLAN).unwrap();
    let fields = form_fields(&plan);
    let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut all = fields.clone();
        all.extend(
            extra
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        all
    };
    let without = |field: &str| -> Vec<(String, String)> {
        fields
            .iter()
            .filter(|(name, _)| !name.starts_with(field))
            .cloned()
            .collect()
    };
    let form_cases: Vec<(&str, Fields, &str)> = vec![
        (
            "rails-style names",
            with(&[("master_scenario[scenarios][0][file_name]", "x.py")]),
            "malformed_form",
        ),
        (
            "a value and fields at once",
            with(&[("master_scenario", "x")]),
            "malformed_form",
        ),
        (
            "no master scenario",
            without("master_scenario"),
            "invalid_input",
        ),
        ("no timestamp", without("timestamp"), "invalid_input"),
        (
            "a blank test name",
            with(&[("master_scenario.scenarios[0]tests[0]file_name", "")]),
            "invalid_input",
        ),
        (
            "a bad timestamp",
            with(&[("timestamp", "yesterday")]),
            "invalid_input",
        ),
    ];
    for (case, fields, code) in form_cases {
        let (status, error) = send(&app, form_request("/tm_api/dry_run/", &fields)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {error}");
        assert_eq!(error["error"]["code"], code, "{case}: {error}");
        assert_eq!(error["detail"], error["error"]["message"], "{case}");
    }
    let raw = |content_type: &str, body: Vec<u8>| {
        Request::post("/tm_api/dry_run/")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let form = "application/x-www-form-urlencoded";
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    let good_parts: Vec<(&str, Option<&str>, &[u8])> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), None, value.as_bytes()))
        .collect();
    let mut unfinished = multipart_body(&good_parts);
    unfinished.truncate(unfinished.len() - 10);
    let mut latin1 = good_parts.clone();
    latin1.push(("master_scenario.script", Some("master.py"), b"caf\xe9\n"));
    let mut nameless = multipart_body(&good_parts);
    nameless.splice(
        0..0,
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n").into_bytes(),
    );
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "a form that is not UTF-8",
            raw(form, b"machine_name=%FF&timestamp=x".to_vec()),
            StatusCode::BAD_REQUEST,
            "malformed_form",
        ),
        (
            "an unfinished multipart body",
            raw(&multipart, unfinished),
            StatusCode::BAD_REQUEST,
            "malformed_form",
        ),
        (
            "multipart without a boundary",
            raw("multipart/form-data", multipart_body(&good_parts)),
            StatusCode::BAD_REQUEST,
            "malformed_form",
        ),
        (
            "a multipart part that is not UTF-8",
            raw(&multipart, multipart_body(&latin1)),
            StatusCode::BAD_REQUEST,
            "malformed_form",
        ),
        (
            "a multipart part without a name",
            raw(&multipart, nameless),
            StatusCode::BAD_REQUEST,
            "malformed_form",
        ),
        (
            "a form over the body limit",
            raw(form, format!("x={}", "a".repeat(70 * 1024)).into_bytes()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "multipart over the body limit",
            raw(
                &multipart,
                multipart_body(&[("x", Some("big.py"), "a".repeat(70 * 1024).as_bytes())]),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "plain text",
            raw("text/plain", b"machine_name=rig".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            Request::post("/tm_api/dry_run/")
                .body(Body::from(PLAN))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (case, request, expected, code) in cases {
        let (status, error) = send(&app, request).await;
        assert_eq!(status, expected, "{case}: {error}");
        assert_eq!(error["error"]["code"], code, "{case}: {error}");
    }
    // Forms and multipart bodies an evil page makes a lab browser send are refused, while
    // the same body from a runner (no browser headers) is taken.
    for hostile in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        for content_type in [form, multipart.as_str()] {
            let body = if content_type == form {
                serde_urlencoded::to_string(&fields).unwrap().into_bytes()
            } else {
                multipart_body(&good_parts)
            };
            let request = Request::post("/tm_api/dry_run/")
                .header("content-type", content_type)
                .header("host", "stpt.lab.example")
                .header(hostile.0, hostile.1)
                .body(Body::from(body))
                .unwrap();
            let (status, error) = send(&app, request).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{hostile:?} {content_type}: {error}"
            );
        }
    }
    let (_, machines) = call(&app, "GET", "/tm_api/machines/", None).await;
    assert_eq!(machines["count"], 0, "nothing was stored");
    let (status, _) = send(&app, form_request("/tm_api/dry_run/", &fields)).await;
    assert_eq!(status, StatusCode::CREATED, "the good form is taken");

    // The events refuse what the JSON refuses.
    for (uri, fields) in [
        (
            "/tm_api/test_stop/",
            vec![
                ("machine_name", "machine #1"),
                ("file_path", "/rig/test_cases/01_feature_lamp"),
                ("file_name", "01_01_test_lamp.py"),
                ("status", "running"),
            ],
        ),
        (
            "/tm_api/test_start/",
            vec![
                ("machine_name", "machine #1"),
                ("file_name", "01_01_test_lamp.py"),
            ],
        ),
    ] {
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let (status, error) = send(&app, form_request(uri, &fields)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {error}");
        assert_eq!(error["error"]["code"], "invalid_input", "{uri}: {error}");
    }
    let (_, last) = call(&app, "GET", "/tm_api/machine_last_data/1/", None).await;
    assert_eq!(
        last["last_master_scenario"]["status"], "waiting",
        "no event applied"
    );
}
