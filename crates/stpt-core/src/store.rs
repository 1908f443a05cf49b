//! The storage contract. Backends persist what the rules decided; they never decide.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;

use crate::rules::{Aggregate, RunState, RunWork, ScenarioState, TestState};
use crate::{
    ItemDetail, ItemRef, MachineId, MachineName, MachineSummary, Page, PageRequest, Plan, Result,
    RunDetail, RunId, RunSummary, ScenarioId, TestId,
};

/// Where runs live. Object-safe: hold it as `Arc<dyn Store>`.
///
/// Writes go through a [`StoreTx`], one per runner event, opened by [`Store::begin`]: the
/// [`crate::Tracker`] reads the few records the event touches, applies the rules, and commits
/// the result. Reads serve the pages and the read API.
///
/// Every backend must pass the conformance suite (`stpt-core`'s `conformance` feature):
///
/// ```ignore
/// stpt_core::store_conformance_tests!(#[tokio::test] async fn() { MyStore::new() });
/// ```
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// Opens an atomic unit of work on the machine named `machine` (matched by
    /// [`MachineName::key`]), whether or not it exists yet. Units on the same machine must not
    /// interleave: the second waits until the first commits or is dropped (or, in a backend
    /// that reads optimistically, a unit whose reads another writer overtook fails with
    /// [`crate::Error::Stale`] in [`StoreTx::commit`] or [`StoreTx::confirm`]). Dropping a
    /// unit without committing leaves no trace.
    async fn begin(&self, machine: &MachineName) -> Result<Box<dyn StoreTx>>;

    /// Machines ordered by name (case-insensitively), then id.
    async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>>;

    /// One machine; [`crate::Error::NotFound`] if unknown.
    async fn machine(&self, id: MachineId) -> Result<MachineSummary>;

    /// A machine's runs, newest received first; [`crate::Error::NotFound`] if the machine is
    /// unknown.
    async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>>;

    /// One run with its scenarios and tests, in plan order; [`crate::Error::NotFound`] if unknown.
    async fn run(&self, id: RunId) -> Result<RunDetail>;

    /// One item with its script; [`crate::Error::NotFound`] if unknown.
    async fn item(&self, item: ItemRef) -> Result<ItemDetail>;

    /// Deletes a run with its scenarios and tests, waiting for any unit of work on its
    /// machine. The machine's latest run becomes the one received before it (or none).
    /// [`crate::Error::NotFound`] if unknown. Optional: the default is
    /// [`crate::Error::NotSupported`].
    async fn delete_run(&self, id: RunId) -> Result<()> {
        let _ = id;
        Err(crate::Error::NotSupported {
            operation: "delete_run",
        })
    }

    /// Deletes a machine with all its runs, waiting for any unit of work on it. A later plan
    /// under the same name creates a new machine. [`crate::Error::NotFound`] if unknown.
    /// Optional: the default is [`crate::Error::NotSupported`].
    async fn delete_machine(&self, id: MachineId) -> Result<()> {
        let _ = id;
        Err(crate::Error::NotSupported {
            operation: "delete_machine",
        })
    }
}

/// A machine as a unit of work sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRecord {
    /// The machine.
    pub id: MachineId,
    /// Its name, spelled as first seen.
    pub name: String,
    /// Its latest run.
    pub latest_run: Option<RunId>,
}

/// One atomic unit of work on one machine: reads what an event touches, then commits once.
#[async_trait]
pub trait StoreTx: Send {
    /// The machine, or `None` if no machine has this name yet.
    fn machine(&self) -> Option<&MachineRecord>;

    /// The machine's ongoing runs (status `waiting` or `running`), newest first.
    async fn ongoing_runs(&mut self) -> Result<Vec<RunState>>;

    /// Every scenario of `run`, in plan order.
    async fn scenarios(&mut self, run: RunId) -> Result<Vec<ScenarioState>>;

    /// One scenario.
    async fn scenario(&mut self, id: ScenarioId) -> Result<ScenarioState>;

    /// The first test of `run` in plan order that is `waiting` and has this path and name.
    async fn first_waiting_test(
        &mut self,
        run: RunId,
        file_path: &str,
        file_name: &str,
    ) -> Result<Option<TestState>>;

