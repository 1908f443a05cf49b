//! The SQL stores' memory of ongoing runs never changes an outcome: random event sequences
//! spread over two instances sharing one database (two PostgreSQL stores on one database, two
//! SQLite stores on one file, as two processes would be) give the same answers and leave the
//! same runs as the memory store, the reference backend.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod support;

use chrono::{DateTime, Utc};
use std::sync::Arc;
use stpt_core::{Error, ManualClock, RunDetail, RunId, Status, StatusCounts, Store};
use stpt_store_memory::MemoryStore;
use stpt_store_sqlx::SqliteStore;
use support::{TempDatabase, plan, postgres_url, test_start, test_stop, tracker};

type Stamp = Option<DateTime<Utc>>;

/// A run without its ids: statuses, counts and times, in plan order.
type Shape = (
    Status,
    StatusCounts,
    Stamp,
    Stamp,
    Vec<(
        Status,
        StatusCounts,
        Stamp,
        Stamp,
        Vec<(String, Status, Stamp, Stamp)>,
    )>,
);

fn shape(run: &RunDetail) -> Shape {
    (
        run.summary.status,
        run.summary.statistics.counts,
        run.summary.timestamp_start,
        run.summary.timestamp_stop,
        run.scenarios
            .iter()
            .map(|s| {
                (
                    s.status,
                    s.counts,
                    s.timestamp_start,
                    s.timestamp_stop,
                    s.tests
                        .iter()
                        .map(|t| {
                            (
                                t.file.file_name.clone(),
                                t.status,
                                t.timestamp_start,
                                t.timestamp_stop,
                            )
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

/// What an answer says, without ids.
fn outcome<T>(result: &Result<T, Error>, describe: impl Fn(&T) -> String) -> String {
    match result {
        Ok(value) => describe(value),
        Err(Error::NoMatch(reason)) => format!("no match: {reason}"),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// A small deterministic generator (64-bit LCG), so a failure names its seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % sides
    }

    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.roll(u64::try_from(len).unwrap())).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_agree_with_the_memory_store() {
    let Some(url) = postgres_url() else { return };
    for seed in 1..=4_u64 {
        let db = TempDatabase::create(&url).await;
        let instances: [Arc<dyn Store>; 2] = [
            Arc::new(support::pg_store(&db).await),
            Arc::new(support::pg_store(&db).await),
        ];
        agree(instances, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sqlite_stores_on_one_file_agree_with_the_memory_store() {
    for seed in 1..=4_u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.sqlite3");
        let first = SqliteStore::open(&path).await.unwrap();
        first.migrate().await.unwrap();
        let second = SqliteStore::open(&path).await.unwrap();
        agree([Arc::new(first), Arc::new(second)], seed).await;
    }
}

/// Drives `instances` (two stores on one database) and the memory store through the same
/// random events, all on one server clock; panics at the first answer or run that differs.
async fn agree(instances: [Arc<dyn Store>; 2], seed: u64) {
    {
        let clock = Arc::new(ManualClock::new(support::at(0)));
        let on_clock = |store| tracker(store).with_clock(Arc::clone(&clock) as _);
        let reference = on_clock(Arc::new(MemoryStore::new()));
        let instances = instances.map(on_clock);
        let mut dice = Dice(seed);
        // Long stretches of events on one instance, then the other: memory is used,
        // overtaken, bypassed (read by query) and reloaded.
        let mut instance = 0;
        let mut runs: Vec<(RunId, RunId)> = Vec::new();
        // What each machine started last: most stops name it, so that they match.
        let mut started = [None, None];
        let finals = [
            Status::Passed,
            Status::Failed,
            Status::Warning,
            Status::Error,
            Status::Unknown,
        ];
        for step in 0..400_i64 {
            // The server receives each event a little over an hour after the runner sent it.
            clock.set(support::at(3 * step) + chrono::Duration::hours(1));
            if dice.roll(30) == 0 {
                instance = 1 - instance;
            }
            let stpt = &instances[instance];
            let which = dice.index(2);
            let machine = ["rig-a", "rig-b"][which];
            let (scenario, test) = (dice.index(2), dice.index(4));
            let (ours, theirs) = match dice.roll(24) {
                0 | 1 => {
                    let mut planned = plan(machine, 1 + dice.index(2), 2 + dice.index(3));
                    if dice.roll(2) == 0 {
                        // The same test more than once in a scenario: starts take them in
                        // plan order.
                        for scenario in &mut planned.scenarios {
                            for (t, test) in scenario.tests.iter_mut().enumerate() {
                                test.file_name = format!("t{}.py", t % 2);
                            }
                        }
                    }
                    let ours = stpt.record_plan(planned.clone()).await;
                    let theirs = reference.record_plan(planned).await;
                    if let (Ok(a), Ok(b)) = (&ours, &theirs) {
                        runs.push((a.ids.run_id, b.ids.run_id));
                    }
                    let describe =
                        |r: &stpt_core::PlanReceipt| format!("abandoned {}", r.abandoned.len());
                    (outcome(&ours, describe), outcome(&theirs, describe))
                }
                2..=13 => {
                    started[which] = Some((scenario, test));
                    let event = test_start(machine, scenario, test, step);
                    let ours = stpt.record_test_start(event.clone()).await;
                    let theirs = reference.record_test_start(event).await;
                    let describe =
                        |r: &stpt_core::EventReceipt| format!("{} {}", r.status, r.run_status);
                    (outcome(&ours, describe), outcome(&theirs, describe))
                }
                roll => {
                    let status = if roll == 23 {
                        Status::Cancelled
                    } else {
                        finals[dice.index(finals.len())]
                    };
                    let (scenario, test) = match started[which] {
                        Some(last) if dice.roll(5) > 0 => last,
                        _ => (scenario, test),
                    };
                    let event = test_stop(machine, scenario, test, status, step);
                    let ours = stpt.record_test_stop(event.clone()).await;
                    let theirs = reference.record_test_stop(event).await;
                    let describe =
                        |r: &stpt_core::EventReceipt| format!("{} {}", r.status, r.run_status);
                    (outcome(&ours, describe), outcome(&theirs, describe))
                }
            };
            assert_eq!(ours, theirs, "seed {seed}, step {step}");
        }
        assert!(!runs.is_empty(), "seed {seed} planned nothing");
        for (ours, theirs) in &runs {
            for stpt in &instances {
                let run = stpt.run(*ours).await.unwrap();
                support::assert_consistent(&run);
                assert_eq!(
                    shape(&run),
                    shape(&reference.run(*theirs).await.unwrap()),
                    "seed {seed}, run {ours}"
                );
            }
        }
    }
}
