//! Units of work on SQLite: reads from the machine's memory where it holds them, by query
//! (under the writer, so always current) where it does not; writes in the unit's savepoint,
//! committed with the writer's group.

use async_trait::async_trait;
use stpt_core::rules::{RunState, ScenarioState, TestState};
use stpt_core::{
    Changes, Committed, Durability, MachineName, MachineRecord, RecordedEvent, Result, RunId,
    ScenarioId, StoreTx, TestId,
};

use super::{SqliteStore, SqliteTx};
use crate::memory::MachineMemory;

impl SqliteStore {
    pub(crate) async fn begin_unit(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        let mut tx = self.begin_plain(machine).await?;
        if !tx.tx.state().memories.contains_key(&tx.key) {
            if let (Some(record), Some(version)) = (tx.machine.clone(), tx.version) {
                let memory = tx.load_memory(record, version).await?;
                let key = tx.key.clone();
                tx.tx.state().memories.insert(key, memory);
            }
        }
        Ok(Box::new(SqliteUnit { tx }))
    }
}

/// A unit of work on one machine, holding the store's writer.
struct SqliteUnit {
    tx: SqliteTx,
}

impl SqliteUnit {
    fn memory(&self) -> Option<&MachineMemory> {
        self.tx.tx.state_ref().memories.get(&self.tx.key)
    }

    fn memory_mut(&mut self) -> Option<&mut MachineMemory> {
        self.tx.tx.state().memories.get_mut(&self.tx.key)
    }

    /// Writes `changes` in the unit's savepoint and releases them into the group; the memory
    /// follows. Answers when the group is committed, or at once if `deferred`.
    async fn write(
        mut self: Box<Self>,
        changes: Changes,
        deferred: bool,
    ) -> Result<(Committed, Durability)> {
        // Out of the map until the write is in: should it fail, the machine is read again.
        let memory = self.tx.tx.state().memories.remove(&self.tx.key);
        self.tx.tx.savepoint().await?;
        let (committed, version) = self.tx.write_changes(&changes).await?;
        let released = self.tx.tx.release(deferred).await?;
        let mut memory = memory.unwrap_or_else(|| {
            // The plan that created the machine.
            let name = changes
                .new_run
                .as_ref()
                .map_or_else(String::new, |run| run.plan.machine.as_str().to_owned());
            MachineMemory::new(
                MachineRecord {
                    id: committed.machine_id,
                    name,
                    latest_run: None,
                },
                version,
                Vec::new(),
            )
        });
        if memory.apply(changes, &committed, version) {
            let key = self.tx.key.clone();
            self.tx.tx.state().memories.insert(key, memory);
        }
        // Frees the writer for the next unit.
        drop(self);
        if deferred {
            Ok((committed, released.durability()))
        } else {
            released.wait().await?;
            Ok((committed, Durability::done()))
        }
    }
}

#[async_trait]
impl StoreTx for SqliteUnit {
    fn machine(&self) -> Option<&MachineRecord> {
        match self.memory() {
            Some(memory) => Some(&memory.machine),
            None => self.tx.machine.as_ref(),
        }
    }

    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        match self.memory() {
            Some(memory) => Ok(memory.ongoing_runs()),
            None => StoreTx::ongoing_runs(&mut self.tx).await,
        }
    }

    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        if let Some(run) = self.memory().and_then(|memory| memory.run(run)) {
            return Ok(run.scenarios().to_vec());
        }
        StoreTx::scenarios(&mut self.tx, run).await
    }

    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        if let Some(scenario) = self.memory().and_then(|memory| memory.scenario(id)) {
            return Ok(scenario);
        }
        StoreTx::scenario(&mut self.tx, id).await
    }

    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        if let Some(run) = self.memory_mut().and_then(|memory| memory.run_mut(run)) {
            return Ok(run.first_waiting_test(file_path, file_name));
        }
        StoreTx::first_waiting_test(&mut self.tx, run, file_path, file_name).await
    }

    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        if let Some(run) = self.memory().and_then(|memory| memory.run(run)) {
            return Ok(run.running_test());
        }
        StoreTx::running_test(&mut self.tx, run).await
    }

    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        if let Some(test) = self.memory().and_then(|memory| memory.test(id)) {
            return Ok(Some(test));
        }
        StoreTx::test(&mut self.tx, id).await
    }

    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        StoreTx::recorded_event(&mut self.tx, event_id).await
    }

    async fn confirm(&mut self) -> Result<()> {
        // Read under the writer, with the memory checked at the group's start: current.
        Ok(())
    }

    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        Ok(self.write(changes, false).await?.0)
    }

    async fn commit_deferred(self: Box<Self>, changes: Changes) -> Result<(Committed, Durability)> {
        self.write(changes, true).await
    }
}
