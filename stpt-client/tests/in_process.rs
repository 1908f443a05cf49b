//! The client and the spool against stpt's router served in-process on a local port.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use stpt_client::{
    BatchEvent, BatchOutcome, Client, ClientError, MasterScenarioPayload, PageRequest, PlanPayload,
    RunDetail, ScenarioPayload, SpoolConfig, SpoolError, SpooledClient, Status, TestPayload,
    TestRef, new_event_id,
};
use stpt_core::{InProcessBus, Tracker};
use stpt_store_memory::MemoryStore;

/// The full router on a memory store, runner ingestion open, on `listener`.
fn serve_on(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()));
    let config = stpt_http::HttpConfig::default()
        .with_accounts(stpt_core::accounts::Accounts::new(Arc::new(
            MemoryStore::new(),
        )))
        .with_ingest_access(stpt_http::IngestAccess::open());
    let app: axum::Router = stpt_http::router(tracker, &config);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    serve_on(listener);
    base
}

/// A local port nothing listens on (yet).
async fn unused_port() -> u16 {
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    probe.local_addr().unwrap().port()
}

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
                            script: Some("pass\n".into()),
                        })
                        .collect(),
                })
                .collect(),
        },
    }
}

/// Each test's file name and status, in plan order.
fn tests_of(run: &RunDetail) -> Vec<(String, Status)> {
    run.scenarios
        .iter()
        .flat_map(|scenario| scenario.tests.iter())
        .map(|test| (test.file.file_name.clone(), test.status))
        .collect()
}

