//! Wrapping a store: override what you need, inherit the rest.
//!
//! A decorator (logging, metrics, a cache, a guard kept alive beside a store) implements
//! [`WrapStore`] (and, to see units of work, [`WrapStoreTx`]) instead of
//! [`Store`]/[`StoreTx`]: it names its inner store once, and every method it does not write
//! forwards to it — including optional ones such as [`Store::delete_run`], so a wrapper never
//! loses an ability of what it wraps. Every `WrapStore` is a `Store`, every `WrapStoreTx` a
//! `StoreTx`.
//!
//! These traits are deliberately not re-exported at the crate root: their methods share the
//! names of [`Store`]'s, so import them only where you implement them.
//!
//! ```
//! use async_trait::async_trait;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use stpt_core::wrap::{WrapStore, WrapStoreTx};
//! use stpt_core::{Changes, Committed, MachineName, Result, Store, StoreTx};
//!
//! /// Counts commits; everything else is the inner store's.
//! #[derive(Debug)]
//! struct Counting {
//!     inner: Arc<dyn Store>,
//!     commits: Arc<AtomicU64>,
//! }
//!
//! #[async_trait]
//! impl WrapStore for Counting {
//!     fn inner(&self) -> &dyn Store {
//!         &*self.inner
//!     }
//!     async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
//!         let unit = self.inner.begin(machine).await?;
//!         Ok(Box::new(CountingTx(unit, Arc::clone(&self.commits))))
//!     }
//! }
//!
//! struct CountingTx(Box<dyn StoreTx>, Arc<AtomicU64>);
//!
//! #[async_trait]
//! impl WrapStoreTx for CountingTx {
//!     fn inner(&self) -> &dyn StoreTx {
//!         &*self.0
//!     }
//!     fn inner_mut(&mut self) -> &mut dyn StoreTx {
//!         &mut *self.0
//!     }
//!     fn into_inner(self: Box<Self>) -> Box<dyn StoreTx> {
//!         self.0
//!     }
//!     async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
//!         let committed = self.0.commit(changes).await?;
//!         self.1.fetch_add(1, Ordering::Relaxed);
//!         Ok(committed)
//!     }
//! }
//! ```

use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;

use crate::estimate::{FinishedTest, RunRemaining};
use crate::history::{
    FlakyTest, HistoryQuery, MatrixEntry, RunListing, RunSearch, TestFlakiness, TestHistory,
    TestKey, TestListing, TextFilter,
};
use crate::rules::{RunState, ScenarioState, TestState};
use crate::{
    Changes, Committed, Durability, FileRef, ItemDetail, ItemRef, MachineId, MachineName,
    MachineRecord, MachineSummary, MachineTimeouts, Page, PageRequest, RecordedEvent, Result,
    RetentionPolicy, RunDetail, RunId, RunSummary, RunnerTimezone, ScenarioId, Store, StoreTx,
    TestId, TestLocation,
};

