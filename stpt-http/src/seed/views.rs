//! The JSON shapes of the seed's read API.

use chrono::{DateTime, Utc};
use serde::Serialize;
use stpt_core::{ItemDetail, MachineSummary, Page, RunDetail, RunSummary, Status, StatusCounts};
use utoipa::ToSchema;

use crate::humanize::{ago, display_time, human_duration};

/// The seed's pagination envelope.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedPage)]
pub(crate) struct Paginated<T> {
    /// Items on all pages.
    count: u64,
    /// Items per page.
    page_size: u32,
    /// This page, from 1.
    page_number: u32,
    /// Pages in all (at least 1).
    total_pages: u32,
    /// Whether a page comes before this one.
    has_previous: bool,
    /// The previous page's number, or `null`.
    previous_page_number: Option<u32>,
    /// Whether a page comes after this one.
    has_next: bool,
    /// The next page's number, or `null`.
    next_page_number: Option<u32>,
    /// This page's items.
    results: Vec<T>,
}

impl<T> Paginated<T> {
    pub(crate) fn new<U>(page: Page<U>, convert: impl FnMut(U) -> T) -> Self {
        let number = page.request.number();
        Paginated {
            count: page.total,
            page_size: page.request.size(),
            page_number: number,
            total_pages: page.total_pages(),
            has_previous: page.has_previous(),
            previous_page_number: page.has_previous().then(|| number - 1),
            has_next: page.has_next(),
            next_page_number: page.has_next().then(|| number + 1),
            results: page.items.into_iter().map(convert).collect(),
        }
    }
}

/// A machine as the seed listed it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedMachine)]
pub(crate) struct MachineJson {
    /// The machine's id.
    id: i64,
    /// Its name, spelled as first seen.
    name: String,
    /// Its latest run's status, or `not-available`.
    #[schema(value_type = stpt_core::MachineStatus)]
    status: &'static str,
    /// Its page, e.g. `/machine/1`.
    url: String,
    /// Its live last-run page, e.g. `/machine/1/last`.
    last_run_url: String,
    /// When it last posted anything that was applied (server clock), or `null`.
    last_seen: Option<DateTime<Utc>>,
}

impl MachineJson {
    pub(crate) fn new(machine: MachineSummary, prefix: &str) -> Self {
        MachineJson {
            id: machine.id.get(),
            url: format!("{prefix}/machine/{}", machine.id),
            last_run_url: format!("{prefix}/machine/{}/last", machine.id),
            name: machine.name,
            status: machine.status.as_str(),
            last_seen: machine.last_seen,
        }
    }
}

/// A run as the seed listed it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedRun)]
pub(crate) struct RunJson {
    /// The run's id (also its master scenario's id).
    id: i64,
    /// The plan's timestamp in the seed's display format `dd-mm-YYYY  HH:MM:SS` (UTC).
    #[schema(example = "30-12-2018  13:01:57")]
    timestamp: String,
    /// When the server received the plan.
    received_at: DateTime<Utc>,
    /// Scenarios in the run, empty ones included.
    scenarios_count: u32,
    /// Tests in the run.
    tests_count: u32,
    /// The run's aggregated status.
    status: Status,
    /// The run's page, e.g. `/machine/run_data/1`.
    url: String,
}

impl RunJson {
    pub(crate) fn new(run: RunSummary, prefix: &str) -> Self {
        RunJson {
            id: run.id.get(),
            timestamp: display_time(run.timestamp),
            received_at: run.received_at,
            scenarios_count: run.statistics.scenarios,
            tests_count: run.statistics.tests,
            status: run.status,
            url: format!("{prefix}/machine/run_data/{}", run.id),
        }
    }
}

/// A run in full, as `machine_last_data` answers it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedRunData)]
pub(crate) struct RunDataJson {
    /// The run's id (also its master scenario's id).
    id: i64,
    /// Its machine.
    machine: MachineRef,
    /// Its master scenario.
    master_scenario: ItemRefJson,
    /// The plan's timestamp, `dd-mm-YYYY  HH:MM:SS` (UTC).
    #[schema(example = "30-12-2018  13:01:57")]
    timestamp: String,
    /// When its first test started, `dd-mm-YYYY  HH:MM:SS`, or `null`.
    #[schema(example = "30-12-2018  13:02:01")]
    timestamp_start: Option<String>,
    /// When it finished, `dd-mm-YYYY  HH:MM:SS`, or `null` while ongoing.
    #[schema(example = "30-12-2018  13:05:12")]
    timestamp_stop: Option<String>,
    /// How long ago it started, for people (e.g. `2 hours ago`), or `null`.
    #[schema(example = "2 hours, 5 minutes ago")]
    started_ago: Option<String>,
    /// How long ago it finished, for people, or `null`.
    #[schema(example = "2 hours, 5 minutes ago")]
    finished_ago: Option<String>,
    /// Stop minus start, for people (e.g. `2 hours, 5 minutes`), or `null`.
    #[schema(example = "3 minutes")]
    duration: Option<String>,
    /// The run's aggregated status.
    status: Status,
    /// Its tests by status.
    statistics: StatusCounts,
    /// Scenarios in the run, empty ones included.
    scenarios_count: u32,
    /// Tests in the run.
    tests_count: u32,
    /// The run's page, e.g. `/machine/run_data/1`.
    url: String,
    /// Scenarios in plan order, each with its tests in plan order.
    scenarios: Vec<ScenarioJson>,
}

