//! Events per second through `Tracker` on each store, for runs of 10 and 10,000 tests, with
//! one machine and with 16 machines posting concurrently; and plan insert time for 10,000
//! tests. Prints a markdown table.
//!
//! `cargo bench -p stpt-benches --bench store_events`
//! (PostgreSQL too when `STPT_BENCH_POSTGRES_URL` is set, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`; a scratch database is created and dropped.)
//! `STPT_BENCH_PAIRS` sets the start/stop pairs each machine times (default 200: the memory
//! store then times a few milliseconds only, so compare it with e.g. 20000), and
//! `STPT_BENCH_STORES` which stores run (`memory,sqlite,postgres`, the default);
//! `STPT_BENCH_FLUSH_SECONDS` how often finished tests go to the duration histories (1);
//! `STPT_BENCH_SHAPES` which columns run, as `machines x tests` (e.g. `16x10,16x10000`; every
//! column when unset), for profiling one of them.

use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stpt_benches::plan;
use stpt_core::{InProcessBus, MachineName, Status, Store, TestStart, TestStop, Tracker};
use stpt_store_memory::MemoryStore;
use stpt_store_sqlx::sqlx::{self, Connection, Executor};
use stpt_store_sqlx::{PgStore, SqliteStore};

/// Start/stop pairs timed per machine and run size: `STPT_BENCH_PAIRS`, default 200.
fn pairs_per_machine() -> usize {
    std::env::var("STPT_BENCH_PAIRS")
        .ok()
        .and_then(|pairs| pairs.parse().ok())
        .unwrap_or(200)
}

/// How often finished tests are flushed to the histories: `STPT_BENCH_FLUSH_SECONDS`,
/// default 1.
fn flush_interval() -> Duration {
    let seconds = std::env::var("STPT_BENCH_FLUSH_SECONDS")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(1.0_f64);
    Duration::from_secs_f64(seconds.max(0.001))
}

/// Whether `STPT_BENCH_STORES` (a comma-separated list; every store when unset) names `store`.
fn wanted(store: &str) -> bool {
    std::env::var("STPT_BENCH_STORES").map_or(true, |stores| {
        stores.split(',').any(|name| name.trim() == store)
    })
}

/// Whether `STPT_BENCH_SHAPES` (a comma-separated list of `machines x tests`; every column
/// when unset) names the column of `machines` machines running `run_size`-test runs.
fn shape_wanted(machines: usize, run_size: usize) -> bool {
    let shape = format!("{machines}x{run_size}");
    std::env::var("STPT_BENCH_SHAPES").map_or(true, |shapes| {
        shapes.split(',').any(|wanted| wanted.trim() == shape)
    })
}

/// One machine's timed work: [`pairs_per_machine`] start/stop pairs, re-planning (untimed)
/// whenever a run is used up. Every machine plans its first run before any starts timing, so
/// a big plan's insert does not count against another machine's events; the first plans take
/// turns (`planning`), as 16 plans of 10,000 tests at once would wait longer for a PostgreSQL
/// connection than the pool allows. Returns the time spent in events.
async fn drive(
    tracker: Tracker,
    machine: String,
    run_size: usize,
    planning: Arc<tokio::sync::Mutex<()>>,
    ready: Arc<tokio::sync::Barrier>,
) -> Duration {
    {
        let _turn = planning.lock().await;
        tracker
            .record_plan(plan(&machine, run_size))
            .await
            .expect("plan stored");
    }
    ready.wait().await;
    let mut timed = Duration::ZERO;
    let mut next = 0;
    for _ in 0..pairs_per_machine() {
        if next == run_size {
            tracker
                .record_plan(plan(&machine, run_size))
                .await
                .expect("plan stored");
            next = 0;
        }
        let name = MachineName::new(machine.as_str()).expect("valid name");
        let file_name = format!("t{next}.py");
        let started = Instant::now();
        tracker
            .record_test_start(TestStart {
                machine: name.clone(),
                file_path: "/t".to_owned(),
                file_name: file_name.clone(),
                at: Utc::now().into(),
            })
            .await
            .expect("start matched");
        tracker
            .record_test_stop(TestStop {
                machine: name,
                file_path: "/t".to_owned(),
                file_name,
                status: Status::Passed,
                at: Utc::now().into(),
            })
            .await
            .expect("stop matched");
        timed += started.elapsed();
        next += 1;
    }
    timed
}

