//! The WebSockets over a real listener: snapshot then changes in order, the seed's message
//! shapes, resynchronisation after a lag, isolation between machines, and compact updates.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use futures_util::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use stpt_core::{
    InProcessBus, LiveBus, LiveEvent, MachineId, RunChange, RunId, Status, StatusCounts, Topic,
};
use stpt_http::HttpConfig;
use support::{XSS_NAME, big_plan, post, serve, small_plan, start, stop};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn server() -> String {
    serve(support::open_router(
        support::tracker(),
        HttpConfig::default(),
    ))
    .await
}

async fn connect(base: &str, path: &str) -> Socket {
    let url = format!("{}{path}", base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text message as JSON and its size in bytes.
async fn next_sized(socket: &mut Socket) -> (Value, usize) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("no message within 5 s")
            .expect("socket closed")
            .unwrap();
        if let Message::Text(text) = message {
            return (serde_json::from_str(&text).unwrap(), text.len());
        }
    }
}

async fn next(socket: &mut Socket) -> Value {
    next_sized(socket).await.0
}

async fn assert_silent(socket: &mut Socket) {
    if let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(300), socket.next()).await
    {
        panic!("unexpected message: {text}");
    }
}

async fn send(base: &str, (path, body): (&str, Value)) {
    let (status, answer) = post(base, path, &body).await;
    assert!(
        status == 201 || status == 202,
        "{path} {body}: {status} {answer}"
    );
}

#[tokio::test]
async fn last_run_socket_sends_a_snapshot_then_changes_in_order() {
    let base = server().await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 13:00:00"),
        ),
    )
    .await;
    let mut socket = connect(&base, "/ws/v1/machine/1/last/").await;

    let snapshot = next(&mut socket).await;
    let run = &snapshot["snapshot"]["run"];
    assert_eq!(snapshot["snapshot"]["now"], "2026-11-24T15:30:00Z");
    assert_eq!(run["summary"]["id"], 1);
    assert_eq!(run["summary"]["status"], "waiting");
    assert_eq!(
        run["scenarios"][0]["tests"][1]["file"]["file_name"],
        XSS_NAME
    );

    send(
        &base,
        start("rig-1", "/rig/lamp", "lamp_on.py", "2026-11-24 13:01:00"),
    )
    .await;
    let change = &next(&mut socket).await["run_changed"];
    assert_eq!(change["run_id"], 1);
    assert_eq!(change["status"], "running");
    assert_eq!(change["counts"]["running"], 1);
    // The run starts on the server's clock; the test keeps the runner's time.
    assert_eq!(change["timestamp_start"], "2026-11-24T15:30:00Z");
    assert_eq!(
        change["tests"],
        serde_json::json!([{
            "id": 1, "status": "running", "timestamp_start": "2026-11-24T13:01:00Z", "timestamp_stop": null
        }])
    );
    assert_eq!(change["scenarios"][0]["id"], 1);

    send(
        &base,
        stop(
            "rig-1",
            "/rig/lamp",
            "lamp_on.py",
            "failed",
            "2026-11-24 13:02:00",
        ),
    )
    .await;
    let change = &next(&mut socket).await["run_changed"];
    assert_eq!(change["tests"][0]["status"], "failed");
    assert_eq!(change["status"], "waiting");
    assert_eq!(change["counts"]["failed"], 1);

    // A new plan: the old run is abandoned, then the new one arrives once in full.
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 14:00:00"),
        ),
    )
    .await;
    let abandoned = &next(&mut socket).await["run_changed"];
    assert_eq!(abandoned["run_id"], 1);
    assert_eq!(abandoned["closed"]["status"], "unknown");
    let created = &next(&mut socket).await["run_created"];
    assert_eq!(created["id"], 2);
    let snapshot = &next(&mut socket).await["snapshot"];
    assert_eq!(snapshot["run"]["summary"]["id"], 2);

    send(
        &base,
        start(
            "rig-1",
            "/rig/motor",
            "motor_spin.py",
            "2026-11-24 14:01:00",
        ),
    )
    .await;
    let change = &next(&mut socket).await["run_changed"];
    assert_eq!(change["run_id"], 2);
    assert_eq!(change["tests"][0]["status"], "running");
    assert_silent(&mut socket).await;
}

