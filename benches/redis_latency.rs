//! Live-update latency across two server instances over Redis: from sending a `test_stop`
//! POST to instance A to receiving the matching `run_changed` on a WebSocket of instance B
//! (`/ws/v1/machine/{id}/last/`). Prints p50/p99 over 10,000 stops (10,000 start/stop pairs on
//! a few machines posting at once), and the POST round trip for comparison.
//!
//! `STPT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
//! STPT_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench -p stpt-benches --bench redis_latency`
//!
//! A and B run in this process, each with its own store (its own pool on one scratch
//! PostgreSQL database, created and dropped; an SQLite temp file without
//! `STPT_BENCH_POSTGRES_URL`) and its own Redis bus, on a channel prefix of its own. Without
//! `STPT_BENCH_REDIS_URL` it only says that Redis is required.

use chrono::{NaiveDate, TimeDelta};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stpt_core::{LiveBus, Tracker};
use stpt_http::HttpConfig;
use stpt_live_redis::{RedisBus, RedisBusConfig};
use stpt_server::DatabaseUrl;
use stpt_store_sqlx::sqlx::{self, Connection, Executor};
use tokio_tungstenite::tungstenite::Message;

/// Machines posting at once, each through its own run.
const MACHINES: usize = 4;
/// Tests per run: one start/stop pair each, so `MACHINES * TESTS` stops are timed.
const TESTS: usize = 2_500;
/// How long B may stay silent before the missing messages are counted as lost.
const QUIET: Duration = Duration::from_secs(30);

/// Where both instances store: a scratch database or a temp file, removed at the end.
enum Scratch {
    Postgres { admin_url: String, database: String },
    Sqlite(std::path::PathBuf),
}

impl Scratch {
    async fn create() -> (Scratch, DatabaseUrl) {
        let suffix = format!("{}_{}", std::process::id(), chrono::Utc::now().timestamp());
        match std::env::var("STPT_BENCH_POSTGRES_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let database = format!("stpt_bench_latency_{suffix}");
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("postgres reachable");
                admin
                    .execute(format!("CREATE DATABASE {database}").as_str())
                    .await
                    .expect("scratch database");
                let _ = admin.close().await;
                let (base, query) = match admin_url.split_once('?') {
                    Some((base, query)) => (base, format!("?{query}")),
                    None => (admin_url.as_str(), String::new()),
                };
                let base = base.rsplit_once('/').map_or(base, |(base, _)| base);
                let url = DatabaseUrl::Postgres(format!("{base}/{database}{query}"));
                (
                    Scratch::Postgres {
                        admin_url,
                        database,
                    },
                    url,
                )
            }
            _ => {
                let path =
                    std::env::temp_dir().join(format!("stpt-bench-latency-{suffix}.sqlite3"));
                let url = DatabaseUrl::Sqlite(path.clone());
                (Scratch::Sqlite(path), url)
            }
        }
    }

    async fn remove(self) {
        match self {
            Scratch::Postgres {
                admin_url,
                database,
            } => {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = admin
                        .execute(
                            format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str(),
                        )
                        .await;
                    let _ = admin.close().await;
                }
            }
            Scratch::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }
}

/// One instance, as `stpt-server` builds it, on a free port.
struct Instance {
    base: String,
    bus: Arc<RedisBus>,
    server: tokio::task::JoinHandle<()>,
}

