//! The storage contract. Backends persist what the rules decided; they never decide.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use crate::estimate::{FinishedTest, RunRemaining};
use crate::history::{
    FlakyTest, HistoryQuery, MatrixEntry, RunListing, RunSearch, TestFlakiness, TestHistory,
    TestKey, TestListing, TextFilter,
};
use crate::rules::{Aggregate, RunState, RunWork, ScenarioState, TestState};
use crate::{
    ClockOffset, FileRef, ItemDetail, ItemRef, MachineId, MachineName, MachineSummary,
    MachineTimeouts, Page, PageRequest, Plan, Result, RetentionPolicy, RunDetail, RunId,
    RunSummary, RunnerTimezone, ScenarioId, TestId,
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
/// // A store that needs something kept alive (a temporary directory, a scratch database):
/// stpt_core::store_conformance_tests!(#[tokio::test] async fn() -> (Subject, Guard) {
///     let dir = tempfile::tempdir().unwrap();
///     (MyStore::open(dir.path()).await, dir)
/// });
/// ```
///
/// # Writing your own backend
///
/// A backend stores what the rules decided and answers a few lookups; it decides nothing.
/// Which methods it must write:
///
/// - [`Store::begin`] and the reads ([`Store::machines`], [`Store::machine`], [`Store::runs`],
///   [`Store::run`], [`Store::item`]) — required.
/// - Every [`StoreTx`] method — required, [`StoreTx::test`] and [`StoreTx::recorded_event`]
///   included (events by id and idempotent retries are part of the protocol).
/// - [`Store::delete_run`], [`Store::delete_machine`] and the admin's settings
///   ([`Store::set_machine_timezone`], [`Store::set_machine_timeouts`],
///   [`Store::set_machine_retention`], [`Store::set_run_kept`]) — optional; the default answers [`crate::Error::NotSupported`] and the suite skips their
///   scenarios.
///
/// [`RunIndex`](crate::RunIndex) keeps one run's scenario and test states indexed for the
/// lookups a unit of work makes and applies each commit's [`RunWork`]; [`RunSummary::new`],
/// [`MachineSummary::new`] and [`crate::ScenarioView::new`] build the read models from stored
/// aggregates. To decorate an existing store (logging, metrics, caching), implement
/// [`crate::wrap::WrapStore`] instead and override only what you need.
///
/// Here is a complete backend over plain tables, in one file (the `stpt-examples` package runs
/// the whole conformance suite against the same file):
///
/// ```
#[doc = include_str!("docs/custom_backend.rs")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// use stpt_core::{InProcessBus, Status, TestStartPayload, TestStopPayload, Tracker};
///
/// let tracker = Tracker::new(Arc::new(TableStore::new()), Arc::new(InProcessBus::new()));
/// let plan: stpt_core::PlanPayload = serde_json::from_value(serde_json::json!({
///     "machine_name": "rig-1", "timestamp": "2024-05-01 10:00:00",
///     "master_scenario": {"file_path": "/m", "file_name": "master.py", "script": null,
///         "scenarios": [{"file_path": "/s", "file_name": "s.py", "script": null,
///             "tests": [{"file_path": "/t", "file_name": "a.py", "script": "print(1)"}]}]}}))?;
/// let receipt = tracker.record_plan(plan.validate()?).await?;
/// let start: TestStartPayload = serde_json::from_value(serde_json::json!({
///     "machine_name": "RIG-1", "file_path": "/t", "file_name": "a.py",
///     "timestamp_start": "2024-05-01 10:00:01"}))?;
/// tracker.record_test_start(start.validate()?).await?;
/// let stop: TestStopPayload = serde_json::from_value(serde_json::json!({
///     "machine_name": "rig-1", "file_path": "/t", "file_name": "a.py", "status": "passed",
///     "timestamp_stop": "2024-05-01 10:00:09"}))?;
/// tracker.record_test_stop(stop.validate()?).await?;
///
/// let run = tracker.run(receipt.ids.run_id).await?;
/// assert_eq!(run.summary.status, Status::Passed);
/// assert_eq!(run.scenarios[0].tests[0].status, Status::Passed);
/// # Ok(())
/// # }
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

    /// Where test `id` lives: its machine, run and file, facts fixed when it was planned. An
    /// event addressed by test id reads this before its unit of work begins.
    /// [`crate::Error::NotFound`] if unknown.
    ///
    /// The default reads [`Store::item`] and [`Store::machine`]; a store that remembers
    /// ongoing runs answers from memory.
    async fn locate_test(&self, id: TestId) -> Result<TestLocation> {
        let item = self.item(ItemRef::Test(id)).await?;
        let machine = self.machine(item.machine_id).await?;
        Ok(TestLocation {
            machine: MachineName::new(machine.name)?,
            run_id: item.run_id,
            file: item.file,
        })
    }

    /// Adds finished tests to their identities' histories: durations on their machine and
    /// across all machines, each trimmed to the last [`crate::DURATION_WINDOW`] (see
    /// [`crate::estimate`], [`FinishedTest::duration_sample`]), and outcomes to the
    /// identity's [`crate::history::FlakyWindow`] on the machine (the identity of a test is
    /// read from its stored row; tests deleted meanwhile are skipped). Samples come in the
    /// order the tests finished. Optional (the
    /// default answers [`crate::Error::NotSupported`] and the suite skips its scenario):
    /// without it, run estimates come from each run's own pace.
    async fn record_finished(&self, samples: &[FinishedTest]) -> Result<()> {
        let _ = samples;
        Err(crate::Error::NotSupported {
            operation: "record_finished",
        })
    }

    /// Run `run`'s summary and what it still has to do: one entry per test identity with
    /// waiting or running tests, each with its duration histories on the run's machine and
    /// across machines (empty when none is kept). [`crate::Error::NotFound`] if the run is unknown. Optional, as
    /// [`Store::record_finished`].
    async fn remaining_work(&self, run: RunId) -> Result<RunRemaining> {
        let _ = run;
        Err(crate::Error::NotSupported {
            operation: "remaining_work",
        })
    }

    /// A page of test identity `key`'s results across runs and machines, newest run first,
    /// filtered and bounded by `query` ([`HistoryQuery::effective_limit`]); a test of an
    /// ongoing run is included with its current status. [`crate::Error::NotFound`]
    /// ([`crate::ItemKind::TestIdentity`]) if no test ever had this identity. Optional, as
    /// [`Store::delete_run`], and so are the other history reads below: without them the
    /// history pages answer "not supported" and the rest of stpt works.
    async fn test_history(&self, key: TestKey, query: HistoryQuery) -> Result<TestHistory> {
        let _ = (key, query);
        Err(crate::Error::NotSupported {
            operation: "test_history",
        })
    }

    /// The run its machine received before `run` with the same master scenario file (path
    /// and name), if any. [`crate::Error::NotFound`] if `run` is unknown.
    async fn previous_run(&self, run: RunId) -> Result<Option<RunId>> {
        let _ = run;
        Err(crate::Error::NotSupported {
            operation: "previous_run",
        })
    }

    /// The tests of `run` whose identity's window on the run's machine holds at least
    /// `min_flips` flips, in plan order. [`crate::Error::NotFound`] if `run` is unknown.
    /// Windows are kept by [`Store::record_finished`].
    async fn run_flakiness(&self, run: RunId, min_flips: u32) -> Result<Vec<TestFlakiness>> {
        let _ = (run, min_flips);
        Err(crate::Error::NotSupported {
            operation: "run_flakiness",
        })
    }

    /// Up to `limit` (identity, machine) windows with at least `min_flips` flips, most flips
    /// first, then by machine name and identity key.
    async fn flaky_tests(&self, min_flips: u32, limit: u32) -> Result<Vec<FlakyTest>> {
        let _ = (min_flips, limit);
        Err(crate::Error::NotSupported {
            operation: "flaky_tests",
        })
    }

    /// Every test of each machine's latest run of master scenario file `master`, with its
    /// identity's window on that machine, for [`crate::history::Matrix::assemble`]. Only the
    /// machines in `machines`, unless it is empty.
    async fn matrix_entries(
        &self,
        master: &FileRef,
        machines: &[MachineId],
    ) -> Result<Vec<MatrixEntry>> {
        let _ = (master, machines);
        Err(crate::Error::NotSupported {
            operation: "matrix_entries",
        })
    }

    /// Runs passing every filter of `search`, newest received first.
    async fn search_runs(&self, search: &RunSearch, page: PageRequest) -> Result<Page<RunListing>> {
        let _ = (search, page);
        Err(crate::Error::NotSupported {
            operation: "search_runs",
        })
    }

    /// Test identities whose paths or names contain `text` (all of them without), ordered by
    /// test file name, test path, scenario name, scenario path.
    async fn search_tests(
        &self,
        text: Option<&TextFilter>,
        page: PageRequest,
    ) -> Result<Page<TestListing>> {
        let _ = (text, page);
        Err(crate::Error::NotSupported {
            operation: "search_tests",
        })
    }

    /// Deletes a run with its scenarios and tests, waiting for any unit of work on its
    /// machine. The machine's latest run becomes the one received before it (or none).
    /// [`crate::Error::NotFound`] if unknown. Optional (the conformance suite skips its
    /// scenario when a store answers [`crate::Error::NotSupported`], the default): an
    /// append-only or archival store may refuse deletion by design.
    async fn delete_run(&self, id: RunId) -> Result<()> {
        let _ = id;
        Err(crate::Error::NotSupported {
            operation: "delete_run",
        })
    }

    /// Deletes run `id` as [`Store::delete_run`] does, but only if retention may take it:
    /// finished, not [kept](RunSummary::kept), and not its machine's latest run, judged
    /// under the lock [`Store::set_run_kept`] and units of work take, so a run marked kept
    /// while a pruning pass was deciding stays. Answers whether it deleted;
    /// [`crate::Error::NotFound`] if unknown. Optional: without it,
    /// [`crate::Tracker::prune`] reads first and calls [`Store::delete_run`], and a run
    /// marked kept between the two is lost.
    async fn prune_run(&self, id: RunId) -> Result<bool> {
        let _ = id;
        Err(crate::Error::NotSupported {
            operation: "prune_run",
        })
    }

    /// Sets (or, with `None`, clears) the time zone machine `id`'s runner writes naive
    /// timestamps in ([`MachineRecord::timezone`]). Units of work begun after this returns
    /// see it. [`crate::Error::NotFound`] if unknown. Optional, as [`Store::delete_run`]:
    /// without it every machine uses the tracker's default zone.
    async fn set_machine_timezone(
        &self,
        id: MachineId,
        timezone: Option<RunnerTimezone>,
    ) -> Result<()> {
        let _ = (id, timezone);
        Err(crate::Error::NotSupported {
            operation: "set_machine_timezone",
        })
    }

    /// Sets machine `id`'s own liveness thresholds, which [`MachineSummary::timeouts`] then
    /// answers ([`MachineTimeouts::default`]: none, the server's apply). The caller checked
    /// them ([`MachineTimeouts::check`]). [`crate::Error::NotFound`] if unknown. Optional, as
    /// [`Store::delete_run`]: without it every machine has the server's thresholds.
    async fn set_machine_timeouts(&self, id: MachineId, timeouts: MachineTimeouts) -> Result<()> {
        let _ = (id, timeouts);
        Err(crate::Error::NotSupported {
            operation: "set_machine_timeouts",
        })
    }

    /// Sets machine `id`'s own retention policy, which [`MachineSummary::retention`] then
    /// answers (`None`: the server's applies). The caller checked it
    /// ([`RetentionPolicy::check`]). [`crate::Error::NotFound`] if unknown. Optional, as
    /// [`Store::delete_run`].
    async fn set_machine_retention(
        &self,
        id: MachineId,
        retention: Option<RetentionPolicy>,
    ) -> Result<()> {
        let _ = (id, retention);
        Err(crate::Error::NotSupported {
            operation: "set_machine_retention",
        })
    }

    /// Marks run `id` kept or not: [`RunSummary::kept`], which exempts it from pruning
    /// ([`crate::Tracker::prune`]). [`crate::Error::NotFound`] if unknown. Optional, as
    /// [`Store::delete_run`].
    async fn set_run_kept(&self, id: RunId, kept: bool) -> Result<()> {
        let _ = (id, kept);
        Err(crate::Error::NotSupported {
            operation: "set_run_kept",
        })
    }

    /// Deletes a machine with all its runs, waiting for any unit of work on it. A later plan
    /// under the same name creates a new machine. [`crate::Error::NotFound`] if unknown.
    /// Optional, as [`Store::delete_run`].
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
    /// Its runner clock's offset as last estimated, if it ever posted.
    pub clock_offset: Option<ClockOffset>,
    /// The zone its runner's naive timestamps are read in, when an admin set one
    /// ([`Store::set_machine_timezone`]); otherwise the tracker's default.
    pub timezone: Option<RunnerTimezone>,
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

    /// One test of the machine by id (in any of its runs), or `None`. Required: every event
    /// of the versioned API addresses its test by id, so a backend without it could not take
    /// them.
    async fn test(&mut self, id: TestId) -> Result<Option<TestState>>;

    /// What an earlier commit on this machine recorded under the client's `event_id`
    /// ([`Changes::record`]), or `None`. Required: a retried post must apply once, and a
    /// store that forgot its records would apply it twice without anyone noticing.
    async fn recorded_event(&mut self, event_id: &str) -> Result<Option<RecordedEvent>>;

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

    /// Like [`StoreTx::commit`], but may answer before the changes are durable, so that a
    /// batch of events costs one disk flush instead of one each: the changes are applied
    /// (units begun afterwards see them) and the returned [`Durability`] resolves once they
    /// are durable, or to the error that undid them. The [`crate::Tracker`] uses it for a
    /// batch of events, waits for every one before answering or publishing, and never reports
    /// an event that did not become durable as stored.
    ///
    /// The default commits and answers [`Durability::done`]: correct for every backend, and
    /// the right choice for one that has nothing to gain. A backend that groups commits
    /// overrides it; it must flush on its own eventually even if the `Durability` is dropped.
    async fn commit_deferred(self: Box<Self>, changes: Changes) -> Result<(Committed, Durability)> {
        let committed = self.commit(changes).await?;
        Ok((committed, Durability::done()))
    }
}

