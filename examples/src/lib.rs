//! Runnable examples of embedding and extending stpt: `cargo run -p stpt-examples --example <name>`.
//!
//! The library part holds [`LoggingStore`], a custom storage backend used by the
//! `custom_backend` example and checked against the shared conformance suite in
//! `tests/conformance.rs`.

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use stpt_core::rules::{RunState, ScenarioState, TestState};
use stpt_core::{
    Changes, Committed, ItemDetail, ItemRef, MachineId, MachineName, MachineRecord, MachineSummary,
    Page, PageRequest, RecordedEvent, Result, RunDetail, RunId, RunSummary, ScenarioId, Store,
    StoreTx, TestId,
};

/// A storage backend that writes an audit line for every unit of work (which machine, what
/// it changed, how long it held the machine) and delegates the storing to another store.
///
/// Any store can be wrapped; the shared conformance suite passes through it unchanged, which
/// is what a decorator must guarantee.
#[derive(Debug)]
pub struct LoggingStore {
    inner: Arc<dyn Store>,
    commits: Arc<AtomicU64>,
}

impl LoggingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        LoggingStore {
            inner,
            commits: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Units of work committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Store for LoggingStore {
    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        let inner = self.inner.begin(machine).await?;
        Ok(Box::new(LoggingTx {
            inner,
            machine: machine.as_str().to_owned(),
            started: Instant::now(),
            commits: Arc::clone(&self.commits),
        }))
    }

    async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
        self.inner.machines(page).await
    }

    async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
        self.inner.machine(id).await
    }

    async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
        self.inner.runs(machine, page).await
    }

    async fn run(&self, id: RunId) -> Result<RunDetail> {
        self.inner.run(id).await
    }

    async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        self.inner.item(item).await
    }

    async fn delete_run(&self, id: RunId) -> Result<()> {
        tracing::info!(run = %id, "delete run");
        self.inner.delete_run(id).await
    }

    async fn delete_machine(&self, id: MachineId) -> Result<()> {
        tracing::info!(machine = %id, "delete machine");
        self.inner.delete_machine(id).await
    }
}

struct LoggingTx {
    inner: Box<dyn StoreTx>,
    machine: String,
    started: Instant,
    commits: Arc<AtomicU64>,
}

#[async_trait]
impl StoreTx for LoggingTx {
    fn machine(&self) -> Option<&MachineRecord> {
        self.inner.machine()
    }

    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
        self.inner.ongoing_runs().await
    }

    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
        self.inner.scenarios(run).await
    }

    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
        self.inner.scenario(id).await
    }

    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>> {
        self.inner
            .first_waiting_test(run, file_path, file_name)
            .await
    }

    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
        self.inner.running_test(run).await
    }

    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        self.inner.test(id).await
    }

    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        self.inner.recorded_event(event_id).await
    }

    async fn confirm(&mut self) -> Result<()> {
        self.inner.confirm().await
    }

    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        let tests_changed: usize = changes.runs.iter().map(|work| work.tests.len()).sum();
        let planned = changes.new_run.as_ref().map(|run| run.plan.test_count());
        let result = self.inner.commit(changes).await;
        self.commits.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            machine = %self.machine,
            tests_changed,
            planned_tests = planned,
            held_for = ?self.started.elapsed(),
            ok = result.is_ok(),
            "unit of work committed"
        );
        result
    }
}
