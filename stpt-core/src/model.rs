//! Read models: what stores return for the pages and read API.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::rules::Aggregate;
use crate::{
    ClockOffset, ItemKind, Liveness, MachineId, MachineStatus, MachineTimeouts, RetentionPolicy,
    RunId, RunnerTimezone, ScenarioId, Status, StatusCounts, TestId,
};

/// A machine with its live status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineSummary {
    /// The machine.
    pub id: MachineId,
    /// Its name, spelled as first seen.
    pub name: String,
    /// Its latest run's status, or `not-available`.
    pub status: MachineStatus,
    /// Its latest run (the plan it posted last), if any.
    pub latest_run: Option<RunId>,
    /// When it last posted anything that was applied (server clock).
    pub last_seen: Option<DateTime<Utc>>,
    /// How far its runner's clock is from the server's, in milliseconds: runner minus server,
    /// positive when the rig's clock is ahead. Absent until it posts.
    #[serde(rename = "clock_offset_ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub clock_offset: Option<ClockOffset>,
    /// The IANA time zone its runner's naive timestamps are read in, when an admin set one;
    /// `null`: the server's default (`--runner-timezone`, UTC unless set).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "Europe/Warsaw"))]
    pub runner_timezone: Option<RunnerTimezone>,
    /// Its own liveness thresholds, when an admin set them; each `null` one is the server's
    /// (`--quiet-after`, `--offline-after`).
    #[serde(default)]
    pub timeouts: MachineTimeouts,
    /// Its own retention policy, when an admin set one: it replaces the server's
    /// (`--keep-days`, `--keep-runs-per-machine`) for this machine; with neither limit set, the
    /// machine keeps every run. `null`: the server's applies.
    #[serde(default)]
    pub retention: Option<RetentionPolicy>,
    /// Whether it is being heard from: `online`, `quiet` (silent longer than its tests
    /// usually take) or `offline`.
    // Judged by the tracker when it reads the machine (`Tracker::liveness`); stores leave it
    // `None`.
    pub liveness: Option<Liveness>,
    /// Set while its runner replays events its spool kept while the server was unreachable:
    /// how many are left and since when. Absent otherwise.
    // Held by the tracker in memory (`Tracker::backlog`); stores leave it `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<crate::Backlog>,
}

impl MachineSummary {
    /// A machine's summary from its record and the status of its latest run, if any: its
    /// status is that run's, or `not-available` without one.
    pub fn new(
        id: MachineId,
        name: impl Into<String>,
        latest_run: Option<(RunId, Status)>,
        last_seen: Option<DateTime<Utc>>,
        clock_offset: Option<ClockOffset>,
    ) -> Self {
        MachineSummary {
            id,
            name: name.into(),
            status: latest_run.map_or(MachineStatus::NotAvailable, |(_, status)| {
                MachineStatus::Run(status)
            }),
            latest_run: latest_run.map(|(id, _)| id),
            last_seen,
            clock_offset,
            runner_timezone: None,
            timeouts: MachineTimeouts::default(),
            retention: None,
            liveness: None,
            backlog: None,
        }
    }
}

/// Test counts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Statistics {
    /// Tests by status.
    pub counts: StatusCounts,
    /// Tests in the run.
    pub tests: u32,
    /// Scenarios in the run, empty ones included.
    pub scenarios: u32,
}

impl Statistics {
    /// Statistics from a run's counts and its scenario count.
    pub fn new(counts: StatusCounts, scenarios: u32) -> Self {
        Statistics {
            counts,
            tests: counts.total(),
            scenarios,
        }
    }
}

/// A run as listed on its machine's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSummary {
    /// The run (and its master scenario).
    pub id: RunId,
    /// Its machine.
    pub machine_id: MachineId,
    /// The timestamp the runner put in the plan.
    pub timestamp: DateTime<Utc>,
    /// When the server received the plan.
    pub received_at: DateTime<Utc>,
    /// The aggregated status.
    pub status: Status,
    /// Test and scenario counts.
    pub statistics: Statistics,
    /// When its first test started.
    pub timestamp_start: Option<DateTime<Utc>>,
    /// When it became finished.
    pub timestamp_stop: Option<DateTime<Utc>>,
    /// Set when the server closed the run because its runner went silent: when the runner was
    /// last heard from.
    pub went_silent_at: Option<DateTime<Utc>>,
    /// Whether an admin marked it kept: pruning never deletes it, whatever the retention
    /// policy.
    #[serde(default)]
    pub kept: bool,
}

