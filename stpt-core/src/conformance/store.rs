//! Store scenarios: one per [rule](crate::rules), plus round trips, pagination and concurrency.

use std::collections::HashSet;
use std::sync::Arc;

use super::support::{
    at, detail, file, plan, record_plan, run_test, run_test_late, scenario_statuses, server, start,
    start_late, stop, test_path, test_statuses, tracker,
};
use crate::{
    Error, EventId, ItemKind, ItemRef, MachineId, MachineStatus, NoMatch, PageRequest, Plan,
    PlanPayload, PlannedScenario, RunId, RunnerTime, RunnerTimezone, ScenarioId, Status,
    StatusCounts, Store, TestAction, TestEvent, TestId, TestStart, TestStartPayload, TestStop,
    TestStopPayload, TestTarget,
};

use Status::{Cancelled, Failed, Passed, Running, Unknown, Waiting, Warning};

const TWO_BY_TWO: &[(&str, &[&str])] = &[
    ("lamp.py", &["a.py", "b.py"]),
    ("door.py", &["c.py", "d.py"]),
];

fn counts(pairs: &[(Status, u32)]) -> StatusCounts {
    let mut counts = StatusCounts::new();
    for (status, count) in pairs {
        counts.set(*status, *count);
    }
    counts
}

fn page(number: u32, size: u32) -> PageRequest {
    PageRequest::new(number, size).unwrap_or_else(|e| panic!("{e}"))
}

/// [Rule 1](crate::rules#rule-1): a plan creates a run with every item waiting; an empty scenario
/// is `unknown`.
pub async fn rule1_plan_creates_waiting_run(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let receipt = record_plan(
        &tracker,
        plan(
            "rig",
            at(0),
            &[
                ("lamp.py", &["a.py", "b.py"]),
                ("empty.py", &[]),
                ("door.py", &["c.py"]),
            ],
        ),
    )
    .await;
    assert!(receipt.abandoned.is_empty());
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(run.summary.status, Waiting);
    assert_eq!(run.summary.machine_id, receipt.machine_id);
    assert_eq!(run.machine_name, "rig");
    assert_eq!(
        test_statuses(&run),
        vec![vec![Waiting, Waiting], vec![], vec![Waiting]]
    );
    assert_eq!(scenario_statuses(&run), vec![Waiting, Unknown, Waiting]);
    assert_eq!(run.summary.statistics.tests, 3);
    assert_eq!(run.summary.statistics.scenarios, 3);
    assert_eq!(run.summary.statistics.counts, counts(&[(Waiting, 3)]));
    assert_eq!(run.summary.timestamp, at(0));
    assert_eq!(run.summary.timestamp_start, None);
    assert_eq!(run.summary.timestamp_stop, None);
    let ids: Vec<ScenarioId> = run.scenarios.iter().map(|s| s.id).collect();
    assert_eq!(ids, receipt.ids.scenario_ids, "scenario ids in plan order");
    let test_ids: Vec<Vec<TestId>> = run
        .scenarios
        .iter()
        .map(|s| s.tests.iter().map(|t| t.id).collect())
        .collect();
    assert_eq!(test_ids, receipt.ids.test_ids, "test ids in plan order");
    let names: Vec<&str> = run
        .scenarios
        .iter()
        .flat_map(|s| s.tests.iter().map(|t| t.file.file_name.as_str()))
        .collect();
    assert_eq!(names, ["a.py", "b.py", "c.py"]);
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.status, MachineStatus::Run(Waiting));
    assert_eq!(machine.latest_run, Some(receipt.ids.run_id));
}

