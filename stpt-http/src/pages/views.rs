//! What the templates see: read models turned into display values and links.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::HashMap;
use stpt_core::history::{DiffEntry, FlakyWindow, Outcome, RunDiff, TestKey};
use stpt_core::{
    ClockOffset, FileRef, ItemDetail, ItemRef, Liveness, MachineSummary, Page, RunDetail,
    RunSummary, ScenarioView, Status, StatusCounts, TestId, TestView,
};

use crate::humanize::{ago, display_time, human_duration};

/// One link of the breadcrumb trail; the last has no URL.
#[derive(Debug, Serialize)]
pub(crate) struct Crumb {
    pub(crate) label: String,
    pub(crate) url: Option<String>,
}

impl Crumb {
    pub(crate) fn link(label: impl Into<String>, url: String) -> Self {
        Crumb {
            label: label.into(),
            url: Some(url),
        }
    }

    pub(crate) fn here(label: impl Into<String>) -> Self {
        Crumb {
            label: label.into(),
            url: None,
        }
    }
}

/// Page sizes offered by the page-size choice.
pub(crate) const PAGE_SIZES: [u32; 4] = [10, 25, 50, 100];

/// Pagination controls.
#[derive(Debug, Serialize)]
pub(crate) struct Pager {
    number: u32,
    total_pages: u32,
    count: u64,
    size: u32,
    sizes: Vec<u32>,
    previous: Option<String>,
    next: Option<String>,
}

impl Pager {
    pub(crate) fn new<T>(page: &Page<T>) -> Self {
        Pager::keeping(page, "")
    }

    /// A pager whose links keep `query` (e.g. `&liveness=offline`, already URL-safe).
    pub(crate) fn keeping<T>(page: &Page<T>, query: &str) -> Self {
        let number = page.request.number();
        let size = page.request.size();
        let link = |n: u32| format!("?page={n}&page_size={size}{query}");
        let mut sizes = PAGE_SIZES.to_vec();
        if !sizes.contains(&size) {
            sizes.push(size);
            sizes.sort_unstable();
        }
        Pager {
            number,
            total_pages: page.total_pages(),
            count: page.total,
            size,
            sizes,
            previous: page.has_previous().then(|| link(number - 1)),
            next: page.has_next().then(|| link(number + 1)),
        }
    }
}

/// Links to a machine's pages.
#[derive(Debug, Serialize)]
pub(crate) struct MachineLinks {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) status: &'static str,
    pub(crate) url: String,
    pub(crate) last_url: String,
    pub(crate) last_seen: Option<String>,
    /// `last_seen` as RFC 3339, for `<time datetime>` and the ticking "ago".
    pub(crate) last_seen_at: Option<String>,
    pub(crate) liveness: Option<&'static str>,
    /// "rig clock 59 min ahead of the server", when the offset is over a minute.
    pub(crate) clock_notice: Option<String>,
    /// Failed and error tests of its latest run, where the page reads them.
    pub(crate) failed: Option<u32>,
    /// "replaying a backlog for 2 min: 312 events left", while its runner sends what
    /// its spool kept during an outage.
    pub(crate) backlog: Option<String>,
}

impl MachineLinks {
    pub(crate) fn new(machine: MachineSummary, prefix: &str, now: DateTime<Utc>) -> Self {
        MachineLinks {
            id: machine.id.get(),
            url: machine_url(prefix, machine.id.get()),
            last_url: format!("{}/last", machine_url(prefix, machine.id.get())),
            status: machine.status.as_str(),
            last_seen: machine.last_seen.map(|seen| ago(seen, now)),
            last_seen_at: machine.last_seen.map(|seen| iso(Some(seen))),
            liveness: machine.liveness.map(Liveness::as_str),
            clock_notice: machine
                .clock_offset
                .filter(|offset| offset.is_notable())
                .map(ClockOffset::describe),
            backlog: machine
                .backlog
                .map(|backlog| describe_backlog(backlog, now)),
            name: machine.name,
            failed: None,
        }
    }

