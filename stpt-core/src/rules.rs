//! The rules of the run domain (statuses, their aggregation, and lifecycle rules 1 to 8),
//! written down here and implemented as pure functions over the few records an event touches.
//!
#![doc = include_str!("../docs/rules.md")]

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, FailureDetails, Result, RunId, ScenarioId, Status, StatusCounts, TestId};

/// Counts and timestamps of a scenario or a run. Its status is derived from the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Aggregate {
    /// Tests by status.
    pub counts: StatusCounts,
    /// When the first test in it started ([rule 4](crate::rules#rule-4)).
    pub timestamp_start: Option<DateTime<Utc>>,
    /// When it became finished ([rule 4](crate::rules#rule-4)).
    pub timestamp_stop: Option<DateTime<Utc>>,
}

impl Aggregate {
    /// A freshly planned aggregate of `tests` waiting tests.
    pub fn planned(tests: u32) -> Self {
        let mut counts = StatusCounts::new();
        counts.set(Status::Waiting, tests);
        Aggregate {
            counts,
            timestamp_start: None,
            timestamp_stop: None,
        }
    }

    /// The aggregated status: the highest-priority status among its tests; `unknown` with none.
    pub fn status(&self) -> Status {
        self.counts.status()
    }

    /// Moves `count` tests from `from` to `to` at `at`, stamping the start on the first test
    /// start and the stop when the aggregate becomes finished.
    pub fn shift(&mut self, from: Status, to: Status, count: u32, at: DateTime<Utc>) {
        let was_finished = self.status().is_finished();
        self.counts.shift(from, to, count);
        if to == Status::Running && self.timestamp_start.is_none() {
            self.timestamp_start = Some(at);
        }
        if !was_finished && self.status().is_finished() {
            self.timestamp_stop = Some(at);
        }
    }
}

/// When an event happened, on both clocks ([rule 4](crate::rules#rule-4)): the runner's
/// timestamp becomes the test's own time; the server's receipt time becomes its scenario's
/// and run's start or stop. Runner clocks are often off or in local time, and the run's
/// elapsed time must count on the clock of whoever reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime {
    /// The runner's timestamp.
    pub runner: DateTime<Utc>,
    /// When the server received the event.
    pub received: DateTime<Utc>,
}

impl EventTime {
    /// The runner's `runner` time of an event the server received at `received`.
    pub fn new(runner: DateTime<Utc>, received: DateTime<Utc>) -> Self {
        EventTime { runner, received }
    }
}

/// One time on both clocks: for tests and tools that have a single clock.
impl From<DateTime<Utc>> for EventTime {
    fn from(at: DateTime<Utc>) -> Self {
        EventTime::new(at, at)
    }
}

/// What the rules need of a test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestState {
    /// The test.
    pub id: TestId,
    /// Its scenario.
    pub scenario_id: ScenarioId,
    /// Directory of the test script.
    pub file_path: String,
    /// File name of the test script.
    pub file_name: String,
    /// Current status.
    pub status: Status,
    /// When it started.
    pub timestamp_start: Option<DateTime<Utc>>,
    /// When it stopped.
    pub timestamp_stop: Option<DateTime<Utc>>,
    /// What its stop said about how it ended ([rule 3](crate::rules#rule-3)); `None` for
    /// ongoing tests and tests whose stop said nothing. Stores persist it with the test's
    /// other fields and may leave it out when loading ongoing tests. Boxed: most tests have
    /// none, and ongoing runs keep every test's state in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Box<FailureDetails>>,
}

/// What the rules need of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioState {
    /// The scenario.
    pub id: ScenarioId,
    /// Its counts and timestamps.
    pub aggregate: Aggregate,
}

/// What the rules need of a run (and of its master scenario, which shares its aggregate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// The run.
    pub id: RunId,
    /// Its counts and timestamps.
    pub aggregate: Aggregate,
}

/// Every ongoing test of a run moved to one final status at once (abandon or cancel). Running
/// tests also get their stop time; waiting tests keep no timestamps, as they never ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OngoingClosed {
    /// The status every ongoing test took.
    pub status: Status,
    /// When (the runner's time; the server's for a silent close).
    pub at: DateTime<Utc>,
    /// Set when the server closed the run because its runner went silent: when it was last
    /// heard from. A backend stores it with the run ([`crate::RunSummary::went_silent_at`]).
    pub silent_since: Option<DateTime<Utc>>,
}

impl OngoingClosed {
    /// What closing does to one test with this status and stop time (the bulk update a
    /// backend performs, for one row): returns its new status and stop time.
    pub fn apply(
        &self,
        status: Status,
        timestamp_stop: Option<DateTime<Utc>>,
    ) -> (Status, Option<DateTime<Utc>>) {
        match status {
            Status::Running => (self.status, Some(self.at)),
            Status::Waiting => (self.status, timestamp_stop),
            finished => (finished, timestamp_stop),
        }
    }
}

/// The records of one run that an event touched, after the rules were applied: exactly what
/// a backend must persist, and what live subscribers are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunWork {
    /// The run's new state.
    pub run: RunState,
    /// Touched scenarios' new states.
    pub scenarios: Vec<ScenarioState>,
    /// Tests whose state changed, in the order they changed.
    pub tests: Vec<TestState>,
    /// Set when every ongoing test of the run was closed at once.
    pub closed: Option<OngoingClosed>,
}

