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
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};

use state::State;

/// A [`Store`] that keeps everything in memory.
#[cfg_attr(
    feature = "accounts",
    doc = "",
    doc = "With the `accounts` feature (on by default) it is also the",
    doc = "[`AccountStore`](stpt_core::accounts::AccountStore) of users, sessions and runner tokens."
)]
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Arc<RwLock<State>>,
    #[cfg(feature = "accounts")]
    accounts: tokio::sync::Mutex<accounts::AccountTables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        let state = Arc::clone(&self.state).write_owned().await;
        let machine = state.machine_record(&machine.key());
        Ok(Box::new(MemoryTx { state, machine }))
    }

    async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
        Ok(self.state.read().await.machines(page))
    }

    async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
        self.state.read().await.machine(id)
    }

    async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
        self.state.read().await.runs(machine, page)
    }

    async fn run(&self, id: RunId) -> Result<RunDetail> {
        self.state.read().await.run_detail(id)
    }

    async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        self.state.read().await.item(item)
    }

    async fn record_finished(&self, samples: &[FinishedTest]) -> Result<()> {
        self.state.write().await.record_finished(samples);
        Ok(())
    }

    async fn remaining_work(&self, run: RunId) -> Result<RunRemaining> {
        self.state.read().await.remaining_work(run)
    }

    async fn test_history(&self, key: TestKey, query: HistoryQuery) -> Result<TestHistory> {
        self.state.read().await.test_history(key, query)
    }

    async fn previous_run(&self, run: RunId) -> Result<Option<RunId>> {
        self.state.read().await.previous_run(run)
    }

    async fn run_flakiness(&self, run: RunId, min_flips: u32) -> Result<Vec<TestFlakiness>> {
        self.state.read().await.run_flakiness(run, min_flips)
    }

    async fn flaky_tests(&self, min_flips: u32, limit: u32) -> Result<Vec<FlakyTest>> {
        Ok(self.state.read().await.flaky_tests(min_flips, limit))
    }

    async fn matrix_entries(
        &self,
        master: &FileRef,
        machines: &[MachineId],
    ) -> Result<Vec<MatrixEntry>> {
        Ok(self.state.read().await.matrix_entries(master, machines))
    }

    async fn search_runs(&self, search: &RunSearch, page: PageRequest) -> Result<Page<RunListing>> {
        Ok(self.state.read().await.search_runs(search, page))
    }

    async fn search_tests(
        &self,
        text: Option<&TextFilter>,
        page: PageRequest,
    ) -> Result<Page<TestListing>> {
        Ok(self.state.read().await.search_tests(text, page))
    }

    async fn delete_run(&self, id: RunId) -> Result<()> {
        self.state.write().await.delete_run(id)
    }

    async fn prune_run(&self, id: RunId) -> Result<bool> {
        self.state.write().await.prune_run(id)
    }

    async fn delete_machine(&self, id: MachineId) -> Result<()> {
        self.state.write().await.delete_machine(id)
    }

    async fn set_machine_timezone(
        &self,
        id: MachineId,
        timezone: Option<RunnerTimezone>,
    ) -> Result<()> {
        self.state.write().await.set_machine_timezone(id, timezone)
    }

    async fn set_machine_timeouts(&self, id: MachineId, timeouts: MachineTimeouts) -> Result<()> {
        self.state.write().await.set_machine_timeouts(id, timeouts)
    }

    async fn set_machine_retention(
        &self,
        id: MachineId,
        retention: Option<RetentionPolicy>,
    ) -> Result<()> {
        self.state
            .write()
            .await
            .set_machine_retention(id, retention)
    }

    async fn set_run_kept(&self, id: RunId, kept: bool) -> Result<()> {
        self.state.write().await.set_run_kept(id, kept)
    }
}

/// A unit of work: holds the store's write lock until committed or dropped. Nothing is
/// written before `commit`, so dropping it needs no rollback.
struct MemoryTx {
    state: OwnedRwLockWriteGuard<State>,
    machine: Option<MachineRecord>,
}

#[async_trait]
impl StoreTx for MemoryTx {
    fn machine(&self) -> Option<&MachineRecord> {
        self.machine.as_ref()
    }

    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        Ok(match &self.machine {
            Some(machine) => self.state.ongoing_runs(machine.id),
            None => Vec::new(),
        })
    }

    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        self.state.scenario_states(run)
    }

    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        self.state.scenario_state(id)
    }

    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        self.state.first_waiting_test(run, file_path, file_name)
    }

    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        self.state.running_test(run)
    }

    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        Ok(match &self.machine {
            Some(machine) => self.state.machine_test(machine.id, id),
            None => None,
        })
    }

    async fn confirm(&mut self) -> Result<()> {
        // Read under the machine's lock: always current.
        Ok(())
    }

    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        Ok(match &self.machine {
            Some(machine) => self.state.recorded_event(machine.id, event_id),
            None => None,
        })
    }

    async fn commit(mut self: Box<Self>, changes: Changes) -> Result<Committed> {
        self.state.apply(self.machine.as_ref(), changes)
    }
}
