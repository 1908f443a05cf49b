//! Shared by the integration tests: fresh databases, the external-service skip rule, and
//! scenarios run against both backends.
#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::Arc;
use stpt_core::wrap::WrapStore;
use stpt_core::{
    Error, InProcessBus, ItemRef, MachineName, Plan, PlannedScenario, Result, RunDetail,
    ScriptFile, Status, StatusCounts, Store, StoreTx, TestStart, TestStop, Tracker,
};
use stpt_store_sqlx::{PgStore, SqliteStore};

pub use stpt_testkit::{TempDatabase, postgres_url};

/// A migrated store on `database`, with a pool of its own.
pub async fn pg_store(database: &TempDatabase) -> PgStore {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(database.options.clone())
        .await
        .unwrap();
    let store = PgStore::new(pool);
    store.migrate().await.unwrap();
    store
}

/// A store that owns what it needs besides itself (a temp database or directory), released
/// when the store is dropped.
#[derive(Debug)]
pub struct Owned<S, G: std::fmt::Debug> {
    pub store: S,
    pub guard: G,
}

impl<S: Store, G: std::fmt::Debug + Send + Sync + 'static> WrapStore for Owned<S, G> {
    fn inner(&self) -> &dyn Store {
        &self.store
    }
}

impl<S, G: std::fmt::Debug> Owned<S, G> {
    /// The store and its guard, for the conformance macros' `-> (Subject, Guard)` form.
    pub fn into_parts(self) -> (S, G) {
        (self.store, self.guard)
    }
}

/// A migrated PostgreSQL store on a fresh database, or `None` if the suite is skipped.
pub async fn fresh_pg() -> Option<Owned<PgStore, TempDatabase>> {
    let url = postgres_url()?;
    let db = TempDatabase::create(&url).await;
    let store = pg_store(&db).await;
    Some(Owned { store, guard: db })
}

/// A migrated SQLite store on a fresh file in a temp directory.
pub async fn fresh_sqlite() -> Owned<SqliteStore, tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("stpt.sqlite3"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Owned { store, guard: dir }
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 13, 0, 0).unwrap()
        + Duration::seconds(seconds)
        + Duration::microseconds(654_321)
}

pub fn file(path: &str, name: &str) -> ScriptFile {
    ScriptFile {
        file_path: path.to_owned(),
        file_name: name.to_owned(),
        script: Some(format!("# {name}\n")),
    }
}

/// A plan of `scenarios` scenarios of `tests` tests each; test `t` of scenario `s` is
/// `/t/s{s}` `t{t}.py`.
pub fn plan(machine: &str, scenarios: usize, tests: usize) -> Plan {
    Plan {
        machine: MachineName::new(machine).unwrap(),
        timestamp: at(0).into(),
        master: file("/m", "master.py"),
        scenarios: (0..scenarios)
            .map(|s| PlannedScenario {
                file: file("/s", &format!("s{s}.py")),
                tests: (0..tests)
                    .map(|t| file(&format!("/t/s{s}"), &format!("t{t}.py")))
                    .collect(),
            })
            .collect(),
    }
}

pub fn tracker(store: Arc<dyn Store>) -> Tracker {
    Tracker::new(store, Arc::new(InProcessBus::new()))
}

pub fn test_start(machine: &str, scenario: usize, test: usize, time: i64) -> TestStart {
    TestStart {
        machine: MachineName::new(machine).unwrap(),
        file_path: format!("/t/s{scenario}"),
        file_name: format!("t{test}.py"),
        at: at(time).into(),
    }
}

pub fn test_stop(
    machine: &str,
    scenario: usize,
    test: usize,
    status: Status,
    time: i64,
) -> TestStop {
    TestStop {
        machine: MachineName::new(machine).unwrap(),
        file_path: format!("/t/s{scenario}"),
        file_name: format!("t{test}.py"),
        status,
        at: at(time).into(),
    }
}

/// Checks that every stored aggregate agrees with the tests it counts.
pub fn assert_consistent(run: &RunDetail) {
    let mut all = StatusCounts::new();
    for scenario in &run.scenarios {
        let counts: StatusCounts = scenario.tests.iter().map(|t| t.status).collect();
        assert_eq!(
            scenario.counts, counts,
            "counts of scenario {}",
            scenario.id
        );
        assert_eq!(scenario.status, counts.status());
        all = all.plus(&counts);
    }
    assert_eq!(
        run.summary.statistics.counts, all,
        "counts of run {}",
        run.summary.id
    );
    assert_eq!(run.summary.status, all.status());
    let running = run
        .scenarios
        .iter()
        .flat_map(|s| &s.tests)
        .filter(|t| t.status == Status::Running)
        .count();
    assert!(running <= 1, "{running} tests running at once");
}