    /// From a run, when only its machine's id and name are known.
    pub(crate) fn of_run(run: &RunDetail, prefix: &str) -> Self {
        let id = run.summary.machine_id.get();
        MachineLinks {
            id,
            name: run.machine_name.clone(),
            status: "",
            url: machine_url(prefix, id),
            last_url: format!("{}/last", machine_url(prefix, id)),
            last_seen: None,
            last_seen_at: None,
            liveness: None,
            clock_notice: None,
            failed: None,
            backlog: None,
        }
    }
}

/// A backlog as pages say it.
pub(crate) fn describe_backlog(backlog: stpt_core::Backlog, now: DateTime<Utc>) -> String {
    let events = if backlog.events_left == 1 {
        "event"
    } else {
        "events"
    };
    format!(
        "replaying a backlog for {}: {} {events} left",
        human_duration(now - backlog.since),
        backlog.events_left,
    )
}

pub(crate) fn machine_url(prefix: &str, id: i64) -> String {
    format!("{prefix}/machine/{id}")
}

pub(crate) fn run_url(prefix: &str, id: i64) -> String {
    format!("{prefix}/machine/run_data/{id}")
}

/// A row of a machine's runs.
#[derive(Debug, Serialize)]
pub(crate) struct RunRow {
    id: i64,
    url: String,
    timestamp: String,
    started: Option<String>,
    duration: Option<String>,
    scenarios: u32,
    tests: u32,
    status: Status,
    /// Failed and error tests, shown beside the status.
    failed: u32,
}

impl RunRow {
    pub(crate) fn new(run: &RunSummary, prefix: &str) -> Self {
        RunRow {
            id: run.id.get(),
            url: run_url(prefix, run.id.get()),
            timestamp: display_time(run.timestamp),
            started: run.timestamp_start.map(display_time),
            duration: run.duration().map(clock_duration),
            scenarios: run.statistics.scenarios,
            tests: run.statistics.tests,
            status: run.status,
            failed: run.statistics.counts.failures(),
        }
    }
}

/// One status's count in the statistics table.
#[derive(Debug, Serialize)]
struct StatCell {
    status: Status,
    count: u32,
}

/// A run in full, for the run and live pages.
#[derive(Debug, Serialize)]
pub(crate) struct RunView {
    id: i64,
    machine_id: i64,
    machine_name: String,
    status: Status,
    timestamp: String,
    started: Option<String>,
    finished: Option<String>,
    duration: Option<String>,
    /// A finished run's execution time in words, as the seed wrote it ("2 hours, 5 minutes").
    execution_time: Option<String>,
    ts_start: String,
    ts_stop: String,
    /// When the runner went silent, if the server closed the run for it.
    went_silent: Option<TimeText>,
    /// When the runner was heard again after that, if it was.
    came_back: Option<TimeText>,
    /// Whether an admin marked it kept (exempt from pruning).
    kept: bool,
    done: u32,
    total: u32,
    /// Failed and error tests, shown beside the status.
    failed: u32,
    /// The progress bar's parts, one per status present, in a 0–1000 space.
    segments: Vec<Segment>,
    stats: Vec<StatCell>,
    scenarios_count: u32,
    master: FileLink,
    scenarios: Vec<ScenarioRow>,
    /// History links, the comparison with the previous run and the view's toggles.
    insight: Option<RunInsightView>,
}

/// What the run page adds from history: the previous run compared, flaky tests, exports,
/// and the view's toggles (kept in the URL).
#[derive(Debug, Serialize)]
struct RunInsightView {
    diff: Option<DiffView>,
    flaky_count: usize,
    export_json: String,
    export_csv: String,
    export_junit: String,
    matrix_url: String,
    hide_passed: bool,
    failures_first: bool,
    toggle_hide_passed: String,
    toggle_failures_first: String,
    /// One chip per status present: "failed 4", showing only those tests when clicked.
    chips: Vec<StatusChip>,
    /// The text searched for within the run, if any.
    text: Option<String>,
    /// The status shown alone, if any.
    only: Option<Status>,
    /// The view without any filter.
    clear_url: Option<String>,
}

#[derive(Debug, Serialize)]
struct StatusChip {
    status: Status,
    count: u32,
    url: String,
    active: bool,
}

#[derive(Debug, Serialize)]
struct DiffView {
    previous_id: i64,
    previous_url: String,
    groups: Vec<DiffGroup>,
    durations: Vec<DurationLink>,
}