#[tokio::test]
async fn plans_events_batches_and_reads() {
    let client = Client::new(&serve().await).unwrap();
    let key = new_event_id();
    let created = client.plan(&plan("rig-1", 2, 2), &key).await.unwrap();
    assert!(!created.replayed);
    let again = client.plan(&plan("rig-1", 2, 2), &key).await.unwrap();
    assert!(again.replayed, "the same key stores the plan once");
    assert_eq!(again.run_id, created.run_id);

    let first = created.test_id(0, 0).unwrap();
    let start_key = new_event_id();
    let started = client
        .start_test(first, Utc::now(), &start_key)
        .await
        .unwrap();
    assert_eq!(started.receipt.status, Status::Running);
    let resent = client
        .start_test(first, Utc::now(), &start_key)
        .await
        .unwrap();
    assert!(resent.replayed);
    let stopped = client
        .stop_test(first, Status::Passed, Utc::now(), &new_event_id())
        .await
        .unwrap();
    assert_eq!(stopped.receipt.status, Status::Passed);

    let second = TestRef::Id {
        test_id: created.test_id(0, 1).unwrap(),
    };
    let never_started = TestRef::Id {
        test_id: created.test_id(1, 1).unwrap(),
    };
    let start_id = new_event_id();
    let batch = vec![
        BatchEvent::start(start_id.clone(), second.clone(), Utc::now()),
        BatchEvent::stop(new_event_id(), second, Status::Failed, Utc::now()).unwrap(),
        BatchEvent::stop(new_event_id(), never_started, Status::Passed, Utc::now()).unwrap(),
    ];
    let outcomes = client.post_events(&batch).await.unwrap();
    assert!(matches!(outcomes[0], BatchOutcome::Applied { .. }));
    assert!(matches!(outcomes[1], BatchOutcome::Applied { .. }));
    assert!(
        matches!(&outcomes[2], BatchOutcome::Rejected { error } if error.code == "no_match"),
        "{outcomes:?}"
    );
    let replayed = client.post_events(&batch[..1]).await.unwrap();
    assert!(matches!(replayed[0], BatchOutcome::Replayed { .. }));

    // A stop of a test that is not running: refused, with the envelope's code.
    let refused = client
        .stop_test(first, Status::Passed, Utc::now(), &new_event_id())
        .await
        .unwrap_err();
    match &refused {
        ClientError::Refused { status, error } => {
            assert_eq!(*status, 409);
            assert_eq!(error.code, "no_match");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(!refused.is_retryable());
    assert!(matches!(
        client
            .stop_test(first, Status::Running, Utc::now(), &new_event_id())
            .await,
        Err(ClientError::InvalidInput(_))
    ));

    let machines = client
        .machines(PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(machines.total, 1);
    let machine = &machines.items[0];
    assert_eq!(machine.name, "rig-1");
    assert_eq!(client.machine(machine.id).await.unwrap().id, machine.id);
    let runs = client
        .machine_runs(machine.id, PageRequest::first(10).unwrap())
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 1);
    let run = client.run(created.run_id).await.unwrap();
    assert_eq!(
        tests_of(&run),
        [
            ("test_0_0.py".into(), Status::Passed),
            ("test_0_1.py".into(), Status::Failed),
            ("test_1_0.py".into(), Status::Waiting),
            ("test_1_1.py".into(), Status::Waiting),
        ]
    );
    let eta = client.run_eta(created.run_id).await.unwrap();
    assert_eq!(eta.run_id, created.run_id);
    let script = client.test(first).await.unwrap();
    assert_eq!(script.script.as_deref(), Some("pass\n"));
    let missing = client.run(stpt_core::RunId(999)).await.unwrap_err();
    assert!(matches!(missing, ClientError::Refused { status: 404, .. }));
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_transport_error() {
    let client = Client::new(&format!("http://127.0.0.1:{}", unused_port().await)).unwrap();
    let error = client
        .plan(&plan("rig", 1, 1), &new_event_id())
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_busy_server_says_when_to_retry() {
    use axum::http::{HeaderValue, StatusCode, header};
    let app = axum::Router::new().fallback(|| async {
        let mut response = axum::response::IntoResponse::into_response((
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": {"code": "busy", "message": "try later"}})),
        ));
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        response
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let error = Client::new(&base)
        .unwrap()
        .run(stpt_core::RunId(1))
        .await
        .unwrap_err();
    match &error {
        ClientError::Busy {
            status,
            retry_after,
            message,
        } => {
            assert_eq!(*status, 503);
            assert_eq!(*retry_after, Some(Duration::from_secs(2)));
            assert_eq!(message, "try later");
        }
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(error.is_retryable());
}

fn fast(config: SpoolConfig) -> SpoolConfig {
    config.backoff(Duration::from_millis(20), Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_sends_in_order_and_drains() {
    let base = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(&base).unwrap();
    let spool =
        SpooledClient::open(client.clone(), fast(SpoolConfig::new(dir.path().join("j")))).unwrap();
    let spooled = spool.plan(plan("rig-2", 2, 3)).unwrap();
    for s in 0..2 {
        for t in 0..3 {
            spool.start(&spooled, s, t).unwrap();
            spool.stop(&spooled, s, t, Status::Warning).unwrap();
        }
    }
    assert!(matches!(
        spool.start(&spooled, 2, 0),
        Err(SpoolError::InvalidInput(_))
    ));
    assert!(matches!(
        spool.stop(&spooled, 0, 0, Status::Waiting),
        Err(SpoolError::InvalidInput(_))
    ));
    assert!(spool.drain(Duration::from_secs(10)).await);
    assert_eq!(spool.pending(), 0);
    assert!(spool.rejected().is_empty());
    assert!(spool.close(Duration::from_secs(1)).await);
    let machines = client
        .machines(PageRequest::first(10).unwrap())
        .await
        .unwrap();
    let run = client
        .run(machines.items[0].latest_run.unwrap())
        .await
        .unwrap();
    assert!(
        tests_of(&run)
            .iter()
            .all(|(_, status)| *status == Status::Warning)
    );
    assert_eq!(run.summary.status, Status::Warning);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_keeps_events_while_the_server_is_away_and_after_a_restart() {
    let port = unused_port().await;
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("spool").join("rig.journal");
    // No server: the first runner records, gives up waiting, and exits.
    let offline = SpooledClient::open(
        Client::new(&base).unwrap(),
        fast(SpoolConfig::new(&journal)),
    )
    .unwrap();
    let spooled = offline.plan(plan("rig-3", 1, 3)).unwrap();
    for t in 0..3 {
        offline.start(&spooled, 0, t).unwrap();
        offline.stop(&spooled, 0, t, Status::Passed).unwrap();
    }
    assert_eq!(offline.pending(), 7);
    assert!(!offline.close(Duration::from_millis(300)).await);
    assert_eq!(SpooledClient::pending_in(&journal).unwrap(), 7);

    // The next run finds them and sends them first, once the server is there.
    let again = SpooledClient::open(
        Client::new(&base).unwrap(),
        fast(SpoolConfig::new(&journal)),
    )
    .unwrap();
    assert_eq!(again.pending(), 7);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    serve_on(listener);
    assert!(again.drain(Duration::from_secs(10)).await);
    assert!(again.rejected().is_empty());
    assert!(again.close(Duration::from_secs(1)).await);
    let client = Client::new(&base).unwrap();
    let machines = client
        .machines(PageRequest::first(10).unwrap())
        .await
        .unwrap();
    let run = client
        .run(machines.items[0].latest_run.unwrap())
        .await
        .unwrap();
    assert_eq!(
        tests_of(&run),
        (0..3)
            .map(|t| (format!("test_0_{t}.py"), Status::Passed))
            .collect::<Vec<_>>()
    );
    assert_eq!(SpooledClient::pending_in(&journal).unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_dropped_and_the_rest_goes_on() {
    let base = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(&base).unwrap();
    let spool =
        SpooledClient::open(client.clone(), fast(SpoolConfig::new(dir.path().join("j")))).unwrap();
    let spooled = spool.plan(plan("rig-4", 1, 2)).unwrap();
    spool.stop(&spooled, 0, 0, Status::Passed).unwrap(); // never started: matches nothing
    spool.start(&spooled, 0, 1).unwrap();
    spool.stop(&spooled, 0, 1, Status::Passed).unwrap();
    assert!(spool.drain(Duration::from_secs(10)).await);
    let rejected = spool.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    // A plan the server refuses (a blank machine name): it and its events are dropped.
    let refused = spool.plan(plan(" ", 1, 1)).unwrap();
    spool.start(&refused, 0, 0).unwrap();
    assert!(spool.drain(Duration::from_secs(10)).await);
    let rejected = spool.rejected();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert!(
        rejected[2].reason.contains("plan was refused"),
        "{rejected:?}"
    );
    let machines = client
        .machines(PageRequest::first(10).unwrap())
        .await
        .unwrap();
    let run = client
        .run(machines.items[0].latest_run.unwrap())
        .await
        .unwrap();
    let statuses: Vec<Status> = tests_of(&run).into_iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, [Status::Waiting, Status::Passed]);
}

#[tokio::test]
async fn a_full_spool_refuses_events_with_a_clear_error() {
    let base = format!("http://127.0.0.1:{}", unused_port().await);
    let dir = tempfile::tempdir().unwrap();
    let spool = SpooledClient::open(
        Client::new(&base).unwrap(),
        fast(SpoolConfig::new(dir.path().join("j")).max_bytes(2048)),
    )
    .unwrap();
    let spooled = spool.plan(plan("rig-5", 1, 10)).unwrap();
    let mut recorded = 0;
    let full = loop {
        match spool.start(&spooled, 0, recorded) {
            Ok(_) => recorded += 1,
            Err(error) => break error,
        }
        assert!(recorded < 10, "the bound was never reached");
    };
    assert!(
        matches!(
            full,
            SpoolError::Full {
                max_bytes: 2048,
                ..
            }
        ),
        "{full:?}"
    );
    assert!(full.to_string().contains("is full"), "{full}");
    assert!(spool.pending_bytes() <= 2048);
    assert_eq!(spool.pending(), recorded + 1);
}