/// A [`Store`] that wraps another: every method forwards to [`WrapStore::inner`] unless
/// overridden. See the [module docs](self).
#[async_trait]
pub trait WrapStore: Send + Sync + Debug + 'static {
    /// The wrapped store.
    fn inner(&self) -> &dyn Store;

    /// [`Store::begin`].
    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        self.inner().begin(machine).await
    }
    /// [`Store::machines`].
    async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
        self.inner().machines(page).await
    }
    /// [`Store::machine`].
    async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
        self.inner().machine(id).await
    }
    /// [`Store::runs`].
    async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
        self.inner().runs(machine, page).await
    }
    /// [`Store::run`].
    async fn run(&self, id: RunId) -> Result<RunDetail> {
        self.inner().run(id).await
    }
    /// [`Store::item`].
    async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        self.inner().item(item).await
    }
    /// [`Store::locate_test`].
    async fn locate_test(&self, id: TestId) -> Result<TestLocation> {
        self.inner().locate_test(id).await
    }
    /// [`Store::record_finished`].
    async fn record_finished(&self, samples: &[FinishedTest]) -> Result<()> {
        self.inner().record_finished(samples).await
    }
    /// [`Store::remaining_work`].
    async fn remaining_work(&self, run: RunId) -> Result<RunRemaining> {
        self.inner().remaining_work(run).await
    }
    /// [`Store::test_history`].
    async fn test_history(&self, key: TestKey, query: HistoryQuery) -> Result<TestHistory> {
        self.inner().test_history(key, query).await
    }
    /// [`Store::previous_run`].
    async fn previous_run(&self, run: RunId) -> Result<Option<RunId>> {
        self.inner().previous_run(run).await
    }
    /// [`Store::run_flakiness`].
    async fn run_flakiness(&self, run: RunId, min_flips: u32) -> Result<Vec<TestFlakiness>> {
        self.inner().run_flakiness(run, min_flips).await
    }
    /// [`Store::flaky_tests`].
    async fn flaky_tests(&self, min_flips: u32, limit: u32) -> Result<Vec<FlakyTest>> {
        self.inner().flaky_tests(min_flips, limit).await
    }
    /// [`Store::matrix_entries`].
    async fn matrix_entries(
        &self,
        master: &FileRef,
        machines: &[MachineId],
    ) -> Result<Vec<MatrixEntry>> {
        self.inner().matrix_entries(master, machines).await
    }
    /// [`Store::search_runs`].
    async fn search_runs(&self, search: &RunSearch, page: PageRequest) -> Result<Page<RunListing>> {
        self.inner().search_runs(search, page).await
    }
    /// [`Store::search_tests`].
    async fn search_tests(
        &self,
        text: Option<&TextFilter>,
        page: PageRequest,
    ) -> Result<Page<TestListing>> {
        self.inner().search_tests(text, page).await
    }
    /// [`Store::delete_run`].
    async fn delete_run(&self, id: RunId) -> Result<()> {
        self.inner().delete_run(id).await
    }
    /// [`Store::prune_run`].
    async fn prune_run(&self, id: RunId) -> Result<bool> {
        self.inner().prune_run(id).await
    }
    /// [`Store::delete_machine`].
    async fn delete_machine(&self, id: MachineId) -> Result<()> {
        self.inner().delete_machine(id).await
    }
    /// [`Store::set_machine_timezone`].
    async fn set_machine_timezone(
        &self,
        id: MachineId,
        timezone: Option<RunnerTimezone>,
    ) -> Result<()> {
        self.inner().set_machine_timezone(id, timezone).await
    }
    /// [`Store::set_machine_timeouts`].
    async fn set_machine_timeouts(&self, id: MachineId, timeouts: MachineTimeouts) -> Result<()> {
        self.inner().set_machine_timeouts(id, timeouts).await
    }
    /// [`Store::set_machine_retention`].
    async fn set_machine_retention(
        &self,
        id: MachineId,
        retention: Option<RetentionPolicy>,
    ) -> Result<()> {
        self.inner().set_machine_retention(id, retention).await
    }
    /// [`Store::set_run_kept`].
    async fn set_run_kept(&self, id: RunId, kept: bool) -> Result<()> {
        self.inner().set_run_kept(id, kept).await
    }
}

#[async_trait]
impl<W: WrapStore> Store for W {
    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        WrapStore::begin(self, machine).await
    }
    async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
        WrapStore::machines(self, page).await
    }
    async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
        WrapStore::machine(self, id).await
    }
    async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
        WrapStore::runs(self, machine, page).await
    }
    async fn run(&self, id: RunId) -> Result<RunDetail> {
        WrapStore::run(self, id).await
    }
    async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        WrapStore::item(self, item).await
    }
    async fn locate_test(&self, id: TestId) -> Result<TestLocation> {
        WrapStore::locate_test(self, id).await
    }
    async fn record_finished(&self, samples: &[FinishedTest]) -> Result<()> {
        WrapStore::record_finished(self, samples).await
    }
    async fn remaining_work(&self, run: RunId) -> Result<RunRemaining> {
        WrapStore::remaining_work(self, run).await
    }
    async fn test_history(&self, key: TestKey, query: HistoryQuery) -> Result<TestHistory> {
        WrapStore::test_history(self, key, query).await
    }
    async fn previous_run(&self, run: RunId) -> Result<Option<RunId>> {
        WrapStore::previous_run(self, run).await
    }
    async fn run_flakiness(&self, run: RunId, min_flips: u32) -> Result<Vec<TestFlakiness>> {
        WrapStore::run_flakiness(self, run, min_flips).await
    }
    async fn flaky_tests(&self, min_flips: u32, limit: u32) -> Result<Vec<FlakyTest>> {
        WrapStore::flaky_tests(self, min_flips, limit).await
    }
    async fn matrix_entries(
        &self,
        master: &FileRef,
        machines: &[MachineId],
    ) -> Result<Vec<MatrixEntry>> {
        WrapStore::matrix_entries(self, master, machines).await
    }
    async fn search_runs(&self, search: &RunSearch, page: PageRequest) -> Result<Page<RunListing>> {
        WrapStore::search_runs(self, search, page).await
    }
    async fn search_tests(
        &self,
        text: Option<&TextFilter>,
        page: PageRequest,
    ) -> Result<Page<TestListing>> {
        WrapStore::search_tests(self, text, page).await
    }
    async fn delete_run(&self, id: RunId) -> Result<()> {
        WrapStore::delete_run(self, id).await
    }
    async fn prune_run(&self, id: RunId) -> Result<bool> {
        WrapStore::prune_run(self, id).await
    }
    async fn delete_machine(&self, id: MachineId) -> Result<()> {
        WrapStore::delete_machine(self, id).await
    }
    async fn set_machine_timezone(
        &self,
        id: MachineId,
        timezone: Option<RunnerTimezone>,
    ) -> Result<()> {
        WrapStore::set_machine_timezone(self, id, timezone).await
    }
    async fn set_machine_timeouts(&self, id: MachineId, timeouts: MachineTimeouts) -> Result<()> {
        WrapStore::set_machine_timeouts(self, id, timeouts).await
    }
    async fn set_machine_retention(
        &self,
        id: MachineId,
        retention: Option<RetentionPolicy>,
    ) -> Result<()> {
        WrapStore::set_machine_retention(self, id, retention).await
    }
    async fn set_run_kept(&self, id: RunId, kept: bool) -> Result<()> {
        WrapStore::set_run_kept(self, id, kept).await
    }
}