#[tokio::test]
async fn a_machine_without_run_gets_a_null_snapshot_then_its_first_run() {
    let base = server().await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 13:00:00"),
        ),
    )
    .await;
    let mut socket = connect(&base, "/ws/v1/run/1").await;
    assert_eq!(
        next(&mut socket).await["snapshot"]["run"]["summary"]["id"],
        1
    );
    // A run page follows its run only, and learns when a newer one supersedes it.
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 14:00:00"),
        ),
    )
    .await;
    assert_eq!(next(&mut socket).await["run_changed"]["run_id"], 1);
    assert_eq!(next(&mut socket).await["run_created"]["id"], 2);
    send(
        &base,
        start(
            "rig-1",
            "/rig/motor",
            "motor_spin.py",
            "2026-11-24 14:01:00",
        ),
    )
    .await;
    assert_silent(&mut socket).await;
}

#[tokio::test]
async fn machine_status_socket_uses_the_seed_key_with_names() {
    let base = server().await;
    let mut all = connect(&base, "/ws/v1/machine/status/").await;
    // The seed's own path: the seed's message exactly, no name.
    let mut seed = connect(&base, "/ws/machine/status/").await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 13:00:00"),
        ),
    )
    .await;
    assert_eq!(
        next(&mut all).await,
        serde_json::json!({"machine_id_status": {"id": 1, "status": "waiting", "name": "rig-1"}})
    );
    assert_eq!(
        next(&mut seed).await,
        serde_json::json!({"machine_id_status": {"id": 1, "status": "waiting"}})
    );
    send(
        &base,
        start("rig-1", "/rig/lamp", "lamp_on.py", "2026-11-24 13:01:00"),
    )
    .await;
    assert_eq!(
        next(&mut all).await["machine_id_status"]["status"],
        "running"
    );
    // With a page, the page's statuses come first (a reconnecting page catches up).
    let mut paged = connect(&base, "/ws/v1/machine/status?page=1&page_size=10").await;
    assert_eq!(
        next(&mut paged).await,
        serde_json::json!({"machine_id_status": {"id": 1, "status": "running", "name": "rig-1"}})
    );
    assert_silent(&mut all).await;
}

/// The next message under `key`, passing over others (liveness changes come when they come).
async fn next_keyed(socket: &mut Socket, key: &str) -> Value {
    loop {
        let message = next(socket).await;
        if let Some(value) = message.get(key) {
            return value.clone();
        }
    }
}

#[tokio::test]
async fn machine_lists_and_runs_tables_hear_failures_as_they_happen() {
    let base = server().await;
    let mut machines = connect(&base, "/ws/v1/machine/status/?liveness=1").await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 13:00:00"),
        ),
    )
    .await;
    assert_eq!(
        next_keyed(&mut machines, "machine_failures").await,
        serde_json::json!({"id": 1, "run_id": 1, "failed": 0})
    );
    let mut runs = connect(&base, "/ws/v1/machine/1/runs/?page=1").await;
    assert_eq!(next_keyed(&mut runs, "run_data").await["failed"], 0);
    send(
        &base,
        start("rig-1", "/rig/lamp", "lamp_on.py", "2026-11-24 13:01:00"),
    )
    .await;
    assert_eq!(next_keyed(&mut runs, "run_data").await["status"], "running");
    send(
        &base,
        stop(
            "rig-1",
            "/rig/lamp",
            "lamp_on.py",
            "failed",
            "2026-11-24 13:02:00",
        ),
    )
    .await;
    assert_eq!(
        next_keyed(&mut machines, "machine_failures").await,
        serde_json::json!({"id": 1, "run_id": 1, "failed": 1})
    );
    // The run's status stays what it was (tests still wait) but its failures moved.
    let data = next_keyed(&mut runs, "run_data").await;
    assert_eq!(
        (data["failed"].as_u64(), data["id"].as_i64()),
        (Some(1), Some(1)),
        "{data}"
    );
    // A page that (re)connects reads the failures of each machine's latest run first.
    let mut paged = connect(&base, "/ws/v1/machine/status/?page=1&liveness=1").await;
    assert_eq!(
        next_keyed(&mut paged, "machine_failures").await,
        serde_json::json!({"id": 1, "run_id": 1, "failed": 1})
    );
    // The seed's clients hear nothing of it.
    let mut seed = connect(&base, "/ws/machine/status/").await;
    send(
        &base,
        start(
            "rig-1",
            "/rig/motor",
            "motor_spin.py",
            "2026-11-24 13:03:00",
        ),
    )
    .await;
    send(
        &base,
        stop(
            "rig-1",
            "/rig/motor",
            "motor_spin.py",
            "error",
            "2026-11-24 13:04:00",
        ),
    )
    .await;
    assert_eq!(
        next_keyed(&mut machines, "machine_failures").await["failed"],
        2
    );
    // Only the seed's status messages (the machine went running, then waiting).
    for _ in 0..2 {
        let message = next(&mut seed).await;
        assert!(message.get("machine_id_status").is_some(), "{message}");
    }
    assert_silent(&mut seed).await;
}

