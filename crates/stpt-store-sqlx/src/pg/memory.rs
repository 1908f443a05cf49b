//! What one server instance remembers of a machine it serves: the machine, the version of its
//! row, and its ongoing runs in full. While the row's version in the database is still the one
//! remembered, an event reads everything it needs from here and nothing from the database.

use std::collections::{BTreeSet, HashMap, VecDeque};

use stpt_core::rules::{RunState, RunWork, ScenarioState, TestState};
use stpt_core::{
    Changes, Committed, MachineRecord, NewRun, PlannedIds, RunId, ScenarioId, Status, TestId,
};

use crate::rows::file_key;

/// What this store keeps of one machine between its units.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// The machine and its ongoing runs, if remembered.
    pub(crate) memory: Option<MachineMemory>,
    /// The machine's version right after this store's last commit on it.
    pub(crate) last_written: Option<i64>,
    /// Units in a row that found, under the lock, no other writer since this store's last
    /// commit.
    pub(crate) undisturbed: u32,
}

/// A machine as last written by this instance (or read under its lock).
#[derive(Debug)]
pub(crate) struct MachineMemory {
    pub(crate) machine: MachineRecord,
    /// The machine row's version these records belong to.
    pub(crate) version: i64,
    /// Ongoing runs, newest first.
    runs: Vec<OngoingRun>,
}

impl MachineMemory {
    pub(crate) fn new(machine: MachineRecord, version: i64, mut runs: Vec<OngoingRun>) -> Self {
        runs.sort_by_key(|run| std::cmp::Reverse(run.state.id));
        MachineMemory {
            machine,
            version,
            runs,
        }
    }

    /// The ongoing runs' states, newest first.
    pub(crate) fn ongoing_runs(&self) -> Vec<RunState> {
        self.runs.iter().map(|run| run.state).collect()
    }

    pub(crate) fn run(&self, id: RunId) -> Option<&OngoingRun> {
        self.runs.iter().find(|run| run.state.id == id)
    }

    pub(crate) fn run_mut(&mut self, id: RunId) -> Option<&mut OngoingRun> {
        self.runs.iter_mut().find(|run| run.state.id == id)
    }

    /// A scenario of any ongoing run.
    pub(crate) fn scenario(&self, id: ScenarioId) -> Option<ScenarioState> {
        self.runs.iter().find_map(|run| run.scenario(id))
    }

    /// A test of any ongoing run.
    pub(crate) fn test(&self, id: TestId) -> Option<TestState> {
        self.runs.iter().find_map(|run| run.test(id))
    }

    /// Records what a commit wrote, taking the plan of a new run. `false` when a changed
    /// record is not remembered: the memory no longer matches the database and must go.
    pub(crate) fn apply(&mut self, changes: Changes, committed: &Committed, version: i64) -> bool {
        for work in &changes.runs {
            let Some(run) = self.run_mut(work.run.id) else {
                return false;
            };
            if !run.apply(work) {
                return false;
            }
        }
        self.runs
            .retain(|run| run.state.aggregate.status().is_ongoing());
        if let (Some(new_run), Some(ids)) = (changes.new_run, &committed.new_run) {
            self.machine.latest_run = Some(ids.run_id);
            if let Some(run) = OngoingRun::planned(new_run, ids) {
                self.runs.insert(0, run);
            }
        }
        self.version = version;
        true
    }
}

/// One ongoing run with every scenario and test, indexed for the lookups events make.
#[derive(Debug)]
pub(crate) struct OngoingRun {
    state: RunState,
    scenarios: Vec<ScenarioState>,
    scenario_at: HashMap<ScenarioId, usize>,
    /// In plan order.
    tests: Vec<TestState>,
    test_at: HashMap<TestId, usize>,
    /// Plan positions of tests by file key, in plan order. Entries of tests that are no
    /// longer waiting are dropped lazily, from the front.
    waiting: HashMap<i64, VecDeque<usize>>,
    /// Plan positions of running tests (the rules keep at most one).
    running: BTreeSet<usize>,
}