/// A [`StoreTx`] that wraps another unit of work: every method forwards to the inner unit
/// unless overridden. See the [module docs](self).
#[async_trait]
pub trait WrapStoreTx: Send {
    /// The wrapped unit.
    fn inner(&self) -> &dyn StoreTx;
    /// The wrapped unit, to read through.
    fn inner_mut(&mut self) -> &mut dyn StoreTx;
    /// The wrapped unit, to commit.
    fn into_inner(self: Box<Self>) -> Box<dyn StoreTx>;

    /// [`StoreTx::machine`].
    fn machine(&self) -> Option<&MachineRecord> {
        self.inner().machine()
    }
    /// [`StoreTx::ongoing_runs`].
    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        self.inner_mut().ongoing_runs().await
    }
    /// [`StoreTx::scenarios`].
    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        self.inner_mut().scenarios(run).await
    }
    /// [`StoreTx::scenario`].
    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        self.inner_mut().scenario(id).await
    }
    /// [`StoreTx::first_waiting_test`].
    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        self.inner_mut()
            .first_waiting_test(run, file_path, file_name)
            .await
    }
    /// [`StoreTx::running_test`].
    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        self.inner_mut().running_test(run).await
    }
    /// [`StoreTx::test`].
    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        self.inner_mut().test(id).await
    }
    /// [`StoreTx::recorded_event`].
    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        self.inner_mut().recorded_event(event_id).await
    }
    /// [`StoreTx::confirm`].
    async fn confirm(&mut self) -> Result<()> {
        self.inner_mut().confirm().await
    }
    /// [`StoreTx::commit`].
    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        self.into_inner().commit(changes).await
    }
    /// [`StoreTx::commit_deferred`]: by default through this wrapper's own
    /// [`WrapStoreTx::commit`], so a wrapper that overrides `commit` sees every commit. Override
    /// both to keep the wrapped unit's deferred commits.
    async fn commit_deferred(self: Box<Self>, changes: Changes) -> Result<(Committed, Durability)> {
        let committed = WrapStoreTx::commit(self, changes).await?;
        Ok((committed, Durability::done()))
    }
}

#[async_trait]
impl<W: WrapStoreTx> StoreTx for W {
    fn machine(&self) -> Option<&MachineRecord> {
        WrapStoreTx::machine(self)
    }
    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        WrapStoreTx::ongoing_runs(self).await
    }
    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        WrapStoreTx::scenarios(self, run).await
    }
    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        WrapStoreTx::scenario(self, id).await
    }
    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        WrapStoreTx::first_waiting_test(self, run, file_path, file_name).await
    }
    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        WrapStoreTx::running_test(self, run).await
    }
    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        WrapStoreTx::test(self, id).await
    }
    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        WrapStoreTx::recorded_event(self, event_id).await
    }
    async fn confirm(&mut self) -> Result<()> {
        WrapStoreTx::confirm(self).await
    }
    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        WrapStoreTx::commit(self, changes).await
    }
    async fn commit_deferred(self: Box<Self>, changes: Changes) -> Result<(Committed, Durability)> {
        WrapStoreTx::commit_deferred(self, changes).await
    }
}

