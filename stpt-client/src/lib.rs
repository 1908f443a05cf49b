#![doc = include_str!("../README.md")]

mod client;
mod journal;
mod spool;

pub use client::{
    BatchEvent, BatchOutcome, Client, ClientError, DEFAULT_TIMEOUT, EventKind, EventRecorded,
    MAX_BATCH_EVENTS, PageOf, PlanCreated, PlannedScenarioIds, ServerError, TestRef, new_event_id,
};
pub use journal::{DEFAULT_MAX_BYTES, SpoolError};
pub use spool::{Rejection, SpoolConfig, SpooledClient, SpooledPlan};

/// The `stpt-core` types this client sends and reads, for convenience.
pub use stpt_core::{
    EventId, EventReceipt, FailureDetails, MachineId, MachineSummary, MasterScenarioPayload,
    PageRequest, PlanPayload, RunDetail, RunEta, RunId, RunSummary, ScenarioPayload, Status,
    TestId, TestPayload,
};
