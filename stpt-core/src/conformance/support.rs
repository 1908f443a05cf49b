//! Helpers shared by the scenarios: plan builders, event shorthands, a manual clock.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::Arc;

pub(crate) use crate::ManualClock;
use crate::{
    EventReceipt, InProcessBus, MachineName, Plan, PlanReceipt, PlannedScenario, Result, RunDetail,
    ScriptFile, Status, Store, TestStart, TestStop, Tracker,
};

/// A tracker over `store` with an in-process bus and a manual clock.
pub(crate) fn tracker(store: Arc<dyn Store>) -> (Tracker, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at(0)));
    let tracker =
        Tracker::new(store, Arc::new(InProcessBus::new())).with_clock(Arc::clone(&clock) as _);
    (tracker, clock)
}

/// A fixed base time plus `seconds` (and microseconds, so backends must keep them).
pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 24, 13, 0, 0)
        .single()
        .unwrap_or_default();
    base + Duration::seconds(seconds) + Duration::microseconds(123_456)
}

/// The server's clock in scenarios that tell the two clocks apart: an hour after the runner's.
pub(crate) fn server(runner: DateTime<Utc>) -> DateTime<Utc> {
    runner + Duration::hours(1)
}

/// [`start`] received by the server an hour after the runner's `time`.
pub(crate) async fn start_late(
    tracker: &Tracker,
    clock: &ManualClock,
    machine: &str,
    scenario: &str,
    test: &str,
    time: DateTime<Utc>,
) -> Result<EventReceipt> {
    clock.set(server(time));
    start(tracker, machine, scenario, test, time).await
}

/// [`run_test`] with each event received by the server an hour after the runner's time.
#[allow(clippy::too_many_arguments)] // One line per event in the scenarios reads best.
pub(crate) async fn run_test_late(
    tracker: &Tracker,
    clock: &ManualClock,
    machine: &str,
    scenario: &str,
    test: &str,
    status: Status,
    started: DateTime<Utc>,
    stopped: DateTime<Utc>,
) {
    start_late(tracker, clock, machine, scenario, test, started)
        .await
        .unwrap_or_else(|e| panic!("start of {test} rejected: {e}"));
    clock.set(server(stopped));
    stop(tracker, machine, scenario, test, status, stopped)
        .await
        .unwrap_or_else(|e| panic!("stop of {test} rejected: {e}"));
}

pub(crate) fn name(machine: &str) -> MachineName {
    MachineName::new(machine).unwrap_or_else(|e| panic!("bad machine name in scenario: {e}"))
}

pub(crate) fn file(path: &str, name: &str, script: Option<&str>) -> ScriptFile {
    ScriptFile {
        file_path: path.to_owned(),
        file_name: name.to_owned(),
        script: script.map(str::to_owned),
    }
}

/// A plan for `machine` whose scenarios are `(scenario name, [test names])`; every test lives
/// at path `/t/<scenario name>` and has a small script.
pub(crate) fn plan(machine: &str, timestamp: DateTime<Utc>, scenarios: &[(&str, &[&str])]) -> Plan {
    Plan {
        machine: name(machine),
        timestamp: timestamp.into(),
        master: file("/s", "master.py", Some("run_all()\n")),
        scenarios: scenarios
            .iter()
            .map(|(scenario, tests)| PlannedScenario {
                file: file("/s", scenario, Some("run()\n")),
                tests: tests
                    .iter()
                    .map(|test| file(&test_path(scenario), test, Some("check()\n")))
                    .collect(),
            })
            .collect(),
    }
}

pub(crate) fn test_path(scenario: &str) -> String {
    format!("/t/{scenario}")
}

pub(crate) async fn record_plan(tracker: &Tracker, plan: Plan) -> PlanReceipt {
    tracker
        .record_plan(plan)
        .await
        .unwrap_or_else(|e| panic!("plan rejected: {e}"))
}

pub(crate) async fn start(
    tracker: &Tracker,
    machine: &str,
    scenario: &str,
    test: &str,
    time: DateTime<Utc>,
) -> Result<EventReceipt> {
    tracker
        .record_test_start(TestStart {
            machine: name(machine),
            file_path: test_path(scenario),
            file_name: test.to_owned(),
            at: time.into(),
        })
        .await
}

pub(crate) async fn stop(
    tracker: &Tracker,
    machine: &str,
    scenario: &str,
    test: &str,
    status: Status,
    time: DateTime<Utc>,
) -> Result<EventReceipt> {
    tracker
        .record_test_stop(TestStop {
            machine: name(machine),
            file_path: test_path(scenario),
            file_name: test.to_owned(),
            status,
            at: time.into(),
        })
        .await
}

/// Starts and stops a test, panicking if either matches nothing.
pub(crate) async fn run_test(
    tracker: &Tracker,
    machine: &str,
    scenario: &str,
    test: &str,
    status: Status,
    started: DateTime<Utc>,
    stopped: DateTime<Utc>,
) {
    start(tracker, machine, scenario, test, started)
        .await
        .unwrap_or_else(|e| panic!("start of {test} rejected: {e}"));
    stop(tracker, machine, scenario, test, status, stopped)
        .await
        .unwrap_or_else(|e| panic!("stop of {test} rejected: {e}"));
}

pub(crate) async fn detail(tracker: &Tracker, run: crate::RunId) -> RunDetail {
    tracker
        .run(run)
        .await
        .unwrap_or_else(|e| panic!("run {run} unreadable: {e}"))
}

/// Statuses of every test of a run, scenario by scenario, in plan order.
pub(crate) fn test_statuses(run: &RunDetail) -> Vec<Vec<Status>> {
    run.scenarios
        .iter()
        .map(|s| s.tests.iter().map(|t| t.status).collect())
        .collect()
}

pub(crate) fn scenario_statuses(run: &RunDetail) -> Vec<Status> {
    run.scenarios.iter().map(|s| s.status).collect()
}