    /// The `running` test of `run`, if any (the rules keep at most one).
    async fn running_test(&mut self, run: RunId) -> Result<Option<TestState>>;

    /// One test of the machine by id, if it exists. Needed for events addressed by test id.
    ///
    /// Optional: the default answers [`crate::Error::NotSupported`].
    async fn test(&mut self, id: TestId) -> Result<Option<TestState>> {
        let _ = id;
        Err(crate::Error::NotSupported {
            operation: "events addressed by test id",
        })
    }

    /// What an earlier commit on this machine recorded under the client's `event_id`
    /// ([`Changes::record`]), if any. Needed for idempotent retries.
    ///
    /// Optional: the default answers [`crate::Error::NotSupported`].
    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>> {
        let _ = event_id;
        Err(crate::Error::NotSupported {
            operation: "idempotent events (client event ids)",
        })
    }

    /// Confirms that what this unit read is still current, before the [`crate::Tracker`]
    /// answers from those reads alone (an event that matched nothing commits nothing, so no
    /// commit would catch outdated reads). A backend that reads optimistically answers
    /// [`crate::Error::Stale`] when its reads were outdated; one whose reads happen under the
    /// unit's lock answers `Ok(())` at once. Required, so that a wrapper around another
    /// backend's units cannot forget to pass it on.
    async fn confirm(&mut self) -> Result<()>;

    /// Persists `changes` atomically and ends the unit. The machine is created (named as in
    /// the new run's plan) if it does not exist and a run is planned. A backend that reads
    /// optimistically answers [`crate::Error::Stale`], having written nothing, when its reads
    /// were outdated.
    async fn commit(self: Box<Self>, changes: Changes) -> Result<Committed>;
}

/// Everything one unit of work writes.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The server time of the event: becomes the machine's last-seen time.
    pub seen_at: DateTime<Utc>,
    /// Existing runs to update: each `RunWork` lists exactly the records that changed.
    pub runs: Vec<RunWork>,
    /// A plan to store as the machine's new latest run, after `runs` are applied.
    pub new_run: Option<NewRun>,
    /// A client event id to remember with this commit, so a retry is answered from the
    /// record instead of applied again. Only set after [`StoreTx::recorded_event`] succeeded.
    pub record: Option<EventRecord>,
}

/// What to remember under a client's event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The client's id for the event, unique per machine.
    pub event_id: String,
    /// The event's receipt as JSON, to answer a retry with; `None` for a plan, whose receipt
    /// is rebuilt from the new run.
    pub receipt: Option<String>,
}

/// What a commit remembered under a client's event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// The receipt JSON given in [`EventRecord::receipt`].
    pub receipt: Option<String>,
    /// The run the commit planned, if it planned one.
    pub new_run: Option<RunId>,
}

/// A plan ready to store: every item `waiting`, aggregates computed.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The validated plan.
    pub plan: Plan,
    /// Server time of receipt (rule 6 orders runs by receipt, not by this).
    pub received_at: DateTime<Utc>,
    /// The run's initial aggregate.
    pub aggregate: Aggregate,
    /// Each scenario's initial aggregate, in plan order.
    pub scenario_aggregates: Vec<Aggregate>,
}

impl NewRun {
    /// Rule 1: a plan becomes a run with every item waiting; an empty scenario is `unknown`.
    pub fn from_plan(plan: Plan, received_at: DateTime<Utc>) -> Self {
        let scenario_aggregates: Vec<Aggregate> = plan
            .scenarios
            .iter()
            .map(|s| Aggregate::planned(count_u32(s.tests.len())))
            .collect();
        let aggregate = Aggregate::planned(count_u32(plan.test_count()));
        NewRun {
            plan,
            received_at,
            aggregate,
            scenario_aggregates,
        }
    }
}

/// Plans are bounded by the request size limit, far below `u32::MAX` tests.
fn count_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// What a commit assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The machine (created by this commit or not).
    pub machine_id: MachineId,
    /// Ids of the new run's items, when one was planned.
    pub new_run: Option<PlannedIds>,
}

/// Ids of a newly stored run's items, in plan order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedIds {
    /// The run (and its master scenario).
    pub run_id: RunId,
    /// Each scenario.
    pub scenario_ids: Vec<ScenarioId>,
    /// Each scenario's tests.
    pub test_ids: Vec<Vec<TestId>>,
}
