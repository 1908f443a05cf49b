//! Snapshots pinning the JSON of the seed payloads as read, and of the run and machine views.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use stpt_core::{
    Clock, InProcessBus, ItemRef, LiveBus, NoMatch, PageRequest, PlanPayload, TestStartPayload,
    TestStopPayload, Topic, Tracker,
};
use stpt_store_memory::MemoryStore;
use tokio_stream::StreamExt;

#[derive(Debug)]
struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 14, 0, 0).unwrap()
    }
}

const PLAN: &str = include_str!("../fixtures/plan-python-runner.json");
const EVENTS: &str = include_str!("../fixtures/events-python-runner.json");

#[test]
fn seed_plan_payload_as_read() {
    let plan: PlanPayload = serde_json::from_str(PLAN).unwrap();
    insta::assert_json_snapshot!(plan);
}

#[test]
fn seed_event_payloads_as_read() {
    let events: Vec<serde_json::Value> = serde_json::from_str(EVENTS).unwrap();
    let start: TestStartPayload = serde_json::from_value(events[0]["body"].clone()).unwrap();
    let stop: TestStopPayload = serde_json::from_value(events[1]["body"].clone()).unwrap();
    insta::assert_json_snapshot!("test_start", start);
    insta::assert_json_snapshot!("test_stop", stop);
}

#[test]
fn no_match_reasons() {
    insta::assert_json_snapshot!(vec![
        NoMatch::UnknownMachine {
            machine_name: "ghost".into()
        },
        NoMatch::NoOngoingRun {
            machine_name: "rig".into()
        },
        NoMatch::NoWaitingTest {
            file_path: "/t".into(),
            file_name: "a.py".into()
        },
        NoMatch::NoRunningTest {
            file_path: "/t".into(),
            file_name: "a.py".into()
        },
    ]);
}

/// Replays the fixtures halfway (the trunk tests still to run) and pins every view.
#[tokio::test]
async fn views_of_a_half_finished_run() {
    let bus = Arc::new(InProcessBus::new());
    let tracker =
        Tracker::new(Arc::new(MemoryStore::new()), bus.clone()).with_clock(Arc::new(FixedClock));
    let plan: PlanPayload = serde_json::from_str(PLAN).unwrap();
    let receipt = tracker.record_plan(plan.validate().unwrap()).await.unwrap();
    let mut live = bus
        .subscribe(Topic::Machine(receipt.machine_id))
        .await
        .unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_str(EVENTS).unwrap();
    for event in events.iter().take(15) {
        let body = event["body"].clone();
        if event["endpoint"] == "/tm_api/test_start/" {
            let payload: TestStartPayload = serde_json::from_value(body).unwrap();
            tracker
                .record_test_start(payload.validate().unwrap())
                .await
                .unwrap();
        } else {
            let payload: TestStopPayload = serde_json::from_value(body).unwrap();
            tracker
                .record_test_stop(payload.validate().unwrap())
                .await
                .unwrap();
        }
    }
    insta::assert_json_snapshot!("plan_receipt", receipt);
    insta::assert_json_snapshot!("run_detail", tracker.run(receipt.ids.run_id).await.unwrap());
    insta::assert_json_snapshot!(
        "machines_page",
        tracker.machines(PageRequest::default()).await.unwrap()
    );
    insta::assert_json_snapshot!(
        "runs_page",
        tracker
            .runs(receipt.machine_id, PageRequest::default())
            .await
            .unwrap()
    );
    insta::assert_json_snapshot!(
        "test_detail",
        tracker
            .item(ItemRef::Test(receipt.ids.test_ids[0][0]))
            .await
            .unwrap()
    );
    let mut changes = Vec::new();
    while let Ok(Some(stpt_core::Delivery::Event(event))) =
        tokio::time::timeout(std::time::Duration::from_millis(50), live.next()).await
    {
        changes.push(event.as_ref().clone());
    }
    insta::assert_json_snapshot!("live_changes_last_two", changes[changes.len() - 2..]);
}
