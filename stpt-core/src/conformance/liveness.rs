//! Scenarios of the two clocks and of liveness: what a store keeps for them (a machine's clock
//! offset, a run closed because its runner went silent) and how it reads back.

use chrono::Duration;
use std::sync::Arc;
use tokio_stream::StreamExt;

use super::support::{
    at, detail, plan, record_plan, run_test, server, start, start_late, stop, tracker,
};
use crate::{
    Delivery, Error, LiveEvent, Liveness, LivenessPolicy, LivenessWatch, NoMatch, Status, Store,
    Topic,
};
use Status::{Passed, Running, Unknown, Waiting};

const TWO_BY_TWO: &[(&str, &[&str])] = &[
    ("lamp.py", &["a.py", "b.py"]),
    ("door.py", &["c.py", "d.py"]),
];

/// A machine's runner clock offset (runner minus server) is estimated from its events, stored
/// with the machine, and survives a read.
pub async fn clock_offset_is_kept_per_machine(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    clock.set(server(at(0)));
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let offset = machine.clock_offset.map(|offset| offset.millis());
    assert_eq!(
        offset,
        Some(-3_600_000),
        "the rig's clock is an hour behind"
    );
    // A slow request moves the estimate only a little.
    clock.set(server(at(10)) + Duration::seconds(8));
    start(&tracker, "rig", "lamp.py", "a.py", at(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        machine.clock_offset.map(|offset| offset.millis()),
        Some(-3_601_000)
    );
    // A fast one is taken at once, by the units of work too (they read the record).
    start_late(&tracker, &clock, "rig", "lamp.py", "b.py", at(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        machine.clock_offset.map(|offset| offset.millis()),
        Some(-3_600_000)
    );
}

/// A machine silent past the offline threshold with a test running: the liveness watch closes
/// its run `unknown`, recording when the runner went silent, and publishes the change; the
/// runner's late event afterwards matches nothing, changes nothing, and counts as hearing from
/// it.
pub async fn silent_machine_is_closed_unknown(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let tracker = tracker.with_liveness(LivenessPolicy::default());
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    clock.set(at(10));
    run_test(&tracker, "rig", "lamp.py", "a.py", Passed, at(1), at(9)).await;
    start(&tracker, "rig", "lamp.py", "b.py", at(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut machines = tracker
        .bus()
        .subscribe(Topic::Machines)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut watch = LivenessWatch::new();

    // Quiet after two minutes (the tests so far took seconds), not yet offline.
    clock.set(at(10) + Duration::minutes(3));
    let closed = watch.tick(&tracker).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(closed.is_empty(), "closed too early: {closed:?}");
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let liveness = tracker.liveness(&machine).await;
    assert_eq!(liveness.ok(), Some(Liveness::Quiet));

    clock.set(at(10) + Duration::minutes(11));
    let closed = watch.tick(&tracker).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(closed, vec![receipt.ids.run_id]);
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(run.summary.status, Unknown);
    assert_eq!(run.summary.went_silent_at, Some(at(10)));
    assert_eq!(
        run.summary.timestamp_stop,
        Some(at(10) + Duration::minutes(11))
    );
    let statuses: Vec<Status> = run.scenarios[0].tests.iter().map(|t| t.status).collect();
    assert_eq!(statuses, vec![Passed, Unknown]);
    let silent = &run.scenarios[0].tests[1];
    assert_eq!(silent.timestamp_stop, Some(at(10) + Duration::minutes(11)));
    assert_eq!(run.scenarios[1].tests[0].timestamp_stop, None, "never ran");
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.last_seen, Some(at(10)), "closing is not hearing");
    assert_eq!(machine.status.as_str(), "unknown");

    // Pushed to the machines list: quiet, then offline.
    let mut seen = Vec::new();
    while let Ok(Some(delivery)) =
        tokio::time::timeout(std::time::Duration::from_millis(50), machines.next()).await
    {
        if let Delivery::Event(event) = delivery {
            if let LiveEvent::MachineLiveness { liveness, .. } = &*event {
                seen.push(*liveness);
            }
        }
    }
    assert_eq!(seen, vec![Liveness::Quiet, Liveness::Offline]);

    // The runner comes back and reports its test: nothing matches, nothing moves.
    clock.set(at(10) + Duration::minutes(12));
    let late = stop(&tracker, "rig", "lamp.py", "b.py", Passed, at(700)).await;
    assert!(
        matches!(late, Err(Error::NoMatch(NoMatch::NoOngoingRun { .. }))),
        "{late:?}"
    );
    let after = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(after, run);
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        machine.last_seen,
        Some(at(10) + Duration::minutes(12)),
        "the runner was heard"
    );
    assert_eq!(
        tracker.liveness(&machine).await.ok(),
        Some(Liveness::Online)
    );
}

/// A machine whose tests take long is given time in proportion: quiet only past its usual
/// test time, offline only past three times it; an idle machine is never closed.
pub async fn long_tests_are_not_closed_early(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    // Each test takes 30 minutes.
    let minutes = |m: i64| at(0) + Duration::minutes(m);
    clock.set(minutes(0));
    start(&tracker, "rig", "lamp.py", "a.py", minutes(0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    clock.set(minutes(30));
    stop(&tracker, "rig", "lamp.py", "a.py", Passed, minutes(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    start(&tracker, "rig", "lamp.py", "b.py", minutes(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut watch = LivenessWatch::new();
    for (at_minute, expected) in [
        (50, Liveness::Online),
        (70, Liveness::Quiet),
        (110, Liveness::Quiet),
    ] {
        clock.set(minutes(at_minute));
        let closed = watch.tick(&tracker).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(closed.is_empty(), "closed at minute {at_minute}");
        let machine = tracker
            .machine(receipt.machine_id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            tracker.liveness(&machine).await.ok(),
            Some(expected),
            "minute {at_minute}"
        );
    }
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(run.scenarios[0].tests[1].status, Running);
    clock.set(minutes(125));
    let closed = watch.tick(&tracker).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(closed, vec![receipt.ids.run_id]);

    // A machine with nothing running goes offline but has nothing to close.
    let idle = record_plan(&tracker, plan("idle", minutes(125), &[])).await;
    clock.set(minutes(200));
    let closed = watch.tick(&tracker).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(closed.is_empty());
    let machine = tracker
        .machine(idle.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        tracker.liveness(&machine).await.ok(),
        Some(Liveness::Offline)
    );
    let waiting = record_plan(&tracker, plan("rig", minutes(200), TWO_BY_TWO)).await;
    assert_eq!(
        detail(&tracker, waiting.ids.run_id).await.summary.status,
        Waiting
    );
}

/// Finished tests' durations feed per-identity histories (on the machine and across
/// machines, the last [`crate::DURATION_WINDOW`] kept), and a run's ETA comes from them: the
/// waiting tests' usual durations plus what remains of the running test's. Skipped by a store
/// that keeps no histories.
pub async fn durations_make_the_eta(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let seconds = |s: i64| at(0) + Duration::seconds(s);
    clock.set(seconds(0));
    let first = record_plan(&tracker, plan("rig", seconds(0), TWO_BY_TWO)).await;
    match tracker.store().remaining_work(first.ids.run_id).await {
        Err(Error::NotSupported { .. }) => return,
        other => {
            let remaining = other.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(remaining.work.len(), 4, "four identities wait");
            assert!(
                remaining
                    .work
                    .iter()
                    .all(|w| w.on_machine.samples().is_empty())
            );
        }
    }
    // a 10 s, b 20 s, c 30 s, d 40 s; the clocks agree.
    let mut now = 0;
    for (scenario, test, took) in [
        ("lamp.py", "a.py", 10),
        ("lamp.py", "b.py", 20),
        ("door.py", "c.py", 30),
        ("door.py", "d.py", 40),
    ] {
        clock.set(seconds(now));
        start(&tracker, "rig", scenario, test, seconds(now))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        now += took;
        clock.set(seconds(now));
        stop(&tracker, "rig", scenario, test, Passed, seconds(now))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(tracker.flush_finished().await.ok(), Some(4));
    let finished = tracker
        .eta(first.ids.run_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(finished.remaining_seconds, Some(0));

    let second = record_plan(&tracker, plan("rig", seconds(now), TWO_BY_TWO)).await;
    clock.set(seconds(now));
    start(&tracker, "rig", "lamp.py", "a.py", seconds(now))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    clock.set(seconds(now + 4));
    let eta = tracker
        .eta(second.ids.run_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(eta.remaining_seconds, Some(6 + 20 + 30 + 40));
    assert_eq!(eta.ends_at, Some(seconds(now + 4 + 96)));
    assert!(!eta.rough);
    let running = eta.running.unwrap_or_else(|| panic!("a.py runs"));
    assert_eq!(
        (
            running.elapsed_seconds,
            running.usual_seconds,
            running.overrunning
        ),
        (4, Some(10), false)
    );
    clock.set(seconds(now + 31));
    let late = tracker
        .eta(second.ids.run_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        late.running.as_ref().is_some_and(|r| r.overrunning),
        "{late:?}"
    );
    assert_eq!(
        late.remaining_seconds,
        Some(20 + 30 + 40),
        "overdue: may end any moment"
    );

    // Another machine has no history of its own: the estimate comes from across machines.
    let other = record_plan(&tracker, plan("other", seconds(now), TWO_BY_TWO)).await;
    let eta = tracker
        .eta(other.ids.run_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        eta.remaining_seconds,
        Some(100),
        "from the histories across machines"
    );
    let remaining = tracker
        .store()
        .remaining_work(other.ids.run_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let a = remaining
        .work
        .iter()
        .find(|w| w.file.file_name == "a.py")
        .unwrap_or_else(|| panic!("a.py waits"));
    assert!(a.on_machine.samples().is_empty());
    assert_eq!(a.everywhere.samples(), &[10_000]);
    assert_eq!(a.usual(), Some(Duration::seconds(10)));

    // Histories keep the last DURATION_WINDOW results, oldest first.
    let samples: Vec<crate::FinishedTest> = (0..25)
        .map(|i| crate::FinishedTest {
            machine_id: first.machine_id,
            test_id: first.ids.test_ids[0][0],
            file: a.file.clone(),
            status: Passed,
            millis: Some(1000 + i),
        })
        .collect();
    tracker
        .store()
        .record_finished(&samples)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let remaining = tracker
        .store()
        .remaining_work(second.ids.run_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kept: Vec<i64> = remaining
        .work
        .iter()
        .find(|w| w.file.file_name == "a.py")
        .map(|w| w.on_machine.samples().to_vec())
        .unwrap_or_default();
    let expected: Vec<i64> = (5..25).map(|i| 1000 + i).collect();
    assert_eq!(kept, expected);
}

/// Retention deletes finished runs beyond a machine's newest N or older than D days, oldest
/// first and a batch at a time; never an ongoing run nor a machine's latest run. Skipped by a
/// store that cannot delete runs.
pub async fn retention_prunes_finished_runs(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let days = |d: i64| at(0) + Duration::days(d);
    let mut runs = Vec::new();
    for n in 0..5 {
        clock.set(days(0) + Duration::seconds(n));
        runs.push(
            record_plan(&tracker, plan("rig", at(n), TWO_BY_TWO))
                .await
                .ids
                .run_id,
        );
    }
    let tracker = tracker.with_retention(crate::RetentionPolicy {
        keep_days: None,
        keep_runs_per_machine: Some(2),
    });
    // A store that cannot delete runs prunes nothing.
    let unknown = crate::RunId(i64::MAX);
    if let Err(Error::NotSupported { .. }) = tracker.store().delete_run(unknown).await {
        return;
    }
    let first = tracker.prune(2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first,
        vec![runs[0], runs[1]],
        "oldest first, a batch at a time"
    );
    let second = tracker.prune(2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second, vec![runs[2]]);
    let third = tracker.prune(2).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(third.is_empty());
    for (n, run) in runs.iter().enumerate() {
        assert_eq!(tracker.run(*run).await.is_ok(), n >= 3, "run {n}");
    }

    // Forty days later, a 30-day policy takes the old finished run, not the latest one.
    clock.set(days(40));
    let other = record_plan(&tracker, plan("other", days(40), TWO_BY_TWO)).await;
    let tracker = tracker.with_retention(crate::RetentionPolicy {
        keep_days: Some(30),
        keep_runs_per_machine: None,
    });
    let pruned = tracker.prune(100).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pruned, vec![runs[3]]);
    assert!(tracker.run(runs[4]).await.is_ok(), "the latest run stays");
    assert!(tracker.run(other.ids.run_id).await.is_ok());
}