#[derive(Debug, Serialize)]
struct DiffGroup {
    kind: &'static str,
    label: &'static str,
    entries: Vec<DiffLink>,
}

#[derive(Debug, Serialize)]
struct DiffLink {
    file_name: String,
    scenario: String,
    url: String,
    status: Option<Status>,
    previous_status: Option<Status>,
}

#[derive(Debug, Serialize)]
struct DurationLink {
    file_name: String,
    url: String,
    previous: String,
    current: String,
    slower: bool,
}

/// What the run page reads from history besides the run ([`RunView::with_insight`]).
#[derive(Debug, Default)]
pub(crate) struct RunInsight {
    /// The comparison with the machine's previous run of the same master, if the store
    /// keeps history.
    pub(crate) diff: Option<RunDiff>,
    /// Each test's status in that previous run.
    pub(crate) previous: HashMap<TestId, Status>,
    /// The run's flaky tests' windows.
    pub(crate) flaky: HashMap<TestId, FlakyWindow>,
    /// `?hide_passed=1`: passed and warning tests are left out.
    pub(crate) hide_passed: bool,
    /// `?failures_first=1`: scenarios with failures first, failed tests first in each.
    pub(crate) failures_first: bool,
    /// `?status=`: only tests with this status.
    pub(crate) only: Option<Status>,
    /// `?q=`: only tests whose file name contains this, ignoring case.
    pub(crate) text: Option<stpt_core::history::TextFilter>,
}

/// A run page's view filters as its URL carries them.
#[derive(Debug, Clone, Default)]
struct RunFilters {
    hide_passed: bool,
    failures_first: bool,
    only: Option<Status>,
    text: Option<String>,
}

impl RunFilters {
    fn url(&self, base: &str) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if self.hide_passed {
            pairs.push(("hide_passed", "1".to_owned()));
        }
        if self.failures_first {
            pairs.push(("failures_first", "1".to_owned()));
        }
        if let Some(status) = self.only {
            pairs.push(("status", status.as_str().to_owned()));
        }
        if let Some(text) = &self.text {
            pairs.push(("q", text.clone()));
        }
        match serde_urlencoded::to_string(&pairs).unwrap_or_default() {
            query if query.is_empty() => base.to_owned(),
            query => format!("{base}?{query}"),
        }
    }
}

/// A time as pages show it, and as `<time datetime>` carries it.
#[derive(Debug, Serialize)]
struct TimeText {
    text: String,
    iso: String,
}

#[derive(Debug, Serialize)]
struct FileLink {
    url: String,
    file_name: String,
    file_path: String,
}

#[derive(Debug, Serialize)]
struct ScenarioRow {
    id: i64,
    url: String,
    file_name: String,
    file_path: String,
    status: Status,
    done: u32,
    total: u32,
    /// Failed and error tests.
    failed: u32,
    /// Shown expanded: in a small run every scenario, in a big one only those with the
    /// running test or with failures (the rest are one line each until clicked).
    open: bool,
    tests: Vec<TestRow>,
}

/// Runs up to this many tests show every scenario expanded.
const EXPANDED_UP_TO: u32 = 500;

#[derive(Debug, Serialize)]
struct TestRow {
    id: i64,
    url: String,
    file_name: String,
    status: Status,
    history_url: String,
    /// Its place in its scenario, from 1 (plan order).
    number: usize,
    /// How long it took, once finished.
    duration: Option<String>,
    /// Its status in the previous run, if it was in it.
    previous: Option<Status>,
    /// Passed last time, failed now.
    new_failure: bool,
    /// Flips in its flaky window, when flaky.
    flaky_flips: Option<u32>,
}

