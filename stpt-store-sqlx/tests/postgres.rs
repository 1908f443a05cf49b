//! PostgreSQL-specific tests: sharing a database with a host application's migrations, two
//! trackers on one database, bad rows, a large plan.
//!
//! Needs `STPT_TEST_POSTGRES_URL`; skipped without it, unless `STPT_TEST_INTEGRATION=1`.
#![allow(clippy::unwrap_used)]

mod support;

use sqlx::migrate::Migrator;
use std::sync::Arc;
use stpt_core::{ItemRef, PageRequest, Store};
use support::{
    TempDatabase, assert_backend, deleted_machines_histories_go, plan, postgres_url, tracker,
};

/// A host application with its own sqlx migrations (version 1, like ours) and stpt share one
/// database: both migrate, in either order, twice, and neither sees the other's bookkeeping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_migrations_and_ours_share_a_database() {
    let Some(url) = postgres_url() else { return };
    let db = TempDatabase::create(&url).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_with(db.options.clone())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_host.sql"),
        "CREATE TABLE host_things (id BIGINT PRIMARY KEY, name TEXT NOT NULL);\n\
         CREATE TABLE machines (host_column TEXT);\n\
         CREATE TABLE users (host_column TEXT);\n",
    )
    .unwrap();
    let host = Migrator::new(dir.path()).await.unwrap();
    let ours = stpt_store_sqlx::PgStore::new(pool.clone());

    host.run(&pool).await.unwrap();
    ours.migrate().await.unwrap();
    ours.migrate().await.unwrap();
    host.run(&pool).await.unwrap();

    let host_versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM public._sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(host_versions, [1]);
    let host_description: String =
        sqlx::query_scalar("SELECT description FROM public._sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(host_description, "host");
    let our_descriptions: Vec<String> =
        sqlx::query_scalar("SELECT description FROM stpt._sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        our_descriptions,
        [
            "init",
            "accounts",
            "machine version",
            "indexes for hot updates",
            "clocks and liveness",
            "machine timezone",
            "test history",
            "failure details",
            "machine settings",
            "running test on run",
            "one history index",
        ]
    );
    // The pool's connections were not left with our search_path.
    for _ in 0..4 {
        let path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(!path.contains("stpt"), "search_path leaked: {path}");
    }
    // Both applications work side by side; the host's own `machines` table is untouched.
    sqlx::query("INSERT INTO host_things (id, name) VALUES (1, 'x')")
        .execute(&pool)
        .await
        .unwrap();
    let tracker = tracker(Arc::new(ours));
    tracker.record_plan(plan("rig", 1, 2)).await.unwrap();
    let host_machines: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM public.machines")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(host_machines, 0);
    assert_eq!(
        tracker
            .machines(PageRequest::default())
            .await
            .unwrap()
            .total,
        1
    );
    pool.close().await;
}

/// Two trackers, each with a store and pool of its own, on one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trackers_on_one_database_lose_no_update() {
    let Some(url) = postgres_url() else { return };
    let db = TempDatabase::create(&url).await;
    let a = support::pg_store(&db).await;
    let b = support::pg_store(&db).await;
    support::two_trackers_lose_nothing(Arc::new(a), Arc::new(b)).await;
}

