//! The reference binary and the virtual test machine, end to end over real sockets.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use serde_json::Value;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use stpt_core::{InProcessBus, Status, Tracker};
use stpt_http::HttpConfig;
use stpt_server::virtual_machine::{Protocol, VirtualMachine, VirtualMachineConfig};
use stpt_store_memory::MemoryStore;
use stpt_testkit::free_port;

const PLAN: &str = include_str!("../../stpt-core/fixtures/plan-python-runner.json");

struct Server {
    child: tokio::process::Child,
    base: String,
}

impl Server {
    async fn start(database_url: &str) -> Server {
        let port = free_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stpt-server"))
            .args([
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database_url,
                "--log",
                "warn",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if let Ok(response) = reqwest::get(format!("{base}/readyz")).await {
                if response.status().is_success() {
                    return Server { child, base };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not become ready");
    }

    /// SIGTERM, then wait: the server shuts down gracefully.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "graceful shutdown exits 0: {status}");
    }
}

#[tokio::test]
async fn data_survives_a_restart_on_the_default_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("data/stpt.sqlite3").display()
    );
    let server = Server::start(&url).await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/tm_api/dry_run/", server.base))
        .header("content-type", "application/json")
        .body(PLAN)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let start = serde_json::json!({"machine_name": "machine #1", "file_path": "/rig/test_cases/01_feature_lamp",
        "file_name": "01_01_test_lamp.py", "timestamp_start": "2026-11-24 13:02:01"});
    let started = client
        .post(format!("{}/tm_api/test_start/", server.base))
        .json(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    server.stop().await;

    let server = Server::start(&url).await;
    let last: Value = reqwest::get(format!("{}/tm_api/machine_last_data/1/", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(last["status"], "running");
    assert_eq!(last["scenarios"][0]["tests"][0]["status"], "running");
    assert_eq!(last["tests_count"], 10);
    server.stop().await;
}

#[tokio::test]
async fn help_names_every_setting() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stpt-server"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for name in [
        "--bind",
        "STPT_BIND",
        "--database-url",
        "STPT_DATABASE_URL",
        "--redis-url",
        "STPT_REDIS_URL",
        "--log",
        "--demo",
    ] {
        assert!(
            help.contains(name),
            "--help does not mention {name}:\n{help}"
        );
    }
}

#[tokio::test]
async fn bad_database_url_fails_clearly() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stpt-server"))
        .args(["--database-url", "mysql://nope", "--bind", "127.0.0.1:0"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mysql://nope"), "{stderr}");
}

/// The virtual machine drives a real server over both protocols, and every test ends with the
/// status the machine chose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_machine_runs_plans_over_both_protocols() {
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = stpt_server::app(tracker, HttpConfig::default());
    let server = tokio::spawn(stpt_server::serve(listener, app, std::future::pending()));
    for (n, protocol) in [Protocol::Seed, Protocol::V1].into_iter().enumerate() {
        let mut machine = VirtualMachine::new(VirtualMachineConfig {
            server: base.clone(),
            name: format!("vm-{n}"),
            scenarios: 3,
            tests_per_scenario: 4,
            mean_test_duration: Duration::from_millis(1),
            protocol,
            seed: 7 + n as u64,
        });
        let report = machine.run_once().await.unwrap();
        assert_eq!(report.statuses.len(), 12);
        let run: Value = reqwest::get(format!("{base}/api/v1/runs/{}", report.run_id))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored: Vec<Status> = run["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["tests"].as_array().unwrap().iter())
            .map(|t| serde_json::from_value(t["status"].clone()).unwrap())
            .collect();
        assert_eq!(stored, report.statuses, "{protocol:?}");
        let script: Value = reqwest::get(format!(
            "{base}/api/v1/tests/{}",
            run["scenarios"][0]["tests"][0]["id"]
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert!(script["script"].as_str().unwrap().contains("def test_"));
    }
    server.abort();
}

#[tokio::test]
async fn metrics_count_events_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&format!(
        "sqlite://{}",
        dir.path().join("m.sqlite3").display()
    ))
    .await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: String| {
        client
            .post(format!("{}{path}", server.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        post("/tm_api/dry_run/", PLAN.to_owned())
            .await
            .unwrap()
            .status(),
        201
    );
    let unmatched = serde_json::json!({"machine_name": "ghost", "file_path": "/t", "file_name": "a.py",
        "timestamp_start": "2026-11-24 13:00:00"});
    assert_eq!(
        post("/tm_api/test_start/", unmatched.to_string())
            .await
            .unwrap()
            .status(),
        409
    );
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        r#"stpt_events_total{kind="plan",outcome="applied"} 1"#,
        r#"stpt_events_total{kind="test_start",outcome="no_match"} 1"#,
        r#"stpt_http_request_duration_seconds_bucket{method="POST",route="/tm_api/dry_run/",status="201""#,
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in:\n{metrics}"
        );
    }
    server.stop().await;
}
