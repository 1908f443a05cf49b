//! `stpt-loadgen`: drives a running stpt server over HTTP exactly as runners do, and reports
//! what it could take.
//!
//! M machines post at once; each posts a plan of S×T tests, then a start and a stop for every
//! test, without sleeps, in the seed protocol (`/tm_api/…`) or the versioned one (v1: batches
//! of B events through `/api/v1/events`, or the single-event endpoints when B is 1).
//! Optionally one WebSocket per machine (`/ws/v1/machine/{id}/last/`) measures the time from
//! sending the POST that carries a stop to receiving the change that shows it. At the end it
//! reads every run back through `/api/v1/runs/{id}` and compares each test's final status
//! with what was posted: mismatches are printed and must be 0.
//!
//! Bounded: at most `--max-seconds` of posting, and M×S×T×2 events. Loopback targets only.
//!
//! Other modes:
//! - `--bare`: the ceiling. Serves, in this process on its own runtime, a bare axum handler
//!   per seed endpoint that parses the same JSON (`PlanPayload`, `TestStartPayload`,
//!   `TestStopPayload`) and does nothing, and loads it with the seed protocol.
//!   `--serve-bare ADDR` serves the same handlers until killed, to load from another process.
//! - `--rss-server PATH`: spawns that `stpt-server` binary on a free loopback port with
//!   `--database-url`, posts `--rss-runs` runs of S×T tests one after another (plan, then
//!   every start and stop in v1 batches of 1000), and prints the server's VmRSS after each
//!   checkpoint count of stored runs.
//!
//! `cargo run --release -p stpt-benches --bin stpt-loadgen -- --help`

use clap::{Parser, ValueEnum};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// The plan on `/api/v1/plans` (the seed's answer has no ids), then `/tm_api/test_start/` and
    /// `/tm_api/test_stop/`.
    Seed,
    /// `/api/v1/plans`, then `/api/v1/events` batches (or single events with `--batch 1`).
    V1,
}

/// Load generator for a running stpt server (loopback only).
#[derive(Debug, Parser)]
#[command(name = "stpt-loadgen", version, about)]
struct Args {
    /// The server to load (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Machines posting at once (M).
    #[arg(long, short = 'm', default_value_t = 1)]
    machines: usize,
    /// Scenarios per plan (S).
    #[arg(long, short = 's', default_value_t = 10)]
    scenarios: usize,
    /// Tests per scenario (T).
    #[arg(long, short = 't', default_value_t = 100)]
    tests: usize,
    /// The runner protocol.
    #[arg(long, value_enum, default_value_t = Protocol::Seed)]
    protocol: Protocol,
    /// Events per v1 batch (B, at most 1000); 1 uses the single-event endpoints.
    #[arg(long, short = 'b', default_value_t = 1)]
    batch: usize,
    /// One WebSocket subscriber per machine, measuring stop-POST-to-message latency.
    #[arg(long)]
    ws: bool,
    /// Stop posting after this long (the verification still runs).
    #[arg(long, default_value_t = 120.0)]
    max_seconds: f64,
    /// A label for the markdown row printed at the end.
    #[arg(long, default_value = "")]
    label: String,
    /// Skip reading the runs back (e.g. when `--url` points at `--serve-bare`).
    #[arg(long)]
    no_verify: bool,
    /// Load a bare axum handler served by this process instead of `--url` (the ceiling).
    #[arg(long)]
    bare: bool,
    /// Only serve the bare handlers on this loopback address, until killed.
    #[arg(long)]
    serve_bare: Option<SocketAddr>,
    /// RSS mode: spawn this `stpt-server` binary and measure its VmRSS as history grows.
    #[arg(long)]
    rss_server: Option<PathBuf>,
    /// RSS mode: the spawned server's `--database-url`.
    #[arg(long, default_value = "memory")]
    database_url: String,
    /// RSS mode: runs to store.
    #[arg(long, default_value_t = 1000)]
    rss_runs: usize,
    /// RSS mode: stored-run counts after which VmRSS is read.
    #[arg(long, value_delimiter = ',', default_value = "10,100,250,500,750,1000")]
    rss_checkpoints: Vec<usize>,
    /// RSS mode: post plans only (each new plan abandons the previous run: its tests become
    /// `unknown`), no start/stop events.
    #[arg(long)]
    rss_plans_only: bool,
}

