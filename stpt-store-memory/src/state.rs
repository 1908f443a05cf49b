//! The in-memory tables and their indexes.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use stpt_core::rules::{Aggregate, RunState, RunWork, ScenarioState, TestState};
use stpt_core::{
    Changes, Committed, Error, FileRef, ItemDetail, ItemKind, ItemRef, MachineId, MachineRecord,
    MachineSummary, NewRun, Page, PageRequest, PlannedIds, RecordedEvent, Result, RunDetail, RunId,
    RunSummary, ScenarioId, ScenarioView, ScriptFile, Status, TestId, TestView,
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
    /// (their test-name indexes are freed) and every lookup skips them.
    deleted_runs: HashSet<RunId>,
    deleted_machines: HashSet<MachineId>,
}

#[derive(Debug)]
struct MachineRow {
    id: MachineId,
    name: String,
    last_seen: Option<DateTime<Utc>>,
    /// In receipt order; the last one is the latest run.
    runs: Vec<RunId>,
    ongoing: BTreeSet<RunId>,
}

#[derive(Debug)]
struct RunRow {
    id: RunId,
    machine_id: MachineId,
    timestamp: DateTime<Utc>,
    received_at: DateTime<Utc>,
    master: StoredFile,
    aggregate: Aggregate,
    scenarios: Vec<ScenarioId>,
    running: Option<TestId>,
    /// Tests by (path, name) in plan order; dropped once the run is finished.
    tests_by_name: HashMap<(String, String), NameQueue>,
}

/// The tests of one (path, name) in plan order. Tests never return to `waiting`, so those
/// before `next` are known not to wait: a file listed many times is still found in O(1).
#[derive(Debug, Default)]
struct NameQueue {
    ids: Vec<TestId>,
    next: usize,
}

#[derive(Debug)]
struct ScenarioRow {
    id: ScenarioId,
    run_id: RunId,
    file: StoredFile,
    aggregate: Aggregate,
    tests: Vec<TestId>,
}

#[derive(Debug)]
struct TestRow {
    id: TestId,
    run_id: RunId,
    scenario_id: ScenarioId,
    file: StoredFile,
    status: Status,
    timestamp_start: Option<DateTime<Utc>>,
    timestamp_stop: Option<DateTime<Utc>>,
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

    fn scenario_row(&self, id: ScenarioId) -> Result<&ScenarioRow> {
        slot(id.get())
            .and_then(|i| self.scenarios.get(i))
            .filter(|row| !self.deleted_runs.contains(&row.run_id))
            .ok_or_else(|| Error::not_found(ItemKind::Scenario, id.get()))
    }

    fn test_row(&self, id: TestId) -> Result<&TestRow> {
        slot(id.get())
            .and_then(|i| self.tests.get(i))
            .filter(|row| !self.deleted_runs.contains(&row.run_id))
            .ok_or_else(|| Error::not_found(ItemKind::Test, id.get()))
    }

    /// Deletes a run: the machine forgets it, lookups skip it.
    pub(crate) fn delete_run(&mut self, id: RunId) -> Result<()> {
        let run = self.run_row_mut(id)?;
        run.tests_by_name = HashMap::new();
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
        Ok(())
    }

    pub(crate) fn machine_record(&self, key: &str) -> Option<MachineRecord> {
        let id = *self.machine_by_key.get(key)?;
        let row = self.machine_row(id).ok()?;
        Some(MachineRecord {
            id,
            name: row.name.clone(),
            latest_run: row.runs.last().copied(),
        })
    }

    pub(crate) fn ongoing_runs(&self, machine: MachineId) -> Vec<RunState> {
        let Ok(row) = self.machine_row(machine) else {
            return Vec::new();
        };
        row.ongoing
            .iter()
            .rev()
            .filter_map(|id| self.run_row(*id).ok())
            .map(|run| RunState {
                id: run.id,
                aggregate: run.aggregate,
            })
            .collect()
    }

    pub(crate) fn scenario_states(&self, run: RunId) -> Result<Vec<ScenarioState>> {
        self.run_row(run)?
            .scenarios
            .iter()
            .map(|id| self.scenario_state(*id))
            .collect()
    }

    pub(crate) fn scenario_state(&self, id: ScenarioId) -> Result<ScenarioState> {
        let row = self.scenario_row(id)?;
        Ok(ScenarioState {
            id,
            aggregate: row.aggregate,
        })
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
        let run = self.run_row(self.test_row(id).ok()?.run_id).ok()?;
        (run.machine_id == machine).then(|| self.test_state(id).ok())?
    }

