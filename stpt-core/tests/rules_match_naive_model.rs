//! Property: after every event, what the tracker keeps incrementally (test statuses, scenario
//! and run counts, statuses and timestamps) equals a naive recomputation from all tests, made
//! by a model that follows the wording of the rules (`stpt_core::rules`, written in
//! `stpt-core/docs/rules.md`) literally. The runner's clock and the server's differ by an
//! offset that changes from event to event, so a time taken from the wrong clock shows.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use std::sync::Arc;
use stpt_core::{
    Error, InProcessBus, MachineName, ManualClock, Plan, PlannedScenario, RunDetail, RunId,
    ScriptFile, Status, StatusCounts, TestStart, TestStop, Tracker,
};
use stpt_store_memory::MemoryStore;

const PATHS: [&str; 2] = ["/x", "/y"];
const NAMES: [&str; 3] = ["a.py", "b.py", "c.py"];
const FINALS: [Status; 6] = [
    Status::Passed,
    Status::Warning,
    Status::Failed,
    Status::Error,
    Status::Unknown,
    Status::Cancelled,
];

type PlanShape = Vec<Vec<(usize, usize)>>;

#[derive(Debug, Clone)]
enum Op {
    Plan(PlanShape),
    Start(usize, usize),
    Stop(usize, usize, usize),
}

fn plan_shape() -> impl Strategy<Value = PlanShape> {
    prop::collection::vec(
        prop::collection::vec((0..PATHS.len(), 0..NAMES.len()), 0..5),
        0..4,
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => plan_shape().prop_map(Op::Plan),
        6 => (0..PATHS.len(), 0..NAMES.len()).prop_map(|(p, n)| Op::Start(p, n)),
        // Cancel is rare so runs usually get further.
        5 => (0..PATHS.len(), 0..NAMES.len(), 0..FINALS.len() - 1).prop_map(|(p, n, s)| Op::Stop(p, n, s)),
        1 => (0..PATHS.len(), 0..NAMES.len()).prop_map(|(p, n)| Op::Stop(p, n, FINALS.len() - 1)),
    ]
}

fn time(i: usize) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
        + Duration::seconds(i64::try_from(i).unwrap())
}

/// When the server receives event `i`: an hour and a growing delay after the runner sent it.
fn received(i: usize) -> DateTime<Utc> {
    time(3 * i) + Duration::hours(1)
}

/// A run as the rules page describes it, held whole and recomputed whole.
#[derive(Debug, Clone, Default)]
struct NaiveTest {
    path: &'static str,
    name: &'static str,
    status: Option<Status>,
    start: Option<DateTime<Utc>>,
    stop: Option<DateTime<Utc>>,
    /// When the server received its start (rule 4: its scenario's and run's start).
    received_start: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct NaiveRun {
    id: RunId,
    scenarios: Vec<Vec<NaiveTest>>,
    scenario_stops: Vec<Option<DateTime<Utc>>>,
    stop: Option<DateTime<Utc>>,
}

fn status_of(test: &NaiveTest) -> Status {
    test.status.unwrap_or(Status::Waiting)
}

/// "the status of a scenario is the highest-priority status among its tests" — `unknown` with none.
fn naive_scenario_status(tests: &[NaiveTest]) -> Status {
    tests
        .iter()
        .map(status_of)
        .max_by_key(|s| s.priority())
        .unwrap_or(Status::Unknown)
}

/// "of the run, the highest among its scenarios that have tests" — `unknown` with none.
fn naive_run_status(run: &NaiveRun) -> Status {
    run.scenarios
        .iter()
        .filter(|tests| !tests.is_empty())
        .map(|tests| naive_scenario_status(tests))
        .max_by_key(|s| s.priority())
        .unwrap_or(Status::Unknown)
}

impl NaiveRun {
    fn tests_mut(&mut self) -> impl Iterator<Item = &mut NaiveTest> {
        self.scenarios.iter_mut().flatten()
    }

    fn is_ongoing(&self) -> bool {
        naive_run_status(self).is_ongoing()
    }

