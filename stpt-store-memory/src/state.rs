//! The in-memory tables and their indexes.

mod history;

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use stpt_core::history::{FlakyWindow, Outcome, TestIdentity, TestKey};
use stpt_core::rules::{RunState, RunWork, ScenarioState, TestState};
use stpt_core::{
    Changes, ClockOffset, Committed, DurationHistory, Error, FailureDetails, FileRef, FinishedTest,
    ItemDetail, ItemKind, ItemRef, MachineId, MachineRecord, MachineSummary, MachineTimeouts,
    NewRun, Page, PageRequest, PlannedIds, RecordedEvent, RemainingWork, Result, RetentionPolicy,
    RunDetail, RunId, RunIndex, RunRemaining, RunSummary, RunnerTimezone, ScenarioId, ScenarioView,
    ScriptFile, Status, TestId, TestView,
};

#[derive(Debug, Default)]
pub(crate) struct State {
    machines: Vec<MachineRow>,
    /// Machine ids by case-insensitive name key; also gives the listing order.
    machine_by_key: BTreeMap<String, MachineId>,
    runs: Vec<RunRow>,
    scenarios: Vec<ScenarioRow>,
    tests: Vec<TestRow>,
    /// Each distinct script text once: the same files run night after night.
    scripts: HashSet<Arc<str>>,
    /// Client event ids seen, per machine, with what they did.
    events: HashMap<(MachineId, String), RecordedEvent>,
    /// Deleted runs and machines: ids are table positions, so rows stay as tombstones
    /// (a run's states are freed) and every lookup skips them.
    deleted_runs: HashSet<RunId>,
    deleted_machines: HashSet<MachineId>,
    /// Duration histories by test identity: keyed by the file alone, so adding a sample
    /// finds them without building (cloning) a key.
    durations: HashMap<FileRef, FileDurations>,
    /// Each test identity with its tests in id order: history reads never walk all runs.
    identities: HashMap<TestKey, (TestIdentity, Vec<TestId>)>,
    /// Each identity's latest outcomes per machine.
    flaky: HashMap<(MachineId, TestKey), FlakyWindow>,
}

/// One test identity's duration histories.
#[derive(Debug, Default)]
struct FileDurations {
    /// Across machines.
    everywhere: DurationHistory,
    /// On each machine.
    by_machine: HashMap<MachineId, DurationHistory>,
}

#[derive(Debug)]
struct MachineRow {
    id: MachineId,
    name: String,
    last_seen: Option<DateTime<Utc>>,
    clock_offset: Option<ClockOffset>,
    timezone: Option<RunnerTimezone>,
    timeouts: MachineTimeouts,
    retention: Option<RetentionPolicy>,
    /// In receipt order; the last one is the latest run.
    runs: Vec<RunId>,
    ongoing: BTreeSet<RunId>,
    /// Units of work on this machine, and deletions of its runs, take turns on it.
    turn: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug)]
struct RunRow {
    id: RunId,
    machine_id: MachineId,
    timestamp: DateTime<Utc>,
    received_at: DateTime<Utc>,
    master: StoredFile,
    states: RunStates,
    went_silent_at: Option<DateTime<Utc>>,
    kept: bool,
}

/// The state of a run and of its scenarios and tests in plan order: a [`RunIndex`] while the
/// run is ongoing, which answers a unit's lookups and applies its work; plain lists once it
/// is finished, as no event changes it again and the read models only walk it.
#[derive(Debug)]
enum RunStates {
    Ongoing(RunIndex),
    Finished {
        state: RunState,
        scenarios: Vec<ScenarioState>,
        tests: Vec<TestState>,
    },
}

impl RunStates {
    fn new(index: RunIndex) -> Self {
        if index.state().aggregate.status().is_ongoing() {
            RunStates::Ongoing(index)
        } else {
            RunStates::finished(&index)
        }
    }

    /// Copies the states out of the index: paid once per run, when it finishes.
    fn finished(index: &RunIndex) -> Self {
        RunStates::Finished {
            state: index.state(),
            scenarios: index.scenarios().to_vec(),
            tests: index.tests().to_vec(),
        }
    }

