//! Units of work on PostgreSQL, in one of three ways:
//!
//! - **remembered**: the store remembers the machine; the unit reads from memory and takes no
//!   database lock (optimistic, checked by the machine's version);
//! - **loading**: the unit locks the machine in the database, loads its ongoing runs into
//!   memory and reads from there;
//! - **direct**: another instance writes to the machine too, so loading its runs for each
//!   event would cost more than it saves: the unit locks the machine and reads by query.
//!
//! Whichever way, the machine's in-process lock keeps this store's units on one machine in
//! sequence.

use async_trait::async_trait;
use stpt_core::rules::{RunState, ScenarioState, TestState};
use stpt_core::{
    Changes, Committed, Error, MachineName, MachineRecord, RecordedEvent, Result, RunId,
    ScenarioId, StoreTx, TestId,
};
use tokio::sync::OwnedMutexGuard;

use super::memory::{MachineMemory, Slot};
use super::writer::FastWrite;
use super::{PgStore, PgTx, YEARS};
use crate::error::SqlxResultExt;

/// Locked units in a row that must find no other writer before a machine that another
/// instance wrote to is remembered again (so alternating instances stay direct).
const UNDISTURBED_BEFORE_REMEMBERING: u32 = 4;

impl PgStore {
    pub(crate) async fn begin_unit(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        let mut slot = self.memories.slot(machine.key()).lock_owned().await;
        if slot.memory.is_some() {
            return Ok(Box::new(PgUnit {
                store: self.clone(),
                name: machine.clone(),
                slot,
                mode: Mode::Remembered,
            }));
        }
        let mut tx = self.begin_tx(machine).await?;
        let mut direct = false;
        if let (Some(record), Some(version)) = (tx.machine.clone(), tx.version) {
            // Did anyone else write since this store's last commit on the machine?
            if slot.last_written.is_none_or(|ours| ours == version) {
                slot.undisturbed += 1;
            } else {
                slot.undisturbed = 0;
            }
            if slot.last_written.is_none() || slot.undisturbed >= UNDISTURBED_BEFORE_REMEMBERING {
                slot.memory = Some(tx.load_memory(record, version).await?);
            } else {
                direct = true;
            }
        }
        Ok(Box::new(PgUnit {
            store: self.clone(),
            name: machine.clone(),
            slot,
            mode: if direct {
                Mode::Direct(tx)
            } else {
                Mode::Loading(tx)
            },
        }))
    }
}

/// A unit of work on one machine.
struct PgUnit {
    store: PgStore,
    name: MachineName,
    /// What the store keeps of the machine (memory `None`: the machine does not exist, or
    /// the unit is direct), and the machine's in-process lock.
    slot: OwnedMutexGuard<Slot>,
    mode: Mode,
}

/// How a unit reads and writes: one of the three ways in the module docs.
enum Mode {
    /// From memory, without a database lock; the write checks the machine's version.
    Remembered,
    /// Under the machine's lock, in this transaction; reads from the memory loaded in it (or
    /// none, for a machine that does not exist yet).
    Loading(PgTx),
    /// Under the machine's lock, in this transaction, reading by query.
    Direct(PgTx),
}

impl Mode {
    /// The locked transaction, unless remembered.
    fn locked(&mut self) -> Option<&mut PgTx> {
        match self {
            Mode::Remembered => None,
            Mode::Loading(tx) | Mode::Direct(tx) => Some(tx),
        }
    }
}

impl PgUnit {
    /// The locked transaction, for a record that is not in memory. An optimistic unit cannot
    /// read outside memory without the lock: its memory goes and it reports itself stale.
    fn outside_memory(&mut self, what: &str) -> Result<&mut PgTx> {
        match self.mode.locked() {
            Some(tx) => Ok(tx),
            None => {
                self.slot.memory = None;
                Err(Error::Stale {
                    message: format!("{what} is not in this instance's memory"),
                })
            }
        }
    }

    /// The locked transaction of a direct unit.
    fn direct_tx(&mut self) -> Option<&mut PgTx> {
        match &mut self.mode {
            Mode::Direct(tx) => Some(tx),
            _ => None,
        }
    }

    fn forget(&mut self, message: impl Into<String>) -> Error {
        self.slot.memory = None;
        Error::Stale {
            message: message.into(),
        }
    }

    /// Writes `changes`: in the locked transaction; or, from `memory`, through the combined
    /// commit (a plain test event) or a transaction that first checks the machine's version.
    /// Answers what was assigned and the machine's new version.
    async fn write(
        &mut self,
        memory: Option<&MachineMemory>,
        changes: &Changes,
    ) -> Result<(Committed, i64)> {
        if let Mode::Loading(mut tx) | Mode::Direct(mut tx) =
            std::mem::replace(&mut self.mode, Mode::Remembered)
        {
            let written = tx.write_changes(changes).await?;
            tx.commit_unit().await?;
            return Ok(written);
        }
        let Some(memory) = memory else {
            return Err(self.forget("a unit without memory lost its lock"));
        };
        let (machine_id, version) = (memory.machine.id, memory.version);
        if let Some(work) = plain_event(changes) {
            crate::rows::check_years(changes, YEARS)?;
            self.store
                .writer
                .get_or_init(|| super::Writer::start(self.store.pool.clone()))
                .write(FastWrite {
                    machine_id: machine_id.get(),
                    version,
                    seen_at: changes.seen_at,
                    clock_offset: changes.clock_offset,
                    work: work.clone(),
                })
                .await?;
            let committed = Committed {
                machine_id,
                new_run: None,
            };
            return Ok((committed, version + 1));
        }
        let mut tx = self.store.begin_tx(&self.name).await?;
        if tx.machine.as_ref().map(|m| m.id) != Some(machine_id) || tx.version != Some(version) {
            return Err(self.forget(format!("machine {machine_id} changed since it was read")));
        }
        let written = tx.write_changes(changes).await?;
        tx.commit_unit().await?;
        Ok(written)
    }
}