/// Final statuses posted, by test index: a mix, never `cancelled` (that would end the run).
const STATUSES: [&str; 6] = ["passed", "passed", "passed", "failed", "warning", "error"];
/// How long a socket may stay silent, once posting is over, before it stops listening.
const QUIET: Duration = Duration::from_secs(3);

fn status_of(index: usize) -> &'static str {
    STATUSES[index % STATUSES.len()]
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Refuses anything but a loopback host.
fn check_loopback(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{url}: refusing a non-loopback target (use 127.0.0.1, ::1 or localhost)"
        ))
    }
}

/// The plan of one run: S scenarios `/s{s}/scenario.py` of T tests `/s{s}/t{t}.py`.
fn plan_json(machine: &str, scenarios: usize, tests: usize) -> Value {
    let scenarios: Vec<Value> = (0..scenarios)
        .map(|s| {
            let tests: Vec<Value> = (0..tests)
                .map(|t| {
                    json!({"file_path": format!("/s{s}"), "file_name": format!("t{t}.py"),
                           "script": "run()\n"})
                })
                .collect();
            json!({"file_path": format!("/s{s}"), "file_name": "scenario.py", "script": "",
                   "tests": tests})
        })
        .collect();
    json!({
        "machine_name": machine,
        "timestamp": now(),
        "master_scenario": {"file_path": "/m", "file_name": "master.py", "script": "",
                            "scenarios": scenarios}
    })
}

/// What a test should read at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Waiting,
    Running,
    Final(&'static str),
}

impl Expected {
    fn as_str(self) -> &'static str {
        match self {
            Expected::Waiting => "waiting",
            Expected::Running => "running",
            Expected::Final(status) => status,
        }
    }
}

/// Counters and samples shared by one machine's requests.
#[derive(Debug, Default)]
struct Tally {
    http: Vec<Duration>,
    errors: usize,
    first_errors: Vec<String>,
    events_acked: usize,
}

impl Tally {
    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(message);
        }
    }
}

/// One POST, timed; `None` (and an error counted) unless it answered 2xx.
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    tally: &mut Tally,
) -> Option<Value> {
    let began = Instant::now();
    let result = client.post(url).json(body).send().await;
    let answer = match result {
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                Some(serde_json::from_str(&text).unwrap_or(Value::Null))
            } else {
                tally.error(format!("POST {url}: {status} {text}"));
                None
            }
        }
        Err(error) => {
            tally.error(format!("POST {url}: {error}"));
            None
        }
    };
    tally.http.push(began.elapsed());
    answer
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame as JSON, or `None` after `patience` of silence or a closed socket.
async fn next_json(socket: &mut Socket, patience: Duration) -> Option<Option<Value>> {
    loop {
        match tokio::time::timeout(patience, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(serde_json::from_str(&text).ok());
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => return Some(None),
            Err(_) => return None,
        }
    }
}

fn is_final(status: &Value) -> bool {
    status
        .as_str()
        .is_some_and(|s| !matches!(s, "waiting" | "running"))
}

/// The socket's side for one machine: when each test (by plan index) was first seen final.
async fn listen(
    mut socket: Socket,
    ids: HashMap<i64, usize>,
    done: Arc<AtomicBool>,
) -> Vec<Option<Instant>> {
    let mut received = vec![None; ids.len()];
    let mut count = 0;
    let mut quiet_since: Option<Instant> = None;
    while count < received.len() {
        match next_json(&mut socket, Duration::from_millis(250)).await {
            None => {
                if done.load(Ordering::Relaxed) {
                    let since = *quiet_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= QUIET {
                        break;
                    }
                }
                continue;
            }
            Some(None) => break,
            Some(Some(message)) => {
                quiet_since = None;
                let now = Instant::now();
                let tests: Vec<&Value> = if let Some(tests) =
                    message["run_changed"]["tests"].as_array()
                {
                    tests.iter().collect()
                } else if let Some(scenarios) = message["snapshot"]["run"]["scenarios"].as_array() {
                    // After a lag the server sends a fresh snapshot instead of the changes.
                    scenarios
                        .iter()
                        .filter_map(|s| s["tests"].as_array())
                        .flatten()
                        .collect()
                } else {
                    Vec::new()
                };
                for test in tests {
                    if !is_final(&test["status"]) {
                        continue;
                    }
                    if let Some(&index) = test["id"].as_i64().and_then(|id| ids.get(&id)) {
                        if received[index].is_none() {
                            received[index] = Some(now);
                            count += 1;
                        }
                    }
                }
            }
        }
    }
    let _ = socket.close(None).await;
    received
}

