//! Live updates: compact changes published after each committed event, and the transport
//! contract that carries them to subscribers (pages, sockets, other server instances).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};

use crate::rules::{OngoingClosed, RunWork};
use crate::{
    Liveness, MachineId, MachineStatus, Result, RunId, RunSummary, ScenarioId, Status,
    StatusCounts, TestId,
};

/// What a subscriber listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "topic", content = "machine_id", rename_all = "snake_case")]
pub enum Topic {
    /// Status changes of every machine.
    Machines,
    /// Everything about one machine's runs: new runs and compact run changes.
    Machine(MachineId),
}

/// A change worth telling subscribers. Its size never depends on the size of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LiveEvent {
    /// A machine's status changed (published on [`Topic::Machines`]).
    MachineStatus {
        /// The machine.
        machine_id: MachineId,
        /// Its name.
        machine_name: String,
        /// Its new status.
        status: MachineStatus,
    },
    /// A machine posted a plan: its new latest run (published on [`Topic::Machine`]).
    RunCreated {
        /// The new run.
        run: RunSummary,
    },
    /// Some tests of a run changed (published on [`Topic::Machine`]).
    RunChanged(RunChange),
    /// The latest run of a machine has a new number of failed tests (`failed` and `error`),
    /// so a list of machines can show failures as they happen (published on
    /// [`Topic::Machines`]: when a test of the run fails, when the run's ongoing tests are
    /// closed at once, and as 0 when a machine posts a plan).
    MachineFailures {
        /// The machine.
        machine_id: MachineId,
        /// Its latest run.
        run_id: RunId,
        /// That run's failed and errored tests.
        failed: u32,
    },
    /// A machine's liveness changed (published on [`Topic::Machines`] and
    /// [`Topic::Machine`] by the [`crate::LivenessWatch`]).
    MachineLiveness {
        /// The machine.
        machine_id: MachineId,
        /// Its liveness now.
        liveness: Liveness,
        /// When it last posted (server clock).
        last_seen: Option<DateTime<Utc>>,
    },
}

/// The tests an event changed and the aggregates it moved, as absolute new values, so
/// applying one twice is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunChange {
    /// The machine.
    pub machine_id: MachineId,
    /// The run.
    pub run_id: RunId,
    /// The run's new status.
    pub status: Status,
    /// The run's new counts.
    pub counts: StatusCounts,
    /// The run's start.
    pub timestamp_start: Option<DateTime<Utc>>,
    /// The run's stop.
    pub timestamp_stop: Option<DateTime<Utc>>,
    /// Scenarios whose aggregate moved.
    pub scenarios: Vec<ScenarioChange>,
    /// Tests that changed.
    pub tests: Vec<TestChange>,
    /// Set when every other ongoing test of the run took one status (abandon, cancel).
    pub closed: Option<OngoingClosed>,
}

/// A scenario's new aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioChange {
    /// The scenario.
    pub id: ScenarioId,
    /// Its new status.
    pub status: Status,
    /// Its new counts.
    pub counts: StatusCounts,
    /// Its start.
    pub timestamp_start: Option<DateTime<Utc>>,
    /// Its stop.
    pub timestamp_stop: Option<DateTime<Utc>>,
}

/// A test's new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestChange {
    /// The test.
    pub id: TestId,
    /// Its new status.
    pub status: Status,
    /// Its start.
    pub timestamp_start: Option<DateTime<Utc>>,
    /// Its stop.
    pub timestamp_stop: Option<DateTime<Utc>>,
}

impl RunChange {
    /// The change a committed [`RunWork`] made.
    pub fn from_work(machine_id: MachineId, work: &RunWork) -> Self {
        let aggregate = &work.run.aggregate;
        RunChange {
            machine_id,
            run_id: work.run.id,
            status: aggregate.status(),
            counts: aggregate.counts,
            timestamp_start: aggregate.timestamp_start,
            timestamp_stop: aggregate.timestamp_stop,
            scenarios: work
                .scenarios
                .iter()
                .map(|s| ScenarioChange {
                    id: s.id,
                    status: s.aggregate.status(),
                    counts: s.aggregate.counts,
                    timestamp_start: s.aggregate.timestamp_start,
                    timestamp_stop: s.aggregate.timestamp_stop,
                })
                .collect(),
            tests: work
                .tests
                .iter()
                .map(|t| TestChange {
                    id: t.id,
                    status: t.status,
                    timestamp_start: t.timestamp_start,
                    timestamp_stop: t.timestamp_stop,
                })
                .collect(),
            closed: work.closed,
        }
    }
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The next event on the topic.
    Event(Arc<LiveEvent>),
    /// The subscriber fell behind and `missed` events were dropped for it: it should
    /// resynchronise from the store.
    Lagged {
        /// How many events it missed (0 when the transport cannot tell).
        missed: u64,
    },
    /// The transport lost its connection: events may not arrive until it is back, which a
    /// [`Delivery::Lagged`] then says. A page shows that it is behind meanwhile.
    Interrupted,
}

