//! The custom backend of the examples passes the shared conformance suite.

use std::sync::Arc;
use stpt_examples::LoggingStore;
use stpt_store_memory::MemoryStore;

stpt_core::store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() {
    LoggingStore::new(Arc::new(MemoryStore::new()))
});
