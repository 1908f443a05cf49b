//! The shared conformance suite against SQLite, a fresh file per test.
#![allow(clippy::unwrap_used)]

mod support;

stpt_core::store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() -> (Subject, Guard) {
    support::fresh_sqlite().await.into_parts()
});

mod accounts {
    use super::support;

    stpt_core::account_store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() -> (Subject, Guard) {
        support::fresh_sqlite().await.into_parts()
    });
}
