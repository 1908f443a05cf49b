//! The LiveBus conformance suite and the transport's own stories against a real Redis.
//!
//! The Redis address comes from `STPT_TEST_REDIS_URL`; unset, these tests skip (and fail when
//! `STPT_TEST_INTEGRATION=1`, as in CI).

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::sync::Arc;
use std::time::Duration;
use stpt_core::{Delivery, LiveBus, LiveEvent, Topic};
use stpt_live_redis::{RedisBus, RedisBusConfig};
use stpt_testkit::{OwnRedis, free_port, redis_url, unique_name};
use tokio_stream::StreamExt;

/// A prefix of its own per test, so tests sharing one Redis do not hear each other.
fn unique_prefix() -> String {
    unique_name("stpt-test")
}

async fn bus(url: &str, prefix: &str) -> RedisBus {
    let config = RedisBusConfig::default()
        .with_prefix(prefix)
        .with_subscriber_capacity(64);
    RedisBus::connect(url, config).await.unwrap()
}

stpt_core::live_bus_conformance_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn() {
    match redis_url() {
        Some(url) => bus(&url, &unique_prefix()).await,
        None => return,
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_events() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let first = Arc::new(bus(&url, &prefix).await);
    let second = Arc::new(bus(&url, &prefix).await);
    stpt_core::conformance::two_instances_share_events(first, second).await;
}

#[tokio::test]
async fn unreachable_redis_fails_connect_but_not_publish() {
    let config = RedisBusConfig::default().with_connect_timeout(Duration::from_millis(300));
    let refused = RedisBus::connect("redis://127.0.0.1:1", config.clone()).await;
    assert!(refused.is_err());
    assert!(RedisBus::start("not a url", config.clone()).is_err());
    let bus = RedisBus::start("redis://127.0.0.1:1", config.with_publish_buffer(10)).unwrap();
    let mut stream = bus.subscribe(Topic::Machines).await.unwrap();
    for n in 0..100 {
        bus.publish(Topic::Machines, Arc::new(event(n)));
    }
    assert!(bus.stats().dropped >= 90, "{:?}", bus.stats());
    let told = tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .unwrap();
    assert_eq!(told, Some(Delivery::Lagged { missed: 1 }));
}

fn event(n: i64) -> LiveEvent {
    LiveEvent::MachineStatus {
        machine_id: stpt_core::MachineId(n),
        machine_name: format!("rig-{n}"),
        status: stpt_core::MachineStatus::NotAvailable,
    }
}

/// Redis restarted mid-stream: ingestion keeps answering, subscribers are told they may have
/// missed events (so WebSocket clients take a snapshot), and live updates resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_stream() {
    if redis_url().is_none() {
        return;
    }
    let Some(redis) = OwnRedis::start(free_port()).await else {
        return;
    };
    let url = redis.url();
    let config = RedisBusConfig::default().with_max_backoff(Duration::from_millis(200));
    let bus = Arc::new(RedisBus::connect(&url, config).await.unwrap());
    let tracker =
        stpt_core::Tracker::new(Arc::new(stpt_store_memory::MemoryStore::new()), bus.clone());
    let mut machines = bus.subscribe(Topic::Machines).await.unwrap();

    let plan = |name: &str| stpt_core::Plan {
        machine: stpt_core::MachineName::new(name).unwrap(),
        timestamp: chrono_now().into(),
        master: stpt_core::ScriptFile {
            file_path: "/m".into(),
            file_name: "m.py".into(),
            script: None,
        },
        scenarios: vec![],
    };
    tracker.record_plan(plan("before")).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), machines.next())
        .await
        .unwrap();
    assert!(matches!(first, Some(Delivery::Event(_))), "{first:?}");

    let port = redis.stop().await;
    for n in 0..20 {
        let posted = tokio::time::timeout(
            Duration::from_secs(5),
            tracker.record_plan(plan(&format!("during-{n}"))),
        )
        .await;
        assert!(
            posted.is_ok_and(|r| r.is_ok()),
            "ingestion blocked or failed while Redis was down"
        );
    }
    let redis = OwnRedis::start(port).await.unwrap();
    bus.wait_subscribed(Duration::from_secs(10)).await.unwrap();
    let mut lagged = false;
    let mut interrupted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        tracker.record_plan(plan("after")).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(500), machines.next()).await {
            Ok(Some(Delivery::Interrupted)) => interrupted = true,
            Ok(Some(Delivery::Lagged { .. })) => lagged = true,
            Ok(Some(Delivery::Event(event))) => {
                if let LiveEvent::MachineStatus { machine_name, .. } = event.as_ref() {
                    if machine_name == "after" && lagged {
                        break;
                    }
                }
            }
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "live updates did not resume"
        );
    }
    assert!(
        interrupted,
        "subscribers were not told of the lost connection"
    );
    assert!(bus.stats().reconnects >= 1, "{:?}", bus.stats());
    let listed = tracker
        .machines(stpt_core::PageRequest::new(1, 100).unwrap())
        .await
        .unwrap();
    assert_eq!(
        listed.total, 22,
        "every event posted while Redis was down was stored"
    );
    drop(redis);
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
