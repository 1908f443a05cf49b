//! SQLite-specific tests: durability without a clean shutdown, two stores on one file, bad
//! rows, idempotent migrations, a large plan.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use stpt_core::{ItemRef, PageRequest, Status, Store};
use stpt_store_sqlx::SqliteStore;
use support::{
    assert_backend, deleted_machines_histories_go, plan, test_start, test_stop, tracker,
};

/// Every acknowledged event is in the file after the store is dropped without any shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_an_unclean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stpt.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    let pool = store.pool().clone();
    let tracker = tracker(Arc::new(store));
    let receipt = tracker.record_plan(plan("rig", 2, 3)).await.unwrap();
    let finals = [Status::Passed, Status::Failed, Status::Warning];
    let mut expected = Vec::new();
    for s in 0..2 {
        for t in 0..3 {
            let time = i64::try_from(s * 10 + t * 2).unwrap();
            tracker
                .record_test_start(test_start("rig", s, t, time))
                .await
                .unwrap();
            let status = finals[(s + t) % 3];
            tracker
                .record_test_stop(test_stop("rig", s, t, status, time + 1))
                .await
                .unwrap();
            expected.push(status);
        }
    }
    // No close, no checkpoint: the pool and its connections are leaked as a crash would.
    drop(tracker);
    std::mem::forget(pool);

    let reopened = SqliteStore::open(&path).await.unwrap();
    reopened.migrate().await.unwrap();
    let run = reopened.run(receipt.ids.run_id).await.unwrap();
    let statuses: Vec<Status> = run
        .scenarios
        .iter()
        .flat_map(|s| s.tests.iter().map(|t| t.status))
        .collect();
    assert_eq!(statuses, expected);
    support::assert_consistent(&run);
    assert_eq!(run.summary.status, Status::Failed);
}

/// Two stores (two pools, as two processes would have) on one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trackers_on_one_file_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stpt.sqlite3");
    let a = SqliteStore::open(&path).await.unwrap();
    a.migrate().await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    b.migrate().await.unwrap();
    support::two_trackers_lose_nothing(Arc::new(a), Arc::new(b)).await;
}

/// A status text the domain does not know is a backend error on every read, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_backend_errors() {
    let store = support::fresh_sqlite().await;
    let pool = store.store.pool().clone();
    let tracker = tracker(Arc::new(store));
    let receipt = tracker.record_plan(plan("rig", 1, 2)).await.unwrap();
    let test = receipt.ids.test_ids[0][0];
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE stpt_tests SET status = 'bogus' WHERE id = $1")
        .bind(test.get())
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_backend(tracker.run(receipt.ids.run_id).await, "run");
    assert_backend(tracker.item(ItemRef::Test(test)).await, "item");
    sqlx::query("UPDATE stpt_runs SET status = 'bogus', n_passed = -1")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("UPDATE stpt_runs SET planned_at = 'not a time' WHERE id = $1")
        .bind(receipt.ids.run_id.get())
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_backend(tracker.machines(PageRequest::default()).await, "machines");
    assert_backend(tracker.machine(receipt.machine_id).await, "machine");
    assert_backend(
        tracker
            .runs(receipt.machine_id, PageRequest::default())
            .await,
        "runs",
    );
    sqlx::query("UPDATE stpt_runs SET status = 'waiting'")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    assert_backend(
        tracker.record_test_start(test_start("rig", 0, 1, 1)).await,
        "test_start",
    );
}

/// Migrating twice is harmless; a host's own sqlx migrations in the same file do not collide
/// with ours, which are kept in `stpt_migrations`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_apart_from_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        host_dir.path().join("0001_host.sql"),
        "CREATE TABLE machines (host_column TEXT);\nCREATE TABLE users (host_column TEXT);\n",
    )
    .unwrap();
    let host = sqlx::migrate::Migrator::new(host_dir.path()).await.unwrap();
    host.run(store.pool()).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    host.run(store.pool()).await.unwrap();
    let ours: Vec<String> =
        sqlx::query_scalar("SELECT description FROM stpt_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        ours,
        [
            "init",
            "accounts",
            "machine version",
            "indexes for memory",
            "clocks and liveness",
            "machine timezone",
            "test history",
            "failure details",
            "machine settings",
            "running test on run",
            "one history index"
        ]
    );
    let theirs: Vec<String> = sqlx::query_scalar("SELECT description FROM _sqlx_migrations")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(theirs, ["host"]);
    // A changed migration is refused.
    sqlx::query("UPDATE stpt_migrations SET checksum = x'00'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_backend(store.migrate().await, "migrate");
}

