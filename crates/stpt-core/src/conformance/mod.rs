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
//! A custom backend in full: this one counts units of work and delegates the storing to
//! another store, and runs a scenario of the suite. A real backend implements the same two
//! traits over its own storage; `stpt-store-memory` is a complete one in about 500 lines.
//!
//! ```
//! use async_trait::async_trait;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use stpt_core::rules::{RunState, ScenarioState, TestState};
//! use stpt_core::*;
//!
//! #[derive(Debug)]
//! struct CountingStore {
//!     inner: Arc<dyn Store>,
//!     units: AtomicU64,
//! }
//!
//! #[async_trait]
//! impl Store for CountingStore {
//!     async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>> {
//!         self.units.fetch_add(1, Ordering::Relaxed);
//!         Ok(Box::new(CountingTx(self.inner.begin(machine).await?)))
//!     }
//!     async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
//!         self.inner.machines(page).await
//!     }
//!     async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
//!         self.inner.machine(id).await
//!     }
//!     async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
//!         self.inner.runs(machine, page).await
//!     }
//!     async fn run(&self, id: RunId) -> Result<RunDetail> {
//!         self.inner.run(id).await
//!     }
//!     async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
//!         self.inner.item(item).await
//!     }
//! }
//!
//! struct CountingTx(Box<dyn StoreTx>);
//!
//! #[async_trait]
//! impl StoreTx for CountingTx {
//!     fn machine(&self) -> Option<&MachineRecord> {
//!         self.0.machine()
//!     }
//!     async fn ongoing_runs(&mut self) -> Result<Vec<RunState>> {
//!         self.0.ongoing_runs().await
//!     }
//!     async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>> {
//!         self.0.scenarios(run).await
//!     }
//!     async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState> {
//!         self.0.scenario(id).await
//!     }
//!     async fn first_waiting_test(&mut self, run: RunId, path: &str, name: &str) -> Result<Option<TestState>> {
//!         self.0.first_waiting_test(run, path, name).await
//!     }
//!     async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>> {
//!         self.0.running_test(run).await
//!     }
//!     async fn confirm(&mut self) -> Result<()> {
//!         self.0.confirm().await
//!     }
//!     async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed> {
//!         self.0.commit(changes).await
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = Arc::new(CountingStore {
//!     inner: Arc::new(stpt_store_memory::MemoryStore::new()),
//!     units: AtomicU64::new(0),
//! });
//! // In a test file: `stpt_core::store_conformance_tests!(#[tokio::test] async fn() { .. });`
//! stpt_core::conformance::python_runner_story(store.clone()).await;
//! assert_eq!(store.units.load(Ordering::Relaxed), 21, "one unit of work per post");
//! # }
//! ```

mod accounts;
mod live;
mod store;
mod support;

pub use accounts::*;
pub use live::*;
pub use store::*;

/// Stamps one test per [`Store`](crate::Store) scenario of the suite.
///
/// `$make` is a block evaluating to the store under test (any type implementing `Store`); it
/// may use the test function's arguments and `.await`.
#[macro_export]
macro_rules! store_conformance_tests {
    (#[$($attr:tt)*] async fn ($($args:tt)*) $make:block) => {
        $crate::__conformance_tests! {
            [#[$($attr)*] ($($args)*) $make]
            rule1_plan_creates_waiting_run,
            rule1_new_plan_abandons_ongoing_run,
            rule2_start_picks_first_waiting_in_plan_order,
            rule2_one_running_test_per_machine,
            rule3_stop_sets_final_status,
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
            events_by_test_id,
            retried_events_apply_once,
            concurrent_retries_apply_once,
            deleting_a_run,
            deleting_a_machine,
        }
    };
}

/// Stamps one test per [`AccountStore`](crate::accounts::AccountStore) scenario of the suite.
///
/// `$make` is a block evaluating to a fresh, empty account store.
#[macro_export]
macro_rules! account_store_conformance_tests {
    (#[$($attr:tt)*] async fn ($($args:tt)*) $make:block) => {
        $crate::__conformance_tests! {
            [#[$($attr)*] ($($args)*) $make]
            accounts_users_round_trip,
            accounts_usernames_unique_without_case,
            accounts_users_change_and_delete,
            accounts_sessions,
            accounts_runner_tokens,
            accounts_resets_are_taken_once,
            accounts_rules_over_the_store,
        }
    };
}

/// Stamps one test per [`LiveBus`](crate::LiveBus) scenario of the suite.
///
/// `$make` is a block evaluating to a fresh bus (any type implementing `LiveBus`).
#[macro_export]
macro_rules! live_bus_conformance_tests {
    (#[$($attr:tt)*] async fn ($($args:tt)*) $make:block) => {
        $crate::__conformance_tests! {
            [#[$($attr)*] ($($args)*) $make]
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
    ([#[$($attr:tt)*] ($($args:tt)*) $make:block] $scenario:ident) => {
        #[$($attr)*]
        async fn $scenario($($args)*) {
            let subject = $make;
            $crate::conformance::$scenario(::std::sync::Arc::new(subject)).await;
        }
    };
}
