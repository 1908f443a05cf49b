//! `POST /api/v1/imports/junit?machine=NAME`: a JUnit/xUnit XML report becomes a finished run.
//!
//! The report is parsed in full first (nothing is stored for a report that does not parse),
//! then driven through the [`Tracker`](stpt_core::Tracker) as a runner would: a plan (each
//! `<testsuite>` with test cases is a scenario, each `<testcase>` a test), then a start and a
//! stop per test, timed from the suite's `timestamp` and each case's `time`.
//!
//! Only well-formed, DOCTYPE-free XML is read: a DOCTYPE is refused before anything in it is
//! looked at, so no entity is ever defined or expanded (billion laughs, external entities).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Datelike, Duration, Utc};
use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};
use serde::Serialize;
use stpt_core::{
    EventId, MachineId, MachineName, MasterScenarioPayload, PlanPayload, RunId, RunnerTime,
    ScenarioPayload, Status, TestAction, TestEvent, TestPayload, TestTarget,
};
use utoipa::ToSchema;

use crate::error::ErrorEnvelope;
use crate::security::RunnerAccess;
use crate::v1::{IDEMPOTENCY_KEY, MAX_BATCH_EVENTS};
use crate::{ApiError, AppState};

/// Most test cases one report may hold.
pub(crate) const MAX_JUNIT_TESTS: usize = 20_000;

/// Deepest element nesting read; JUnit reports nest four or five levels.
const MAX_DEPTH: usize = 64;

/// Longest `Idempotency-Key` of an import: its events' ids add a suffix to it, and an event
/// id holds at most [`EventId::MAX_CHARS`] characters.
const MAX_IMPORT_KEY_CHARS: usize = 96;

/// Longest `time` of one test case, in seconds (about three years): beyond, it is a
/// mistake, and adding it to a timestamp could overflow.
const MAX_CASE_SECONDS: f64 = 1e8;

/// Stands in for a file path a report does not give (a plan names every file).
const NO_PATH: &str = "junit";

/// The OpenAPI description of the import route.
#[derive(utoipa::OpenApi)]
#[openapi(paths(import_junit))]
pub(crate) struct JunitApi;

/// Where reports are posted.
pub(crate) const PATH: &str = "/api/v1/imports/junit";

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(PATH, post(import_junit))
}

/// How a test case ended, in the report's terms; the greater wins when a case has several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Passed,
    /// Surefire's `<flakyFailure>`/`<flakyError>`: failed, then passed on a rerun.
    Flaky,
    /// pytest's `<skipped type="pytest.xfail">`: failed as expected.
    ExpectedFailure,
    Skipped,
    Failed,
    Error,
}

impl Outcome {
    /// A skipped test never ran: `unknown` ("finished without a known result"), not
    /// `cancelled`, which would cancel the whole run.
    fn status(self) -> Status {
        match self {
            Outcome::Passed => Status::Passed,
            // Known, not clean: as the pytest plugin of `python/` reports them.
            Outcome::Flaky | Outcome::ExpectedFailure => Status::Warning,
            Outcome::Skipped => Status::Unknown,
            Outcome::Failed => Status::Failed,
            Outcome::Error => Status::Error,
        }
    }
}

#[derive(Debug)]
struct Case {
    name: String,
    classname: Option<String>,
    file: Option<String>,
    duration: Duration,
    outcome: Outcome,
    /// The message attribute and text of the outcome element that decided `outcome`.
    report: Option<OutcomeReport>,
}

/// What a `<failure>`, `<error>` or `<skipped>` element says: its `message` and its text
/// (usually a stack trace).
#[derive(Debug)]
struct OutcomeReport {
    outcome: Outcome,
    message: Option<String>,
    text: String,
}

impl OutcomeReport {
    /// The stop's failure details, cut to the bounds with a visible marker: a report is
    /// taken whole, so one long stack trace must not refuse it.
    fn failure(&self) -> Option<stpt_core::FailureDetails> {
        let text = self.text.trim();
        stpt_core::FailureDetails::fit(self.message.as_deref(), (!text.is_empty()).then_some(text))
    }
}

#[derive(Debug)]
struct Suite {
    /// Position among all `<testsuite>` elements, in document order.
    order: usize,
    name: Option<String>,
    file: Option<String>,
    /// Naive (as most JUnit writers put it) or zoned, as written: a naive one is read in the
    /// machine's runner time zone.
    timestamp: Option<RunnerTime>,
    cases: Vec<Case>,
}