impl RunSummary {
    /// A run's summary from what a backend stores of it: status, counts and times all come
    /// from its `aggregate`; `went_silent_at` is what a silent close stored
    /// ([`crate::OngoingClosed::silent_since`]).
    pub fn new(
        id: RunId,
        machine_id: MachineId,
        timestamp: DateTime<Utc>,
        received_at: DateTime<Utc>,
        aggregate: &Aggregate,
        scenarios: usize,
        went_silent_at: Option<DateTime<Utc>>,
    ) -> Self {
        RunSummary {
            id,
            machine_id,
            timestamp,
            received_at,
            status: aggregate.status(),
            statistics: Statistics::new(
                aggregate.counts,
                u32::try_from(scenarios).unwrap_or(u32::MAX),
            ),
            timestamp_start: aggregate.timestamp_start,
            timestamp_stop: aggregate.timestamp_stop,
            went_silent_at,
            kept: false,
        }
    }

    /// Stop minus start, once both are known.
    pub fn duration(&self) -> Option<Duration> {
        duration(self.timestamp_start, self.timestamp_stop)
    }
}

/// Stop minus start, once both are known.
pub fn duration(start: Option<DateTime<Utc>>, stop: Option<DateTime<Utc>>) -> Option<Duration> {
    Some(stop? - start?)
}

/// A script file's name and place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileRef {
    /// Directory.
    pub file_path: String,
    /// File name.
    pub file_name: String,
}

/// A run in full, without scripts: what the run page and the live page show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDetail {
    /// Header and counts.
    pub summary: RunSummary,
    /// The machine's name.
    pub machine_name: String,
    /// The master scenario's file.
    pub master: FileRef,
    /// Scenarios in plan order, each with its tests in plan order.
    pub scenarios: Vec<ScenarioView>,
}

/// A scenario in a [`RunDetail`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScenarioView {
    /// The scenario.
    pub id: ScenarioId,
    /// Its file.
    pub file: FileRef,
    /// Aggregated status (`unknown` when it has no tests).
    pub status: Status,
    /// Its tests by status.
    pub counts: StatusCounts,
    /// When its first test started.
    pub timestamp_start: Option<DateTime<Utc>>,
    /// When it became finished.
    pub timestamp_stop: Option<DateTime<Utc>>,
    /// Its tests in plan order.
    pub tests: Vec<TestView>,
}

impl ScenarioView {
    /// A scenario's view from its file, its stored aggregate and its tests in plan order.
    pub fn new(id: ScenarioId, file: FileRef, aggregate: &Aggregate, tests: Vec<TestView>) -> Self {
        ScenarioView {
            id,
            file,
            status: aggregate.status(),
            counts: aggregate.counts,
            timestamp_start: aggregate.timestamp_start,
            timestamp_stop: aggregate.timestamp_stop,
            tests,
        }
    }
}

/// A test in a [`ScenarioView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestView {
    /// The test.
    pub id: TestId,
    /// Its file.
    pub file: FileRef,
    /// Its status.
    pub status: Status,
    /// When it started.
    pub timestamp_start: Option<DateTime<Utc>>,
    /// When it stopped.
    pub timestamp_stop: Option<DateTime<Utc>>,
}

/// Which item's details to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ItemRef {
    /// The master scenario of a run.
    MasterScenario(RunId),
    /// A scenario.
    Scenario(ScenarioId),
    /// A test.
    Test(TestId),
}

impl ItemRef {
    /// The kind of item.
    pub fn kind(&self) -> ItemKind {
        match self {
            ItemRef::MasterScenario(_) => ItemKind::MasterScenario,
            ItemRef::Scenario(_) => ItemKind::Scenario,
            ItemRef::Test(_) => ItemKind::Test,
        }
    }

    /// The raw id.
    pub fn raw_id(&self) -> i64 {
        match self {
            ItemRef::MasterScenario(id) => id.get(),
            ItemRef::Scenario(id) => id.get(),
            ItemRef::Test(id) => id.get(),
        }
    }
}

/// One test, scenario or master scenario with its script: the details view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemDetail {
    /// The item.
    pub item: ItemRef,
    /// Its run.
    pub run_id: RunId,
    /// Its machine.
    pub machine_id: MachineId,
    /// Its file.
    pub file: FileRef,
    /// Script text exactly as planned: `None` when the runner sent `null` or nothing.
    pub script: Option<String>,
    /// Its status.
    pub status: Status,
    /// When it started.
    pub timestamp_start: Option<DateTime<Utc>>,
    /// When it stopped.
    pub timestamp_stop: Option<DateTime<Utc>>,
    /// A test's failure message, as its stop sent it (a short line such as the failed
    /// assertion); absent when there is none, and for scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A test's longer failure text (a traceback, a log tail), as its stop sent it; absent
    /// when there is none, and for scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}
