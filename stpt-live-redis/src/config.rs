//! Settings of a [`crate::RedisBus`].

use std::time::Duration;

/// Settings of a [`crate::RedisBus`]. Build with `default()` and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct RedisBusConfig {
    prefix: String,
    publish_buffer: usize,
    subscriber_capacity: usize,
    connect_timeout: Duration,
    max_backoff: Duration,
}

impl Default for RedisBusConfig {
    fn default() -> Self {
        RedisBusConfig {
            prefix: "stpt".to_owned(),
            publish_buffer: 10_000,
            subscriber_capacity: 1024,
            connect_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RedisBusConfig {
    /// Channel names start with `prefix:` (default `stpt`), so several deployments can share
    /// one Redis.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Events held while Redis is slow or down before new ones are dropped (default 10,000).
    pub fn with_publish_buffer(mut self, events: usize) -> Self {
        self.publish_buffer = events.max(1);
        self
    }

    /// Events buffered per local subscriber before it is told it lagged (default 1,024).
    pub fn with_subscriber_capacity(mut self, events: usize) -> Self {
        self.subscriber_capacity = events.max(1);
        self
    }

    /// How long [`crate::RedisBus::connect`] waits for Redis (default 5 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The longest wait between reconnection attempts (default 5 s).
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The channel prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn publish_buffer(&self) -> usize {
        self.publish_buffer
    }

    pub(crate) fn subscriber_capacity(&self) -> usize {
        self.subscriber_capacity
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn max_backoff(&self) -> Duration {
        self.max_backoff
    }
}
