//! The seed's runner protocol: the JSON a runner posts, and the validated commands made of it.
//!
//! Payload types mirror the wire exactly (so existing runners keep working); `validate` turns
//! them into commands that cannot hold a blank machine name, an oversized field or a
//! non-final stop status.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

use crate::{Error, Result, RunnerTime, Status};

/// Longest machine or file name accepted, in characters (as the seed).
pub const MAX_NAME_CHARS: usize = 256;
/// Longest file path accepted, in characters (as the seed).
pub const MAX_PATH_CHARS: usize = 1024;

/// Longest failure message accepted with a stop, in characters: one line, such as the failed
/// assertion.
pub const MAX_FAILURE_MESSAGE_CHARS: usize = 1000;
/// Longest failure details accepted with a stop, in bytes of UTF-8 (64 KiB): a traceback or
/// the tail of a log, enough for the part a reader needs and small enough that a run full of
/// failures stays cheap to store and read.
pub const MAX_FAILURE_DETAILS_BYTES: usize = 64 * 1024;

/// What a runner says about how a test ended, sent with its stop (`message` and `details`
/// of the versioned API's stops): usually why it failed, but any final status may carry it
/// (a warning's reason, a skip's reason). Kept with the test and shown on its page.
///
/// Over the bounds ([`MAX_FAILURE_MESSAGE_CHARS`], [`MAX_FAILURE_DETAILS_BYTES`]) a stop is
/// refused as invalid input ([`FailureDetails::validate`]) rather than cut: the server
/// cannot know which end of a text matters (a Java stack trace reads from the top, a Python
/// traceback from the bottom), and a text cut silently would read as whole. The runner
/// knows, so clients cut before sending, with a visible marker ([`FailureDetails::fit`]);
/// so does the JUnit import, which cannot refuse one line of a report it takes whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetails {
    /// A short, usually one-line message, such as the failed assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A longer text: a traceback, the tail of a log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// The line [`FailureDetails::fit`] puts where it cut a text.
const CUT_MARKER: &str = "[… cut by stpt: ";

impl FailureDetails {
    /// Checks the bounds and refuses NUL characters; `None` when neither text is given.
    pub fn validate(message: Option<String>, details: Option<String>) -> Result<Option<Self>> {
        if let Some(message) = &message {
            check_length("message", message, MAX_FAILURE_MESSAGE_CHARS)?;
        }
        if let Some(details) = &details {
            check_no_nul("details", details)?;
            if details.len() > MAX_FAILURE_DETAILS_BYTES {
                return Err(Error::invalid(
                    "details",
                    format!(
                        "is {} bytes long; at most {MAX_FAILURE_DETAILS_BYTES} are allowed (send the part that matters, e.g. the tail of a traceback)",
                        details.len()
                    ),
                ));
            }
        }
        Ok((message.is_some() || details.is_some()).then_some(FailureDetails { message, details }))
    }

    /// Texts made to fit the bounds, for a client to send: NUL characters become U+FFFD; a
    /// longer message keeps its beginning and ends with `…`; longer details keep their
    /// beginning and their end around a line saying how much was cut (the top of a stack
    /// trace names the error, the bottom of a traceback or log says where it happened).
    /// `None` when neither text is given.
    pub fn fit(message: Option<&str>, details: Option<&str>) -> Option<Self> {
        let message = message.map(|text| {
            let text = text.replace('\0', "\u{FFFD}");
            if text.chars().count() <= MAX_FAILURE_MESSAGE_CHARS {
                return text;
            }
            let mut cut: String = text.chars().take(MAX_FAILURE_MESSAGE_CHARS - 1).collect();
            cut.push('…');
            cut
        });
        let details = details.map(|text| {
            let text = text.replace('\0', "\u{FFFD}");
            if text.len() <= MAX_FAILURE_DETAILS_BYTES {
                return text;
            }
            // Room for the marker line (its number has at most 20 digits).
            let keep = MAX_FAILURE_DETAILS_BYTES - CUT_MARKER.len() - 40;
            let head_end = floor_char_boundary(&text, keep / 4);
            let tail_start = ceil_char_boundary(&text, text.len() - (keep - head_end));
            let cut = tail_start - head_end;
            format!(
                "{}\n{CUT_MARKER}{cut} bytes …]\n{}",
                &text[..head_end],
                &text[tail_start..]
            )
        });
        (message.is_some() || details.is_some()).then_some(FailureDetails { message, details })
    }
}

