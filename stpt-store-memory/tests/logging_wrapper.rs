//! A reviewer's logging wrapper, written as the docs say (override two methods, inherit the
//! rest), passes the whole conformance suite, deleting included.

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use stpt_core::wrap::{WrapStore, WrapStoreTx};
use stpt_core::{Changes, Committed, MachineName, Result, Store, StoreTx};
use stpt_store_memory::MemoryStore;

#[derive(Debug, Default)]
struct Logged {
    inner: MemoryStore,
    commits: Arc<AtomicU64>,
}

#[async_trait]
impl WrapStore for Logged {
    fn inner(&self) -> &dyn Store {
        &self.inner
    }
    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
        tracing::info!(machine = machine.as_str(), "begin");
        let unit = self.inner.begin(machine).await?;
        Ok(Box::new(LoggedTx(unit, Arc::clone(&self.commits))))
    }
}

struct LoggedTx(Box<dyn StoreTx>, Arc<AtomicU64>);

#[async_trait]
impl WrapStoreTx for LoggedTx {
    fn inner(&self) -> &dyn StoreTx {
        &*self.0
    }
    fn inner_mut(&mut self) -> &mut dyn StoreTx {
        &mut *self.0
    }
    fn into_inner(self: Box<Self>) -> Box<dyn StoreTx> {
        self.0
    }
    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
        let committed = self.0.commit(changes).await;
        tracing::info!(ok = committed.is_ok(), "commit");
        self.1.fetch_add(1, Ordering::Relaxed);
        committed
    }
}

stpt_core::store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() {
    Logged::default()
});

/// The wrapper saw every commit and kept the inner store's optional abilities.
#[tokio::test]
async fn the_wrapper_sees_commits_and_inherits_deleting() {
    let store = Arc::new(Logged::default());
    stpt_core::conformance::python_runner_story(store.clone()).await;
    assert_eq!(
        store.commits.load(Ordering::Relaxed),
        21,
        "one commit per post"
    );
    let machines = store.machines(stpt_core::PageRequest::default()).await;
    let machine = machines.expect("machines").items[0].id;
    assert_eq!(store.delete_machine(machine).await.ok(), Some(()));
    assert!(
        store.machine(machine).await.is_err(),
        "deleted through the wrapper"
    );
}