/// A parsed report: suites with test cases, in document order.
#[derive(Debug)]
struct Report {
    name: Option<String>,
    suites: Vec<Suite>,
}

/// What an open element is, for the parser's stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Suites,
    Suite,
    Case,
    /// An outcome element of a case (`<failure>`…), whose text is read.
    Outcome,
    Other,
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed_xml", message)
}

/// The element's attributes, unescaped; a bad attribute or an unknown entity is malformed.
fn attributes(element: &BytesStart<'_>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut map = BTreeMap::new();
    for attribute in element.attributes() {
        let attribute =
            attribute.map_err(|e| malformed(format!("malformed XML attribute: {e}")))?;
        let key = String::from_utf8_lossy(attribute.key.local_name().as_ref()).into_owned();
        let value = attribute
            .unescape_value()
            .map_err(|e| malformed(format!("malformed XML attribute `{key}`: {e}")))?;
        map.insert(key, value.into_owned());
    }
    Ok(map)
}

/// A non-blank attribute value.
fn text(attributes: &mut BTreeMap<String, String>, key: &str) -> Option<String> {
    attributes
        .remove(key)
        .filter(|value| !value.trim().is_empty())
}

fn parse_seconds(field: &str, value: Option<String>) -> Result<Duration, ApiError> {
    let Some(value) = value else {
        return Ok(Duration::zero());
    };
    let seconds: f64 = value
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid(field, format!("`{value}` is not a number of seconds")))?;
    if !(0.0..=MAX_CASE_SECONDS).contains(&seconds) {
        return Err(ApiError::invalid(
            field,
            format!("`{value}` is not a duration from 0 to {MAX_CASE_SECONDS} seconds"),
        ));
    }
    // Whole microseconds: what the stores keep.
    Ok(Duration::microseconds((seconds * 1e6).round() as i64))
}

/// The text a character reference or one of XML's five entities stands for; any other
/// entity is malformed.
fn resolve_reference(reference: &BytesRef<'_>) -> Result<String, ApiError> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(c.to_string()),
            _ => Err(malformed("malformed XML: an invalid character reference")),
        };
    }
    let name = reference
        .decode()
        .map_err(|e| malformed(format!("malformed XML: {e}")))?;
    if let Some(text) = quick_xml::escape::resolve_xml_entity(&name) {
        Ok(text.to_owned())
    } else {
        Err(malformed(format!(
            "malformed XML: the entity `&{name};` is not defined (only XML's five are)"
        )))
    }
}

