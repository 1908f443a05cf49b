//! Scenarios of history and insight: a test identity's results across runs and machines,
//! flaky windows, the previous run, the test × machine matrix and search. Each skips when the
//! store answers `NotSupported` for the read it pins.

use chrono::{DateTime, Utc};
use std::sync::Arc;

use super::support::{at, file, name, record_plan, tracker};
use crate::history::{
    self, FlakyPolicy, HistoryQuery, MatrixSort, RunSearch, TestIdentity, TestKey, TextFilter,
};
use crate::{
    Error, FileRef, ItemKind, Plan, PlanReceipt, PlannedScenario, Result, RunId, Status, Store,
    TestStart, TestStop, Tracker,
};
use Status::{Failed, Passed, Running, Unknown};

/// Both scenarios hold a test file at the same path: two identities.
const SHARED: &str = "/t/common";

fn fref(path: &str, name: &str) -> FileRef {
    FileRef {
        file_path: path.to_owned(),
        file_name: name.to_owned(),
    }
}

/// The identity of test `test` (at [`SHARED`]) in scenario `/s/<scenario>`.
fn identity(scenario: &str, test: &str) -> TestIdentity {
    TestIdentity::new(fref("/s", scenario), fref(SHARED, test))
}

/// A plan of master `/m/<master>` whose scenarios `/s/<name>` hold tests at [`SHARED`].
fn shared_plan(
    machine: &str,
    master: &str,
    time: DateTime<Utc>,
    scenarios: &[(&str, &[&str])],
) -> Plan {
    Plan {
        machine: name(machine),
        timestamp: time.into(),
        master: file("/m", master, None),
        scenarios: scenarios
            .iter()
            .map(|(scenario, tests)| PlannedScenario {
                file: file("/s", scenario, None),
                tests: tests.iter().map(|test| file(SHARED, test, None)).collect(),
            })
            .collect(),
    }
}

async fn begin(tracker: &Tracker, plan: Plan) -> PlanReceipt {
    record_plan(tracker, plan).await
}

async fn start(tracker: &Tracker, machine: &str, test: &str, time: DateTime<Utc>) -> Result<()> {
    tracker
        .record_test_start(TestStart {
            machine: name(machine),
            file_path: SHARED.to_owned(),
            file_name: test.to_owned(),
            at: time.into(),
        })
        .await
        .map(drop)
}