    fn test_state(&self, id: TestId) -> Result<TestState> {
        let row = self.test_row(id)?;
        Ok(TestState {
            id,
            scenario_id: row.scenario_id,
            file_path: row.file.file_path.clone(),
            file_name: row.file.file_name.clone(),
            status: row.status,
            timestamp_start: row.timestamp_start,
            timestamp_stop: row.timestamp_stop,
        })
    }

    pub(crate) fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        let key = (file_path.to_owned(), file_name.to_owned());
        let run = slot(run.get())
            .and_then(|i| self.runs.get_mut(i))
            .ok_or_else(|| Error::not_found(ItemKind::Run, run.get()))?;
        let Some(queue) = run.tests_by_name.get_mut(&key) else {
            return Ok(None);
        };
        while let Some(id) = queue.ids.get(queue.next).copied() {
            let waiting = slot(id.get())
                .and_then(|i| self.tests.get(i))
                .is_some_and(|test| test.status == Status::Waiting);
            if waiting {
                return self.test_state(id).map(Some);
            }
            queue.next += 1;
        }
        Ok(None)
    }

    pub(crate) fn running_test(&self, run: RunId) -> Result<Option<TestState>> {
        match self.run_row(run)?.running {
            Some(id) => self.test_state(id).map(Some),
            None => Ok(None),
        }
    }

    /// Applies a unit of work's changes. Every id is checked before anything is written, so a
    /// failing commit leaves the state as it was.
    pub(crate) fn apply(
        &mut self,
        machine: Option<&MachineRecord>,
        changes: Changes,
    ) -> Result<Committed> {
        self.check(&changes)?;
        let machine_id = match (machine, &changes.new_run) {
            (Some(machine), _) => machine.id,
            (None, Some(new_run)) => self.insert_machine(new_run.plan.machine.as_str()),
            (None, None) => {
                return Err(Error::invariant("commit on a machine that does not exist"));
            }
        };
        for work in &changes.runs {
            self.apply_work(machine_id, work)?;
        }
        let new_run = changes
            .new_run
            .map(|new_run| self.insert_run(machine_id, new_run));
        if let Some(row) = slot(machine_id.get()).and_then(|i| self.machines.get_mut(i)) {
            row.last_seen = Some(changes.seen_at);
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

    fn check(&self, changes: &Changes) -> Result<()> {
        for work in &changes.runs {
            self.run_row(work.run.id)?;
            for scenario in &work.scenarios {
                self.scenario_row(scenario.id)?;
            }
            for test in &work.tests {
                self.test_row(test.id)?;
            }
        }
        Ok(())
    }

    fn insert_machine(&mut self, name: &str) -> MachineId {
        let id = MachineId(next_id(self.machines.len()));
        self.machines.push(MachineRow {
            id,
            name: name.to_owned(),
            last_seen: None,
            runs: Vec::new(),
            ongoing: BTreeSet::new(),
        });
        self.machine_by_key.insert(stpt_core::machine_key(name), id);
        id
    }

    fn apply_work(&mut self, machine_id: MachineId, work: &RunWork) -> Result<()> {
        if let Some(closed) = work.closed {
            let test_ids: Vec<TestId> = self
                .run_row(work.run.id)?
                .scenarios
                .iter()
                .filter_map(|id| self.scenario_row(*id).ok())
                .flat_map(|s| s.tests.iter().copied())
                .collect();
            for id in test_ids {
                if let Some(row) = slot(id.get()).and_then(|i| self.tests.get_mut(i)) {
                    (row.status, row.timestamp_stop) = closed.apply(row.status, row.timestamp_stop);
                }
            }
            self.run_row_mut(work.run.id)?.running = None;
        }
        for test in &work.tests {
            if let Some(row) = slot(test.id.get()).and_then(|i| self.tests.get_mut(i)) {
                row.status = test.status;
                row.timestamp_start = test.timestamp_start;
                row.timestamp_stop = test.timestamp_stop;
            }
            let run = self.run_row_mut(work.run.id)?;
            if test.status == Status::Running {
                run.running = Some(test.id);
            } else if run.running == Some(test.id) {
                run.running = None;
            }
        }
        for scenario in &work.scenarios {
            if let Some(row) = slot(scenario.id.get()).and_then(|i| self.scenarios.get_mut(i)) {
                row.aggregate = scenario.aggregate;
            }
        }
        let run = self.run_row_mut(work.run.id)?;
        run.aggregate = work.run.aggregate;
        let finished = run.aggregate.status().is_finished();
        if finished {
            run.tests_by_name = HashMap::new();
            run.running = None;
            if let Some(row) = slot(machine_id.get()).and_then(|i| self.machines.get_mut(i)) {
                row.ongoing.remove(&work.run.id);
            }
        }
        Ok(())
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

    fn insert_run(&mut self, machine_id: MachineId, new_run: NewRun) -> PlannedIds {
        let run_id = RunId(next_id(self.runs.len()));
        let master = self.stored_file(new_run.plan.master);
        let mut scenario_ids = Vec::with_capacity(new_run.plan.scenarios.len());
        let mut test_ids = Vec::with_capacity(new_run.plan.scenarios.len());
        let mut tests_by_name: HashMap<(String, String), NameQueue> = HashMap::new();
        for (scenario, aggregate) in new_run
            .plan
            .scenarios
            .into_iter()
            .zip(new_run.scenario_aggregates)
        {
            let scenario_id = ScenarioId(next_id(self.scenarios.len()));
            let mut ids = Vec::with_capacity(scenario.tests.len());
            for test in scenario.tests {
                let id = TestId(next_id(self.tests.len()));
                tests_by_name
                    .entry((test.file_path.clone(), test.file_name.clone()))
                    .or_default()
                    .ids
                    .push(id);
                let file = self.stored_file(test);
                self.tests.push(TestRow {
                    id,
                    run_id,
                    scenario_id,
                    file,
                    status: Status::Waiting,
                    timestamp_start: None,
                    timestamp_stop: None,
                });
                ids.push(id);
            }
            let file = self.stored_file(scenario.file);
            self.scenarios.push(ScenarioRow {
                id: scenario_id,
                run_id,
                file,
                aggregate,
                tests: ids.clone(),
            });
            scenario_ids.push(scenario_id);
            test_ids.push(ids);
        }
        let ongoing = new_run.aggregate.status().is_ongoing();
        self.runs.push(RunRow {
            id: run_id,
            machine_id,
            timestamp: new_run.plan.timestamp,
            received_at: new_run.received_at,
            master,
            aggregate: new_run.aggregate,
            scenarios: scenario_ids.clone(),
            running: None,
            tests_by_name: if ongoing {
                tests_by_name
            } else {
                HashMap::new()
            },
        });
        if let Some(row) = slot(machine_id.get()).and_then(|i| self.machines.get_mut(i)) {
            row.runs.push(run_id);
            if ongoing {
                row.ongoing.insert(run_id);
            }
        }
        PlannedIds {
            run_id,
            scenario_ids,
            test_ids,
        }
    }

    fn machine_summary(&self, row: &MachineRow) -> MachineSummary {
        let latest_run = row.runs.last().and_then(|&id| self.run_row(id).ok());
        MachineSummary::new(
            row.id,
            row.name.clone(),
            latest_run.map(|run| (run.id, run.aggregate.status())),
            row.last_seen,
        )
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
        RunSummary::new(
            run.id,
            run.machine_id,
            run.timestamp,
            run.received_at,
            &run.aggregate,
            run.scenarios.len(),
        )
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
        let scenarios = run
            .scenarios
            .iter()
            .map(|id| {
                let scenario = self.scenario_row(*id)?;
                let tests = scenario
                    .tests
                    .iter()
                    .map(|id| {
                        let test = self.test_row(*id)?;
                        Ok(TestView {
                            id: test.id,
                            file: test.file.file_ref(),
                            status: test.status,
                            timestamp_start: test.timestamp_start,
                            timestamp_stop: test.timestamp_stop,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ScenarioView::new(
                    scenario.id,
                    scenario.file.file_ref(),
                    &scenario.aggregate,
                    tests,
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

    pub(crate) fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        let not_found = || Error::not_found(item.kind(), item.raw_id());
        let (run_id, file, status, start, stop) = match item {
            ItemRef::MasterScenario(id) => {
                let run = self.run_row(id).map_err(|_| not_found())?;
                (
                    run.id,
                    &run.master,
                    run.aggregate.status(),
                    run.aggregate.timestamp_start,
                    run.aggregate.timestamp_stop,
                )
            }
            ItemRef::Scenario(id) => {
                let scenario = self.scenario_row(id)?;
                (
                    scenario.run_id,
                    &scenario.file,
                    scenario.aggregate.status(),
                    scenario.aggregate.timestamp_start,
                    scenario.aggregate.timestamp_stop,
                )
            }
            ItemRef::Test(id) => {
                let test = self.test_row(id)?;
                (
                    test.run_id,
                    &test.file,
                    test.status,
                    test.timestamp_start,
                    test.timestamp_stop,
                )
            }
        };
        Ok(ItemDetail {
            item,
            run_id,
            machine_id: self.run_row(run_id)?.machine_id,
            file: file.file_ref(),
            script: file.script.as_deref().map(str::to_owned),
            status,
            timestamp_start: start,
            timestamp_stop: stop,
        })
    }
}
