//! LiveBus scenarios: delivery, isolation, fan-out, slow subscribers.

use std::sync::Arc;
use std::time::Duration;
use tokio_stream::StreamExt;

use crate::{Delivery, LiveBus, LiveEvent, LiveStream, MachineId, MachineStatus, Status, Topic};

fn event(n: i64) -> Arc<LiveEvent> {
    Arc::new(LiveEvent::MachineStatus {
        machine_id: MachineId(n),
        machine_name: format!("rig-{n}"),
        status: MachineStatus::Run(Status::Running),
    })
}

async fn subscribe(bus: &dyn LiveBus, topic: Topic) -> LiveStream {
    bus.subscribe(topic)
        .await
        .unwrap_or_else(|e| panic!("subscribe failed: {e}"))
}

/// The next delivery, failing after a generous timeout (transports may be remote).
async fn next(stream: &mut LiveStream) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap_or_else(|_| panic!("no delivery within 10 s"))
        .unwrap_or_else(|| panic!("stream ended"))
}

async fn next_event_id(stream: &mut LiveStream) -> i64 {
    match next(stream).await {
        Delivery::Event(event) => match event.as_ref() {
            LiveEvent::MachineStatus { machine_id, .. } => machine_id.get(),
            other => panic!("unexpected event {other:?}"),
        },
        Delivery::Lagged { missed } => panic!("unexpected lag of {missed}"),
        Delivery::Interrupted => panic!("unexpected interruption"),
    }
}

/// Nothing arrives within a short while.
async fn assert_quiet(stream: &mut LiveStream) {
    let extra = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
    assert!(extra.is_err(), "unexpected delivery: {extra:?}");
}

/// Events arrive once each, in publish order (the suite assumes a bus buffers at least 50
/// events per subscriber).
pub async fn bus_delivers_in_order(bus: Arc<dyn LiveBus>) {
    let mut stream = subscribe(bus.as_ref(), Topic::Machines).await;
    for n in 1..=50 {
        bus.publish(Topic::Machines, event(n));
    }
    for n in 1..=50 {
        assert_eq!(next_event_id(&mut stream).await, n);
    }
    assert_quiet(&mut stream).await;
}

/// A subscriber hears its topic only.
pub async fn bus_isolates_topics(bus: Arc<dyn LiveBus>) {
    let mut one = subscribe(bus.as_ref(), Topic::Machine(MachineId(1))).await;
    let mut two = subscribe(bus.as_ref(), Topic::Machine(MachineId(2))).await;
    let mut all = subscribe(bus.as_ref(), Topic::Machines).await;
    bus.publish(Topic::Machine(MachineId(2)), event(2));
    bus.publish(Topic::Machine(MachineId(1)), event(1));
    bus.publish(Topic::Machines, event(3));
    assert_eq!(next_event_id(&mut one).await, 1);
    assert_eq!(next_event_id(&mut two).await, 2);
    assert_eq!(next_event_id(&mut all).await, 3);
    assert_quiet(&mut one).await;
    assert_quiet(&mut two).await;
    assert_quiet(&mut all).await;
}

/// Every subscriber of a topic gets every event.
pub async fn bus_serves_many_subscribers(bus: Arc<dyn LiveBus>) {
    let mut streams = Vec::new();
    for _ in 0..50 {
        streams.push(subscribe(bus.as_ref(), Topic::Machines).await);
    }
    for n in 1..=10 {
        bus.publish(Topic::Machines, event(n));
    }
    for stream in &mut streams {
        for n in 1..=10 {
            assert_eq!(next_event_id(stream).await, n);
        }
    }
}

/// A subscriber that never reads does not block publishers; when it reads again it is told it
/// lagged, then receives later events.
pub async fn bus_tells_slow_subscriber_it_lagged(bus: Arc<dyn LiveBus>) {
    let mut slow = subscribe(bus.as_ref(), Topic::Machines).await;
    let published = 100_000;
    let publishing = tokio::time::timeout(Duration::from_secs(30), async {
        for n in 1..=published {
            bus.publish(Topic::Machines, event(n));
            if n % 1000 == 0 {
                // Let a remote transport's background tasks run; publish itself never waits.
                tokio::task::yield_now().await;
            }
        }
    })
    .await;
    assert!(
        publishing.is_ok(),
        "publishing blocked behind a slow subscriber"
    );
    // A transport may drop under such a burst; keep publishing a marker until it arrives.
    let marker = published + 1;
    let mut lagged = false;
    let mut last = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while last != marker {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery after the burst"
        );
        bus.publish(Topic::Machines, event(marker));
        while let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_millis(200), slow.next()).await
        {
            match delivery {
                Delivery::Lagged { .. } | Delivery::Interrupted => lagged = true,
                Delivery::Event(event) => {
                    if let LiveEvent::MachineStatus { machine_id, .. } = event.as_ref() {
                        assert!(machine_id.get() >= last, "events out of order");
                        last = machine_id.get();
                    }
                }
            }
            if last == marker {
                break;
            }
        }
    }
    assert!(
        lagged,
        "a subscriber that fell {published} events behind was not told"
    );
}

/// Two bus instances on one shared transport (as two server instances): what one publishes,
/// subscribers of the other receive, in order. Not stamped by the macro: only transports
/// that connect processes can pass it.
pub async fn two_instances_share_events(first: Arc<dyn LiveBus>, second: Arc<dyn LiveBus>) {
    let mut on_second = subscribe(second.as_ref(), Topic::Machine(MachineId(7))).await;
    let mut on_first = subscribe(first.as_ref(), Topic::Machine(MachineId(7))).await;
    for n in 1..=20 {
        first.publish(Topic::Machine(MachineId(7)), event(n));
    }
    for n in 1..=20 {
        assert_eq!(next_event_id(&mut on_second).await, n);
        assert_eq!(next_event_id(&mut on_first).await, n);
    }
    second.publish(Topic::Machine(MachineId(7)), event(21));
    assert_eq!(next_event_id(&mut on_first).await, 21);
    assert_eq!(next_event_id(&mut on_second).await, 21);
}

/// Publishing to a topic nobody listens to is harmless, and a later subscriber gets the
/// events published after it subscribed (a remote transport may still deliver one published
/// just before, which is harmless: changes carry absolute values).
pub async fn bus_publish_without_subscribers_is_harmless(bus: Arc<dyn LiveBus>) {
    bus.publish(Topic::Machine(MachineId(9)), event(1));
    let mut stream = subscribe(bus.as_ref(), Topic::Machine(MachineId(9))).await;
    bus.publish(Topic::Machine(MachineId(9)), event(2));
    let mut first = next_event_id(&mut stream).await;
    if first == 1 {
        first = next_event_id(&mut stream).await;
    }
    assert_eq!(first, 2);
    drop(stream);
    bus.publish(Topic::Machine(MachineId(9)), event(3));
}
