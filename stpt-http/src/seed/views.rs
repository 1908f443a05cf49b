//! The JSON shapes of the seed's read API and of its runner echoes: the seed's keys, nesting,
//! value types and formats exactly (its clients parse them), and nothing more. Everything
//! richer lives in `/api/v1`.

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use stpt_core::{
    ItemDetail, MachineSummary, MasterScenarioPayload, Page, RunDetail, RunSummary, Status,
    StatusCounts,
};
use utoipa::ToSchema;

use crate::humanize::{display_time, timesince};

/// The seed's pagination envelope, keys in the seed's order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedPage)]
pub(crate) struct Paginated<T> {
    /// The `Host` the request came to, e.g. `127.0.0.1:8000`.
    current_site: String,
    /// Items per page.
    page_size: u32,
    /// Items on all pages.
    count: u64,
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
    pub(crate) fn new<U>(current_site: String, page: Page<U>, convert: impl FnMut(U) -> T) -> Self {
        let number = page.request.number();
        Paginated {
            current_site,
            page_size: page.request.size(),
            count: page.total,
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
    pk: i64,
    /// Its name, spelled as first seen.
    machine_name: String,
    /// Its latest run's status, or `not-available`.
    #[schema(value_type = stpt_core::MachineStatus)]
    get_last_master_scenario_status: &'static str,
    /// Its page, e.g. `/machine/1`.
    absolute_url: String,
}

impl MachineJson {
    pub(crate) fn new(machine: MachineSummary, prefix: &str) -> Self {
        MachineJson {
            pk: machine.id.get(),
            absolute_url: format!("{prefix}/machine/{}", machine.id),
            machine_name: machine.name,
            get_last_master_scenario_status: machine.status.as_str(),
        }
    }
}

/// A run as the seed listed it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedRun)]
pub(crate) struct RunJson {
    /// The run's id.
    pk: i64,
    /// Its machine's id.
    machine: i64,
    /// The plan's timestamp, `dd-mm-YYYY  HH:MM:SS` (UTC).
    #[schema(example = "30-12-2018  13:01:57")]
    timestamp: String,
    /// Scenarios in the run, empty ones included.
    scenarios: u32,
    /// Tests in the run.
    tests: u32,
    /// The run's aggregated status.
    tests_status: Status,
    /// The run's page, e.g. `/machine/run_data/1`.
    absolute_url: String,
}

impl RunJson {
    pub(crate) fn new(run: RunSummary, prefix: &str) -> Self {
        RunJson {
            pk: run.id.get(),
            machine: run.machine_id.get(),
            timestamp: display_time(run.timestamp),
            scenarios: run.statistics.scenarios,
            tests: run.statistics.tests,
            tests_status: run.status,
            absolute_url: format!("{prefix}/machine/run_data/{}", run.id),
        }
    }
}

/// `machine_last_data`: a machine's name and its latest run in full (also the
/// `machine_data` message of the seed's last-run socket).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedMachineLastData)]
pub(crate) struct MachineLastDataJson {
    /// The machine's name.
    machine_name: String,
    /// Its latest run, or `null` before its first plan.
    last_master_scenario: Option<MasterScenarioJson>,
}

impl MachineLastDataJson {
    pub(crate) fn new(machine_name: String, run: Option<RunDetail>, now: DateTime<Utc>) -> Self {
        MachineLastDataJson {
            machine_name,
            last_master_scenario: run.map(|run| MasterScenarioJson::new(run, now)),
        }
    }
}

/// A run's master scenario in full, keys in the seed's order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedMasterScenarioDetail)]
pub(crate) struct MasterScenarioJson {
    /// The master scenario's id.
    pk: i64,
    /// Its script's file name.
    file_name: String,
    /// When its first test started (server clock), `dd-mm-YYYY  HH:MM:SS`, or `null`.
    #[schema(example = "30-12-2018  13:02:01")]
    timestamp_start: Option<String>,
    /// Time since the start, as Django's `timesince` (non-breaking spaces, no "ago"), or `null`.
    #[schema(example = "2\u{a0}hours, 5\u{a0}minutes")]
    started_ago: Option<String>,
    /// When it finished (server clock), `dd-mm-YYYY  HH:MM:SS`, or `null` while ongoing.
    #[schema(example = "30-12-2018  13:05:12")]
    timestamp_stop: Option<String>,
    /// Time since it finished, as `started_ago`, or `null`.
    #[schema(example = "0\u{a0}minutes")]
    finished_ago: Option<String>,
    /// Stop minus start, as `started_ago`, or `null`.
    #[schema(example = "3\u{a0}minutes")]
    duration: Option<String>,
    /// The run's aggregated status.
    status: Status,
    /// Its tests by status.
    tests_statistics: StatusCounts,
    /// Tests in the run.
    tests_count: u32,
    /// Scenarios in the run, empty ones included.
    scenarios_count: u32,
    /// Scenarios in plan order, each with its tests in plan order.
    scenarios: Vec<ScenarioJson>,
    /// The run's id (the seed's `DryRunData`).
    dryrundata: i64,
}

/// A scenario of a run, with its tests.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedScenario)]
struct ScenarioJson {
    /// Its script's file name.
    file_name: String,
    /// Its tests in plan order.
    tests: Vec<TestJson>,
    /// Its aggregated status (`unknown` when it has no tests).
    status: Status,
    /// The scenario's id.
    pk: i64,
}

/// A test of a scenario.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedTest)]
struct TestJson {
    /// Its script's file name.
    file_name: String,
    /// Its status.
    status: Status,
    /// The test's id.
    pk: i64,
}

impl MasterScenarioJson {
    fn new(run: RunDetail, now: DateTime<Utc>) -> Self {
        let summary = run.summary;
        MasterScenarioJson {
            // A run and its master scenario share one id in stpt.
            pk: summary.id.get(),
            file_name: run.master.file_name,
            timestamp_start: summary.timestamp_start.map(display_time),
            started_ago: summary.timestamp_start.map(|start| timesince(now - start)),
            timestamp_stop: summary.timestamp_stop.map(display_time),
            finished_ago: summary.timestamp_stop.map(|stop| timesince(now - stop)),
            duration: summary.duration().map(timesince),
            status: summary.status,
            tests_statistics: summary.statistics.counts,
            tests_count: summary.statistics.tests,
            scenarios_count: summary.statistics.scenarios,
            scenarios: run
                .scenarios
                .into_iter()
                .map(|scenario| ScenarioJson {
                    file_name: scenario.file.file_name,
                    tests: scenario
                        .tests
                        .into_iter()
                        .map(|test| TestJson {
                            file_name: test.file.file_name,
                            status: test.status,
                            pk: test.id.get(),
                        })
                        .collect(),
                    status: scenario.status,
                    pk: scenario.id.get(),
                })
                .collect(),
            dryrundata: summary.id.get(),
        }
    }
}

/// One test, scenario or master scenario with its script, as the seed's info modal read it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedItem)]
pub(crate) struct ItemJson {
    /// Its script's file name.
    file_name: String,
    /// Its script's directory.
    file_path: String,
    /// The script text exactly as planned; `null` when the runner sent `null` or nothing.
    script: Option<String>,
    /// When it started, `dd-mm-YYYY  HH:MM:SS` (UTC), or `null`.
    #[schema(example = "30-12-2018  13:02:01")]
    timestamp_start: Option<String>,
    /// When it stopped, `dd-mm-YYYY  HH:MM:SS` (UTC), or `null`.
    #[schema(example = "30-12-2018  13:02:04")]
    timestamp_stop: Option<String>,
}

impl ItemJson {
    pub(crate) fn new(item: ItemDetail) -> Self {
        ItemJson {
            file_name: item.file.file_name,
            file_path: item.file.file_path,
            script: item.script,
            timestamp_start: item.timestamp_start.map(display_time),
            timestamp_stop: item.timestamp_stop.map(display_time),
        }
    }
}

/// A time as Django REST framework writes one: ISO 8601 in UTC with `Z`, microseconds
/// only when there are any (Python's `isoformat`).
pub(crate) fn rest_framework_time(time: DateTime<Utc>) -> String {
    let micros = time.nanosecond() % 1_000_000_000 / 1_000;
    if micros == 0 {
        time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        format!("{}.{micros:06}Z", time.format("%Y-%m-%dT%H:%M:%S"))
    }
}

/// The seed's answer to a plan: what it accepted, without the machine name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedPlanEcho)]
pub(crate) struct PlanEcho {
    /// The plan's timestamp, ISO 8601 in UTC.
    #[schema(example = "2018-12-30T13:01:57.461401Z")]
    timestamp: String,
    /// The master scenario with its scenarios and tests, as planned.
    master_scenario: MasterScenarioEcho,
}

/// A planned master scenario in the plan's echo.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedMasterScenarioEcho)]
struct MasterScenarioEcho {
    file_name: String,
    file_path: String,
    script: Option<String>,
    scenarios: Vec<ScenarioEcho>,
}

/// A planned scenario in the plan's echo.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedScenarioEcho)]
struct ScenarioEcho {
    file_name: String,
    file_path: String,
    script: Option<String>,
    tests: Vec<TestEcho>,
}

/// A planned test in the plan's echo.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedTestEcho)]
struct TestEcho {
    file_name: String,
    file_path: String,
    script: Option<String>,
}

impl PlanEcho {
    pub(crate) fn new(timestamp: DateTime<Utc>, master: MasterScenarioPayload) -> Self {
        PlanEcho {
            timestamp: rest_framework_time(timestamp),
            master_scenario: MasterScenarioEcho {
                file_name: master.file_name,
                file_path: master.file_path,
                script: master.script,
                scenarios: master
                    .scenarios
                    .into_iter()
                    .map(|scenario| ScenarioEcho {
                        file_name: scenario.file_name,
                        file_path: scenario.file_path,
                        script: scenario.script,
                        tests: scenario
                            .tests
                            .into_iter()
                            .map(|test| TestEcho {
                                file_name: test.file_name,
                                file_path: test.file_path,
                                script: test.script,
                            })
                            .collect(),
                    })
                    .collect(),
            },
        }
    }
}

/// The seed's answer to a test start: the event as accepted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedTestStartEcho)]
pub(crate) struct TestStartEcho {
    pub(crate) machine_name: String,
    pub(crate) file_name: String,
    pub(crate) file_path: String,
    /// The start time used (the receipt time when none was sent), ISO 8601 in UTC.
    #[schema(example = "2018-12-30T13:02:01.123456Z")]
    pub(crate) timestamp_start: String,
}

/// The seed's answer to a test stop: the event as accepted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SeedTestStopEcho)]
pub(crate) struct TestStopEcho {
    pub(crate) machine_name: String,
    pub(crate) file_name: String,
    pub(crate) file_path: String,
    /// The stop time used (the receipt time when none was sent), ISO 8601 in UTC.
    #[schema(example = "2018-12-30T13:02:04.123456Z")]
    pub(crate) timestamp_stop: String,
    pub(crate) status: Status,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_as_rest_framework_writes_them() {
        let whole = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        assert_eq!(rest_framework_time(whole), "2026-11-29T10:00:00Z");
        let fraction = whole + chrono::Duration::microseconds(1);
        assert_eq!(rest_framework_time(fraction), "2026-11-29T10:00:00.000001Z");
    }
}