/// The one run's work of a test event that neither closes a run's tests at once nor records
/// a client event id, nor carries a test's failure text: what the combined commit writes.
fn plain_event(changes: &Changes) -> Option<&stpt_core::rules::RunWork> {
    match (&changes.runs[..], &changes.new_run, &changes.record) {
        // The combined commit writes no failure text: a stop that carries some commits alone.
        ([work], None, None) if work.closed.is_none() && !crate::rows::carries_failure(work) => {
            Some(work)
        }
        _ => None,
    }
}

#[async_trait]
impl StoreTx for PgUnit {
    fn machine(&self) -> Option<&MachineRecord> {
        if let Mode::Direct(tx) = &self.mode {
            return tx.machine.as_ref();
        }
        self.slot.memory.as_ref().map(|memory| &memory.machine)
    }

    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        if let Some(tx) = self.direct_tx() {
            return StoreTx::ongoing_runs(tx).await;
        }
        Ok(self
            .slot
            .memory
            .as_ref()
            .map(MachineMemory::ongoing_runs)
            .unwrap_or_default())
    }

    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        if let Some(tx) = self.direct_tx() {
            return StoreTx::scenarios(tx, run).await;
        }
        if let Some(run) = self.slot.memory.as_ref().and_then(|memory| memory.run(run)) {
            return Ok(run.scenarios().to_vec());
        }
        let tx = self.outside_memory("a run that is not ongoing")?;
        StoreTx::scenarios(tx, run).await
    }

    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        if let Some(tx) = self.direct_tx() {
            return StoreTx::scenario(tx, id).await;
        }
        if let Some(scenario) = self
            .slot
            .memory
            .as_ref()
            .and_then(|memory| memory.scenario(id))
        {
            return Ok(scenario);
        }
        let tx = self.outside_memory("a scenario of a run that is not ongoing")?;
        StoreTx::scenario(tx, id).await
    }

    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        if let Some(tx) = self.direct_tx() {
            return StoreTx::first_waiting_test(tx, run, file_path, file_name).await;
        }
        if let Some(run) = self
            .slot
            .memory
            .as_mut()
            .and_then(|memory| memory.run_mut(run))
        {
            return Ok(run.first_waiting_test(file_path, file_name));
        }
        // Only an ongoing run has waiting tests.
        Ok(None)
    }

    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        if let Some(tx) = self.direct_tx() {
            return StoreTx::running_test(tx, run).await;
        }
        Ok(self
            .slot
            .memory
            .as_ref()
            .and_then(|memory| memory.run(run))
            .and_then(stpt_core::RunIndex::running_test))
    }

    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        if let Some(tx) = self.direct_tx() {
            return StoreTx::test(tx, id).await;
        }
        if let Some(test) = self.slot.memory.as_ref().and_then(|memory| memory.test(id)) {
            return Ok(Some(test));
        }
        if self.slot.memory.is_none() {
            return Ok(None);
        }
        let tx = self.outside_memory("a test of a run that is not ongoing")?;
        StoreTx::test(tx, id).await
    }

    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        if let Some(tx) = self.direct_tx() {
            return StoreTx::recorded_event(tx, event_id).await;
        }
        let Some(machine_id) = self.slot.memory.as_ref().map(|memory| memory.machine.id) else {
            return Ok(None);
        };
        let query = sqlx::query_as(&self.store.sql.recorded_event)
            .bind(machine_id.get())
            .bind(event_id);
        let row: Option<(Option<String>, Option<i64>)> = match self.mode.locked() {
            Some(tx) => query.fetch_optional(&mut *tx.tx).await,
            None => query.fetch_optional(&self.store.pool).await,
        }
        .db()?;
        Ok(row.map(|(receipt, new_run)| RecordedEvent {
            receipt,
            new_run: new_run.map(RunId),
        }))
    }

    async fn confirm(&mut self) -> Result<()> {
        if self.mode.locked().is_some() {
            return Ok(());
        }
        let Some((machine_id, version)) = self
            .slot
            .memory
            .as_ref()
            .map(|memory| (memory.machine.id, memory.version))
        else {
            return Ok(());
        };
        let stored: Option<i64> = sqlx::query_scalar(&self.store.sql.machine_version)
            .bind(machine_id.get())
            .fetch_optional(&self.store.pool)
            .await
            .db()?;
        if stored == Some(version) {
            Ok(())
        } else {
            Err(self.forget(format!("machine {machine_id} changed since it was read")))
        }
    }

    async fn commit(mut self: Box<Self>, changes: Changes) -> Result<Committed> {
        // Until the outcome is known the slot holds no memory: should this future be dropped
        // with a write in flight, the machine's next unit reads under the lock, and the
        // version tells whether the write landed.
        let memory = self.slot.memory.take();
        let direct = matches!(self.mode, Mode::Direct(_));
        let (committed, version) = self.write(memory.as_ref(), &changes).await?;
        self.slot.last_written = Some(version);
        if direct {
            return Ok(committed);
        }
        self.slot.memory = MachineMemory::after_commit(memory, changes, &committed, version);
        Ok(committed)
    }
}