/// A `run_data` message: its run, status, and times (a start once running, a stop once
/// finished, both on the server's clock).
fn assert_run_data(message: serde_json::Value, id: i64, status: &str) {
    let data = &message["run_data"];
    assert_eq!(
        (data["id"].as_i64(), data["status"].as_str()),
        (Some(id), Some(status)),
        "{message}"
    );
    let started = !data["timestamp_start"].is_null();
    let stopped = !data["timestamp_stop"].is_null();
    match status {
        "waiting" => assert!(!stopped, "{message}"),
        "running" => assert!(started && !stopped, "{message}"),
        _ => assert!(stopped, "{message}"),
    }
}

#[tokio::test]
async fn runs_socket_sends_status_changes_and_new_runs() {
    let base = server().await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 13:00:00"),
        ),
    )
    .await;
    let mut socket = connect(&base, "/ws/v1/machine/1/runs/?page=1").await;
    assert_run_data(next(&mut socket).await, 1, "waiting");
    send(
        &base,
        start("rig-1", "/rig/lamp", "lamp_on.py", "2026-11-24 13:01:00"),
    )
    .await;
    assert_run_data(next(&mut socket).await, 1, "running");
    // A second running test: the run's status did not change, so nothing is sent.
    send(
        &base,
        start(
            "rig-1",
            "/rig/motor",
            "motor_spin.py",
            "2026-11-24 13:01:30",
        ),
    )
    .await;
    assert_silent(&mut socket).await;
    send(
        &base,
        stop(
            "rig-1",
            "/rig/motor",
            "motor_spin.py",
            "passed",
            "2026-11-24 13:02:00",
        ),
    )
    .await;
    assert_run_data(next(&mut socket).await, 1, "waiting");
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 14:00:00"),
        ),
    )
    .await;
    assert_run_data(next(&mut socket).await, 1, "unknown");
    assert_run_data(next(&mut socket).await, 2, "waiting");
    assert_eq!(
        next(&mut socket).await,
        serde_json::json!({"run_created": {
            "id": 2, "status": "waiting", "timestamp": "24-11-2026  14:00:00", "scenarios": 3, "tests": 4
        }})
    );
}

#[tokio::test]
async fn sockets_of_one_machine_hear_nothing_of_another() {
    let base = server().await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-a", "2026-11-24 13:00:00"),
        ),
    )
    .await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-b", "2026-11-24 13:00:00"),
        ),
    )
    .await;
    let mut last_a = connect(&base, "/ws/v1/machine/1/last/").await;
    let mut runs_a = connect(&base, "/ws/v1/machine/1/runs/").await;
    let mut last_b = connect(&base, "/ws/v1/machine/2/last/").await;
    assert_eq!(
        next(&mut last_a).await["snapshot"]["run"]["summary"]["id"],
        1
    );
    assert_eq!(
        next(&mut last_b).await["snapshot"]["run"]["summary"]["id"],
        2
    );

    send(
        &base,
        start("rig-b", "/rig/lamp", "lamp_on.py", "2026-11-24 13:01:00"),
    )
    .await;
    send(
        &base,
        stop(
            "rig-b",
            "/rig/lamp",
            "lamp_on.py",
            "passed",
            "2026-11-24 13:01:30",
        ),
    )
    .await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-b", "2026-11-24 14:00:00"),
        ),
    )
    .await;
    send(
        &base,
        start("rig-a", "/rig/lamp", "lamp_on.py", "2026-11-24 13:02:00"),
    )
    .await;

    // The first thing machine A's sockets hear is machine A's event.
    let change = &next(&mut last_a).await["run_changed"];
    assert_eq!(change["machine_id"], 1);
    assert_eq!(change["run_id"], 1);
    assert_eq!(next(&mut runs_a).await["run_data"]["id"], 1);
    assert_silent(&mut last_a).await;
    assert_silent(&mut runs_a).await;
    assert_eq!(next(&mut last_b).await["run_changed"]["machine_id"], 2);
}