/// Two trackers on two stores (two pools) of one database post events for the same runs at
/// once: every acknowledged stop is found, every aggregate agrees with its tests.
pub async fn two_trackers_lose_nothing(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let trackers = [tracker(a), tracker(b)];
    let machines = ["rig-a", "rig-b", "rig-c"];
    let mut runs = Vec::new();
    for machine in machines {
        let receipt = trackers[0].record_plan(plan(machine, 2, 10)).await.unwrap();
        runs.push(receipt.ids.run_id);
    }
    let finals = [
        Status::Passed,
        Status::Failed,
        Status::Warning,
        Status::Error,
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for machine in machines {
        for (side, tracker) in trackers.iter().enumerate() {
            let tracker = tracker.clone();
            tasks.spawn(async move {
                let mut acknowledged = Vec::new();
                // Side 0 works through scenario 0, side 1 through scenario 1, concurrently: each
                // start turns the other side's running test `unknown`, so stops may miss.
                for t in 0..10 {
                    let time = i64::try_from(t).unwrap() * 3;
                    let status = finals[(t + side) % finals.len()];
                    match tracker
                        .record_test_start(test_start(machine, side, t, time))
                        .await
                    {
                        Ok(_) | Err(Error::NoMatch(_)) => {}
                        Err(e) => panic!("start: {e}"),
                    }
                    tokio::task::yield_now().await;
                    match tracker
                        .record_test_stop(test_stop(machine, side, t, status, time + 1))
                        .await
                    {
                        Ok(receipt) => acknowledged.push((machine, receipt.test_id, status)),
                        Err(Error::NoMatch(_)) => {}
                        Err(e) => panic!("stop: {e}"),
                    }
                }
                acknowledged
            });
        }
    }
    let mut acknowledged = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        acknowledged.extend(joined.unwrap());
    }
    assert!(!acknowledged.is_empty());
    for (i, run_id) in runs.iter().enumerate() {
        for tracker in &trackers {
            let run = tracker.run(*run_id).await.unwrap();
            assert_consistent(&run);
            for (machine, test_id, status) in &acknowledged {
                if *machine == machines[i] {
                    let test = run
                        .scenarios
                        .iter()
                        .flat_map(|s| &s.tests)
                        .find(|t| t.id == *test_id)
                        .unwrap();
                    assert_eq!(test.status, *status, "acknowledged stop of test {test_id}");
                }
            }
            let started = run
                .scenarios
                .iter()
                .flat_map(|s| &s.tests)
                .filter(|t| t.status != Status::Waiting)
                .count();
            assert_eq!(started, 20, "every test of {} was started", machines[i]);
        }
    }
}

/// A 10,000-test plan is stored, read back in plan order, and its last test starts.
pub async fn big_plan(store: Arc<dyn Store>) {
    let tracker = tracker(store);
    let started = std::time::Instant::now();
    let receipt = tracker.record_plan(plan("big", 100, 100)).await.unwrap();
    let stored_in = started.elapsed();
    assert_eq!(receipt.ids.test_ids.len(), 100);
    assert!(receipt.ids.test_ids.iter().all(|ids| ids.len() == 100));
    let run = tracker.run(receipt.ids.run_id).await.unwrap();
    assert_eq!(run.summary.statistics.tests, 10_000);
    for (s, scenario) in run.scenarios.iter().enumerate() {
        assert_eq!(scenario.id, receipt.ids.scenario_ids[s]);
        assert_eq!(scenario.file.file_name, format!("s{s}.py"));
        for (t, test) in scenario.tests.iter().enumerate() {
            assert_eq!(test.id, receipt.ids.test_ids[s][t]);
            assert_eq!(test.file.file_name, format!("t{t}.py"));
        }
    }
    let event = tracker
        .record_test_start(test_start("big", 99, 99, 1))
        .await
        .unwrap();
    assert_eq!(event.test_id, receipt.ids.test_ids[99][99]);
    let event = tracker
        .record_test_stop(test_stop("big", 99, 99, Status::Passed, 2))
        .await
        .unwrap();
    assert_eq!(event.status, Status::Passed);
    let item = tracker.item(ItemRef::Test(event.test_id)).await.unwrap();
    assert_eq!(item.script.as_deref(), Some("# t99.py\n"));
    eprintln!("10,000-test plan stored in {stored_in:?}");
}

/// Asserts `result` is a backend error (a bad row), not a panic nor another error.
pub fn assert_backend<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    match result {
        Err(Error::Backend { source }) => eprintln!("{what}: backend error as expected: {source}"),
        other => panic!("{what}: expected a backend error, got {other:?}"),
    }
}

