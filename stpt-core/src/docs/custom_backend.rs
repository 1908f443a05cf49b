// A complete storage backend in one file, built on `RunIndex`: the guide to writing your own.
// It is doc-tested in `stpt_core::Store`'s documentation and runs the whole conformance suite
// in the `stpt-examples` package. Swap the tables for your database's rows and keep the shape.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use stpt_core::{
    Changes, Committed, Error, FileRef, ItemDetail, ItemKind, ItemRef, MachineId, MachineName,
    MachineRecord, MachineSummary, Page, PageRequest, Plan, PlannedIds, RecordedEvent, Result,
    RunDetail, RunId, RunIndex, RunState, RunSummary, ScenarioId, ScenarioState, ScenarioView,
    ScriptFile, Store, StoreTx, TestId, TestState, TestView,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Runs kept in plain tables behind one lock. Every run keeps its plan (files and scripts)
/// and a [`RunIndex`] (the state of every scenario and test), so event lookups and reads are
/// both served from the index.
#[derive(Debug, Default)]
pub struct TableStore {
    tables: Arc<Mutex<Tables>>,
}

impl TableStore {
    /// An empty store.
    pub fn new() -> Self {
        TableStore::default()
    }
}

#[derive(Debug, Default)]
struct Tables {
    /// Machine `n` is at `n - 1`; likewise runs.
    machines: Vec<MachineRow>,
    runs: Vec<RunRow>,
    machine_by_key: HashMap<String, MachineId>,
    /// Where each item is: its run and plan position.
    scenario_at: HashMap<ScenarioId, (RunId, usize)>,
    test_at: HashMap<TestId, (RunId, usize, usize)>,
    events: HashMap<(MachineId, String), RecordedEvent>,
    next_scenario: i64,
    next_test: i64,
}

#[derive(Debug)]
struct MachineRow {
    record: MachineRecord,
    key: String,
    last_seen: Option<DateTime<Utc>>,
    /// In receipt order.
    runs: Vec<RunId>,
}

#[derive(Debug)]
struct RunRow {
    machine_id: MachineId,
    received_at: DateTime<Utc>,
    /// The plan's timestamp, read in the machine's runner time zone.
    timestamp: DateTime<Utc>,
    plan: Plan,
    index: RunIndex,
    went_silent_at: Option<DateTime<Utc>>,
}

/// Row `id` of a table whose ids count from 1.
fn slot(id: i64) -> Option<usize> {
    usize::try_from(id.checked_sub(1)?).ok()
}

/// The id of the next row of a table of `len` rows.
fn next_id(len: usize) -> i64 {
    i64::try_from(len).map_or(i64::MAX, |len| len + 1)
}

impl Tables {
    fn machine(&self, id: MachineId) -> Result<&MachineRow> {
        let row = slot(id.get()).and_then(|slot| self.machines.get(slot));
        row.ok_or(Error::not_found(ItemKind::Machine, id.get()))
    }

    fn run(&self, id: RunId) -> Result<&RunRow> {
        let row = slot(id.get()).and_then(|slot| self.runs.get(slot));
        row.ok_or(Error::not_found(ItemKind::Run, id.get()))
    }

    fn run_mut(&mut self, id: RunId) -> Result<&mut RunRow> {
        let row = slot(id.get()).and_then(|slot| self.runs.get_mut(slot));
        row.ok_or(Error::not_found(ItemKind::Run, id.get()))
    }

    fn summary(&self, id: RunId) -> Result<RunSummary> {
        let run = self.run(id)?;
        let state = run.index.state();
        Ok(RunSummary::new(
            id,
            run.machine_id,
            run.timestamp,
            run.received_at,
            &state.aggregate,
            run.plan.scenarios.len(),
            run.went_silent_at,
        ))
    }

    fn machine_summary(&self, row: &MachineRow) -> MachineSummary {
        let latest = row.record.latest_run.and_then(|id| {
            let status = self.run(id).ok()?.index.state().aggregate.status();
            Some((id, status))
        });
        let record = &row.record;
        MachineSummary::new(record.id, &record.name, latest, row.last_seen, record.clock_offset)
    }

    /// Stores a plan under new ids, every item waiting.
    fn insert_run(
        &mut self,
        machine_id: MachineId,
        new_run: stpt_core::NewRun,
    ) -> Result<PlannedIds> {
        let run_id = RunId(next_id(self.runs.len()));
        let mut ids = PlannedIds {
            run_id,
            scenario_ids: Vec::new(),
            test_ids: Vec::new(),
        };
        for (s, scenario) in new_run.plan.scenarios.iter().enumerate() {
            self.next_scenario += 1;
            let scenario_id = ScenarioId(self.next_scenario);
            ids.scenario_ids.push(scenario_id);
            self.scenario_at.insert(scenario_id, (run_id, s));
            let mut tests = Vec::with_capacity(scenario.tests.len());
            for t in 0..scenario.tests.len() {
                self.next_test += 1;
                tests.push(TestId(self.next_test));
                self.test_at.insert(TestId(self.next_test), (run_id, s, t));
            }
            ids.test_ids.push(tests);
        }
        let index = RunIndex::planned(&new_run, &ids)?;
        self.runs.push(RunRow {
            machine_id,
            received_at: new_run.received_at,
            timestamp: new_run.timestamp,
            plan: new_run.plan,
            index,
            went_silent_at: None,
        });
        Ok(ids)
    }
}