#[tokio::test]
async fn a_lagging_client_gets_a_fresh_snapshot() {
    // A current-thread runtime: while this test publishes without awaiting, the socket's
    // task cannot run, so it falls behind a bus that keeps two events.
    let bus = Arc::new(InProcessBus::with_capacity(2));
    let tracker = support::tracker_with(bus.clone());
    let base = serve(support::open_router(tracker, HttpConfig::default())).await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 13:00:00"),
        ),
    )
    .await;
    let mut socket = connect(&base, "/ws/v1/machine/1/last/").await;
    assert_eq!(
        next(&mut socket).await["snapshot"]["run"]["summary"]["status"],
        "waiting"
    );

    for _ in 0..10 {
        bus.publish(
            Topic::Machine(MachineId(1)),
            Arc::new(LiveEvent::RunChanged(RunChange {
                machine_id: MachineId(1),
                run_id: RunId(1),
                status: Status::Waiting,
                counts: StatusCounts::new(),
                timestamp_start: None,
                timestamp_stop: None,
                scenarios: Vec::new(),
                tests: Vec::new(),
                closed: None,
            })),
        );
    }
    let resync = next(&mut socket).await;
    assert_eq!(resync["snapshot"]["run"]["summary"]["id"], 1, "{resync}");
    // Then the events the bus still held, and nothing more.
    assert_eq!(next(&mut socket).await["run_changed"]["run_id"], 1);
    assert_eq!(next(&mut socket).await["run_changed"]["run_id"], 1);
    assert_silent(&mut socket).await;
}

#[tokio::test]
async fn a_big_run_snapshot_comes_in_small_parts() {
    let base = server().await;
    let tests = 5_001;
    let (status, created) = post(&base, "/api/v1/plans", &big_plan("rig-1", tests)).await;
    assert_eq!(status, 201, "{created}");
    send(
        &base,
        start("rig-1", "/rig/big", "t0000.py", "2026-11-24 13:01:00"),
    )
    .await;
    send(
        &base,
        stop(
            "rig-1",
            "/rig/big",
            "t0000.py",
            "failed",
            "2026-11-24 13:02:00",
        ),
    )
    .await;
    send(
        &base,
        start("rig-1", "/rig/big", "t0001.py", "2026-11-24 13:03:00"),
    )
    .await;

    let mut whole = connect(&base, "/ws/v1/machine/1/last/").await;
    let (_, whole_bytes) = next_sized(&mut whole).await;

    let mut sockets = Vec::new();
    for path in ["/ws/v1/machine/1/last/?parts=1", "/ws/v1/run/1/?parts=1"] {
        let mut socket = connect(&base, path).await;
        let (outline, mut bytes) = next_sized(&mut socket).await;
        let outline = &outline["snapshot"];
        assert_eq!(outline["parts"], 3, "{path}");
        assert_eq!(outline["run"]["summary"]["status"], "running");
        assert_eq!(outline["run"]["scenarios"][0]["counts"]["failed"], 1);
        assert!(outline["run"]["scenarios"][0].get("tests").is_none());
        let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
        let mut ids = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let (part, size) = next_sized(&mut socket).await;
            bytes += size;
            let part = &part["snapshot_part"];
            assert_eq!(part["run_id"], 1);
            let mut in_part = 0;
            for (status, listed) in part["statuses"].as_object().unwrap() {
                let listed = listed.as_array().unwrap();
                in_part += listed.len();
                *seen.entry(status.clone()).or_default() += listed.len();
                ids.extend(listed.iter().map(|id| id.as_i64().unwrap()));
            }
            assert!(in_part <= 2_000, "{in_part} tests in one part");
        }
        assert_eq!(ids.len(), tests, "every test once");
        assert_eq!(
            seen,
            [("failed", 1), ("running", 1), ("waiting", tests - 2)]
                .map(|(status, count)| (status.to_owned(), count))
                .into()
        );
        assert!(
            bytes * 4 < whole_bytes,
            "{bytes} bytes in parts against {whole_bytes} whole"
        );
        sockets.push(socket);
    }
    // Then changes, as before.
    send(
        &base,
        stop(
            "rig-1",
            "/rig/big",
            "t0001.py",
            "passed",
            "2026-11-24 13:04:00",
        ),
    )
    .await;
    for socket in &mut sockets {
        let change = next(socket).await;
        assert_eq!(
            change["run_changed"]["tests"][0]["status"], "passed",
            "{change}"
        );
    }
}