/// A machine's id and name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedMachineRef)]
struct MachineRef {
    /// The machine's id.
    id: i64,
    /// Its name.
    name: String,
}

/// An item's id and file name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedItemRef)]
struct ItemRefJson {
    /// The item's id.
    id: i64,
    /// Its script's file name.
    file_name: String,
}

/// A scenario of a run, with its tests.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedScenario)]
struct ScenarioJson {
    /// The scenario's id.
    id: i64,
    /// Its script's file name.
    file_name: String,
    /// Its aggregated status (`unknown` when it has no tests).
    status: Status,
    /// Its tests in plan order.
    tests: Vec<TestJson>,
}

/// A test of a scenario.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedTest)]
struct TestJson {
    /// The test's id.
    id: i64,
    /// Its script's file name.
    file_name: String,
    /// Its status.
    status: Status,
}

impl RunDataJson {
    pub(crate) fn new(run: RunDetail, now: DateTime<Utc>, prefix: &str) -> Self {
        let summary = run.summary;
        RunDataJson {
            id: summary.id.get(),
            machine: MachineRef {
                id: summary.machine_id.get(),
                name: run.machine_name,
            },
            master_scenario: ItemRefJson {
                id: summary.id.get(),
                file_name: run.master.file_name,
            },
            timestamp: display_time(summary.timestamp),
            timestamp_start: summary.timestamp_start.map(display_time),
            timestamp_stop: summary.timestamp_stop.map(display_time),
            started_ago: summary.timestamp_start.map(|t| ago(t, now)),
            finished_ago: summary.timestamp_stop.map(|t| ago(t, now)),
            duration: summary.duration().map(human_duration),
            status: summary.status,
            statistics: summary.statistics.counts,
            scenarios_count: summary.statistics.scenarios,
            tests_count: summary.statistics.tests,
            url: format!("{prefix}/machine/run_data/{}", summary.id),
            scenarios: run
                .scenarios
                .into_iter()
                .map(|scenario| ScenarioJson {
                    id: scenario.id.get(),
                    file_name: scenario.file.file_name,
                    status: scenario.status,
                    tests: scenario
                        .tests
                        .into_iter()
                        .map(|test| TestJson {
                            id: test.id.get(),
                            file_name: test.file.file_name,
                            status: test.status,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One test, scenario or master scenario with its script.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedItem)]
pub(crate) struct ItemJson {
    /// The item's id.
    id: i64,
    /// Its script's file name.
    file_name: String,
    /// Its script's directory.
    file_path: String,
    /// The script text exactly as planned; `null` when the runner sent `null` or nothing.
    script: Option<String>,
    /// Its status.
    status: Status,
    /// When it started, `dd-mm-YYYY  HH:MM:SS` (UTC), or `null`.
    #[schema(example = "30-12-2018  13:02:01")]
    timestamp_start: Option<String>,
    /// When it stopped, `dd-mm-YYYY  HH:MM:SS` (UTC), or `null`.
    #[schema(example = "30-12-2018  13:02:04")]
    timestamp_stop: Option<String>,
    /// Stop minus start, for people, or `null`.
    #[schema(example = "1 minute")]
    duration: Option<String>,
    /// Its run.
    run_id: i64,
    /// Its machine.
    machine_id: i64,
}

impl ItemJson {
    pub(crate) fn new(item: ItemDetail) -> Self {
        ItemJson {
            id: item.item.raw_id(),
            file_name: item.file.file_name,
            file_path: item.file.file_path,
            script: item.script,
            status: item.status,
            timestamp_start: item.timestamp_start.map(display_time),
            timestamp_stop: item.timestamp_stop.map(display_time),
            duration: stpt_core::duration(item.timestamp_start, item.timestamp_stop)
                .map(human_duration),
            run_id: item.run_id.get(),
            machine_id: item.machine_id.get(),
        }
    }
}
