//! Both backends of the examples pass the whole shared conformance suite: the one written
//! from scratch, and the logging decorator around it.

use std::sync::Arc;
use stpt_examples::{LoggingStore, TableStore};

stpt_core::store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() {
    TableStore::new()
});

mod logging {
    use super::*;

    stpt_core::store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() {
        LoggingStore::new(Arc::new(TableStore::new()))
    });
}