impl Instance {
    async fn start(database: &DatabaseUrl, redis: &str, prefix: &str) -> Instance {
        let stores = stpt_server::open_store(database)
            .await
            .expect("store opens");
        let config = RedisBusConfig::default().with_prefix(prefix);
        let bus = Arc::new(
            RedisBus::connect(redis, config)
                .await
                .expect("Redis reachable"),
        );
        let tracker = Tracker::new(stores.runs, Arc::clone(&bus) as Arc<dyn LiveBus>);
        let app = stpt_server::app(
            tracker,
            stpt_core::accounts::Accounts::new(stores.accounts),
            HttpConfig::default().with_ingest_access(stpt_http::IngestAccess::loopback()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("free port");
        let base = format!("http://{}", listener.local_addr().expect("bound"));
        let server = tokio::spawn(async move {
            stpt_server::serve(listener, app, std::future::pending())
                .await
                .expect("serves");
        });
        Instance { base, bus, server }
    }
}

fn at(seconds: usize) -> String {
    let base = NaiveDate::from_ymd_opt(2026, 11, 24)
        .and_then(|day| day.and_hms_opt(13, 0, 0))
        .expect("valid time");
    let seconds = i64::try_from(seconds).expect("small");
    (base + TimeDelta::seconds(seconds))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A plan of `TESTS` tests `t0.py`, `t1.py`, … in scenarios of 100.
fn plan(machine: &str) -> Value {
    let scenarios: Vec<Value> = (0..TESTS.div_ceil(100))
        .map(|s| {
            let tests: Vec<Value> = (s * 100..TESTS.min((s + 1) * 100))
                .map(|t| json!({"file_path": "/t", "file_name": format!("t{t}.py"), "script": "run()\n"}))
                .collect();
            json!({"file_path": "/s", "file_name": format!("s{s}.py"), "script": "", "tests": tests})
        })
        .collect();
    json!({
        "machine_name": machine,
        "timestamp": at(0),
        "master_scenario": {"file_path": "/m", "file_name": "master.py", "script": "", "scenarios": scenarios}
    })
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let response = client.post(url).json(body).send().await.expect("answers");
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {answer}");
    answer
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(socket: &mut Socket, patience: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(patience, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(serde_json::from_str(&text).expect("JSON"));
            }
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

/// B's side for one machine: when each test's `passed` arrived, by test index.
async fn listen(mut socket: Socket, ids: HashMap<i64, usize>) -> Vec<Option<Instant>> {
    let mut received = vec![None; TESTS];
    let mut count = 0;
    while count < TESTS {
        let Some(message) = next_text(&mut socket, QUIET).await else {
            break;
        };
        let now = Instant::now();
        let Some(tests) = message["run_changed"]["tests"].as_array() else {
            continue;
        };
        for test in tests {
            if test["status"] != "passed" {
                continue;
            }
            let index = test["id"].as_i64().and_then(|id| ids.get(&id));
            if let Some(&index) = index {
                if received[index].is_none() {
                    received[index] = Some(now);
                    count += 1;
                }
            }
        }
    }
    received
}

/// A's side for one machine: every test starts then stops; returns when each stop was sent
/// and how long its POST took.
async fn drive(client: reqwest::Client, base: String, machine: String) -> Vec<(Instant, Duration)> {
    let mut sent = Vec::with_capacity(TESTS);
    for t in 0..TESTS {
        let start = json!({"machine_name": machine, "file_path": "/t", "file_name": format!("t{t}.py"),
                           "timestamp_start": at(2 * t + 1)});
        post(&client, &format!("{base}/tm_api/test_start/"), &start).await;
        let stop = json!({"machine_name": machine, "file_path": "/t", "file_name": format!("t{t}.py"),
                          "status": "passed", "timestamp_stop": at(2 * t + 2)});
        let began = Instant::now();
        post(&client, &format!("{base}/tm_api/test_stop/"), &stop).await;
        sent.push((began, began.elapsed()));
    }
    sent
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let redis = match std::env::var("STPT_BENCH_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            println!(
                "redis_latency: Redis is required; set STPT_BENCH_REDIS_URL (e.g. redis://127.0.0.1:6379). Nothing measured."
            );
            return;
        }
    };
    let (scratch, database) = Scratch::create().await;
    let store_name = match &scratch {
        Scratch::Postgres { .. } => "postgres (scratch database, one pool per instance)",
        Scratch::Sqlite(_) => "sqlite (temp file, one pool per instance)",
    };
    let prefix = format!(
        "stpt-bench-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp()
    );
    let a = Instance::start(&database, &redis, &prefix).await;
    let b = Instance::start(&database, &redis, &prefix).await;
    let client = reqwest::Client::new();

    // Plans on A; one page per machine on B, listening before any timed event.
    let mut listeners = Vec::new();
    let machines: Vec<String> = (0..MACHINES).map(|m| format!("bench-rig-{m}")).collect();
    for machine in &machines {
        let created = post(
            &client,
            // `/api/v1/plans` takes the seed's plan and answers its ids.
            &format!("{}/api/v1/plans", a.base),
            &plan(machine),
        )
        .await;
        let id = created["machine_id"].as_i64().expect("machine id");
        let url = format!(
            "{}/ws/v1/machine/{id}/last/",
            b.base.replace("http://", "ws://")
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("socket opens");
        let snapshot = next_text(&mut socket, QUIET).await.expect("snapshot");
        let ids: HashMap<i64, usize> = snapshot["snapshot"]["run"]["scenarios"]
            .as_array()
            .expect("scenarios")
            .iter()
            .flat_map(|s| s["tests"].as_array().cloned().unwrap_or_default())
            .enumerate()
            .filter_map(|(index, test)| test["id"].as_i64().map(|id| (id, index)))
            .collect();
        assert_eq!(ids.len(), TESTS, "snapshot of the whole run");
        listeners.push(tokio::spawn(listen(socket, ids)));
    }

    let began = Instant::now();
    let drivers: Vec<_> = machines
        .iter()
        .map(|machine| tokio::spawn(drive(client.clone(), a.base.clone(), machine.clone())))
        .collect();
    let mut latencies = Vec::with_capacity(MACHINES * TESTS);
    let mut posts = Vec::with_capacity(MACHINES * TESTS);
    let mut lost = 0;
    let mut sent_all = Vec::new();
    for driver in drivers {
        sent_all.push(driver.await.expect("driver"));
    }
    let elapsed = began.elapsed();
    for (sent, listener) in sent_all.into_iter().zip(listeners) {
        let received = listener.await.expect("listener");
        for ((began, post_took), got) in sent.into_iter().zip(received) {
            posts.push(post_took);
            match got {
                Some(at) => latencies.push(at.saturating_duration_since(began)),
                None => lost += 1,
            }
        }
    }
    latencies.sort();
    posts.sort();
    let events = MACHINES * TESTS * 2;

    println!("redis_latency: test_stop POST on A -> run_changed on a WebSocket of B");
    println!(
        "store: {store_name}; Redis: {redis}; {MACHINES} machines posting at once, {TESTS} start/stop pairs each"
    );
    println!(
        "{events} events in {:.1} s ({:.0} events/s through A)",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
    println!();
    println!("| measured | n | p50 | p99 | max |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| stop POST sent on A -> run_changed on B | {} | {} | {} | {} |",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "| stop POST round trip on A (for comparison) | {} | {} | {} | {} |",
        posts.len(),
        ms(percentile(&posts, 50.0)),
        ms(percentile(&posts, 99.0)),
        ms(posts.last().copied().unwrap_or_default()),
    );
    println!();
    println!(
        "lost (no run_changed on B within {QUIET:?}): {lost}; bus A {:?}; bus B {:?}",
        a.bus.stats(),
        b.bus.stats()
    );

    a.server.abort();
    b.server.abort();
    drop((a, b));
    scratch.remove().await;
}