/// Everything one machine measured.
#[derive(Debug)]
struct MachineResult {
    name: String,
    run_id: Option<i64>,
    expected: Vec<Expected>,
    stop_sent: Vec<Option<Instant>>,
    received: Vec<Option<Instant>>,
    tally: Tally,
    listening: bool,
    /// When this machine sent its last event.
    posted_at: Option<Instant>,
}

/// The settings every machine shares.
#[derive(Debug, Clone)]
struct Load {
    client: reqwest::Client,
    base: String,
    protocol: Protocol,
    scenarios: usize,
    tests: usize,
    batch: usize,
    ws: bool,
    bare: bool,
}

/// One runner: plan, (socket), wait for every machine, then every start and stop.
async fn machine(
    load: Load,
    name: String,
    ready: Arc<tokio::sync::Barrier>,
    deadline: Arc<std::sync::Mutex<Option<Instant>>>,
    max: Duration,
) -> MachineResult {
    let done = Arc::new(AtomicBool::new(false));
    let n = load.scenarios * load.tests;
    let mut tally = Tally::default();
    let mut expected = vec![Expected::Waiting; n];
    let mut stop_sent = vec![None; n];
    let names: Vec<(String, String)> = (0..load.scenarios)
        .flat_map(|s| (0..load.tests).map(move |t| (format!("/s{s}"), format!("t{t}.py"))))
        .collect();

    // The plan.
    let plan = plan_json(&name, load.scenarios, load.tests);
    // The seed's plan answer echoes the plan without ids; `/api/v1/plans` takes the same
    // plan and answers the ids the checks and sockets need. (Bare: no server to ask.)
    let path = match (load.protocol, load.bare) {
        (Protocol::Seed, true) => "/tm_api/dry_run/",
        _ => "/api/v1/plans",
    };
    let answer = post(
        &load.client,
        &format!("{}{path}", load.base),
        &plan,
        &mut tally,
    )
    .await;
    let machine_id = answer.as_ref().and_then(|a| a["machine_id"].as_i64());
    let run_id = answer.as_ref().and_then(|a| a["run_id"].as_i64());
    let mut test_ids: Vec<i64> = answer
        .as_ref()
        .and_then(|a| a["scenarios"].as_array())
        .map(|scenarios| {
            scenarios
                .iter()
                .filter_map(|s| s["test_ids"].as_array())
                .flatten()
                .filter_map(Value::as_i64)
                .collect()
        })
        .unwrap_or_default();

    // The socket, subscribed before any event; the snapshot gives the seed's test ids.
    let mut listener = None;
    if let (true, Some(machine_id), Some(run_id)) = (load.ws && !load.bare, machine_id, run_id) {
        let url = format!(
            "{}/ws/v1/machine/{machine_id}/last/",
            load.base.replacen("http://", "ws://", 1)
        );
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((mut socket, _)) => loop {
                match next_json(&mut socket, Duration::from_secs(30)).await {
                    Some(Some(message))
                        if message["snapshot"]["run"]["summary"]["id"].as_i64() == Some(run_id)
                            || message["snapshot"]["run"]["id"].as_i64() == Some(run_id) =>
                    {
                        if test_ids.is_empty() {
                            test_ids = message["snapshot"]["run"]["scenarios"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|s| s["tests"].as_array())
                                .flatten()
                                .filter_map(|t| t["id"].as_i64())
                                .collect();
                        }
                        let ids: HashMap<i64, usize> = test_ids
                            .iter()
                            .enumerate()
                            .map(|(i, &id)| (id, i))
                            .collect();
                        listener = Some(tokio::spawn(listen(socket, ids, Arc::clone(&done))));
                        break;
                    }
                    Some(Some(_)) => {}
                    _ => {
                        tally.error(format!("{url}: no snapshot of run {run_id}"));
                        break;
                    }
                }
            },
            Err(error) => tally.error(format!("{url}: {error}")),
        }
    }

    ready.wait().await;
    let deadline = {
        let mut guard = deadline.lock().unwrap_or_else(|e| e.into_inner());
        *guard.get_or_insert_with(|| Instant::now() + max)
    };

    if run_id.is_some() || load.bare {
        // (test index, start?) in the order a runner sends them.
        let events: Vec<(usize, bool)> = (0..n).flat_map(|i| [(i, true), (i, false)]).collect();
        match (load.protocol, load.batch) {
            (Protocol::Seed, _) | (Protocol::V1, 0 | 1) => {
                for &(i, start) in &events {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let (file_path, file_name) = &names[i];
                    let (url, body) = match (load.protocol, start) {
                        (Protocol::Seed, true) => (
                            format!("{}/tm_api/test_start/", load.base),
                            json!({"machine_name": name, "file_path": file_path,
                                   "file_name": file_name, "timestamp_start": now()}),
                        ),
                        (Protocol::Seed, false) => (
                            format!("{}/tm_api/test_stop/", load.base),
                            json!({"machine_name": name, "file_path": file_path,
                                   "file_name": file_name, "status": status_of(i),
                                   "timestamp_stop": now()}),
                        ),
                        (Protocol::V1, true) => (
                            format!("{}/api/v1/tests/{}/start", load.base, test_ids[i]),
                            json!({"timestamp": now()}),
                        ),
                        (Protocol::V1, false) => (
                            format!("{}/api/v1/tests/{}/stop", load.base, test_ids[i]),
                            json!({"status": status_of(i), "timestamp": now()}),
                        ),
                    };
                    if !start {
                        stop_sent[i] = Some(Instant::now());
                    }
                    if post(&load.client, &url, &body, &mut tally).await.is_some() {
                        tally.events_acked += 1;
                        expected[i] = if start {
                            Expected::Running
                        } else {
                            Expected::Final(status_of(i))
                        };
                    }
                }
            }
            (Protocol::V1, batch) => {
                let url = format!("{}/api/v1/events", load.base);
                for chunk in events.chunks(batch.min(1000)) {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let body: Vec<Value> = chunk
                        .iter()
                        .map(|&(i, start)| {
                            if start {
                                json!({"type": "test_start", "test_id": test_ids[i],
                                       "timestamp": now()})
                            } else {
                                json!({"type": "test_stop", "test_id": test_ids[i],
                                       "status": status_of(i), "timestamp": now()})
                            }
                        })
                        .collect();
                    let sent = Instant::now();
                    for &(i, start) in chunk {
                        if !start {
                            stop_sent[i] = Some(sent);
                        }
                    }
                    let Some(answer) =
                        post(&load.client, &url, &json!({"events": body}), &mut tally).await
                    else {
                        continue;
                    };
                    let results = answer["results"].as_array().cloned().unwrap_or_default();
                    if results.len() != chunk.len() {
                        tally.error(format!(
                            "batch of {} answered {} results",
                            chunk.len(),
                            results.len()
                        ));
                    }
                    for (&(i, start), result) in chunk.iter().zip(&results) {
                        if result["outcome"] == "applied" {
                            tally.events_acked += 1;
                            expected[i] = if start {
                                Expected::Running
                            } else {
                                Expected::Final(status_of(i))
                            };
                        } else {
                            tally.error(format!("batch event {i}: {result}"));
                        }
                    }
                }
            }
        }
    }

    let posted_at = Some(Instant::now());
    done.store(true, Ordering::Relaxed);
    let (received, listening) = match listener {
        Some(task) => (task.await.unwrap_or_default(), true),
        None => (Vec::new(), false),
    };
    MachineResult {
        name,
        run_id,
        expected,
        stop_sent,
        received,
        tally,
        listening,
        posted_at,
    }
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

