#![doc = include_str!("../README.md")]
//!
//! ## Features
//!
//! `accounts` (on by default): `MemoryStore` is also a `stpt_core::accounts::AccountStore`
//! (users, sessions, runner tokens). It turns on stpt-core's `accounts`, which brings argon2;
//! `default-features = false` leaves both out.

#[cfg(feature = "accounts")]
mod accounts;
mod state;

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use stpt_core::history::{
    FlakyTest, HistoryQuery, MatrixEntry, RunListing, RunSearch, TestFlakiness, TestHistory,
    TestKey, TestListing, TextFilter,
};
use stpt_core::rules::{RunState, ScenarioState, TestState};
use stpt_core::{
    Changes, Committed, FileRef, FinishedTest, ItemDetail, ItemRef, MachineId, MachineName,
    MachineRecord, MachineSummary, MachineTimeouts, Page, PageRequest, RecordedEvent, Result,
    RetentionPolicy, RunDetail, RunId, RunRemaining, RunSummary, RunnerTimezone, ScenarioId, Store,
    StoreTx, TestId,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use state::State;

/// Finished tests added to the histories under one hold of the store's lock: a flush of many
/// lets units in between.
const FINISHED_PER_HOLD: usize = 1024;

/// A [`Store`] that keeps everything in memory.
#[cfg_attr(
    feature = "accounts",
    doc = "",
    doc = "With the `accounts` feature (on by default) it is also the",
    doc = "[`AccountStore`](stpt_core::accounts::AccountStore) of users, sessions and runner tokens."
)]
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// A blocking lock, held only for one synchronous read or write (never across an
    /// `await`): units of work on different machines run side by side and meet here only
    /// briefly, without queueing as tasks.
    state: Arc<RwLock<State>>,
    /// The turn units on machines not stored yet take; each stored machine has its own.
    new_machines: Arc<Mutex<()>>,
    #[cfg(feature = "accounts")]
    accounts: Mutex<accounts::AccountTables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        read(&self.state)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        write(&self.state)
    }

    /// Waits for machine `id`'s turn, as a unit on it would: deleting its runs while a unit
    /// on it is open would leave the unit's reads stale.
    async fn machine_turn(&self, id: MachineId) -> Result<OwnedMutexGuard<()>> {
        let turn = self.read().machine_turn(id)?;
        Ok(turn.lock_owned().await)
    }

    /// Waits for the turn of the machine that ran run `id`.
    async fn run_turn(&self, id: RunId) -> Result<OwnedMutexGuard<()>> {
        let machine = self.read().run_machine(id)?;
        self.machine_turn(machine).await
    }
}