/// The largest char boundary of `text` at or before `at`.
fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The smallest char boundary of `text` at or after `at`.
fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// `POST /tm_api/dry_run/`: the plan a runner sends before executing anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanPayload {
    /// The machine's name.
    pub machine_name: String,
    /// When the runner made the plan (its own clock).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::RunnerTimestamp))]
    pub timestamp: RunnerTime,
    /// The master scenario with its scenarios and tests.
    pub master_scenario: MasterScenarioPayload,
}

/// The master scenario of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MasterScenarioPayload {
    /// Directory of the script.
    pub file_path: String,
    /// File name of the script.
    pub file_name: String,
    /// Script text; may be empty, `null` or absent.
    #[serde(default)]
    pub script: Option<String>,
    /// Scenarios in run order; `null` or absent means none.
    #[serde(default, deserialize_with = "null_as_empty")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub scenarios: Vec<ScenarioPayload>,
}

/// A scenario of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScenarioPayload {
    /// Directory of the script.
    pub file_path: String,
    /// File name of the script.
    pub file_name: String,
    /// Script text; may be empty, `null` or absent.
    #[serde(default)]
    pub script: Option<String>,
    /// Tests in run order; `null` or absent means none.
    #[serde(default, deserialize_with = "null_as_empty")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub tests: Vec<TestPayload>,
}

/// A test of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestPayload {
    /// Directory of the script.
    pub file_path: String,
    /// File name of the script.
    pub file_name: String,
    /// Script text; may be empty, `null` or absent.
    #[serde(default)]
    pub script: Option<String>,
}

/// `POST /tm_api/test_start/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestStartPayload {
    /// The machine's name.
    pub machine_name: String,
    /// Directory of the test script.
    pub file_path: String,
    /// File name of the test script.
    pub file_name: String,
    /// When the test started (the runner's clock); missing or `null`: when the server
    /// received the event, as the seed did.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<crate::openapi::RunnerTimestamp>, nullable)
    )]
    pub timestamp_start: Option<RunnerTime>,
}

/// `POST /tm_api/test_stop/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestStopPayload {
    /// The machine's name.
    pub machine_name: String,
    /// Directory of the test script.
    pub file_path: String,
    /// File name of the test script.
    pub file_name: String,
    /// The final status; `waiting` and `running` are invalid here.
    pub status: Status,
    /// When the test stopped (the runner's clock); missing or `null`: when the server
    /// received the event, as the seed did.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<crate::openapi::RunnerTimestamp>, nullable)
    )]
    pub timestamp_stop: Option<RunnerTime>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A machine's name: not blank, at most [`MAX_NAME_CHARS`] characters, compared
/// case-insensitively (rule 7).
///
/// So that two machines never look alike on a page, a name is refused (not silently
/// changed) when it starts or ends with whitespace, holds a control character, a Unicode
/// format character (zero-width spaces, direction marks and overrides, soft hyphens…) or
/// whitespace other than a plain space, or is not in Unicode normalization form C (NFC,
/// the form keyboards and hostnames produce: `é` as one character, not `e` and an accent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MachineName(String);

impl MachineName {
    /// Validates a machine name.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(Error::invalid("machine_name", "must not be blank"));
        }
        check_length("machine_name", &name, MAX_NAME_CHARS)?;
        check_unambiguous("machine_name", &name)?;
        Ok(MachineName(name))
    }

    /// The name as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key two names are compared by: equal keys name one machine.
    pub fn key(&self) -> String {
        machine_key(&self.0)
    }
}

/// The case-insensitive key of a machine name; backends index machines by it.
pub fn machine_key(name: &str) -> String {
    name.to_lowercase()
}

impl fmt::Display for MachineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Rejects NUL characters: no SQL database stores them in text, so accepting them would make
/// the outcome depend on the backend.
pub(crate) fn check_no_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// Unicode's format characters (general category Cf): invisible, yet they make two
/// equal-looking names differ.
const FORMAT_CHARACTERS: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

fn is_format_character(c: char) -> bool {
    FORMAT_CHARACTERS
        .iter()
        .any(|(first, last)| (*first..=*last).contains(&c))
}

