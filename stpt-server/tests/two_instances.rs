//! Two server instances behind one load balancer: each with its own Redis bus and its own
//! PostgreSQL pool, sharing one database and one Redis. A browser on B follows, live and in
//! order, what runners post to A; and a Redis restart loses no state: ingestion keeps
//! answering, and pages resynchronise with a snapshot once Redis is back.
//!
//! PostgreSQL comes from `STPT_TEST_POSTGRES_URL` (a fresh database per test), Redis from
//! `STPT_TEST_REDIS_URL` (a channel prefix per test); the restart test starts a
//! `redis-server` of its own. Unset, the tests skip, and fail when `STPT_TEST_INTEGRATION=1`.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use stpt_core::{Delivery, LiveBus, LiveEvent, Topic, Tracker};
use stpt_http::HttpConfig;
use stpt_live_redis::{RedisBus, RedisBusConfig};
use stpt_server::DatabaseUrl;
use stpt_testkit::{OwnRedis, TempDatabase, free_port, postgres_url, redis_url, unique_name};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any one expected thing may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn database_url(database: &TempDatabase) -> DatabaseUrl {
    DatabaseUrl::parse(&database.url()).unwrap()
}

/// One server instance, as `stpt-server` builds it: its own store (own pool, migrated), its
/// own Redis bus, the app, served on a free port.
struct Instance {
    base: String,
    bus: Arc<RedisBus>,
    server: tokio::task::JoinHandle<()>,
}

