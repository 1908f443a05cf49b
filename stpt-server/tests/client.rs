//! `stpt-client` against the real binary on SQLite: runner tokens, and the spool's promise:
//! a server killed and restarted while a runner posts still gets every result once, in order.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use chrono::Utc;
use std::time::Duration;
use stpt_client::{
    Client, ClientError, MasterScenarioPayload, PageRequest, PlanPayload, RunDetail,
    ScenarioPayload, SpoolConfig, SpooledClient, Status, TestPayload, new_event_id,
};
use support::Server;

const STATUSES: [Status; 6] = [
    Status::Passed,
    Status::Failed,
    Status::Warning,
    Status::Error,
    Status::Passed,
    Status::Unknown,
];

fn plan(machine: &str, scenarios: usize, tests: usize) -> PlanPayload {
    PlanPayload {
        machine_name: machine.into(),
        timestamp: Utc::now().into(),
        master_scenario: MasterScenarioPayload {
            file_path: "/rig/scenarios".into(),
            file_name: "master.py".into(),
            script: None,
            scenarios: (0..scenarios)
                .map(|s| ScenarioPayload {
                    file_path: "/rig/scenarios".into(),
                    file_name: format!("scenario_{s}.py"),
                    script: Some(String::new()),
                    tests: (0..tests)
                        .map(|t| TestPayload {
                            file_path: "/rig/tests".into(),
                            file_name: format!("test_{s}_{t}.py"),
                            script: None,
                        })
                        .collect(),
                })
                .collect(),
        },
    }
}

/// A runner token for `machine`, made by the binary's `token create` on `database_url`.
async fn create_token(database_url: &str, machine: &str) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_stpt-server"))
        .args(["--database-url", database_url, "token", "create", "bench"])
        .args(["--machine", machine])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().last().unwrap().trim().to_owned()
}

/// The machine's latest run.
async fn latest_run(client: &Client, machine: &str) -> RunDetail {
    let machines = client
        .machines(PageRequest::first(100).unwrap())
        .await
        .unwrap();
    let found = machines
        .items
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(machine))
        .unwrap();
    client.run(found.latest_run.unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_speaks_to_the_binary_with_a_runner_token() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stpt.sqlite3").display());
    let server = Server::start(&url).await;
    let token = create_token(&url, "bench-2").await;
    let client = Client::new(&server.base).unwrap().with_token(token);

    let created = client
        .plan(&plan("bench-2", 1, 2), &new_event_id())
        .await
        .unwrap();
    let ids: Vec<_> = created.test_ids().collect();
    for (test, status) in ids.iter().zip([Status::Passed, Status::Failed]) {
        client
            .start_test(*test, Utc::now(), &new_event_id())
            .await
            .unwrap();
        client
            .stop_test(*test, status, Utc::now(), &new_event_id())
            .await
            .unwrap();
    }
    let run = latest_run(&client, "bench-2").await;
    assert_eq!(run.summary.id, created.run_id);
    assert_eq!(run.summary.status, Status::Failed);
    let eta = client.run_eta(created.run_id).await.unwrap();
    assert_eq!(
        eta.remaining_seconds,
        Some(0),
        "a finished run has nothing left"
    );

    // The token is for bench-2 only; a wrong token is not one.
    let elsewhere = client
        .plan(&plan("bench-3", 1, 1), &new_event_id())
        .await
        .unwrap_err();
    assert!(
        matches!(&elsewhere, ClientError::Refused { status: 403, .. }),
        "{elsewhere:?}"
    );
    let forged = Client::new(&server.base)
        .unwrap()
        .with_token("stpt_not-a-token")
        .plan(&plan("bench-2", 1, 1), &new_event_id())
        .await
        .unwrap_err();
    assert!(
        matches!(&forged, ClientError::Refused { status: 401, .. }),
        "{forged:?}"
    );
    server.stop().await;
}

/// The durability test for the Rust client: SIGKILL the server while the runner
/// posts, start it again on the same SQLite file and port, and find every result stored
/// exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_and_restarted_mid_run_gets_every_result_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("stpt.sqlite3").display());
    let port = stpt_testkit::free_port();
    let mut server = Some(Server::start_on(&url, "127.0.0.1", port, &[]).await);
    let base = format!("http://127.0.0.1:{port}");
    let token = create_token(&url, "bench-1").await;
    let client = Client::new(&base).unwrap().with_token(token);
    let config = SpoolConfig::new(dir.path().join("spool.journal"))
        .backoff(Duration::from_millis(50), Duration::from_millis(500));
    let spool = SpooledClient::open(client.clone(), config).unwrap();

    let (scenarios, tests) = (3, 20);
    let spooled = spool.plan(plan("bench-1", scenarios, tests)).unwrap();
    let mut expected = Vec::new();
    let mut pending_while_down = 0;
    let mut number = 0;
    for s in 0..scenarios {
        for t in 0..tests {
            if number == 15 {
                // SIGKILL, while events are in flight.
                server.take().unwrap().kill().await;
            }
            if number == 40 {
                pending_while_down = spool.pending();
                server = Some(Server::start_on(&url, "127.0.0.1", port, &[]).await);
            }
            spool.start(&spooled, s, t).unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            let status = STATUSES[number % STATUSES.len()];
            spool.stop(&spooled, s, t, status).unwrap();
            expected.push((
                format!("scenario_{s}.py"),
                format!("test_{s}_{t}.py"),
                status,
            ));
            number += 1;
        }
    }
    assert!(
        pending_while_down >= 2 * 25,
        "the events of the outage waited in the spool: {pending_while_down}"
    );
    assert!(
        spool.drain(Duration::from_secs(60)).await,
        "the spool drains once the server is back"
    );
    assert!(spool.rejected().is_empty(), "{:?}", spool.rejected());
    assert!(spool.close(Duration::from_secs(1)).await);

    let machines = client
        .machines(PageRequest::first(100).unwrap())
        .await
        .unwrap();
    let machine = machines.items.iter().find(|m| m.name == "bench-1").unwrap();
    let runs = client
        .machine_runs(machine.id, PageRequest::first(100).unwrap())
        .await
        .unwrap();
    assert_eq!(runs.total, 1, "the plan is stored once");
    let run = latest_run(&client, "bench-1").await;
    let stored: Vec<_> = run
        .scenarios
        .iter()
        .flat_map(|scenario| {
            scenario.tests.iter().map(|test| {
                (
                    scenario.file.file_name.clone(),
                    test.file.file_name.clone(),
                    test.status,
                )
            })
        })
        .collect();
    assert_eq!(stored, expected);
    // In order: each test started after the one before it stopped.
    let tests: Vec<_> = run.scenarios.iter().flat_map(|s| s.tests.iter()).collect();
    for (before, after) in tests.iter().zip(tests.iter().skip(1)) {
        assert!(before.timestamp_stop.unwrap() <= after.timestamp_start.unwrap());
    }
    server.take().unwrap().stop().await;
}