    fn state(&self) -> RunState {
        match self {
            RunStates::Ongoing(index) => index.state(),
            RunStates::Finished { state, .. } => *state,
        }
    }

    fn scenarios(&self) -> &[ScenarioState] {
        match self {
            RunStates::Ongoing(index) => index.scenarios(),
            RunStates::Finished { scenarios, .. } => scenarios,
        }
    }

    fn tests(&self) -> &[TestState] {
        match self {
            RunStates::Ongoing(index) => index.tests(),
            RunStates::Finished { tests, .. } => tests,
        }
    }

    fn index(&self) -> Option<&RunIndex> {
        match self {
            RunStates::Ongoing(index) => Some(index),
            RunStates::Finished { .. } => None,
        }
    }

    fn index_mut(&mut self) -> Option<&mut RunIndex> {
        match self {
            RunStates::Ongoing(index) => Some(index),
            RunStates::Finished { .. } => None,
        }
    }

    /// Applies a commit's work to an ongoing run (through [`RunIndex::apply`], which writes
    /// nothing if the work does not fit), dropping the index when the run finishes. Returns
    /// whether the run is still ongoing.
    fn apply(&mut self, work: &RunWork) -> Result<bool> {
        let index = self.index_mut().ok_or_else(|| not_ongoing(work.run.id))?;
        index.apply(work)?;
        if index.state().aggregate.status().is_ongoing() {
            return Ok(true);
        }
        *self = RunStates::finished(index);
        Ok(false)
    }
}

fn not_ongoing(run: RunId) -> Error {
    Error::invariant(format!("work on run {run}, which is not ongoing"))
}

/// Where a scenario is: its run and plan position, with its file.
#[derive(Debug)]
struct ScenarioRow {
    run_id: RunId,
    at: usize,
    file: StoredFile,
}

/// Where a test is: its run and plan position (among all the run's tests), with its script.
#[derive(Debug)]
struct TestRow {
    run_id: RunId,
    at: usize,
    key: TestKey,
    script: Option<Arc<str>>,
}

#[derive(Debug)]
struct StoredFile {
    file_path: String,
    file_name: String,
    script: Option<Arc<str>>,
}

impl StoredFile {
    fn file_ref(&self) -> FileRef {
        FileRef {
            file_path: self.file_path.clone(),
            file_name: self.file_name.clone(),
        }
    }
}

fn test_file(test: &TestState) -> FileRef {
    FileRef {
        file_path: test.file_path.clone(),
        file_name: test.file_name.clone(),
    }
}

/// Ids are 1-based positions in the tables.
fn slot(id: i64) -> Option<usize> {
    usize::try_from(id).ok()?.checked_sub(1)
}

fn next_id(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX).saturating_add(1)
}

impl State {
    fn machine_row(&self, id: MachineId) -> Result<&MachineRow> {
        slot(id.get())
            .and_then(|i| self.machines.get(i))
            .filter(|row| !self.deleted_machines.contains(&row.id))
            .ok_or_else(|| Error::not_found(ItemKind::Machine, id.get()))
    }

    fn machine_row_mut(&mut self, id: MachineId) -> Result<&mut MachineRow> {
        let deleted = self.deleted_machines.contains(&id);
        slot(id.get())
            .and_then(|i| self.machines.get_mut(i))
            .filter(|_| !deleted)
            .ok_or_else(|| Error::not_found(ItemKind::Machine, id.get()))
    }

    fn run_row(&self, id: RunId) -> Result<&RunRow> {
        slot(id.get())
            .and_then(|i| self.runs.get(i))
            .filter(|run| !self.deleted_runs.contains(&run.id))
            .ok_or_else(|| Error::not_found(ItemKind::Run, id.get()))
    }

    fn run_row_mut(&mut self, id: RunId) -> Result<&mut RunRow> {
        let deleted = self.deleted_runs.contains(&id);
        slot(id.get())
            .and_then(|i| self.runs.get_mut(i))
            .filter(|_| !deleted)
            .ok_or_else(|| Error::not_found(ItemKind::Run, id.get()))
    }