#[async_trait]
impl Store for TableStore {
    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        // One lock for every machine: units never interleave. A database would lock the
        // machine's row instead, so machines proceed in parallel.
        let tables = Arc::clone(&self.tables).lock_owned().await;
        let machine = tables
            .machine_by_key
            .get(&machine.key())
            .and_then(|&id| tables.machine(id).ok())
            .map(|row| row.record.clone());
        Ok(Box::new(TableTx { tables, machine }))
    }

    async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
        let tables = self.tables.lock().await;
        let mut rows: Vec<&MachineRow> = tables.machines.iter().collect();
        rows.sort_by(|a, b| (&a.key, a.record.id).cmp(&(&b.key, b.record.id)));
        let items = rows
            .iter()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(page.size() as usize)
            .map(|row| tables.machine_summary(row))
            .collect();
        Ok(Page::new(items, page, rows.len() as u64))
    }

    async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
        let tables = self.tables.lock().await;
        Ok(tables.machine_summary(tables.machine(id)?))
    }

    async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
        let tables = self.tables.lock().await;
        let row = tables.machine(machine)?;
        let items = row
            .runs
            .iter()
            .rev()
            .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
            .take(page.size() as usize)
            .map(|&id| tables.summary(id))
            .collect::<Result<_>>()?;
        Ok(Page::new(items, page, row.runs.len() as u64))
    }

    async fn run(&self, id: RunId) -> Result<RunDetail> {
        let tables = self.tables.lock().await;
        let run = tables.run(id)?;
        let mut tests = run.index.tests().iter();
        let scenarios = run
            .plan
            .scenarios
            .iter()
            .zip(run.index.scenarios())
            .map(|(planned, state)| {
                let views = planned
                    .tests
                    .iter()
                    .zip(tests.by_ref())
                    .map(|(file, test)| TestView {
                        id: test.id,
                        file: file_ref(file),
                        status: test.status,
                        timestamp_start: test.timestamp_start,
                        timestamp_stop: test.timestamp_stop,
                    })
                    .collect();
                ScenarioView::new(state.id, file_ref(&planned.file), &state.aggregate, views)
            })
            .collect();
        Ok(RunDetail {
            summary: tables.summary(id)?,
            machine_name: tables.machine(run.machine_id)?.record.name.clone(),
            master: file_ref(&run.plan.master),
            scenarios,
        })
    }

    async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        let tables = self.tables.lock().await;
        let not_found = || Error::not_found(item.kind(), item.raw_id());
        let (run_id, place) = match item {
            ItemRef::MasterScenario(id) => (id, None),
            ItemRef::Scenario(id) => {
                let &(run, s) = tables.scenario_at.get(&id).ok_or_else(not_found)?;
                (run, Some((s, None)))
            }
            ItemRef::Test(id) => {
                let &(run, s, t) = tables.test_at.get(&id).ok_or_else(not_found)?;
                (run, Some((s, Some((id, t)))))
            }
        };
        let run = tables.run(run_id).map_err(|_| not_found())?;
        let planned = |s: usize| run.plan.scenarios.get(s).ok_or_else(not_found);
        let (file, aggregate_or_test) = match place {
            None => (&run.plan.master, Err(run.index.state().aggregate)),
            Some((s, None)) => {
                let state = run.index.scenarios().get(s).ok_or_else(not_found)?;
                (&planned(s)?.file, Err(state.aggregate))
            }
            Some((s, Some((id, t)))) => {
                let test = run.index.test(id).ok_or_else(not_found)?;
                (planned(s)?.tests.get(t).ok_or_else(not_found)?, Ok(test))
            }
        };
        let (status, timestamp_start, timestamp_stop, failure) = match aggregate_or_test {
            // The index keeps what each test's stop said about how it ended.
            Ok(test) => (
                test.status,
                test.timestamp_start,
                test.timestamp_stop,
                test.failure.map(|failure| *failure).unwrap_or_default(),
            ),
            Err(aggregate) => (
                aggregate.status(),
                aggregate.timestamp_start,
                aggregate.timestamp_stop,
                Default::default(),
            ),
        };
        Ok(ItemDetail {
            item,
            run_id,
            machine_id: run.machine_id,
            file: file_ref(file),
            script: file.script.clone(),
            status,
            timestamp_start,
            timestamp_stop,
            message: failure.message,
            details: failure.details,
        })
    }
}

