//! The service that applies runner events: reads what an event touches, applies the rules,
//! commits, then tells live subscribers what changed.

use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::Arc;

use crate::estimate::{FinishedTest, RunEta};
use crate::event::{
    EventId, EventReceipt, PlanReceipt, Recorded, TestAction, TestEvent, TestTarget,
};
use crate::live::{LiveBus, LiveEvent, RunChange, Topic};
use crate::rules::{EventTime, RunState, RunWork};
use crate::store::{
    Changes, Durability, EventRecord, MachineRecord, NewRun, PlannedIds, RecordedEvent, Store,
    StoreTx,
};
use crate::{
    ClockOffset, Error, FailureDetails, ItemDetail, ItemRef, LivenessPolicy, MachineId,
    MachineStatus, MachineSummary, MachineTimeouts, NoMatch, Page, PageRequest, Plan, Result,
    RetentionPolicy, RunDetail, RunId, RunSummary, RunnerTimezone, Statistics, Status, TestId,
    TestStart, TestStop,
};

/// Where the tracker takes the server's time from.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: for tests of durations and expiry.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(std::sync::Mutex::new(start))
    }

    /// Sets the time.
    pub fn set(&self, time: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = time;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How many times an event is applied when the store keeps reporting stale reads
/// ([`Error::Stale`]); a backend reads under its lock after the first such report.
const STALE_ATTEMPTS: u32 = 3;

/// Applies runner events to a [`Store`] with [the rules](crate::rules) and publishes what changed
/// on a [`LiveBus`]. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Tracker {
    store: Arc<dyn Store>,
    bus: Arc<dyn LiveBus>,
    clock: Arc<dyn Clock>,
    liveness: LivenessPolicy,
    /// Which finished runs to keep, on machines without a policy of their own.
    retention: RetentionPolicy,
    max_plan_tests: usize,
    /// How naive runner timestamps are read on machines without a zone of their own.
    runner_timezone: RunnerTimezone,
    /// Finished tests not yet added to the histories (see
    /// [`Tracker::flush_finished`]), oldest first: a queue, so dropping the oldest at the
    /// cap costs no copy of the rest.
    finished: Arc<std::sync::Mutex<VecDeque<FinishedTest>>>,
    /// Watched runs' remaining work, for estimates without a store read each time.
    eta_cache: Arc<crate::eta_cache::EtaCache>,
    /// Machines replaying a backlog (see [`Tracker::note_backlog`]).
    pub(crate) backlogs: Arc<crate::backlog::Backlogs>,
}

/// Durations held for the histories at most; beyond, the oldest are dropped (estimates lose
/// a little, memory stays bounded while a store refuses them).
const MAX_PENDING_FINISHED: usize = 100_000;

/// Drops the oldest held durations beyond [`MAX_PENDING_FINISHED`].
fn keep_newest_finished(pending: &mut VecDeque<FinishedTest>) {
    let excess = pending.len().saturating_sub(MAX_PENDING_FINISHED);
    pending.drain(..excess);
}