/// When changes written by [`StoreTx::commit_deferred`] are durable.
#[must_use = "deferred changes are not known to be stored until waited for"]
pub struct Durability(Option<Pin<Box<dyn Future<Output = Result<()>> + Send>>>);

impl Durability {
    /// Already durable.
    pub fn done() -> Self {
        Durability(None)
    }

    /// Durable when `flushed` resolves to `Ok(())`.
    pub fn new(flushed: impl Future<Output = Result<()>> + Send + 'static) -> Self {
        Durability(Some(Box::pin(flushed)))
    }

    /// Waits until the changes are durable; an error means they were not stored.
    pub async fn wait(self) -> Result<()> {
        match self.0 {
            None => Ok(()),
            Some(flushed) => flushed.await,
        }
    }
}

impl Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Durability(pending)"
        } else {
            "Durability(done)"
        })
    }
}

/// Everything one unit of work writes.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The server time of the event: becomes the machine's last-seen time.
    pub seen_at: DateTime<Utc>,
    /// The machine's new runner clock offset estimate, to store; `None` keeps the stored one.
    pub clock_offset: Option<ClockOffset>,
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

/// Where a test lives (see [`Store::locate_test`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestLocation {
    /// Its machine.
    pub machine: MachineName,
    /// Its run.
    pub run_id: RunId,
    /// Its file.
    pub file: FileRef,
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
    /// The plan's timestamp read in the machine's runner time zone: what to store as the
    /// run's timestamp.
    pub timestamp: DateTime<Utc>,
    /// Server time of receipt ([rule 6](crate::rules#rule-6) orders runs by receipt, not by this).
    pub received_at: DateTime<Utc>,
    /// The run's initial aggregate.
    pub aggregate: Aggregate,
    /// Each scenario's initial aggregate, in plan order.
    pub scenario_aggregates: Vec<Aggregate>,
}

impl NewRun {
    /// [Rule 1](crate::rules#rule-1): a plan becomes a run with every item waiting; an empty
    /// scenario is `unknown`. A naive plan timestamp is read in `zone`, the machine's runner
    /// time zone; [`crate::Error::InvalidInput`] when that leaves the years 1 to 9999.
    pub fn from_plan(plan: Plan, zone: RunnerTimezone, received_at: DateTime<Utc>) -> Result<Self> {
        let timestamp = crate::time::resolve("timestamp", plan.timestamp, zone)?;
        let scenario_aggregates: Vec<Aggregate> = plan
            .scenarios
            .iter()
            .map(|s| Aggregate::planned(count_u32(s.tests.len())))
            .collect();
        let aggregate = Aggregate::planned(count_u32(plan.test_count()));
        Ok(NewRun {
            plan,
            timestamp,
            received_at,
            aggregate,
            scenario_aggregates,
        })
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