fn file_ref(file: &ScriptFile) -> FileRef {
    FileRef {
        file_path: file.file_path.clone(),
        file_name: file.file_name.clone(),
    }
}

/// A unit of work: holds the lock until committed or dropped, and writes only in `commit`, so
/// dropping it needs no rollback.
struct TableTx {
    tables: OwnedMutexGuard<Tables>,
    machine: Option<MachineRecord>,
}

impl TableTx {
    /// A run of this unit's machine.
    fn own_run(&mut self, id: RunId) -> Result<&mut RunRow> {
        let machine = self.machine.as_ref().map(|m| m.id);
        let run = self.tables.run_mut(id)?;
        match machine {
            Some(machine) if run.machine_id == machine => Ok(run),
            _ => Err(Error::not_found(ItemKind::Run, id.get())),
        }
    }
}

#[async_trait]
impl StoreTx for TableTx {
    fn machine(&self) -> Option<&MachineRecord> {
        self.machine.as_ref()
    }

    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        let Some(machine) = &self.machine else {
            return Ok(Vec::new());
        };
        let row = self.tables.machine(machine.id)?;
        Ok(row
            .runs
            .iter()
            .rev()
            .filter_map(|&id| self.tables.run(id).ok())
            .map(|run| run.index.state())
            .filter(|state| state.aggregate.status().is_ongoing())
            .collect())
    }

    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        Ok(self.own_run(run)?.index.scenarios().to_vec())
    }

    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        let not_found = || Error::not_found(ItemKind::Scenario, id.get());
        let &(run, _) = self.tables.scenario_at.get(&id).ok_or_else(not_found)?;
        self.own_run(run)?.index.scenario(id).ok_or_else(not_found)
    }

    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        Ok(self
            .own_run(run)?
            .index
            .first_waiting_test(file_path, file_name))
    }

    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        Ok(self.own_run(run)?.index.running_test())
    }

    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        let Some(&(run, _, _)) = self.tables.test_at.get(&id) else {
            return Ok(None);
        };
        Ok(self.own_run(run).ok().and_then(|run| run.index.test(id)))
    }

    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        let Some(machine) = &self.machine else {
            return Ok(None);
        };
        Ok(self
            .tables
            .events
            .get(&(machine.id, event_id.to_owned()))
            .cloned())
    }

    async fn confirm(&mut self) -> Result<()> {
        Ok(()) // Read under the lock: always current.
    }

    async fn commit(mut self: Box<Self>, changes: Changes) -> Result<Committed> {
        // Check everything first, so a failing commit writes nothing.
        for work in &changes.runs {
            self.own_run(work.run.id)?.index.check(work)?;
        }
        let tables = &mut *self.tables;
        let machine_id = match (&self.machine, &changes.new_run) {
            (Some(machine), _) => machine.id,
            (None, Some(new_run)) => {
                let id = MachineId(next_id(tables.machines.len()));
                let name = new_run.plan.machine.as_str().to_owned();
                let key = new_run.plan.machine.key();
                tables.machine_by_key.insert(key.clone(), id);
                let record = MachineRecord {
                    id,
                    name,
                    latest_run: None,
                    clock_offset: None,
                    timezone: None,
                };
                tables.machines.push(MachineRow {
                    record,
                    key,
                    last_seen: None,
                    runs: Vec::new(),
                });
                id
            }
            (None, None) => {
                return Err(Error::invariant("commit on a machine that does not exist"));
            }
        };
        for work in &changes.runs {
            let run = tables.run_mut(work.run.id)?;
            run.index.apply(work)?;
            if let Some(since) = work.closed.and_then(|closed| closed.silent_since) {
                run.went_silent_at = Some(since);
            }
        }
        let new_run = match changes.new_run {
            Some(new_run) => Some(tables.insert_run(machine_id, new_run)?),
            None => None,
        };
        let row = slot(machine_id.get()).and_then(|slot| tables.machines.get_mut(slot));
        let row = row.ok_or(Error::not_found(ItemKind::Machine, machine_id.get()))?;
        row.last_seen = Some(changes.seen_at);
        row.record.clock_offset = changes.clock_offset.or(row.record.clock_offset);
        if let Some(ids) = &new_run {
            row.runs.push(ids.run_id);
            row.record.latest_run = Some(ids.run_id);
        }
        if let Some(record) = changes.record {
            let recorded = RecordedEvent {
                receipt: record.receipt,
                new_run: new_run.as_ref().map(|ids| ids.run_id),
            };
            tables
                .events
                .insert((machine_id, record.event_id), recorded);
        }
        Ok(Committed {
            machine_id,
            new_run,
        })
    }
}