/// Tests stored before identities existed get their key, and their identity is listed, when
/// the store next migrates: their history reads as any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_are_backfilled_on_migrate() {
    use stpt_core::FileRef;
    use stpt_core::history::{HistoryQuery, TestIdentity};
    let owned = support::fresh_sqlite().await;
    let store = Arc::new(owned.store);
    let tracker = tracker(store.clone() as Arc<dyn Store>);
    tracker.record_plan(plan("rig", 2, 3)).await.unwrap();
    tracker.record_plan(plan("rig", 2, 3)).await.unwrap();
    // As a file written before migration 7 would be.
    sqlx::query("UPDATE stpt_tests SET identity_key = NULL")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM stpt_test_identities")
        .execute(store.pool())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let missing: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM stpt_tests WHERE identity_key IS NULL")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(missing, 0);
    let identity = TestIdentity::new(
        FileRef {
            file_path: "/s".into(),
            file_name: "s1.py".into(),
        },
        FileRef {
            file_path: "/t/s1".into(),
            file_name: "t2.py".into(),
        },
    );
    let history = store
        .test_history(identity.key(), HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.results.len(), 2, "one result a run");
    let listed = store
        .search_tests(None, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.total, 6);
    let _ = owned.guard;
}

/// A 10,000-test plan goes in as a few statements and comes back in plan order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_test_plan() {
    let store = support::fresh_sqlite().await;
    support::big_plan(Arc::new(store) as Arc<dyn Store>).await;
}

/// Opening and migrating can run on a spawned task (their futures are `Send`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_and_migrate_are_send() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spawned.sqlite3");
    let store = tokio::spawn(async move {
        let store = SqliteStore::open(path).await.unwrap();
        store.migrate().await.unwrap();
        store
    })
    .await
    .unwrap();
    assert_eq!(
        store.machines(PageRequest::default()).await.unwrap().total,
        0
    );
}

/// A commit that fails half-way leaves no trace and releases the write lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_leaves_no_trace() {
    let store = support::fresh_sqlite().await;
    support::failed_commit_leaves_no_trace(Arc::new(store)).await;
}

/// Timestamps keep their microseconds at the ends of the stored range; a year outside it is
/// invalid input, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_range() {
    use chrono::{TimeZone, Utc};
    let store = support::fresh_sqlite().await;
    let tracker = tracker(Arc::new(store));
    for (machine, text) in [
        ("first", "0001-01-01 00:00:00.000001"),
        ("last", "9999-12-31 23:59:59.999999"),
    ] {
        let mut early = plan(machine, 1, 1);
        early.timestamp = stpt_core::RunnerTime::parse(text).unwrap();
        let receipt = tracker.record_plan(early.clone()).await.unwrap();
        let run = tracker.run(receipt.ids.run_id).await.unwrap();
        assert_eq!(
            run.summary.timestamp,
            stpt_core::parse_timestamp(text).unwrap()
        );
    }
    let mut odd = plan("odd", 1, 1);
    odd.timestamp = Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap().into();
    let result = tracker.record_plan(odd).await;
    assert!(
        matches!(result, Err(stpt_core::Error::InvalidInput { .. })),
        "{result:?}"
    );
    assert_eq!(
        tracker
            .machines(PageRequest::default())
            .await
            .unwrap()
            .total,
        2
    );
}

/// A store never answers from memory that another connection made stale: a second store on
/// the same file (as a second process would) starts a test, and the first, which remembers
/// the run with that test waiting, must see it running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_follows_another_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite3");
    let a = SqliteStore::open(&path).await.unwrap();
    a.migrate().await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    let (a, b) = (tracker(Arc::new(a)), tracker(Arc::new(b)));
    let receipt = a.record_plan(plan("rig", 1, 3)).await.unwrap();
    // `a` remembers the run now; `b` moves it on.
    a.record_test_start(test_start("rig", 0, 0, 1))
        .await
        .unwrap();
    b.record_test_stop(test_stop("rig", 0, 0, Status::Passed, 2))
        .await
        .unwrap();
    b.record_test_start(test_start("rig", 0, 1, 3))
        .await
        .unwrap();
    let stopped = a
        .record_test_stop(test_stop("rig", 0, 1, Status::Failed, 4))
        .await
        .unwrap();
    assert_eq!(stopped.status, Status::Failed);
    // And back: `b`'s memory is stale in turn.
    a.record_test_start(test_start("rig", 0, 2, 5))
        .await
        .unwrap();
    b.record_test_stop(test_stop("rig", 0, 2, Status::Warning, 6))
        .await
        .unwrap();
    let run = a.run(receipt.ids.run_id).await.unwrap();
    let statuses: Vec<Status> = run.scenarios[0].tests.iter().map(|t| t.status).collect();
    assert_eq!(statuses, [Status::Passed, Status::Failed, Status::Warning]);
    support::assert_consistent(&run);
}

