//! The two background tasks: one publishes the outbox, one listens and fans out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;

use crate::envelope::{self, Skip};
use crate::{Outgoing, Shared};

/// Most events sent in one pipelined round trip.
const MAX_PIPELINE: usize = 256;

/// Doubling waits between reconnection attempts, capped.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);

    fn new(max: Duration) -> Self {
        Backoff {
            next: Self::FIRST,
            max,
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Publishes queued events in order; reconnects with backoff when Redis goes away. An event
/// whose publish failed is lost: its topic's local subscribers are told they lagged.
pub(crate) async fn publish(
    client: redis::Client,
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<Outgoing>,
) {
    let prefix = shared.config.prefix().to_owned();
    let mut backoff = Backoff::new(shared.config.max_backoff());
    let mut connected_before = false;
    loop {
        // Timeouts so a hung Redis is treated like a dead one instead of stalling the queue.
        let settings = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2));
        let connection = client
            .get_multiplexed_async_connection_with_config(&settings)
            .await;
        let mut connection = match connection {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%error, "Redis publisher cannot connect; retrying");
                backoff.wait().await;
                continue;
            }
        };
        if connected_before {
            shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("stpt_bus_reconnects_total").increment(1);
            tracing::info!("Redis publisher reconnected");
        }
        connected_before = true;
        backoff.reset();
        while let Some(first) = queue.recv().await {
            // Whatever queued up meanwhile goes out in one pipelined round trip, in order, so
            // a burst of events does not wait for one round trip each.
            let mut batch = vec![first];
            while batch.len() < MAX_PIPELINE {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let mut pipeline = redis::pipe();
            for outgoing in &batch {
                pipeline
                    .cmd("PUBLISH")
                    .arg(envelope::channel(&prefix, outgoing.topic))
                    .arg(&outgoing.payload)
                    .ignore();
            }
            let sent: redis::RedisResult<()> = pipeline.query_async(&mut connection).await;
            let count = u64::try_from(batch.len()).unwrap_or(u64::MAX);
            match sent {
                Ok(()) => {
                    shared.stats.published.fetch_add(count, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::warn!(%error, lost = count, "Redis publish failed; reconnecting");
                    shared.stats.dropped.fetch_add(count, Ordering::Relaxed);
                    metrics::counter!("stpt_bus_dropped_total").increment(count);
                    for outgoing in &batch {
                        shared.fanout.lagged(outgoing.topic, 1);
                    }
                    break;
                }
            }
        }
        if queue.is_closed() && queue.is_empty() {
            return;
        }
        backoff.wait().await;
    }
}

/// Listens on every channel under the prefix and hands events to local subscribers. When the
/// connection is lost, every local subscriber is told it is interrupted; once it is back,
/// that it may have missed events.
pub(crate) async fn subscribe(
    client: redis::Client,
    shared: Arc<Shared>,
    subscribed: watch::Sender<bool>,
) {
    let prefix = shared.config.prefix().to_owned();
    let mut backoff = Backoff::new(shared.config.max_backoff());
    let mut connected_before = false;
    loop {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(error) => {
                tracing::warn!(%error, "Redis subscriber cannot connect; retrying");
                backoff.wait().await;
                continue;
            }
        };
        if let Err(error) = pubsub.psubscribe(envelope::pattern(&prefix)).await {
            tracing::warn!(%error, "Redis subscribe failed; retrying");
            backoff.wait().await;
            continue;
        }
        if connected_before {
            shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("stpt_bus_reconnects_total").increment(1);
            tracing::info!("Redis subscriber reconnected; clients resynchronise");
            shared.fanout.lagged_all();
        }
        connected_before = true;
        backoff.reset();
        subscribed.send_replace(true);
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Some(topic) = envelope::topic(&prefix, message.get_channel_name()) else {
                continue;
            };
            match envelope::decode(message.get_payload_bytes()) {
                Ok(event) => {
                    shared.stats.received.fetch_add(1, Ordering::Relaxed);
                    shared.fanout.deliver(topic, Arc::new(event));
                }
                Err(Skip::Version(version)) => {
                    tracing::debug!(version, "skipped a live event of another envelope version");
                }
                Err(Skip::Unreadable(error)) => {
                    tracing::debug!(%error, "skipped an unreadable live event");
                }
            }
        }
        subscribed.send_replace(false);
        tracing::warn!("Redis subscriber connection lost; reconnecting");
        // Pages say they are behind until the reconnection's `lagged_all` resynchronises them.
        shared.fanout.interrupted_all();
        backoff.wait().await;
    }
}