/// Two instances taking turns on one machine, as behind a load balancer: each remembers the
/// machine's ongoing run, and each notices when the other wrote since (a stopped test its
/// memory thinks waiting, a newer plan, a deleted run) and applies the event on fresh state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_taking_turns_never_answer_from_stale_memory() {
    use stpt_core::{Error, NoMatch, Status};
    let Some(url) = postgres_url() else { return };
    let db = TempDatabase::create(&url).await;
    let a = tracker(Arc::new(support::pg_store(&db).await));
    let b = tracker(Arc::new(support::pg_store(&db).await));
    let first = a.record_plan(plan("rig", 1, 3)).await.unwrap();
    b.record_test_start(support::test_start("rig", 0, 0, 1))
        .await
        .unwrap();
    // `a` remembers test 0 as waiting: its "no running test" must be checked, not answered.
    let stopped = a
        .record_test_stop(support::test_stop("rig", 0, 0, Status::Passed, 2))
        .await
        .unwrap();
    assert_eq!(stopped.test_id, first.ids.test_ids[0][0]);
    assert_eq!(stopped.status, Status::Passed);
    // `a` remembers test 0 as waiting in the first run; `b` planned a second run meanwhile.
    let second = b.record_plan(plan("rig", 1, 3)).await.unwrap();
    let started = a
        .record_test_start(support::test_start("rig", 0, 0, 3))
        .await
        .unwrap();
    assert_eq!(started.run_id, second.ids.run_id);
    assert_eq!(started.test_id, second.ids.test_ids[0][0]);
    // `b` remembers the second run with test 0 waiting; `a` started it, then deleted the run.
    b.record_test_stop(support::test_stop("rig", 0, 0, Status::Failed, 4))
        .await
        .unwrap();
    a.delete_run(second.ids.run_id).await.unwrap();
    let gone = b
        .record_test_start(support::test_start("rig", 0, 1, 5))
        .await;
    assert!(
        matches!(gone, Err(Error::NoMatch(NoMatch::NoOngoingRun { .. }))),
        "{gone:?}"
    );
    for tracker in [&a, &b] {
        let run = tracker.run(first.ids.run_id).await.unwrap();
        support::assert_consistent(&run);
        let statuses: Vec<Status> = run.scenarios[0].tests.iter().map(|t| t.status).collect();
        assert_eq!(statuses, [Status::Passed, Status::Unknown, Status::Unknown]);
    }
}

/// Instances alternating event by event on one machine (a round-robin balancer) read by
/// query instead of reloading the run each time, and lose nothing; once one instance has the
/// machine to itself again, it remembers the run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_instances_apply_every_event_once() {
    use stpt_core::Status;
    let Some(url) = postgres_url() else { return };
    let db = TempDatabase::create(&url).await;
    let trackers = [
        tracker(Arc::new(support::pg_store(&db).await)),
        tracker(Arc::new(support::pg_store(&db).await)),
    ];
    let planned = trackers[1].record_plan(plan("rig", 2, 10)).await.unwrap();
    let finals = [
        Status::Passed,
        Status::Failed,
        Status::Warning,
        Status::Error,
    ];
    let mut time = 0;
    for scenario in 0..2 {
        for test in 0..10 {
            // Scenario 0 alternates instance by event; scenario 1 stays on instance 0.
            let (a, b) = if scenario == 0 { (0, 1) } else { (0, 0) };
            time += 2;
            let started = trackers[a]
                .record_test_start(support::test_start("rig", scenario, test, time))
                .await
                .unwrap();
            assert_eq!(started.test_id, planned.ids.test_ids[scenario][test]);
            let status = finals[test % finals.len()];
            let stopped = trackers[b]
                .record_test_stop(support::test_stop("rig", scenario, test, status, time + 1))
                .await
                .unwrap();
            assert_eq!(stopped.status, status);
        }
    }
    for tracker in &trackers {
        let run = tracker.run(planned.ids.run_id).await.unwrap();
        support::assert_consistent(&run);
        for (scenario, tests) in run.scenarios.iter().enumerate() {
            for (test, view) in tests.tests.iter().enumerate() {
                assert_eq!(
                    view.status,
                    finals[test % finals.len()],
                    "{scenario}/{test}"
                );
            }
        }
        assert!(run.summary.status.is_finished());
    }
}

