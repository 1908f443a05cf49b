//! The shared conformance suite against the in-memory store.

use stpt_store_memory::MemoryStore;

stpt_core::store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() {
    MemoryStore::new()
});

mod accounts {
    use stpt_store_memory::MemoryStore;

    stpt_core::account_store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() {
        MemoryStore::new()
    });
}