/// Parses a JUnit report, refusing anything that is not well-formed XML, a DOCTYPE, and
/// more than [`MAX_JUNIT_TESTS`] test cases.
fn parse_report(xml: &str) -> Result<Report, ApiError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Open> = Vec::new();
    let mut open_suites: Vec<Suite> = Vec::new();
    let mut case: Option<Case> = None;
    // The outcome element being read, if any.
    let mut reading: Option<OutcomeReport> = None;
    let mut report = Report {
        name: None,
        suites: Vec::new(),
    };
    let mut suites_seen = 0;
    let mut cases_seen = 0;
    let mut root_seen = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            malformed(format!(
                "malformed XML at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        let (element, empty) = match event {
            Event::Eof => break,
            Event::DocType(_) => {
                return Err(malformed(
                    "DOCTYPE declarations are refused: a JUnit report needs none, and the entities they declare could expand without bound",
                ));
            }
            Event::GeneralRef(reference) => {
                let text = resolve_reference(&reference)?;
                if let Some(reading) = reading.as_mut() {
                    reading.text.push_str(&text);
                }
                continue;
            }
            Event::Text(text) => {
                if let Some(reading) = reading.as_mut() {
                    let text = text
                        .xml10_content()
                        .map_err(|e| malformed(format!("malformed XML text: {e}")))?;
                    reading.text.push_str(&text);
                }
                continue;
            }
            Event::CData(text) => {
                if let Some(reading) = reading.as_mut() {
                    let text = text
                        .xml10_content()
                        .map_err(|e| malformed(format!("malformed XML CDATA: {e}")))?;
                    reading.text.push_str(&text);
                }
                continue;
            }
            Event::End(_) => {
                match stack.pop() {
                    Some(Open::Outcome) => {
                        if let (Some(done), Some(case)) = (reading.take(), case.as_mut()) {
                            keep_report(case, done);
                        }
                    }
                    Some(Open::Suite) => {
                        if let Some(suite) = open_suites.pop() {
                            if !suite.cases.is_empty() {
                                report.suites.push(suite);
                            }
                        }
                    }
                    Some(Open::Case) => {
                        if let (Some(done), Some(suite)) = (case.take(), open_suites.last_mut()) {
                            suite.cases.push(done);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            Event::Start(element) => (element, false),
            Event::Empty(element) => (element, true),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => continue,
        };
        if stack.len() >= MAX_DEPTH {
            return Err(malformed(format!(
                "the report nests elements more than {MAX_DEPTH} deep"
            )));
        }
        let name = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
        if stack.is_empty() {
            if root_seen {
                return Err(malformed(format!(
                    "malformed XML: a second root element `<{name}>`"
                )));
            }
            root_seen = true;
            if name != "testsuites" && name != "testsuite" {
                return Err(malformed(format!(
                    "not a JUnit report: the root element is `<{name}>`, expected `<testsuites>` or `<testsuite>`"
                )));
            }
        }
        let open = match (name.as_str(), stack.last()) {
            ("testsuites", None) => {
                report.name = text(&mut attributes(&element)?, "name");
                Open::Suites
            }
            ("testsuite", None | Some(Open::Suites | Open::Suite)) => {
                suites_seen += 1;
                let mut attributes = attributes(&element)?;
                let field = format!("testsuite[{suites_seen}].timestamp");
                let timestamp = match text(&mut attributes, "timestamp") {
                    None => None,
                    Some(value) => Some(RunnerTime::parse(value.trim()).ok_or_else(|| {
                        ApiError::invalid(&field, format!("`{value}` is not a timestamp"))
                    })?),
                };
                open_suites.push(Suite {
                    order: suites_seen,
                    name: text(&mut attributes, "name"),
                    file: text(&mut attributes, "file")
                        .or_else(|| text(&mut attributes, "filepath"))
                        .or_else(|| text(&mut attributes, "package")),
                    timestamp,
                    cases: Vec::new(),
                });
                Open::Suite
            }
            ("testcase", Some(Open::Suite)) => {
                cases_seen += 1;
                if cases_seen > MAX_JUNIT_TESTS {
                    return Err(ApiError::invalid(
                        "testcase",
                        format!(
                            "the report has more than {MAX_JUNIT_TESTS} test cases; split it into several reports"
                        ),
                    ));
                }
                let mut attributes = attributes(&element)?;
                let field = format!("testsuite[{suites_seen}].testcase[{cases_seen}]");
                let name = text(&mut attributes, "name").ok_or_else(|| {
                    ApiError::invalid(format!("{field}.name"), "a test case needs a `name`")
                })?;
                case = Some(Case {
                    name,
                    classname: text(&mut attributes, "classname"),
                    file: text(&mut attributes, "file"),
                    duration: parse_seconds(&format!("{field}.time"), attributes.remove("time"))?,
                    outcome: Outcome::Passed,
                    report: None,
                });
                Open::Case
            }
            ("testcase", _) => {
                return Err(malformed(
                    "a `<testcase>` outside a `<testsuite>`: every test case belongs to a suite",
                ));
            }
            (outcome, Some(Open::Case)) => {
                // Read the attributes in any case: an undefined entity there is malformed.
                let mut attributes = attributes(&element)?;
                let found = match outcome {
                    "failure" => Some(Outcome::Failed),
                    "error" => Some(Outcome::Error),
                    "skipped"
                        if attributes.get("type").map(String::as_str) == Some("pytest.xfail") =>
                    {
                        Some(Outcome::ExpectedFailure)
                    }
                    "skipped" => Some(Outcome::Skipped),
                    "flakyFailure" | "flakyError" => Some(Outcome::Flaky),
                    _ => None,
                };
                match (found, case.as_mut()) {
                    (Some(found), Some(case)) => {
                        case.outcome = case.outcome.max(found);
                        reading = Some(OutcomeReport {
                            outcome: found,
                            message: text(&mut attributes, "message"),
                            text: String::new(),
                        });
                        Open::Outcome
                    }
                    _ => Open::Other,
                }
            }
            _ => {
                attributes(&element)?;
                Open::Other
            }
        };
        stack.push(open);
        if empty {
            // `<x/>`: the same as `<x></x>`.
            match stack.pop() {
                Some(Open::Suite) => {
                    open_suites.pop();
                }
                Some(Open::Outcome) => {
                    if let (Some(done), Some(case)) = (reading.take(), case.as_mut()) {
                        keep_report(case, done);
                    }
                }
                Some(Open::Case) => {
                    if let (Some(done), Some(suite)) = (case.take(), open_suites.last_mut()) {
                        suite.cases.push(done);
                    }
                }
                _ => {}
            }
        }
    }
    if !root_seen {
        return Err(malformed(
            "not a JUnit report: no `<testsuites>` or `<testsuite>` element",
        ));
    }
    if !stack.is_empty() {
        return Err(malformed(
            "malformed XML: the document ends before its elements are closed",
        ));
    }
    // Nested suites close before their parents: back to document order.
    report.suites.sort_by_key(|suite| suite.order);
    Ok(report)
}

/// Keeps `report` for `case` if its outcome is the one that decides the case's (the first
/// of equals: a rerun's later failures repeat it).
fn keep_report(case: &mut Case, report: OutcomeReport) {
    let kept = case.report.as_ref().map(|kept| kept.outcome);
    if report.outcome == case.outcome && kept != Some(case.outcome) {
        case.report = Some(report);
    }
}

/// `text` cut to `max` characters (the last one `…`), so a long generated test name does not
/// refuse the whole report.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

fn name(text: &str) -> String {
    fit(text, stpt_core::MAX_NAME_CHARS)
}

fn path(text: &str) -> String {
    fit(text, stpt_core::MAX_PATH_CHARS)
}

/// The plan of `report` for `machine`, planned at `now`.
fn plan_of(report: &Report, machine: &MachineName, now: DateTime<Utc>) -> PlanPayload {
    let scenarios = report
        .suites
        .iter()
        .map(|suite| {
            let suite_name = suite
                .name
                .clone()
                .unwrap_or_else(|| format!("testsuite {}", suite.order));
            ScenarioPayload {
                file_path: path(suite.file.as_deref().unwrap_or(NO_PATH)),
                file_name: name(&suite_name),
                script: None,
                tests: suite
                    .cases
                    .iter()
                    .map(|case| TestPayload {
                        file_path: path(
                            case.classname
                                .as_deref()
                                .or(case.file.as_deref())
                                .unwrap_or(&suite_name),
                        ),
                        file_name: name(&case.name),
                        script: None,
                    })
                    .collect(),
            }
        })
        .collect();
    PlanPayload {
        machine_name: machine.as_str().to_owned(),
        timestamp: now.into(),
        master_scenario: MasterScenarioPayload {
            file_path: NO_PATH.to_owned(),
            file_name: name(report.name.as_deref().unwrap_or("JUnit report")),
            script: None,
            scenarios,
        },
    }
}

/// Each case's start and stop: from its suite's `timestamp` on, one case after the other;
/// a suite without one follows the previous suite, and the report ends now if none has one.
/// When a test started and stopped.
type Span = (RunnerTime, RunnerTime);

/// A time outside the years 1 to 9999 (the range runner timestamps are read in, e.g. a late
/// `timestamp` plus long `time`s) is a `400`.
fn timings(report: &Report, now: DateTime<Utc>) -> Result<Vec<Vec<Span>>, ApiError> {
    let out_of_range = || {
        ApiError::invalid(
            "testsuite.timestamp",
            "the report's timestamps and durations reach outside the years 1 to 9999",
        )
    };
    // Durations are added to a naive timestamp as the runner's own wall clock would count.
    let after = |time: RunnerTime, duration: Duration| {
        match time {
            RunnerTime::Naive(local) => local
                .checked_add_signed(duration)
                .filter(|local| (1..=9999).contains(&local.year()))
                .map(RunnerTime::Naive),
            RunnerTime::Zoned(utc) => utc
                .checked_add_signed(duration)
                .filter(|utc| (1..=9999).contains(&utc.year()))
                .map(RunnerTime::Zoned),
        }
        .ok_or_else(out_of_range)
    };
    // At most MAX_JUNIT_TESTS cases of at most MAX_CASE_SECONDS each: the sum cannot overflow.
    let total = report
        .suites
        .iter()
        .flat_map(|suite| &suite.cases)
        .fold(Duration::zero(), |sum, case| sum + case.duration);
    let mut cursor = after(RunnerTime::Zoned(now), -total)?;
    let mut timings = Vec::with_capacity(report.suites.len());
    for suite in &report.suites {
        if let Some(timestamp) = suite.timestamp {
            cursor = timestamp;
        }
        let mut times = Vec::with_capacity(suite.cases.len());
        for case in &suite.cases {
            let start = cursor;
            cursor = after(start, case.duration)?;
            times.push((start, cursor));
        }
        timings.push(times);
    }
    Ok(timings)
}

/// `?machine=NAME`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only documents the query; the handler parses it.
struct ImportQuery {
    /// The machine the report's run belongs to (created if new). Its ongoing run, if any, is
    /// abandoned, as by any new plan: give CI reports their own machine name.
    #[param(max_length = 256, example = "ci-linux")]
    machine: String,
}

/// The `Idempotency-Key` header of the import.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Only documents the header; the handler reads it.
struct ImportKey {
    /// A client's id for this upload, unique per machine, at most 96 characters: a retried
    /// upload with the same key stores the run once and answers `200` with `replayed: true`.
    #[param(
        rename = "Idempotency-Key",
        max_length = 96,
        nullable = false,
        example = "ci/pipeline-1234/junit"
    )]
    idempotency_key: Option<String>,
}

/// What an import stored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JunitImported {
    /// The machine (created if its name is new).
    machine_id: MachineId,
    /// The new run, finished.
    run_id: RunId,
    /// Scenarios stored: the report's suites that have test cases.
    scenarios: usize,
    /// Tests stored: the report's test cases.
    tests: usize,
    /// Tests per final status (`passed`, `warning` for a flaky pass or an expected failure,
    /// `failed`, `error`, and `unknown` for a skipped test).
    #[schema(value_type = BTreeMap<String, usize>)]
    statuses: BTreeMap<Status, usize>,
    /// Test events that matched nothing because the run changed meanwhile (a plan posted
    /// for the same machine during the import); `0` normally.
    unmatched_events: usize,
    /// Runs of the machine that were still ongoing and were abandoned by this run's plan.
    abandoned_runs: Vec<RunId>,
    /// `true` when the `Idempotency-Key` was seen before: nothing was stored now.
    replayed: bool,
}

