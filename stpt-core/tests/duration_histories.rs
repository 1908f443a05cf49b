//! Property: for random event sequences with random gaps, on two machines, the duration
//! histories kept incrementally (held by the tracker, flushed at random moments) equal a naive
//! recomputation: per test identity, the last `DURATION_WINDOW` durations of its counted
//! results, on each machine and across machines, in the order they finished. So do the flaky
//! windows: per identity and machine, the last `FLAKY_WINDOW` pass/fail outcomes with their
//! flips and failures.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use stpt_core::history::{FLAKY_WINDOW, Outcome, TestIdentity};
use stpt_core::{
    DURATION_WINDOW, FileRef, InProcessBus, MachineName, ManualClock, Plan, PlannedScenario,
    ScriptFile, Status, TestStart, TestStop, Tracker,
};
use stpt_store_memory::MemoryStore;

const NAMES: [&str; 3] = ["a.py", "b.py", "c.py"];
const MACHINES: [&str; 2] = ["rig-1", "rig-2"];
const FINALS: [Status; 5] = [
    Status::Passed,
    Status::Warning,
    Status::Failed,
    Status::Error,
    Status::Unknown,
];

#[derive(Debug, Clone)]
enum Op {
    /// A machine plans every name twice.
    Plan(usize),
    /// A machine starts a name after a gap of seconds.
    Start(usize, usize, i64),
    /// A machine stops a name with a final status after a gap of seconds.
    Stop(usize, usize, usize, i64),
    /// The tracker flushes what it holds.
    Flush,
    /// A machine runs a name: a start, then after a gap a stop with a final status.
    Run(usize, usize, usize, i64),
    /// Someone watches a machine's latest run: its estimate is asked (and held).
    Eta(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..MACHINES.len()).prop_map(Op::Plan),
        6 => (0..MACHINES.len(), 0..NAMES.len(), 0..40_i64).prop_map(|(m, n, g)| Op::Start(m, n, g)),
        6 => (0..MACHINES.len(), 0..NAMES.len(), 0..FINALS.len(), 0..40_i64)
            .prop_map(|(m, n, s, g)| Op::Stop(m, n, s, g)),
        1 => Just(Op::Flush),
        12 => (0..MACHINES.len(), 0..NAMES.len(), 0..FINALS.len(), 0..600_i64)
            .prop_map(|(m, n, s, g)| Op::Run(m, n, s, g)),
        3 => (0..MACHINES.len()).prop_map(Op::Eta),
    ]
}

fn plan(machine: &str, at: DateTime<Utc>) -> Plan {
    let file = |name: &str| ScriptFile {
        file_path: "/t".into(),
        file_name: name.into(),
        script: None,
    };
    Plan {
        machine: MachineName::new(machine).unwrap(),
        timestamp: at.into(),
        master: file("master.py"),
        scenarios: vec![PlannedScenario {
            file: file("s.py"),
            tests: NAMES.iter().chain(NAMES.iter()).map(|n| file(n)).collect(),
        }],
    }
}

fn window(samples: &[i64]) -> Vec<i64> {
    samples[samples.len().saturating_sub(DURATION_WINDOW)..].to_vec()
}

