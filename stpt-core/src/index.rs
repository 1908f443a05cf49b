//! [`RunIndex`]: one run's scenarios and tests, indexed for the lookups runner events make.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::rules::{RunState, RunWork, ScenarioState, TestState};
use crate::{Error, NewRun, PlannedIds, Result, ScenarioId, Status, TestId};

/// One run with the state of every scenario and test, indexed for what a unit of work asks
/// (the first waiting test of a file, the running test, a test or scenario by id) and kept
/// current by applying each commit's [`RunWork`].
///
/// A backend that holds ongoing runs in memory answers every [`StoreTx`](crate::StoreTx) read
/// from here, in time independent of the run's size: a 10-test run and a 10,000-test run cost
/// the same per event.
///
/// ```
/// use chrono::Utc;
/// use stpt_core::rules::RunWork;
/// use stpt_core::{
///     NewRun, PlanPayload, PlannedIds, RunId, RunIndex, RunnerTimezone, ScenarioId, Status, TestId,
/// };
///
/// let payload: PlanPayload = serde_json::from_str(
///     r#"{"machine_name": "rig-1", "timestamp": "2024-05-01 10:00:00",
///         "master_scenario": {"file_path": "/m", "file_name": "master.py", "script": null,
///           "scenarios": [{"file_path": "/s", "file_name": "s.py", "script": null,
///             "tests": [{"file_path": "/t", "file_name": "a.py", "script": null}]}]}}"#,
/// )?;
/// let new_run = NewRun::from_plan(payload.validate()?, RunnerTimezone::UTC, Utc::now())?;
/// let ids = PlannedIds {
///     run_id: RunId(1),
///     scenario_ids: vec![ScenarioId(1)],
///     test_ids: vec![vec![TestId(1)]],
/// };
/// let mut index = RunIndex::planned(&new_run, &ids)?;
/// let test = index.first_waiting_test("/t", "a.py").expect("planned");
///
/// let mut work = RunWork::new(index.state(), index.scenarios().to_vec());
/// work.start_test(test, None, Utc::now())?;
/// index.apply(&work)?;
/// assert_eq!(index.running_test().map(|t| t.status), Some(Status::Running));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RunIndex {
    state: RunState,
    scenarios: Vec<ScenarioState>,
    scenario_at: IdMap<ScenarioId>,
    /// In plan order.
    tests: Vec<TestState>,
    test_at: IdMap<TestId>,
    /// Plan positions of waiting tests by a hash of their file, in plan order. Tests never
    /// return to `waiting`, so entries of tests that left it are dropped lazily from the
    /// front: a file listed many times is still found in O(1). The keys are hashes already,
    /// so the map's own hash need not be strong.
    waiting: HashMap<u64, VecDeque<usize>, BuildHasherDefault<IdHasher>>,
    /// Plan positions of running tests (the rules keep at most one).
    running: BTreeSet<usize>,
}

impl RunIndex {
    /// A run from its state, its scenarios in plan order and its tests in plan order.
    pub fn new(state: RunState, scenarios: Vec<ScenarioState>, tests: Vec<TestState>) -> Self {
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
        let mut waiting: HashMap<u64, VecDeque<usize>, BuildHasherDefault<IdHasher>> =
            HashMap::default();
        let mut running = BTreeSet::new();
        for (at, test) in tests.iter().enumerate() {
            match test.status {
                Status::Waiting => waiting
                    .entry(file_hash(&test.file_path, &test.file_name))
                    .or_default()
                    .push_back(at),
                Status::Running => {
                    running.insert(at);
                }
                _ => {}
            }
        }
        RunIndex {
            state,
            scenarios,
            scenario_at,
            tests,
            test_at,
            waiting,
            running,
        }
    }

