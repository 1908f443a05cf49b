//! `POST /api/v1/imports/junit`: reports of the common producers become finished runs with
//! the right statuses and durations; bad, hostile and oversized documents are refused with a
//! clear error and leave what is stored as it was.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::Value;
use stpt_http::HttpConfig;
use tower::ServiceExt;

const SUREFIRE: &str = include_str!("fixtures/junit/surefire.xml");
const ANT: &str = include_str!("fixtures/junit/ant.xml");
const PYTEST: &str = include_str!("fixtures/junit/pytest.xml");
const JEST: &str = include_str!("fixtures/junit/jest-junit.xml");
const GO: &str = include_str!("fixtures/junit/go-junit-report.xml");

fn app() -> Router {
    support::open_router(support::tracker(), HttpConfig::default())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn import_as(
    app: &Router,
    machine: &str,
    content_type: &str,
    key: Option<&str>,
    xml: impl Into<Body>,
) -> (StatusCode, Value) {
    let mut request = Request::post(format!("/api/v1/imports/junit?machine={machine}"))
        .header(header::CONTENT_TYPE, content_type);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    send(app, request.body(xml.into()).unwrap()).await
}

async fn import(app: &Router, machine: &str, xml: &str) -> (StatusCode, Value) {
    import_as(app, machine, "application/xml", None, xml.to_owned()).await
}

async fn get(app: &Router, uri: &str) -> Value {
    let (status, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

/// A stored test: its scenario's name, its path, name, status and duration in milliseconds.
#[derive(Debug, PartialEq)]
struct Stored {
    scenario: String,
    path: String,
    name: String,
    status: String,
    millis: i64,
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

async fn stored(app: &Router, run_id: &Value) -> (Value, Vec<Stored>) {
    let run = get(app, &format!("/api/v1/runs/{run_id}")).await;
    let mut tests = Vec::new();
    for scenario in run["scenarios"].as_array().unwrap() {
        for test in scenario["tests"].as_array().unwrap() {
            tests.push(Stored {
                scenario: scenario["file"]["file_name"].as_str().unwrap().to_owned(),
                path: test["file"]["file_path"].as_str().unwrap().to_owned(),
                name: test["file"]["file_name"].as_str().unwrap().to_owned(),
                status: test["status"].as_str().unwrap().to_owned(),
                millis: (time(&test["timestamp_stop"]) - time(&test["timestamp_start"]))
                    .num_milliseconds(),
            });
        }
    }
    (run, tests)
}

fn test(scenario: &str, path: &str, name: &str, status: &str, millis: i64) -> Stored {
    Stored {
        scenario: scenario.to_owned(),
        path: path.to_owned(),
        name: name.to_owned(),
        status: status.to_owned(),
        millis,
    }
}

async fn imported(app: &Router, machine: &str, xml: &str) -> (Value, Value, Vec<Stored>) {
    let (status, answer) = import(app, machine, xml).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["unmatched_events"], 0, "{answer}");
    assert_eq!(answer["replayed"], false);
    let (run, tests) = stored(app, &answer["run_id"]).await;
    let status = run["summary"]["status"].as_str().unwrap();
    assert!(!["waiting", "running"].contains(&status), "{run}");
    assert!(
        run["summary"]["timestamp_stop"].is_string(),
        "the run is finished: {run}"
    );
    (answer, run, tests)
}

#[tokio::test]
async fn maven_surefire() {
    let app = app();
    let (answer, run, tests) = imported(&app, "ci-java", SUREFIRE).await;
    assert_eq!(answer["tests"], 5);
    assert_eq!(answer["scenarios"], 1);
    assert_eq!(
        answer["statuses"],
        serde_json::json!({"passed": 1, "warning": 1, "failed": 1, "error": 1, "unknown": 1})
    );
    let class = "com.example.rig.CalculatorTest";
    assert_eq!(
        tests,
        [
            test(class, class, "addsTwoNumbers", "passed", 4),
            test(class, class, "dividesByZero", "failed", 11),
            test(class, class, "readsConfig", "error", 2),
            test(class, class, "multipliesLargeNumbers", "unknown", 0),
            test(class, class, "retriesTheNetwork", "warning", 31),
        ]
    );
    // No timestamp in a Surefire report: the tests end when the report arrives.
    let last = &run["scenarios"][0]["tests"][4];
    assert_eq!(last["timestamp_stop"], "2026-11-24T15:30:00Z");
    assert_eq!(run["summary"]["status"], "unknown");
}

#[tokio::test]
async fn ant_junit_with_timestamps_per_suite() {
    let app = app();
    let (answer, run, tests) = imported(&app, "ci-ant", ANT).await;
    assert_eq!(answer["tests"], 4);
    let lamp = "com.example.rig.LampTest";
    let door = "com.example.rig.DoorTest";
    assert_eq!(
        tests,
        [
            test(lamp, lamp, "testOn", "passed", 250),
            test(lamp, lamp, "testOff", "failed", 750),
            test(lamp, lamp, "testBlink", "passed", 500),
            test(door, door, "testOpen", "passed", 2000),
        ]
    );
    let first = &run["scenarios"][0]["tests"];
    assert_eq!(first[0]["timestamp_start"], "2026-11-24T13:02:01Z");
    assert_eq!(first[1]["timestamp_start"], "2026-11-24T13:02:01.250Z");
    assert_eq!(
        run["scenarios"][1]["tests"][0]["timestamp_start"],
        "2026-11-24T13:05:00Z"
    );
    // The suite's `package` is its path.
    assert_eq!(run["scenarios"][0]["file"]["file_path"], "com.example.rig");
    assert_eq!(run["summary"]["status"], "failed");
}

#[tokio::test]
async fn pytest_junitxml() {
    let app = app();
    let (answer, run, tests) = imported(&app, "ci-python", PYTEST).await;
    assert_eq!(answer["tests"], 6);
    let module = "tests.test_calc";
    assert_eq!(
        tests,
        [
            test("pytest", module, "test_add", "passed", 1),
            test("pytest", module, "test_div", "failed", 2),
            test("pytest", module, "test_db", "error", 1),
            test("pytest", module, "test_gpu", "unknown", 0),
            test("pytest", module, "test_known_bug", "warning", 1),
            test(
                "pytest",
                "tests.test_calc.TestParams",
                "test_param[1-2]",
                "passed",
                120
            ),
        ]
    );
    // The `+01:00` offset is honoured.
    assert_eq!(
        run["scenarios"][0]["tests"][0]["timestamp_start"],
        "2026-11-24T13:02:01.123456Z"
    );
    assert_eq!(run["master"]["file_name"], "pytest tests");
}

#[tokio::test]
async fn jest_junit() {
    let app = app();
    let (answer, run, tests) = imported(&app, "ci-node", JEST).await;
    assert_eq!(answer["scenarios"], 2);
    assert_eq!(
        tests,
        [
            test(
                "cart",
                "cart adds an item",
                "cart adds an item",
                "passed",
                4
            ),
            test(
                "cart",
                "cart applies a discount",
                "cart applies a discount",
                "failed",
                11
            ),
            test(
                "cart",
                "cart ships abroad",
                "cart ships abroad",
                "unknown",
                0
            ),
            test(
                "checkout",
                "checkout pays by card",
                "checkout pays by card",
                "passed",
                200
            ),
        ]
    );
    assert_eq!(
        run["scenarios"][1]["tests"][0]["timestamp_start"],
        "2026-11-24T13:02:02Z"
    );
}

#[tokio::test]
async fn go_junit_report() {
    let app = app();
    let (answer, run, tests) = imported(&app, "ci-go", GO).await;
    assert_eq!(answer["tests"], 5);
    let lamp = "example.com/rig/lamp";
    let door = "example.com/rig/door";
    assert_eq!(
        tests,
        [
            test(lamp, lamp, "TestLampOn", "passed", 1),
            test(lamp, lamp, "TestLampOn/dimmed", "passed", 0),
            test(lamp, lamp, "TestLampOff", "failed", 10),
            test(lamp, lamp, "TestLampColour", "unknown", 0),
            test(door, door, "Failure", "error", 0),
        ]
    );
    assert_eq!(run["summary"]["statistics"]["tests"], 5);
}

/// The machine's runs, newest first, as `(id, status)`.
async fn runs_of(app: &Router, machine: &str) -> Vec<(i64, String)> {
    let machines = get(app, "/api/v1/machines?page_size=100").await;
    let Some(machine) = machines["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == machine)
    else {
        return Vec::new();
    };
    let runs = get(app, &format!("/api/v1/machines/{}/runs", machine["id"])).await;
    runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            (
                run["id"].as_i64().unwrap(),
                run["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuite name="&lol9;"><testcase name="&lol9;"/></testsuite>"#;

const EXTERNAL_ENTITY: &str = r#"<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuite name="x"><testcase name="&secret;"/></testsuite>"#;

#[tokio::test]
async fn bad_documents_are_refused_and_change_nothing() {
    let app = app();
    let (_, before, _) = imported(&app, "ci", ANT).await;
    let runs_before = runs_of(&app, "ci").await;
    for (xml, code, says) in [
        (
            "<testsuite><testcase name='a'>",
            "malformed_xml",
            "ends before",
        ),
        ("<testsuite></testcase>", "malformed_xml", "malformed XML"),
        ("not xml at all", "malformed_xml", "no `<testsuites>`"),
        (
            "<html><body/></html>",
            "malformed_xml",
            "root element is `<html>`",
        ),
        (BILLION_LAUGHS, "malformed_xml", "DOCTYPE"),
        (EXTERNAL_ENTITY, "malformed_xml", "DOCTYPE"),
        (
            "<testsuite><testcase name='&bogus;'/></testsuite>",
            "malformed_xml",
            "bogus",
        ),
        (
            "<testsuite><testcase name='a' time='1.5s'/></testsuite>",
            "invalid_input",
            "`1.5s` is not a number of seconds",
        ),
        (
            "<testsuite timestamp='last tuesday'><testcase name='a'/></testsuite>",
            "invalid_input",
            "not a timestamp",
        ),
    ] {
        let (status, answer) = import(&app, "ci", xml).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{xml}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{xml}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{xml}: {message}");
    }
    let (status, answer) = import_as(&app, "ci", "application/xml", None, vec![0xff, 0xfe]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
    // Nothing stored, and the earlier run was not abandoned by a half-made plan.
    assert_eq!(runs_of(&app, "ci").await, runs_before);
    let (after, _) = stored(&app, &before["summary"]["id"]).await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn requests_without_a_machine_or_as_json_are_refused() {
    let app = app();
    let request = Request::post("/api/v1/imports/junit")
        .header(header::CONTENT_TYPE, "application/xml")
        .body(Body::from(ANT))
        .unwrap();
    let (status, answer) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["field"], "machine");
    let (status, answer) = import_as(&app, "ci", "application/json", None, ANT).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert_eq!(answer["error"]["code"], "unsupported_media_type");
    let (status, _) = import_as(&app, "ci", "text/xml; charset=utf-8", None, ANT).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(runs_of(&app, "ci").await.len() == 1);
}

#[tokio::test]
async fn an_oversized_body_is_413_and_changes_nothing() {
    let app = support::open_router(
        support::tracker(),
        HttpConfig::default().with_body_limit(4096),
    );
    let (status, _) = import(&app, "ci", ANT).await;
    assert_eq!(status, StatusCode::CREATED);
    let padding = "<testcase name='t'/>".repeat(1000);
    let big = format!("<testsuite name='big'>{padding}</testsuite>");
    let (status, answer) = import(&app, "ci", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "body_too_large");
    let runs = runs_of(&app, "ci").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1, "failed");
}

#[tokio::test]
async fn a_retried_upload_with_one_key_is_stored_once() {
    let app = app();
    let (first_status, first) =
        import_as(&app, "ci", "application/xml", Some("pipeline-7/junit"), GO).await;
    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    let (again_status, again) =
        import_as(&app, "ci", "application/xml", Some("pipeline-7/junit"), GO).await;
    assert_eq!(again_status, StatusCode::OK, "{again}");
    assert_eq!(again["replayed"], true);
    assert_eq!(again["run_id"], first["run_id"]);
    assert_eq!(again["unmatched_events"], 0);
    assert_eq!(runs_of(&app, "ci").await.len(), 1);
    let long_key = "k".repeat(97);
    let (status, answer) =
        import_as(&app, "ci", "application/xml", Some(long_key.as_str()), GO).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["field"], "Idempotency-Key");
}

#[tokio::test]
async fn runners_without_a_token_are_refused() {
    let tracker = support::tracker();
    let app: Router = stpt_http::router(tracker, &HttpConfig::default());
    let (status, answer) = import(&app, "ci", ANT).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
}

/// Each test's `message` and text, as `GET /api/v1/tests/{id}` answers them, in plan order.
async fn said(app: &Router, run: &Value) -> Vec<(Option<String>, Option<String>)> {
    let mut said = Vec::new();
    for scenario in run["scenarios"].as_array().unwrap() {
        for test in scenario["tests"].as_array().unwrap() {
            let item = get(app, &format!("/api/v1/tests/{}", test["id"])).await;
            let text = |field: &str| item[field].as_str().map(str::to_owned);
            said.push((text("message"), text("details")));
        }
    }
    said
}

#[tokio::test]
async fn failure_messages_and_texts_are_kept_and_exported_back() {
    let app = app();
    let (_, run, _) = imported(&app, "ci-python", PYTEST).await;
    let said = said(&app, &run).await;
    assert_eq!(said[0], (None, None), "a pass says nothing");
    let (message, details) = &said[1];
    assert_eq!(
        message.as_deref(),
        Some("ZeroDivisionError: division by zero")
    );
    let details = details.as_deref().unwrap();
    assert!(details.starts_with("def test_div():"), "{details}");
    assert!(
        details.ends_with("tests/test_calc.py:7: ZeroDivisionError"),
        "{details}"
    );
    assert_eq!(
        said[2].0.as_deref(),
        Some("failed on setup with \"RuntimeError: no database\""),
        "entities resolved"
    );
    assert_eq!(
        said[3],
        (
            Some("no GPU on this bench".to_owned()),
            Some("tests/test_calc.py:15: no GPU on this bench".to_owned())
        )
    );
    assert_eq!(said[4], (Some("issue 12".to_owned()), None));

    // CDATA, and a failure without a message (Jest).
    let (_, go_run, _) = imported(&app, "ci-go", GO).await;
    let go = self::said(&app, &go_run).await;
    assert_eq!(
        go[2],
        (
            Some("Failed".to_owned()),
            Some("lamp_test.go:21: lamp still on".to_owned())
        )
    );
    assert!(
        go[4].1.as_deref().unwrap().contains("[signal SIGSEGV"),
        "{go:?}"
    );
    let (_, jest_run, _) = imported(&app, "ci-js", JEST).await;
    let jest = self::said(&app, &jest_run).await;
    let failed = jest.iter().find(|(_, details)| details.is_some()).unwrap();
    assert_eq!(failed.0, None);
    assert!(
        failed
            .1
            .as_deref()
            .unwrap()
            .starts_with("Error: expect(received)")
    );

    // A run's JUnit export writes them back, and they read back in.
    let response = app
        .clone()
        .oneshot(
            Request::get(format!(
                "/api/v1/runs/{}/export?format=junit",
                run["summary"]["id"]
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let xml = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        xml.contains("<failure message=\"ZeroDivisionError: division by zero\" type=\"failed\">def test_div():"),
        "{xml}"
    );
    let (_, copy, _) = imported(&app, "ci-copy", &xml).await;
    let copied = self::said(&app, &copy).await;
    assert_eq!(copied[1], said[1]);
    assert_eq!(copied[2], said[2]);
}

#[tokio::test]
async fn an_overlong_failure_text_is_cut_with_a_marker_not_refused() {
    let app = app();
    let trace = format!(
        "top of the trace\n{}bottom of the trace",
        "frame\n".repeat(20_000)
    );
    let xml = format!(
        "<testsuite name=\"s\"><testcase name=\"t\"><failure message=\"{}\">{trace}</failure></testcase></testsuite>",
        "m".repeat(1500)
    );
    let (_, run, tests) = imported(&app, "ci-long", &xml).await;
    assert_eq!(tests[0].status, "failed");
    let said = said(&app, &run).await;
    let (message, details) = (said[0].0.as_deref().unwrap(), said[0].1.as_deref().unwrap());
    assert_eq!(
        message.chars().count(),
        stpt_core::MAX_FAILURE_MESSAGE_CHARS
    );
    assert!(message.ends_with('…'));
    assert!(details.len() <= stpt_core::MAX_FAILURE_DETAILS_BYTES);
    assert!(details.starts_with("top of the trace") && details.ends_with("bottom of the trace"));
    assert!(details.contains("cut by stpt"), "a visible marker");
}
