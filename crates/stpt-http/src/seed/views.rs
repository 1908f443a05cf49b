//! The JSON shapes of the seed's read API.

use chrono::{DateTime, Utc};
use serde::Serialize;
use stpt_core::{ItemDetail, MachineSummary, Page, RunDetail, RunSummary, Status, StatusCounts};

use crate::humanize::{ago, display_time, human_duration};

/// The seed's pagination envelope.
#[derive(Debug, Serialize)]
pub(crate) struct Paginated<T> {
    count: u64,
    page_size: u32,
    page_number: u32,
    total_pages: u32,
    has_previous: bool,
    previous_page_number: Option<u32>,
    has_next: bool,
    next_page_number: Option<u32>,
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

#[derive(Debug, Serialize)]
pub(crate) struct MachineJson {
    id: i64,
    name: String,
    status: &'static str,
    url: String,
    last_run_url: String,
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

#[derive(Debug, Serialize)]
pub(crate) struct RunJson {
    id: i64,
    timestamp: String,
    received_at: DateTime<Utc>,
    scenarios_count: u32,
    tests_count: u32,
    status: Status,
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
#[derive(Debug, Serialize)]
pub(crate) struct RunDataJson {
    id: i64,
    machine: MachineRef,
    master_scenario: ItemRefJson,
    timestamp: String,
    timestamp_start: Option<String>,
    timestamp_stop: Option<String>,
    started_ago: Option<String>,
    finished_ago: Option<String>,
    duration: Option<String>,
    status: Status,
    statistics: StatusCounts,
    scenarios_count: u32,
    tests_count: u32,
    url: String,
    scenarios: Vec<ScenarioJson>,
}

#[derive(Debug, Serialize)]
struct MachineRef {
    id: i64,
    name: String,
}

#[derive(Debug, Serialize)]
struct ItemRefJson {
    id: i64,
    file_name: String,
}

#[derive(Debug, Serialize)]
struct ScenarioJson {
    id: i64,
    file_name: String,
    status: Status,
    tests: Vec<TestJson>,
}

#[derive(Debug, Serialize)]
struct TestJson {
    id: i64,
    file_name: String,
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
#[derive(Debug, Serialize)]
pub(crate) struct ItemJson {
    id: i64,
    file_name: String,
    file_path: String,
    script: Option<String>,
    status: Status,
    timestamp_start: Option<String>,
    timestamp_stop: Option<String>,
    duration: Option<String>,
    run_id: i64,
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