impl Tracker {
    /// A tracker on the system clock.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn LiveBus>) -> Self {
        Tracker {
            store,
            bus,
            clock: Arc::new(SystemClock),
            liveness: LivenessPolicy::default(),
            retention: RetentionPolicy::default(),
            max_plan_tests: Self::DEFAULT_MAX_PLAN_TESTS,
            runner_timezone: RunnerTimezone::UTC,
            finished: Arc::default(),
            eta_cache: Arc::default(),
            backlogs: Arc::default(),
        }
    }

    /// Tests a plan may hold by default: ten times the biggest runs labs report, far below
    /// what would hold the store for seconds.
    pub const DEFAULT_MAX_PLAN_TESTS: usize = 50_000;

    /// The same tracker refusing plans of more than `tests` tests (at least 1).
    pub fn with_max_plan_tests(mut self, tests: usize) -> Self {
        self.max_plan_tests = tests.max(1);
        self
    }

    /// The same tracker judging machines' liveness by `policy` (see [`crate::LivenessWatch`]).
    pub fn with_liveness(mut self, policy: LivenessPolicy) -> Self {
        self.liveness = policy;
        self
    }

    /// When silence makes a machine quiet or offline.
    pub fn liveness_policy(&self) -> LivenessPolicy {
        self.liveness
    }

    /// The same tracker pruning by `policy` (see [`Tracker::prune`]) on machines without a
    /// policy of their own; the default keeps every run.
    pub fn with_retention(mut self, policy: RetentionPolicy) -> Self {
        self.retention = policy;
        self
    }

    /// Which finished runs to keep on machines without a policy of their own.
    pub fn retention_policy(&self) -> RetentionPolicy {
        self.retention
    }

    /// Sets machine `id`'s own liveness thresholds (see [`Store::set_machine_timeouts`]);
    /// [`MachineTimeouts::default`] clears them. [`Error::InvalidInput`] for a threshold out
    /// of range, storing nothing.
    pub async fn set_machine_timeouts(
        &self,
        id: MachineId,
        timeouts: MachineTimeouts,
    ) -> Result<()> {
        timeouts.check()?;
        self.store.set_machine_timeouts(id, timeouts).await
    }

    /// Gives machine `id` its own retention policy, or with `None` puts it back under the
    /// server's (see [`Store::set_machine_retention`]). [`Error::InvalidInput`] for a limit of
    /// 0, storing nothing.
    pub async fn set_machine_retention(
        &self,
        id: MachineId,
        retention: Option<RetentionPolicy>,
    ) -> Result<()> {
        if let Some(policy) = &retention {
            policy.check()?;
        }
        self.store.set_machine_retention(id, retention).await
    }

    /// Marks run `id` kept (exempt from pruning) or not (see [`Store::set_run_kept`]).
    pub async fn set_run_kept(&self, id: RunId, kept: bool) -> Result<()> {
        self.store.set_run_kept(id, kept).await
    }

    /// The same tracker reading naive runner timestamps in `zone` (UTC unless set, as the
    /// seed), except on machines given a zone of their own ([`MachineRecord::timezone`]).
    /// Timestamps with `Z` or an offset keep it.
    pub fn with_runner_timezone(mut self, zone: RunnerTimezone) -> Self {
        self.runner_timezone = zone;
        self
    }

    /// How naive runner timestamps are read on machines without a zone of their own.
    pub fn runner_timezone(&self) -> RunnerTimezone {
        self.runner_timezone
    }

    /// The zone `machine`'s naive timestamps are read in: its own, or the default.
    fn zone_of(&self, machine: Option<&MachineRecord>) -> RunnerTimezone {
        machine
            .and_then(|m| m.timezone)
            .unwrap_or(self.runner_timezone)
    }

    /// Sets (or clears, with `None`) the zone machine `id`'s runner writes naive timestamps
    /// in; its next event is read with it (see [`Store::set_machine_timezone`]).
    pub async fn set_machine_timezone(
        &self,
        id: MachineId,
        timezone: Option<RunnerTimezone>,
    ) -> Result<()> {
        self.store.set_machine_timezone(id, timezone).await
    }

    /// The same tracker reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The server's current time, from this tracker's clock (for "started 5 minutes ago").
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The store behind this tracker.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The bus this tracker publishes on.
    pub fn bus(&self) -> &Arc<dyn LiveBus> {
        &self.bus
    }

    /// [Rule 1](crate::rules#rule-1): stores `plan` as the machine's new latest run, every item
    /// `waiting`, after abandoning the machine's ongoing runs (their ongoing tests become `unknown`
    /// at the plan's timestamp).
    pub async fn record_plan(&self, plan: Plan) -> Result<PlanReceipt> {
        Ok(self.plan(plan, None).await?.receipt)
    }

    /// [`Self::record_plan`], applied once per `event_id`: a retry with the same id answers
    /// the first receipt (with `replayed` set) and changes nothing.
    pub async fn record_plan_once(
        &self,
        plan: Plan,
        event_id: &EventId,
    ) -> Result<Recorded<PlanReceipt>> {
        self.plan(plan, Some(event_id)).await
    }

    #[tracing::instrument(skip_all, fields(machine = %plan.machine, tests = plan.test_count()))]
    async fn plan(&self, plan: Plan, event_id: Option<&EventId>) -> Result<Recorded<PlanReceipt>> {
        if plan.test_count() > self.max_plan_tests {
            return Err(Error::invalid(
                "master_scenario",
                format!(
                    "the plan has {} tests; this server takes at most {} in one plan",
                    plan.test_count(),
                    self.max_plan_tests
                ),
            ));
        }
        let plan = &plan;
        let result = until_fresh(move || self.apply_plan(plan, event_id)).await;
        count_event("plan", &result);
        result
    }

    async fn apply_plan(
        &self,
        plan: &Plan,
        event_id: Option<&EventId>,
    ) -> Result<Recorded<PlanReceipt>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(&plan.machine).await?;
        if let (Some(event_id), Some(machine)) = (event_id, tx.machine().cloned()) {
            if let Some(recorded) = tx.recorded_event(event_id.as_str()).await? {
                drop(tx);
                return self.replayed_plan(machine.id, event_id, recorded).await;
            }
        }
        let machine_name = tx
            .machine()
            .map_or_else(|| plan.machine.as_str().to_owned(), |m| m.name.clone());
        let new_run = NewRun::from_plan(plan.clone(), self.zone_of(tx.machine()), now)?;
        let plan_time = new_run.timestamp;
        let mut abandoned = Vec::new();
        if tx.machine().is_some() {
            for run in tx.ongoing_runs().await? {
                let scenarios = tx.scenarios(run.id).await?;
                let mut work = RunWork::new(run, scenarios);
                work.close_ongoing(Status::Unknown, EventTime::new(plan_time, now))?;
                abandoned.push(work);
            }
        }
        let clock_offset =
            ClockOffset::update(tx.machine().and_then(|m| m.clock_offset), plan_time, now);
        let (timestamp, aggregate) = (plan_time, new_run.aggregate);
        let scenario_count = u32::try_from(new_run.scenario_aggregates.len()).unwrap_or(u32::MAX);
        let committed = tx
            .commit(Changes {
                seen_at: now,
                clock_offset: Some(clock_offset),
                runs: abandoned.clone(),
                new_run: Some(new_run),
                record: event_id.map(|id| EventRecord {
                    event_id: id.as_str().to_owned(),
                    receipt: None,
                }),
            })
            .await?;
        let ids = committed
            .new_run
            .ok_or_else(|| Error::backend("store committed a plan without returning its ids"))?;
        let machine_id = committed.machine_id;
        for work in &abandoned {
            self.publish_run_change(machine_id, work);
        }
        let run = RunSummary {
            id: ids.run_id,
            machine_id,
            timestamp,
            received_at: now,
            status: aggregate.status(),
            statistics: Statistics::new(aggregate.counts, scenario_count),
            timestamp_start: None,
            timestamp_stop: None,
            went_silent_at: None,
            kept: false,
        };
        self.publish_machine_status(machine_id, machine_name, run.status);
        self.publish_machine_failures(machine_id, run.id, run.statistics.counts.failures());
        self.bus.publish(
            Topic::Machine(machine_id),
            Arc::new(LiveEvent::RunCreated { run }),
        );
        Ok(Recorded {
            receipt: PlanReceipt {
                machine_id,
                ids,
                abandoned: abandoned.iter().map(|work| work.run.id).collect(),
            },
            replayed: false,
        })
    }

    /// Rebuilds a plan's receipt from the run it created (which runs it abandoned is not
    /// kept: a replay reports none).
    async fn replayed_plan(
        &self,
        machine_id: MachineId,
        event_id: &EventId,
        recorded: RecordedEvent,
    ) -> Result<Recorded<PlanReceipt>> {
        let run_id = recorded
            .new_run
            .ok_or_else(|| Error::IdempotencyKeyReused {
                event_id: event_id.as_str().to_owned(),
            })?;
        let run = self.store.run(run_id).await?;
        Ok(Recorded {
            receipt: PlanReceipt {
                machine_id,
                ids: PlannedIds {
                    run_id,
                    scenario_ids: run.scenarios.iter().map(|s| s.id).collect(),
                    test_ids: run
                        .scenarios
                        .iter()
                        .map(|s| s.tests.iter().map(|t| t.id).collect())
                        .collect(),
                },
                abandoned: Vec::new(),
            },
            replayed: true,
        })
    }

    /// [Rule 2](crate::rules#rule-2): the first `waiting` test of that path and name in the
    /// machine's ongoing run, in plan order, starts; any other running test of the run becomes
    /// `unknown`.
    pub async fn record_test_start(&self, event: TestStart) -> Result<EventReceipt> {
        Ok(self.record_test_event(event.into(), None).await?.receipt)
    }

    /// [Rules 3](crate::rules#rule-3) and [8](crate::rules#rule-8): the matching running test takes
    /// the final status; `cancelled` cancels every ongoing test of the run.
    pub async fn record_test_stop(&self, event: TestStop) -> Result<EventReceipt> {
        Ok(self.record_test_event(event.into(), None).await?.receipt)
    }

    /// Applies a test start or stop, addressed by name (as the seed protocol) or by test id.
    /// With an `event_id`, the event is applied once: a retry answers the first receipt with
    /// `replayed` set.
    #[tracing::instrument(skip_all, fields(action = ?event.action))]
    pub async fn record_test_event(
        &self,
        event: TestEvent,
        event_id: Option<&EventId>,
    ) -> Result<Recorded<EventReceipt>> {
        let kind = event_kind(&event);
        let event = &event;
        let result = until_fresh(move || self.apply_test_event(event, event_id, false))
            .await
            .map(|applied| {
                // Committed in full: durable already.
                drop(applied.durability);
                self.publish_applied(applied.publish);
                applied.recorded
            });
        count_event(kind, &result);
        result
    }

    /// Applies test events in order, each as [`Self::record_test_event`] would, but commits
    /// them together where the store can ([`StoreTx::commit_deferred`]): a batch costs the
    /// store one flush instead of one per event. Answers, and publishes the changes, only once
    /// every applied event is durable.
    ///
    /// An event the rules reject (no match, invalid) is answered in its place and the rest go
    /// on. A store failure ends the batch with that error: events applied before it may be
    /// stored, so a client retries with the same `event_id`s.
    pub async fn record_test_events(
        &self,
        events: Vec<(TestEvent, Option<EventId>)>,
    ) -> Result<Vec<Result<Recorded<EventReceipt>>>> {
        let mut outcomes = Vec::with_capacity(events.len());
        let mut pending = Vec::new();
        let mut failure = None;
        for (event, event_id) in &events {
            let applied =
                until_fresh(move || self.apply_test_event(event, event_id.as_ref(), true)).await;
            match applied {
                Ok(applied) => {
                    pending.push(applied.durability);
                    outcomes.push(Ok((applied.recorded, applied.publish)));
                }
                Err(error) if is_rejection(&error) => outcomes.push(Err(error)),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        // What was applied must end durable (then it is published) or fail as a whole.
        for durability in pending {
            durability.wait().await?;
        }
        let mut results = Vec::with_capacity(outcomes.len());
        for ((event, _), outcome) in events.iter().zip(outcomes) {
            let result = outcome.map(|(recorded, publish)| {
                self.publish_applied(publish);
                recorded
            });
            count_event(event_kind(event), &result);
            results.push(result);
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(results),
        }
    }

    fn publish_applied(&self, publish: Option<Publish>) {
        let Some(Publish {
            machine,
            status_before,
            work,
        }) = publish
        else {
            return;
        };
        let run_status = work.run.aggregate.status();
        self.hold_finished(machine.id, &work);
        self.publish_run_change(machine.id, &work);
        if status_before != run_status && machine.latest_run == Some(work.run.id) {
            self.publish_machine_status(machine.id, machine.name, run_status);
        }
    }

    async fn apply_test_event(
        &self,
        event: &TestEvent,
        event_id: Option<&EventId>,
        deferred: bool,
    ) -> Result<Applied> {
        match event.action {
            TestAction::Stop(status) if status.is_ongoing() => {
                return Err(Error::invalid(
                    "status",
                    format!("`{status}` is not a final status"),
                ));
            }
            TestAction::Start if event.failure.is_some() => {
                return Err(Error::invalid(
                    "message",
                    "a test start carries no message or details; send them with the stop",
                ));
            }
            _ => {}
        }
        let now = self.clock.now();
        // By id, the test's run, machine and file are fixed facts, read before locking.
        let located;
        let (machine_name, file_path, file_name, by_id) = match &event.target {
            TestTarget::Named {
                machine,
                file_path,
                file_name,
            } => (machine, file_path, file_name, None),
            &TestTarget::Id(test_id) => {
                located = self.store.locate_test(test_id).await?;
                (
                    &located.machine,
                    &located.file.file_path,
                    &located.file.file_name,
                    Some((test_id, located.run_id)),
                )
            }
        };
        let mut tx = self.store.begin(machine_name).await?;
        if let (Some(event_id), true) = (event_id, tx.machine().is_some()) {
            if let Some(recorded) = tx.recorded_event(event_id.as_str()).await? {
                let receipt = recorded
                    .receipt
                    .ok_or_else(|| Error::IdempotencyKeyReused {
                        event_id: event_id.as_str().to_owned(),
                    })?;
                return Ok(Applied {
                    recorded: Recorded {
                        receipt: serde_json::from_str(&receipt).map_err(Error::backend)?,
                        replayed: true,
                    },
                    durability: Durability::done(),
                    publish: None,
                });
            }
        }
        let at = crate::time::resolve("timestamp", event.at, self.zone_of(tx.machine()))?;
        let decided = decide_test_event(
            tx.as_mut(),
            event.action,
            event.failure.as_ref(),
            EventTime::new(at, now),
            machine_name.as_str(),
            (file_path, file_name),
            by_id,
        )
        .await;
        let (machine, status_before, work, test_id) = match decided {
            Ok(decided) => decided,
            // The runner was heard even though its event matched nothing (it may be coming
            // back after its run was closed as silent): its last-seen time moves, and the
            // commit checks, as confirming would, that the reads were current.
            Err(error @ Error::NoMatch(_)) if tx.machine().is_some() => {
                let clock_offset = tx
                    .machine()
                    .and_then(|m| m.clock_offset)
                    .map(|offset| ClockOffset::update(Some(offset), at, now));
                tx.commit(Changes {
                    seen_at: now,
                    clock_offset,
                    runs: Vec::new(),
                    new_run: None,
                    record: None,
                })
                .await?;
                return Err(error);
            }
            // Answered from reads alone: make sure they were current.
            // A broken invariant may come from reads another writer overtook.
            Err(error @ (Error::NoMatch(_) | Error::Invariant { .. })) => {
                tx.confirm().await?;
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        let run_status = work.run.aggregate.status();
        let receipt = EventReceipt {
            machine_id: machine.id,
            run_id: work.run.id,
            test_id,
            status: work
                .tests
                .iter()
                .find(|t| t.id == test_id)
                .map_or(run_status, |t| t.status),
            run_status,
        };
        let record = match event_id {
            Some(id) => Some(EventRecord {
                event_id: id.as_str().to_owned(),
                receipt: Some(serde_json::to_string(&receipt).map_err(Error::backend)?),
            }),
            None => None,
        };
        let changes = Changes {
            seen_at: now,
            clock_offset: Some(ClockOffset::update(machine.clock_offset, at, now)),
            runs: vec![work.clone()],
            new_run: None,
            record,
        };
        let durability = if deferred {
            tx.commit_deferred(changes).await?.1
        } else {
            tx.commit(changes).await?;
            Durability::done()
        };
        Ok(Applied {
            recorded: Recorded {
                receipt,
                replayed: false,
            },
            durability,
            publish: Some(Publish {
                machine,
                status_before,
                work,
            }),
        })
    }

    /// Holds the tests `work` finished, for [`Tracker::flush_finished`].
    fn hold_finished(&self, machine_id: MachineId, work: &RunWork) {
        let mut samples = work
            .tests
            .iter()
            .filter_map(|test| FinishedTest::of(machine_id, test))
            .peekable();
        // A start usually finishes nothing: no lock for it.
        if samples.peek().is_none() {
            return;
        }
        let mut pending = self
            .finished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pending.extend(samples);
        keep_newest_finished(&mut pending);
    }

    /// Adds the tests finished since the last flush to the store's histories
    /// ([`Store::record_finished`]), in one call, and answers how many. Events never wait for
    /// this: the [`crate::LivenessWatch`] flushes on each tick, so histories trail events by a
    /// few seconds, and a crash loses at most those. A store that does not keep histories
    /// answers [`Error::NotSupported`]; the samples are then dropped.
    pub async fn flush_finished(&self) -> Result<usize> {
        let samples: Vec<FinishedTest> = std::mem::take(
            &mut *self
                .finished
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into();
        if samples.is_empty() {
            return Ok(0);
        }
        match self.store.record_finished(&samples).await {
            Ok(()) => {
                self.eta_cache.add_durations(&samples);
                Ok(samples.len())
            }
            Err(Error::NotSupported { .. }) => Ok(0),
            Err(error) => {
                // Kept for the next flush, ahead of what arrived meanwhile.
                let mut pending = self
                    .finished
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let newer = std::mem::replace(&mut *pending, samples.into());
                pending.extend(newer);
                keep_newest_finished(&mut pending);
                Err(error)
            }
        }
    }

    /// When run `id` is expected to finish ([`crate::estimate::estimate_run`]), from the
    /// store's duration histories where it keeps them, else from the run's own pace.
    pub async fn eta(&self, id: RunId) -> Result<RunEta> {
        let read_at = self.now();
        if let Some(held) = self.eta_cache.summary(id, read_at) {
            // Another process may have moved the run (several servers on one database):
            // its counts, one indexed read, say whether what is held is still current.
            let latest = self
                .store
                .runs(held.machine_id, PageRequest::first(1)?)
                .await?;
            let current = latest.items.first().is_some_and(|run| {
                run.id == id
                    && run.status == held.status
                    && run.statistics.counts == held.statistics.counts
            });
            if current {
                let offset = self.store.machine(held.machine_id).await?.clock_offset;
                let now = self.now();
                let estimate = self.eta_cache.with(id, |remaining| {
                    crate::estimate::estimate_run(&remaining.run, &remaining.work, now, offset)
                });
                if let Some(estimate) = estimate {
                    return Ok(estimate);
                }
            } else {
                self.eta_cache.forget(id);
            }
        }
        let (run, remaining) = match self.store.remaining_work(id).await {
            Err(Error::NotSupported { .. }) => (self.store.run(id).await?.summary, Vec::new()),
            other => {
                let remaining = other?;
                let estimate_from = (remaining.run.clone(), remaining.work.clone());
                if remaining.run.status.is_ongoing() {
                    self.eta_cache.put(remaining, read_at);
                }
                estimate_from
            }
        };
        let offset = self.store.machine(run.machine_id).await?.clock_offset;
        Ok(crate::estimate::estimate_run(
            &run,
            &remaining,
            self.now(),
            offset,
        ))
    }

    pub(crate) fn publish_run_change(&self, machine_id: MachineId, work: &RunWork) {
        self.eta_cache.apply(work);
        let change = RunChange::from_work(machine_id, work);
        let failures_moved = change.closed.is_some()
            || change
                .tests
                .iter()
                .any(|test| matches!(test.status, Status::Failed | Status::Error));
        if failures_moved {
            self.publish_machine_failures(machine_id, change.run_id, change.counts.failures());
        }
        self.bus.publish(
            Topic::Machine(machine_id),
            Arc::new(LiveEvent::RunChanged(change)),
        );
    }

    fn publish_machine_failures(&self, machine_id: MachineId, run_id: RunId, failed: u32) {
        self.bus.publish(
            Topic::Machines,
            Arc::new(LiveEvent::MachineFailures {
                machine_id,
                run_id,
                failed,
            }),
        );
    }

    pub(crate) fn publish_machine_status(
        &self,
        machine_id: MachineId,
        machine_name: String,
        status: Status,
    ) {
        self.bus.publish(
            Topic::Machines,
            Arc::new(LiveEvent::MachineStatus {
                machine_id,
                machine_name,
                status: MachineStatus::Run(status),
            }),
        );
    }

    /// Machines ordered by name, each with its liveness and backlog; [`Error::NotFound`] for
    /// a page past the last.
    pub async fn machines(&self, page: PageRequest) -> Result<Page<MachineSummary>> {
        let mut page = self.store.machines(page).await?.within_range()?;
        for machine in &mut page.items {
            machine.liveness = Some(self.liveness(machine).await?);
            machine.backlog = self.backlog(machine.id);
        }
        Ok(page)
    }

    /// One machine, with its liveness and backlog.
    pub async fn machine(&self, id: MachineId) -> Result<MachineSummary> {
        let mut machine = self.store.machine(id).await?;
        machine.liveness = Some(self.liveness(&machine).await?);
        machine.backlog = self.backlog(machine.id);
        Ok(machine)
    }

    /// A machine's runs, newest first; [`Error::NotFound`] for a page past the last.
    pub async fn runs(&self, machine: MachineId, page: PageRequest) -> Result<Page<RunSummary>> {
        self.store.runs(machine, page).await?.within_range()
    }

    /// One run in full.
    pub async fn run(&self, id: RunId) -> Result<RunDetail> {
        self.store.run(id).await
    }

    /// A machine's latest run in full ([rule 6](crate::rules#rule-6): the plan it posted last), or
    /// `None`.
    pub async fn latest_run(&self, machine: MachineId) -> Result<Option<RunDetail>> {
        match self.store.machine(machine).await?.latest_run {
            Some(run) => Ok(Some(self.store.run(run).await?)),
            None => Ok(None),
        }
    }

    /// One item with its script.
    pub async fn item(&self, item: ItemRef) -> Result<ItemDetail> {
        self.store.item(item).await
    }

    /// Deletes a run (see [`Store::delete_run`]). Open pages learn of it on their next
    /// reload, not live.
    pub async fn delete_run(&self, id: RunId) -> Result<()> {
        self.eta_cache.forget(id);
        self.store.delete_run(id).await
    }

    /// Deletes a machine and its runs (see [`Store::delete_machine`]).
    pub async fn delete_machine(&self, id: MachineId) -> Result<()> {
        self.eta_cache.forget_machine(id);
        self.store.delete_machine(id).await
    }
}

/// A test event applied: its answer, when it is durable, and what to publish once it is.
struct Applied {
    recorded: Recorded<EventReceipt>,
    durability: Durability,
    publish: Option<Publish>,
}

/// What an applied test event changed, for live subscribers.
struct Publish {
    machine: MachineRecord,
    status_before: Status,
    work: RunWork,
}

fn event_kind(event: &TestEvent) -> &'static str {
    match event.action {
        TestAction::Start => "test_start",
        TestAction::Stop(_) => "test_stop",
    }
}

/// An error that answers one event and says nothing about the store.
fn is_rejection(error: &Error) -> bool {
    matches!(
        error,
        Error::NoMatch(_)
            | Error::InvalidInput { .. }
            | Error::NotFound { .. }
            | Error::Conflict { .. }
            | Error::IdempotencyKeyReused { .. }
    )
}

/// What a test event does to the machine's ongoing run, from the unit's reads: the machine,
/// the run's status before, the work, and the test the event addressed.
async fn decide_test_event(
    tx: &mut dyn StoreTx,
    action: TestAction,
    failure: Option<&FailureDetails>,
    time: EventTime,
    machine_name: &str,
    (file_path, file_name): (&str, &str),
    by_id: Option<(TestId, RunId)>,
) -> Result<(MachineRecord, Status, RunWork, TestId)> {
    let (machine, run) = ongoing_run(tx, machine_name).await?;
    if let Some((test_id, run_id)) = by_id {
        if run_id != run.id {
            return Err(Error::NoMatch(NoMatch::TestNotInOngoingRun { test_id }));
        }
    }
    let status_before = run.aggregate.status();
    let (work, test_id) = match action {
        TestAction::Start => {
            let target = match by_id {
                Some((test_id, _)) => tx.test(test_id).await?,
                None => tx.first_waiting_test(run.id, file_path, file_name).await?,
            }
            .filter(|test| test.status == Status::Waiting)
            .ok_or_else(|| {
                Error::NoMatch(NoMatch::NoWaitingTest {
                    file_path: file_path.to_owned(),
                    file_name: file_name.to_owned(),
                })
            })?;
            let running = tx.running_test(run.id).await?;
            let mut scenarios = vec![tx.scenario(target.scenario_id).await?];
            if let Some(running) = &running {
                if running.scenario_id != target.scenario_id {
                    scenarios.push(tx.scenario(running.scenario_id).await?);
                }
            }
            let test_id = target.id;
            let mut work = RunWork::new(run, scenarios);
            work.start_test(target, running, time)?;
            (work, test_id)
        }
        TestAction::Stop(status) => {
            let running = tx
                .running_test(run.id)
                .await?
                .filter(|test| match by_id {
                    Some((test_id, _)) => test.id == test_id,
                    None => test.file_path == file_path && test.file_name == file_name,
                })
                .ok_or_else(|| {
                    Error::NoMatch(NoMatch::NoRunningTest {
                        file_path: file_path.to_owned(),
                        file_name: file_name.to_owned(),
                    })
                })?;
            let scenarios = if status == Status::Cancelled {
                tx.scenarios(run.id).await?
            } else {
                vec![tx.scenario(running.scenario_id).await?]
            };
            let test_id = running.id;
            let mut work = RunWork::new(run, scenarios);
            work.stop_test(running, status, failure.cloned(), time)?;
            (work, test_id)
        }
    };
    Ok((machine, status_before, work, test_id))
}

async fn ongoing_run(
    tx: &mut dyn StoreTx,
    machine_name: &str,
) -> Result<(MachineRecord, RunState)> {
    let machine = tx.machine().cloned().ok_or_else(|| {
        Error::NoMatch(NoMatch::UnknownMachine {
            machine_name: machine_name.to_owned(),
        })
    })?;
    let run = tx.ongoing_runs().await?.into_iter().next().ok_or_else(|| {
        Error::NoMatch(NoMatch::NoOngoingRun {
            machine_name: machine.name.clone(),
        })
    })?;
    Ok((machine, run))
}

/// Applies an event (through `apply`) again while the store reports stale reads, up to
/// [`STALE_ATTEMPTS`] times in all.
async fn until_fresh<T, F>(mut apply: impl FnMut() -> F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match apply().await {
            Err(Error::Stale { message }) if attempt < STALE_ATTEMPTS => {
                tracing::debug!(%message, attempt, "read stale state; applying the event again");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Counts runner events by kind and outcome (`stpt_events_total`), for whatever metrics
/// recorder the host installed.
fn count_event<T>(kind: &'static str, result: &Result<Recorded<T>>) {
    let outcome = match result {
        Ok(Recorded {
            replayed: false, ..
        }) => "applied",
        Ok(Recorded { replayed: true, .. }) => "replayed",
        Err(Error::NoMatch(_)) => "no_match",
        Err(Error::InvalidInput { .. }) => "invalid",
        Err(_) => "error",
    };
    metrics::counter!("stpt_events_total", "kind" => kind, "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileRef;
    use crate::{Status, TestId};

    fn finished(test_id: i64) -> FinishedTest {
        FinishedTest {
            machine_id: MachineId(1),
            test_id: TestId(test_id),
            file: FileRef {
                file_path: "/t".to_owned(),
                file_name: "t.py".to_owned(),
            },
            status: Status::Passed,
            millis: Some(1),
        }
    }

    #[test]
    fn held_durations_keep_the_newest_at_the_cap() {
        let extra = 5;
        let mut pending: VecDeque<FinishedTest> = (0..MAX_PENDING_FINISHED + extra)
            .map(|i| finished(i as i64))
            .collect();
        keep_newest_finished(&mut pending);
        assert_eq!(pending.len(), MAX_PENDING_FINISHED);
        assert_eq!(
            pending.front().map(|t| t.test_id),
            Some(TestId(extra as i64))
        );
        assert_eq!(
            pending.back().map(|t| t.test_id),
            Some(TestId((MAX_PENDING_FINISHED + extra - 1) as i64))
        );
    }
}