/// [Rule 1](crate::rules#rule-1): a new plan abandons the machine's ongoing run: its ongoing tests
/// become `unknown`, the running one stopped at the new plan's timestamp, and statuses are
/// re-aggregated; the run stops when the server received the plan ([rule 4](crate::rules#rule-4)).
pub async fn rule1_new_plan_abandons_ongoing_run(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let first = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    run_test_late(
        &tracker,
        &clock,
        "rig",
        "lamp.py",
        "a.py",
        Passed,
        at(1),
        at(2),
    )
    .await;
    start_late(&tracker, &clock, "rig", "lamp.py", "b.py", at(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    clock.set(server(at(10)));
    let second = record_plan(&tracker, plan("rig", at(10), TWO_BY_TWO)).await;
    assert_eq!(second.abandoned, vec![first.ids.run_id]);
    assert_eq!(second.machine_id, first.machine_id);

    let old = detail(&tracker, first.ids.run_id).await;
    assert_eq!(
        test_statuses(&old),
        vec![vec![Passed, Unknown], vec![Unknown, Unknown]]
    );
    assert_eq!(scenario_statuses(&old), vec![Unknown, Unknown]);
    assert_eq!(old.summary.status, Unknown);
    assert_eq!(
        old.summary.statistics.counts,
        counts(&[(Passed, 1), (Unknown, 3)])
    );
    let running = &old.scenarios[0].tests[1];
    assert_eq!(
        (running.timestamp_start, running.timestamp_stop),
        (Some(at(3)), Some(at(10)))
    );
    let never_ran = &old.scenarios[1].tests[0];
    assert_eq!(
        (never_ran.timestamp_start, never_ran.timestamp_stop),
        (None, None)
    );
    assert_eq!(old.summary.timestamp_start, Some(server(at(1))));
    assert_eq!(old.summary.timestamp_stop, Some(server(at(10))));
    assert_eq!(old.scenarios[1].timestamp_stop, Some(server(at(10))));

    let new = detail(&tracker, second.ids.run_id).await;
    assert_eq!(new.summary.status, Waiting);
    let receipt = start(&tracker, "rig", "lamp.py", "b.py", at(11))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        receipt.run_id, second.ids.run_id,
        "events go to the new run"
    );
}

/// [Rule 2](crate::rules#rule-2): the first waiting test with that path and name, in plan order,
/// starts — also when a test file is listed twice (the seed picked the last one).
pub async fn rule2_start_picks_first_waiting_in_plan_order(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let receipt = record_plan(
        &tracker,
        plan(
            "rig",
            at(0),
            &[
                ("trunk.py", &["twice.py", "other.py", "twice.py"]),
                ("trunk2.py", &["twice.py"]),
            ],
        ),
    )
    .await;
    let ids = &receipt.ids.test_ids;
    let first = start(&tracker, "rig", "trunk.py", "twice.py", at(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.test_id, ids[0][0]);
    assert_eq!(first.status, Running);
    stop(&tracker, "rig", "trunk.py", "twice.py", Failed, at(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = start(&tracker, "rig", "trunk.py", "twice.py", at(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        second.test_id, ids[0][2],
        "the second listing starts next, not the other path's"
    );
    stop(&tracker, "rig", "trunk.py", "twice.py", Passed, at(4))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let third = start(&tracker, "rig", "trunk.py", "twice.py", at(5)).await;
    assert!(
        matches!(third, Err(Error::NoMatch(NoMatch::NoWaitingTest { .. }))),
        "no third listing at that path: {third:?}"
    );
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(
        test_statuses(&run),
        vec![vec![Failed, Waiting, Passed], vec![Waiting]]
    );
}

/// [Rule 2](crate::rules#rule-2): a machine runs one test at a time: starting another makes the
/// running one `unknown`.
pub async fn rule2_one_running_test_per_machine(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    start(&tracker, "rig", "lamp.py", "a.py", at(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    start(&tracker, "rig", "door.py", "c.py", at(5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(
        test_statuses(&run),
        vec![vec![Unknown, Waiting], vec![Running, Waiting]]
    );
    let abandoned = &run.scenarios[0].tests[0];
    assert_eq!(abandoned.timestamp_stop, Some(at(5)));
    assert_eq!(
        run.scenarios[0].counts,
        counts(&[(Unknown, 1), (Waiting, 1)])
    );
    assert_eq!(run.scenarios[0].status, Waiting);
    assert_eq!(run.scenarios[1].status, Running);
    assert_eq!(run.summary.status, Running);
    let late_stop = stop(&tracker, "rig", "lamp.py", "a.py", Passed, at(6)).await;
    assert!(
        matches!(
            late_stop,
            Err(Error::NoMatch(NoMatch::NoRunningTest { .. }))
        ),
        "the replaced test is no longer running: {late_stop:?}"
    );
}

/// [Rule 3](crate::rules#rule-3): a stop gives the running test its final status and stop time.
pub async fn rule3_stop_sets_final_status(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let finals = [Passed, Warning, Failed, Status::Error, Unknown];
    let names = ["1.py", "2.py", "3.py", "4.py", "5.py"];
    let receipt = record_plan(&tracker, plan("rig", at(0), &[("all.py", &names)])).await;
    for (i, (status, test)) in finals.iter().zip(names).enumerate() {
        let t = i64::try_from(i).unwrap_or_default() * 10;
        start(&tracker, "rig", "all.py", test, at(t + 1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let receipt = stop(&tracker, "rig", "all.py", test, *status, at(t + 2))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(receipt.status, *status);
    }
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(test_statuses(&run), vec![finals.to_vec()]);
    for (i, test) in run.scenarios[0].tests.iter().enumerate() {
        let t = i64::try_from(i).unwrap_or_default() * 10;
        assert_eq!(test.timestamp_start, Some(at(t + 1)));
        assert_eq!(test.timestamp_stop, Some(at(t + 2)));
    }
    assert_eq!(run.summary.status, Unknown, "unknown outranks failed");
}

/// [Rule 3](crate::rules#rule-3): a stop's failure message and details are kept with its
/// test exactly as sent (by name or by id, alone or in a batch); a test whose stop said
/// nothing has none, whatever another test of the same file said before, and a start carrying
/// them is invalid and changes nothing.
pub async fn rule3_stop_keeps_its_failure_details(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let tests = ["dup.py", "dup.py", "x.py", "y.py"];
    let first = record_plan(&tracker, plan("rig", at(0), &[("s.py", &tests)])).await;
    let ids = first.ids.test_ids[0].clone();
    let named = |file_name: &str, action, time, failure| TestEvent {
        target: TestTarget::Named {
            machine: super::support::name("rig"),
            file_path: test_path("s.py"),
            file_name: file_name.to_owned(),
        },
        action,
        at: at(time).into(),
        failure,
    };
    // A traceback with markup, non-ASCII text and a long tail.
    let details = format!(
        "Traceback (most recent call last):\n  <script>alert('ü')</script>\n{}AssertionError\n",
        "  frame\n".repeat(2000)
    );
    let failure = crate::FailureDetails::validate(
        Some("assert 1 == 2 — «wrong»".to_owned()),
        Some(details.clone()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_else(|| panic!("texts were given"));

    let refused = tracker
        .record_test_event(
            named("dup.py", TestAction::Start, 1, Some(failure.clone())),
            None,
        )
        .await;
    assert!(
        matches!(&refused, Err(Error::InvalidInput { field, .. }) if field == "message"),
        "{refused:?}"
    );
    assert_eq!(
        test_statuses(&detail(&tracker, first.ids.run_id).await),
        vec![vec![Waiting; 4]],
        "a refused start changes nothing"
    );

    // By name, without an event id: the plainest write a store has.
    for event in [
        named("dup.py", TestAction::Start, 1, None),
        named("dup.py", TestAction::Stop(Failed), 2, Some(failure.clone())),
        named("dup.py", TestAction::Start, 3, None),
        named("dup.py", TestAction::Stop(Passed), 4, None),
    ] {
        tracker
            .record_test_event(event, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // In a batch, with event ids: x.py is closed `unknown` by y.py's start; y.py's stop has
    // a message only.
    let message_only = crate::FailureDetails::validate(Some("slow".to_owned()), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let outcomes = tracker
        .record_test_events(vec![
            (
                by_id(ids[2], TestAction::Start, 5),
                Some(event_id("x-start")),
            ),
            (
                by_id(ids[3], TestAction::Start, 6),
                Some(event_id("y-start")),
            ),
            (
                TestEvent {
                    failure: message_only,
                    ..by_id(ids[3], TestAction::Stop(Warning), 7)
                },
                Some(event_id("y-stop")),
            ),
        ])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        test_statuses(&detail(&tracker, first.ids.run_id).await),
        vec![vec![Failed, Passed, Unknown, Warning]]
    );

    let said = |item: crate::ItemDetail| (item.message, item.details);
    let read = |id: TestId| {
        let tracker = &tracker;
        async move {
            said(
                tracker
                    .item(ItemRef::Test(id))
                    .await
                    .unwrap_or_else(|e| panic!("{e}")),
            )
        }
    };
    assert_eq!(
        read(ids[0]).await,
        (
            Some("assert 1 == 2 — «wrong»".to_owned()),
            Some(details.clone())
        ),
        "kept exactly"
    );
    assert_eq!(read(ids[1]).await, (None, None), "its stop said nothing");
    assert_eq!(read(ids[2]).await, (None, None), "closed by a start");
    assert_eq!(read(ids[3]).await, (Some("slow".to_owned()), None));
    let scenario = tracker
        .item(ItemRef::Scenario(first.ids.scenario_ids[0]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(said(scenario), (None, None), "scenarios say nothing");

    // The same test in the next run stops without details: nothing carries over, and the
    // first run keeps its own.
    let second = record_plan(&tracker, plan("rig", at(10), &[("s.py", &["dup.py"])])).await;
    let again = second.ids.test_ids[0][0];
    tracker
        .record_test_event(by_id(again, TestAction::Start, 11), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tracker
        .record_test_event(by_id(again, TestAction::Stop(Failed), 12), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(again).await, (None, None));
    assert_eq!(read(ids[0]).await.1, Some(details));
}

/// [Rule 3](crate::rules#rule-3): stopping a test as `cancelled` cancels every ongoing test of its
/// run.
pub async fn rule3_cancel_cancels_whole_run(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let receipt = record_plan(
        &tracker,
        plan(
            "rig",
            at(0),
            &[
                ("lamp.py", &["a.py", "b.py", "c.py"]),
                ("door.py", &["d.py"]),
            ],
        ),
    )
    .await;
    run_test_late(
        &tracker,
        &clock,
        "rig",
        "lamp.py",
        "a.py",
        Passed,
        at(1),
        at(2),
    )
    .await;
    start_late(&tracker, &clock, "rig", "lamp.py", "b.py", at(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    clock.set(server(at(4)));
    let cancelled = stop(&tracker, "rig", "lamp.py", "b.py", Cancelled, at(4))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cancelled.run_status, Cancelled);
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(
        test_statuses(&run),
        vec![vec![Passed, Cancelled, Cancelled], vec![Cancelled]]
    );
    assert_eq!(scenario_statuses(&run), vec![Cancelled, Cancelled]);
    assert_eq!(run.summary.status, Cancelled);
    assert_eq!(run.summary.timestamp_stop, Some(server(at(4))));
    assert_eq!(run.scenarios[1].timestamp_stop, Some(server(at(4))));
    assert_eq!(run.scenarios[0].tests[1].timestamp_stop, Some(at(4)));
    assert_eq!(run.scenarios[0].tests[2].timestamp_start, None);
    assert_eq!(
        run.summary.statistics.counts,
        counts(&[(Passed, 1), (Cancelled, 3)])
    );
    let after = start(&tracker, "rig", "lamp.py", "c.py", at(5)).await;
    assert!(
        matches!(after, Err(Error::NoMatch(NoMatch::NoOngoingRun { .. }))),
        "a cancelled run takes no more events: {after:?}"
    );
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.status, MachineStatus::Run(Cancelled));
}

/// [Rule 4](crate::rules#rule-4): scenarios and runs start with their first test and stop when they
/// become finished, on the server's clock; tests keep the runner's times.
pub async fn rule4_timestamps_and_durations(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    let (rig, c) = ("rig", &*clock);
    run_test_late(&tracker, c, rig, "lamp.py", "a.py", Passed, at(10), at(20)).await;
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(run.scenarios[0].timestamp_start, Some(server(at(10))));
    assert_eq!(run.scenarios[0].timestamp_stop, None, "b.py still waits");
    assert_eq!(run.scenarios[1].timestamp_start, None);
    assert_eq!(run.summary.timestamp_start, Some(server(at(10))));
    let test = &run.scenarios[0].tests[0];
    assert_eq!(
        (test.timestamp_start, test.timestamp_stop),
        (Some(at(10)), Some(at(20))),
        "a test keeps the runner's times"
    );
    run_test_late(&tracker, c, rig, "lamp.py", "b.py", Warning, at(30), at(40)).await;
    run_test_late(&tracker, c, rig, "door.py", "c.py", Passed, at(50), at(60)).await;
    run_test_late(&tracker, c, rig, "door.py", "d.py", Passed, at(70), at(95)).await;
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(
        (
            run.scenarios[0].timestamp_start,
            run.scenarios[0].timestamp_stop
        ),
        (Some(server(at(10))), Some(server(at(40))))
    );
    assert_eq!(
        (
            run.scenarios[1].timestamp_start,
            run.scenarios[1].timestamp_stop
        ),
        (Some(server(at(50))), Some(server(at(95))))
    );
    assert_eq!(run.summary.timestamp_stop, Some(server(at(95))));
    assert_eq!(run.summary.duration(), Some(chrono::Duration::seconds(85)));
    assert_eq!(run.summary.status, Warning);
    let item = tracker
        .item(ItemRef::MasterScenario(receipt.ids.run_id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (item.timestamp_start, item.timestamp_stop),
        (Some(server(at(10))), Some(server(at(95))))
    );
}

/// [Rule 5](crate::rules#rule-5): events for an unknown machine match nothing and create nothing.
pub async fn rule5_unknown_machine_matches_nothing(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let started = start(&tracker, "ghost", "lamp.py", "a.py", at(1)).await;
    assert!(
        matches!(started, Err(Error::NoMatch(NoMatch::UnknownMachine { .. }))),
        "{started:?}"
    );
    let stopped = stop(&tracker, "ghost", "lamp.py", "a.py", Passed, at(2)).await;
    assert!(
        matches!(stopped, Err(Error::NoMatch(NoMatch::UnknownMachine { .. }))),
        "{stopped:?}"
    );
    let machines = tracker
        .machines(PageRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machines.total, 0, "an event never creates a machine");
}

/// [Rule 5](crate::rules#rule-5): events that match no waiting or running test change nothing.
pub async fn rule5_unmatched_events_change_nothing(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    run_test(&tracker, "rig", "lamp.py", "a.py", Passed, at(1), at(2)).await;
    start(&tracker, "rig", "door.py", "c.py", at(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = detail(&tracker, receipt.ids.run_id).await;

    let no_such_test = start(&tracker, "rig", "lamp.py", "nope.py", at(4)).await;
    assert!(
        matches!(
            no_such_test,
            Err(Error::NoMatch(NoMatch::NoWaitingTest { .. }))
        ),
        "{no_such_test:?}"
    );
    let wrong_path = start(&tracker, "rig", "door.py", "a.py", at(4)).await;
    assert!(
        matches!(
            wrong_path,
            Err(Error::NoMatch(NoMatch::NoWaitingTest { .. }))
        ),
        "{wrong_path:?}"
    );
    let finished_again = start(&tracker, "rig", "lamp.py", "a.py", at(4)).await;
    assert!(
        matches!(
            finished_again,
            Err(Error::NoMatch(NoMatch::NoWaitingTest { .. }))
        ),
        "{finished_again:?}"
    );
    let stop_finished = stop(&tracker, "rig", "lamp.py", "a.py", Failed, at(4)).await;
    assert!(
        matches!(
            stop_finished,
            Err(Error::NoMatch(NoMatch::NoRunningTest { .. }))
        ),
        "{stop_finished:?}"
    );
    let stop_waiting = stop(&tracker, "rig", "lamp.py", "b.py", Failed, at(4)).await;
    assert!(
        matches!(
            stop_waiting,
            Err(Error::NoMatch(NoMatch::NoRunningTest { .. }))
        ),
        "{stop_waiting:?}"
    );

    assert_eq!(
        detail(&tracker, receipt.ids.run_id).await,
        before,
        "nothing changed"
    );
}

/// [Rule 6](crate::rules#rule-6): the latest run is the plan received last, whatever the runner's
/// clock says.
pub async fn rule6_latest_run_is_last_received(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    clock.set(at(100));
    let future = record_plan(&tracker, plan("rig", at(1_000_000), TWO_BY_TWO)).await;
    clock.set(at(200));
    let past = record_plan(&tracker, plan("rig", at(-1_000_000), TWO_BY_TWO)).await;
    let machine = tracker
        .machine(past.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.latest_run, Some(past.ids.run_id));
    let latest = tracker
        .latest_run(past.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no latest run"));
    assert_eq!(latest.summary.id, past.ids.run_id);
    assert_eq!(latest.summary.received_at, at(200));
    let runs = tracker
        .runs(past.machine_id, PageRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let order: Vec<RunId> = runs.items.iter().map(|r| r.id).collect();
    assert_eq!(order, vec![past.ids.run_id, future.ids.run_id]);
    let event = start(&tracker, "rig", "lamp.py", "a.py", at(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(event.run_id, past.ids.run_id);
}

/// [Rule 7](crate::rules#rule-7): machine names match case-insensitively; the first spelling is
/// kept.
pub async fn rule7_machine_names_are_case_insensitive(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let first = record_plan(&tracker, plan("Rig-1", at(0), TWO_BY_TWO)).await;
    let event = start(&tracker, "RIG-1", "lamp.py", "a.py", at(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(event.machine_id, first.machine_id);
    stop(&tracker, "rig-1", "lamp.py", "a.py", Passed, at(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = record_plan(&tracker, plan("rig-1", at(3), TWO_BY_TWO)).await;
    assert_eq!(second.machine_id, first.machine_id);
    let unicode = record_plan(&tracker, plan("Prüfstand-Ä", at(4), TWO_BY_TWO)).await;
    let again = record_plan(&tracker, plan("PRÜFSTAND-ä", at(5), TWO_BY_TWO)).await;
    assert_eq!(unicode.machine_id, again.machine_id);
    let machines = tracker
        .machines(PageRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = machines.items.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["Prüfstand-Ä", "Rig-1"]);
    let runs = tracker
        .runs(first.machine_id, PageRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runs.total, 2);
}

/// [Rule 8](crate::rules#rule-8): a stop with an ongoing status is invalid input and changes
/// nothing.
pub async fn rule8_stop_requires_final_status(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    start(&tracker, "rig", "lamp.py", "a.py", at(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = detail(&tracker, receipt.ids.run_id).await;
    for status in [Waiting, Running] {
        let result = stop(&tracker, "rig", "lamp.py", "a.py", status, at(2)).await;
        assert!(
            matches!(result, Err(Error::InvalidInput { .. })),
            "{status}: {result:?}"
        );
    }
    let payload: TestStopPayload = serde_json::from_value(serde_json::json!({
        "machine_name": "rig", "file_path": test_path("lamp.py"), "file_name": "a.py",
        "status": "running", "timestamp_stop": "2026-11-24 13:00:02",
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        payload.validate(),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(detail(&tracker, receipt.ids.run_id).await, before);
}

/// Aggregation: the highest-priority status wins; waiting tests keep a run `waiting`.
pub async fn aggregation_follows_priority(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let receipt = record_plan(
        &tracker,
        plan(
            "rig",
            at(0),
            &[
                ("one.py", &["a.py", "b.py", "c.py"]),
                ("empty.py", &[]),
                ("two.py", &["d.py"]),
            ],
        ),
    )
    .await;
    run_test(&tracker, "rig", "one.py", "a.py", Passed, at(1), at(2)).await;
    run_test(&tracker, "rig", "one.py", "b.py", Failed, at(3), at(4)).await;
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(scenario_statuses(&run), vec![Waiting, Unknown, Waiting]);
    assert_eq!(
        run.summary.status, Waiting,
        "waiting tests keep the run waiting"
    );
    run_test(&tracker, "rig", "one.py", "c.py", Passed, at(5), at(6)).await;
    run_test(&tracker, "rig", "two.py", "d.py", Warning, at(7), at(8)).await;
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(scenario_statuses(&run), vec![Failed, Unknown, Warning]);
    assert_eq!(
        run.summary.status, Failed,
        "an empty scenario takes no part in the run's status"
    );
    let scenario = tracker
        .item(ItemRef::Scenario(receipt.ids.scenario_ids[1]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scenario.status, Unknown);
}

/// A plan with no tests is a finished `unknown` run (the seed left it waiting forever).
pub async fn empty_plans_finish_at_once(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let empty = record_plan(&tracker, plan("rig", at(0), &[])).await;
    let run = detail(&tracker, empty.ids.run_id).await;
    assert_eq!(run.summary.status, Unknown);
    assert_eq!(run.summary.statistics.tests, 0);
    let only_empty = record_plan(&tracker, plan("rig", at(1), &[("empty.py", &[])])).await;
    assert!(
        only_empty.abandoned.is_empty(),
        "a finished run is not abandoned"
    );
    let run = detail(&tracker, only_empty.ids.run_id).await;
    assert_eq!(run.summary.status, Unknown);
    let event = start(&tracker, "rig", "empty.py", "a.py", at(2)).await;
    assert!(
        matches!(event, Err(Error::NoMatch(NoMatch::NoOngoingRun { .. }))),
        "{event:?}"
    );
}

/// Every field comes back exactly: unicode, empty and null scripts, the longest names and paths.
pub async fn fields_round_trip(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let long_path = format!("/{}", "p".repeat(crate::MAX_PATH_CHARS - 1));
    let long_name = "n".repeat(crate::MAX_NAME_CHARS);
    let long_machine = "m".repeat(crate::MAX_NAME_CHARS);
    let unicode_script = "# Prüfung — 測試 🚦\nprint('ok')\n\ttab\r\n\"quotes\" <b>&amp;</b>\n";
    let big_script = "x = 1\n".repeat(20_000);
    let plan = Plan {
        machine: super::support::name(&long_machine),
        timestamp: at(0).into(),
        master: file("/ścieżka/主", "master 主.py", None),
        scenarios: vec![
            PlannedScenario {
                file: file("/s", "empty-script.py", Some("")),
                tests: vec![
                    file(&long_path, &long_name, Some(unicode_script)),
                    file("/t", "null.py", None),
                    file("/t", "empty.py", Some("")),
                    file("/t", "big.py", Some(&big_script)),
                    file("", "", Some("same")),
                    // What a JSON or SQL text would have to escape.
                    file("/t/q\"uote\\back", "tab\there 🚦\u{2028}\u{7f}.py", None),
                ],
            },
            PlannedScenario {
                file: file("/s", "<script>alert(1)</script>.py", Some("same")),
                tests: vec![file("/t", "same.py", Some("same"))],
            },
        ],
    };
    let receipt = record_plan(&tracker, plan.clone()).await;
    let master = tracker
        .item(ItemRef::MasterScenario(receipt.ids.run_id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(master.file.file_path, "/ścieżka/主");
    assert_eq!(master.file.file_name, "master 主.py");
    assert_eq!(master.script, None);
    assert_eq!(master.run_id, receipt.ids.run_id);
    assert_eq!(master.machine_id, receipt.machine_id);
    for (s, planned) in plan.scenarios.iter().enumerate() {
        let scenario = tracker
            .item(ItemRef::Scenario(receipt.ids.scenario_ids[s]))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scenario.file.file_name, planned.file.file_name);
        assert_eq!(scenario.script, planned.file.script);
        for (t, planned) in planned.tests.iter().enumerate() {
            let test = tracker
                .item(ItemRef::Test(receipt.ids.test_ids[s][t]))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                test.file.file_path, planned.file_path,
                "path of test {s}/{t}"
            );
            assert_eq!(
                test.file.file_name, planned.file_name,
                "name of test {s}/{t}"
            );
            assert_eq!(test.script, planned.script, "script of test {s}/{t}");
            assert_eq!(test.item, ItemRef::Test(receipt.ids.test_ids[s][t]));
        }
    }
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.name, long_machine);
    let started = tracker
        .record_test_start(crate::TestStart {
            machine: super::support::name(&long_machine),
            file_path: long_path.clone(),
            file_name: long_name.clone(),
            at: at(1).into(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started.test_id, receipt.ids.test_ids[0][0]);
}

/// Machines page in name order (case-insensitively), with correct totals.
pub async fn machines_paginate_by_name(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let mut expected = Vec::new();
    for i in 0..25 {
        let name = if i % 2 == 0 {
            format!("Rig-{i:02}")
        } else {
            format!("rig-{i:02}")
        };
        record_plan(&tracker, plan(&name, at(i), &[("s.py", &["t.py"])])).await;
        expected.push(name);
    }
    let mut seen = Vec::new();
    for number in 1..=3 {
        let page = tracker
            .machines(page(number, 10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(page.total, 25);
        assert_eq!(page.total_pages(), 3);
        assert_eq!(page.items.len(), if number < 3 { 10 } else { 5 });
        assert_eq!(page.has_next(), number < 3);
        seen.extend(page.items.into_iter().map(|m| m.name));
    }
    assert_eq!(seen, expected);
    let past = tracker.machines(page(4, 10)).await;
    assert!(
        matches!(
            past,
            Err(Error::NotFound {
                kind: ItemKind::Page,
                id: 4
            })
        ),
        "{past:?}"
    );
    let all = tracker
        .machines(page(1, 100))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.items.len(), 25);
}

/// A machine's runs page newest (last received) first.
pub async fn runs_paginate_newest_first(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(record_plan(&tracker, plan("rig", at(100 - i), TWO_BY_TWO)).await);
    }
    record_plan(&tracker, plan("other", at(0), TWO_BY_TWO)).await;
    let machine = ids[0].machine_id;
    let newest_first: Vec<RunId> = ids.iter().rev().map(|r| r.ids.run_id).collect();
    let first = tracker
        .runs(machine, page(1, 5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = tracker
        .runs(machine, page(2, 5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let third = tracker
        .runs(machine, page(3, 5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.total, 12);
    let listed: Vec<RunId> = [first.items, second.items, third.items]
        .concat()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, newest_first);
    assert!(matches!(
        tracker.runs(machine, page(4, 5)).await,
        Err(Error::NotFound {
            kind: ItemKind::Page,
            ..
        })
    ));
    let statuses: HashSet<Status> = tracker
        .runs(machine, page(1, 100))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        HashSet::from([Unknown, Waiting]),
        "older runs were abandoned"
    );
    let unknown = tracker.runs(MachineId(i64::MAX), page(1, 5)).await;
    assert!(
        matches!(
            unknown,
            Err(Error::NotFound {
                kind: ItemKind::Machine,
                ..
            })
        ),
        "{unknown:?}"
    );
}

/// A machine's status is its latest run's status.
pub async fn machine_status_follows_latest_run(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let receipt = record_plan(&tracker, plan("rig", at(0), &[("s.py", &["a.py", "b.py"])])).await;
    let status = |tracker: crate::Tracker| async move {
        tracker
            .machine(receipt.machine_id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .status
    };
    assert_eq!(status(tracker.clone()).await, MachineStatus::Run(Waiting));
    start(&tracker, "rig", "s.py", "a.py", at(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status(tracker.clone()).await, MachineStatus::Run(Running));
    stop(&tracker, "rig", "s.py", "a.py", Failed, at(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status(tracker.clone()).await, MachineStatus::Run(Waiting));
    run_test(&tracker, "rig", "s.py", "b.py", Passed, at(3), at(4)).await;
    assert_eq!(status(tracker.clone()).await, MachineStatus::Run(Failed));
    let listed = tracker
        .machines(PageRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.items[0].status, MachineStatus::Run(Failed));
    record_plan(&tracker, plan("rig", at(5), &[("s.py", &["a.py"])])).await;
    assert_eq!(status(tracker.clone()).await, MachineStatus::Run(Waiting));
}

/// Statistics count every status, every test and every scenario.
pub async fn statistics_count_every_status(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let names: &[&str] = &["1.py", "2.py", "3.py", "4.py", "5.py", "6.py", "7.py"];
    let receipt = record_plan(
        &tracker,
        plan("rig", at(0), &[("s.py", names), ("e.py", &[])]),
    )
    .await;
    let finals = [Passed, Warning, Failed, Status::Error, Unknown];
    for (i, status) in finals.iter().enumerate() {
        let t = i64::try_from(i).unwrap_or_default() * 2;
        run_test(&tracker, "rig", "s.py", names[i], *status, at(t), at(t + 1)).await;
    }
    start(&tracker, "rig", "s.py", "6.py", at(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let run = detail(&tracker, receipt.ids.run_id).await;
    let stats = run.summary.statistics;
    assert_eq!(stats.tests, 7);
    assert_eq!(stats.scenarios, 2);
    assert_eq!(
        stats.counts,
        counts(&[
            (Passed, 1),
            (Warning, 1),
            (Failed, 1),
            (Status::Error, 1),
            (Unknown, 1),
            (Running, 1),
            (Waiting, 1)
        ])
    );
    let listed = tracker
        .runs(receipt.machine_id, PageRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.items[0].statistics, stats);
    assert_eq!(run.scenarios[0].counts, stats.counts);
}

/// Unknown ids are `NotFound` of the right kind, never a panic or an empty value.
pub async fn unknown_ids_are_not_found(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    let missing = 987_654_321;
    assert!(
        matches!(tracker.machine(MachineId(missing)).await, Err(Error::NotFound { kind: ItemKind::Machine, id }) if id == missing)
    );
    assert!(matches!(
        tracker.run(RunId(missing)).await,
        Err(Error::NotFound {
            kind: ItemKind::Run,
            ..
        })
    ));
    assert!(matches!(
        tracker.latest_run(MachineId(missing)).await,
        Err(Error::NotFound {
            kind: ItemKind::Machine,
            ..
        })
    ));
    for (item, kind) in [
        (
            ItemRef::MasterScenario(RunId(missing)),
            ItemKind::MasterScenario,
        ),
        (ItemRef::Scenario(ScenarioId(missing)), ItemKind::Scenario),
        (ItemRef::Test(TestId(missing)), ItemKind::Test),
        (ItemRef::Test(TestId(0)), ItemKind::Test),
        (ItemRef::Test(TestId(-1)), ItemKind::Test),
    ] {
        let result = tracker.item(item).await;
        assert!(
            matches!(&result, Err(Error::NotFound { kind: k, .. }) if *k == kind),
            "{item:?}: {result:?}"
        );
    }
}

/// The fixtures a real Python runner sends, replayed: every test ends as its stop said.
pub async fn python_runner_story(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let plan: PlanPayload =
        serde_json::from_str(include_str!("../../fixtures/plan-python-runner.json"))
            .unwrap_or_else(|e| panic!("fixture plan: {e}"));
    let receipt = tracker
        .record_plan(plan.validate().unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../fixtures/events-python-runner.json"))
            .unwrap_or_else(|e| panic!("fixture events: {e}"));
    let mut expected = Vec::new();
    for event in events {
        let body = event["body"].clone();
        match event["endpoint"].as_str() {
            Some("/tm_api/test_start/") => {
                let payload: TestStartPayload =
                    serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"));
                tracker
                    .record_test_start(payload.validate().unwrap_or_else(|e| panic!("{e}")))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            Some("/tm_api/test_stop/") => {
                let payload: TestStopPayload =
                    serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"));
                expected.push((payload.file_name.clone(), payload.status));
                tracker
                    .record_test_stop(payload.validate().unwrap_or_else(|e| panic!("{e}")))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            other => panic!("unexpected endpoint {other:?}"),
        }
    }
    let run = detail(&tracker, receipt.ids.run_id).await;
    let actual: Vec<(String, Status)> = run
        .scenarios
        .iter()
        .flat_map(|s| s.tests.iter().map(|t| (t.file.file_name.clone(), t.status)))
        .collect();
    assert_eq!(
        actual, expected,
        "every test has its stop's status, in plan order"
    );
    assert_eq!(run.machine_name, "machine #1");
    let empty = run
        .scenarios
        .last()
        .unwrap_or_else(|| panic!("no scenarios"));
    assert_eq!(empty.file.file_name, "scenario_04_empty.py");
    assert!(empty.tests.is_empty());
    assert_eq!(empty.status, Unknown);
    assert_eq!(run.summary.status, Failed);
    assert_eq!(run.summary.statistics.tests, 10);
    assert_eq!(run.summary.statistics.scenarios, 4);
    let null_script = tracker
        .item(ItemRef::Test(receipt.ids.test_ids[2][2]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(null_script.script, None);
}

/// Sixteen machines post plans and events concurrently: nothing lost, nothing misapplied.
pub async fn sixteen_machines_post_concurrently(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let finals = [Passed, Warning, Failed, Status::Error, Unknown];
    let mut tasks = tokio::task::JoinSet::new();
    for m in 0..16_usize {
        let tracker = tracker.clone();
        tasks.spawn(async move {
            let machine = format!("rig-{m:02}");
            let tests: Vec<String> = (0..6).map(|t| format!("t{t}.py")).collect();
            let test_refs: Vec<&str> = tests.iter().map(String::as_str).collect();
            let receipt = record_plan(
                &tracker,
                plan(
                    &machine,
                    at(0),
                    &[("a.py", &test_refs[..3]), ("b.py", &test_refs[3..])],
                ),
            )
            .await;
            let mut expected = Vec::new();
            for (t, test) in tests.iter().enumerate() {
                let scenario = if t < 3 { "a.py" } else { "b.py" };
                let status = finals[(m + t) % finals.len()];
                let time = i64::try_from(t).unwrap_or_default();
                run_test(
                    &tracker,
                    &machine,
                    scenario,
                    test,
                    status,
                    at(time * 2 + 1),
                    at(time * 2 + 2),
                )
                .await;
                tokio::task::yield_now().await;
                expected.push(status);
            }
            (receipt, expected)
        });
    }
    let mut machines = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let (receipt, expected) = joined.unwrap_or_else(|e| panic!("task failed: {e}"));
        machines.insert(receipt.machine_id);
        let run = detail(&tracker, receipt.ids.run_id).await;
        let actual: Vec<Status> = test_statuses(&run).concat();
        assert_eq!(actual, expected, "run of {}", run.machine_name);
        let expected_counts: StatusCounts = expected.iter().copied().collect();
        assert_eq!(run.summary.statistics.counts, expected_counts);
        assert_eq!(run.summary.status, expected_counts.status());
        // The server's clock, which this scenario never moves.
        assert_eq!(run.summary.timestamp_stop, Some(at(0)));
    }
    assert_eq!(machines.len(), 16);
    let listed = tracker
        .machines(page(1, 100))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.total, 16);
}

/// Two plans for one new machine at once: one machine, two runs, the older one abandoned.
pub async fn concurrent_plans_for_one_new_machine(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let mut tasks = tokio::task::JoinSet::new();
    for spelling in ["New-Rig", "new-rig", "NEW-RIG", "new-RIG"] {
        let tracker = tracker.clone();
        tasks.spawn(async move { record_plan(&tracker, plan(spelling, at(0), TWO_BY_TWO)).await });
    }
    let mut receipts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        receipts.push(joined.unwrap_or_else(|e| panic!("task failed: {e}")));
    }
    let machine = receipts[0].machine_id;
    assert!(
        receipts.iter().all(|r| r.machine_id == machine),
        "one machine"
    );
    let runs = tracker
        .runs(machine, page(1, 10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runs.total, 4);
    let waiting: Vec<RunId> = runs
        .items
        .iter()
        .filter(|r| r.status == Waiting)
        .map(|r| r.id)
        .collect();
    assert_eq!(
        waiting,
        vec![runs.items[0].id],
        "only the latest run is ongoing"
    );
    let abandoned: usize = receipts.iter().map(|r| r.abandoned.len()).sum();
    assert_eq!(abandoned, 3);
}

/// A machine's last-seen time is the server's time of its latest applied post.
pub async fn last_seen_is_server_time(store: Arc<dyn Store>) {
    let (tracker, clock) = tracker(store);
    clock.set(at(500));
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.last_seen, Some(at(500)));
    clock.set(at(600));
    start(&tracker, "rig", "lamp.py", "a.py", at(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.last_seen, Some(at(600)));
}

fn by_id(test: TestId, action: TestAction, time: i64) -> TestEvent {
    TestEvent {
        target: TestTarget::Id(test),
        action,
        at: at(time).into(),
        failure: None,
    }
}

fn event_id(id: &str) -> EventId {
    EventId::new(id).unwrap_or_else(|e| panic!("{e}"))
}

/// Events addressed by test id start and stop exactly that test.
pub async fn events_by_test_id(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let first = record_plan(
        &tracker,
        plan("rig", at(0), &[("s.py", &["dup.py", "dup.py", "x.py"])]),
    )
    .await;
    let ids = &first.ids.test_ids[0];
    let started = tracker
        .record_test_event(by_id(ids[1], TestAction::Start, 1), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        started.receipt.test_id, ids[1],
        "the second listing, as addressed"
    );
    assert!(!started.replayed);
    let wrong = tracker
        .record_test_event(by_id(ids[0], TestAction::Stop(Passed), 2), None)
        .await;
    assert!(
        matches!(wrong, Err(Error::NoMatch(NoMatch::NoRunningTest { .. }))),
        "{wrong:?}"
    );
    let stopped = tracker
        .record_test_event(by_id(ids[1], TestAction::Stop(Failed), 3), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (stopped.receipt.status, stopped.receipt.run_status),
        (Failed, Waiting)
    );
    let again = tracker
        .record_test_event(by_id(ids[1], TestAction::Start, 4), None)
        .await;
    assert!(
        matches!(again, Err(Error::NoMatch(NoMatch::NoWaitingTest { .. }))),
        "{again:?}"
    );
    let run = detail(&tracker, first.ids.run_id).await;
    assert_eq!(test_statuses(&run), vec![vec![Waiting, Failed, Waiting]]);

    record_plan(&tracker, plan("rig", at(5), &[("s.py", &["dup.py"])])).await;
    let old = tracker
        .record_test_event(by_id(ids[2], TestAction::Start, 6), None)
        .await;
    assert!(
        matches!(
            old,
            Err(Error::NoMatch(NoMatch::TestNotInOngoingRun { .. }))
        ),
        "a test of an abandoned run: {old:?}"
    );
    let missing = tracker
        .record_test_event(by_id(TestId(987_654_321), TestAction::Start, 7), None)
        .await;
    assert!(
        matches!(
            missing,
            Err(Error::NotFound {
                kind: ItemKind::Test,
                ..
            })
        ),
        "{missing:?}"
    );
}

/// A batch applies its events in order, each seeing the ones before it (also when the store
/// commits them together), answers each in its place, and a rejected event stops nothing; a
/// retried batch with event ids applies nothing twice.
pub async fn batches_apply_in_order(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    let ids = &receipt.ids.test_ids;
    let other = record_plan(&tracker, plan("other", at(0), TWO_BY_TWO)).await;
    let batch = |ids: &[Vec<TestId>], other: &[Vec<TestId>]| {
        vec![
            (by_id(ids[0][0], TestAction::Start, 1), Some(event_id("e1"))),
            (
                by_id(other[1][0], TestAction::Start, 1),
                Some(event_id("e2")),
            ),
            (
                by_id(ids[0][0], TestAction::Stop(Passed), 2),
                Some(event_id("e3")),
            ),
            // Already stopped by the event before it: rejected, and the batch goes on.
            (
                by_id(ids[0][0], TestAction::Stop(Failed), 3),
                Some(event_id("e4")),
            ),
            (by_id(ids[0][1], TestAction::Start, 4), Some(event_id("e5"))),
            (
                by_id(ids[0][1], TestAction::Stop(Failed), 5),
                Some(event_id("e6")),
            ),
        ]
    };
    let results = tracker
        .record_test_events(batch(ids, &other.ids.test_ids))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(results.len(), 6);
    for (i, result) in results.iter().enumerate() {
        match (i, result) {
            (3, Err(Error::NoMatch(NoMatch::NoRunningTest { .. }))) => {}
            (3, other) => panic!("event 3 must be rejected: {other:?}"),
            (_, Ok(recorded)) => assert!(!recorded.replayed, "event {i}"),
            (_, Err(e)) => panic!("event {i}: {e}"),
        }
    }
    let statuses = |result: &crate::Result<crate::Recorded<crate::EventReceipt>>| {
        result
            .as_ref()
            .map(|r| (r.receipt.status, r.receipt.run_status))
            .ok()
    };
    assert_eq!(statuses(&results[2]), Some((Passed, Waiting)));
    assert_eq!(statuses(&results[5]), Some((Failed, Waiting)));
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(
        test_statuses(&run),
        vec![vec![Passed, Failed], vec![Waiting, Waiting]]
    );
    let run = detail(&tracker, other.ids.run_id).await;
    assert_eq!(
        test_statuses(&run),
        vec![vec![Waiting, Waiting], vec![Running, Waiting]]
    );

    let again = tracker
        .record_test_events(batch(ids, &other.ids.test_ids))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, result) in again.iter().enumerate() {
        match (i, result) {
            // Rejected events record nothing: tried again, rejected again.
            (3, Err(Error::NoMatch(_))) => {}
            (_, Ok(recorded)) => assert!(recorded.replayed, "event {i} replays"),
            (_, other) => panic!("event {i}: {other:?}"),
        }
    }
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(
        test_statuses(&run),
        vec![vec![Passed, Failed], vec![Waiting, Waiting]]
    );
}

/// A retried event (same client event id) is answered from the first time and applied once;
/// ids are per machine.
pub async fn retried_events_apply_once(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let plan_id = event_id("plan-1");
    let first = tracker
        .record_plan_once(plan("rig", at(0), TWO_BY_TWO), &plan_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!first.replayed);
    let retried = tracker
        .record_plan_once(plan("rig", at(0), TWO_BY_TWO), &plan_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(retried.replayed);
    assert_eq!(
        retried.receipt.ids, first.receipt.ids,
        "the same run, not a new one"
    );
    let runs = tracker
        .runs(first.receipt.machine_id, PageRequest::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runs.total, 1);

    let test = first.receipt.ids.test_ids[0][0];
    let start_id = event_id("start-a");
    let started = tracker
        .record_test_event(by_id(test, TestAction::Start, 1), Some(&start_id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!started.replayed);
    let before = detail(&tracker, first.receipt.ids.run_id).await;
    let again = tracker
        .record_test_event(by_id(test, TestAction::Start, 1), Some(&start_id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.replayed);
    assert_eq!(again.receipt, started.receipt);
    assert_eq!(
        detail(&tracker, first.receipt.ids.run_id).await,
        before,
        "applied once"
    );

    let stop_id = event_id("stop-a");
    let stop_event = by_id(test, TestAction::Stop(Passed), 2);
    tracker
        .record_test_event(stop_event.clone(), Some(&stop_id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let late_retry = tracker
        .record_test_event(by_id(test, TestAction::Start, 1), Some(&start_id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        late_retry.replayed,
        "a late retry of the start is still answered, not an error"
    );
    let stop_retry = tracker
        .record_test_event(stop_event, Some(&stop_id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (stop_retry.replayed, stop_retry.receipt.status),
        (true, Passed)
    );

    let misuse = tracker
        .record_test_event(by_id(test, TestAction::Start, 3), Some(&plan_id))
        .await;
    assert!(
        matches!(misuse, Err(Error::IdempotencyKeyReused { .. })),
        "a plan's id reused for a start: {misuse:?}"
    );
    let misuse = tracker
        .record_plan_once(plan("rig", at(4), TWO_BY_TWO), &start_id)
        .await;
    assert!(
        matches!(misuse, Err(Error::IdempotencyKeyReused { .. })),
        "a start's id reused for a plan: {misuse:?}"
    );

    let other = tracker
        .record_plan_once(plan("other-rig", at(0), TWO_BY_TWO), &plan_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!other.replayed, "event ids are per machine");
}

/// The same event posted concurrently with one event id is applied exactly once.
pub async fn concurrent_retries_apply_once(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let receipt = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    let test = receipt.ids.test_ids[0][0];
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let tracker = tracker.clone();
        tasks.spawn(async move {
            tracker
                .record_test_event(by_id(test, TestAction::Start, 1), Some(&event_id("same")))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        });
    }
    let mut applied = 0;
    while let Some(joined) = tasks.join_next().await {
        let recorded = joined.unwrap_or_else(|e| panic!("task failed: {e}"));
        assert_eq!(recorded.receipt.test_id, test);
        if !recorded.replayed {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    let run = detail(&tracker, receipt.ids.run_id).await;
    assert_eq!(
        run.summary.statistics.counts,
        counts(&[(Running, 1), (Waiting, 3)])
    );
}

/// Deleting is optional: a backend without it answers `NotSupported` and the scenario ends.
fn deletion_supported(result: crate::Result<()>) -> bool {
    match result {
        Err(Error::NotSupported { operation }) => {
            eprintln!("skipped: this store does not support `{operation}` (optional)");
            false
        }
        other => {
            other.unwrap_or_else(|e| panic!("delete failed: {e}"));
            true
        }
    }
}

/// A deleted run is gone with its items; the machine's latest run falls back to the one
/// received before; other runs and machines are untouched; a new plan works as before.
pub async fn deleting_a_run(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let first = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    start(&tracker, "rig", "lamp.py", "a.py", at(1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stop(&tracker, "rig", "lamp.py", "a.py", Passed, at(2))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = record_plan(&tracker, plan("rig", at(10), TWO_BY_TWO)).await;
    let other = record_plan(&tracker, plan("bench", at(10), TWO_BY_TWO)).await;
    start(&tracker, "rig", "lamp.py", "a.py", at(11))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    if !deletion_supported(tracker.delete_run(second.ids.run_id).await) {
        return;
    }
    let gone = second.ids.run_id;
    assert!(matches!(
        tracker.run(gone).await,
        Err(Error::NotFound {
            kind: ItemKind::Run,
            ..
        })
    ));
    for item in [
        ItemRef::MasterScenario(gone),
        ItemRef::Scenario(second.ids.scenario_ids[0]),
        ItemRef::Test(second.ids.test_ids[0][0]),
    ] {
        assert!(
            matches!(tracker.item(item).await, Err(Error::NotFound { .. })),
            "{item:?} is gone"
        );
    }
    let machine = tracker
        .machine(second.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.latest_run, Some(first.ids.run_id));
    let runs = tracker
        .runs(second.machine_id, page(1, 10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runs.total, 1);
    assert_eq!(runs.items[0].id, first.ids.run_id);
    // The first run was abandoned by the second plan: nothing is ongoing now.
    assert!(matches!(
        start(&tracker, "rig", "lamp.py", "b.py", at(12)).await,
        Err(Error::NoMatch(NoMatch::NoOngoingRun { .. }))
    ));
    let kept = detail(&tracker, first.ids.run_id).await;
    assert_eq!(test_statuses(&kept)[0][0], Passed);
    assert_eq!(
        detail(&tracker, other.ids.run_id).await.summary.status,
        Waiting
    );
    assert!(matches!(
        tracker.delete_run(gone).await,
        Err(Error::NotFound {
            kind: ItemKind::Run,
            ..
        })
    ));
    // Deleting the machine's only run leaves it without one.
    tracker
        .delete_run(other.ids.run_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bench = tracker
        .machine(other.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bench.latest_run, None);
    assert_eq!(bench.status, MachineStatus::NotAvailable);
    // Plans and events work as before.
    let third = record_plan(&tracker, plan("rig", at(20), TWO_BY_TWO)).await;
    assert!(third.ids.run_id != gone);
    start(&tracker, "rig", "lamp.py", "a.py", at(21))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        detail(&tracker, third.ids.run_id).await.summary.status,
        Running
    );
}

/// A deleted machine is gone with all its runs; its name is free for a new machine.
pub async fn deleting_a_machine(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let first = record_plan(&tracker, plan("rig", at(0), TWO_BY_TWO)).await;
    let second = record_plan(&tracker, plan("rig", at(10), TWO_BY_TWO)).await;
    start(&tracker, "rig", "lamp.py", "a.py", at(11))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let bench = record_plan(&tracker, plan("bench", at(10), TWO_BY_TWO)).await;
    if !deletion_supported(tracker.delete_machine(first.machine_id).await) {
        return;
    }
    assert!(matches!(
        tracker.machine(first.machine_id).await,
        Err(Error::NotFound {
            kind: ItemKind::Machine,
            ..
        })
    ));
    for run in [first.ids.run_id, second.ids.run_id] {
        assert!(matches!(
            tracker.run(run).await,
            Err(Error::NotFound {
                kind: ItemKind::Run,
                ..
            })
        ));
    }
    assert!(matches!(
        tracker.item(ItemRef::Test(second.ids.test_ids[1][1])).await,
        Err(Error::NotFound { .. })
    ));
    let machines = tracker
        .machines(page(1, 10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machines.total, 1);
    assert_eq!(machines.items[0].id, bench.machine_id);
    assert!(matches!(
        start(&tracker, "rig", "lamp.py", "b.py", at(12)).await,
        Err(Error::NoMatch(NoMatch::UnknownMachine { .. }))
    ));
    assert!(matches!(
        tracker.delete_machine(first.machine_id).await,
        Err(Error::NotFound {
            kind: ItemKind::Machine,
            ..
        })
    ));
    let again = record_plan(&tracker, plan("RIG", at(20), TWO_BY_TWO)).await;
    assert!(again.machine_id != first.machine_id);
    let machine = tracker
        .machine(again.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.name, "RIG");
    assert_eq!(machine.latest_run, Some(again.ids.run_id));
    assert_eq!(
        detail(&tracker, bench.ids.run_id).await.summary.status,
        Waiting
    );
}

fn runner_time(text: &str) -> RunnerTime {
    RunnerTime::parse(text).unwrap_or_else(|| panic!("bad timestamp in scenario: {text}"))
}

fn zone(name: &str) -> RunnerTimezone {
    name.parse().unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Naive runner times are read in the tracker's default zone until an admin gives the
/// machine its own ([`Store::set_machine_timezone`]); the next event is read in that one, and
/// times with an explicit offset are never moved. Optional: a store without it answers
/// `NotSupported` and the scenario ends after the default-zone part.
pub async fn machine_timezone_reads_naive_times(store: Arc<dyn Store>) {
    let (tracker, _) = tracker(store);
    let tracker = tracker.with_runner_timezone(zone("Europe/Warsaw"));
    let tests: &[(&str, &[&str])] = &[("lamp.py", &["a.py", "b.py", "c.py"])];
    let mut planned = plan("rig", at(0), tests);
    // 14:00 in Warsaw in November (UTC+1) is 13:00 UTC.
    planned.timestamp = runner_time("2026-11-24 14:00:00.123456");
    let receipt = record_plan(&tracker, planned).await;
    assert_eq!(
        detail(&tracker, receipt.ids.run_id).await.summary.timestamp,
        at(0)
    );
    let event = |file_name: &str, at: &str| TestStart {
        machine: super::support::name("RIG"),
        file_path: test_path("lamp.py"),
        file_name: file_name.to_owned(),
        at: runner_time(at),
    };
    tracker
        .record_test_start(event("a.py", "2026-11-24 14:00:01.123456"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.runner_timezone, None);

    match tracker
        .set_machine_timezone(receipt.machine_id, Some(zone("Asia/Tokyo")))
        .await
    {
        Err(Error::NotSupported { operation }) => {
            eprintln!("skipped: this store does not support `{operation}` (optional)");
            return;
        }
        other => other.unwrap_or_else(|e| panic!("setting the zone failed: {e}")),
    }
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.runner_timezone, Some(zone("Asia/Tokyo")));
    // An explicit offset is an instant, whatever the machine's zone.
    tracker
        .record_test_stop(TestStop {
            machine: super::support::name("rig"),
            file_path: test_path("lamp.py"),
            file_name: "a.py".to_owned(),
            status: Passed,
            at: runner_time("2026-11-24T15:00:02.123456+02:00"),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Tokyo is UTC+9: the very next naive event is read there.
    tracker
        .record_test_start(event("b.py", "2026-11-24 22:00:03.123456"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Cleared: back to the tracker's default.
    tracker
        .set_machine_timezone(receipt.machine_id, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tracker
        .record_test_start(event("c.py", "2026-11-24 14:00:04.123456"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let run = detail(&tracker, receipt.ids.run_id).await;
    let times: Vec<_> = run.scenarios[0]
        .tests
        .iter()
        .map(|t| (t.timestamp_start, t.timestamp_stop))
        .collect();
    assert_eq!(
        times,
        [
            (Some(at(1)), Some(at(2))),
            // Rule 2: c.py's start stopped b.py (unknown) at c.py's time.
            (Some(at(3)), Some(at(4))),
            (Some(at(4)), None)
        ]
    );
    let machine = tracker
        .machine(receipt.machine_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(machine.runner_timezone, None);
    assert!(matches!(
        tracker
            .set_machine_timezone(MachineId(i64::MAX), Some(zone("UTC")))
            .await,
        Err(Error::NotFound {
            kind: ItemKind::Machine,
            ..
        })
    ));
}