// Shared and boxed stores are stores. `Box` is covered for trait objects only: a blanket
// `Box<T>` impl would overlap the wrapper impls above (`Box` is `#[fundamental]`, so a
// downstream crate could make `Box<TheirStore>` a wrapper).

/// `Store` for a pointer to a store: every method through `**self`.
macro_rules! forward_store {
    ($($header:tt)*) => {
        #[async_trait]
        $($header)* {
            async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
                (**self).begin(machine).await
            }
            async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
                (**self).machines(page).await
            }
            async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
                (**self).machine(id).await
            }
            async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
                (**self).runs(machine, page).await
            }
            async fn run(&self, id: RunId) -> Result<RunDetail> {
                (**self).run(id).await
            }
            async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
                (**self).item(item).await
            }
            async fn locate_test(&self, id: TestId) -> Result<TestLocation> {
                (**self).locate_test(id).await
            }
            async fn record_finished(&self, samples: &[FinishedTest]) -> Result<()> {
                (**self).record_finished(samples).await
            }
            async fn remaining_work(&self, run: RunId) -> Result<RunRemaining> {
                (**self).remaining_work(run).await
            }
            async fn test_history(&self, key: TestKey, query: HistoryQuery) -> Result<TestHistory> {
                (**self).test_history(key, query).await
            }
            async fn previous_run(&self, run: RunId) -> Result<Option<RunId>> {
                (**self).previous_run(run).await
            }
            async fn run_flakiness(&self, run: RunId, min_flips: u32) -> Result<Vec<TestFlakiness>> {
                (**self).run_flakiness(run, min_flips).await
            }
            async fn flaky_tests(&self, min_flips: u32, limit: u32) -> Result<Vec<FlakyTest>> {
                (**self).flaky_tests(min_flips, limit).await
            }
            async fn matrix_entries(&self, master: &FileRef, machines: &[MachineId]) -> Result<Vec<MatrixEntry>> {
                (**self).matrix_entries(master, machines).await
            }
            async fn search_runs(&self, search: &RunSearch, page: PageRequest) -> Result<Page<RunListing>> {
                (**self).search_runs(search, page).await
            }
            async fn search_tests(&self, text: Option<&TextFilter>, page: PageRequest) -> Result<Page<TestListing>> {
                (**self).search_tests(text, page).await
            }
            async fn delete_run(&self, id: RunId) -> Result<()> {
                (**self).delete_run(id).await
            }
            async fn prune_run(&self, id: RunId) -> Result<bool> {
                (**self).prune_run(id).await
            }
            async fn delete_machine(&self, id: MachineId) -> Result<()> {
                (**self).delete_machine(id).await
            }
            async fn set_machine_timezone(
                &self,
                id: MachineId,
                timezone: Option<RunnerTimezone>,
            ) -> Result<()> {
                (**self).set_machine_timezone(id, timezone).await
            }
            async fn set_machine_timeouts(&self, id: MachineId, timeouts: MachineTimeouts) -> Result<()> {
                (**self).set_machine_timeouts(id, timeouts).await
            }
            async fn set_machine_retention(
                &self,
                id: MachineId,
                retention: Option<RetentionPolicy>,
            ) -> Result<()> {
                (**self).set_machine_retention(id, retention).await
            }
            async fn set_run_kept(&self, id: RunId, kept: bool) -> Result<()> {
                (**self).set_run_kept(id, kept).await
            }
        }
    };
}

forward_store!(impl<T: Store + ?Sized> Store for Arc<T>);
forward_store!(impl Store for Box<dyn Store>);

#[async_trait]
impl StoreTx for Box<dyn StoreTx> {
    fn machine(&self) -> Option<&MachineRecord> {
        (**self).machine()
    }
    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        (**self).ongoing_runs().await
    }
    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        (**self).scenarios(run).await
    }
    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        (**self).scenario(id).await
    }
    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        (**self).first_waiting_test(run, file_path, file_name).await
    }
    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        (**self).running_test(run).await
    }
    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        (**self).test(id).await
    }
    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        (**self).recorded_event(event_id).await
    }
    async fn confirm(&mut self) -> Result<()> {
        (**self).confirm().await
    }
    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        (*self).commit(changes).await
    }
    async fn commit_deferred(self: Box<Self>, changes: Changes) -> Result<(Committed, Durability)> {
        (*self).commit_deferred(changes).await
    }
}