async fn check(ops: Vec<Op>) {
    let mut now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let store: Arc<dyn stpt_core::Store> = Arc::new(MemoryStore::new());
    let tracker = Tracker::new(Arc::clone(&store), Arc::new(InProcessBus::new()))
        .with_clock(Arc::clone(&clock) as _);
    let mut latest: HashMap<usize, stpt_core::RunId> = HashMap::new();
    // A tracker holding nothing: it reads every estimate afresh.
    let fresh = || {
        Tracker::new(Arc::clone(&store), Arc::new(InProcessBus::new()))
            .with_clock(Arc::clone(&clock) as _)
    };
    // Naive model: the running test's name and start per machine, and every counted result.
    let mut running: HashMap<usize, (usize, DateTime<Utc>)> = HashMap::new();
    let mut results: Vec<(usize, usize, i64)> = Vec::new();
    let mut outcomes: Vec<(usize, usize, Outcome)> = Vec::new();
    for (m, machine) in MACHINES.iter().enumerate() {
        let receipt = tracker.record_plan(plan(machine, now)).await.unwrap();
        latest.insert(m, receipt.ids.run_id);
    }
    let expanded = ops.into_iter().flat_map(|op| match op {
        Op::Run(m, n, s, gap) => vec![Op::Start(m, n, 1), Op::Stop(m, n, s, gap)],
        other => vec![other],
    });
    for op in expanded {
        match op {
            Op::Plan(m) => {
                let receipt = tracker.record_plan(plan(MACHINES[m], now)).await.unwrap();
                latest.insert(m, receipt.ids.run_id);
                running.remove(&m);
            }
            Op::Eta(m) => {
                clock.set(now);
                // What this tracker holds equals what another reads afresh.
                assert_eq!(
                    tracker.eta(latest[&m]).await.unwrap(),
                    fresh().eta(latest[&m]).await.unwrap()
                );
            }
            Op::Start(m, n, gap) => {
                now += Duration::seconds(gap);
                clock.set(now);
                let started = tracker
                    .record_test_start(TestStart {
                        machine: MachineName::new(MACHINES[m]).unwrap(),
                        file_path: "/t".into(),
                        file_name: NAMES[n].into(),
                        at: now.into(),
                    })
                    .await;
                if started.is_ok() {
                    running.insert(m, (n, now));
                }
            }
            Op::Stop(m, n, s, gap) => {
                now += Duration::milliseconds(gap * 1000 + 7);
                clock.set(now);
                let stopped = tracker
                    .record_test_stop(TestStop {
                        machine: MachineName::new(MACHINES[m]).unwrap(),
                        file_path: "/t".into(),
                        file_name: NAMES[n].into(),
                        status: FINALS[s],
                        at: now.into(),
                    })
                    .await;
                if stopped.is_ok() {
                    let (name, started) = running.remove(&m).unwrap();
                    assert_eq!(name, n);
                    if FINALS[s] != Status::Unknown {
                        results.push((m, n, (now - started).num_milliseconds()));
                    }
                    if let Some(outcome) = Outcome::of(FINALS[s]) {
                        outcomes.push((m, n, outcome));
                    }
                }
            }
            Op::Flush => {
                tracker.flush_finished().await.unwrap();
            }
            Op::Run(..) => unreachable!("expanded above"),
        }
    }
    tracker.flush_finished().await.unwrap();
    // Estimates from what this tracker holds equal those read afresh by another.
    for run in latest.values() {
        assert_eq!(
            tracker.eta(*run).await.unwrap(),
            fresh().eta(*run).await.unwrap(),
            "run {run}"
        );
    }
    // A fresh plan on each machine lists every identity with its histories.
    for (m, machine) in MACHINES.iter().enumerate() {
        let receipt = tracker.record_plan(plan(machine, now)).await.unwrap();
        let remaining = tracker
            .store()
            .remaining_work(receipt.ids.run_id)
            .await
            .unwrap();
        assert_eq!(remaining.work.len(), NAMES.len());
        let windows = tracker
            .store()
            .run_flakiness(receipt.ids.run_id, 0)
            .await
            .unwrap();
        for (n, name) in NAMES.iter().enumerate() {
            let naive: Vec<Outcome> = outcomes
                .iter()
                .filter(|(om, on, _)| *om == m && *on == n)
                .map(|o| o.2)
                .collect();
            let naive = &naive[naive.len().saturating_sub(FLAKY_WINDOW)..];
            let key = TestIdentity::new(
                FileRef {
                    file_path: "/t".into(),
                    file_name: "s.py".into(),
                },
                FileRef {
                    file_path: "/t".into(),
                    file_name: (*name).into(),
                },
            )
            .key();
            let kept: Vec<&stpt_core::history::TestFlakiness> =
                windows.iter().filter(|w| w.key == key).collect();
            if naive.is_empty() {
                assert!(kept.is_empty(), "{machine} {name}: no outcome yet");
                continue;
            }
            assert_eq!(kept.len(), 2, "both tests of {name} in the plan");
            let window = &kept[0].window;
            assert_eq!(
                window.outcomes().collect::<Vec<_>>(),
                naive,
                "{machine} {name}"
            );
            let flips = naive.windows(2).filter(|pair| pair[0] != pair[1]).count();
            assert_eq!(window.flips() as usize, flips);
            let failures = naive.iter().filter(|o| **o == Outcome::Fail).count();
            assert_eq!(window.failures() as usize, failures);
        }
        for work in &remaining.work {
            let n = NAMES
                .iter()
                .position(|name| *name == work.file.file_name)
                .unwrap();
            let on_machine: Vec<i64> = results
                .iter()
                .filter(|(rm, rn, _)| *rm == m && *rn == n)
                .map(|r| r.2)
                .collect();
            let everywhere: Vec<i64> = results
                .iter()
                .filter(|(_, rn, _)| *rn == n)
                .map(|r| r.2)
                .collect();
            assert_eq!(
                work.on_machine.samples(),
                window(&on_machine),
                "{machine} {n}"
            );
            assert_eq!(work.everywhere.samples(), window(&everywhere), "{n}");
            assert_eq!(work.waiting, 2);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn histories_match_a_naive_recomputation(ops in prop::collection::vec(op(), 0..400)) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(check(ops));
    }
}