/// A deferred commit becomes durable even if nobody waits for it, and until then other
/// connections do not see it; units behind it see it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_commits_are_flushed_without_a_waiter() {
    let store = support::fresh_sqlite().await;
    let pool = store.store.pool().clone();
    let store: Arc<dyn Store> = Arc::new(store);
    let tracker = tracker(Arc::clone(&store));
    let receipt = tracker.record_plan(plan("rig", 1, 2)).await.unwrap();
    let test = receipt.ids.test_ids[0][0];
    let events = vec![
        (
            stpt_core::TestEvent {
                target: stpt_core::TestTarget::Id(test),
                action: stpt_core::TestAction::Start,
                at: support::at(1).into(),
                failure: None,
            },
            None,
        ),
        (
            stpt_core::TestEvent {
                target: stpt_core::TestTarget::Id(test),
                action: stpt_core::TestAction::Stop(Status::Passed),
                at: support::at(2).into(),
                failure: None,
            },
            None,
        ),
    ];
    let results = tracker.record_test_events(events).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    // One unit committed deferred, its durability dropped unawaited.
    let mut unit = store
        .begin(&stpt_core::MachineName::new("rig").unwrap())
        .await
        .unwrap();
    let run = unit.ongoing_runs().await.unwrap().remove(0);
    let running = unit
        .first_waiting_test(run.id, "/t/s0", "t1.py")
        .await
        .unwrap()
        .unwrap();
    let scenario = unit.scenario(running.scenario_id).await.unwrap();
    let mut work = stpt_core::RunWork::new(run, vec![scenario]);
    work.start_test(running.clone(), None, support::at(3))
        .unwrap();
    let (_, durability) = unit
        .commit_deferred(stpt_core::Changes {
            seen_at: support::at(3),
            clock_offset: None,
            runs: vec![work],
            new_run: None,
            record: None,
        })
        .await
        .unwrap();
    drop(durability);
    let mut seen = None;
    for _ in 0..200 {
        let status: String = sqlx::query_scalar("SELECT status FROM stpt_tests WHERE id = $1")
            .bind(running.id.get())
            .fetch_one(&pool)
            .await
            .unwrap();
        if status == "running" {
            seen = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        seen.as_deref(),
        Some("running"),
        "the deferred commit was flushed"
    );
}

/// An in-memory database (`sqlite::memory:`) is one database for the whole pool and the
/// store's writer connection, which opens with the pool's options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_database_is_shared_with_the_writer() {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let store = SqliteStore::new(pool);
    store.migrate().await.unwrap();
    let tracker = tracker(Arc::new(store));
    let receipt = tracker.record_plan(plan("rig", 1, 2)).await.unwrap();
    tracker
        .record_test_start(test_start("rig", 0, 0, 1))
        .await
        .unwrap();
    tracker
        .record_test_stop(test_stop("rig", 0, 0, Status::Passed, 2))
        .await
        .unwrap();
    let run = tracker.run(receipt.ids.run_id).await.unwrap();
    assert_eq!(run.scenarios[0].tests[0].status, Status::Passed);
}