    /// The index of an ongoing run.
    fn ongoing_index(&self, run: RunId) -> Result<&RunIndex> {
        self.run_row(run)?
            .states
            .index()
            .ok_or_else(|| not_ongoing(run))
    }

    /// A scenario with its run and state.
    fn scenario(&self, id: ScenarioId) -> Result<(&ScenarioRow, &RunRow, ScenarioState)> {
        let not_found = || Error::not_found(ItemKind::Scenario, id.get());
        let row = slot(id.get())
            .and_then(|i| self.scenarios.get(i))
            .ok_or_else(not_found)?;
        let run = self.run_row(row.run_id).map_err(|_| not_found())?;
        let state = *run.states.scenarios().get(row.at).ok_or_else(not_found)?;
        Ok((row, run, state))
    }

    /// A test with its run and state.
    fn test(&self, id: TestId) -> Result<(&TestRow, &RunRow, &TestState)> {
        let not_found = || Error::not_found(ItemKind::Test, id.get());
        let row = slot(id.get())
            .and_then(|i| self.tests.get(i))
            .ok_or_else(not_found)?;
        let run = self.run_row(row.run_id).map_err(|_| not_found())?;
        let state = run.states.tests().get(row.at).ok_or_else(not_found)?;
        Ok((row, run, state))
    }

    /// Deletes a run: the machine forgets it, lookups skip it.
    pub(crate) fn delete_run(&mut self, id: RunId) -> Result<()> {
        let run = self.run_row_mut(id)?;
        run.states = RunStates::Finished {
            state: run.states.state(),
            scenarios: Vec::new(),
            tests: Vec::new(),
        };
        let machine_id = run.machine_id;
        self.deleted_runs.insert(id);
        let machine = self.machine_row_mut(machine_id)?;
        machine.runs.retain(|run| *run != id);
        machine.ongoing.remove(&id);
        Ok(())
    }

    /// Deletes a machine with its runs; its name is free again.
    pub(crate) fn delete_machine(&mut self, id: MachineId) -> Result<()> {
        let row = self.machine_row(id)?;
        let runs = row.runs.clone();
        let key = stpt_core::machine_key(&row.name);
        for run in runs {
            self.delete_run(run)?;
        }
        self.machine_by_key.remove(&key);
        self.deleted_machines.insert(id);
        self.events.retain(|(machine, _), _| *machine != id);
        self.flaky.retain(|(machine, _), _| *machine != id);
        Ok(())
    }

    /// Machine `id`'s turn.
    pub(crate) fn machine_turn(&self, id: MachineId) -> Result<Arc<tokio::sync::Mutex<()>>> {
        Ok(Arc::clone(&self.machine_row(id)?.turn))
    }

    /// The machine stored under the case-insensitive name key `key`, with its turn.
    pub(crate) fn machine_turn_by_key(
        &self,
        key: &str,
    ) -> Option<(MachineId, Arc<tokio::sync::Mutex<()>>)> {
        let id = *self.machine_by_key.get(key)?;
        Some((id, self.machine_turn(id).ok()?))
    }

    /// The machine that ran run `id`.
    pub(crate) fn run_machine(&self, id: RunId) -> Result<MachineId> {
        Ok(self.run_row(id)?.machine_id)
    }

    pub(crate) fn machine_record(&self, key: &str) -> Option<MachineRecord> {
        let id = *self.machine_by_key.get(key)?;
        let row = self.machine_row(id).ok()?;
        Some(MachineRecord {
            id,
            name: row.name.clone(),
            latest_run: row.runs.last().copied(),
            clock_offset: row.clock_offset,
            timezone: row.timezone,
        })
    }

    /// Sets or clears a machine's runner time zone.
    pub(crate) fn set_machine_timezone(
        &mut self,
        id: MachineId,
        timezone: Option<RunnerTimezone>,
    ) -> Result<()> {
        self.machine_row_mut(id)?.timezone = timezone;
        Ok(())
    }