/// Imports a JUnit XML report
///
/// Turns a JUnit/xUnit XML report (Ant and Maven Surefire, pytest `--junitxml`, Jest's
/// `jest-junit`, go-junit-report and other producers of the format) into a finished run of
/// the machine: each `<testsuite>` with test cases becomes a scenario, each `<testcase>` a
/// test; `<failure>` is `failed`, `<error>` is `error`, `<skipped>` is `unknown` (it never
/// ran; `cancelled` would cancel the whole run), Surefire's `<flakyFailure>` on a passing
/// test and pytest's expected failure (`<skipped type="pytest.xfail">`) are `warning`,
/// anything else `passed`. Each test starts where the one before it in its
/// suite stopped, from the suite's `timestamp` (a naive one is taken as UTC), and lasts its
/// `time`. The `message` and text of the element that decided a case's status are kept with
/// the test (cut, with a marker, to 1000 characters and 64 KiB). DOCTYPE declarations are
/// refused; at most 20000 test cases.
#[utoipa::path(
    post,
    operation_id = "v1_import_junit",
    path = "/api/v1/imports/junit",
    tag = "v1 runner API",
    params(ImportQuery, ImportKey),
    request_body(
        content = String,
        content_type = "application/xml",
        description = "The JUnit XML report, UTF-8.",
        example = "<testsuites><testsuite name=\"calc\" timestamp=\"2026-11-24T13:02:01\"><testcase classname=\"tests.test_calc\" name=\"test_add\" time=\"0.25\"/><testcase classname=\"tests.test_calc\" name=\"test_div\" time=\"0.5\"><failure message=\"ZeroDivisionError\"/></testcase></testsuite></testsuites>"
    ),
    responses(
        (status = 201, description = "The report is stored as a new, finished run.", body = JunitImported),
        (status = 200, description = "A retry: this `Idempotency-Key` imported a report before; nothing new is stored (`replayed` is `true`).", body = JunitImported),
        (status = 400, description = "No `machine`, a blank or oversized machine name, a body that is not UTF-8, malformed XML, a DOCTYPE, an undefined entity, a root element other than `<testsuites>` or `<testsuite>`, a bad `time` or `timestamp`, more than 20000 test cases, or a bad `Idempotency-Key` (`malformed_xml`, `invalid_input`). Nothing is stored.", body = ErrorEnvelope, example = json!({"error": {"code": "malformed_xml", "message": "DOCTYPE declarations are refused: a JUnit report needs none, and the entities they declare could expand without bound"}})),
        (status = 422, description = "The `Idempotency-Key` was used before on this machine for a different event (`idempotency_key_reused`). Do not retry with this key.", body = ErrorEnvelope),
    )
)]
async fn import_junit(
    State(state): State<AppState>,
    access: RunnerAccess,
    request: Request,
) -> Result<(StatusCode, Json<JunitImported>), ApiError> {
    let machine = machine_of(request.uri().query())?;
    access.permit(&machine)?;
    let key = import_key(request.headers())?;
    check_xml_content_type(request.headers())?;
    let body = Bytes::from_request(request, &state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than this server accepts",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    format!("the request body could not be read: {rejection}"),
                )
            }
        })?;
    let xml = std::str::from_utf8(&body)
        .map_err(|e| malformed(format!("the report is not UTF-8: {e}")))?;
    let report = parse_report(xml)?;
    let now = state.tracker.now();
    let times = timings(&report, now)?;
    let plan = plan_of(&report, &machine, now).validate()?;
    let recorded = match &key {
        Some(key) => {
            state
                .tracker
                .record_plan_once(plan, &EventId::new(key.clone())?)
                .await?
        }
        None => stpt_core::Recorded {
            receipt: state.tracker.record_plan(plan).await?,
            replayed: false,
        },
    };
    let receipt = recorded.receipt;
    let mut events = Vec::new();
    let mut statuses = BTreeMap::new();
    for (scenario, ((suite, times), test_ids)) in report
        .suites
        .iter()
        .zip(times)
        .zip(&receipt.ids.test_ids)
        .enumerate()
    {
        for (index, ((case, (start, stop)), test)) in
            suite.cases.iter().zip(times).zip(test_ids).enumerate()
        {
            let status = case.outcome.status();
            *statuses.entry(status).or_insert(0) += 1;
            let event_id = |what: &str| {
                key.as_ref()
                    .map(|key| EventId::new(format!("{key}#{scenario}.{index}.{what}")))
                    .transpose()
            };
            events.push((
                TestEvent {
                    target: TestTarget::Id(*test),
                    action: TestAction::Start,
                    at: start,
                    failure: None,
                },
                event_id("start")?,
            ));
            events.push((
                TestEvent {
                    target: TestTarget::Id(*test),
                    action: TestAction::Stop(status),
                    at: stop,
                    failure: case.report.as_ref().and_then(OutcomeReport::failure),
                },
                event_id("stop")?,
            ));
        }
    }
    let mut unmatched_events = 0;
    let mut pending = events.into_iter().peekable();
    while pending.peek().is_some() {
        let chunk: Vec<_> = pending.by_ref().take(MAX_BATCH_EVENTS).collect();
        for outcome in state.tracker.record_test_events(chunk).await? {
            if let Err(error) = outcome {
                tracing::warn!(%error, run = %receipt.ids.run_id, "a JUnit import's event matched nothing");
                unmatched_events += 1;
            }
        }
    }
    let status = if recorded.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(JunitImported {
            machine_id: receipt.machine_id,
            run_id: receipt.ids.run_id,
            scenarios: report.suites.len(),
            tests: report.suites.iter().map(|suite| suite.cases.len()).sum(),
            statuses,
            unmatched_events,
            abandoned_runs: receipt.abandoned,
            replayed: recorded.replayed,
        }),
    ))
}