/// Reads each run back and counts tests whose status differs from what was posted.
async fn verify(client: &reqwest::Client, base: &str, results: &[MachineResult]) -> usize {
    let mut mismatches = 0;
    let mut printed = 0;
    for result in results {
        let Some(run_id) = result.run_id else {
            println!("mismatch: {}: no run was created", result.name);
            mismatches += result.expected.len().max(1);
            continue;
        };
        let url = format!("{base}/api/v1/runs/{run_id}");
        let run: Value = match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => {
                response.json().await.unwrap_or(Value::Null)
            }
            Ok(response) => {
                println!("mismatch: GET {url}: {}", response.status());
                mismatches += result.expected.len();
                continue;
            }
            Err(error) => {
                println!("mismatch: GET {url}: {error}");
                mismatches += result.expected.len();
                continue;
            }
        };
        let actual: Vec<&Value> = run["scenarios"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["tests"].as_array())
            .flatten()
            .collect();
        if actual.len() != result.expected.len() {
            println!(
                "mismatch: run {run_id} of {} has {} tests, {} were planned",
                result.name,
                actual.len(),
                result.expected.len()
            );
            mismatches += result.expected.len().abs_diff(actual.len());
        }
        for (index, (test, expected)) in actual.iter().zip(&result.expected).enumerate() {
            if test["status"].as_str() != Some(expected.as_str()) {
                mismatches += 1;
                if printed < 20 {
                    printed += 1;
                    println!(
                        "mismatch: run {run_id} of {}, test #{index} ({}{}): expected {}, read {}",
                        result.name,
                        test["file"]["file_path"].as_str().unwrap_or("?"),
                        test["file"]["file_name"].as_str().unwrap_or("?"),
                        expected.as_str(),
                        test["status"]
                    );
                }
            }
        }
    }
    mismatches
}