/// Refuses what would let two different names look the same (see [`MachineName`]).
fn check_unambiguous(field: &str, name: &str) -> Result<()> {
    if name.trim() != name {
        return Err(Error::invalid(
            field,
            "must not start or end with whitespace",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c.is_control() || is_format_character(c) || (c.is_whitespace() && c != ' '))
    {
        return Err(Error::invalid(
            field,
            format!(
                "must not contain control, invisible formatting or special whitespace characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if !unicode_normalization::is_nfc(name) {
        return Err(Error::invalid(
            field,
            "must be in Unicode normalization form C (NFC): composed characters, as keyboards type them",
        ));
    }
    Ok(())
}

fn check_length(field: &str, value: &str, max_chars: usize) -> Result<()> {
    check_no_nul(field, value)?;
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(Error::invalid(
            field,
            format!("is {chars} characters long; at most {max_chars} are allowed"),
        ));
    }
    Ok(())
}

/// A script file as a plan names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptFile {
    /// Directory, at most [`MAX_PATH_CHARS`] characters.
    pub file_path: String,
    /// File name, at most [`MAX_NAME_CHARS`] characters.
    pub file_name: String,
    /// Script text, kept exactly: `None` and `Some("")` differ.
    pub script: Option<String>,
}

impl ScriptFile {
    fn validate(
        field: &str,
        file_path: String,
        file_name: String,
        script: Option<String>,
    ) -> Result<Self> {
        check_length(&format!("{field}.file_path"), &file_path, MAX_PATH_CHARS)?;
        check_length(&format!("{field}.file_name"), &file_name, MAX_NAME_CHARS)?;
        // As the seed's models: a plan names every file.
        for (name, value) in [("file_path", &file_path), ("file_name", &file_name)] {
            if value.trim().is_empty() {
                return Err(Error::invalid(
                    format!("{field}.{name}"),
                    "must not be blank",
                ));
            }
        }
        if let Some(script) = &script {
            check_no_nul(&format!("{field}.script"), script)?;
        }
        Ok(ScriptFile {
            file_path,
            file_name,
            script,
        })
    }
}

/// A validated plan: what [`crate::Tracker::record_plan`] stores as a new run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The machine.
    pub machine: MachineName,
    /// The runner's timestamp of the plan.
    pub timestamp: RunnerTime,
    /// The master scenario.
    pub master: ScriptFile,
    /// Scenarios in plan order.
    pub scenarios: Vec<PlannedScenario>,
}

/// A scenario of a validated plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedScenario {
    /// The scenario's script.
    pub file: ScriptFile,
    /// Its tests in plan order.
    pub tests: Vec<ScriptFile>,
}

impl Plan {
    /// The number of tests in the plan.
    pub fn test_count(&self) -> usize {
        self.scenarios.iter().map(|s| s.tests.len()).sum()
    }
}

impl PlanPayload {
    /// Checks every rule of the protocol and returns the plan to store.
    pub fn validate(self) -> Result<Plan> {
        let machine = MachineName::new(self.machine_name)?;
        let master = self.master_scenario;
        let master_file = ScriptFile::validate(
            "master_scenario",
            master.file_path,
            master.file_name,
            master.script,
        )?;
        let scenarios = master
            .scenarios
            .into_iter()
            .enumerate()
            .map(|(s, scenario)| {
                let field = format!("master_scenario.scenarios[{s}]");
                let file = ScriptFile::validate(
                    &field,
                    scenario.file_path,
                    scenario.file_name,
                    scenario.script,
                )?;
                let tests = scenario
                    .tests
                    .into_iter()
                    .enumerate()
                    .map(|(t, test)| {
                        ScriptFile::validate(
                            &format!("{field}.tests[{t}]"),
                            test.file_path,
                            test.file_name,
                            test.script,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(PlannedScenario { file, tests })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Plan {
            machine,
            timestamp: self.timestamp,
            master: master_file,
            scenarios,
        })
    }
}

/// A validated `test_start` (rule 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestStart {
    /// The machine.
    pub machine: MachineName,
    /// Directory of the test script.
    pub file_path: String,
    /// File name of the test script.
    pub file_name: String,
    /// When the test started (the runner's clock).
    pub at: RunnerTime,
}

/// A validated `test_stop` (rules 3 and 8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestStop {
    /// The machine.
    pub machine: MachineName,
    /// Directory of the test script.
    pub file_path: String,
    /// File name of the test script.
    pub file_name: String,
    /// The final status: never `waiting` or `running`.
    pub status: Status,
    /// When the test stopped (the runner's clock).
    pub at: RunnerTime,
}

impl TestStartPayload {
    /// [`TestStartPayload::validate_at`] with the system clock's time as the receipt time.
    pub fn validate(self) -> Result<TestStart> {
        self.validate_at(Utc::now())
    }

    /// Checks the protocol's rules and returns the event to apply; a missing start time is
    /// `received_at` (pass the tracker's clock, [`crate::Tracker::now`]).
    pub fn validate_at(self, received_at: DateTime<Utc>) -> Result<TestStart> {
        check_length("file_path", &self.file_path, MAX_PATH_CHARS)?;
        check_length("file_name", &self.file_name, MAX_NAME_CHARS)?;
        Ok(TestStart {
            machine: MachineName::new(self.machine_name)?,
            file_path: self.file_path,
            file_name: self.file_name,
            at: self
                .timestamp_start
                .unwrap_or(RunnerTime::Zoned(received_at)),
        })
    }
}

impl TestStopPayload {
    /// [`TestStopPayload::validate_at`] with the system clock's time as the receipt time.
    pub fn validate(self) -> Result<TestStop> {
        self.validate_at(Utc::now())
    }

    /// Checks the protocol's rules and returns the event to apply; a missing stop time is
    /// `received_at` (pass the tracker's clock, [`crate::Tracker::now`]).
    pub fn validate_at(self, received_at: DateTime<Utc>) -> Result<TestStop> {
        check_length("file_path", &self.file_path, MAX_PATH_CHARS)?;
        check_length("file_name", &self.file_name, MAX_NAME_CHARS)?;
        if self.status.is_ongoing() {
            return Err(Error::invalid(
                "status",
                format!(
                    "`{}` is not a final status; expected one of passed, warning, failed, error, unknown, cancelled",
                    self.status
                ),
            ));
        }
        Ok(TestStop {
            machine: MachineName::new(self.machine_name)?,
            file_path: self.file_path,
            file_name: self.file_name,
            status: self.status,
            at: self
                .timestamp_stop
                .unwrap_or(RunnerTime::Zoned(received_at)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_machine_names_are_refused() {
        for name in ["rig-7", "Rig 7", "Jürgen-测试", "rig_7.lab"] {
            assert!(MachineName::new(name).is_ok(), "{name}");
        }
        for name in [
            " rig-7",
            "rig-7 ",
            "rig-7\n",
            "rig\t7",
            "rig-\u{200B}7",
            "rig-7\u{202E}",
            "\u{FEFF}rig-7",
            "rig\u{00A0}7",
            "rig-\u{1b}[31m7",
            "Ju\u{0308}rgen",
        ] {
            match MachineName::new(name) {
                Err(Error::InvalidInput { field, problem }) => {
                    assert_eq!(field, "machine_name", "{name:?}");
                    assert!(problem.starts_with("must"), "{problem}");
                }
                other => panic!("{name:?} was accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn blank_plan_files_are_invalid() {
        for (path, name, field) in [("", "t.py", "file_path"), ("/t", " ", "file_name")] {
            let mut plan = plan_json("rig", "m.py", "");
            plan["master_scenario"]["scenarios"] = serde_json::json!([{"file_path": "/s", "file_name": "s.py",
                    "tests": [{"file_path": path, "file_name": name}]}]);
            let payload: PlanPayload = serde_json::from_value(plan).unwrap();
            match payload.validate() {
                Err(Error::InvalidInput { field: got, .. }) => assert_eq!(
                    got,
                    format!("master_scenario.scenarios[0].tests[0].{field}")
                ),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn missing_or_null_event_times_are_the_receipt_time() {
        let received = Utc::now();
        for body in [
            serde_json::json!({"machine_name": "rig", "file_path": "/t", "file_name": "a.py"}),
            serde_json::json!({"machine_name": "rig", "file_path": "/t", "file_name": "a.py",
                "timestamp_start": null}),
        ] {
            let start: TestStartPayload = serde_json::from_value(body).unwrap();
            assert_eq!(start.validate_at(received).unwrap().at, received.into());
        }
        let stop: TestStopPayload = serde_json::from_value(serde_json::json!({
            "machine_name": "rig", "file_path": "/t", "file_name": "a.py", "status": "passed",
            "timestamp_stop": null}))
        .unwrap();
        assert_eq!(stop.validate_at(received).unwrap().at, received.into());
        let timed: TestStopPayload = serde_json::from_value(serde_json::json!({
            "machine_name": "rig", "file_path": "/t", "file_name": "a.py", "status": "passed",
            "timestamp_stop": "2018-12-30 13:01"}))
        .unwrap();
        assert_ne!(timed.validate_at(received).unwrap().at, received.into());
    }

    fn plan_json(machine: &str, file_name: &str, script: &str) -> serde_json::Value {
        serde_json::json!({
            "machine_name": machine,
            "timestamp": "2018-12-30 13:01:57.461401",
            "master_scenario": {"file_path": "/s", "file_name": "m.py", "script": null,
                "scenarios": [{"file_path": "/s", "file_name": "s.py", "tests": null},
                              {"file_path": "/s", "file_name": "t.py",
                               "tests": [{"file_path": "/t", "file_name": file_name, "script": script}]}]}
        })
    }

    fn validate(value: serde_json::Value) -> Result<Plan> {
        serde_json::from_value::<PlanPayload>(value)
            .expect("well-formed payload")
            .validate()
    }

    #[test]
    fn null_lists_and_scripts_are_accepted() {
        let plan = validate(plan_json("rig", "a.py", "")).expect("valid plan");
        assert!(plan.scenarios[0].tests.is_empty());
        assert_eq!(plan.master.script, None);
        assert_eq!(plan.scenarios[1].tests[0].script.as_deref(), Some(""));
    }

    #[test]
    fn invalid_fields_are_named() {
        let cases = [
            (plan_json("  ", "a.py", ""), "machine_name"),
            (plan_json("rig\0", "a.py", ""), "machine_name"),
            (
                plan_json("rig", "a\0.py", ""),
                "master_scenario.scenarios[1].tests[0].file_name",
            ),
            (
                plan_json("rig", "a.py", "x\0y"),
                "master_scenario.scenarios[1].tests[0].script",
            ),
            (
                plan_json("rig", &"n".repeat(257), ""),
                "master_scenario.scenarios[1].tests[0].file_name",
            ),
        ];
        for (value, expected) in cases {
            match validate(value) {
                Err(Error::InvalidInput { field, .. }) => assert_eq!(field, expected),
                other => panic!("expected invalid {expected}, got {other:?}"),
            }
        }
    }

    #[test]
    fn failure_details_are_bounded_and_fit() {
        let long_message = "m".repeat(MAX_FAILURE_MESSAGE_CHARS + 1);
        let long_details = format!("top\n{}\nbottom", "é".repeat(MAX_FAILURE_DETAILS_BYTES));
        for (message, details, field) in [
            (Some(long_message.clone()), None, "message"),
            (Some("a\0b".to_owned()), None, "message"),
            (None, Some(long_details.clone()), "details"),
            (None, Some("x\0".to_owned()), "details"),
        ] {
            match FailureDetails::validate(message, details) {
                Err(Error::InvalidInput { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert_eq!(FailureDetails::validate(None, None).unwrap(), None);
        let fitted = FailureDetails::fit(Some(&long_message), Some(&long_details)).unwrap();
        let message = fitted.message.clone().unwrap();
        assert_eq!(message.chars().count(), MAX_FAILURE_MESSAGE_CHARS);
        assert!(message.ends_with('…'));
        let details = fitted.details.clone().unwrap();
        assert!(
            details.len() <= MAX_FAILURE_DETAILS_BYTES,
            "{}",
            details.len()
        );
        assert!(details.starts_with("top\n") && details.ends_with("\nbottom"));
        assert!(details.contains("cut by stpt"));
        let valid = FailureDetails::validate(fitted.message, fitted.details).unwrap();
        assert!(valid.is_some());
        let short = FailureDetails::fit(Some("boom"), Some("trace")).unwrap();
        assert_eq!(short.message.as_deref(), Some("boom"));
        assert_eq!(short.details.as_deref(), Some("trace"));
    }

    #[test]
    fn stop_needs_a_final_status() {
        let stop = |status: &str| {
            serde_json::from_value::<TestStopPayload>(serde_json::json!({
                "machine_name": "rig", "file_path": "/t", "file_name": "a.py",
                "status": status, "timestamp_stop": "2018-12-30T13:01:57Z"}))
        };
        assert!(stop("running").expect("parses").validate().is_err());
        assert!(stop("waiting").expect("parses").validate().is_err());
        assert!(stop("passed").expect("parses").validate().is_ok());
        assert!(stop("finished").is_err(), "unknown statuses fail to parse");
    }
}