/// A commit that fails half-way leaves no trace, and its unit's lock is released: the next
/// unit on the machine begins at once.
pub async fn failed_commit_leaves_no_trace(store: Arc<dyn Store>) {
    use stpt_core::rules::{RunWork, TestState};
    let tracker = tracker(Arc::clone(&store));
    let receipt = tracker.record_plan(plan("rig", 1, 2)).await.unwrap();
    let before = tracker.run(receipt.ids.run_id).await.unwrap();
    let name = MachineName::new("rig").unwrap();

    let mut tx = store.begin(&name).await.unwrap();
    let run = tx.ongoing_runs().await.unwrap().remove(0);
    let target = tx
        .first_waiting_test(run.id, "/t/s0", "t0.py")
        .await
        .unwrap()
        .unwrap();
    let scenarios = vec![tx.scenario(target.scenario_id).await.unwrap()];
    let mut work = RunWork::new(run, scenarios);
    work.start_test(target.clone(), None, at(1)).unwrap();
    work.tests.push(TestState {
        id: stpt_core::TestId(987_654_321),
        ..target
    });
    let failed = tx
        .commit(stpt_core::Changes {
            seen_at: at(1),
            clock_offset: None,
            runs: vec![work],
            new_run: None,
            record: None,
        })
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(tracker.run(receipt.ids.run_id).await.unwrap(), before);

    // A unit dropped without commit releases the machine too.
    let tx = store.begin(&name).await.unwrap();
    drop(tx);
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), store.begin(&name))
        .await
        .expect("the machine is still locked");
    drop(next);
    tracker
        .record_test_start(test_start("rig", 0, 0, 1))
        .await
        .unwrap();
}

/// A plan whose commit fails after its test identities were written leaves the store
/// believing nothing about them: the next plan of the same tests writes them, and they are
/// found. (The store skips identities it knows committed; it must learn them only from a
/// durable commit.) The first commit fails on a client event id already recorded, which is
/// written after the identities.
pub async fn failed_plan_leaves_its_identities_to_the_next(store: Arc<dyn Store>) {
    use stpt_core::{Changes, EventRecord, NewRun, RunnerTimezone};
    let tracker = tracker(Arc::clone(&store));
    let name = MachineName::new("rig").unwrap();
    let commit_plan = |plan: Plan| {
        let store = Arc::clone(&store);
        let name = name.clone();
        async move {
            let tx = store.begin(&name).await?;
            let new_run = NewRun::from_plan(plan, RunnerTimezone::UTC, at(0))?;
            tx.commit(Changes {
                seen_at: at(0),
                clock_offset: None,
                runs: Vec::new(),
                new_run: Some(new_run),
                record: Some(EventRecord {
                    event_id: "plan-1".to_owned(),
                    receipt: None,
                }),
            })
            .await
        }
    };
    commit_plan(plan("rig", 1, 1)).await.unwrap();
    let identities = |store: Arc<dyn Store>| async move {
        store
            .search_tests(None, stpt_core::PageRequest::default())
            .await
            .unwrap()
            .total
    };
    assert_eq!(identities(Arc::clone(&store)).await, 1);

    let failed = commit_plan(plan("rig", 1, 3)).await;
    assert!(
        failed.is_err(),
        "a second record of one event id: {failed:?}"
    );
    assert_eq!(identities(Arc::clone(&store)).await, 1, "rolled back");

    tracker.record_plan(plan("rig", 1, 3)).await.unwrap();
    assert_eq!(identities(Arc::clone(&store)).await, 3);
}

/// A deleted machine takes its duration histories and flaky windows with it: runs one
/// finished test on machines `gone` and `kept`, flushes their histories, deletes `gone`, and
/// counts each machine's rows with `count(sql, machine_id)` in the tables named `{prefix}durations`
/// and `{prefix}flaky`.
pub async fn deleted_machines_histories_go<F, Fut>(store: Arc<dyn Store>, prefix: &str, count: F)
where
    F: Fn(String, i64) -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    let tracker = tracker(store);
    let mut ids = Vec::new();
    for machine in ["gone", "kept"] {
        let receipt = tracker.record_plan(plan(machine, 1, 1)).await.unwrap();
        tracker
            .record_test_start(test_start(machine, 0, 0, 1))
            .await
            .unwrap();
        tracker
            .record_test_stop(test_stop(machine, 0, 0, Status::Failed, 2))
            .await
            .unwrap();
        ids.push(receipt.machine_id.get());
    }
    assert_eq!(tracker.flush_finished().await.unwrap(), 2);
    tracker
        .delete_machine(stpt_core::MachineId(ids[0]))
        .await
        .unwrap();
    for table in ["durations", "flaky"] {
        let sql = format!("SELECT COUNT(*) FROM {prefix}{table} WHERE machine_id = $1");
        assert_eq!(
            count(sql.clone(), ids[0]).await,
            0,
            "{table} kept rows of a deleted machine"
        );
        assert!(
            count(sql, ids[1]).await > 0,
            "{table} lost the other machine's rows"
        );
    }
}
