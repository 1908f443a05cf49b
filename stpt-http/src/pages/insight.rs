//! The history pages: a test's history with its duration chart, search, the flakiest tests
//! and the test × machine matrix. Filters live in the URL, so a view is a link to share.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, RawQuery};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stpt_core::history::{
    self, FlakyPolicy, FlakyWindow, HistoryStats, Matrix, Outcome, TestHistory,
};
use stpt_core::{PageRequest, Status};

use super::views::{Crumb, Pager};
use super::{Cx, PageError, View};
use crate::extract::Pagination;
use crate::humanize::display_time;
use crate::insight::params::{self, Params};

/// `/test/{id}/history/`: sends a test's page on to its identity's history, with its run
/// marked. The identity needs the test's scenario, read from its run only on this click.
pub(super) async fn test_history_redirect(cx: Cx, Path(id): Path<String>) -> Response {
    let result: Result<Response, PageError> = async {
        let id = stpt_core::TestId(crate::extract::parse_id("test", &id)?);
        let item = cx.tracker().item(stpt_core::ItemRef::Test(id)).await?;
        let run = cx.tracker().run(item.run_id).await?;
        let key = run
            .scenarios
            .iter()
            .find_map(|scenario| {
                scenario
                    .tests
                    .iter()
                    .find(|test| test.id == id)
                    .map(|test| stpt_core::history::TestKey::of(&scenario.file, &test.file))
            })
            .ok_or_else(|| {
                PageError::from(stpt_core::Error::not_found(
                    stpt_core::ItemKind::Test,
                    id.get(),
                ))
            })?;
        Ok(axum::response::Redirect::to(&format!(
            "{}/tests/history/{key}/?run={}",
            cx.prefix, item.run_id
        ))
        .into_response())
    }
    .await;
    cx.finish(result)
}

