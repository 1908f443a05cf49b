//! The reference binary and the virtual test machine, end to end over real sockets.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use serde_json::Value;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use stpt_core::{InProcessBus, Status, Tracker};
use stpt_http::HttpConfig;
use stpt_server::virtual_machine::{Protocol, VirtualMachine, VirtualMachineConfig};
use stpt_store_memory::MemoryStore;
use support::Server;

const PLAN: &str = include_str!("../../stpt-core/fixtures/plan-python-runner.json");

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
    let last = &last["last_master_scenario"];
    assert_eq!(last["status"], "running");
    assert_eq!(last["scenarios"][0]["tests"][0]["status"], "running");
    assert_eq!(last["tests_count"], 10);
    server.stop().await;
}

/// `stpt-server backup PATH` copies the SQLite store while a server writes to it; a server on
/// the copy serves the same runs; an existing target is refused and left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_the_sqlite_store_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stpt.sqlite3").display());
    let server = Server::start(&url).await;
    assert_eq!(post_plan(&server.base, "rig-1", None).await, 201);
    let copy = dir.path().join("copy.sqlite3");
    let said = admin(&url, &["backup", copy.to_str().unwrap()], "").await;
    assert!(said.contains("backup of"), "{said}");
    // Writes go on after the copy: the copy keeps what was there when it was taken.
    assert_eq!(post_plan(&server.base, "rig-2", None).await, 201);
    server.stop().await;

    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_stpt-server"))
        .args(["--database-url", &url, "--log", "warn", "backup"])
        .arg(&copy)
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let restored = Server::start(&format!("sqlite://{}", copy.display())).await;
    let machines: Value = reqwest::get(format!("{}/api/v1/machines", restored.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = machines["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rig-1"]);
    restored.stop().await;
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
    let accounts =
        stpt_core::accounts::Accounts::new(Arc::new(stpt_store_memory::MemoryStore::new()));
    let app = stpt_server::app(
        tracker,
        accounts,
        HttpConfig::default().with_ingest_access(stpt_http::IngestAccess::loopback()),
    );
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
            token: None,
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

/// Runs `stpt-server ARGS` to completion with `stdin`; returns its stdout.
async fn admin(database_url: &str, args: &[&str], stdin: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stpt-server"))
        .args(["--database-url", database_url, "--log", "warn"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn post_plan(base: &str, machine: &str, token: Option<&str>) -> u16 {
    let mut plan: Value = serde_json::from_str(PLAN).unwrap();
    plan["machine_name"] = Value::from(machine);
    let mut request = reqwest::Client::new()
        .post(format!("{base}/tm_api/dry_run/"))
        .json(&plan);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

/// The first admin, runner tokens and password resets from the command line, on the same
/// SQLite file a running server uses; a server on a non-loopback address wants tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_manage_users_and_runner_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stpt.sqlite3").display());
    admin_story(&url).await;
}

/// The same on PostgreSQL. Needs `STPT_TEST_POSTGRES_URL`; skipped without it, unless
/// `STPT_TEST_INTEGRATION=1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_manage_users_and_runner_tokens_on_postgres() {
    let Some(postgres) = stpt_testkit::postgres_url() else {
        return;
    };
    let database = stpt_testkit::TempDatabase::create(&postgres).await;
    admin_story(&database.url()).await;
}

async fn admin_story(url: &str) {
    let url = url.to_owned();
    let created = admin(
        &url,
        &[
            "user",
            "create",
            "ada",
            "--email",
            "ada@lab.example",
            "--password-stdin",
        ],
        "correct horse\n",
    )
    .await;
    assert!(created.contains("created admin `ada` (id 1)"), "{created}");
    assert!(
        !created.contains("password:"),
        "a password from stdin is not echoed"
    );
    let listed = admin(&url, &["user", "list"], "").await;
    assert_eq!(listed.trim(), "1\tada\tadmin\tada@lab.example");
    let reset = admin(&url, &["user", "reset-password", "ada"], "").await;
    let password = reset
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap();
    assert_eq!(password.len(), 24, "{reset}");

    let token = admin(
        &url,
        &["token", "create", "rig one", "--machine", "RIG-1"],
        "",
    )
    .await;
    let secret = token.lines().nth(1).unwrap().trim().to_owned();
    assert!(secret.starts_with("stpt_"), "{token}");

    let server = Server::start_with(&url, "0.0.0.0", &[]).await;
    assert_eq!(
        post_plan(&server.base, "rig-1", None).await,
        401,
        "tokens only off loopback"
    );
    assert_eq!(post_plan(&server.base, "rig-1", Some(&secret)).await, 201);
    assert_eq!(post_plan(&server.base, "rig-2", Some(&secret)).await, 403);

    let tokens = admin(&url, &["token", "list"], "").await;
    assert!(tokens.contains("1\trig one\tRIG-1\tactive"), "{tokens}");
    admin(&url, &["token", "revoke", "1"], "").await;
    assert_eq!(post_plan(&server.base, "rig-1", Some(&secret)).await, 401);
    assert!(
        admin(&url, &["token", "list"], "")
            .await
            .contains("revoked")
    );
    server.stop().await;
}

/// `--open-ingest` takes tokenless runners from anywhere, and says so at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_ingest_is_explicit_and_logged() {
    use tokio::io::AsyncReadExt;
    let mut server = Server::start_with("memory", "0.0.0.0", &["--open-ingest"]).await;
    assert_eq!(post_plan(&server.base, "rig-1", None).await, 201);
    assert_eq!(
        post_plan(&server.base, "rig-1", Some("stpt_forged")).await,
        401
    );
    let mut stdout = server.child.stdout.take().unwrap();
    let mut logs = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stdout.read(&mut logs))
        .await
        .unwrap()
        .unwrap();
    let logs = String::from_utf8_lossy(&logs[..read]).into_owned();
    assert!(
        logs.contains("open ingestion") && logs.contains("WARN"),
        "{logs}"
    );
    server.stop().await;
}
