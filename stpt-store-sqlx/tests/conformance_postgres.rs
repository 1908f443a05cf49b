//! The shared conformance suite against PostgreSQL, a fresh database per test.
//!
//! Needs `STPT_TEST_POSTGRES_URL`; skipped without it, unless `STPT_TEST_INTEGRATION=1`.
#![allow(clippy::unwrap_used)]

mod support;

stpt_core::store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() -> (Subject, Guard) {
    match support::fresh_pg().await {
        Some(store) => store.into_parts(),
        None => return,
    }
});

mod accounts {
    use super::support;

    stpt_core::account_store_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() -> (Subject, Guard) {
        match support::fresh_pg().await {
            Some(store) => store.into_parts(),
            None => return,
        }
    });
}
