//! Property-based HTTP fuzz of every ingestion endpoint through the router: random JSON
//! (shaped like the protocol, with hostile values), random forms and multipart bodies (the
//! seed's flat names, broken ones), random bytes and random XML. Every answer
//! is below 500, and whatever was stored stays whole: each run holds its whole plan and its
//! counts agree with its tests.
//!
//! `STPT_FUZZ_CASES` sets the cases per endpoint: 256 by default, 10,000 in CI (`.ci/run`;
//! about 20 s for all ten on a 2-core machine).

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use stpt_core::{PageRequest, StatusCounts, Tracker};
use stpt_http::HttpConfig;
use tower::ServiceExt;

const KEYS: &[&str] = &[
    "machine_name",
    "timestamp",
    "master_scenario",
    "file_path",
    "file_name",
    "script",
    "scenarios",
    "tests",
    "status",
    "timestamp_start",
    "timestamp_stop",
    "events",
    "event_id",
    "action",
    "test_id",
    "at",
];

fn cases() -> u32 {
    std::env::var("STPT_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// Text a hostile or broken runner might send.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("rig-1".to_owned()),
        Just("RIG-1".to_owned()),
        Just("passed".to_owned()),
        Just("cancelled".to_owned()),
        Just("running".to_owned()),
        Just("2026-11-24 13:00:00".to_owned()),
        Just("2026-11-24T13:00:00+01:00".to_owned()),
        Just("0000-01-01 00:00:00".to_owned()),
        Just("9999-12-31T23:59:59-23:59".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("\u{202e}evil".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("x".repeat(5000)),
        "\\PC{0,40}",
    ]
}

/// JSON shaped like the protocol: objects with its keys, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| {
                let mut object = Map::new();
                for (key, value) in pairs {
                    object.insert((*key).to_owned(), value);
                }
                Value::Object(object)
            }),
        ]
    })
}

/// A body: protocol-shaped JSON, or raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

fn xml() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"<testsuites><testsuite name=\"s\"><testcase name=\"t\" time=\"1\"/></testsuite></testsuites>".to_vec()),
        Just(b"<!DOCTYPE x [<!ENTITY a \"aaaa\">]><testsuites>&a;</testsuites>".to_vec()),
        "\\PC{0,200}".prop_map(|s| format!("<testsuites>{s}</testsuites>").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A form body: names of the seed's flat shape (`master_scenario.scenarios[0]tests[1]file_name`)
/// and broken ones, with hostile values; or raw bytes.
fn form() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        prop::sample::select(KEYS).prop_map(|key| format!(".{key}")),
        prop::sample::select(KEYS).prop_map(|key| (*key).to_owned()),
        (0u32..4).prop_map(|index| format!("[{index}]")),
        "[\\[\\].0-9a-z]{0,4}",
    ];
    let name = (
        prop::sample::select(KEYS),
        prop::collection::vec(part, 0..7),
    )
        .prop_map(|(first, rest)| format!("{first}{}", rest.concat()));
    prop_oneof![
        8 => prop::collection::vec((name, text()), 0..24)
            .prop_map(|fields| serde_urlencoded::to_string(fields).unwrap().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A multipart body: the parts of a form, or raw bytes between boundaries.
fn multipart() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => form().prop_map(|form| {
            let mut body = Vec::new();
            for field in form.split(|byte| *byte == b'&') {
                let text = String::from_utf8_lossy(field);
                let (name, value) = text.split_once('=').unwrap_or((&text, ""));
                body.extend_from_slice(
                    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
            body
        }),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|bytes| {
            let mut body = format!("--{BOUNDARY}\r\n").into_bytes();
            body.extend(bytes);
            body
        }),
    ]
}

const BOUNDARY: &str = "fuzz-boundary";

async fn post(app: &Router, uri: &str, content_type: &str, body: Vec<u8>) -> StatusCode {
    let request = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    // Read the body too: an error while writing it must show.
    response.into_body().collect().await.unwrap();
    status
}

/// Every stored run is whole and its counts agree with its tests.
async fn assert_whole(tracker: &Tracker) {
    let machines = tracker
        .store()
        .machines(PageRequest::new(1, 100).unwrap())
        .await
        .unwrap();
    for machine in machines.items {
        let runs = tracker
            .store()
            .runs(machine.id, PageRequest::new(1, 100).unwrap())
            .await
            .unwrap();
        for summary in runs.items {
            let run = tracker.run(summary.id).await.unwrap();
            let mut all = StatusCounts::new();
            for scenario in &run.scenarios {
                let counts: StatusCounts = scenario.tests.iter().map(|t| t.status).collect();
                assert_eq!(scenario.counts, counts, "run {}", summary.id);
                all = all.plus(&counts);
            }
            assert_eq!(run.summary.statistics.counts, all, "run {}", summary.id);
        }
    }
}

/// Runs `cases()` random bodies against `uri`; panics on the first 5xx.
fn fuzz(uri: &'static str, content_type: &'static str, bodies: impl Strategy<Value = Vec<u8>>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tracker = support::tracker();
    let app = support::open_router(tracker.clone(), HttpConfig::default());
    // Something to address: a plan with tests, whose ids the v1 events may hit.
    runtime.block_on(async {
        let plan = support::small_plan("rig-1", "2026-11-24 13:00:00");
        post(
            &app,
            "/tm_api/dry_run/",
            "application/json",
            plan.to_string().into_bytes(),
        )
        .await;
    });
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&bodies, |body| {
            let status = runtime.block_on(post(&app, uri, content_type, body.clone()));
            prop_assert!(
                status.as_u16() < 500,
                "{uri} answered {status} to {}",
                String::from_utf8_lossy(&body)
            );
            Ok(())
        })
        .unwrap();
    runtime.block_on(assert_whole(&tracker));
}

#[test]
fn seed_plans() {
    fuzz("/tm_api/dry_run/", "application/json", body());
}

#[test]
fn seed_starts() {
    fuzz("/tm_api/test_start/", "application/json", body());
}

#[test]
fn seed_stops() {
    fuzz("/tm_api/test_stop/", "application/json", body());
}

#[test]
fn seed_plans_as_forms() {
    fuzz(
        "/tm_api/dry_run/",
        "application/x-www-form-urlencoded",
        form(),
    );
}

#[test]
fn seed_stops_as_multipart() {
    fuzz(
        "/tm_api/test_stop/",
        "multipart/form-data; boundary=fuzz-boundary",
        multipart(),
    );
}

#[test]
fn v1_plans() {
    fuzz("/api/v1/plans", "application/json", body());
}

#[test]
fn v1_batches() {
    fuzz("/api/v1/events", "application/json", body());
}

#[test]
fn v1_starts_by_id() {
    fuzz("/api/v1/tests/1/start", "application/json", body());
}

#[test]
fn v1_stops_by_id() {
    fuzz("/api/v1/tests/1/stop", "application/json", body());
}

#[test]
fn junit_imports() {
    fuzz("/api/v1/imports/junit?machine=ci", "application/xml", xml());
}