async fn stop(tracker: &Tracker, machine: &str, test: &str, status: Status, time: DateTime<Utc>) {
    tracker
        .record_test_stop(TestStop {
            machine: name(machine),
            file_path: SHARED.to_owned(),
            file_name: test.to_owned(),
            status,
            at: time.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("stop of {test} rejected: {e}"));
}

/// Runs the first waiting `test` from `from` to `to` seconds with `status`.
async fn run(tracker: &Tracker, machine: &str, test: &str, status: Status, from: i64, to: i64) {
    start(tracker, machine, test, at(from))
        .await
        .unwrap_or_else(|e| panic!("start of {test} rejected: {e}"));
    stop(tracker, machine, test, status, at(to)).await;
}

fn ok<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// Whether the store keeps this read; scenarios return early when it does not.
fn supported<T>(result: Result<T>) -> Option<T> {
    match result {
        Err(Error::NotSupported { .. }) => None,
        other => Some(ok(other)),
    }
}

/// A test identity's results come newest run first across machines, filter by machine and
/// status, page by `before`, include a running test, and the same file in another scenario
/// is another identity.
pub async fn history_lists_results_newest_first(store: Arc<dyn Store>) {
    let (tracker, _clock) = tracker(store);
    let scenarios: &[(&str, &[&str])] = &[("lamp.py", &["check.py"]), ("door.py", &["check.py"])];
    let a1 = begin(
        &tracker,
        shared_plan("rig-a", "master.py", at(0), scenarios),
    )
    .await;
    run(&tracker, "rig-a", "check.py", Passed, 1, 2).await;
    run(&tracker, "rig-a", "check.py", Failed, 3, 4).await;
    let b1 = begin(
        &tracker,
        shared_plan("rig-b", "master.py", at(5), scenarios),
    )
    .await;
    run(&tracker, "rig-b", "check.py", Failed, 6, 8).await;
    run(&tracker, "rig-b", "check.py", Passed, 9, 10).await;
    let a2 = begin(
        &tracker,
        shared_plan("rig-a", "master.py", at(11), scenarios),
    )
    .await;
    start(&tracker, "rig-a", "check.py", at(12))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let lamp = identity("lamp.py", "check.py");
    let Some(all) = supported(
        tracker
            .store()
            .test_history(lamp.key(), HistoryQuery::default())
            .await,
    ) else {
        return;
    };
    assert_eq!(all.identity, lamp);
    assert_eq!(all.key, lamp.key());
    let seen: Vec<(RunId, Status, &str)> = all
        .results
        .iter()
        .map(|r| (r.run_id, r.status, r.machine_name.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (a2.ids.run_id, Running, "rig-a"),
            (b1.ids.run_id, Failed, "rig-b"),
            (a1.ids.run_id, Passed, "rig-a"),
        ],
        "newest run first, a running test included"
    );
    assert_eq!(all.results[1].machine_id, b1.machine_id);
    assert_eq!(all.results[1].test_id, b1.ids.test_ids[0][0]);
    assert_eq!(all.results[1].duration_ms(), Some(2_000));
    assert_eq!(all.next_before, None);

    let door = ok(tracker
        .store()
        .test_history(
            identity("door.py", "check.py").key(),
            HistoryQuery::default(),
        )
        .await);
    let door_statuses: Vec<Status> = door.results.iter().map(|r| r.status).collect();
    assert_eq!(
        door_statuses,
        vec![Status::Waiting, Passed, Failed],
        "the same file in another scenario is another identity"
    );

    let on_a = ok(tracker
        .store()
        .test_history(
            lamp.key(),
            HistoryQuery {
                machine: Some(a1.machine_id),
                ..HistoryQuery::default()
            },
        )
        .await);
    let runs: Vec<RunId> = on_a.results.iter().map(|r| r.run_id).collect();
    assert_eq!(runs, vec![a2.ids.run_id, a1.ids.run_id]);

    let failed = ok(tracker
        .store()
        .test_history(
            lamp.key(),
            HistoryQuery {
                status: Some(Failed),
                ..HistoryQuery::default()
            },
        )
        .await);
    let runs: Vec<RunId> = failed.results.iter().map(|r| r.run_id).collect();
    assert_eq!(runs, vec![b1.ids.run_id]);

    let first_page = ok(tracker
        .store()
        .test_history(
            lamp.key(),
            HistoryQuery {
                limit: 2,
                ..HistoryQuery::default()
            },
        )
        .await);
    assert_eq!(first_page.results.len(), 2);
    assert_eq!(first_page.next_before, Some(b1.ids.test_ids[0][0]));
    let second_page = ok(tracker
        .store()
        .test_history(
            lamp.key(),
            HistoryQuery {
                limit: 2,
                before: first_page.next_before,
                ..HistoryQuery::default()
            },
        )
        .await);
    let runs: Vec<RunId> = second_page.results.iter().map(|r| r.run_id).collect();
    assert_eq!(runs, vec![a1.ids.run_id]);
    assert_eq!(second_page.next_before, None);

    let unknown = identity("lamp.py", "nowhere.py").key();
    match tracker
        .store()
        .test_history(unknown, HistoryQuery::default())
        .await
    {
        Err(Error::NotFound {
            kind: ItemKind::TestIdentity,
            id,
        }) => assert_eq!(id, unknown.get()),
        other => panic!("an unknown identity is not found, got {other:?}"),
    }
}

/// Finished tests' outcomes enter their identity's window on their machine once flushed;
/// flips and failures are counted; `unknown` results stay out; windows of two machines are
/// apart; the flakiest list and a run's badges read them.
pub async fn flaky_windows_follow_finished_tests(store: Arc<dyn Store>) {
    let (tracker, _clock) = tracker(store);
    let scenarios: &[(&str, &[&str])] = &[("lamp.py", &["flaky.py", "steady.py"])];
    let mut last = None;
    let mut time = 0;
    for (round, flaky_status) in [Passed, Failed, Passed, Failed, Passed]
        .into_iter()
        .enumerate()
    {
        let receipt = begin(
            &tracker,
            shared_plan("rig-a", "master.py", at(time), scenarios),
        )
        .await;
        run(
            &tracker,
            "rig-a",
            "flaky.py",
            flaky_status,
            time + 1,
            time + 2,
        )
        .await;
        if round == 2 {
            // Interrupted: starting the next test leaves it unknown, which is no outcome.
            start(&tracker, "rig-a", "steady.py", at(time + 3))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let receipt_next = begin(
                &tracker,
                shared_plan("rig-a", "other.py", at(time + 4), &[]),
            )
            .await;
            drop(receipt_next);
        } else {
            run(&tracker, "rig-a", "steady.py", Passed, time + 3, time + 4).await;
        }
        last = Some(receipt);
        time += 10;
    }
    let b = begin(
        &tracker,
        shared_plan("rig-b", "master.py", at(time), scenarios),
    )
    .await;
    run(&tracker, "rig-b", "flaky.py", Failed, time + 1, time + 2).await;
    let Some(last) = last else { return };
    if supported(tracker.store().run_flakiness(last.ids.run_id, 0).await).is_none() {
        return;
    }
    ok(tracker.flush_finished().await);

    let badges = ok(tracker.store().run_flakiness(last.ids.run_id, 0).await);
    let windows: Vec<(crate::TestId, String, u32, u32)> = badges
        .iter()
        .map(|b| {
            (
                b.test_id,
                b.window.to_text(),
                b.window.flips(),
                b.window.failures(),
            )
        })
        .collect();
    assert_eq!(
        windows,
        vec![
            (last.ids.test_ids[0][0], "PFPFP".to_owned(), 4, 2),
            (last.ids.test_ids[0][1], "PPPP".to_owned(), 0, 0),
        ],
        "plan order; the unknown result is no outcome"
    );
    assert_eq!(
        badges[0].key,
        identity("lamp.py", "flaky.py").key(),
        "badges carry the identity's key"
    );
    let flaky_only = ok(tracker
        .store()
        .run_flakiness(last.ids.run_id, FlakyPolicy::default().min_flips)
        .await);
    assert_eq!(flaky_only.len(), 1);
    let on_b = ok(tracker.store().run_flakiness(b.ids.run_id, 0).await);
    let b_windows: Vec<String> = on_b.iter().map(|b| b.window.to_text()).collect();
    assert_eq!(b_windows, vec!["F".to_owned()], "rig-b has its own window");

    let flakiest = ok(tracker.store().flaky_tests(1, 10).await);
    let listed: Vec<(&str, &str, u32)> = flakiest
        .iter()
        .map(|f| {
            (
                f.machine_name.as_str(),
                f.identity.test.file_name.as_str(),
                f.window.flips(),
            )
        })
        .collect();
    assert_eq!(listed, vec![("rig-a", "flaky.py", 4)]);
    assert_eq!(flakiest[0].identity, identity("lamp.py", "flaky.py"));
    assert!(ok(tracker.store().flaky_tests(5, 10).await).is_empty());
    assert!(
        ok(tracker.store().flaky_tests(0, 1).await).len() == 1,
        "limit holds"
    );
}

/// One flush carrying many identities, each twice, moves every duration history and flaky
/// window once per sample, in order: a backend that reads and writes them in chunks loses
/// none at a chunk's edge. Skipped by a store without histories.
pub async fn one_flush_moves_many_histories(store: Arc<dyn Store>) {
    const TESTS: usize = 1_234;
    let (tracker, _clock) = tracker(store);
    let names: Vec<String> = (0..TESTS).map(|i| format!("t{i}.py")).collect();
    let tests: Vec<&str> = names.iter().map(String::as_str).collect();
    let plan = shared_plan("rig", "master.py", at(0), &[("big.py", tests.as_slice())]);
    let receipt = begin(&tracker, plan).await;
    let ids = &receipt.ids.test_ids[0];
    let finished = |status: Status, base: i64| {
        names
            .iter()
            .zip(ids)
            .enumerate()
            .map(move |(i, (test, id))| crate::FinishedTest {
                machine_id: receipt.machine_id,
                test_id: *id,
                file: fref(SHARED, test),
                status,
                millis: Some(base + i as i64),
            })
    };
    let samples: Vec<crate::FinishedTest> = finished(Passed, 1_000_000)
        .chain(finished(Failed, 2_000_000))
        .collect();
    if supported(tracker.store().record_finished(&samples).await).is_none() {
        return;
    }
    if let Some(remaining) = supported(tracker.store().remaining_work(receipt.ids.run_id).await) {
        assert_eq!(remaining.work.len(), TESTS);
        for work in &remaining.work {
            let i: i64 = work
                .file
                .file_name
                .trim_start_matches('t')
                .trim_end_matches(".py")
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            let expected = vec![1_000_000 + i, 2_000_000 + i];
            assert_eq!(work.on_machine.samples(), expected.as_slice(), "{i}");
            assert_eq!(work.everywhere.samples(), expected.as_slice(), "{i}");
        }
    }
    if let Some(badges) = supported(tracker.store().run_flakiness(receipt.ids.run_id, 0).await) {
        assert_eq!(badges.len(), TESTS);
        assert!(
            badges
                .iter()
                .all(|b| b.window.to_text() == "PF" && b.window.flips() == 1),
            "every window took both results in order"
        );
    }
}

/// The previous run is the machine's last earlier run of the same master file; the diff
/// sorts tests into new failures, fixed, still failing, new, removed and not executed.
pub async fn run_diff_against_previous_run(store: Arc<dyn Store>) {
    let (tracker, _clock) = tracker(store);
    let before: &[(&str, &[&str])] = &[("lamp.py", &["a.py", "b.py", "c.py", "d.py", "e.py"])];
    let first = begin(&tracker, shared_plan("rig", "master.py", at(0), before)).await;
    run(&tracker, "rig", "a.py", Passed, 1, 11).await;
    run(&tracker, "rig", "b.py", Failed, 12, 13).await;
    run(&tracker, "rig", "c.py", Failed, 14, 15).await;
    run(&tracker, "rig", "d.py", Passed, 16, 17).await;
    run(&tracker, "rig", "e.py", Passed, 18, 19).await;
    let other = begin(&tracker, shared_plan("rig", "smoke.py", at(20), before)).await;
    let elsewhere = begin(&tracker, shared_plan("rig-2", "master.py", at(21), before)).await;
    let after: &[(&str, &[&str])] = &[("lamp.py", &["a.py", "b.py", "c.py", "d.py", "f.py"])];
    let third = begin(&tracker, shared_plan("rig", "master.py", at(30), after)).await;
    let Some(previous) = supported(tracker.store().previous_run(third.ids.run_id).await) else {
        return;
    };
    assert_eq!(
        previous,
        Some(first.ids.run_id),
        "same machine, same master"
    );
    assert_eq!(
        ok(tracker.store().previous_run(first.ids.run_id).await),
        None
    );
    assert_eq!(
        ok(tracker.store().previous_run(other.ids.run_id).await),
        None
    );
    assert_eq!(
        ok(tracker.store().previous_run(elsewhere.ids.run_id).await),
        None
    );
    assert!(matches!(
        tracker.store().previous_run(RunId(999_999)).await,
        Err(Error::NotFound { .. })
    ));

    run(&tracker, "rig", "a.py", Failed, 31, 61).await;
    run(&tracker, "rig", "b.py", Passed, 62, 63).await;
    run(&tracker, "rig", "c.py", Failed, 64, 65).await;
    start(&tracker, "rig", "d.py", at(66))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Starting f.py leaves d.py unknown (rule 2).
    run(&tracker, "rig", "f.py", Passed, 67, 68).await;
    let diff = ok(history::run_diff(tracker.store().as_ref(), third.ids.run_id).await);
    let names = |entries: &[history::DiffEntry]| -> Vec<String> {
        entries
            .iter()
            .map(|e| e.identity.test.file_name.clone())
            .collect()
    };
    assert_eq!(diff.previous_run_id, Some(first.ids.run_id));
    assert_eq!(names(&diff.new_failures), ["a.py"]);
    assert_eq!(names(&diff.fixed), ["b.py"]);
    assert_eq!(names(&diff.still_failing), ["c.py"]);
    assert_eq!(names(&diff.not_executed), ["d.py"]);
    assert_eq!(diff.not_executed[0].status, Some(Unknown));
    assert_eq!(names(&diff.new_tests), ["f.py"]);
    assert_eq!(names(&diff.removed_tests), ["e.py"]);
    assert_eq!(diff.removed_tests[0].test_id, None);
    assert_eq!(
        diff.new_failures[0].previous_test_id,
        Some(first.ids.test_ids[0][0])
    );
    let a_change = diff.duration_changes.first().map(|c| {
        (
            c.identity.test.file_name.as_str(),
            c.previous_ms,
            c.current_ms,
        )
    });
    assert_eq!(
        a_change,
        Some(("a.py", 10_000, 30_000)),
        "biggest change first"
    );
    assert!(
        history::run_diff(tracker.store().as_ref(), first.ids.run_id)
            .await
            .is_ok_and(|d| d.previous_run_id.is_none() && d.is_empty())
    );
}

/// The matrix of a master holds each machine's latest run of it, cells with statuses and
/// windows, rows that fail everywhere sorted first on request, and honours a machine filter.
pub async fn matrix_shows_latest_results_per_machine(store: Arc<dyn Store>) {
    let (tracker, _clock) = tracker(store);
    let scenarios: &[(&str, &[&str])] = &[("lamp.py", &["good.py", "bad.py"])];
    let master = fref("/m", "master.py");
    for (machine, offset) in [("rig-b", 0), ("rig-a", 100)] {
        begin(
            &tracker,
            shared_plan(machine, "master.py", at(offset), scenarios),
        )
        .await;
        run(&tracker, machine, "good.py", Passed, offset + 1, offset + 2).await;
        run(&tracker, machine, "bad.py", Failed, offset + 3, offset + 4).await;
    }
    // rig-a runs it again: bad.py passes this time, and only this run counts for its cells.
    let latest_a = begin(
        &tracker,
        shared_plan("rig-a", "master.py", at(200), scenarios),
    )
    .await;
    run(&tracker, "rig-a", "good.py", Passed, 201, 202).await;
    run(&tracker, "rig-a", "bad.py", Passed, 203, 204).await;
    // Another master on a third machine stays out.
    begin(
        &tracker,
        shared_plan("rig-c", "smoke.py", at(300), scenarios),
    )
    .await;
    let Some(_) = supported(tracker.store().matrix_entries(&master, &[]).await) else {
        return;
    };
    ok(tracker.flush_finished().await);

    let matrix =
        ok(history::matrix(tracker.store().as_ref(), &master, &[], MatrixSort::Plan).await);
    let columns: Vec<&str> = matrix
        .columns
        .iter()
        .map(|c| c.machine_name.as_str())
        .collect();
    assert_eq!(columns, ["rig-a", "rig-b"], "machines by name");
    assert_eq!(matrix.columns[0].run_id, latest_a.ids.run_id);
    let rows: Vec<&str> = matrix
        .rows
        .iter()
        .map(|r| r.identity.test.file_name.as_str())
        .collect();
    assert_eq!(rows, ["good.py", "bad.py"], "plan order");
    let bad = &matrix.rows[1];
    let cells: Vec<Option<(Status, String)>> = bad
        .cells
        .iter()
        .map(|c| c.as_ref().map(|c| (c.status, c.window.to_text())))
        .collect();
    assert_eq!(
        cells,
        vec![
            Some((Passed, "FP".to_owned())),
            Some((Failed, "F".to_owned()))
        ]
    );
    assert_eq!(
        bad.cells[0].as_ref().map(|c| c.test_id),
        Some(latest_a.ids.test_ids[0][1])
    );
    assert_eq!(bad.failure_rate.map(|r| (r * 3.0).round()), Some(2.0));

    let sorted = ok(history::matrix(
        tracker.store().as_ref(),
        &master,
        &[],
        MatrixSort::FailureRate,
    )
    .await);
    assert_eq!(sorted.rows[0].identity.test.file_name, "bad.py");

    let only_b = ok(tracker
        .store()
        .matrix_entries(&master, &[matrix.columns[1].machine_id])
        .await);
    assert!(only_b.iter().all(|e| e.machine_name == "rig-b"));
    assert_eq!(only_b.len(), 2);
    assert!(
        ok(tracker
            .store()
            .matrix_entries(&fref("/m", "absent.py"), &[])
            .await)
        .is_empty()
    );
}

/// Runs are found by master name without regard to case, by status, machine and receipt
/// time, newest first; test identities by any of their paths and names.
pub async fn search_finds_runs_and_tests(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let scenarios: &[(&str, &[&str])] = &[("Lamp_Check.py", &["probe.py"])];
    let mut receipts = Vec::new();
    for (second, machine, master) in [
        (0, "rig-a", "Nightly.py"),
        (10, "rig-b", "nightly.py"),
        (20, "rig-a", "smoke.py"),
        (30, "rig-a", "NIGHTLY.py"),
    ] {
        clock.set(at(second));
        receipts.push(
            begin(
                &tracker,
                shared_plan(machine, master, at(second), scenarios),
            )
            .await,
        );
    }
    run(&tracker, "rig-a", "probe.py", Passed, 31, 32).await;
    let search = |text: &str| RunSearch {
        text: TextFilter::new(text).unwrap_or_else(|e| panic!("{e}")),
        ..RunSearch::default()
    };
    let page = crate::PageRequest::default();
    let Some(found) = supported(tracker.store().search_runs(&search("nightLY"), page).await) else {
        return;
    };
    let runs: Vec<RunId> = found.items.iter().map(|l| l.run.id).collect();
    let id = |i: usize| receipts[i].ids.run_id;
    assert_eq!(
        runs,
        vec![id(3), id(1), id(0)],
        "newest first, case ignored"
    );
    assert_eq!(found.total, 3);
    assert_eq!(found.items[0].machine_name, "rig-a");
    assert_eq!(found.items[0].master.file_name, "NIGHTLY.py");

    let passed = RunSearch {
        status: Some(Passed),
        ..search("night")
    };
    let runs: Vec<RunId> = ok(tracker.store().search_runs(&passed, page).await)
        .items
        .iter()
        .map(|l| l.run.id)
        .collect();
    assert_eq!(runs, vec![id(3)]);
    let on_b = RunSearch {
        machine: Some(receipts[1].machine_id),
        ..RunSearch::default()
    };
    assert_eq!(ok(tracker.store().search_runs(&on_b, page).await).total, 1);
    let window = RunSearch {
        since: Some(at(10)),
        until: Some(at(30)),
        ..RunSearch::default()
    };
    let runs: Vec<RunId> = ok(tracker.store().search_runs(&window, page).await)
        .items
        .iter()
        .map(|l| l.run.id)
        .collect();
    assert_eq!(runs, vec![id(2), id(1)], "since inclusive, until exclusive");
    let wildcard = search("%");
    assert_eq!(
        ok(tracker.store().search_runs(&wildcard, page).await).total,
        0,
        "LIKE wildcards are literal"
    );
    let second_page = crate::PageRequest::new(2, 2).unwrap_or_default();
    let runs: Vec<RunId> = ok(tracker
        .store()
        .search_runs(&search("night"), second_page)
        .await)
    .items
    .iter()
    .map(|l| l.run.id)
    .collect();
    assert_eq!(runs, vec![id(0)]);

    let tests = ok(tracker
        .store()
        .search_tests(TextFilter::new("LAMP_check").ok().flatten().as_ref(), page)
        .await);
    assert_eq!(tests.total, 1);
    assert_eq!(
        tests.items[0].identity,
        identity("Lamp_Check.py", "probe.py")
    );
    assert_eq!(
        tests.items[0].key,
        identity("Lamp_Check.py", "probe.py").key()
    );
    let by_path = ok(tracker
        .store()
        .search_tests(TextFilter::new("/t/COMMON").ok().flatten().as_ref(), page)
        .await);
    assert_eq!(by_path.total, 1);
    assert_eq!(
        ok(tracker
            .store()
            .search_tests(TextFilter::new("absent").ok().flatten().as_ref(), page)
            .await)
        .total,
        0
    );
    assert_eq!(ok(tracker.store().search_tests(None, page).await).total, 1);
    let _: TestKey = tests.items[0].key;
}
