//! Property: a [`RunIndex`] kept current by applying each event's work answers every lookup
//! as a naive scan of the run's tests in plan order would, and holds the same tests.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use stpt_core::rules::RunWork;
use stpt_core::{
    Error, MachineName, NewRun, Plan, PlannedIds, PlannedScenario, RunId, RunIndex, RunnerTimezone,
    ScenarioId, ScriptFile, Status, TestId, TestState,
};

const FILES: [(&str, &str); 3] = [("/x", "a.py"), ("/x", "b.py"), ("/y", "a.py")];
const FINALS: [Status; 5] = [
    Status::Passed,
    Status::Warning,
    Status::Failed,
    Status::Error,
    Status::Unknown,
];

#[derive(Debug, Clone)]
enum Op {
    Start(usize),
    Stop(usize),
    Cancel,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..FILES.len()).prop_map(Op::Start),
        5 => (0..FINALS.len()).prop_map(Op::Stop),
        1 => Just(Op::Cancel),
    ]
}

fn time(i: usize) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
        + Duration::seconds(i64::try_from(i).unwrap())
}

fn file((path, name): (&str, &str)) -> ScriptFile {
    ScriptFile {
        file_path: path.to_owned(),
        file_name: name.to_owned(),
        script: None,
    }
}

/// A planned run of `shape` (file numbers per scenario) with ids counted from 1.
fn planned(shape: &[Vec<usize>]) -> RunIndex {
    let plan = Plan {
        machine: MachineName::new("rig".to_owned()).unwrap(),
        timestamp: time(0).into(),
        master: file(("/m", "master.py")),
        scenarios: shape
            .iter()
            .map(|tests| PlannedScenario {
                file: file(("/s", "s.py")),
                tests: tests.iter().map(|&f| file(FILES[f])).collect(),
            })
            .collect(),
    };
    let mut next_test = 0;
    let ids = PlannedIds {
        run_id: RunId(1),
        scenario_ids: (1..=shape.len()).map(|s| ScenarioId(s as i64)).collect(),
        test_ids: shape
            .iter()
            .map(|tests| {
                tests
                    .iter()
                    .map(|_| {
                        next_test += 1;
                        TestId(next_test)
                    })
                    .collect()
            })
            .collect(),
    };
    RunIndex::planned(
        &NewRun::from_plan(plan, RunnerTimezone::UTC, time(0)).unwrap(),
        &ids,
    )
    .unwrap()
}

/// The lookups as their definitions say: scans in plan order.
fn naive_first_waiting(tests: &[TestState], (path, name): (&str, &str)) -> Option<TestState> {
    tests
        .iter()
        .find(|t| t.status == Status::Waiting && t.file_path == path && t.file_name == name)
        .cloned()
}

fn naive_running(tests: &[TestState]) -> Option<TestState> {
    tests.iter().find(|t| t.status == Status::Running).cloned()
}

fn check(shape: Vec<Vec<usize>>, ops: Vec<Op>) {
    let mut index = planned(&shape);
    // The naive copy: every test, changed by id from each work's list.
    let mut naive: Vec<TestState> = index.tests().to_vec();
    for (i, op) in ops.into_iter().enumerate() {
        let at = time(i + 1);
        let mut work = RunWork::new(index.state(), index.scenarios().to_vec());
        let applied = match op {
            Op::Start(f) => {
                let target = index.first_waiting_test(FILES[f].0, FILES[f].1);
                assert_eq!(target, naive_first_waiting(&naive, FILES[f]));
                match target {
                    Some(target) => work.start_test(target, index.running_test(), at).is_ok(),
                    None => false,
                }
            }
            Op::Stop(s) => match index.running_test() {
                Some(running) => work.stop_test(running, FINALS[s], None, at).is_ok(),
                None => false,
            },
            Op::Cancel => work.close_ongoing(Status::Cancelled, at).is_ok(),
        };
        if !applied {
            continue;
        }
        index.apply(&work).unwrap();
        if let Some(closed) = work.closed {
            for test in &mut naive {
                (test.status, test.timestamp_stop) = closed.apply(test.status, test.timestamp_stop);
            }
        }
        for changed in &work.tests {
            let known = naive.iter_mut().find(|t| t.id == changed.id).unwrap();
            *known = changed.clone();
        }
        assert_eq!(index.tests(), &naive[..], "tests after {i} events");
        assert_eq!(index.running_test(), naive_running(&naive));
        for f in FILES {
            assert_eq!(
                index.first_waiting_test(f.0, f.1),
                naive_first_waiting(&naive, f)
            );
        }
        for test in &naive {
            assert_eq!(index.test(test.id).as_ref(), Some(test));
        }
        assert_eq!(index.state(), work.run);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn index_answers_as_naive_scans(
        shape in prop::collection::vec(prop::collection::vec(0..FILES.len(), 0..6), 1..4),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        check(shape, ops);
    }
}

/// Work that names a record the run does not have is refused whole: nothing is applied.
#[test]
fn foreign_work_changes_nothing() {
    let mut index = planned(&[vec![0, 1]]);
    let before = index.tests().to_vec();
    let mut work = RunWork::new(index.state(), index.scenarios().to_vec());
    let first = index.first_waiting_test("/x", "a.py").unwrap();
    work.start_test(first, None, time(1)).unwrap();
    work.tests.push(TestState {
        id: TestId(99),
        ..work.tests[0].clone()
    });
    assert!(matches!(index.apply(&work), Err(Error::Invariant { .. })));
    assert_eq!(index.tests(), &before[..]);
    assert_eq!(index.running_test(), None);

    let other_run = RunWork::new(
        stpt_core::RunState {
            id: RunId(2),
            ..index.state()
        },
        Vec::new(),
    );
    assert!(matches!(
        index.apply(&other_run),
        Err(Error::Invariant { .. })
    ));
}

/// Ids that do not have the plan's shape are refused.
#[test]
fn ids_must_have_the_plan_shape() {
    let plan = Plan {
        machine: MachineName::new("rig".to_owned()).unwrap(),
        timestamp: time(0).into(),
        master: file(("/m", "master.py")),
        scenarios: vec![PlannedScenario {
            file: file(("/s", "s.py")),
            tests: vec![file(FILES[0])],
        }],
    };
    let ids = PlannedIds {
        run_id: RunId(1),
        scenario_ids: vec![ScenarioId(1)],
        test_ids: vec![vec![]],
    };
    let refused = RunIndex::planned(
        &NewRun::from_plan(plan, RunnerTimezone::UTC, time(0)).unwrap(),
        &ids,
    );
    assert!(matches!(refused, Err(Error::Invariant { .. })));
}