fn machine_of(query: Option<&str>) -> Result<MachineName, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::invalid("query", format!("unreadable query string: {e}")))?;
    let machine = pairs
        .into_iter()
        .find_map(|(key, value)| (key == "machine").then_some(value))
        .ok_or_else(|| {
            ApiError::invalid(
                "machine",
                "name the machine the report belongs to: `?machine=NAME`",
            )
        })?;
    MachineName::new(machine).map_err(|e| ApiError::invalid("machine", e.to_string()))
}

fn import_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ApiError::invalid("Idempotency-Key", "the Idempotency-Key header must be text")
    })?;
    if key.trim().is_empty() || key.chars().count() > MAX_IMPORT_KEY_CHARS {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            format!("an import's Idempotency-Key is 1 to {MAX_IMPORT_KEY_CHARS} characters"),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// `application/xml`, `text/xml` or any `+xml` type; anything else is `415`.
fn check_xml_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/xml" || essence == "text/xml" || essence.ends_with("+xml") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected `Content-Type: application/xml`, got `{content_type}`"),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn error_of(xml: &str) -> String {
        let error = parse_report(xml).unwrap_err();
        format!("{} {}", error.status(), error.message())
    }

    #[test]
    fn nested_suites_keep_document_order_and_empty_ones_are_dropped() {
        let report = parse_report(
            r#"<testsuites><testsuite name="outer"><testsuite name="inner"><testcase name="a"/></testsuite><testcase name="b"/></testsuite><testsuite name="empty"/></testsuites>"#,
        )
        .unwrap();
        let names: Vec<_> = report
            .suites
            .iter()
            .map(|s| s.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["outer", "inner"]);
    }

    #[test]
    fn the_worst_child_decides_the_outcome() {
        let report = parse_report(
            r#"<testsuite name="s"><testcase name="a"><flakyFailure/></testcase><testcase name="b"><skipped/><error/></testcase></testsuite>"#,
        )
        .unwrap();
        let outcomes: Vec<_> = report.suites[0].cases.iter().map(|c| c.outcome).collect();
        assert_eq!(outcomes, [Outcome::Flaky, Outcome::Error]);
    }

    #[test]
    fn bad_documents_are_refused_with_a_reason() {
        for (xml, expected) in [
            ("<testsuite>", "ends before"),
            ("<html/>", "root element is `<html>`"),
            ("", "no `<testsuites>`"),
            ("<testsuite/><testsuite/>", "second root"),
            (
                "<testsuites><testcase name='x'/></testsuites>",
                "outside a `<testsuite>`",
            ),
            ("<testsuite name='&bogus;'/>", "bogus"),
            ("<testsuite>&bogus;</testsuite>", "`&bogus;` is not defined"),
            ("<!DOCTYPE x><testsuite/>", "DOCTYPE"),
            (
                "<testsuite><testcase name='a' time='soon'/></testsuite>",
                "`soon` is not a number",
            ),
            (
                "<testsuite><testcase name='a' time='-1'/></testsuite>",
                "from 0 to",
            ),
            ("<testsuite><testcase/></testsuite>", "needs a `name`"),
            ("<testsuite timestamp='yesterday'/>", "not a timestamp"),
            ("<testsuite></testcase>", "malformed XML"),
        ] {
            let error = error_of(xml);
            assert!(error.starts_with("400"), "{xml}: {error}");
            assert!(error.contains(expected), "{xml}: {error}");
        }
    }

    #[test]
    fn too_deep_or_too_many_is_refused() {
        let deep = "<testsuite>".to_owned() + &"<x>".repeat(MAX_DEPTH) + &"</x>".repeat(MAX_DEPTH);
        assert!(error_of(&deep).contains("deep"));
        let many = format!(
            "<testsuite>{}</testsuite>",
            "<testcase name='t'/>".repeat(MAX_JUNIT_TESTS + 1)
        );
        assert!(error_of(&many).contains("more than"));
    }

    #[test]
    fn times_past_the_calendar_are_refused() {
        let report = parse_report(
            "<testsuite timestamp='9999-12-31T23:59:59Z'><testcase name='a' time='1e8'/></testsuite>",
        );
        let times = report.and_then(|report| timings(&report, Utc::now()));
        let error = times.unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert!(
            error.message().contains("years 1 to 9999"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn long_names_are_cut_not_refused() {
        let long = "x".repeat(300);
        let cut = name(&long);
        assert_eq!(cut.chars().count(), stpt_core::MAX_NAME_CHARS);
        assert!(cut.ends_with('…'));
    }
}