#[tokio::test]
async fn bytes_per_update_do_not_grow_with_the_run() {
    let base = server().await;
    let mut sizes = Vec::new();
    for (machine, tests) in [("small", 10), ("large", 5_000)] {
        // `/api/v1/plans` takes the seed's plan and answers its ids.
        let (status, created) = post(&base, "/api/v1/plans", &big_plan(machine, tests)).await;
        assert_eq!(status, 201);
        let path = format!("/ws/v1/machine/{}/last/", created["machine_id"]);
        let mut socket = connect(&base, &path).await;
        let (_, snapshot_bytes) = next_sized(&mut socket).await;
        send(
            &base,
            start(machine, "/rig/big", "t0003.py", "2026-11-24 13:01:00"),
        )
        .await;
        let (_, start_bytes) = next_sized(&mut socket).await;
        send(
            &base,
            stop(
                machine,
                "/rig/big",
                "t0003.py",
                "passed",
                "2026-11-24 13:02:00",
            ),
        )
        .await;
        let (_, stop_bytes) = next_sized(&mut socket).await;
        println!(
            "{tests} tests: snapshot {snapshot_bytes} B, test_start {start_bytes} B, test_stop {stop_bytes} B"
        );
        sizes.push((start_bytes, stop_bytes));
    }
    let ((small_start, small_stop), (large_start, large_stop)) = (sizes[0], sizes[1]);
    // Only the digits of ids and counts may differ.
    assert!(large_start <= small_start + 24, "{sizes:?}");
    assert!(large_stop <= small_stop + 24, "{sizes:?}");
    assert!(large_stop < 1024, "{sizes:?}");
}

#[tokio::test]
async fn bad_socket_requests_are_answered_before_the_upgrade() {
    let base = server().await;
    send(
        &base,
        (
            "/tm_api/dry_run/",
            small_plan("rig-1", "2026-11-24 13:00:00"),
        ),
    )
    .await;
    for (path, expected) in [
        ("/ws/v1/machine/abc/last/", 400),
        ("/ws/v1/machine/99/last/", 404),
        ("/ws/v1/machine/99/runs/", 404),
        ("/ws/v1/run/99/", 404),
        ("/ws/v1/machine/status/?page=0", 400),
    ] {
        let url = format!("{}{path}", base.replace("http://", "ws://"));
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), expected, "{path}");
            }
            other => panic!("{path}: expected HTTP {expected}, got {other:?}"),
        }
    }
}

/// Issue #19, defect 5: the sockets take no messages, so a large one is refused and the
/// socket closed, instead of the library's 64 MiB being buffered per socket.
#[tokio::test]
async fn oversized_client_messages_close_the_socket() {
    use futures_util::SinkExt;
    let base = server().await;
    let mut socket = connect(&base, "/ws/v1/machine/status/").await;
    // Most of it may never be read: the server closes on the frame header.
    let _ = socket.send(Message::text("x".repeat(64 * 1024))).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket is still open 10 s later");
}
