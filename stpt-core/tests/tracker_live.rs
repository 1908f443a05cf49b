//! What the tracker publishes: compact changes on the right topics, never the whole run.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use chrono::{TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;
use stpt_core::{
    Delivery, InProcessBus, LiveBus, LiveEvent, LiveStream, MachineName, MachineStatus, Plan,
    PlannedScenario, ScriptFile, Status, TestStart, TestStop, Topic, Tracker,
};
use stpt_store_memory::MemoryStore;
use tokio_stream::StreamExt;

fn file(name: &str) -> ScriptFile {
    ScriptFile {
        file_path: "/t".into(),
        file_name: name.into(),
        script: Some("x".into()),
    }
}

fn plan(tests: usize) -> Plan {
    Plan {
        machine: MachineName::new("rig").unwrap(),
        timestamp: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap().into(),
        master: file("m.py"),
        scenarios: (0..tests.div_ceil(100))
            .map(|s| PlannedScenario {
                file: file(&format!("s{s}.py")),
                tests: (s * 100..tests.min((s + 1) * 100))
                    .map(|t| file(&format!("t{t}.py")))
                    .collect(),
            })
            .collect(),
    }
}

async fn next_event(stream: &mut LiveStream) -> Arc<LiveEvent> {
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        Ok(Some(Delivery::Event(event))) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn start(name: &str) -> TestStart {
    TestStart {
        machine: MachineName::new("rig").unwrap(),
        file_path: "/t".into(),
        file_name: name.into(),
        at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 1).unwrap().into(),
    }
}

fn stop(name: &str, status: Status) -> TestStop {
    TestStop {
        machine: MachineName::new("rig").unwrap(),
        file_path: "/t".into(),
        file_name: name.into(),
        status,
        at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 2).unwrap().into(),
    }
}

#[tokio::test]
async fn plan_and_events_are_published_on_their_topics() {
    let bus = Arc::new(InProcessBus::new());
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), bus.clone());
    let mut machines = bus.subscribe(Topic::Machines).await.unwrap();
    let first = tracker.record_plan(plan(3)).await.unwrap();
    let mut machine = bus
        .subscribe(Topic::Machine(first.machine_id))
        .await
        .unwrap();
    let mut other = bus
        .subscribe(Topic::Machine(stpt_core::MachineId(999)))
        .await
        .unwrap();

    match next_event(&mut machines).await.as_ref() {
        LiveEvent::MachineStatus {
            machine_name,
            status,
            ..
        } => {
            assert_eq!(machine_name, "rig");
            assert_eq!(*status, MachineStatus::Run(Status::Waiting));
        }
        other => panic!("unexpected {other:?}"),
    }
    // A new latest run: its failures (none yet) for the machine lists.
    assert_eq!(
        next_event(&mut machines).await.as_ref(),
        &LiveEvent::MachineFailures {
            machine_id: first.machine_id,
            run_id: first.ids.run_id,
            failed: 0
        }
    );

    tracker.record_test_start(start("t0.py")).await.unwrap();
    match next_event(&mut machine).await.as_ref() {
        LiveEvent::RunChanged(change) => {
            assert_eq!(change.run_id, first.ids.run_id);
            assert_eq!(change.status, Status::Running);
            assert_eq!(change.tests.len(), 1);
            assert_eq!(change.tests[0].id, first.ids.test_ids[0][0]);
            assert_eq!(change.tests[0].status, Status::Running);
            assert_eq!(change.scenarios.len(), 1);
            assert_eq!(change.counts.get(Status::Running), 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    match next_event(&mut machines).await.as_ref() {
        LiveEvent::MachineStatus { status, .. } => {
            assert_eq!(*status, MachineStatus::Run(Status::Running))
        }
        other => panic!("unexpected {other:?}"),
    }

    tracker
        .record_test_stop(stop("t0.py", Status::Cancelled))
        .await
        .unwrap();
    match next_event(&mut machine).await.as_ref() {
        LiveEvent::RunChanged(change) => {
            assert_eq!(change.status, Status::Cancelled);
            let closed = change.closed.expect("cancel closes the run");
            assert_eq!(closed.status, Status::Cancelled);
            assert_eq!(change.counts.get(Status::Cancelled), 3);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Closing every ongoing test may move failures: the lists hear the count.
    assert_eq!(
        next_event(&mut machines).await.as_ref(),
        &LiveEvent::MachineFailures {
            machine_id: first.machine_id,
            run_id: first.ids.run_id,
            failed: 0
        }
    );

    let second = tracker.record_plan(plan(2)).await.unwrap();
    match next_event(&mut machine).await.as_ref() {
        LiveEvent::RunCreated { run } => {
            assert_eq!(run.id, second.ids.run_id);
            assert_eq!(run.statistics.tests, 2);
            assert_eq!(run.status, Status::Waiting);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(100), other.next())
            .await
            .is_err(),
        "another machine's topic stays quiet"
    );
}

#[tokio::test]
async fn unmatched_events_publish_nothing() {
    let bus = Arc::new(InProcessBus::new());
    let tracker = Tracker::new(Arc::new(MemoryStore::new()), bus.clone());
    let receipt = tracker.record_plan(plan(2)).await.unwrap();
    let mut machine = bus
        .subscribe(Topic::Machine(receipt.machine_id))
        .await
        .unwrap();
    assert!(
        tracker
            .record_test_stop(stop("t0.py", Status::Passed))
            .await
            .is_err()
    );
    assert!(tracker.record_test_start(start("nope.py")).await.is_err());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), machine.next())
            .await
            .is_err()
    );
}

/// The bytes of a live change do not grow with the run: a stop in a 10,000-test run publishes
/// the same JSON as in a 10-test run, but for the digits of the ids.
#[tokio::test]
async fn change_size_does_not_depend_on_run_size() {
    let mut sizes = Vec::new();
    for tests in [10, 10_000] {
        let bus = Arc::new(InProcessBus::new());
        let tracker = Tracker::new(Arc::new(MemoryStore::new()), bus.clone());
        let receipt = tracker.record_plan(plan(tests)).await.unwrap();
        tracker.record_test_start(start("t5.py")).await.unwrap();
        let mut machine = bus
            .subscribe(Topic::Machine(receipt.machine_id))
            .await
            .unwrap();
        tracker
            .record_test_stop(stop("t5.py", Status::Failed))
            .await
            .unwrap();
        let event = next_event(&mut machine).await;
        let json = serde_json::to_string(event.as_ref()).unwrap();
        let without_digits: String = json.chars().filter(|c| !c.is_ascii_digit()).collect();
        sizes.push(without_digits.len());
    }
    assert_eq!(sizes[0], sizes[1], "change size grew with the run");
}