    /// Sets a machine's own liveness thresholds.
    pub(crate) fn set_machine_timeouts(
        &mut self,
        id: MachineId,
        timeouts: MachineTimeouts,
    ) -> Result<()> {
        self.machine_row_mut(id)?.timeouts = timeouts;
        Ok(())
    }

    /// Sets or clears a machine's own retention policy.
    pub(crate) fn set_machine_retention(
        &mut self,
        id: MachineId,
        retention: Option<RetentionPolicy>,
    ) -> Result<()> {
        self.machine_row_mut(id)?.retention = retention;
        Ok(())
    }

    /// Marks a run kept or not.
    /// Deletes run `id` if retention may take it: finished, not kept, not the latest.
    pub(crate) fn prune_run(&mut self, id: RunId) -> Result<bool> {
        let run = self.run_row(id)?;
        let latest = self.machine_row(run.machine_id)?.runs.last() == Some(&id);
        if run.kept || latest || run.states.state().aggregate.status().is_ongoing() {
            return Ok(false);
        }
        self.delete_run(id).map(|()| true)
    }

    pub(crate) fn set_run_kept(&mut self, id: RunId, kept: bool) -> Result<()> {
        self.run_row_mut(id)?.kept = kept;
        Ok(())
    }

    pub(crate) fn ongoing_runs(&self, machine: MachineId) -> Vec<RunState> {
        let Ok(row) = self.machine_row(machine) else {
            return Vec::new();
        };
        row.ongoing
            .iter()
            .rev()
            .filter_map(|id| self.run_row(*id).ok())
            .map(|run| run.states.state())
            .collect()
    }

    pub(crate) fn scenario_states(&self, run: RunId) -> Result<Vec<ScenarioState>> {
        Ok(self.run_row(run)?.states.scenarios().to_vec())
    }

    pub(crate) fn scenario_state(&self, id: ScenarioId) -> Result<ScenarioState> {
        Ok(self.scenario(id)?.2)
    }

    pub(crate) fn recorded_event(
        &self,
        machine: MachineId,
        event_id: &str,
    ) -> Option<RecordedEvent> {
        self.events.get(&(machine, event_id.to_owned())).cloned()
    }

    /// A test of `machine` by id; `None` for another machine's test.
    pub(crate) fn machine_test(&self, machine: MachineId, id: TestId) -> Option<TestState> {
        let (_, run, test) = self.test(id).ok()?;
        (run.machine_id == machine).then(|| test.clone())
    }

