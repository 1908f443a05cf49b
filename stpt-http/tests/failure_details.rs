//! Failure details through the router: a stop's `message` and `details` in single v1 events
//! and batches, read back in the test's answer and page (escaped), refused over their bounds
//! with nothing stored; and the backlog a runner's spool reports, shown on the machine pages
//! and in the machine's answer until it ends.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use stpt_http::HttpConfig;
use tower::ServiceExt;

fn app() -> Router {
    support::open_router(support::tracker(), HttpConfig::default())
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn json_call(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, text) = call(app, method, uri, headers, body).await;
    (status, serde_json::from_str(&text).unwrap())
}

/// Plans `support::small_plan` for `machine` through v1; answers the test ids in plan order.
async fn plan(app: &Router, machine: &str, headers: &[(&str, &str)]) -> Vec<i64> {
    let plan = support::small_plan(machine, "2026-11-24 13:00:00");
    let (status, created) = json_call(app, "POST", "/api/v1/plans", headers, Some(plan)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["test_ids"].as_array().unwrap().clone())
        .map(|id| id.as_i64().unwrap())
        .collect()
}

async fn start(app: &Router, test: i64) {
    let (status, body) = json_call(
        app,
        "POST",
        &format!("/api/v1/tests/{test}/start"),
        &[],
        Some(json!({"timestamp": "2026-11-24T13:01:00Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

async fn test_answer(app: &Router, test: i64) -> Value {
    let (status, body) = json_call(app, "GET", &format!("/api/v1/tests/{test}"), &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

const TRACEBACK: &str = "Traceback (most recent call last):\n  File \"lamp_on.py\", line 3, in <module>\n    assert read('<script>alert(1)</script>') == 'on'\nAssertionError";

#[tokio::test]
async fn a_single_stop_says_how_its_test_ended() {
    let app = app();
    let tests = plan(&app, "rig-1", &[]).await;
    start(&app, tests[0]).await;
    let (status, stopped) = json_call(
        &app,
        "POST",
        &format!("/api/v1/tests/{}/stop", tests[0]),
        &[],
        Some(
            json!({"status": "failed", "timestamp": "2026-11-24T13:01:05Z",
            "message": "assert '<script>alert(1)</script>' == 'on'", "details": TRACEBACK}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{stopped}");
    let answer = test_answer(&app, tests[0]).await;
    insta::assert_json_snapshot!("v1_test_with_failure", answer);
    // Another test of the run, stopped without them, has none; the run's answer holds none.
    start(&app, tests[1]).await;
    let (status, _) = json_call(
        &app,
        "POST",
        &format!("/api/v1/tests/{}/stop", tests[1]),
        &[],
        Some(json!({"status": "passed", "timestamp": "2026-11-24T13:01:06Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let answer = test_answer(&app, tests[1]).await;
    assert!(
        answer.get("message").is_none() && answer.get("details").is_none(),
        "{answer}"
    );
    let (_, run) = call(&app, "GET", "/api/v1/runs/1", &[], None).await;
    assert!(
        !run.contains("AssertionError"),
        "run answers stay small: {run}"
    );

    // The test page shows them escaped: the message first, the details folded away.
    let (status, html) = call(&app, "GET", &format!("/test/{}", tests[0]), &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !html.contains("<script>alert"),
        "the page injects a script: {html}"
    );
    assert!(html.contains(
        "<p class=\"failure-message\">assert &#x27;&lt;script&gt;alert(1)&lt;/script&gt;&#x27; == &#x27;on&#x27;</p>"
    ), "{html}");
    assert!(
        html.contains("<details class=\"failure-details\">"),
        "{html}"
    );
    assert!(html.contains("AssertionError</pre>"), "{html}");
    let (_, html) = call(&app, "GET", &format!("/test/{}", tests[1]), &[], None).await;
    assert!(!html.contains("failure-message"), "a pass says nothing");
}

#[tokio::test]
async fn batch_stops_carry_them_and_are_checked_as_single_ones() {
    let app = app();
    let tests = plan(&app, "rig-2", &[]).await;
    let batch = json!({"events": [
        {"event_id": "e1", "type": "test_start", "test_id": tests[0], "timestamp": "2026-11-24T13:01:00Z"},
        {"event_id": "e2", "type": "test_stop", "test_id": tests[0], "status": "warning",
         "timestamp": "2026-11-24T13:01:01Z", "message": "slow lamp"},
        {"event_id": "e3", "type": "test_start", "machine_name": "rig-2", "file_path": "/rig/lamp",
         "file_name": support::XSS_NAME, "timestamp": "2026-11-24T13:01:02Z"},
        {"event_id": "e4", "type": "test_stop", "machine_name": "rig-2", "file_path": "/rig/lamp",
         "file_name": support::XSS_NAME, "status": "error", "timestamp": "2026-11-24T13:01:03Z",
         "details": TRACEBACK},
    ]});
    let (status, results) = json_call(&app, "POST", "/api/v1/events", &[], Some(batch)).await;
    assert_eq!(status, StatusCode::OK, "{results}");
    assert!(
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "applied"),
        "{results}"
    );
    let first = test_answer(&app, tests[0]).await;
    assert_eq!(
        (&first["message"], &first["details"]),
        (&json!("slow lamp"), &Value::Null)
    );
    let second = test_answer(&app, tests[1]).await;
    assert_eq!(
        (&second["message"], &second["details"]),
        (&Value::Null, &json!(TRACEBACK))
    );
}

#[tokio::test]
async fn texts_over_their_bounds_are_refused_and_nothing_is_stored() {
    let app = app();
    let tests = plan(&app, "rig-3", &[]).await;
    start(&app, tests[0]).await;
    let too_long = "x".repeat(stpt_core::MAX_FAILURE_DETAILS_BYTES + 1);
    let too_long_message = "m".repeat(stpt_core::MAX_FAILURE_MESSAGE_CHARS + 1);
    for (body, field) in [
        (json!({"details": too_long}), "details"),
        (json!({"message": too_long_message}), "message"),
        (json!({"message": "a\u{0}b"}), "message"),
    ] {
        let mut body = body;
        body["status"] = json!("failed");
        body["timestamp"] = json!("2026-11-24T13:01:05Z");
        let (status, error) = json_call(
            &app,
            "POST",
            &format!("/api/v1/tests/{}/stop", tests[0]),
            &[],
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    let answer = test_answer(&app, tests[0]).await;
    assert_eq!(answer["status"], "running", "nothing stored: {answer}");
    assert!(answer.get("details").is_none());

    // In a batch: the whole batch is refused, its valid events too.
    let batch = json!({"events": [
        {"event_id": "b1", "type": "test_stop", "test_id": tests[0], "status": "failed",
         "timestamp": "2026-11-24T13:01:06Z"},
        {"event_id": "b2", "type": "test_start", "test_id": tests[1],
         "timestamp": "2026-11-24T13:01:07Z"},
        {"event_id": "b3", "type": "test_stop", "test_id": tests[1], "status": "failed",
         "timestamp": "2026-11-24T13:01:08Z", "details": "x".repeat(stpt_core::MAX_FAILURE_DETAILS_BYTES + 1)},
    ]});
    let (status, error) = json_call(&app, "POST", "/api/v1/events", &[], Some(batch)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["field"], "events[2].details", "{error}");
    let start_with_message = json!({"events": [
        {"event_id": "c1", "type": "test_start", "test_id": tests[1], "message": "early",
         "timestamp": "2026-11-24T13:01:07Z"},
    ]});
    let (status, error) = json_call(
        &app,
        "POST",
        "/api/v1/events",
        &[],
        Some(start_with_message),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["field"], "events[0].message", "{error}");
    assert_eq!(test_answer(&app, tests[0]).await["status"], "running");
    assert_eq!(test_answer(&app, tests[1]).await["status"], "waiting");
}

#[tokio::test]
async fn a_replayed_backlog_shows_on_the_machine_pages_until_it_ends() {
    let app = app();
    let tests = plan(&app, "rig-4", &[("Stpt-Backlog", "40")]).await;
    let (_, machine) = json_call(&app, "GET", "/api/v1/machines/1", &[], None).await;
    assert_eq!(machine["backlog"]["events_left"], 40, "{machine}");
    assert!(machine["backlog"]["since"].is_string(), "{machine}");
    let batch = json!({"events": [
        {"event_id": "s1", "type": "test_start", "test_id": tests[0], "timestamp": "2026-11-24T13:01:00Z"},
    ]});
    let (status, _) = json_call(
        &app,
        "POST",
        "/api/v1/events",
        &[("Stpt-Backlog", "39")],
        Some(batch),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for uri in ["/", "/machine/1", "/machine/run_data/1", "/machine/1/last"] {
        let (status, html) = call(&app, "GET", uri, &[], None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(html.contains("replaying a backlog"), "{uri}: {html}");
        assert!(html.contains("39 events left"), "{uri}: {html}");
    }
    let (_, machines) = json_call(&app, "GET", "/api/v1/machines", &[], None).await;
    assert_eq!(machines["items"][0]["backlog"]["events_left"], 39);

    // A bad header is refused before anything is applied.
    let (status, error) = json_call(
        &app,
        "POST",
        &format!("/api/v1/tests/{}/stop", tests[0]),
        &[("Stpt-Backlog", "lots")],
        Some(json!({"status": "passed", "timestamp": "2026-11-24T13:01:05Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(test_answer(&app, tests[0]).await["status"], "running");

    // The request that leaves nothing queued ends it.
    let (status, _) = json_call(
        &app,
        "POST",
        &format!("/api/v1/tests/{}/stop", tests[0]),
        &[("Stpt-Backlog", "0")],
        Some(json!({"status": "passed", "timestamp": "2026-11-24T13:01:05Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, machine) = json_call(&app, "GET", "/api/v1/machines/1", &[], None).await;
    assert!(machine.get("backlog").is_none(), "{machine}");
    let (_, html) = call(&app, "GET", "/machine/1", &[], None).await;
    assert!(!html.contains("replaying a backlog"), "{html}");

    // So does a request without the header.
    start(&app, tests[1]).await;
    let (status, _) = json_call(
        &app,
        "POST",
        &format!("/api/v1/tests/{}/stop", tests[1]),
        &[("Stpt-Backlog", "5")],
        Some(json!({"status": "passed", "timestamp": "2026-11-24T13:01:06Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        json_call(&app, "GET", "/api/v1/machines/1", &[], None)
            .await
            .1["backlog"]["events_left"],
        5
    );
    start(&app, tests[2]).await;
    let (_, machine) = json_call(&app, "GET", "/api/v1/machines/1", &[], None).await;
    assert!(machine.get("backlog").is_none(), "{machine}");
}
