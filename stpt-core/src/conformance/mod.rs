//! The conformance suite every [`Store`](crate::Store) and [`LiveBus`](crate::LiveBus) must pass.
//!
//! Each scenario is a plain `pub async fn(Arc<dyn Store>)` (or `Arc<dyn LiveBus>`) that panics
//! on failure. The macros [`store_conformance_tests!`](crate::store_conformance_tests) and
//! [`live_bus_conformance_tests!`](crate::live_bus_conformance_tests) stamp one test per
//! scenario with the test attribute you give, so a database backend can take a fresh database
//! per test:
//!
//! ```ignore
//! stpt_core::store_conformance_tests!(#[tokio::test] async fn() { MyStore::new() });
//! stpt_core::store_conformance_tests!(#[sqlx::test] async fn(pool: PgPool) { PgStore::new(pool) });
//! ```
//!
//! A store that needs something kept alive for the test's duration (a temporary directory, a
//! scratch database) returns it beside the store, and the macro holds it until the scenario
//! is over:
//!
//! ```ignore
//! stpt_core::store_conformance_tests!(#[tokio::test] async fn() -> (Subject, Guard) {
//!     let dir = tempfile::tempdir().unwrap();
//!     (MyStore::open(dir.path().join("runs.db")).await.unwrap(), dir)
//! });
//! ```
//!
//! A scenario can also be called by itself. This decorator counts units of work and inherits
//! everything else from the store it wraps ([`crate::wrap`]); a complete backend written from
//! scratch is in [`Store`](crate::Store)'s documentation.
//!
//! ```
//! use async_trait::async_trait;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use stpt_core::wrap::WrapStore;
//! use stpt_core::{MachineName, Result, Store, StoreTx};
//!
//! #[derive(Debug)]
//! struct CountingStore {
//!     inner: Arc<dyn Store>,
//!     units: AtomicU64,
//! }
//!
//! #[async_trait]
//! impl WrapStore for CountingStore {
//!     fn inner(&self) -> &dyn Store {
//!         &*self.inner
//!     }
//!     async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
//!         self.units.fetch_add(1, Ordering::Relaxed);
//!         self.inner.begin(machine).await
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = Arc::new(CountingStore {
//!     inner: Arc::new(stpt_store_memory::MemoryStore::new()),
//!     units: AtomicU64::new(0),
//! });
//! stpt_core::conformance::python_runner_story(store.clone()).await;
//! assert_eq!(store.units.load(Ordering::Relaxed), 21, "one unit of work per post");
//! # }
//! ```

#[cfg(feature = "accounts")]
mod accounts;
mod history;
mod live;
mod liveness;
mod settings;
mod store;
mod support;

#[cfg(feature = "accounts")]
pub use accounts::*;
pub use history::*;
pub use live::*;
pub use liveness::*;
pub use settings::*;
pub use store::*;

/// Stamps one test per [`Store`](crate::Store) scenario of the suite.
///
/// `$make` is a block evaluating to the store under test (any type implementing `Store`); it
/// may use the test function's arguments and `.await`.
#[macro_export]
macro_rules! store_conformance_tests {
    (#[$($attr:tt)*] async fn ($($args:tt)*) -> (Subject, Guard) $make:block) => {
        $crate::store_conformance_tests! { @stamp [#[$($attr)*] ($($args)*) guarded $make] }
    };
    (#[$($attr:tt)*] async fn ($($args:tt)*) $make:block) => {
        $crate::store_conformance_tests! { @stamp [#[$($attr)*] ($($args)*) plain $make] }
    };
    (@stamp $head:tt) => {
        $crate::__conformance_tests! {
            $head
            rule1_plan_creates_waiting_run,
            rule1_new_plan_abandons_ongoing_run,
            rule2_start_picks_first_waiting_in_plan_order,
            rule2_one_running_test_per_machine,
            rule3_stop_sets_final_status,
            rule3_stop_keeps_its_failure_details,
            rule3_cancel_cancels_whole_run,
            rule4_timestamps_and_durations,
            rule5_unknown_machine_matches_nothing,
            rule5_unmatched_events_change_nothing,
            rule6_latest_run_is_last_received,
            rule7_machine_names_are_case_insensitive,
            rule8_stop_requires_final_status,
            aggregation_follows_priority,
            empty_plans_finish_at_once,
            fields_round_trip,
            machines_paginate_by_name,
            runs_paginate_newest_first,
            machine_status_follows_latest_run,
            statistics_count_every_status,
            unknown_ids_are_not_found,
            python_runner_story,
            sixteen_machines_post_concurrently,
            concurrent_plans_for_one_new_machine,
            last_seen_is_server_time,
            clock_offset_is_kept_per_machine,
            silent_machine_is_closed_unknown,
            long_tests_are_not_closed_early,
            durations_make_the_eta,
            retention_prunes_finished_runs,
            events_by_test_id,
            batches_apply_in_order,
            retried_events_apply_once,
            concurrent_retries_apply_once,
            deleting_a_run,
            deleting_a_machine,
            machine_timezone_reads_naive_times,
            machine_timeouts_override_the_servers,
            machine_retention_overrides_the_servers,
            kept_runs_are_not_pruned,
            prune_run_judges_when_it_deletes,
            history_lists_results_newest_first,
            flaky_windows_follow_finished_tests,
            one_flush_moves_many_histories,
            run_diff_against_previous_run,
            matrix_shows_latest_results_per_machine,
            search_finds_runs_and_tests,
        }
    };
}

/// Stamps one test per [`AccountStore`](crate::accounts::AccountStore) scenario of the suite.
///
/// `$make` is a block evaluating to a fresh, empty account store.
///
/// Needs the `accounts` feature (on by default).
#[cfg(feature = "accounts")]
#[macro_export]
macro_rules! account_store_conformance_tests {
    (#[$($attr:tt)*] async fn ($($args:tt)*) -> (Subject, Guard) $make:block) => {
        $crate::account_store_conformance_tests! { @stamp [#[$($attr)*] ($($args)*) guarded $make] }
    };
    (#[$($attr:tt)*] async fn ($($args:tt)*) $make:block) => {
        $crate::account_store_conformance_tests! { @stamp [#[$($attr)*] ($($args)*) plain $make] }
    };
    (@stamp $head:tt) => {
        $crate::__conformance_tests! {
            $head
            accounts_users_round_trip,
            accounts_usernames_unique_without_case,
            accounts_users_change_and_delete,
            accounts_emails_change,
            accounts_own_password_change,
            accounts_sessions,
            accounts_runner_tokens,
            accounts_resets_are_taken_once,
            accounts_rules_over_the_store,
            accounts_last_admin_survives_concurrent_changes,
        }
    };
}

/// Stamps one test per [`LiveBus`](crate::LiveBus) scenario of the suite.
///
/// `$make` is a block evaluating to a fresh bus (any type implementing `LiveBus`).
#[macro_export]
macro_rules! live_bus_conformance_tests {
    (#[$($attr:tt)*] async fn ($($args:tt)*) -> (Subject, Guard) $make:block) => {
        $crate::live_bus_conformance_tests! { @stamp [#[$($attr)*] ($($args)*) guarded $make] }
    };
    (#[$($attr:tt)*] async fn ($($args:tt)*) $make:block) => {
        $crate::live_bus_conformance_tests! { @stamp [#[$($attr)*] ($($args)*) plain $make] }
    };
    (@stamp $head:tt) => {
        $crate::__conformance_tests! {
            $head
            bus_delivers_in_order,
            bus_isolates_topics,
            bus_serves_many_subscribers,
            bus_tells_slow_subscriber_it_lagged,
            bus_publish_without_subscribers_is_harmless,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($head:tt $($scenario:ident),* $(,)?) => {
        $( $crate::__conformance_test!($head $scenario); )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ([#[$($attr:tt)*] ($($args:tt)*) plain $make:block] $scenario:ident) => {
        #[$($attr)*]
        async fn $scenario($($args)*) {
            let subject = $make;
            $crate::conformance::$scenario(::std::sync::Arc::new(subject)).await;
        }
    };
    ([#[$($attr:tt)*] ($($args:tt)*) guarded $make:block] $scenario:ident) => {
        #[$($attr)*]
        async fn $scenario($($args)*) {
            // Named, so it lives until the scenario is over.
            let (subject, _guard) = $make;
            $crate::conformance::$scenario(::std::sync::Arc::new(subject)).await;
        }
    };
}