impl RunView {
    pub(crate) fn new(run: RunDetail, prefix: &str, now: DateTime<Utc>) -> Self {
        let summary = &run.summary;
        let counts = summary.statistics.counts;
        RunView {
            id: summary.id.get(),
            machine_id: summary.machine_id.get(),
            status: summary.status,
            timestamp: display_time(summary.timestamp),
            started: summary.timestamp_start.map(display_time),
            finished: summary.timestamp_stop.map(display_time),
            duration: elapsed(summary.timestamp_start, summary.timestamp_stop, now),
            execution_time: summary.duration().map(human_duration),
            ts_start: iso(summary.timestamp_start),
            ts_stop: iso(summary.timestamp_stop),
            went_silent: summary.went_silent_at.map(|at| TimeText {
                text: display_time(at),
                iso: iso(Some(at)),
            }),
            came_back: None,
            kept: summary.kept,
            done: counts.finished(),
            total: counts.total(),
            failed: counts.failures(),
            segments: segments(&counts),
            stats: stat_cells(&counts),
            scenarios_count: summary.statistics.scenarios,
            master: FileLink {
                url: format!("{prefix}/master_scenario/{}", summary.id),
                file_name: run.master.file_name,
                file_path: run.master.file_path,
            },
            machine_name: run.machine_name,
            scenarios: run
                .scenarios
                .into_iter()
                .map(|scenario| ScenarioRow::new(scenario, prefix))
                .map(|mut scenario| {
                    scenario.open = counts.total() <= EXPANDED_UP_TO
                        || scenario.failed > 0
                        || scenario.status == Status::Running;
                    scenario
                })
                .collect(),
            insight: None,
        }
    }

    /// Adds what history says about this run, and applies the view's toggles.
    pub(crate) fn with_insight(mut self, insight: RunInsight, prefix: &str) -> Self {
        let is_failure = |status: Status| Outcome::of(status) == Some(Outcome::Fail);
        for scenario in &mut self.scenarios {
            for test in &mut scenario.tests {
                let id = TestId(test.id);
                test.previous = insight.previous.get(&id).copied();
                test.new_failure = test.previous.and_then(Outcome::of) == Some(Outcome::Pass)
                    && is_failure(test.status);
                test.flaky_flips = insight.flaky.get(&id).map(FlakyWindow::flips);
            }
            if insight.hide_passed {
                scenario
                    .tests
                    .retain(|test| !matches!(test.status, Status::Passed | Status::Warning));
            }
            if let Some(only) = insight.only {
                scenario.tests.retain(|test| test.status == only);
            }
            if let Some(text) = &insight.text {
                scenario.tests.retain(|test| text.matches(&test.file_name));
            }
            if insight.failures_first {
                scenario.tests.sort_by_key(|test| !is_failure(test.status));
            }
        }
        if insight.failures_first {
            self.scenarios
                .sort_by_key(|scenario| !scenario.tests.iter().any(|t| is_failure(t.status)));
        }
        let filtered = insight.only.is_some() || insight.text.is_some() || insight.hide_passed;
        if filtered {
            // A scenario with no test left in view is left out too; the rest are open.
            self.scenarios.retain(|scenario| !scenario.tests.is_empty());
            for scenario in &mut self.scenarios {
                scenario.open = true;
            }
        }
        let run_url = format!("{prefix}/machine/run_data/{}/", self.id);
        let filters = RunFilters {
            hide_passed: insight.hide_passed,
            failures_first: insight.failures_first,
            only: insight.only,
            text: insight.text.as_ref().map(|text| text.as_str().to_owned()),
        };
        let chips = self
            .stats
            .iter()
            .filter(|cell| cell.count > 0)
            .map(|cell| StatusChip {
                status: cell.status,
                count: cell.count,
                active: insight.only == Some(cell.status),
                url: RunFilters {
                    only: (insight.only != Some(cell.status)).then_some(cell.status),
                    ..filters.clone()
                }
                .url(&run_url),
            })
            .collect();
        let export = format!("{prefix}/api/v1/runs/{}/export", self.id);
        let matrix_query = serde_urlencoded::to_string([
            ("master_path", self.master.file_path.as_str()),
            ("master_name", self.master.file_name.as_str()),
        ])
        .unwrap_or_default();
        self.insight = Some(RunInsightView {
            diff: insight
                .diff
                .as_ref()
                .and_then(|diff| DiffView::new(diff, prefix)),
            flaky_count: insight.flaky.len(),
            export_json: format!("{export}?format=json"),
            export_csv: format!("{export}?format=csv"),
            export_junit: format!("{export}?format=junit"),
            matrix_url: format!("{prefix}/matrix/?{matrix_query}"),
            hide_passed: insight.hide_passed,
            failures_first: insight.failures_first,
            toggle_hide_passed: RunFilters {
                hide_passed: !insight.hide_passed,
                ..filters.clone()
            }
            .url(&run_url),
            toggle_failures_first: RunFilters {
                failures_first: !insight.failures_first,
                ..filters.clone()
            }
            .url(&run_url),
            chips,
            clear_url: (filtered || insight.failures_first).then(|| run_url.clone()),
            only: insight.only,
            text: filters.text.clone(),
        });
        self
    }
}