async fn pragma(store: &SqliteStore, name: &str) -> i64 {
    sqlx::query_scalar(&format!("PRAGMA {name}"))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Pruned runs' space goes back to the file system: the file grows with runs, pruning frees
/// their pages, and giving them back in small steps shrinks the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_space_is_given_back_in_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stpt.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(pragma(&store, "auto_vacuum").await, 2, "incremental");
    let tracker = tracker(Arc::new(store.clone())).with_retention(stpt_core::RetentionPolicy {
        keep_days: None,
        keep_runs_per_machine: Some(1),
    });
    let empty_pages = pragma(&store, "page_count").await;
    let mut latest = None;
    for _ in 0..12 {
        latest = Some(tracker.record_plan(plan("rig", 10, 200)).await.unwrap());
    }
    let full_pages = pragma(&store, "page_count").await;
    assert!(
        full_pages > empty_pages + 500,
        "{empty_pages} → {full_pages} pages"
    );

    let pruned = tracker.prune(100).await.unwrap();
    assert_eq!(pruned.len(), 11);
    let free = store.free_pages().await.unwrap();
    assert!(free > 500, "pruning freed {free} pages");
    assert_eq!(
        pragma(&store, "page_count").await,
        full_pages,
        "not given back yet"
    );

    let mut steps = 0;
    let mut left = free;
    while left > 0 {
        let now = store.reclaim_free_pages(64).await.unwrap();
        assert!(left - now <= 64, "at most a step's pages at a time");
        assert!(now < left, "each step gives pages back");
        left = now;
        steps += 1;
    }
    assert!(steps > 3, "{steps} steps");
    let after = pragma(&store, "page_count").await;
    // Pointer-map pages of the freed ones may go too.
    assert!(
        after <= full_pages - i64::try_from(free).unwrap(),
        "{full_pages} - {free} → {after}"
    );
    // The file on disk shrinks once the WAL is copied back into it.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(store.pool())
        .await
        .unwrap();
    let page_size = pragma(&store, "page_size").await;
    let bytes = std::fs::metadata(&path).unwrap().len();
    assert_eq!(bytes, u64::try_from(after * page_size).unwrap());
    // The run left is intact.
    let latest = tracker.run(latest.unwrap().ids.run_id).await.unwrap();
    assert_eq!(latest.summary.statistics.tests, 2000);
}

/// A file made before incremental vacuum (`auto_vacuum = NONE`) is switched to it once, on
/// migrate, keeping its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_file_is_switched_to_incremental_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    let old = SqliteStore::open(&path).await.unwrap();
    old.migrate().await.unwrap();
    let receipt = tracker(Arc::new(old.clone()))
        .record_plan(plan("rig", 1, 2))
        .await
        .unwrap();
    // As an older stpt made it.
    let mut conn = old.pool().acquire().await.unwrap();
    sqlx::raw_sql("PRAGMA auto_vacuum = NONE; VACUUM;")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    drop(old);

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(pragma(&store, "auto_vacuum").await, 0, "none before");
    store.migrate().await.unwrap();
    assert_eq!(pragma(&store, "auto_vacuum").await, 2, "incremental after");
    let run = store.run(receipt.ids.run_id).await.unwrap();
    assert_eq!(run.summary.statistics.tests, 2);
}

/// A plan whose commit fails leaves its test identities to the next plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_plan_leaves_its_identities_to_the_next() {
    let store = support::fresh_sqlite().await;
    support::failed_plan_leaves_its_identities_to_the_next(Arc::new(store)).await;
}

/// A deleted machine takes its duration histories and flaky windows with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_machines_histories_go_with_it() {
    let owned = support::fresh_sqlite().await;
    let store = Arc::new(owned.store);
    deleted_machines_histories_go(store.clone(), "stpt_", |sql, machine| {
        let store = store.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&sql)
                .bind(machine)
                .fetch_one(store.pool())
                .await
                .unwrap()
        }
    })
    .await;
}

/// The run's row names its running test whichever way an event is written (the buffered
/// group commit of events answered from memory, here), so a read by query finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_names_its_running_test() {
    let store = support::fresh_sqlite().await;
    let pool = store.store.pool().clone();
    let tracker = tracker(Arc::new(store));
    let planned = tracker.record_plan(plan("rig", 1, 3)).await.unwrap();
    let named = || async {
        sqlx::query_scalar::<_, Option<i64>>("SELECT running_test_id FROM stpt_runs")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(named().await, None);
    for test in 0..2 {
        tracker
            .record_test_start(test_start("rig", 0, test, 1))
            .await
            .unwrap();
        assert_eq!(named().await, Some(planned.ids.test_ids[0][test].get()));
    }
    tracker
        .record_test_stop(test_stop("rig", 0, 1, Status::Passed, 2))
        .await
        .unwrap();
    assert_eq!(named().await, None);
}