/// A test's history page.
pub(super) async fn history_page(
    cx: Cx,
    Path(key): Path<String>,
    Query(query): Query<Params>,
) -> Response {
    let result: Result<Response, PageError> = async {
        let key = params::key(&key)?;
        let asked = params::history_query(&query)?;
        let history = cx.tracker().store().test_history(key, asked).await?;
        let marked = params::value(&query, "run").and_then(|run| run.parse::<i64>().ok());
        let machines = cx.tracker().machines(PageRequest::new(1, 100)?).await?;
        let data = HistoryData::new(&cx.prefix, &history, &query, marked, machines.items);
        let title = history.identity.test.file_name.clone();
        cx.render(View {
            template: "stpt/history.html",
            kind: "history",
            title: format!("{title} · history"),
            breadcrumbs: vec![
                cx.crumb_home(),
                Crumb::link("Search", format!("{}/search/", cx.prefix)),
                Crumb::here(title),
            ],
            live: None,
            data,
        })
    }
    .await;
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct HistoryData {
    key: String,
    scenario_path: String,
    scenario_name: String,
    file_path: String,
    file_name: String,
    filter_machine: Option<i64>,
    filter_status: Option<String>,
    machines: Vec<MachineOption>,
    statuses: Vec<&'static str>,
    strip: Vec<ResultCell>,
    results: Vec<ResultRow>,
    stats: StatsView,
    flaky: Vec<FlakyBadge>,
    chart: Option<String>,
    older: Option<String>,
    json_url: String,
    csv_url: String,
}

#[derive(Debug, Serialize)]
struct MachineOption {
    id: i64,
    name: String,
}

#[derive(Debug, Serialize)]
struct ResultCell {
    status: Status,
    url: String,
    title: String,
}

#[derive(Debug, Serialize)]
struct ResultRow {
    status: Status,
    machine_name: String,
    machine_url: String,
    run_id: i64,
    run_url: String,
    test_url: String,
    started: Option<String>,
    duration: Option<String>,
    marked: bool,
}

#[derive(Debug, Serialize)]
struct StatsView {
    outcomes: u32,
    failures: u32,
    pass_rate: Option<String>,
    median: Option<String>,
}

#[derive(Debug, Serialize)]
struct FlakyBadge {
    machine_name: String,
    flips: u32,
    results: u32,
}

/// Seconds with one decimal below a minute, else minutes and seconds.
fn short_duration(millis: i64) -> String {
    if millis < 60_000 {
        format!("{:.1} s", millis as f64 / 1000.0)
    } else {
        format!("{} min {:02} s", millis / 60_000, (millis % 60_000) / 1000)
    }
}

fn percent(rate: f64) -> String {
    format!("{:.0} %", rate * 100.0)
}

impl HistoryData {
    fn new(
        prefix: &str,
        history: &TestHistory,
        query: &Params,
        marked: Option<i64>,
        machines: Vec<stpt_core::MachineSummary>,
    ) -> Self {
        let key = history.key.to_string();
        let base = format!("{prefix}/tests/history/{key}/");
        let api = format!("{prefix}/api/v1/test-identities/{key}/history");
        // The page's own filters, kept by the older-page and export links.
        let kept: Vec<(String, String)> = ["machine", "status", "limit"]
            .iter()
            .filter_map(|name| Some((name.to_string(), params::value(query, name)?.to_owned())))
            .collect();
        let with = |extra: &[(&str, String)]| {
            let mut pairs: Vec<(String, String)> = kept.clone();
            pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        };
        let stats = HistoryStats::of(&history.results);
        // Each machine's window, as the flaky rule reads it, from these results.
        let mut windows: BTreeMap<String, FlakyWindow> = BTreeMap::new();
        for result in history.results.iter().rev() {
            windows
                .entry(result.machine_name.clone())
                .or_default()
                .push_status(result.status);
        }
        let policy = FlakyPolicy::default();
        let flaky = windows
            .into_iter()
            .filter(|(_, window)| policy.is_flaky(window))
            .map(|(machine_name, window)| FlakyBadge {
                machine_name,
                flips: window.flips(),
                results: window.len(),
            })
            .collect();
        HistoryData {
            scenario_path: history.identity.scenario.file_path.clone(),
            scenario_name: history.identity.scenario.file_name.clone(),
            file_path: history.identity.test.file_path.clone(),
            file_name: history.identity.test.file_name.clone(),
            filter_machine: params::value(query, "machine").and_then(|v| v.parse().ok()),
            filter_status: params::value(query, "status").map(str::to_owned),
            machines: machines
                .into_iter()
                .map(|m| MachineOption {
                    id: m.id.get(),
                    name: m.name,
                })
                .collect(),
            statuses: Status::ALL.iter().map(|s| s.as_str()).collect(),
            strip: history
                .results
                .iter()
                .rev()
                .map(|result| ResultCell {
                    status: result.status,
                    url: format!(
                        "{prefix}/machine/run_data/{}/#test-{}",
                        result.run_id, result.test_id
                    ),
                    title: format!(
                        "{} · {} · run #{}{}",
                        result.status.as_str(),
                        result.machine_name,
                        result.run_id,
                        result
                            .timestamp_start
                            .map(|at| format!(" · {}", display_time(at)))
                            .unwrap_or_default()
                    ),
                })
                .collect(),
            results: history
                .results
                .iter()
                .map(|result| ResultRow {
                    status: result.status,
                    machine_name: result.machine_name.clone(),
                    machine_url: format!("{prefix}/machine/{}/", result.machine_id),
                    run_id: result.run_id.get(),
                    run_url: format!("{prefix}/machine/run_data/{}/", result.run_id),
                    test_url: format!("{prefix}/test/{}/", result.test_id),
                    started: result.timestamp_start.map(display_time),
                    duration: result.duration_ms().map(short_duration),
                    marked: Some(result.run_id.get()) == marked,
                })
                .collect(),
            stats: StatsView {
                outcomes: stats.outcomes,
                failures: stats.failures,
                pass_rate: stats.pass_rate.map(percent),
                median: stats.median_ms.map(short_duration),
            },
            flaky,
            chart: duration_chart(history, stats.median_ms, marked),
            older: history
                .next_before
                .map(|before| format!("{base}?{}", with(&[("before", before.to_string())]))),
            json_url: format!("{api}?{}", with(&[])),
            csv_url: format!("{api}?{}", with(&[("format", "csv".to_owned())])),
            key,
        }
    }
}

/// The durations of `history`'s results (oldest left) as an SVG line chart, with the median
/// as a dashed line and run `marked` as a ring. Only numbers and status names go into the
/// markup; `None` with fewer than two durations.
fn duration_chart(
    history: &TestHistory,
    median: Option<i64>,
    marked: Option<i64>,
) -> Option<String> {
    const WIDTH: f64 = 640.0;
    const HEIGHT: f64 = 160.0;
    const PAD: f64 = 12.0;
    let points: Vec<(i64, i64, Status)> = history
        .results
        .iter()
        .rev()
        .filter(|r| Outcome::of(r.status).is_some())
        .filter_map(|r| Some((r.run_id.get(), r.duration_ms()?, r.status)))
        .collect();
    if points.len() < 2 {
        return None;
    }
    let most = points.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64;
    let step = (WIDTH - 2.0 * PAD) / (points.len() - 1) as f64;
    let y = |ms: i64| HEIGHT - PAD - (ms as f64 / most) * (HEIGHT - 2.0 * PAD);
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", PAD + i as f64 * step, y(p.1)))
        .collect();
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"Durations of the last {} results, oldest first; longest {}\">",
        points.len(),
        short_duration(most as i64)
    );
    if let Some(median) = median {
        svg.push_str(&format!(
            "<line class=\"median\" x1=\"{PAD}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"><title>median {}</title></line>",
            WIDTH - PAD,
            y(median),
            y(median),
            short_duration(median)
        ));
    }
    svg.push_str(&format!(
        "<polyline class=\"durations\" points=\"{}\"/>",
        line.join(" ")
    ));
    for (i, (run, ms, status)) in points.iter().enumerate() {
        let ring = Some(*run) == marked;
        svg.push_str(&format!(
            "<circle class=\"point{}\" data-status=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{}\"><title>run #{run}: {}</title></circle>",
            if ring { " marked" } else { "" },
            status.as_str(),
            PAD + i as f64 * step,
            y(*ms),
            if ring { 6 } else { 3 },
            short_duration(*ms)
        ));
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// The search page: runs and tests.
pub(super) async fn search_page(
    cx: Cx,
    Pagination(page): Pagination,
    Query(query): Query<Params>,
) -> Response {
    let result: Result<Response, PageError> = async {
        let search = params::run_search(&query)?;
        let runs = cx.tracker().store().search_runs(&search, page).await?;
        let tests = match &search.text {
            Some(text) => Some(
                cx.tracker()
                    .store()
                    .search_tests(Some(text), PageRequest::new(1, 50)?)
                    .await?,
            ),
            None => None,
        };
        let kept: Vec<(String, String)> = ["q", "status", "machine", "since", "until"]
            .iter()
            .filter_map(|name| Some((name.to_string(), params::value(&query, name)?.to_owned())))
            .collect();
        let kept_query = match serde_urlencoded::to_string(&kept).unwrap_or_default() {
            empty if empty.is_empty() => empty,
            pairs => format!("&{pairs}"),
        };
        let prefix = &cx.prefix;
        let data = SearchData {
            q: params::value(&query, "q").unwrap_or_default().to_owned(),
            status: params::value(&query, "status").map(str::to_owned),
            machine: params::value(&query, "machine").map(str::to_owned),
            since: params::value(&query, "since").map(str::to_owned),
            until: params::value(&query, "until").map(str::to_owned),
            statuses: Status::ALL.iter().map(|s| s.as_str()).collect(),
            pager: Pager::keeping(&runs, &kept_query),
            runs: runs
                .items
                .iter()
                .map(|listing| FoundRun {
                    id: listing.run.id.get(),
                    url: format!("{prefix}/machine/run_data/{}/", listing.run.id),
                    status: listing.run.status,
                    machine_name: listing.machine_name.clone(),
                    machine_url: format!("{prefix}/machine/{}/", listing.run.machine_id),
                    master: listing.master.file_name.clone(),
                    master_path: listing.master.file_path.clone(),
                    received: display_time(listing.run.received_at),
                    failures: listing.run.statistics.counts.failures(),
                })
                .collect(),
            tests_total: tests.as_ref().map(|page| page.total),
            tests: tests
                .map(|page| {
                    page.items
                        .into_iter()
                        .map(|listing| FoundTest {
                            url: format!("{prefix}/tests/history/{}/", listing.key),
                            file_name: listing.identity.test.file_name,
                            file_path: listing.identity.test.file_path,
                            scenario: listing.identity.scenario.file_name,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        cx.render(View {
            template: "stpt/search.html",
            kind: "search",
            title: "Search".to_owned(),
            breadcrumbs: vec![cx.crumb_home(), Crumb::here("Search")],
            live: None,
            data,
        })
    }
    .await;
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct SearchData {
    q: String,
    status: Option<String>,
    machine: Option<String>,
    since: Option<String>,
    until: Option<String>,
    statuses: Vec<&'static str>,
    pager: Pager,
    runs: Vec<FoundRun>,
    tests_total: Option<u64>,
    tests: Vec<FoundTest>,
}

#[derive(Debug, Serialize)]
struct FoundRun {
    id: i64,
    url: String,
    status: Status,
    machine_name: String,
    machine_url: String,
    master: String,
    master_path: String,
    received: String,
    failures: u32,
}

#[derive(Debug, Serialize)]
struct FoundTest {
    url: String,
    file_name: String,
    file_path: String,
    scenario: String,
}

/// The flakiest tests.
pub(super) async fn flaky_page(cx: Cx, Query(query): Query<Params>) -> Response {
    let result: Result<Response, PageError> = async {
        let min_flips = params::min_flips(&query)?;
        let found = cx.tracker().store().flaky_tests(min_flips, 100).await?;
        let prefix = &cx.prefix;
        let rows: Vec<FlakyRow> = found
            .into_iter()
            .map(|flaky| FlakyRow {
                url: format!(
                    "{prefix}/tests/history/{}/?machine={}",
                    flaky.key, flaky.machine_id
                ),
                file_name: flaky.identity.test.file_name,
                scenario: flaky.identity.scenario.file_name,
                machine_name: flaky.machine_name,
                machine_url: format!("{prefix}/machine/{}/", flaky.machine_id),
                flips: flaky.window.flips(),
                flip_rate: percent(flaky.window.flip_rate()),
                outcomes: flaky
                    .window
                    .outcomes()
                    .map(|o| {
                        if o == Outcome::Pass {
                            "passed"
                        } else {
                            "failed"
                        }
                    })
                    .collect(),
            })
            .collect();
        cx.render(View {
            template: "stpt/flaky.html",
            kind: "flaky",
            title: "Flaky tests".to_owned(),
            breadcrumbs: vec![cx.crumb_home(), Crumb::here("Flaky tests")],
            live: None,
            data: FlakyData { min_flips, rows },
        })
    }
    .await;
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct FlakyData {
    min_flips: u32,
    rows: Vec<FlakyRow>,
}

#[derive(Debug, Serialize)]
struct FlakyRow {
    url: String,
    file_name: String,
    scenario: String,
    machine_name: String,
    machine_url: String,
    flips: u32,
    flip_rate: String,
    outcomes: Vec<&'static str>,
}

/// The test × machine matrix of a master scenario.
pub(super) async fn matrix_page(cx: Cx, RawQuery(raw): RawQuery) -> Response {
    let result: Result<Response, PageError> = async {
        // A form's multi-select sends `machines` once per machine: joined into one list.
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
            .map_err(|_| crate::ApiError::invalid("query", "unreadable query string"))?;
        let mut query = Params::new();
        for (name, value) in pairs {
            if name == "machines" {
                if value.trim().is_empty() {
                    continue;
                }
                if let Some(list) = query.get_mut(&name) {
                    list.push(',');
                    list.push_str(&value);
                    continue;
                }
            }
            query.insert(name, value);
        }
        let asked = params::matrix(&query)?;
        let machines = cx
            .tracker()
            .machines(PageRequest::new(1, 100)?)
            .await?
            .items;
        let matrix = history::matrix(
            cx.tracker().store().as_ref(),
            &asked.master,
            &asked.machines,
            asked.sort,
        )
        .await?;
        let mut data = MatrixData::new(&cx.prefix, matrix, &query);
        data.machines = machines
            .into_iter()
            .map(|machine| MachineChoice {
                selected: asked.machines.contains(&machine.id),
                id: machine.id.get(),
                name: machine.name,
            })
            .collect();
        cx.render_large(View {
            template: "stpt/matrix.html",
            kind: "matrix",
            title: format!("{} · matrix", asked.master.file_name),
            breadcrumbs: vec![cx.crumb_home(), Crumb::here("Matrix")],
            live: None,
            data,
        })
        .await
    }
    .await;
    cx.finish(result)
}

#[derive(Debug, Serialize)]
struct MatrixData {
    machines: Vec<MachineChoice>,
    master_path: String,
    master_name: String,
    sorted_by_failures: bool,
    plan_url: String,
    failures_url: String,
    columns: Vec<MatrixColumnView>,
    rows: Vec<MatrixRowView>,
}

#[derive(Debug, Serialize)]
struct MachineChoice {
    id: i64,
    name: String,
    selected: bool,
}

#[derive(Debug, Serialize)]
struct MatrixColumnView {
    machine_name: String,
    url: String,
    failure_rate: Option<String>,
}

#[derive(Debug, Serialize)]
struct MatrixRowView {
    file_name: String,
    scenario: String,
    url: String,
    failure_rate: Option<String>,
    cells: Vec<Option<MatrixCellView>>,
}

#[derive(Debug, Serialize)]
struct MatrixCellView {
    status: Status,
    url: String,
    pass_rate: Option<String>,
}

impl MatrixData {
    fn new(prefix: &str, matrix: Matrix, query: &Params) -> Self {
        let mut kept: Vec<(String, String)> = ["master_path", "master_name", "machines"]
            .iter()
            .filter_map(|name| Some((name.to_string(), query.get(*name)?.clone())))
            .collect();
        let plan_url = format!(
            "{prefix}/matrix/?{}",
            serde_urlencoded::to_string(&kept).unwrap_or_default()
        );
        kept.push(("sort".to_owned(), "failure_rate".to_owned()));
        let failures_url = format!(
            "{prefix}/matrix/?{}",
            serde_urlencoded::to_string(&kept).unwrap_or_default()
        );
        MatrixData {
            machines: Vec::new(),
            sorted_by_failures: params::value(query, "sort") == Some("failure_rate"),
            plan_url,
            failures_url,
            columns: matrix
                .columns
                .iter()
                .map(|column| MatrixColumnView {
                    machine_name: column.machine_name.clone(),
                    url: format!("{prefix}/machine/run_data/{}/", column.run_id),
                    failure_rate: column.failure_rate.map(percent),
                })
                .collect(),
            rows: matrix
                .rows
                .into_iter()
                .map(|row| MatrixRowView {
                    url: format!("{prefix}/tests/history/{}/", row.key),
                    file_name: row.identity.test.file_name,
                    scenario: row.identity.scenario.file_name,
                    failure_rate: row.failure_rate.map(percent),
                    cells: row
                        .cells
                        .into_iter()
                        .map(|cell| {
                            cell.map(|cell| MatrixCellView {
                                status: cell.status,
                                url: format!("{prefix}/test/{}/", cell.test_id),
                                pass_rate: cell.window.pass_rate().map(percent),
                            })
                        })
                        .collect(),
                })
                .collect(),
            master_path: matrix.master.file_path,
            master_name: matrix.master.file_name,
        }
    }
}

/// Whether `?name=` is on: `1`, `true`, `on` or `yes`.
pub(super) fn flag(query: &Params, name: &str) -> bool {
    matches!(
        params::value(query, name),
        Some("1" | "true" | "on" | "yes")
    )
}