impl DiffView {
    fn new(diff: &RunDiff, prefix: &str) -> Option<Self> {
        let previous = diff.previous_run_id?;
        let links = |entries: &[DiffEntry]| -> Vec<DiffLink> {
            entries
                .iter()
                .map(|entry| DiffLink {
                    file_name: entry.identity.test.file_name.clone(),
                    scenario: entry.identity.scenario.file_name.clone(),
                    url: format!("{prefix}/tests/history/{}/", entry.key),
                    status: entry.status,
                    previous_status: entry.previous_status,
                })
                .collect()
        };
        let groups = [
            ("new-failures", "New failures", &diff.new_failures),
            ("fixed", "Fixed", &diff.fixed),
            ("still-failing", "Still failing", &diff.still_failing),
            ("not-executed", "Not executed", &diff.not_executed),
            ("new-tests", "New tests", &diff.new_tests),
            ("removed-tests", "Removed tests", &diff.removed_tests),
        ]
        .into_iter()
        .map(|(kind, label, entries)| DiffGroup {
            kind,
            label,
            entries: links(entries),
        })
        .collect();
        let seconds = |ms: i64| format!("{:.1} s", ms as f64 / 1000.0);
        Some(DiffView {
            previous_id: previous.get(),
            previous_url: format!("{prefix}/machine/run_data/{previous}/"),
            groups,
            durations: diff
                .duration_changes
                .iter()
                .map(|change| DurationLink {
                    file_name: change.identity.test.file_name.clone(),
                    url: format!("{prefix}/tests/history/{}/", change.key),
                    previous: seconds(change.previous_ms),
                    current: seconds(change.current_ms),
                    slower: change.change_ms() > 0,
                })
                .collect(),
        })
    }
}

impl RunView {
    /// Notes that the machine was last heard at `last_seen`: after a silent close, the page
    /// says the runner came back.
    pub(crate) fn heard_at(mut self, last_seen: Option<DateTime<Utc>>) -> Self {
        if let (Some(silent), Some(seen)) = (&self.went_silent, last_seen) {
            if iso(Some(seen)) > silent.iso {
                self.came_back = Some(TimeText {
                    text: display_time(seen),
                    iso: iso(Some(seen)),
                });
            }
        }
        self
    }
}

impl ScenarioRow {
    fn new(scenario: ScenarioView, prefix: &str) -> Self {
        let tests = scenario
            .tests
            .into_iter()
            .enumerate()
            .map(|(at, test)| TestRow::new(test, at + 1, &scenario.file, prefix))
            .collect();
        ScenarioRow {
            id: scenario.id.get(),
            url: format!("{prefix}/scenario/{}", scenario.id),
            file_name: scenario.file.file_name,
            file_path: scenario.file.file_path,
            status: scenario.status,
            done: scenario.counts.finished(),
            total: scenario.counts.total(),
            failed: scenario.counts.failures(),
            open: true,
            tests,
        }
    }
}

impl TestRow {
    fn new(test: TestView, number: usize, scenario: &FileRef, prefix: &str) -> Self {
        TestRow {
            number,
            duration: stpt_core::duration(test.timestamp_start, test.timestamp_stop)
                .map(clock_duration),
            id: test.id.get(),
            url: format!("{prefix}/test/{}", test.id),
            history_url: format!(
                "{prefix}/tests/history/{}/",
                TestKey::of(scenario, &test.file)
            ),
            file_name: test.file.file_name,
            status: test.status,
            previous: None,
            new_failure: false,
            flaky_flips: None,
        }
    }
}

/// A part of the segmented progress bar.
#[derive(Debug, Serialize)]
struct Segment {
    status: Status,
    x: u32,
    width: u32,
}

