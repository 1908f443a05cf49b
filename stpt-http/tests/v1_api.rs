//! The versioned `/api/v1/`: ids from the plan, events by id, idempotent retries, batches.

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

#[derive(Debug)]
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap()
    }
}

fn app() -> Router {
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()))
        .with_clock(Arc::new(FixedClock));
    support::open_router(tracker, HttpConfig::default())
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn plan() -> Value {
    serde_json::from_str(PLAN).unwrap()
}

#[tokio::test]
async fn plan_answers_every_id_and_events_address_them() {
    let app = app();
    let (status, created) = call(&app, "POST", "/api/v1/plans", None, Some(plan())).await;
    assert_eq!(status, StatusCode::CREATED);
    insta::assert_json_snapshot!("v1_plan_created", created);
    let trunk_second = created["scenarios"][2]["test_ids"][1].as_i64().unwrap();
    let (status, started) = call(
        &app,
        "POST",
        &format!("/api/v1/tests/{trunk_second}/start"),
        None,
        Some(json!({"timestamp": "2026-11-24T13:05:00Z"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["test_id"], trunk_second);
    assert_eq!(started["status"], "running");
    assert_eq!(started["replayed"], false);
    let (status, stopped) = call(
        &app,
        "POST",
        &format!("/api/v1/tests/{trunk_second}/stop"),
        None,
        Some(json!({"status": "error", "timestamp": "2026-11-24 13:06:00"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{stopped}");
    insta::assert_json_snapshot!("v1_event_accepted", stopped);
    let (_, run) = call(&app, "GET", "/api/v1/runs/1", None, None).await;
    assert_eq!(
        run["scenarios"][2]["tests"][0]["status"], "waiting",
        "the first listing still waits"
    );
    assert_eq!(run["scenarios"][2]["tests"][1]["status"], "error");
    let (status, test) = call(
        &app,
        "GET",
        &format!("/api/v1/tests/{trunk_second}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(test["script"], "print('trunk')\n");
    for uri in [
        "/api/v1/machines",
        "/api/v1/machines/1",
        "/api/v1/machines/1/runs",
        "/api/v1/runs/1/master_scenario",
        "/api/v1/scenarios/1",
    ] {
        let (status, body) = call(&app, "GET", uri, None, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/tests/99999/start",
        None,
        Some(json!({"timestamp": "2026-11-24 13:00:00"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(
        &app,
        "POST",
        "/api/v1/tests/1/stop",
        None,
        Some(json!({"status": "running", "timestamp": "2026-11-24 13:00:00"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_one_idempotency_key_apply_once() {
    let app = app();
    let (status, first) = call(&app, "POST", "/api/v1/plans", Some("plan-7"), Some(plan())).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = call(&app, "POST", "/api/v1/plans", Some("plan-7"), Some(plan())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["run_id"], first["run_id"]);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["scenarios"], first["scenarios"]);

    let test = first["scenarios"][0]["test_ids"][0].as_i64().unwrap();
    let uri = format!("/api/v1/tests/{test}/start");
    let body = json!({"timestamp": "2026-11-24 13:02:00"});
    let attempts = (0..8).map(|_| {
        let (app, uri, body) = (app.clone(), uri.clone(), body.clone());
        async move { call(&app, "POST", &uri, Some("start-1"), Some(body)).await }
    });
    let answers = futures_join_all(attempts).await;
    let applied = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::ACCEPTED)
        .count();
    let replayed = answers
        .iter()
        .filter(|(status, body)| *status == StatusCode::OK && body["replayed"] == true)
        .count();
    assert_eq!((applied, replayed), (1, 7), "{answers:?}");
    let (_, run) = call(&app, "GET", "/api/v1/runs/1", None, None).await;
    assert_eq!(run["summary"]["statistics"]["counts"]["running"], 1);

    let (status, body) = call(&app, "POST", &uri, Some("   "), Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Runs futures concurrently on the test's runtime.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn batches_apply_in_order_and_report_each_event() {
    let app = app();
    let (_, created) = call(&app, "POST", "/api/v1/plans", None, Some(plan())).await;
    let lamp1 = created["scenarios"][0]["test_ids"][0].clone();
    let batch = json!({"events": [
        {"type": "test_start", "test_id": lamp1, "timestamp": "2026-11-24 13:02:01", "event_id": "a"},
        {"type": "test_stop", "test_id": lamp1, "status": "passed", "timestamp": "2026-11-24 13:02:02", "event_id": "b"},
        {"type": "test_stop", "test_id": lamp1, "status": "passed", "timestamp": "2026-11-24 13:02:03"},
        {"type": "test_start", "machine_name": "MACHINE #1", "file_path": "/rig/test_cases/01_feature_lamp",
         "file_name": "01_02_test_lamp.py", "timestamp": "2026-11-24 13:02:04"},
        {"type": "test_start", "test_id": lamp1, "timestamp": "2026-11-24 13:02:01", "event_id": "a"},
    ]});
    let (status, results) = call(&app, "POST", "/api/v1/events", None, Some(batch.clone())).await;
    assert_eq!(status, StatusCode::OK, "{results}");
    let outcomes: Vec<&str> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["applied", "applied", "rejected", "applied", "replayed"]
    );
    assert_eq!(results["results"][2]["error"]["code"], "no_match");
    insta::assert_json_snapshot!("v1_batch_results", results);

    let (status, again) = call(&app, "POST", "/api/v1/events", None, Some(batch)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["results"][0]["outcome"], "replayed");

    let (_, before) = call(&app, "GET", "/api/v1/runs/1", None, None).await;
    for bad in [
        json!({"events": [{"type": "test_start", "test_id": 2, "timestamp": "2026-11-24 13:03:00"},
                          {"type": "test_stop", "test_id": 2, "timestamp": "2026-11-24 13:03:00"}]}),
        json!({"events": [{"type": "test_start", "timestamp": "2026-11-24 13:03:00"}]}),
        json!({"events": [{"type": "test_start", "test_id": 2, "machine_name": "x", "timestamp": "2026-11-24 13:03:00"}]}),
        json!({"events": [{"type": "test_begin", "test_id": 2, "timestamp": "2026-11-24 13:03:00"}]}),
        json!({"events": [{"type": "test_stop", "test_id": 2, "status": "waiting", "timestamp": "2026-11-24 13:03:00"}]}),
        json!({"events": "none"}),
    ] {
        let (status, error) = call(&app, "POST", "/api/v1/events", None, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
    }
    let (_, after) = call(&app, "GET", "/api/v1/runs/1", None, None).await;
    assert_eq!(before, after, "a rejected batch applies nothing");
}

#[tokio::test]
async fn a_key_reused_for_a_different_event_is_422_and_changes_nothing() {
    let app = app();
    let (status, created) =
        call(&app, "POST", "/api/v1/plans", Some("rig-7/7"), Some(plan())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let test = created["scenarios"][0]["test_ids"][0].as_i64().unwrap();
    let (_, before) = call(&app, "GET", "/api/v1/runs/1", None, None).await;

    // The plan's key on a start: a different event.
    let start = format!("/api/v1/tests/{test}/start");
    let body = json!({"timestamp": "2026-11-24 13:02:00"});
    let (status, error) = call(&app, "POST", &start, Some("rig-7/7"), Some(body.clone())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "idempotency_key_reused");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("rig-7/7") && message.contains("different event"),
        "{message}"
    );
    assert!(message.contains("Do not retry"), "{message}");
    let (_, after) = call(&app, "GET", "/api/v1/runs/1", None, None).await;
    assert_eq!(before, after, "nothing was applied");

    // A start's key on a plan, and the plan's key on an event of a batch.
    let (status, _) = call(&app, "POST", &start, Some("start-1"), Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, error) = call(&app, "POST", "/api/v1/plans", Some("start-1"), Some(plan())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "idempotency_key_reused");
    let batch = json!({"events": [
        {"type": "test_stop", "test_id": test, "status": "passed", "timestamp": "2026-11-24 13:03:00", "event_id": "rig-7/7"},
    ]});
    let (status, results) = call(&app, "POST", "/api/v1/events", None, Some(batch)).await;
    assert_eq!(status, StatusCode::OK, "{results}");
    assert_eq!(results["results"][0]["outcome"], "rejected", "{results}");
    assert_eq!(
        results["results"][0]["error"]["code"], "idempotency_key_reused",
        "{results}"
    );
}

/// A plan over the server's test limit is a clear 400 on both protocols, and stores nothing.
#[tokio::test]
async fn a_plan_over_the_test_limit_is_refused_and_stores_nothing() {
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()))
        .with_clock(Arc::new(FixedClock))
        .with_max_plan_tests(9);
    let app = support::open_router(tracker, HttpConfig::default());
    // The Python runner's plan holds 10 tests.
    for uri in ["/api/v1/plans", "/tm_api/dry_run/"] {
        let (status, answer) = call(&app, "POST", uri, None, Some(plan())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input", "{answer}");
        assert_eq!(answer["error"]["field"], "master_scenario", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("10 tests") && message.contains("at most 9"),
            "{message}"
        );
    }
    let (_, machines) = call(&app, "GET", "/api/v1/machines", None, None).await;
    assert_eq!(machines["items"], json!([]));
}
