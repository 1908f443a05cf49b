//! Runs and test histories as files other tools read: CSV and JUnit XML.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;
use stpt_core::history::TestHistory;
use stpt_core::{FailureDetails, ItemRef, RunDetail, Status, TestId, Tracker};

use crate::ApiError;

/// A CSV cell that a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'` (runners name their files).
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_default()
}

fn millis(start: Option<DateTime<Utc>>, stop: Option<DateTime<Utc>>) -> String {
    stpt_core::duration(start, stop)
        .map(|d| d.num_milliseconds().to_string())
        .unwrap_or_default()
}

fn csv_text(rows: Vec<Vec<String>>) -> Result<String, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.write_record(&row).map_err(|error| {
            tracing::error!(%error, "CSV export failed");
            ApiError::internal()
        })?;
    }
    let bytes = writer.into_inner().map_err(|error| {
        tracing::error!(%error, "CSV export failed");
        ApiError::internal()
    })?;
    String::from_utf8(bytes).map_err(|_| ApiError::internal())
}

/// A run's tests, one a row, in plan order.
pub(crate) fn run_csv(run: &RunDetail) -> Result<String, ApiError> {
    let mut rows = vec![
        [
            "run_id",
            "machine",
            "scenario_path",
            "scenario_name",
            "test_id",
            "file_path",
            "file_name",
            "status",
            "timestamp_start",
            "timestamp_stop",
            "duration_ms",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for scenario in &run.scenarios {
        for test in &scenario.tests {
            rows.push(vec![
                run.summary.id.to_string(),
                cell(&run.machine_name),
                cell(&scenario.file.file_path),
                cell(&scenario.file.file_name),
                test.id.to_string(),
                cell(&test.file.file_path),
                cell(&test.file.file_name),
                test.status.as_str().to_owned(),
                time(test.timestamp_start),
                time(test.timestamp_stop),
                millis(test.timestamp_start, test.timestamp_stop),
            ]);
        }
    }
    csv_text(rows)
}

/// A page of a test's history, one result a row, newest first.
pub(crate) fn history_csv(history: &TestHistory) -> Result<String, ApiError> {
    let mut rows = vec![
        [
            "test_id",
            "run_id",
            "machine_id",
            "machine",
            "status",
            "timestamp_start",
            "timestamp_stop",
            "duration_ms",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for result in &history.results {
        rows.push(vec![
            result.test_id.to_string(),
            result.run_id.to_string(),
            result.machine_id.to_string(),
            cell(&result.machine_name),
            result.status.as_str().to_owned(),
            time(result.timestamp_start),
            time(result.timestamp_stop),
            millis(result.timestamp_start, result.timestamp_stop),
        ]);
    }
    csv_text(rows)
}

fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// `text` escaped, with the control characters XML 1.0 cannot hold even as references
/// (terminal colour codes in a log tail) shown as U+FFFD.
fn escape_text(text: &str) -> String {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    };
    let text: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .collect();
    escape(&text).into_owned()
}

/// What the stops of a run's finished tests said, other than `passed` ones (which seldom
/// say anything), read test by test: a run's detail holds no failure texts, so that live
/// pages of big runs stay small.
pub(crate) async fn failures(
    tracker: &Tracker,
    run: &RunDetail,
) -> Result<HashMap<TestId, FailureDetails>, ApiError> {
    let mut failures = HashMap::new();
    for test in run.scenarios.iter().flat_map(|scenario| &scenario.tests) {
        if !test.status.is_finished() || test.status == Status::Passed {
            continue;
        }
        let item = tracker.item(ItemRef::Test(test.id)).await?;
        if item.message.is_some() || item.details.is_some() {
            failures.insert(
                test.id,
                FailureDetails {
                    message: item.message,
                    details: item.details,
                },
            );
        }
    }
    Ok(failures)
}

fn seconds(start: Option<DateTime<Utc>>, stop: Option<DateTime<Utc>>) -> String {
    stpt_core::duration(start, stop)
        .map(|d| format!("{:.3}", d.num_milliseconds() as f64 / 1000.0))
        .unwrap_or_else(|| "0".to_owned())
}

/// A run as JUnit XML: the run is `<testsuites>`, each scenario a `<testsuite>`, each test a
/// `<testcase>` named by its file (classname: its path). `failed` is a `<failure>`, `error`
/// an `<error>`, and a test that did not run its course (`waiting`, `running`, `unknown`,
/// `cancelled`) is `<skipped>` with its status as the message; `warning` passes with the
/// status in `<system-out>`. A test's failure message and details (`failures`) become the
/// element's `message` and text (the message follows the status in `<system-out>`).
pub(crate) fn run_junit(run: &RunDetail, failures: &HashMap<TestId, FailureDetails>) -> String {
    let counts = run.summary.statistics.counts;
    let skipped = counts.get(Status::Waiting)
        + counts.get(Status::Running)
        + counts.get(Status::Unknown)
        + counts.get(Status::Cancelled);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">\n",
        escape(&format!("{}/{} on {}", run.master.file_path, run.master.file_name, run.machine_name)),
        counts.total(),
        counts.get(Status::Failed),
        counts.get(Status::Error),
        skipped,
        seconds(run.summary.timestamp_start, run.summary.timestamp_stop),
    ));
    for scenario in &run.scenarios {
        let c = scenario.counts;
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\"{}>\n",
            escape(&format!("{}/{}", scenario.file.file_path, scenario.file.file_name)),
            c.total(),
            c.get(Status::Failed),
            c.get(Status::Error),
            c.get(Status::Waiting) + c.get(Status::Running) + c.get(Status::Unknown) + c.get(Status::Cancelled),
            seconds(scenario.timestamp_start, scenario.timestamp_stop),
            scenario
                .timestamp_start
                .map(|at| format!(" timestamp=\"{}\"", at.format("%Y-%m-%dT%H:%M:%S")))
                .unwrap_or_default(),
        ));
        for test in &scenario.tests {
            xml.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
                escape(&test.file.file_name),
                escape(&test.file.file_path),
                seconds(test.timestamp_start, test.timestamp_stop),
            ));
            let failure = failures.get(&test.id);
            let message = failure.and_then(|f| f.message.as_deref());
            let details = failure.and_then(|f| f.details.as_deref());
            // `<failure message="…" type="…">details</failure>`, or empty without details.
            let element = |name: &str, status: &str| {
                let head = format!(
                    "      <{name} message=\"{}\"{}",
                    escape_text(message.unwrap_or(status)),
                    if name == "skipped" {
                        String::new()
                    } else {
                        format!(" type=\"{status}\"")
                    },
                );
                match details {
                    Some(details) => format!("{head}>{}</{name}>\n", escape_text(details)),
                    None => format!("{head}/>\n"),
                }
            };
            match test.status {
                Status::Passed if failure.is_none() => xml.push_str("/>\n"),
                Status::Passed | Status::Warning => {
                    let said: Vec<String> = [Some(format!("status: {}", test.status))]
                        .into_iter()
                        .chain([message, details].map(|text| text.map(str::to_owned)))
                        .flatten()
                        .collect();
                    xml.push_str(&format!(
                        ">\n      <system-out>{}</system-out>\n    </testcase>\n",
                        escape_text(&said.join("\n"))
                    ));
                }
                Status::Failed => {
                    xml.push_str(">\n");
                    xml.push_str(&element("failure", "failed"));
                    xml.push_str("    </testcase>\n");
                }
                Status::Error => {
                    xml.push_str(">\n");
                    xml.push_str(&element("error", "error"));
                    xml.push_str("    </testcase>\n");
                }
                other => {
                    xml.push_str(">\n");
                    xml.push_str(&element("skipped", other.as_str()));
                    xml.push_str("    </testcase>\n");
                }
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// A download: the body with its type and a file name.
pub(crate) fn download(body: String, content_type: &'static str, file_name: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