/// The order of the progress bar's parts: results first, then what is still going on.
const SEGMENT_ORDER: [Status; 8] = [
    Status::Passed,
    Status::Warning,
    Status::Failed,
    Status::Error,
    Status::Unknown,
    Status::Cancelled,
    Status::Running,
    Status::Waiting,
];

fn segments(counts: &StatusCounts) -> Vec<Segment> {
    let total = counts.total().max(1);
    let mut x = 0;
    SEGMENT_ORDER
        .iter()
        .map(|&status| {
            let width = counts.get(status) * 1000 / total;
            let segment = Segment { status, x, width };
            x += width;
            segment
        })
        .collect()
}

fn stat_cells(counts: &StatusCounts) -> Vec<StatCell> {
    counts
        .iter()
        .map(|(status, count)| StatCell { status, count })
        .collect()
}

/// A test, scenario or master scenario with its script.
#[derive(Debug, Serialize)]
pub(crate) struct ItemView {
    kind_label: &'static str,
    file_name: String,
    file_path: String,
    script: Option<String>,
    language: Option<&'static str>,
    status: Status,
    started: Option<String>,
    finished: Option<String>,
    duration: Option<String>,
    run_id: i64,
    run_url: String,
    /// A test's results across runs and machines.
    history_url: Option<String>,
    /// A master scenario's test × machine matrix.
    matrix_url: Option<String>,
    /// What a test's stop said about how it ended: the message, shown first.
    message: Option<String>,
    /// The longer text (traceback, log tail), folded away.
    details: Option<String>,
    /// How many lines `details` has, for its summary.
    details_lines: usize,
}

impl ItemView {
    pub(crate) fn new(item: ItemDetail, prefix: &str) -> Self {
        let kind_label = match item.item {
            ItemRef::MasterScenario(_) => "Master scenario",
            ItemRef::Scenario(_) => "Scenario",
            ItemRef::Test(_) => "Test",
        };
        let language = item
            .file
            .file_name
            .to_ascii_lowercase()
            .ends_with(".py")
            .then_some("python");
        let history_url = match item.item {
            ItemRef::Test(id) => Some(format!("{prefix}/test/{id}/history/")),
            _ => None,
        };
        let matrix_url = match item.item {
            ItemRef::MasterScenario(_) => Some(format!(
                "{prefix}/matrix/?{}",
                serde_urlencoded::to_string([
                    ("master_path", item.file.file_path.as_str()),
                    ("master_name", item.file.file_name.as_str()),
                ])
                .unwrap_or_default()
            )),
            _ => None,
        };
        ItemView {
            kind_label,
            language,
            history_url,
            matrix_url,
            script: item.script.filter(|script| !script.is_empty()),
            status: item.status,
            started: item.timestamp_start.map(display_time),
            finished: item.timestamp_stop.map(display_time),
            duration: stpt_core::duration(item.timestamp_start, item.timestamp_stop)
                .map(clock_duration),
            run_id: item.run_id.get(),
            run_url: run_url(prefix, item.run_id.get()),
            file_name: item.file.file_name,
            file_path: item.file.file_path,
            details_lines: item
                .details
                .as_deref()
                .map_or(0, |text| text.lines().count()),
            message: item.message,
            details: item.details,
        }
    }
}

/// RFC 3339 with milliseconds, for scripts; empty when unknown.
pub(crate) fn iso(time: Option<DateTime<Utc>>) -> String {
    time.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Stop minus start once finished, now minus start while running.
fn elapsed(
    start: Option<DateTime<Utc>>,
    stop: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<String> {
    let start = start?;
    Some(clock_duration(stop.unwrap_or(now) - start))
}

/// A duration as a clock reads: `0:04:09`, `27:00:05`. Negative reads as zero.
pub(crate) fn clock_duration(duration: Duration) -> String {
    let seconds = duration.num_seconds().max(0);
    format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_durations() {
        assert_eq!(clock_duration(Duration::seconds(249)), "0:04:09");
        assert_eq!(clock_duration(Duration::seconds(27 * 3600 + 5)), "27:00:05");
        assert_eq!(clock_duration(Duration::seconds(-3)), "0:00:00");
    }
}