impl OngoingRun {
    /// A run from its state, its scenarios and its tests in plan order.
    pub(crate) fn new(
        state: RunState,
        scenarios: Vec<ScenarioState>,
        tests: Vec<TestState>,
    ) -> Self {
        let scenario_at = scenarios
            .iter()
            .enumerate()
            .map(|(at, scenario)| (scenario.id, at))
            .collect();
        let test_at = tests
            .iter()
            .enumerate()
            .map(|(at, test)| (test.id, at))
            .collect();
        let mut waiting: HashMap<i64, VecDeque<usize>> = HashMap::new();
        let mut running = BTreeSet::new();
        for (at, test) in tests.iter().enumerate() {
            match test.status {
                Status::Waiting => waiting
                    .entry(file_key(&test.file_path, &test.file_name))
                    .or_default()
                    .push_back(at),
                Status::Running => {
                    running.insert(at);
                }
                _ => {}
            }
        }
        OngoingRun {
            state,
            scenarios,
            scenario_at,
            tests,
            test_at,
            waiting,
            running,
        }
    }

    /// A run just planned, every test waiting; `None` if it is not ongoing (no tests).
    fn planned(new_run: NewRun, ids: &PlannedIds) -> Option<Self> {
        if !new_run.aggregate.status().is_ongoing() {
            return None;
        }
        let state = RunState {
            id: ids.run_id,
            aggregate: new_run.aggregate,
        };
        let scenarios = ids
            .scenario_ids
            .iter()
            .zip(&new_run.scenario_aggregates)
            .map(|(&id, &aggregate)| ScenarioState { id, aggregate })
            .collect();
        let mut tests = Vec::with_capacity(new_run.plan.test_count());
        for ((scenario, &scenario_id), test_ids) in new_run
            .plan
            .scenarios
            .into_iter()
            .zip(&ids.scenario_ids)
            .zip(&ids.test_ids)
        {
            for (test, &id) in scenario.tests.into_iter().zip(test_ids) {
                tests.push(TestState {
                    id,
                    scenario_id,
                    file_path: test.file_path,
                    file_name: test.file_name,
                    status: Status::Waiting,
                    timestamp_start: None,
                    timestamp_stop: None,
                });
            }
        }
        Some(OngoingRun::new(state, scenarios, tests))
    }

    pub(crate) fn scenarios(&self) -> Vec<ScenarioState> {
        self.scenarios.clone()
    }

    pub(crate) fn scenario(&self, id: ScenarioId) -> Option<ScenarioState> {
        self.scenario_at.get(&id).map(|&at| self.scenarios[at])
    }

    pub(crate) fn test(&self, id: TestId) -> Option<TestState> {
        self.test_at.get(&id).map(|&at| self.tests[at].clone())
    }

    pub(crate) fn running_test(&self) -> Option<TestState> {
        self.running.first().map(|&at| self.tests[at].clone())
    }

    /// The first waiting test with this path and name, in plan order.
    pub(crate) fn first_waiting_test(
        &mut self,
        file_path: &str,
        file_name: &str,
    ) -> Option<TestState> {
        let positions = self.waiting.get_mut(&file_key(file_path, file_name))?;
        while let Some(&at) = positions.front() {
            if self.tests[at].status == Status::Waiting {
                break;
            }
            positions.pop_front();
        }
        // Equal keys of different files (a 64-bit hash collision) are told apart here.
        positions
            .iter()
            .map(|&at| &self.tests[at])
            .find(|test| {
                test.status == Status::Waiting
                    && test.file_path == file_path
                    && test.file_name == file_name
            })
            .cloned()
    }

    /// Applies one run's work as the database did: the bulk close first, then each test, the
    /// scenarios and the run. `false` if a record is unknown.
    fn apply(&mut self, work: &RunWork) -> bool {
        if let Some(closed) = work.closed {
            for test in &mut self.tests {
                (test.status, test.timestamp_stop) = closed.apply(test.status, test.timestamp_stop);
            }
            self.running.clear();
        }
        for changed in &work.tests {
            let Some(&at) = self.test_at.get(&changed.id) else {
                return false;
            };
            self.running.remove(&at);
            if changed.status == Status::Running {
                self.running.insert(at);
            }
            let test = &mut self.tests[at];
            test.status = changed.status;
            test.timestamp_start = changed.timestamp_start;
            test.timestamp_stop = changed.timestamp_stop;
        }
        for changed in &work.scenarios {
            let Some(&at) = self.scenario_at.get(&changed.id) else {
                return false;
            };
            self.scenarios[at] = *changed;
        }
        self.state = work.run;
        true
    }
}