    fn close_ongoing(&mut self, status: Status, at: DateTime<Utc>) {
        for test in self.tests_mut() {
            if status_of(test) == Status::Running {
                test.stop = Some(at);
            }
            if status_of(test).is_ongoing() {
                test.status = Some(status);
            }
        }
    }

    /// Rule 4 by observation: stamp the stop of whatever became finished with this event.
    fn stamp_stops(&mut self, before: &[Status], run_before: Status, at: DateTime<Utc>) {
        for (s, tests) in self.scenarios.iter().enumerate() {
            if before[s].is_ongoing() && naive_scenario_status(tests).is_finished() {
                self.scenario_stops[s] = Some(at);
            }
        }
        if run_before.is_ongoing() && naive_run_status(self).is_finished() {
            self.stop = Some(at);
        }
    }

    fn statuses(&self) -> (Vec<Status>, Status) {
        (
            self.scenarios
                .iter()
                .map(|t| naive_scenario_status(t))
                .collect(),
            naive_run_status(self),
        )
    }
}

fn make_plan(shape: &PlanShape, at: DateTime<Utc>) -> Plan {
    Plan {
        machine: MachineName::new("rig").unwrap(),
        timestamp: at.into(),
        master: ScriptFile {
            file_path: "/m".into(),
            file_name: "m.py".into(),
            script: None,
        },
        scenarios: shape
            .iter()
            .enumerate()
            .map(|(s, tests)| PlannedScenario {
                file: ScriptFile {
                    file_path: "/s".into(),
                    file_name: format!("s{s}.py"),
                    script: None,
                },
                tests: tests
                    .iter()
                    .map(|(p, n)| ScriptFile {
                        file_path: PATHS[*p].into(),
                        file_name: NAMES[*n].into(),
                        script: Some(String::new()),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn compare(actual: &RunDetail, naive: &NaiveRun, step: usize) {
    let (scenario_statuses, run_status) = naive.statuses();
    let mut run_counts = StatusCounts::new();
    for (s, (scenario, tests)) in actual.scenarios.iter().zip(&naive.scenarios).enumerate() {
        let counts: StatusCounts = tests.iter().map(status_of).collect();
        run_counts = run_counts.plus(&counts);
        assert_eq!(
            scenario.counts, counts,
            "step {step}: counts of scenario {s}"
        );
        assert_eq!(
            scenario.status, scenario_statuses[s],
            "step {step}: status of scenario {s}"
        );
        let first_start = tests.iter().filter_map(|t| t.received_start).min();
        assert_eq!(
            scenario.timestamp_start, first_start,
            "step {step}: start of scenario {s}"
        );
        assert_eq!(
            scenario.timestamp_stop, naive.scenario_stops[s],
            "step {step}: stop of scenario {s}"
        );
        for (t, (test, expected)) in scenario.tests.iter().zip(tests).enumerate() {
            assert_eq!(
                test.status,
                status_of(expected),
                "step {step}: status of test {s}/{t}"
            );
            assert_eq!(
                test.timestamp_start, expected.start,
                "step {step}: start of test {s}/{t}"
            );
            assert_eq!(
                test.timestamp_stop, expected.stop,
                "step {step}: stop of test {s}/{t}"
            );
        }
    }
    assert_eq!(
        actual.summary.statistics.counts, run_counts,
        "step {step}: run counts"
    );
    assert_eq!(actual.summary.status, run_status, "step {step}: run status");
    let first_start = naive
        .scenarios
        .iter()
        .flatten()
        .filter_map(|t| t.received_start)
        .min();
    assert_eq!(
        actual.summary.timestamp_start, first_start,
        "step {step}: run start"
    );
    assert_eq!(
        actual.summary.timestamp_stop, naive.stop,
        "step {step}: run stop"
    );
}

async fn check(first: PlanShape, ops: Vec<Op>) {
    let clock = Arc::new(ManualClock::new(received(0)));
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), Arc::new(InProcessBus::new()))
        .with_clock(Arc::clone(&clock) as _);
    let mut runs: Vec<NaiveRun> = Vec::new();
    let all_ops = std::iter::once(Op::Plan(first)).chain(ops);
    for (step, op) in all_ops.enumerate() {
        let at = time(step);
        clock.set(received(step));
        let latest = runs.len().checked_sub(1);
        let before = latest.map(|i| runs[i].statuses());
        match op {
            Op::Plan(shape) => {
                let receipt = tracker.record_plan(make_plan(&shape, at)).await.unwrap();
                if let Some(i) = latest.filter(|i| runs[*i].is_ongoing()) {
                    assert_eq!(receipt.abandoned, vec![runs[i].id], "step {step}");
                    runs[i].close_ongoing(Status::Unknown, at);
                } else {
                    assert!(receipt.abandoned.is_empty(), "step {step}");
                }
                runs.push(NaiveRun {
                    id: receipt.ids.run_id,
                    scenarios: shape
                        .iter()
                        .map(|tests| {
                            tests
                                .iter()
                                .map(|(p, n)| NaiveTest {
                                    path: PATHS[*p],
                                    name: NAMES[*n],
                                    ..Default::default()
                                })
                                .collect()
                        })
                        .collect(),
                    scenario_stops: vec![None; shape.len()],
                    stop: None,
                });
            }
            Op::Start(p, n) => {
                let result = tracker
                    .record_test_start(TestStart {
                        machine: MachineName::new("RIG").unwrap(),
                        file_path: PATHS[p].into(),
                        file_name: NAMES[n].into(),
                        at: at.into(),
                    })
                    .await;
                let ongoing = latest.filter(|i| runs[*i].is_ongoing());
                let target = ongoing.and_then(|i| {
                    runs[i]
                        .scenarios
                        .iter()
                        .flatten()
                        .position(|t| {
                            t.path == PATHS[p]
                                && t.name == NAMES[n]
                                && status_of(t) == Status::Waiting
                        })
                        .map(|position| (i, position))
                });
                match target {
                    None => assert!(
                        matches!(result, Err(Error::NoMatch(_))),
                        "step {step}: {result:?}"
                    ),
                    Some((i, position)) => {
                        result.unwrap();
                        for (k, test) in runs[i].tests_mut().enumerate() {
                            if k == position {
                                test.status = Some(Status::Running);
                                test.start = Some(at);
                                test.received_start = Some(received(step));
                            } else if status_of(test) == Status::Running {
                                test.status = Some(Status::Unknown);
                                test.stop = Some(at);
                            }
                        }
                    }
                }
            }
            Op::Stop(p, n, s) => {
                let status = FINALS[s];
                let result = tracker
                    .record_test_stop(TestStop {
                        machine: MachineName::new("rig").unwrap(),
                        file_path: PATHS[p].into(),
                        file_name: NAMES[n].into(),
                        status,
                        at: at.into(),
                    })
                    .await;
                let ongoing = latest.filter(|i| runs[*i].is_ongoing());
                let matched = ongoing.and_then(|i| {
                    runs[i]
                        .scenarios
                        .iter()
                        .flatten()
                        .position(|t| {
                            t.path == PATHS[p]
                                && t.name == NAMES[n]
                                && status_of(t) == Status::Running
                        })
                        .map(|position| (i, position))
                });
                match matched {
                    None => assert!(
                        matches!(result, Err(Error::NoMatch(_))),
                        "step {step}: {result:?}"
                    ),
                    Some((i, position)) => {
                        result.unwrap();
                        if let Some(test) = runs[i].tests_mut().nth(position) {
                            test.status = Some(status);
                            test.stop = Some(at);
                        }
                        if status == Status::Cancelled {
                            runs[i].close_ongoing(Status::Cancelled, at);
                        }
                    }
                }
            }
        }
        if let (Some(i), Some((scenarios_before, run_before))) = (latest, before) {
            runs[i].stamp_stops(&scenarios_before, run_before, received(step));
        }
        for naive in &runs[runs.len().saturating_sub(2)..] {
            compare(&tracker.run(naive.id).await.unwrap(), naive, step);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn incremental_state_matches_naive_recomputation(
        first in plan_shape(),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(check(first, ops));
    }
}
