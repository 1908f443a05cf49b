#![doc = include_str!("../README.md")]

#[cfg(feature = "accounts")]
pub mod accounts;
mod backlog;
mod clock_offset;
mod error;
pub mod estimate;
mod eta_cache;
mod event;
pub mod history;
mod ids;
mod index;
mod live;
mod liveness;
mod model;
#[cfg(feature = "openapi")]
pub mod openapi;
mod page;
mod protocol;
mod retention;
pub mod rules;
mod status;
mod store;
mod time;
mod tracker;
mod watch;
pub mod wrap;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use backlog::{BACKLOG_HEADER, BACKLOG_SILENCE_SECONDS, Backlog};
pub use clock_offset::ClockOffset;
pub use error::{BoxError, Error, ItemKind, NoMatch, Result};
pub use estimate::{
    DURATION_WINDOW, DurationHistory, FinishedTest, RemainingWork, RunEta, RunRemaining,
    RunningProgress,
};
pub use event::{EventId, EventReceipt, PlanReceipt, Recorded, TestAction, TestEvent, TestTarget};
pub use ids::{MachineId, RunId, ScenarioId, TestId};
pub use index::RunIndex;
pub use live::{
    Delivery, Fanout, InProcessBus, LiveBus, LiveEvent, LiveStream, RunChange, ScenarioChange,
    TestChange, Topic,
};
pub use liveness::{Activity, Liveness, LivenessPolicy, MachineTimeouts};
pub use model::{
    FileRef, ItemDetail, ItemRef, MachineSummary, RunDetail, RunSummary, ScenarioView, Statistics,
    TestView, duration,
};
pub use page::{Page, PageRequest};
pub use protocol::{
    FailureDetails, MAX_FAILURE_DETAILS_BYTES, MAX_FAILURE_MESSAGE_CHARS, MAX_NAME_CHARS,
    MAX_PATH_CHARS, MachineName, MasterScenarioPayload, Plan, PlanPayload, PlannedScenario,
    ScenarioPayload, ScriptFile, TestPayload, TestStart, TestStartPayload, TestStop,
    TestStopPayload, machine_key,
};
pub use retention::RetentionPolicy;
pub use rules::{Aggregate, EventTime, OngoingClosed, RunState, RunWork, ScenarioState, TestState};
pub use status::{MachineStatus, Status, StatusCounts};
pub use store::{
    Changes, Committed, Durability, EventRecord, MachineRecord, NewRun, PlannedIds, RecordedEvent,
    Store, StoreTx, TestLocation,
};
pub use time::{
    RunnerTime, RunnerTimezone, deserialize_optional_timestamp, deserialize_timestamp,
    parse_timestamp,
};
pub use tracker::{Clock, ManualClock, SystemClock, Tracker};
pub use watch::LivenessWatch;
