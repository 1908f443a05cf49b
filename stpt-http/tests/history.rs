//! History and insight over a real listener: two runs on one rig and one on another, then
//! the test history, the diff, search, the matrix, exports and their pages.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use serde_json::Value;
use std::sync::Arc;
use stpt_core::{InProcessBus, Tracker};
use stpt_http::HttpConfig;
use stpt_store_memory::MemoryStore;
use support::{post, serve, small_plan, start, stop};

async fn get(base: &str, path: &str) -> (u16, String, String) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

async fn get_json(base: &str, path: &str) -> Value {
    let (status, _, text) = get(base, path).await;
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Runs the small plan's lamp tests on `machine` with `lamp_on`'s status, from `minute`.
async fn run_lamp(base: &str, machine: &str, lamp_on: &str, minute: u32) {
    let plan = small_plan(machine, &format!("2026-11-24 13:{minute:02}:00"));
    assert_eq!(post(base, "/tm_api/dry_run/", &plan).await.0, 201);
    for (name, status, took) in [("lamp_on.py", lamp_on, 4), ("lamp_off.py", "passed", 2)] {
        let (path, body) = start(
            machine,
            "/rig/lamp",
            name,
            &format!("2026-11-24 13:{minute:02}:10"),
        );
        assert_eq!(post(base, path, &body).await.0, 202);
        let at = format!("2026-11-24 13:{minute:02}:{:02}", 10 + took);
        let (path, body) = stop(machine, "/rig/lamp", name, status, &at);
        assert_eq!(post(base, path, &body).await.0, 202);
    }
}

#[tokio::test]
async fn history_diff_search_matrix_and_exports() {
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let base = serve(support::open_router(tracker.clone(), HttpConfig::default())).await;
    run_lamp(&base, "rig-1", "passed", 1).await;
    run_lamp(&base, "rig-2", "passed", 2).await;
    run_lamp(&base, "rig-1", "failed", 3).await;
    tracker.flush_finished().await.unwrap();

    // Search finds the test by any part of its name, ignoring case.
    let found = get_json(&base, "/api/v1/test-identities?q=LAMP_ON").await;
    assert_eq!(found["total"], 1);
    let key = found["items"][0]["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 16);
    assert_eq!(
        found["items"][0]["identity"]["test"]["file_name"],
        "lamp_on.py"
    );

    // Its history: newest run first, on both machines, with statistics.
    let history = get_json(&base, &format!("/api/v1/test-identities/{key}/history")).await;
    let statuses: Vec<&str> = history["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "passed", "passed"]);
    assert_eq!(history["results"][1]["machine_name"], "rig-2");
    assert_eq!(history["stats"]["failures"], 1);
    assert_eq!(history["stats"]["median_ms"], 4000);
    let on_rig_1 = get_json(
        &base,
        &format!("/api/v1/test-identities/{key}/history?machine=1"),
    )
    .await;
    assert_eq!(on_rig_1["results"].as_array().unwrap().len(), 2);
    let (status, content_type, csv) = get(
        &base,
        &format!("/api/v1/test-identities/{key}/history?format=csv"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(
        csv.starts_with("test_id,run_id,machine_id,machine,status"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4);
    assert_eq!(
        get(&base, "/api/v1/test-identities/xyz/history").await.0,
        400
    );
    assert_eq!(
        get(&base, "/api/v1/test-identities/0000000000000000/history")
            .await
            .0,
        404
    );
    assert_eq!(
        get(
            &base,
            &format!("/api/v1/test-identities/{key}/history?status=bogus")
        )
        .await
        .0,
        400
    );

    // The third run against rig-1's first: lamp_on is a new failure.
    let diff = get_json(&base, "/api/v1/runs/3/diff").await;
    assert_eq!(diff["previous_run_id"], 1);
    assert_eq!(
        diff["new_failures"][0]["identity"]["test"]["file_name"],
        "lamp_on.py"
    );
    assert_eq!(diff["not_executed"].as_array().unwrap().len(), 0);
    assert_eq!(
        get_json(&base, "/api/v1/runs/2/diff").await["previous_run_id"],
        Value::Null
    );
    assert_eq!(get(&base, "/api/v1/runs/99/diff").await.0, 404);

    // Runs by master name, machine and status.
    let runs = get_json(&base, "/api/v1/runs?q=MASTER&machine=1").await;
    assert_eq!(runs["total"], 2);
    assert_eq!(runs["items"][0]["run"]["id"], 3);
    assert_eq!(
        get_json(&base, "/api/v1/runs?q=nothing-like-it").await["total"],
        0
    );
    assert_eq!(get(&base, "/api/v1/runs?since=yesterday").await.0, 400);
    assert_eq!(get(&base, "/api/v1/runs?page=5").await.0, 404);

    // The matrix: two machines, lamp_on failing on one.
    let matrix = get_json(
        &base,
        "/api/v1/matrix?master_path=/rig/scenarios&master_name=master.py&sort=failure_rate",
    )
    .await;
    let columns: Vec<&str> = matrix["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["machine_name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["rig-1", "rig-2"]);
    assert_eq!(
        matrix["rows"][0]["identity"]["test"]["file_name"],
        "lamp_on.py"
    );
    assert_eq!(matrix["rows"][0]["cells"][0]["status"], "failed");
    assert_eq!(matrix["rows"][0]["cells"][0]["window"]["outcomes"], "PF");
    assert_eq!(
        get(&base, "/api/v1/matrix?master_name=master.py").await.0,
        400
    );
    assert_eq!(
        get_json(&base, "/api/v1/flaky").await,
        Value::Array(Vec::new())
    );

    // Exports.
    let (status, content_type, xml) = get(&base, "/api/v1/runs/3/export?format=junit").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/xml"),
        "{content_type}"
    );
    assert!(xml.contains("<failure message=\"failed\""), "{xml}");
    assert!(xml.contains("&lt;img src=x"), "names are escaped: {xml}");
    let (_, content_type, csv) = get(&base, "/api/v1/runs/3/export?format=csv").await;
    assert!(content_type.starts_with("text/csv"));
    assert!(
        csv.lines().any(|line| line.contains("lamp_on.py,failed")),
        "{csv}"
    );
    assert_eq!(get(&base, "/api/v1/runs/3/export?format=pdf").await.0, 400);
    // The JUnit export reads back through the JUnit import: names and outcomes survive
    // (tests that did not run come back unknown, as the import reads `<skipped>`).
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/imports/junit?machine=rig-copy"))
        .header("content-type", "application/xml")
        .body(xml.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await.unwrap()
    );
    let copy = get_json(&base, "/api/v1/runs/4").await;
    let copied: Vec<(String, String)> = copy["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tests"].as_array().unwrap().clone())
        .map(|t| {
            (
                t["file"]["file_name"].as_str().unwrap().to_owned(),
                t["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let original = get_json(&base, "/api/v1/runs/3").await;
    let expected: Vec<(String, String)> = original["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["tests"].as_array().unwrap().clone())
        .map(|t| {
            let status = match t["status"].as_str().unwrap() {
                "passed" | "warning" => "passed",
                "failed" => "failed",
                "error" => "error",
                _ => "unknown",
            };
            (
                t["file"]["file_name"].as_str().unwrap().to_owned(),
                status.to_owned(),
            )
        })
        .collect();
    assert_eq!(copied, expected);

    // The pages.
    let (status, _, page) = get(&base, &format!("/tests/history/{key}/?run=3")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<svg class=\"chart\""), "a duration chart");
    assert!(page.contains("point marked"), "the run asked for is marked");
    assert!(
        page.contains("data-field=\"pass-rate\">67 %"),
        "two of three passed"
    );
    let (_, _, run_page) = get(&base, "/machine/run_data/3/").await;
    assert!(run_page.contains("Compared with <a href=\"/machine/run_data/1/\">run #1</a>"));
    assert!(run_page.contains("<span class=\"badge new-failure\">new failure</span>"));
    assert!(run_page.contains(&format!("/tests/history/{key}/?run=3")));
    // A finished run (the first, abandoned by the third) gives its execution time in words.
    let (_, _, first_run) = get(&base, "/machine/run_data/1/").await;
    assert!(
        first_run.contains("<span class=\"muted\">(0 minutes)</span>"),
        "execution time in words"
    );
    let (_, _, hidden) = get(&base, "/machine/run_data/3/?hide_passed=1").await;
    assert!(!hidden.contains(">lamp_off.py</a>"), "passed tests hidden");
    assert!(hidden.contains(">lamp_on.py</a>"));
    let (_, _, only_failed) = get(&base, "/machine/run_data/3/?status=failed").await;
    assert!(only_failed.contains("/test/9\">lamp_on.py</a>"));
    assert!(!only_failed.contains("/test/11\">lamp_off.py</a>"));
    assert!(
        only_failed.contains("aria-current=\"true\">failed 1</a>"),
        "the chip is on"
    );
    let (_, _, found_in_run) = get(&base, "/machine/run_data/3/?q=OFF").await;
    assert!(found_in_run.contains("/test/11\">lamp_off.py</a>"));
    assert!(!found_in_run.contains("/test/9\">lamp_on.py</a>"));
    assert!(
        !found_in_run.contains(">motor.py</a>"),
        "scenarios without a match are left out"
    );
    assert_eq!(get(&base, "/machine/run_data/3/?status=bogus").await.0, 400);
    let (status, _, search) = get(&base, "/search/?q=lamp").await;
    assert_eq!(status, 200);
    assert!(search.contains(&format!("/tests/history/{key}/")));
    let (status, _, matrix_page) = get(
        &base,
        "/matrix/?master_path=/rig/scenarios&master_name=master.py",
    )
    .await;
    assert_eq!(status, 200);
    assert!(matrix_page.contains("id=\"matrix\""));
    assert_eq!(get(&base, "/flaky/").await.0, 200);
    let (status, _, only_rig_2) = get(
        &base,
        "/matrix/?master_path=/rig/scenarios&master_name=master.py&machines=2&machines=",
    )
    .await;
    assert_eq!(status, 200);
    assert!(only_rig_2.contains(">rig-2</a>") && !only_rig_2.contains(">rig-1</a><br>"));
    // A test's own page leads to its identity's history with its run marked.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/test/9/history/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/tests/history/{key}/?run=3")
    );
    let (_, _, test_page) = get(&base, "/test/9/").await;
    assert!(test_page.contains("/test/9/history/"));
    assert_eq!(get(&base, "/tests/history/nope/").await.0, 400);
}
