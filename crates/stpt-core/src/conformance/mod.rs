//! The conformance suite every [`Store`] and [`LiveBus`] must pass.
//!
//! Each scenario is a plain `pub async fn` that panics on failure. The macros
//! [`store_conformance_tests!`](crate::store_conformance_tests) and
//! [`live_bus_conformance_tests!`](crate::live_bus_conformance_tests) stamp one test per
//! scenario with the test attribute you give, so a database backend can use a fresh database
//! per test:
//!
//! ```ignore
//! stpt_core::store_conformance_tests!(#[tokio::test] async fn() { MyStore::new() });
//! stpt_core::store_conformance_tests!(#[sqlx::test] async fn(pool: PgPool) { PgStore::new(pool) });
//! ```

mod live;
mod store;
mod support;

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