impl RunWork {
    /// Starts work on `run` with the scenarios the event may touch loaded.
    pub fn new(run: RunState, scenarios: Vec<ScenarioState>) -> Self {
        RunWork {
            run,
            scenarios,
            tests: Vec::new(),
            closed: None,
        }
    }

    /// [Rule 2](crate::rules#rule-2): `target` (the first waiting test of that path and name)
    /// starts at `at`; the run's `running` test, if any, becomes `unknown`.
    pub fn start_test(
        &mut self,
        target: TestState,
        running: Option<TestState>,
        at: impl Into<EventTime>,
    ) -> Result<()> {
        let at = at.into();
        if target.status != Status::Waiting {
            return Err(rule_broken(format!("test {} is not waiting", target.id)));
        }
        if let Some(running) = running.filter(|running| running.id != target.id) {
            self.move_test(running, Status::Unknown, at, None)?;
        }
        self.move_test(target, Status::Running, at, None)
    }

    /// [Rules 3](crate::rules#rule-3) and [8](crate::rules#rule-8): the running `test` stops with
    /// the final `status` at `at`, keeping the stop's `failure` text (and only that);
    /// `cancelled` cancels every other ongoing test of the run.
    pub fn stop_test(
        &mut self,
        test: TestState,
        status: Status,
        failure: Option<FailureDetails>,
        at: impl Into<EventTime>,
    ) -> Result<()> {
        let at = at.into();
        if status.is_ongoing() {
            return Err(Error::invalid(
                "status",
                format!("`{status}` is not a final status"),
            ));
        }
        if test.status != Status::Running {
            return Err(rule_broken(format!("test {} is not running", test.id)));
        }
        self.move_test(test, status, at, failure.map(Box::new))?;
        if status == Status::Cancelled {
            self.close_ongoing(Status::Cancelled, at)?;
        }
        Ok(())
    }

    /// [Rule 1](crate::rules#rule-1) (abandon, with `unknown`) and [rule 3](crate::rules#rule-3)
    /// (cancel, with `cancelled`): every ongoing test of the run takes `status` at `at`. Needs
    /// every scenario of the run loaded.
    pub fn close_ongoing(&mut self, status: Status, at: impl Into<EventTime>) -> Result<()> {
        let at = at.into();
        if status.is_ongoing() {
            return Err(Error::invalid(
                "status",
                format!("`{status}` is not a final status"),
            ));
        }
        let loaded: u32 = self
            .scenarios
            .iter()
            .map(|s| s.aggregate.counts.total())
            .sum();
        if loaded != self.run.aggregate.counts.total() {
            return Err(rule_broken(format!(
                "closing run {} needs all its scenarios; {loaded} of {} tests loaded",
                self.run.id,
                self.run.aggregate.counts.total()
            )));
        }
        for scenario in &mut self.scenarios {
            close_aggregate(&mut scenario.aggregate, status, at.received);
        }
        close_aggregate(&mut self.run.aggregate, status, at.received);
        let closed = OngoingClosed {
            status,
            at: at.runner,
            silent_since: None,
        };
        for test in &mut self.tests {
            (test.status, test.timestamp_stop) = closed.apply(test.status, test.timestamp_stop);
        }
        self.closed = Some(closed);
        Ok(())
    }

    /// Closes every ongoing test of the run `unknown` at `at` (now, on both clocks) because
    /// its runner has been silent since `last_seen` (see
    /// [`crate::LivenessWatch`]). Needs every scenario of the run loaded.
    pub fn close_silent(&mut self, last_seen: DateTime<Utc>, at: EventTime) -> Result<()> {
        self.close_ongoing(Status::Unknown, at)?;
        if let Some(closed) = &mut self.closed {
            closed.silent_since = Some(last_seen);
        }
        Ok(())
    }

    /// Moves one test to `to` at `at` and updates its scenario's and the run's aggregates.
    /// [Rule 4](crate::rules#rule-4): the test keeps the runner's time; its scenario's and the
    /// run's start and stop take the server's. The test's failure text becomes `failure`:
    /// nothing said before is kept.
    fn move_test(
        &mut self,
        mut test: TestState,
        to: Status,
        at: EventTime,
        failure: Option<Box<FailureDetails>>,
    ) -> Result<()> {
        let from = test.status;
        let scenario = self
            .scenarios
            .iter_mut()
            .find(|s| s.id == test.scenario_id)
            .ok_or_else(|| rule_broken(format!("scenario {} not loaded", test.scenario_id)))?;
        scenario.aggregate.shift(from, to, 1, at.received);
        self.run.aggregate.shift(from, to, 1, at.received);
        test.status = to;
        test.failure = failure;
        if to == Status::Running {
            test.timestamp_start = Some(at.runner);
        } else if from == Status::Running {
            test.timestamp_stop = Some(at.runner);
        }
        match self.tests.iter_mut().find(|t| t.id == test.id) {
            Some(known) => *known = test,
            None => self.tests.push(test),
        }
        Ok(())
    }
}

fn close_aggregate(aggregate: &mut Aggregate, status: Status, at: DateTime<Utc>) {
    let waiting = aggregate.counts.get(Status::Waiting);
    let running = aggregate.counts.get(Status::Running);
    aggregate.shift(Status::Waiting, status, waiting, at);
    aggregate.shift(Status::Running, status, running, at);
}

fn rule_broken(message: String) -> Error {
    Error::Invariant { message }
}