    /// The first waiting test of this file in `run`; a finished run has none.
    pub(crate) fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        let index = self.run_row_mut(run)?.states.index_mut();
        Ok(index.and_then(|index| index.first_waiting_test(file_path, file_name)))
    }

    /// The running test of `run`; a finished run has none.
    pub(crate) fn running_test(&self, run: RunId) -> Result<Option<TestState>> {
        let index = self.run_row(run)?.states.index();
        Ok(index.and_then(RunIndex::running_test))
    }

    /// Applies a unit of work's changes. Everything is checked before anything is written,
    /// so a failing commit leaves the state as it was.
    pub(crate) fn apply(
        &mut self,
        machine: Option<&MachineRecord>,
        changes: Changes,
    ) -> Result<Committed> {
        // A unit on a machine that does not exist yet creates it, named as in its plan.
        let name = match (machine, &changes.new_run) {
            // Deleting a machine waits for its unit's turn, so no unit should see it go;
            // should one, nothing lands on the tombstone.
            (Some(machine), _) if self.deleted_machines.contains(&machine.id) => {
                return Err(Error::not_found(ItemKind::Machine, machine.id.get()));
            }
            (Some(machine), _) => machine.name.as_str(),
            (None, Some(new_run)) => new_run.plan.machine.as_str(),
            (None, None) => {
                return Err(Error::invariant("commit on a machine that does not exist"));
            }
        };
        if let Some(new_run) = &changes.new_run {
            if new_run.scenario_aggregates.len() != new_run.plan.scenarios.len() {
                return Err(Error::invariant(
                    "a new run's aggregates do not match its plan",
                ));
            }
        }
        // `RunIndex::apply` checks its work before writing it: a commit on one run (every
        // test event) needs no more; one on several checks them all before the first write.
        if changes.runs.len() > 1 {
            for work in &changes.runs {
                self.ongoing_index(work.run.id)?.check(work)?;
            }
        }
        for work in &changes.runs {
            let run = self.run_row_mut(work.run.id)?;
            if let Some(since) = work.closed.and_then(|closed| closed.silent_since) {
                run.went_silent_at = Some(since);
            }
            if !run.states.apply(work)? {
                let machine_id = run.machine_id;
                if let Ok(machine) = self.machine_row_mut(machine_id) {
                    machine.ongoing.remove(&work.run.id);
                }
            }
        }
        let machine_id = match machine {
            Some(machine) => machine.id,
            None => self.insert_machine(name),
        };
        let new_run = changes
            .new_run
            .map(|new_run| self.insert_run(machine_id, new_run));
        if let Some(row) = slot(machine_id.get()).and_then(|i| self.machines.get_mut(i)) {
            row.last_seen = Some(changes.seen_at);
            row.clock_offset = changes.clock_offset.or(row.clock_offset);
        }
        if let Some(record) = changes.record {
            self.events.insert(
                (machine_id, record.event_id),
                RecordedEvent {
                    receipt: record.receipt,
                    new_run: new_run.as_ref().map(|ids| ids.run_id),
                },
            );
        }
        Ok(Committed {
            machine_id,
            new_run,
        })
    }

    fn insert_machine(&mut self, name: &str) -> MachineId {
        let id = MachineId(next_id(self.machines.len()));
        self.machines.push(MachineRow {
            id,
            name: name.to_owned(),
            last_seen: None,
            clock_offset: None,
            timezone: None,
            timeouts: MachineTimeouts::default(),
            retention: None,
            runs: Vec::new(),
            ongoing: BTreeSet::new(),
            turn: Arc::default(),
        });
        self.machine_by_key.insert(stpt_core::machine_key(name), id);
        id
    }

    /// Stores a plan (its aggregates checked against it) under new ids, every test waiting.
    /// Each test's path and name move into its state: they are kept once.
    fn insert_run(&mut self, machine_id: MachineId, new_run: NewRun) -> PlannedIds {
        let run_id = RunId(next_id(self.runs.len()));
        let mut tests = Vec::with_capacity(new_run.plan.test_count());
        let master = self.stored_file(new_run.plan.master);
        let mut ids = PlannedIds {
            run_id,
            scenario_ids: Vec::with_capacity(new_run.plan.scenarios.len()),
            test_ids: Vec::with_capacity(new_run.plan.scenarios.len()),
        };
        let mut scenarios = Vec::with_capacity(new_run.plan.scenarios.len());
        let planned = new_run.plan.scenarios.into_iter();
        for (at, (scenario, aggregate)) in planned.zip(new_run.scenario_aggregates).enumerate() {
            let scenario_id = ScenarioId(next_id(self.scenarios.len()));
            let scenario_file = FileRef {
                file_path: scenario.file.file_path.clone(),
                file_name: scenario.file.file_name.clone(),
            };
            let file = self.stored_file(scenario.file);
            self.scenarios.push(ScenarioRow { run_id, at, file });
            scenarios.push(ScenarioState {
                id: scenario_id,
                aggregate,
            });
            let mut test_ids = Vec::with_capacity(scenario.tests.len());
            for test in scenario.tests {
                let id = TestId(next_id(self.tests.len()));
                let script = self.intern(test.script);
                let identity = TestIdentity::new(
                    scenario_file.clone(),
                    FileRef {
                        file_path: test.file_path.clone(),
                        file_name: test.file_name.clone(),
                    },
                );
                let key = identity.key();
                self.identities
                    .entry(key)
                    .or_insert_with(|| (identity, Vec::new()))
                    .1
                    .push(id);
                self.tests.push(TestRow {
                    run_id,
                    at: tests.len(),
                    key,
                    script,
                });
                tests.push(TestState {
                    id,
                    scenario_id,
                    file_path: test.file_path,
                    file_name: test.file_name,
                    status: Status::Waiting,
                    timestamp_start: None,
                    timestamp_stop: None,
                    failure: None,
                });
                test_ids.push(id);
            }
            ids.scenario_ids.push(scenario_id);
            ids.test_ids.push(test_ids);
        }
        let state = RunState {
            id: run_id,
            aggregate: new_run.aggregate,
        };
        let states = RunStates::new(RunIndex::new(state, scenarios, tests));
        let ongoing = states.index().is_some();
        self.runs.push(RunRow {
            id: run_id,
            machine_id,
            timestamp: new_run.timestamp,
            received_at: new_run.received_at,
            master,
            states,
            went_silent_at: None,
            kept: false,
        });
        if let Some(row) = slot(machine_id.get()).and_then(|i| self.machines.get_mut(i)) {
            row.runs.push(run_id);
            if ongoing {
                row.ongoing.insert(run_id);
            }
        }
        ids
    }

    fn intern(&mut self, script: Option<String>) -> Option<Arc<str>> {
        let script = script?;
        if let Some(known) = self.scripts.get(script.as_str()) {
            return Some(Arc::clone(known));
        }
        let shared: Arc<str> = Arc::from(script);
        self.scripts.insert(Arc::clone(&shared));
        Some(shared)
    }

    fn stored_file(&mut self, file: ScriptFile) -> StoredFile {
        StoredFile {
            file_path: file.file_path,
            file_name: file.file_name,
            script: self.intern(file.script),
        }
    }

    fn machine_summary(&self, row: &MachineRow) -> MachineSummary {
        let latest_run = row.runs.last().and_then(|&id| self.run_row(id).ok());
        MachineSummary {
            runner_timezone: row.timezone,
            timeouts: row.timeouts,
            retention: row.retention,
            ..MachineSummary::new(
                row.id,
                row.name.clone(),
                latest_run.map(|run| (run.id, run.states.state().aggregate.status())),
                row.last_seen,
                row.clock_offset,
            )
        }
    }

    pub(crate) fn machines(&self, page: PageRequest) -> Page<MachineSummary> {
        let items = self
            .machine_by_key
            .values()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(page.size() as usize)
            .filter_map(|id| self.machine_row(*id).ok())
            .map(|row| self.machine_summary(row))
            .collect();
        Page::new(items, page, self.machine_by_key.len() as u64)
    }

    pub(crate) fn machine(&self, id: MachineId) -> Result<MachineSummary> {
        Ok(self.machine_summary(self.machine_row(id)?))
    }

    fn run_summary(&self, run: &RunRow) -> RunSummary {
        RunSummary {
            kept: run.kept,
            ..RunSummary::new(
                run.id,
                run.machine_id,
                run.timestamp,
                run.received_at,
                &run.states.state().aggregate,
                run.states.scenarios().len(),
                run.went_silent_at,
            )
        }
    }

    pub(crate) fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
        let row = self.machine_row(machine)?;
        let items = row
            .runs
            .iter()
            .rev()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(page.size() as usize)
            .filter_map(|id| self.run_row(*id).ok())
            .map(|run| self.run_summary(run))
            .collect();
        Ok(Page::new(items, page, row.runs.len() as u64))
    }

    pub(crate) fn run_detail(&self, id: RunId) -> Result<RunDetail> {
        let run = self.run_row(id)?;
        let machine = self.machine_row(run.machine_id)?;
        // Tests in plan order come scenario by scenario.
        let mut tests = run.states.tests().iter().peekable();
        let scenarios = run
            .states
            .scenarios()
            .iter()
            .map(|scenario| {
                let (row, _, _) = self.scenario(scenario.id)?;
                let views =
                    std::iter::from_fn(|| tests.next_if(|test| test.scenario_id == scenario.id))
                        .map(|test| TestView {
                            id: test.id,
                            file: test_file(test),
                            status: test.status,
                            timestamp_start: test.timestamp_start,
                            timestamp_stop: test.timestamp_stop,
                        })
                        .collect();
                Ok(ScenarioView::new(
                    scenario.id,
                    row.file.file_ref(),
                    &scenario.aggregate,
                    views,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RunDetail {
            summary: self.run_summary(run),
            machine_name: machine.name.clone(),
            master: run.master.file_ref(),
            scenarios,
        })
    }

    pub(crate) fn record_finished(&mut self, samples: &[FinishedTest]) {
        for sample in samples {
            if let Some(millis) = sample.duration_sample() {
                if !self.durations.contains_key(&sample.file) {
                    self.durations
                        .insert(sample.file.clone(), FileDurations::default());
                }
                if let Some(histories) = self.durations.get_mut(&sample.file) {
                    histories.everywhere.push(millis);
                    histories
                        .by_machine
                        .entry(sample.machine_id)
                        .or_default()
                        .push(millis);
                }
            }
            // A test deleted meanwhile has no identity left to add to.
            let Ok((row, _, _)) = self.test(sample.test_id) else {
                continue;
            };
            let key = row.key;
            // A result without an outcome (unknown, cancelled) starts no window.
            if let Some(outcome) = Outcome::of(sample.status) {
                self.flaky
                    .entry((sample.machine_id, key))
                    .or_default()
                    .push(outcome);
            }
        }
    }

    pub(crate) fn remaining_work(&self, id: RunId) -> Result<RunRemaining> {
        let run = self.run_row(id)?;
        let mut work: Vec<RemainingWork> = Vec::new();
        let mut by_file: HashMap<FileRef, usize> = HashMap::new();
        for test in run.states.tests() {
            if !test.status.is_ongoing() {
                continue;
            }
            let file = FileRef {
                file_path: test.file_path.clone(),
                file_name: test.file_name.clone(),
            };
            let at = *by_file.entry(file.clone()).or_insert_with(|| {
                let histories = self.durations.get(&file);
                work.push(RemainingWork {
                    on_machine: histories
                        .and_then(|h| h.by_machine.get(&run.machine_id))
                        .cloned()
                        .unwrap_or_default(),
                    everywhere: histories.map(|h| h.everywhere.clone()).unwrap_or_default(),
                    file: file.clone(),
                    waiting: 0,
                    running: None,
                });
                work.len() - 1
            });
            match (test.status, test.timestamp_start) {
                (Status::Running, Some(started)) => work[at].running = Some((test.id, started)),
                (Status::Running, None) => {}
                _ => work[at].waiting += 1,
            }
        }
        Ok(RunRemaining {
            run: self.run_summary(run),
            work,
        })
    }

    pub(crate) fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        let mut failure = FailureDetails::default();
        let (run, file, script, status, start, stop) = match item {
            ItemRef::MasterScenario(id) => {
                let run = self
                    .run_row(id)
                    .map_err(|_| Error::not_found(item.kind(), item.raw_id()))?;
                let aggregate = run.states.state().aggregate;
                (
                    run,
                    run.master.file_ref(),
                    &run.master.script,
                    aggregate.status(),
                    aggregate.timestamp_start,
                    aggregate.timestamp_stop,
                )
            }
            ItemRef::Scenario(id) => {
                let (row, run, scenario) = self.scenario(id)?;
                let aggregate = scenario.aggregate;
                (
                    run,
                    row.file.file_ref(),
                    &row.file.script,
                    aggregate.status(),
                    aggregate.timestamp_start,
                    aggregate.timestamp_stop,
                )
            }
            ItemRef::Test(id) => {
                let (row, run, test) = self.test(id)?;
                failure = test.failure.as_deref().cloned().unwrap_or_default();
                (
                    run,
                    test_file(test),
                    &row.script,
                    test.status,
                    test.timestamp_start,
                    test.timestamp_stop,
                )
            }
        };
        Ok(ItemDetail {
            item,
            run_id: run.id,
            machine_id: run.machine_id,
            file,
            script: script.as_deref().map(str::to_owned),
            status,
            timestamp_start: start,
            timestamp_stop: stop,
            message: failure.message,
            details: failure.details,
        })
    }
}