// `State::apply` checks a commit in full before it writes, so only a bug panics under the
// lock; the state then stays readable instead of every later call panicking too.
fn read(state: &RwLock<State>) -> RwLockReadGuard<'_, State> {
    state.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(state: &RwLock<State>) -> RwLockWriteGuard<'_, State> {
    state.write().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Store for MemoryStore {
    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        let key = machine.key();
        loop {
            let turn = self.read().machine_turn_by_key(&key);
            let (id, guard) = match turn {
                Some((id, turn)) => (Some(id), turn.lock_owned().await),
                None => (None, Arc::clone(&self.new_machines).lock_owned().await),
            };
            // While this unit waited, its machine may have been created or deleted.
            let machine = self.read().machine_record(&key);
            if machine.as_ref().map(|m| m.id) == id {
                return Ok(Box::new(MemoryTx {
                    state: Arc::clone(&self.state),
                    _turn: guard,
                    machine,
                }));
            }
        }
    }

    async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
        Ok(self.read().machines(page))
    }

    async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
        self.read().machine(id)
    }

    async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
        self.read().runs(machine, page)
    }

    async fn run(&self, id: RunId) -> Result<RunDetail> {
        self.read().run_detail(id)
    }

    async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        self.read().item(item)
    }

    async fn record_finished(&self, samples: &[FinishedTest]) -> Result<()> {
        for chunk in samples.chunks(FINISHED_PER_HOLD) {
            self.write().record_finished(chunk);
        }
        Ok(())
    }

    async fn remaining_work(&self, run: RunId) -> Result<RunRemaining> {
        self.read().remaining_work(run)
    }

    async fn test_history(&self, key: TestKey, query: HistoryQuery) -> Result<TestHistory> {
        self.read().test_history(key, query)
    }

    async fn previous_run(&self, run: RunId) -> Result<Option<RunId>> {
        self.read().previous_run(run)
    }

    async fn run_flakiness(&self, run: RunId, min_flips: u32) -> Result<Vec<TestFlakiness>> {
        self.read().run_flakiness(run, min_flips)
    }

    async fn flaky_tests(&self, min_flips: u32, limit: u32) -> Result<Vec<FlakyTest>> {
        Ok(self.read().flaky_tests(min_flips, limit))
    }

    async fn matrix_entries(
        &self,
        master: &FileRef,
        machines: &[MachineId],
    ) -> Result<Vec<MatrixEntry>> {
        Ok(self.read().matrix_entries(master, machines))
    }

    async fn search_runs(&self, search: &RunSearch, page: PageRequest) -> Result<Page<RunListing>> {
        Ok(self.read().search_runs(search, page))
    }

    async fn search_tests(
        &self,
        text: Option<&TextFilter>,
        page: PageRequest,
    ) -> Result<Page<TestListing>> {
        Ok(self.read().search_tests(text, page))
    }

    async fn delete_run(&self, id: RunId) -> Result<()> {
        let _turn = self.run_turn(id).await?;
        self.write().delete_run(id)
    }

    async fn prune_run(&self, id: RunId) -> Result<bool> {
        let _turn = self.run_turn(id).await?;
        self.write().prune_run(id)
    }

    async fn delete_machine(&self, id: MachineId) -> Result<()> {
        let _turn = self.machine_turn(id).await?;
        self.write().delete_machine(id)
    }

    async fn set_machine_timezone(
        &self,
        id: MachineId,
        timezone: Option<RunnerTimezone>,
    ) -> Result<()> {
        self.write().set_machine_timezone(id, timezone)
    }

    async fn set_machine_timeouts(&self, id: MachineId, timeouts: MachineTimeouts) -> Result<()> {
        self.write().set_machine_timeouts(id, timeouts)
    }

    async fn set_machine_retention(
        &self,
        id: MachineId,
        retention: Option<RetentionPolicy>,
    ) -> Result<()> {
        self.write().set_machine_retention(id, retention)
    }

    async fn set_run_kept(&self, id: RunId, kept: bool) -> Result<()> {
        self.write().set_run_kept(id, kept)
    }
}

/// A unit of work: holds its machine's turn until committed or dropped, the store's lock only
/// for each read and for the commit. Nothing is written before `commit`, so dropping it needs
/// no rollback.
struct MemoryTx {
    state: Arc<RwLock<State>>,
    _turn: OwnedMutexGuard<()>,
    machine: Option<MachineRecord>,
}

#[async_trait]
impl StoreTx for MemoryTx {
    fn machine(&self) -> Option<&MachineRecord> {
        self.machine.as_ref()
    }

    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        Ok(match &self.machine {
            Some(machine) => read(&self.state).ongoing_runs(machine.id),
            None => Vec::new(),
        })
    }

    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        read(&self.state).scenario_states(run)
    }

    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        read(&self.state).scenario_state(id)
    }

    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        // A write: the run's index forgets, on the way, tests no longer waiting.
        write(&self.state).first_waiting_test(run, file_path, file_name)
    }

    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        read(&self.state).running_test(run)
    }

    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        Ok(match &self.machine {
            Some(machine) => read(&self.state).machine_test(machine.id, id),
            None => None,
        })
    }

    async fn confirm(&mut self) -> Result<()> {
        // Read under the machine's turn: always current.
        Ok(())
    }

    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        Ok(match &self.machine {
            Some(machine) => read(&self.state).recorded_event(machine.id, event_id),
            None => None,
        })
    }

    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        write(&self.state).apply(self.machine.as_ref(), changes)
    }
}
