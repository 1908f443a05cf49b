//! Runnable examples of embedding and extending stpt: `cargo run -p stpt-examples --example <name>`.
//!
//! The library part holds two storage backends, both checked against the shared conformance
//! suite in `tests/conformance.rs`:
//!
//! - [`TableStore`], a complete backend written from scratch on [`stpt_core::RunIndex`] (the
//!   same file is the guide in `stpt_core::Store`'s documentation);
//! - [`LoggingStore`], a decorator that audits every unit of work of any other store, written
//!   with [`stpt_core::wrap`] in a few lines.

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use stpt_core::wrap::{WrapStore, WrapStoreTx};
use stpt_core::{Changes, Committed, MachineName, Result, Store, StoreTx};

mod table_store {
    include!("../../stpt-core/src/docs/custom_backend.rs");
}
pub use table_store::TableStore;

/// A storage backend that writes an audit line for every unit of work (which machine, what
/// it changed, how long it held the machine) and delegates the storing to another store.
#[derive(Debug)]
pub struct LoggingStore {
    inner: Arc<dyn Store>,
    commits: Arc<AtomicU64>,
}

impl LoggingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        let commits = Arc::new(AtomicU64::new(0));
        LoggingStore { inner, commits }
    }

    /// Units of work committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl WrapStore for LoggingStore {
    fn inner(&self) -> &dyn Store {
        &*self.inner
    }

    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        Ok(Box::new(LoggingTx {
            inner: self.inner.begin(machine).await?,
            machine: machine.as_str().to_owned(),
            started: Instant::now(),
            commits: Arc::clone(&self.commits),
        }))
    }
}

struct LoggingTx {
    inner: Box<dyn StoreTx>,
    machine: String,
    started: Instant,
    commits: Arc<AtomicU64>,
}

#[async_trait]
impl WrapStoreTx for LoggingTx {
    fn inner(&self) -> &dyn StoreTx {
        &*self.inner
    }

    fn inner_mut(&mut self) -> &mut dyn StoreTx {
        &mut *self.inner
    }

    fn into_inner(self: Box<Self>) -> Box<dyn StoreTx> {
        self.inner
    }

    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        let tests_changed: usize = changes.runs.iter().map(|work| work.tests.len()).sum();
        let result = self.inner.commit(changes).await;
        self.commits.fetch_add(1, Ordering::Relaxed);
        tracing::info!(machine = %self.machine, tests_changed, held_for = ?self.started.elapsed(),
            ok = result.is_ok(), "unit of work committed");
        result
    }
}