/// A subscription: a stream of deliveries that ends when the bus goes away.
pub type LiveStream = Pin<Box<dyn Stream<Item = Delivery> + Send>>;

/// Carries live events from the instance that committed them to every subscriber.
/// Object-safe: hold it as `Arc<dyn LiveBus>`.
#[async_trait]
pub trait LiveBus: Send + Sync + Debug + 'static {
    /// Publishes `event` on `topic`. Must never block nor fail the caller: a transport that is
    /// slow or down buffers within a bound, then drops (and tells subscribers they lagged).
    fn publish(&self, topic: Topic, event: Arc<LiveEvent>);

    /// Subscribes to `topic`: every event published after this returns is delivered, in
    /// publish order, or replaced by a [`Delivery::Lagged`].
    async fn subscribe(&self, topic: Topic) -> Result<LiveStream>;
}

/// Local fan-out of deliveries to subscribers, by topic: the part every [`LiveBus`] shares.
/// A slow subscriber never blocks [`Fanout::deliver`]: past `capacity` undelivered items it
/// gets [`Delivery::Lagged`].
#[derive(Debug)]
pub struct Fanout {
    capacity: usize,
    topics: Mutex<HashMap<Topic, broadcast::Sender<Delivery>>>,
}

impl Fanout {
    /// A fan-out buffering `capacity` (at least 1) deliveries per subscriber.
    pub fn new(capacity: usize) -> Self {
        Fanout {
            capacity: capacity.max(1),
            topics: Mutex::new(HashMap::new()),
        }
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, broadcast::Sender<Delivery>>> {
        // A panic elsewhere while holding this lock cannot leave the map inconsistent.
        self.topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands `event` to every current subscriber of `topic`.
    pub fn deliver(&self, topic: Topic, event: Arc<LiveEvent>) {
        let mut topics = self.topics();
        if let Some(sender) = topics.get(&topic) {
            if sender.send(Delivery::Event(event)).is_err() {
                // Nobody listens any more: forget the topic so idle machines cost nothing.
                topics.remove(&topic);
            }
        }
    }

    /// Tells the subscribers of `topic` that they missed events.
    pub fn lagged(&self, topic: Topic, missed: u64) {
        let mut topics = self.topics();
        if let Some(sender) = topics.get(&topic) {
            if sender.send(Delivery::Lagged { missed }).is_err() {
                topics.remove(&topic);
            }
        }
    }

    /// Tells every subscriber of every topic that it may have missed events (the transport
    /// lost messages or its connection), so it resynchronises.
    pub fn lagged_all(&self) {
        let mut topics = self.topics();
        topics.retain(|_, sender| sender.send(Delivery::Lagged { missed: 0 }).is_ok());
    }

    /// Tells every subscriber of every topic that events may not arrive for a while (the
    /// transport lost its connection); a [`Fanout::lagged_all`] follows once it is back.
    pub fn interrupted_all(&self) {
        let mut topics = self.topics();
        topics.retain(|_, sender| sender.send(Delivery::Interrupted).is_ok());
    }

    /// Whether anyone listens to `topic`.
    pub fn has_subscribers(&self, topic: Topic) -> bool {
        self.topics()
            .get(&topic)
            .is_some_and(|sender| sender.receiver_count() > 0)
    }

    /// A new subscription to `topic`.
    pub fn subscribe(&self, topic: Topic) -> LiveStream {
        let receiver = self
            .topics()
            .entry(topic)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        Box::pin(BroadcastStream::new(receiver).map(|item| match item {
            Ok(delivery) => delivery,
            Err(BroadcastStreamRecvError::Lagged(missed)) => Delivery::Lagged { missed },
        }))
    }
}

/// A [`LiveBus`] within one process, on tokio broadcast channels. A slow subscriber never
/// blocks publishers: past `capacity` undelivered events it gets [`Delivery::Lagged`].
#[derive(Debug)]
pub struct InProcessBus {
    fanout: Fanout,
}

impl InProcessBus {
    /// Events buffered per subscriber by default.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A bus buffering [`Self::DEFAULT_CAPACITY`] events per subscriber.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A bus buffering `capacity` (at least 1) events per subscriber.
    pub fn with_capacity(capacity: usize) -> Self {
        InProcessBus {
            fanout: Fanout::new(capacity),
        }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl LiveBus for InProcessBus {
    fn publish(&self, topic: Topic, event: Arc<LiveEvent>) {
        self.fanout.deliver(topic, event);
    }

    async fn subscribe(&self, topic: Topic) -> Result<LiveStream> {
        Ok(self.fanout.subscribe(topic))
    }
}
