//! How long `Tracker::eta` takes on a run of 10,000 tests (100 scenarios × 100 tests, 10,000
//! test identities) with a duration history for every identity on the run's machine and
//! across machines, 50 tests finished and one running. Prints a markdown table of the median
//! and 95th percentile over `READS` reads, per store.
//!
//! `cargo bench -p stpt-benches --bench eta`
//! (PostgreSQL too when `STPT_BENCH_POSTGRES_URL` is set, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`; a scratch database is created and dropped.)

use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stpt_benches::plan;
use stpt_core::{
    FileRef, FinishedTest, InProcessBus, MachineName, Status, Store, TestStart, TestStop, Tracker,
};
use stpt_store_memory::MemoryStore;
use stpt_store_sqlx::sqlx::{self, Connection, Executor};
use stpt_store_sqlx::{PgStore, SqliteStore};

/// Tests in the run (and test identities: every test has a file name of its own).
const TESTS: usize = 10_000;
/// Samples recorded per identity on the run's machine and on each other machine.
const SAMPLES: i64 = 5;
/// Other machines that ran the same tests (their samples fill the histories across machines).
const OTHER_MACHINES: usize = 3;
/// Tests started and stopped before the reads; the next one is left running.
const FINISHED: usize = 50;
/// Timed reads (after `WARMUP` untimed ones).
const READS: usize = 200;
const WARMUP: usize = 10;
/// Reads timed one after each event (a stop and the next start), as a live page asks.
const EVENT_READS: usize = 100;

/// Samples for every identity of the 10,000-test plan, `SAMPLES` per identity, on `machine`.
fn samples(machine: stpt_core::MachineId) -> Vec<FinishedTest> {
    (0..TESTS)
        .flat_map(|t| {
            (0..SAMPLES).map(move |k| FinishedTest {
                machine_id: machine,
                // No such test: only the duration histories take these samples.
                test_id: stpt_core::TestId(0),
                file: FileRef {
                    file_path: "/t".to_owned(),
                    file_name: format!("t{t}.py"),
                },
                status: stpt_core::Status::Passed,
                millis: Some(1_000 + (t as i64 % 97) * 10 + k),
            })
        })
        .collect()
}

/// Sets up the run on `store` and answers the median and p95 of `Tracker::eta`, and the
/// number of seconds it estimated (as a check that it used the histories).
async fn measure(name: &str, store: Arc<dyn Store>) {
    let tracker = Tracker::new(Arc::clone(&store), Arc::new(InProcessBus::new()));
    let setup = Instant::now();
    for m in 0..OTHER_MACHINES {
        let receipt = tracker
            .record_plan(plan(&format!("eta-other-{m}"), 10))
            .await
            .expect("plan stored");
        store
            .record_finished(&samples(receipt.machine_id))
            .await
            .expect("durations recorded");
    }
    let receipt = tracker
        .record_plan(plan("eta-bench", TESTS))
        .await
        .expect("plan stored");
    store
        .record_finished(&samples(receipt.machine_id))
        .await
        .expect("durations recorded");
    let machine = MachineName::new("eta-bench").expect("valid name");
    for t in 0..=FINISHED {
        let file_name = format!("t{t}.py");
        tracker
            .record_test_start(TestStart {
                machine: machine.clone(),
                file_path: "/t".to_owned(),
                file_name: file_name.clone(),
                at: Utc::now().into(),
            })
            .await
            .expect("start matched");
        if t < FINISHED {
            tracker
                .record_test_stop(TestStop {
                    machine: machine.clone(),
                    file_path: "/t".to_owned(),
                    file_name,
                    status: Status::Passed,
                    at: Utc::now().into(),
                })
                .await
                .expect("stop matched");
        }
    }
    let setup = setup.elapsed();
    let run = receipt.ids.run_id;
    // The first read: nothing held yet, the store reads the run's remaining work.
    let started = Instant::now();
    let mut eta = Some(tracker.eta(run).await.expect("eta"));
    let first = started.elapsed();
    for _ in 0..WARMUP {
        eta = Some(tracker.eta(run).await.expect("eta"));
    }
    let mut times: Vec<Duration> = Vec::with_capacity(READS);
    for _ in 0..READS {
        let started = Instant::now();
        eta = Some(tracker.eta(run).await.expect("eta"));
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let median = times[READS / 2];
    let p95 = times[READS * 95 / 100];
    // As a live page asks: after each event (a stop and the next start), one read.
    let mut after_events: Vec<Duration> = Vec::with_capacity(EVENT_READS);
    for t in FINISHED..FINISHED + EVENT_READS {
        for (file_name, stopping) in [
            (format!("t{t}.py"), true),
            (format!("t{}.py", t + 1), false),
        ] {
            if stopping {
                tracker
                    .record_test_stop(TestStop {
                        machine: machine.clone(),
                        file_path: "/t".to_owned(),
                        file_name,
                        status: Status::Passed,
                        at: Utc::now().into(),
                    })
                    .await
                    .expect("stop matched");
            } else {
                tracker
                    .record_test_start(TestStart {
                        machine: machine.clone(),
                        file_path: "/t".to_owned(),
                        file_name,
                        at: Utc::now().into(),
                    })
                    .await
                    .expect("start matched");
            }
        }
        let started = Instant::now();
        eta = Some(tracker.eta(run).await.expect("eta"));
        after_events.push(started.elapsed());
    }
    after_events.sort_unstable();
    let event_median = after_events[EVENT_READS / 2];
    let event_p95 = after_events[EVENT_READS * 95 / 100];
    let eta = eta.expect("read at least once");
    let remaining = eta
        .remaining_seconds
        .map_or_else(|| "none".to_owned(), |s| s.to_string());
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {remaining} s{} | {:.1} s |",
        ms(first),
        ms(median),
        ms(p95),
        ms(event_median),
        ms(event_p95),
        if eta.rough { " (rough)" } else { "" },
        setup.as_secs_f64(),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    println!(
        "Tracker::eta on a {TESTS}-test run ({FINISHED} finished, 1 running), {READS} reads\n"
    );
    println!(
        "| store | first read | median | p95 | after each event: median | p95 | estimate | setup |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    measure("memory", Arc::new(MemoryStore::new())).await;

    let dir = std::env::temp_dir().join(format!("stpt-bench-eta-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    {
        let store = SqliteStore::open(&dir.join("eta.sqlite3"))
            .await
            .expect("sqlite opens");
        store.migrate().await.expect("migrations");
        measure("sqlite (file, WAL)", Arc::new(store)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    match std::env::var("STPT_BENCH_POSTGRES_URL") {
        Ok(url) => {
            let database = format!("stpt_bench_eta_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&url)
                .await
                .expect("postgres reachable");
            admin
                .execute(format!("CREATE DATABASE {database}").as_str())
                .await
                .expect("scratch database");
            let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
            {
                let store = PgStore::connect(&format!("{base}/{database}"))
                    .await
                    .expect("connects");
                store.migrate().await.expect("migrations");
                measure("postgres", Arc::new(store)).await;
            }
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
                .await;
        }
        Err(_) => println!("\n(postgres skipped: STPT_BENCH_POSTGRES_URL is unset)"),
    }
}
