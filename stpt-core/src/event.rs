//! Runner events as the tracker takes them, and what applying them answers: receipts, client
//! event ids for idempotent retries, and tests addressed by name or by id.

use serde::{Deserialize, Serialize};

use crate::store::PlannedIds;
use crate::{
    Error, FailureDetails, MachineId, MachineName, Result, RunId, RunnerTime, Status, TestId,
    TestStart, TestStop,
};

/// What storing a plan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanReceipt {
    /// The machine (created if new).
    pub machine_id: MachineId,
    /// The new run's ids.
    pub ids: PlannedIds,
    /// Runs of the machine that were still ongoing and were abandoned
    /// (rule 1).
    pub abandoned: Vec<RunId>,
}

/// What applying a test event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventReceipt {
    /// The machine.
    pub machine_id: MachineId,
    /// The run.
    pub run_id: RunId,
    /// The test the event matched.
    pub test_id: TestId,
    /// The test's new status.
    pub status: Status,
    /// The run's new status.
    pub run_status: Status,
}

/// A client's id for one event, so a retried post is applied once. Unique per machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    /// Longest id accepted, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Validates an event id: not blank, at most [`Self::MAX_CHARS`] characters.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.trim().is_empty() {
            return Err(Error::invalid("event_id", "must not be blank"));
        }
        crate::protocol::check_no_nul("event_id", &id)?;
        if id.chars().count() > Self::MAX_CHARS {
            return Err(Error::invalid(
                "event_id",
                format!("at most {} characters are allowed", Self::MAX_CHARS),
            ));
        }
        Ok(EventId(id))
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = Error;

    fn try_from(id: String) -> Result<Self> {
        EventId::new(id)
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> Self {
        id.0
    }
}

/// A receipt, and whether it answers a retry of an event applied before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recorded<T> {
    /// What the event did (the first time, when replayed).
    #[serde(flatten)]
    pub receipt: T,
    /// `true` when the event id was seen before and nothing was applied now.
    pub replayed: bool,
}

/// Which test an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestTarget {
    /// By machine, path and name, as the seed protocol addresses tests;
    /// rule 2 picks the first waiting one in plan order.
    Named {
        /// The machine.
        machine: MachineName,
        /// Directory of the test script.
        file_path: String,
        /// File name of the test script.
        file_name: String,
    },
    /// By the id the plan's receipt gave: exactly this test.
    Id(TestId),
}

/// What happens to the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestAction {
    /// It starts (rule 2).
    Start,
    /// It stops with a final status (rules 3 and 8).
    Stop(Status),
}

/// A test start or stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEvent {
    /// The test.
    pub target: TestTarget,
    /// Start or stop.
    pub action: TestAction,
    /// When, by the runner's clock (a naive time is read in the machine's zone).
    pub at: RunnerTime,
    /// With a stop only: what the runner said about how the test ended, validated
    /// ([`FailureDetails::validate`]). A start carrying it is invalid input.
    pub failure: Option<FailureDetails>,
}

impl From<TestStart> for TestEvent {
    fn from(event: TestStart) -> Self {
        TestEvent {
            target: TestTarget::Named {
                machine: event.machine,
                file_path: event.file_path,
                file_name: event.file_name,
            },
            action: TestAction::Start,
            at: event.at,
            failure: None,
        }
    }
}

impl From<TestStop> for TestEvent {
    fn from(event: TestStop) -> Self {
        TestEvent {
            target: TestTarget::Named {
                machine: event.machine,
                file_path: event.file_path,
                file_name: event.file_name,
            },
            action: TestAction::Stop(event.status),
            at: event.at,
            failure: None,
        }
    }
}