/// Events per second with `machines` posting concurrently.
async fn events_per_second(store: Arc<dyn Store>, machines: usize, run_size: usize) -> f64 {
    let tracker = Tracker::new(store, Arc::new(InProcessBus::new()));
    // As the server's liveness watch does (every 5 s there; every second here, so that even
    // short columns pay for it), finished tests go to the duration histories beside the events.
    let flusher = tokio::spawn({
        let tracker = tracker.clone();
        async move {
            let mut every = tokio::time::interval(flush_interval());
            loop {
                every.tick().await;
                let _ = tracker.flush_finished().await;
            }
        }
    });
    let mut tasks = tokio::task::JoinSet::new();
    let ready = Arc::new(tokio::sync::Barrier::new(machines));
    let planning = Arc::new(tokio::sync::Mutex::new(()));
    for m in 0..machines {
        let name = format!("bench-{run_size}-{machines}-{m}");
        tasks.spawn(drive(
            tracker.clone(),
            name,
            run_size,
            Arc::clone(&planning),
            Arc::clone(&ready),
        ));
    }
    let mut slowest = Duration::ZERO;
    while let Some(timed) = tasks.join_next().await {
        slowest = slowest.max(timed.expect("machine task"));
    }
    flusher.abort();
    (machines * pairs_per_machine() * 2) as f64 / slowest.as_secs_f64()
}

async fn plan_insert_seconds(store: Arc<dyn Store>) -> f64 {
    let tracker = Tracker::new(store, Arc::new(InProcessBus::new()));
    let started = Instant::now();
    tracker
        .record_plan(plan("plan-bench", 10_000))
        .await
        .expect("plan stored");
    started.elapsed().as_secs_f64()
}

type Opener = Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn Store>>>>>;

async fn measure(name: &str, open: Opener) {
    if !name.split_whitespace().next().is_some_and(wanted) {
        return;
    }
    let mut row = format!("| {name} |");
    for (machines, run_size) in [(1, 10), (1, 10_000), (16, 10), (16, 10_000)] {
        if !shape_wanted(machines, run_size) {
            row.push_str(" – |");
            continue;
        }
        let rate = events_per_second(open().await, machines, run_size).await;
        row.push_str(&format!(" {rate:.0} |"));
    }
    let seconds = plan_insert_seconds(open().await).await;
    row.push_str(&format!(" {:.0} ms |", seconds * 1000.0));
    println!("{row}");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    println!(
        "events/s through Tracker ({} start/stop pairs per machine)\n",
        pairs_per_machine()
    );
    println!(
        "| store | 1 machine, 10-test runs | 1 machine, 10,000-test runs | 16 machines, 10-test runs | 16 machines, 10,000-test runs | plan of 10,000 tests |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    measure(
        "memory",
        Box::new(|| Box::pin(async { Arc::new(MemoryStore::new()) as Arc<dyn Store> })),
    )
    .await;

    let dir = std::env::temp_dir().join(format!("stpt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sqlite_dir = dir.clone();
    measure(
        "sqlite (file, WAL, synchronous=FULL)",
        Box::new(move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = sqlite_dir.join(format!("bench-{n}.sqlite3"));
            Box::pin(async move {
                let store = SqliteStore::open(&path).await.expect("sqlite opens");
                store.migrate().await.expect("migrations");
                Arc::new(store) as Arc<dyn Store>
            })
        }),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);

    match std::env::var("STPT_BENCH_POSTGRES_URL") {
        Ok(url) => {
            let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let opened = Arc::clone(&counter);
            let admin_url = url.clone();
            measure(
                "postgres",
                Box::new(move || {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let admin_url = admin_url.clone();
                    Box::pin(async move {
                        let database = format!("stpt_bench_{}_{n}", std::process::id());
                        let mut admin = sqlx::PgConnection::connect(&admin_url)
                            .await
                            .expect("postgres reachable");
                        admin
                            .execute(format!("CREATE DATABASE {database}").as_str())
                            .await
                            .expect("scratch database");
                        let base = admin_url
                            .rsplit_once('/')
                            .map_or(admin_url.as_str(), |(base, _)| base);
                        let store = PgStore::connect(&format!("{base}/{database}"))
                            .await
                            .expect("connects");
                        store.migrate().await.expect("migrations");
                        Arc::new(store) as Arc<dyn Store>
                    })
                }),
            )
            .await;
            // Drop the scratch databases (their pools are gone with their trackers).
            let mut admin = sqlx::PgConnection::connect(&url)
                .await
                .expect("postgres reachable");
            for n in 0..opened.load(std::sync::atomic::Ordering::Relaxed) {
                let database = format!("stpt_bench_{}_{n}", std::process::id());
                let _ = admin
                    .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
                    .await;
            }
        }
        Err(_) => println!("\n(postgres skipped: STPT_BENCH_POSTGRES_URL is unset)"),
    }
}
