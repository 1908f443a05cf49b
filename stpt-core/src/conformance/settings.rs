//! Scenarios of what an admin sets on one machine or run: its own liveness thresholds, its
//! own retention policy, and runs kept out of pruning. Each is skipped by a store that
//! answers [`Error::NotSupported`] for the setting.

use chrono::Duration;
use std::sync::Arc;

use super::support::{at, detail, plan, record_plan, run_test, start, tracker};
use crate::{
    Error, Liveness, LivenessWatch, MachineId, MachineTimeouts, PlanReceipt, RetentionPolicy,
    RunId, Status, Store, Tracker,
};

const ONE_SCENARIO: &[(&str, &[&str])] = &[("lamp.py", &["a.py", "b.py"])];

/// A machine given a shorter offline threshold than the server's goes offline, and its
/// running test is closed `unknown`, when the server's threshold would still wait; one given
/// a longer threshold stays open past the server's. Settings read back with the machine,
/// cleared ones give the server's back, and a refused setting stores nothing.
pub async fn machine_timeouts_override_the_servers(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    if let Err(Error::NotSupported { .. }) = tracker
        .set_machine_timeouts(MachineId(i64::MAX), MachineTimeouts::default())
        .await
    {
        return;
    }
    // Three rigs, each with a short test done and the next one running from second 10.
    clock.set(at(10));
    let mut receipts = Vec::new();
    for name in ["long", "plain", "short"] {
        let receipt = record_plan(&tracker, plan(name, at(0), ONE_SCENARIO)).await;
        run_test(
            &tracker,
            name,
            "lamp.py",
            "a.py",
            Status::Passed,
            at(1),
            at(9),
        )
        .await;
        start(&tracker, name, "lamp.py", "b.py", at(10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        receipts.push(receipt);
    }
    let [long, plain, short] = [&receipts[0], &receipts[1], &receipts[2]];
    let short_timeouts = MachineTimeouts {
        quiet_after_secs: Some(30),
        offline_after_secs: Some(60),
    };
    let long_timeouts = MachineTimeouts {
        quiet_after_secs: None,
        offline_after_secs: Some(30 * 60),
    };
    set_timeouts(&tracker, short.machine_id, short_timeouts).await;
    set_timeouts(&tracker, long.machine_id, long_timeouts).await;
    let refused = tracker
        .set_machine_timeouts(
            short.machine_id,
            MachineTimeouts {
                quiet_after_secs: Some(600),
                offline_after_secs: Some(60),
            },
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    let unknown = tracker
        .set_machine_timeouts(MachineId(i64::MAX), short_timeouts)
        .await;
    assert!(
        matches!(unknown, Err(Error::NotFound { .. })),
        "{unknown:?}"
    );
    assert_eq!(timeouts_of(&tracker, short).await, short_timeouts, "kept");
    assert_eq!(timeouts_of(&tracker, long).await, long_timeouts);
    assert!(timeouts_of(&tracker, plain).await.is_empty());

    // Three minutes of silence: the server's 10 minutes are far, the short rig's minute is
    // past.
    let mut watch = LivenessWatch::new();
    clock.set(at(10) + Duration::minutes(3));
    let closed = watch.tick(&tracker).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(closed, vec![short.ids.run_id]);
    let run = detail(&tracker, short.ids.run_id).await;
    assert_eq!(run.summary.status, Status::Unknown);
    assert_eq!(run.summary.went_silent_at, Some(at(10)));
    assert_eq!(run.scenarios[0].tests[1].status, Status::Unknown);
    assert_eq!(liveness_of(&tracker, short).await, Liveness::Offline);
    assert_eq!(liveness_of(&tracker, plain).await, Liveness::Quiet);

    // Eleven minutes: the server's threshold closes the plain rig, not the long one.
    clock.set(at(10) + Duration::minutes(11));
    let closed = watch.tick(&tracker).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(closed, vec![plain.ids.run_id]);
    assert_eq!(liveness_of(&tracker, long).await, Liveness::Quiet);
    let run = detail(&tracker, long.ids.run_id).await;
    assert_eq!(run.scenarios[0].tests[1].status, Status::Running);

    // Cleared, the long rig has the server's thresholds again.
    set_timeouts(&tracker, long.machine_id, MachineTimeouts::default()).await;
    assert!(timeouts_of(&tracker, long).await.is_empty());
    let closed = watch.tick(&tracker).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(closed, vec![long.ids.run_id]);
}

/// A machine's own retention policy replaces the server's for that machine: one keeps every
/// run while the server prunes, another keeps more than the server would. Cleared, the
/// server's applies again. A refused policy stores nothing. Skipped by a store that cannot
/// delete runs.
pub async fn machine_retention_overrides_the_servers(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let tracker = tracker.with_retention(RetentionPolicy {
        keep_days: None,
        keep_runs_per_machine: Some(1),
    });
    if !supports_pruning(&tracker).await {
        return;
    }
    match tracker
        .set_machine_retention(MachineId(i64::MAX), None)
        .await
    {
        Err(Error::NotSupported { .. }) => return,
        other => assert!(matches!(other, Err(Error::NotFound { .. })), "{other:?}"),
    }
    clock.set(at(0));
    let everything = four_runs(&tracker, "everything").await;
    let more = four_runs(&tracker, "more").await;
    let plain = four_runs(&tracker, "plain").await;
    let machine = everything[0].machine_id;
    set_retention(&tracker, machine, Some(RetentionPolicy::default())).await;
    let three = RetentionPolicy {
        keep_days: None,
        keep_runs_per_machine: Some(3),
    };
    set_retention(&tracker, more[0].machine_id, Some(three)).await;
    let refused = tracker
        .set_machine_retention(
            more[0].machine_id,
            Some(RetentionPolicy {
                keep_days: Some(0),
                keep_runs_per_machine: None,
            }),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    let read = |id| {
        let tracker = tracker.clone();
        async move {
            tracker
                .machine(id)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .retention
        }
    };
    assert_eq!(read(machine).await, Some(RetentionPolicy::default()));
    assert_eq!(read(more[0].machine_id).await, Some(three));
    assert_eq!(read(plain[0].machine_id).await, None);

    let pruned = tracker.prune(100).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pruned,
        vec![
            more[0].ids.run_id,
            plain[0].ids.run_id,
            plain[1].ids.run_id,
            plain[2].ids.run_id
        ],
        "by machine name, oldest first"
    );
    for receipt in &everything {
        assert!(tracker.run(receipt.ids.run_id).await.is_ok());
    }

    // Back under the server's policy, the machine keeps only its latest run.
    set_retention(&tracker, machine, None).await;
    assert_eq!(read(machine).await, None);
    let pruned = tracker.prune(100).await.unwrap_or_else(|e| panic!("{e}"));
    let expected: Vec<RunId> = everything[..3].iter().map(|r| r.ids.run_id).collect();
    assert_eq!(pruned, expected);
}

/// A run an admin marked kept survives a policy that would delete it, and reads back as
/// kept; unmarked, the next pass deletes it. Skipped by a store that cannot delete runs.
pub async fn kept_runs_are_not_pruned(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let tracker = tracker.with_retention(RetentionPolicy {
        keep_days: None,
        keep_runs_per_machine: Some(1),
    });
    if !supports_pruning(&tracker).await {
        return;
    }
    match tracker.set_run_kept(RunId(i64::MAX), true).await {
        Err(Error::NotSupported { .. }) => return,
        other => assert!(matches!(other, Err(Error::NotFound { .. })), "{other:?}"),
    }
    clock.set(at(0));
    let runs = four_runs(&tracker, "rig").await;
    let kept = runs[1].ids.run_id;
    tracker
        .set_run_kept(kept, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(detail(&tracker, kept).await.summary.kept);
    let listed = tracker
        .store()
        .runs(
            runs[0].machine_id,
            crate::PageRequest::first(10).unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let flags: Vec<bool> = listed.items.iter().map(|run| run.kept).collect();
    assert_eq!(flags, vec![false, false, true, false], "newest first");

    let pruned = tracker.prune(100).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pruned, vec![runs[0].ids.run_id, runs[2].ids.run_id]);
    assert!(tracker.run(kept).await.is_ok(), "kept");

    tracker
        .set_run_kept(kept, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!detail(&tracker, kept).await.summary.kept);
    let pruned = tracker.prune(100).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pruned, vec![kept]);
}

/// [`Store::prune_run`] deletes a run only if retention may take it, judged when it runs:
/// not a run marked kept since the pass read it, not an ongoing run, not the machine's latest
/// (even finished). Skipped by a store without it.
pub async fn prune_run_judges_when_it_deletes(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    match tracker.store().prune_run(RunId(i64::MAX)).await {
        Err(Error::NotSupported { .. }) => return,
        other => assert!(matches!(other, Err(Error::NotFound { .. })), "{other:?}"),
    }
    clock.set(at(0));
    let runs = four_runs(&tracker, "rig").await;
    let prune = |run: RunId| {
        let store = Arc::clone(tracker.store());
        async move { store.prune_run(run).await.unwrap_or_else(|e| panic!("{e}")) }
    };
    assert!(!prune(runs[3].ids.run_id).await, "ongoing and latest");
    assert!(prune(runs[0].ids.run_id).await);
    assert!(
        matches!(
            tracker.run(runs[0].ids.run_id).await,
            Err(Error::NotFound { .. })
        ),
        "deleted"
    );
    assert!(matches!(
        tracker.store().prune_run(runs[0].ids.run_id).await,
        Err(Error::NotFound { .. })
    ));
    let kept = runs[1].ids.run_id;
    if tracker.set_run_kept(kept, true).await.is_ok() {
        assert!(!prune(kept).await, "marked kept after the pass read it");
        assert!(tracker.run(kept).await.is_ok());
        tracker
            .set_run_kept(kept, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(prune(kept).await);
    // A plan with nothing to run finishes at once: the latest run, finished, stays.
    let finished_latest = record_plan(&tracker, plan("rig", at(10), &[])).await;
    assert!(!prune(finished_latest.ids.run_id).await, "the latest run");
    assert!(prune(runs[2].ids.run_id).await, "finished, not the latest");
}

async fn set_timeouts(tracker: &Tracker, machine: MachineId, timeouts: MachineTimeouts) {
    tracker
        .set_machine_timeouts(machine, timeouts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn set_retention(tracker: &Tracker, machine: MachineId, policy: Option<RetentionPolicy>) {
    tracker
        .set_machine_retention(machine, policy)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn timeouts_of(tracker: &Tracker, receipt: &PlanReceipt) -> MachineTimeouts {
    tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .timeouts
}

async fn liveness_of(tracker: &Tracker, receipt: &PlanReceipt) -> Liveness {
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tracker
        .liveness(&machine)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Whether the store deletes runs (pruning does nothing otherwise).
async fn supports_pruning(tracker: &Tracker) -> bool {
    !matches!(
        tracker.store().delete_run(RunId(i64::MAX)).await,
        Err(Error::NotSupported { .. })
    )
}

/// Four plans on `machine`, a second apart: each abandons the one before, so all but the
/// last are finished.
async fn four_runs(tracker: &Tracker, machine: &str) -> Vec<PlanReceipt> {
    let mut receipts = Vec::new();
    for n in 0..4 {
        receipts.push(record_plan(tracker, plan(machine, at(n), ONE_SCENARIO)).await);
    }
    receipts
}