/// The bare ceiling: parses the same JSON as the seed endpoints and does nothing.
fn bare_router() -> axum::Router {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::post;
    use stpt_core::{PlanPayload, TestStartPayload, TestStopPayload};
    axum::Router::new()
        .route(
            "/tm_api/dry_run/",
            post(|Json(plan): Json<PlanPayload>| async move {
                let _ = std::hint::black_box(plan);
                (
                    StatusCode::CREATED,
                    Json(json!({"machine_id": 1, "run_id": 1})),
                )
            }),
        )
        .route(
            "/tm_api/test_start/",
            post(|Json(start): Json<TestStartPayload>| async move {
                let _ = std::hint::black_box(start);
                StatusCode::ACCEPTED
            }),
        )
        .route(
            "/tm_api/test_stop/",
            post(|Json(stop): Json<TestStopPayload>| async move {
                let _ = std::hint::black_box(stop);
                StatusCode::ACCEPTED
            }),
        )
}

async fn serve_bare(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, bare_router()).await
}

/// Serves the bare handlers on a thread with its own runtime; answers the base URL.
fn spawn_bare() -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            if let Err(error) = serve_bare(listener).await {
                eprintln!("bare server: {error}");
            }
        });
    });
    Ok(format!("http://{addr}"))
}

async fn run_load(args: &Args) -> Result<usize, String> {
    let base = if args.bare {
        spawn_bare()?
    } else {
        check_loopback(&args.url)?;
        args.url.trim_end_matches('/').to_owned()
    };
    if args.protocol == Protocol::V1 && args.batch > 1000 {
        return Err("--batch: at most 1000 events per batch".to_owned());
    }
    let protocol = if args.bare {
        Protocol::Seed
    } else {
        args.protocol
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.machines + 8)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let load = Load {
        client: client.clone(),
        base: base.clone(),
        protocol,
        scenarios: args.scenarios,
        tests: args.tests,
        batch: args.batch,
        ws: args.ws,
        bare: args.bare,
    };
    let max = Duration::from_secs_f64(args.max_seconds);
    let ready = Arc::new(tokio::sync::Barrier::new(args.machines + 1));
    let deadline = Arc::new(std::sync::Mutex::new(None));
    let tag = format!(
        "lg{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp()
    );
    let mut tasks = Vec::new();
    for m in 0..args.machines {
        tasks.push(tokio::spawn(machine(
            load.clone(),
            format!("{tag}-{m}"),
            Arc::clone(&ready),
            Arc::clone(&deadline),
            max,
        )));
    }
    let planning = Instant::now();
    ready.wait().await;
    let plans_took = planning.elapsed();
    let began = Instant::now();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.map_err(|e| e.to_string())?);
    }
    let posting = results
        .iter()
        .filter_map(|r| r.posted_at)
        .max()
        .map_or(Duration::ZERO, |last| last.saturating_duration_since(began));
    report(args, &client, &base, &results, plans_took, posting).await
}

