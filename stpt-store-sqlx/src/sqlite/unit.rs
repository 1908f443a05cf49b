//! Units of work on SQLite: reads from the machine's memory where it holds them, by query on
//! the writer connection where it does not; a plain event's writes go into the writer's
//! buffer, any other unit's into its savepoint (see [`super::writer`]).

use async_trait::async_trait;
use std::sync::Arc;
use stpt_core::rules::{RunState, RunWork, ScenarioState, TestState};
use stpt_core::{
    Changes, Committed, Durability, Error, MachineName, MachineRecord, RecordedEvent, Result,
    RunId, ScenarioId, StoreTx, TestId,
};

use super::writer::UnitGuard;
use super::{SqliteStore, SqliteTx, YEARS};
use crate::memory::MachineMemory;

impl SqliteStore {
    pub(crate) async fn begin_unit(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        let mut units = self.writer().await?.begin().await?;
        let key = machine.key();
        if units.units().memories.contains_key(&key) {
            // Remembered: nothing to read from the file.
            return Ok(Box::new(SqliteUnit {
                conn: None,
                units,
                key,
                used_memory: true,
                store: self.clone(),
            }));
        }
        let conn = units.connect(false).await?;
        let mut tx = self.read_machine(conn, key.clone()).await?;
        if let (Some(record), Some(version)) = (tx.machine.clone(), tx.version) {
            let memory = tx.load_memory(record, version).await?;
            units.units_mut().memories.insert(key.clone(), memory);
        }
        Ok(Box::new(SqliteUnit {
            conn: Some(tx),
            units,
            key,
            used_memory: false,
            store: self.clone(),
        }))
    }
}

/// A unit of work on one machine, holding the units lock (and the connection, once needed).
pub(crate) struct SqliteUnit {
    // Declared before `units`: the connection is let go first.
    conn: Option<SqliteTx>,
    units: UnitGuard,
    /// The machine's name key.
    key: String,
    /// Reads came from memory before the connection was taken.
    used_memory: bool,
    store: SqliteStore,
}

impl SqliteUnit {
    fn memory(&self) -> Option<&MachineMemory> {
        self.units.units().memories.get(&self.key)
    }

    /// The connection, for a read or write by query: taken (and made current) on first use.
    async fn sql(&mut self) -> Result<&mut SqliteTx> {
        if self.conn.is_none() {
            let conn = self.units.connect(self.used_memory).await?;
            let mut tx = self.store.read_machine(conn, self.key.clone()).await?;
            if let Some(memory) = self.units.units().memories.get(&self.key) {
                tx.machine = Some(memory.machine.clone());
            }
            self.conn = Some(tx);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::invariant("the writer connection was just taken"))
    }

    /// Writes `changes` and releases them; the memory follows. A plain test event on a
    /// remembered machine only adds its statements to the writer's buffer; anything else is
    /// written by query in the unit's savepoint. Answers when the changes are committed, or
    /// at once if `deferred`.
    async fn write(
        mut self: Box<Self>,
        changes: Changes,
        deferred: bool,
    ) -> Result<(Committed, Durability)> {
        // Out of the map until the write is in: should it fail, the machine is read again.
        let memory = self.units.units_mut().memories.remove(&self.key);
        let (seen_at, clock_offset) = (changes.seen_at, changes.clock_offset);
        let (committed, memory) = match (memory, plain_event(&changes).cloned()) {
            (Some(mut memory), Some(work)) => {
                crate::rows::check_years(&changes, YEARS)?;
                let machine_id = memory.machine.id;
                let committed = Committed {
                    machine_id,
                    new_run: None,
                };
                // The memory checks the work: every record it changes must be remembered.
                let version = memory.version + 1;
                if !memory.apply(changes, &committed, version) {
                    return Err(Error::invariant(
                        "an event changed a record its machine's memory does not hold",
                    ));
                }
                self.units
                    .buffer(machine_id.get(), seen_at, clock_offset, &work);
                (committed, Some(memory))
            }
            (memory, _) => {
                let tx = self.sql().await?;
                tx.tx.savepoint().await?;
                let (committed, version) = tx.write_changes(&changes).await?;
                let memory = MachineMemory::after_commit(memory, changes, &committed, version);
                (committed, memory)
            }
        };
        let released = self
            .units
            .release(self.conn.as_mut().map(|tx| &mut tx.tx), deferred)
            .await?;
        let written_identities = self
            .conn
            .as_mut()
            .map(|tx| std::mem::take(&mut tx.written_identities))
            .unwrap_or_default();
        let known_identities = Arc::clone(&self.store.known_identities);
        if let Some(memory) = memory {
            self.units
                .units_mut()
                .memories
                .insert(self.key.clone(), memory);
        }
        // Lets the next unit in.
        drop(self);
        if deferred {
            // Not learnt: whether the group commits is known only to the waiter.
            Ok((committed, released.durability()))
        } else {
            released.wait().await?;
            known_identities.learn(&written_identities);
            Ok((committed, Durability::done()))
        }
    }
}

/// The one run's work of a test event that neither closes a run's tests at once nor records
/// a client event id, nor carries a test's failure text: what goes into the writer's buffer.
fn plain_event(changes: &Changes) -> Option<&RunWork> {
    match (&changes.runs[..], &changes.new_run, &changes.record) {
        // A test's failure text is bound as a parameter, never written into the buffered SQL.
        ([work], None, None) if work.closed.is_none() && !crate::rows::carries_failure(work) => {
            Some(work)
        }
        _ => None,
    }
}

#[async_trait]
impl StoreTx for SqliteUnit {
    fn machine(&self) -> Option<&MachineRecord> {
        match (self.memory(), &self.conn) {
            (Some(memory), _) => Some(&memory.machine),
            (None, Some(tx)) => tx.machine.as_ref(),
            (None, None) => None,
        }
    }

    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        match self.memory() {
            Some(memory) => Ok(memory.ongoing_runs()),
            None => StoreTx::ongoing_runs(self.sql().await?).await,
        }
    }

    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        if let Some(run) = self.memory().and_then(|memory| memory.run(run)) {
            return Ok(run.scenarios().to_vec());
        }
        StoreTx::scenarios(self.sql().await?, run).await
    }

    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        if let Some(scenario) = self.memory().and_then(|memory| memory.scenario(id)) {
            return Ok(scenario);
        }
        StoreTx::scenario(self.sql().await?, id).await
    }

    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        if let Some(run) = self
            .units
            .units_mut()
            .memories
            .get_mut(&self.key)
            .and_then(|memory| memory.run_mut(run))
        {
            return Ok(run.first_waiting_test(file_path, file_name));
        }
        StoreTx::first_waiting_test(self.sql().await?, run, file_path, file_name).await
    }

    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        if let Some(run) = self.memory().and_then(|memory| memory.run(run)) {
            return Ok(run.running_test());
        }
        StoreTx::running_test(self.sql().await?, run).await
    }

    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        if let Some(test) = self.memory().and_then(|memory| memory.test(id)) {
            return Ok(Some(test));
        }
        StoreTx::test(self.sql().await?, id).await
    }

    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        StoreTx::recorded_event(self.sql().await?, event_id).await
    }

    async fn confirm(&mut self) -> Result<()> {
        if self.used_memory {
            // Taking the connection checks the file for other writers.
            self.sql().await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        Ok(self.write(changes, false).await?.0)
    }

    async fn commit_deferred(self: Box<Self>, changes: Changes) -> Result<(Committed, Durability)> {
        self.write(changes, true).await
    }
}