    /// A run just planned, every test waiting, under the ids a commit assigned to its items.
    /// [`Error::Invariant`] if `ids` does not have the plan's shape.
    pub fn planned(new_run: &NewRun, ids: &PlannedIds) -> Result<Self> {
        let plan = &new_run.plan;
        let shaped = ids.scenario_ids.len() == plan.scenarios.len()
            && ids.test_ids.len() == plan.scenarios.len()
            && new_run.scenario_aggregates.len() == plan.scenarios.len()
            && plan
                .scenarios
                .iter()
                .zip(&ids.test_ids)
                .all(|(scenario, tests)| scenario.tests.len() == tests.len());
        if !shaped {
            return Err(Error::invariant(format!(
                "ids of run {} do not have the shape of its plan",
                ids.run_id
            )));
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
        let mut tests = Vec::with_capacity(plan.test_count());
        for ((scenario, &scenario_id), test_ids) in plan
            .scenarios
            .iter()
            .zip(&ids.scenario_ids)
            .zip(&ids.test_ids)
        {
            for (test, &id) in scenario.tests.iter().zip(test_ids) {
                tests.push(TestState {
                    id,
                    scenario_id,
                    file_path: test.file_path.clone(),
                    file_name: test.file_name.clone(),
                    status: Status::Waiting,
                    timestamp_start: None,
                    timestamp_stop: None,
                    failure: None,
                });
            }
        }
        Ok(RunIndex::new(state, scenarios, tests))
    }

    /// The run's state.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// Every scenario, in plan order.
    pub fn scenarios(&self) -> &[ScenarioState] {
        &self.scenarios
    }

    /// Every test, in plan order.
    pub fn tests(&self) -> &[TestState] {
        &self.tests
    }

    /// One scenario of this run.
    pub fn scenario(&self, id: ScenarioId) -> Option<ScenarioState> {
        self.scenario_at.get(&id).map(|&at| self.scenarios[at])
    }

    /// One test of this run.
    pub fn test(&self, id: TestId) -> Option<TestState> {
        self.test_at.get(&id).map(|&at| self.tests[at].clone())
    }

    /// The running test, if any.
    pub fn running_test(&self) -> Option<TestState> {
        self.running.first().map(|&at| self.tests[at].clone())
    }

    /// The first waiting test with this path and name, in plan order. Takes `&mut self` to
    /// forget, on the way, tests that are no longer waiting.
    pub fn first_waiting_test(&mut self, file_path: &str, file_name: &str) -> Option<TestState> {
        let positions = self.waiting.get_mut(&file_hash(file_path, file_name))?;
        while let Some(&at) = positions.front() {
            if self.tests[at].status == Status::Waiting {
                break;
            }
            positions.pop_front();
        }
        // Different files with one hash are told apart here.
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

    /// Applies what a commit wrote for this run: the bulk close first, then each test, the
    /// scenarios and the run. [`Error::Invariant`], with nothing applied, if the work is for
    /// another run or names a record this run does not have.
    pub fn apply(&mut self, work: &RunWork) -> Result<()> {
        self.check(work)?;
        self.apply_checked(work);
        Ok(())
    }

    /// Whether [`RunIndex::apply`] would take `work`: [`Error::Invariant`] if it is for
    /// another run or names a record this run does not have. A backend that applies the
    /// work of several runs in one commit checks them all first, so a failing commit writes
    /// nothing.
    pub fn check(&self, work: &RunWork) -> Result<()> {
        let unknown_test = work
            .tests
            .iter()
            .find(|t| !self.test_at.contains_key(&t.id));
        let unknown_scenario = work
            .scenarios
            .iter()
            .find(|s| !self.scenario_at.contains_key(&s.id));
        if work.run.id != self.state.id || unknown_test.is_some() || unknown_scenario.is_some() {
            return Err(Error::invariant(format!(
                "work on run {} names records run {} does not have",
                work.run.id, self.state.id
            )));
        }
        Ok(())
    }

    fn apply_checked(&mut self, work: &RunWork) {
        if let Some(closed) = work.closed {
            for test in &mut self.tests {
                (test.status, test.timestamp_stop) = closed.apply(test.status, test.timestamp_stop);
            }
            self.running.clear();
        }
        for changed in &work.tests {
            let Some(&at) = self.test_at.get(&changed.id) else {
                continue;
            };
            self.running.remove(&at);
            if changed.status == Status::Running {
                self.running.insert(at);
            }
            let test = &mut self.tests[at];
            test.status = changed.status;
            test.timestamp_start = changed.timestamp_start;
            test.timestamp_stop = changed.timestamp_stop;
            test.failure.clone_from(&changed.failure);
        }
        for changed in &work.scenarios {
            if let Some(&at) = self.scenario_at.get(&changed.id) {
                self.scenarios[at] = *changed;
            }
        }
        self.state = work.run;
    }
}

/// A hash of a test's file for the waiting index (in memory only, so any stable-per-process
/// hash will do).
fn file_hash(file_path: &str, file_name: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    (file_path, file_name).hash(&mut hasher);
    hasher.finish()
}

/// Plan positions by id. Ids are assigned by the store, never chosen by a client, so a plain
/// multiplicative hash is safe here, and it is most of an event's cost saved over SipHash.
type IdMap<K> = HashMap<K, usize, BuildHasherDefault<IdHasher>>;

/// A multiplicative hash of the integers that make up an id.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(u64::from_ne_bytes(n.to_ne_bytes()));
    }
}