/// Migration 10 names each run's running test on the run's row: a database migrated before
/// it, with a test running, gets the name, and a run finishes with none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_test_migration_names_tests_already_running() {
    use stpt_core::Status;
    let Some(url) = postgres_url() else { return };
    let db = TempDatabase::create(&url).await;
    let store = support::pg_store(&db).await;
    let pool = store.pool().clone();
    let a = tracker(Arc::new(store));
    let planned = a.record_plan(plan("rig", 1, 2)).await.unwrap();
    a.record_test_start(support::test_start("rig", 0, 1, 1))
        .await
        .unwrap();
    // The database as migration 9 left it.
    sqlx::raw_sql(
        "ALTER TABLE stpt.runs DROP COLUMN running_test_id; \
         CREATE INDEX tests_running ON stpt.tests (run_id, seq) WHERE status = 'running'; \
         DELETE FROM stpt._sqlx_migrations WHERE version = 10;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let b = tracker(Arc::new(support::pg_store(&db).await));
    let named: Option<i64> = sqlx::query_scalar("SELECT running_test_id FROM stpt.runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(named, Some(planned.ids.test_ids[0][1].get()));
    // Once the test stops, the run names none.
    b.record_test_stop(support::test_stop("rig", 0, 1, Status::Passed, 2))
        .await
        .unwrap();
    let named: Option<i64> = sqlx::query_scalar("SELECT running_test_id FROM stpt.runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(named, None);
}

/// A status text the domain does not know is a backend error on every read, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_backend_errors() {
    let Some(url) = postgres_url() else { return };
    let db = TempDatabase::create(&url).await;
    let store = support::pg_store(&db).await;
    let pool = store.pool().clone();
    let tracker = tracker(Arc::new(store));
    let receipt = tracker.record_plan(plan("rig", 1, 2)).await.unwrap();
    for table in ["tests", "runs"] {
        sqlx::query(&format!(
            "ALTER TABLE stpt.{table} DROP CONSTRAINT {table}_status_check"
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let test = receipt.ids.test_ids[0][0];
    sqlx::query("UPDATE stpt.tests SET status = 'bogus' WHERE id = $1")
        .bind(test.get())
        .execute(&pool)
        .await
        .unwrap();
    assert_backend(tracker.run(receipt.ids.run_id).await, "run");
    assert_backend(tracker.item(ItemRef::Test(test)).await, "item");
    sqlx::query("UPDATE stpt.runs SET status = 'bogus', n_passed = -1")
        .execute(&pool)
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
    // The write path too: the ongoing run's counts are unreadable. Like every writer, the
    // tampering bumps the machine's version, so the store's memory of the run is not trusted.
    sqlx::query("UPDATE stpt.runs SET status = 'waiting'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE stpt.machines SET version = version + 1")
        .execute(&pool)
        .await
        .unwrap();
    assert_backend(
        tracker
            .record_test_start(support::test_start("rig", 0, 1, 1))
            .await,
        "test_start",
    );
}

/// A 10,000-test plan goes in as a few statements and comes back in plan order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_test_plan() {
    let Some(store) = support::fresh_pg().await else {
        return;
    };
    support::big_plan(Arc::new(store) as Arc<dyn Store>).await;
}

/// PostgreSQL text cannot hold NUL: such a plan is invalid input, not a server failure, and
/// nothing of it is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_runner_text_is_invalid_input() {
    let Some(store) = support::fresh_pg().await else {
        return;
    };
    let tracker = tracker(Arc::new(store));
    let mut bad = plan("rig", 1, 2);
    bad.scenarios[0].tests[1].script = Some("a\0b".to_owned());
    let result = tracker.record_plan(bad).await;
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
        0
    );
}

/// Several instances migrating one database at once all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_succeed() {
    let Some(url) = postgres_url() else { return };
    let db = TempDatabase::create(&url).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let options = db.options.clone();
        tasks.spawn(async move {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .connect_with(options)
                .await
                .unwrap();
            stpt_store_sqlx::PgStore::new(pool.clone())
                .migrate()
                .await
                .unwrap();
            pool.close().await;
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
}

/// A commit that fails half-way leaves no trace and releases the machine's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_leaves_no_trace() {
    let Some(store) = support::fresh_pg().await else {
        return;
    };
    support::failed_commit_leaves_no_trace(Arc::new(store)).await;
}

/// A plan whose commit fails leaves its test identities to the next plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_plan_leaves_its_identities_to_the_next() {
    let Some(store) = support::fresh_pg().await else {
        return;
    };
    support::failed_plan_leaves_its_identities_to_the_next(Arc::new(store)).await;
}

/// A deleted machine takes its duration histories and flaky windows with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_machines_histories_go_with_it() {
    let Some(owned) = support::fresh_pg().await else {
        return;
    };
    let (store, _database) = owned.into_parts();
    let store = Arc::new(store);
    deleted_machines_histories_go(store.clone(), "stpt.", |sql, machine| {
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
