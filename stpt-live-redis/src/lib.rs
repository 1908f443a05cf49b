#![doc = include_str!("../README.md")]

mod config;
mod envelope;
mod tasks;

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use stpt_core::{Error, Fanout, LiveBus, LiveEvent, LiveStream, Result, Topic};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::RedisBusConfig;

/// A [`LiveBus`] over Redis pub/sub. Create it inside a tokio runtime; it runs two background
/// tasks (publisher and subscriber) until dropped.
#[derive(Debug)]
pub struct RedisBus {
    shared: Arc<Shared>,
    outbox: mpsc::Sender<Outgoing>,
    subscribed: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the background tasks and the handle share.
#[derive(Debug)]
struct Shared {
    config: RedisBusConfig,
    fanout: Fanout,
    stats: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    reconnects: AtomicU64,
}

/// An event waiting to be published.
#[derive(Debug)]
struct Outgoing {
    topic: Topic,
    payload: Vec<u8>,
}

/// Counters of a [`RedisBus`], for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedisBusStats {
    /// Events sent to Redis.
    pub published: u64,
    /// Events dropped because Redis was slow or down and the buffer was full.
    pub dropped: u64,
    /// Events received from Redis and handed to local subscribers.
    pub received: u64,
    /// Connections re-established after a loss.
    pub reconnects: u64,
}

impl RedisBus {
    /// Starts a bus on the Redis at `url` without waiting for it: events published before
    /// Redis answers wait in the buffer. Fails only on a malformed URL.
    pub fn start(url: &str, config: RedisBusConfig) -> Result<Self> {
        let client = redis::Client::open(url).map_err(Error::backend)?;
        let (outbox, queue) = mpsc::channel(config.publish_buffer());
        let (subscribed_tx, subscribed) = watch::channel(false);
        let shared = Arc::new(Shared {
            fanout: Fanout::new(config.subscriber_capacity()),
            config,
            stats: Counters::default(),
        });
        let tasks = vec![
            tokio::spawn(tasks::publish(client.clone(), Arc::clone(&shared), queue)),
            tokio::spawn(tasks::subscribe(client, Arc::clone(&shared), subscribed_tx)),
        ];
        Ok(RedisBus {
            shared,
            outbox,
            subscribed,
            tasks,
        })
    }

    /// Starts a bus and waits until it listens on Redis (at most `timeout` of the config):
    /// fails when Redis cannot be reached.
    pub async fn connect(url: &str, config: RedisBusConfig) -> Result<Self> {
        let timeout = config.connect_timeout();
        let bus = Self::start(url, config)?;
        bus.wait_subscribed(timeout).await?;
        Ok(bus)
    }

    /// Waits until the subscriber connection listens (again).
    pub async fn wait_subscribed(&self, timeout: Duration) -> Result<()> {
        let mut subscribed = self.subscribed.clone();
        tokio::time::timeout(timeout, subscribed.wait_for(|listening| *listening))
            .await
            .map_err(|_| Error::backend(format!("Redis not reachable within {timeout:?}")))?
            .map_err(Error::backend)?;
        Ok(())
    }

    /// Counters since start.
    pub fn stats(&self) -> RedisBusStats {
        let stats = &self.shared.stats;
        RedisBusStats {
            published: stats.published.load(Ordering::Relaxed),
            dropped: stats.dropped.load(Ordering::Relaxed),
            received: stats.received.load(Ordering::Relaxed),
            reconnects: stats.reconnects.load(Ordering::Relaxed),
        }
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[async_trait]
impl LiveBus for RedisBus {
    fn publish(&self, topic: Topic, event: Arc<LiveEvent>) {
        let payload = match envelope::encode(&event) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "live event not encodable; dropped");
                return;
            }
        };
        if self.outbox.try_send(Outgoing { topic, payload }).is_err() {
            let dropped = self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("stpt_bus_dropped_total").increment(1);
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "Redis is slow or down: live events dropped");
            }
            // This instance's own subscribers would have heard it back from Redis.
            self.shared.fanout.lagged(topic, 1);
        }
    }

    async fn subscribe(&self, topic: Topic) -> Result<LiveStream> {
        Ok(self.shared.fanout.subscribe(topic))
    }
}