impl Instance {
    async fn start(database: &DatabaseUrl, redis: &str, prefix: &str) -> Instance {
        let stores = stpt_server::open_store(database).await.unwrap();
        // As `open_bus` builds it, then waiting until it listens, so nothing published
        // after this returns is missed.
        let config = RedisBusConfig::default()
            .with_prefix(prefix)
            .with_max_backoff(Duration::from_millis(500));
        let bus = Arc::new(RedisBus::connect(redis, config).await.unwrap());
        let tracker = Tracker::new(stores.runs, Arc::clone(&bus) as Arc<dyn LiveBus>);
        let app = stpt_server::app(
            tracker,
            stpt_core::accounts::Accounts::new(stores.accounts),
            HttpConfig::default().with_ingest_access(stpt_http::IngestAccess::loopback()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            stpt_server::serve(listener, app, std::future::pending())
                .await
                .unwrap();
        });
        Instance { base, bus, server }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

// --- runner events -------------------------------------------------------------------------

fn at(seconds: i64) -> String {
    let base: NaiveDateTime = NaiveDate::from_ymd_opt(2026, 11, 24)
        .unwrap()
        .and_hms_opt(13, 0, 0)
        .unwrap();
    (base + TimeDelta::seconds(seconds))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn test_name(n: usize) -> String {
    format!("t{n:02}.py")
}

/// A plan of one scenario with `tests` tests `t00.py`, `t01.py`, ...
fn plan(machine: &str, tests: usize, time: i64) -> Value {
    let tests: Vec<Value> = (0..tests)
        .map(|n| json!({"file_path": "/rig/t", "file_name": test_name(n), "script": "pass\n"}))
        .collect();
    json!({
        "machine_name": machine,
        "timestamp": at(time),
        "master_scenario": {
            "file_path": "/rig", "file_name": "master.py", "script": "",
            "scenarios": [{"file_path": "/rig", "file_name": "all.py", "script": "", "tests": tests}]
        }
    })
}

fn start(machine: &str, test: usize, time: i64) -> (&'static str, Value) {
    (
        "/tm_api/test_start/",
        json!({"machine_name": machine, "file_path": "/rig/t", "file_name": test_name(test),
               "timestamp_start": at(time)}),
    )
}

fn stop(machine: &str, test: usize, status: &str, time: i64) -> (&'static str, Value) {
    (
        "/tm_api/test_stop/",
        json!({"machine_name": machine, "file_path": "/rig/t", "file_name": test_name(test),
               "status": status, "timestamp_stop": at(time)}),
    )
}

/// Posts a runner event; it must be accepted (201 or 202) within [`PATIENCE`], whatever
/// state Redis is in. Returns the answer.
async fn send(base: &str, (path, body): (&str, Value)) -> Value {
    let posted = tokio::time::timeout(
        PATIENCE,
        reqwest::Client::new()
            .post(format!("{base}{path}"))
            .json(&body)
            .send(),
    )
    .await
    .unwrap_or_else(|_| panic!("{path} did not answer within {PATIENCE:?}"))
    .unwrap();
    let status = posted.status().as_u16();
    let answer: Value = posted.json().await.unwrap_or(Value::Null);
    assert!(
        status == 201 || status == 202,
        "{path} {body}: {status} {answer}"
    );
    answer
}

// --- sockets -------------------------------------------------------------------------------

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(base: &str, path: &str) -> Socket {
    let url = format!("{}{path}", base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next text message, as JSON.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no message within {PATIENCE:?}"))
            .expect("socket closed")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Reads messages until one satisfies `wanted` (within `patience` in all); returns it.
async fn next_matching(
    socket: &mut Socket,
    patience: Duration,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let message = tokio::time::timeout_at(deadline, next(socket))
            .await
            .unwrap_or_else(|_| panic!("no {what} within {patience:?}"));
        if wanted(&message) {
            return message;
        }
    }
}

/// Waits until B's bus has handed on everything A published so far: A posts a plan for a
/// machine of its own, and B hears its status. (A publishes in order on one connection, B
/// listens on one connection, and Redis keeps that order.)
async fn settle(a: &Instance, b: &Instance, fence: &str) {
    let mut machines = b.bus.subscribe(Topic::Machines).await.unwrap();
    send(&a.base, ("/tm_api/dry_run/", plan(fence, 1, 0))).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let delivery = tokio::time::timeout_at(deadline, machines.next())
            .await
            .expect("B did not hear A's fence")
            .expect("bus closed");
        if let Delivery::Event(event) = delivery {
            if let LiveEvent::MachineStatus { machine_name, .. } = event.as_ref() {
                if machine_name == fence {
                    return;
                }
            }
        }
    }
}

/// The tests of a snapshot's run, in plan order.
fn snapshot_tests(snapshot: &Value) -> &Vec<Value> {
    snapshot["snapshot"]["run"]["scenarios"][0]["tests"]
        .as_array()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_b_follows_events_posted_to_a_in_order() {
    let (Some(postgres), Some(redis)) = (postgres_url(), redis_url()) else {
        return;
    };
    let database = TempDatabase::create(&postgres).await;
    let prefix = unique_name("stpt-test-two");
    let a = Instance::start(&database_url(&database), &redis, &prefix).await;
    let b = Instance::start(&database_url(&database), &redis, &prefix).await;

    const TESTS: usize = 12;
    let created = send(&a.base, ("/api/v1/plans", plan("rig-1", TESTS, 0))).await;
    let machine = created["machine_id"].as_i64().unwrap();
    let run = created["run_id"].as_i64().unwrap();
    settle(&a, &b, "fence").await;

    // With a page, the status socket sends the page on connect: it listens from then on.
    let mut statuses = connect(&b.base, "/ws/v1/machine/status/?page=1&page_size=10").await;
    let mut listed = [next(&mut statuses).await, next(&mut statuses).await];
    listed.sort_by_key(|m| m["machine_id_status"]["name"].to_string());
    assert_eq!(
        listed[1],
        json!({"machine_id_status": {"id": machine, "status": "waiting", "name": "rig-1"}})
    );
    let mut last = connect(&b.base, &format!("/ws/v1/machine/{machine}/last/")).await;
    let snapshot = next(&mut last).await;
    assert_eq!(snapshot["snapshot"]["run"]["summary"]["id"], run);
    let tests = snapshot_tests(&snapshot);
    assert_eq!(tests.len(), TESTS);
    assert!(tests.iter().all(|t| t["status"] == "waiting"));

    // Every test but the last starts and stops on A; B is read only afterwards, so many
    // changes are in flight at once.
    let mut expected = Vec::new();
    let mut machine_statuses = Vec::new();
    let mut run_status = "waiting".to_owned();
    for (n, test) in tests.iter().enumerate().take(TESTS - 1) {
        let time = i64::try_from(n).unwrap() * 2 + 1;
        let outcome = if n % 3 == 1 { "failed" } else { "passed" };
        // By id through `/api/v1`, whose receipts carry the run's new status.
        let id = &test["id"];
        for ((path, body), test_status) in [
            (
                (
                    format!("/api/v1/tests/{id}/start"),
                    json!({"timestamp": at(time)}),
                ),
                "running",
            ),
            (
                (
                    format!("/api/v1/tests/{id}/stop"),
                    json!({"status": outcome, "timestamp": at(time + 1)}),
                ),
                outcome,
            ),
        ] {
            let receipt = send(&a.base, (&path, body)).await;
            assert_eq!(receipt["test_id"], test["id"]);
            assert_eq!(receipt["status"], test_status);
            let status = receipt["run_status"].as_str().unwrap().to_owned();
            if status != run_status {
                machine_statuses.push(status.clone());
                run_status = status.clone();
            }
            expected.push((test["id"].clone(), test_status, status));
        }
    }
    for (n, (test, test_status, status)) in expected.iter().enumerate() {
        let message = next(&mut last).await;
        let change = &message["run_changed"];
        assert_eq!(change["run_id"], run, "change {n}: {message}");
        assert_eq!(change["status"], *status, "change {n}: {message}");
        assert_eq!(change["tests"][0]["id"], *test, "change {n}: {message}");
        assert_eq!(
            change["tests"][0]["status"], *test_status,
            "change {n}: {message}"
        );
    }
    assert!(!machine_statuses.is_empty());
    for status in &machine_statuses {
        assert_eq!(
            next(&mut statuses).await,
            json!({"machine_id_status": {"id": machine, "status": status, "name": "rig-1"}})
        );
    }

    // A new plan on A: B's page sees the old run abandoned, then the new run in full.
    let replanned = send(
        &a.base,
        (
            "/api/v1/plans",
            plan("rig-1", 3, i64::try_from(TESTS).unwrap() * 2),
        ),
    )
    .await;
    assert_eq!(replanned["abandoned_runs"], json!([run]));
    let abandoned = next(&mut last).await;
    assert_eq!(abandoned["run_changed"]["run_id"], run, "{abandoned}");
    assert_eq!(abandoned["run_changed"]["closed"]["status"], "unknown");
    let created = next(&mut last).await;
    assert_eq!(
        created["run_created"]["id"], replanned["run_id"],
        "{created}"
    );
    let snapshot = next(&mut last).await;
    assert_eq!(
        snapshot["snapshot"]["run"]["summary"]["id"],
        replanned["run_id"]
    );
    assert_eq!(snapshot_tests(&snapshot).len(), 3);
    assert_eq!(
        next(&mut statuses).await,
        json!({"machine_id_status": {"id": machine, "status": "waiting", "name": "rig-1"}})
    );
    assert_eq!(a.bus.stats().dropped, 0, "{:?}", a.bus.stats());
}

/// Redis restarted mid-stream: both instances keep accepting runner events while it is
/// down; once it is back, B's page gets a snapshot holding what it missed, and live
/// changes from A reach it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_stream_at_the_server_level() {
    let Some(postgres) = postgres_url() else {
        return;
    };
    let Some(redis) = OwnRedis::start(free_port()).await else {
        return;
    };
    let database = TempDatabase::create(&postgres).await;
    let prefix = unique_name("stpt-test-restart");
    let a = Instance::start(&database_url(&database), &redis.url(), &prefix).await;
    let b = Instance::start(&database_url(&database), &redis.url(), &prefix).await;

    let created = send(&a.base, ("/api/v1/plans", plan("rig-1", 10, 0))).await;
    let machine = created["machine_id"].as_i64().unwrap();
    let mut last = connect(&b.base, &format!("/ws/v1/machine/{machine}/last/")).await;
    let snapshot = next(&mut last).await;
    let ids: Vec<Value> = snapshot_tests(&snapshot)
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    let changed = |test: usize, status: &'static str| {
        let id = ids[test].clone();
        move |message: &Value| {
            message["run_changed"]["tests"]
                .as_array()
                .is_some_and(|tests| tests.iter().any(|t| t["id"] == id && t["status"] == status))
        }
    };

    // Live before the outage.
    send(&a.base, start("rig-1", 0, 1)).await;
    next_matching(
        &mut last,
        PATIENCE,
        "change before the outage",
        changed(0, "running"),
    )
    .await;

    let port = redis.stop().await;
    // B notices the loss: its page is told it is behind.
    next_matching(&mut last, PATIENCE, "behind on the loss", |m| {
        m.get("behind") == Some(&Value::Bool(true))
    })
    .await;

    // Ingestion answers on both instances while Redis is down.
    send(&a.base, stop("rig-1", 0, "passed", 2)).await;
    send(&b.base, start("rig-1", 1, 3)).await;
    send(&b.base, stop("rig-1", 1, "failed", 4)).await;
    send(&a.base, start("rig-1", 2, 5)).await;
    send(&a.base, stop("rig-1", 2, "passed", 6)).await;
    send(&a.base, start("rig-1", 3, 7)).await;
    send(&b.base, ("/tm_api/dry_run/", plan("rig-2", 2, 0))).await;
    let missed = ["passed", "failed", "passed", "running", "waiting"];

    let redis = OwnRedis::start(port).await.unwrap();
    // Once back, B's page gets a snapshot holding everything posted during the outage.
    let snapshot = next_matching(
        &mut last,
        Duration::from_secs(30),
        "snapshot covering the outage",
        |m| {
            m.get("snapshot").is_some()
                && snapshot_tests(m)
                    .iter()
                    .zip(missed)
                    .all(|(test, status)| test["status"] == status)
        },
    )
    .await;
    assert_eq!(snapshot["snapshot"]["run"]["summary"]["status"], "running");
    assert!(b.bus.stats().reconnects >= 1, "{:?}", b.bus.stats());

    // And live changes from A reach B again.
    b.bus.wait_subscribed(PATIENCE).await.unwrap();
    send(&a.base, stop("rig-1", 3, "failed", 8)).await;
    next_matching(
        &mut last,
        PATIENCE,
        "change after the restart",
        changed(3, "failed"),
    )
    .await;
    send(&a.base, start("rig-1", 4, 9)).await;
    next_matching(
        &mut last,
        PATIENCE,
        "second change after the restart",
        changed(4, "running"),
    )
    .await;

    let machines: Value = reqwest::get(format!("{}/tm_api/machines/", b.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(machines.to_string().contains("rig-2"), "{machines}");
    drop(redis);
}