async fn report(
    args: &Args,
    client: &reqwest::Client,
    base: &str,
    results: &[MachineResult],
    plans_took: Duration,
    posting: Duration,
) -> Result<usize, String> {
    let mut http: Vec<Duration> = results
        .iter()
        .flat_map(|r| r.tally.http.iter().copied())
        .collect();
    http.sort();
    let events: usize = results.iter().map(|r| r.tally.events_acked).sum();
    let errors: usize = results.iter().map(|r| r.tally.errors).sum();
    let mut socket = Vec::new();
    let mut lost = 0;
    for result in results.iter().filter(|r| r.listening) {
        for (sent, got) in result.stop_sent.iter().zip(&result.received) {
            match (sent, got) {
                (Some(sent), Some(got)) => socket.push(got.saturating_duration_since(*sent)),
                (Some(_), None) => lost += 1,
                _ => {}
            }
        }
    }
    socket.sort();
    let seconds = posting.as_secs_f64().max(1e-9);
    let rate = events as f64 / seconds;
    println!(
        "stpt-loadgen: {} machine(s) x {} tests ({}x{}), protocol {:?}{}{}, target {base}",
        args.machines,
        args.scenarios * args.tests,
        args.scenarios,
        args.tests,
        if args.bare {
            Protocol::Seed
        } else {
            args.protocol
        },
        if args.protocol == Protocol::V1 && !args.bare {
            format!(", batch {}", args.batch.max(1))
        } else {
            String::new()
        },
        if args.bare { " (bare handler)" } else { "" },
    );
    println!("plans: {} (all machines, before timing)", ms(plans_took));
    println!(
        "events acknowledged: {events} in {seconds:.2} s (from every plan posted to the last event sent) = {rate:.0} events/s"
    );
    println!(
        "HTTP latency: p50 {} p99 {} max {} (n = {})",
        ms(percentile(&http, 50.0)),
        ms(percentile(&http, 99.0)),
        ms(http.last().copied().unwrap_or_default()),
        http.len()
    );
    if args.ws && !args.bare {
        println!(
            "socket latency (stop POST sent -> change received): p50 {} p99 {} max {} (n = {}, lost {lost})",
            ms(percentile(&socket, 50.0)),
            ms(percentile(&socket, 99.0)),
            ms(socket.last().copied().unwrap_or_default()),
            socket.len()
        );
    }
    println!("errors: {errors}");
    for result in results {
        for error in &result.tally.first_errors {
            println!("  error: {error}");
        }
    }
    let mismatches = if args.bare || args.no_verify {
        println!("verification: skipped (--bare or --no-verify)");
        0
    } else {
        let mismatches = verify(client, base, results).await;
        println!(
            "verification: {} tests read back through /api/v1/runs/{{id}}, mismatches: {mismatches}",
            results.iter().map(|r| r.expected.len()).sum::<usize>()
        );
        mismatches
    };
    let socket_cells = if args.ws && !args.bare {
        format!(
            "{} | {}",
            ms(percentile(&socket, 50.0)),
            ms(percentile(&socket, 99.0))
        )
    } else {
        "- | -".to_owned()
    };
    println!();
    println!(
        "| {} | {} | {:?}{} | {rate:.0} | {} | {} | {socket_cells} | {errors} | {mismatches} |",
        args.label,
        args.machines,
        if args.bare {
            Protocol::Seed
        } else {
            args.protocol
        },
        if args.protocol == Protocol::V1 && !args.bare {
            format!(" B={}", args.batch.max(1))
        } else {
            String::new()
        },
        ms(percentile(&http, 50.0)),
        ms(percentile(&http, 99.0)),
    );
    Ok(errors + mismatches)
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Kills the spawned server when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run_rss(args: &Args, binary: &std::path::Path) -> Result<usize, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let bind = format!("127.0.0.1:{port}");
    let base = format!("http://{bind}");
    let child = std::process::Command::new(binary)
        .args([
            "--bind",
            &bind,
            "--database-url",
            &args.database_url,
            "--log",
            "warn",
        ])
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let child = Child(child);
    let pid = child.0.id();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let up = Instant::now();
    loop {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if up.elapsed() > Duration::from_secs(30) {
            return Err("the server did not answer /healthz within 30 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = args.scenarios * args.tests;
    println!(
        "stpt-loadgen RSS: {} (pid {pid}) --database-url {}; runs of {n} tests ({}), {} machine(s)",
        binary.display(),
        args.database_url,
        if args.rss_plans_only {
            "plans only"
        } else {
            "plan, then every start and stop in v1 batches of 1000"
        },
        args.machines.max(1)
    );
    println!(
        "RSS at start: {} MiB",
        vm_rss_kib(pid).unwrap_or(0) as f64 / 1024.0
    );
    println!();
    println!("| stored runs | tests stored | VmRSS | elapsed |");
    println!("| --- | --- | --- | --- |");
    let deadline = Instant::now() + Duration::from_secs_f64(args.max_seconds);
    let mut tally = Tally::default();
    let mut rss = Vec::new();
    let tag = format!("rss{}", std::process::id());
    let began = Instant::now();
    for run in 1..=args.rss_runs {
        if Instant::now() >= deadline {
            println!(
                "(stopped at the --max-seconds bound after {} runs)",
                run - 1
            );
            break;
        }
        let name = format!("{tag}-{}", run % args.machines.max(1));
        let plan = plan_json(&name, args.scenarios, args.tests);
        let Some(answer) = post(&client, &format!("{base}/api/v1/plans"), &plan, &mut tally).await
        else {
            continue;
        };
        if !args.rss_plans_only {
            let ids: Vec<i64> = answer["scenarios"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["test_ids"].as_array())
                .flatten()
                .filter_map(Value::as_i64)
                .collect();
            let events: Vec<Value> = ids
                .iter()
                .enumerate()
                .flat_map(|(i, id)| {
                    [
                        json!({"type": "test_start", "test_id": id, "timestamp": now()}),
                        json!({"type": "test_stop", "test_id": id, "status": status_of(i),
                               "timestamp": now()}),
                    ]
                })
                .collect();
            for chunk in events.chunks(1000) {
                if let Some(answer) = post(
                    &client,
                    &format!("{base}/api/v1/events"),
                    &json!({"events": chunk}),
                    &mut tally,
                )
                .await
                {
                    let rejected = answer["results"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| r["outcome"] != "applied")
                        .count();
                    if rejected > 0 {
                        tally.error(format!("run {run}: {rejected} events not applied"));
                    }
                }
            }
        }
        if args.rss_checkpoints.contains(&run) {
            let kib = vm_rss_kib(pid).unwrap_or(0);
            rss.push((run, kib));
            println!(
                "| {run} | {} | {:.1} MiB | {:.0} s |",
                run * n,
                kib as f64 / 1024.0,
                began.elapsed().as_secs_f64()
            );
        }
    }
    if let (Some(&(first_runs, first)), Some(&(last_runs, last))) = (rss.first(), rss.last()) {
        println!();
        println!(
            "RSS after {last_runs} runs / after {first_runs} runs = {:.2}x",
            last as f64 / first.max(1) as f64
        );
    }
    println!("errors: {}", tally.errors);
    for error in &tally.first_errors {
        println!("  error: {error}");
    }
    drop(child);
    Ok(tally.errors)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let outcome = if let Some(addr) = args.serve_bare {
        if !addr.ip().is_loopback() {
            Err(format!("{addr}: refusing a non-loopback address"))
        } else {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    println!("bare handlers on http://{addr}");
                    serve_bare(listener)
                        .await
                        .map(|()| 0)
                        .map_err(|e| e.to_string())
                }
                Err(error) => Err(format!("{addr}: {error}")),
            }
        }
    } else if let Some(binary) = &args.rss_server {
        run_rss(&args, binary).await
    } else {
        run_load(&args).await
    };
    match outcome {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::FAILURE,
        Err(error) => {
            eprintln!("stpt-loadgen: {error}");
            std::process::ExitCode::from(2)
        }
    }
}
