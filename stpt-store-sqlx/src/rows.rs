//! Row types shared by both backends, and their mapping to stpt's domain types.
//!
//! Every conversion from a stored value is checked: a row the domain cannot represent (an
//! unknown status text, a negative count) becomes [`stpt_core::Error::Backend`], never a panic.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use stpt_core::rules::{Aggregate, RunState, ScenarioState, TestState};
use stpt_core::{
    ClockOffset, Error, FileRef, MachineId, MachineStatus, MachineSummary, NewRun, Result, RunId,
    RunSummary, ScenarioId, ScenarioView, ScriptFile, Statistics, Status, StatusCounts, TestId,
    TestView,
};

use crate::error::RowError;

/// Parses a stored status text.
pub(crate) fn status(column: &'static str, text: &str) -> Result<Status> {
    text.parse::<Status>().map_err(|_| {
        Error::backend(RowError::UnknownStatus {
            column,
            value: text.to_owned(),
        })
    })
}

fn count(column: &'static str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::backend(RowError::BadCount { column, value }))
}

/// A count as stored.
pub(crate) fn count_i64(value: u32) -> i64 {
    i64::from(value)
}

/// The eight status counts of a scenario or run.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CountsRow {
    n_waiting: i64,
    n_running: i64,
    n_passed: i64,
    n_warning: i64,
    n_failed: i64,
    n_error: i64,
    n_unknown: i64,
    n_cancelled: i64,
}

impl CountsRow {
    fn counts(&self) -> Result<StatusCounts> {
        let mut counts = StatusCounts::new();
        for (status, column, value) in [
            (Status::Waiting, "n_waiting", self.n_waiting),
            (Status::Running, "n_running", self.n_running),
            (Status::Passed, "n_passed", self.n_passed),
            (Status::Warning, "n_warning", self.n_warning),
            (Status::Failed, "n_failed", self.n_failed),
            (Status::Error, "n_error", self.n_error),
            (Status::Unknown, "n_unknown", self.n_unknown),
            (Status::Cancelled, "n_cancelled", self.n_cancelled),
        ] {
            counts.set(status, count(column, value)?);
        }
        Ok(counts)
    }
}

/// Counts and timestamps of a scenario or run.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AggregateRow {
    #[sqlx(flatten)]
    counts: CountsRow,
    timestamp_start: Option<DateTime<Utc>>,
    timestamp_stop: Option<DateTime<Utc>>,
}

impl AggregateRow {
    pub(crate) fn aggregate(&self) -> Result<Aggregate> {
        Ok(Aggregate {
            counts: self.counts.counts()?,
            timestamp_start: self.timestamp_start,
            timestamp_stop: self.timestamp_stop,
        })
    }
}

/// A scenario or run as the rules see it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StateRow {
    id: i64,
    #[sqlx(flatten)]
    aggregate: AggregateRow,
}

impl StateRow {
    pub(crate) fn run_state(&self) -> Result<RunState> {
        Ok(RunState {
            id: RunId(self.id),
            aggregate: self.aggregate.aggregate()?,
        })
    }

    pub(crate) fn scenario_state(&self) -> Result<ScenarioState> {
        Ok(ScenarioState {
            id: ScenarioId(self.id),
            aggregate: self.aggregate.aggregate()?,
        })
    }
}

/// A test.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TestRow {
    pub(crate) id: i64,
    pub(crate) scenario_id: i64,
    file_path: String,
    file_name: String,
    status: String,
    timestamp_start: Option<DateTime<Utc>>,
    timestamp_stop: Option<DateTime<Utc>>,
}

impl TestRow {
    /// Rows in plan order from a JSON array of `[seq, id, scenario_id, file_path, file_name,
    /// status, timestamp_start, timestamp_stop]` arrays in any order, timestamps as the SQLite
    /// store writes them.
    pub(crate) fn from_json(text: &str) -> Result<Vec<TestRow>> {
        type Json = (
            i64,
            i64,
            i64,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
        );
        let mut rows: Vec<Json> = serde_json::from_str(text).map_err(Error::backend)?;
        rows.sort_unstable_by_key(|row| row.0);
        rows.into_iter()
            .map(
                |(_, id, scenario_id, file_path, file_name, status, start, stop)| {
                    Ok(TestRow {
                        id,
                        scenario_id,
                        file_path,
                        file_name,
                        status,
                        timestamp_start: start.as_deref().map(text_time).transpose()?,
                        timestamp_stop: stop.as_deref().map(text_time).transpose()?,
                    })
                },
            )
            .collect()
    }

    pub(crate) fn state(self) -> Result<TestState> {
        Ok(TestState {
            id: TestId(self.id),
            scenario_id: ScenarioId(self.scenario_id),
            status: status("tests.status", &self.status)?,
            file_path: self.file_path,
            file_name: self.file_name,
            timestamp_start: self.timestamp_start,
            timestamp_stop: self.timestamp_stop,
            // Ongoing tests, which are what units load, have none.
            failure: None,
        })
    }

    pub(crate) fn view(self) -> Result<TestView> {
        Ok(TestView {
            id: TestId(self.id),
            status: status("tests.status", &self.status)?,
            file: FileRef {
                file_path: self.file_path,
                file_name: self.file_name,
            },
            timestamp_start: self.timestamp_start,
            timestamp_stop: self.timestamp_stop,
        })
    }
}

/// A run as listed.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RunRow {
    id: i64,
    machine_id: i64,
    planned_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    status: String,
    scenario_count: i64,
    went_silent_at: Option<DateTime<Utc>>,
    kept: bool,
    #[sqlx(flatten)]
    aggregate: AggregateRow,
}

impl RunRow {
    pub(crate) fn summary(&self) -> Result<RunSummary> {
        let aggregate = self.aggregate.aggregate()?;
        Ok(RunSummary {
            id: RunId(self.id),
            machine_id: MachineId(self.machine_id),
            timestamp: self.planned_at,
            received_at: self.received_at,
            status: status("runs.status", &self.status)?,
            statistics: Statistics::new(
                aggregate.counts,
                count("runs.scenario_count", self.scenario_count)?,
            ),
            timestamp_start: aggregate.timestamp_start,
            timestamp_stop: aggregate.timestamp_stop,
            went_silent_at: self.went_silent_at,
            kept: self.kept,
        })
    }
}

impl RunRow {
    pub(crate) fn machine_id(&self) -> i64 {
        self.machine_id
    }
}

/// One waiting or running test of a run, with its identity's stored histories.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RemainingRow {
    seq: i64,
    file_path: String,
    file_name: String,
    status: String,
    id: i64,
    timestamp_start: Option<DateTime<Utc>>,
    on_machine: Option<String>,
    everywhere: Option<String>,
}

impl RemainingRow {
    /// Rows from a JSON array of `[seq, file_path, file_name, status, id, timestamp_start,
    /// on_machine, everywhere]` arrays, timestamps as the SQLite store writes them.
    pub(crate) fn from_json(text: &str) -> Result<Vec<RemainingRow>> {
        type Json = (
            i64,
            String,
            String,
            String,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Json> = serde_json::from_str(text).map_err(Error::backend)?;
        rows.into_iter()
            .map(
                |(seq, file_path, file_name, status, id, start, on_machine, everywhere)| {
                    Ok(RemainingRow {
                        seq,
                        file_path,
                        file_name,
                        status,
                        id,
                        timestamp_start: start.as_deref().map(text_time).transpose()?,
                        on_machine,
                        everywhere,
                    })
                },
            )
            .collect()
    }

    /// One entry per test identity, in plan order of its first test: how many of its tests
    /// wait, its running test, and its histories.
    pub(crate) fn work(mut rows: Vec<RemainingRow>) -> Result<Vec<stpt_core::RemainingWork>> {
        use std::collections::hash_map::{Entry, HashMap};
        let history = |text: Option<String>| {
            text.as_deref()
                .map(stpt_core::DurationHistory::from_text)
                .unwrap_or_default()
        };
        rows.sort_unstable_by_key(|row| row.seq);
        let mut work: Vec<stpt_core::RemainingWork> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        for row in rows {
            let at = match index.entry((row.file_path, row.file_name)) {
                Entry::Occupied(entry) => *entry.get(),
                Entry::Vacant(entry) => {
                    let (file_path, file_name) = entry.key().clone();
                    work.push(stpt_core::RemainingWork {
                        file: FileRef {
                            file_path,
                            file_name,
                        },
                        waiting: 0,
                        running: None,
                        on_machine: history(row.on_machine),
                        everywhere: history(row.everywhere),
                    });
                    *entry.insert(work.len() - 1)
                }
            };
            let Some(item) = work.get_mut(at) else {
                continue;
            };
            match status("tests.status", &row.status)? {
                Status::Waiting => item.waiting = item.waiting.saturating_add(1),
                Status::Running => {
                    let newer = item.running.is_none_or(|(id, _)| row.id > id.get());
                    if let (true, Some(since)) = (newer, row.timestamp_start) {
                        item.running = Some((TestId(row.id), since));
                    }
                }
                _ => {}
            }
        }
        Ok(work)
    }
}

/// A run with what its detail page shows besides its scenarios.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RunHeadRow {
    #[sqlx(flatten)]
    pub(crate) run: RunRow,
    pub(crate) machine_name: String,
    pub(crate) file_path: String,
    pub(crate) file_name: String,
}

/// A scenario of a run detail.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ScenarioRow {
    id: i64,
    file_path: String,
    file_name: String,
    status: String,
    #[sqlx(flatten)]
    aggregate: AggregateRow,
}

impl ScenarioRow {
    pub(crate) fn view(self) -> Result<ScenarioView> {
        let aggregate = self.aggregate.aggregate()?;
        Ok(ScenarioView {
            id: ScenarioId(self.id),
            status: status("scenarios.status", &self.status)?,
            file: FileRef {
                file_path: self.file_path,
                file_name: self.file_name,
            },
            counts: aggregate.counts,
            timestamp_start: aggregate.timestamp_start,
            timestamp_stop: aggregate.timestamp_stop,
            tests: Vec::new(),
        })
    }
}

/// A machine with its latest run's status.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MachineRow {
    id: i64,
    name: String,
    latest_run_id: Option<i64>,
    last_seen: Option<DateTime<Utc>>,
    clock_offset_ms: Option<i64>,
    runner_timezone: Option<String>,
    quiet_after_secs: Option<i64>,
    offline_after_secs: Option<i64>,
    own_retention: bool,
    keep_days: Option<i64>,
    keep_runs: Option<i64>,
    run_status: Option<String>,
}

impl MachineRow {
    pub(crate) fn summary(self) -> Result<MachineSummary> {
        let status = match (self.latest_run_id, &self.run_status) {
            (Some(_), Some(text)) => MachineStatus::Run(status("runs.status", text)?),
            (None, _) => MachineStatus::NotAvailable,
            (Some(run), None) => {
                return Err(Error::backend(RowError::MissingRun {
                    machine: self.id,
                    run,
                }));
            }
        };
        Ok(MachineSummary {
            id: MachineId(self.id),
            name: self.name,
            status,
            latest_run: self.latest_run_id.map(RunId),
            last_seen: self.last_seen,
            clock_offset: self.clock_offset_ms.map(ClockOffset::from_millis),
            runner_timezone: runner_timezone(self.id, self.runner_timezone.as_deref()),
            timeouts: stpt_core::MachineTimeouts {
                quiet_after_secs: setting("machines.quiet_after_secs", self.quiet_after_secs)?,
                offline_after_secs: setting(
                    "machines.offline_after_secs",
                    self.offline_after_secs,
                )?,
            },
            retention: if self.own_retention {
                Some(stpt_core::RetentionPolicy {
                    keep_days: setting("machines.keep_days", self.keep_days)?,
                    keep_runs_per_machine: setting("machines.keep_runs", self.keep_runs)?,
                })
            } else {
                None
            },
            liveness: None,
            backlog: None,
        })
    }
}

/// A stored machine setting, when set: a count or a number of seconds.
fn setting(column: &'static str, value: Option<i64>) -> Result<Option<u32>> {
    value.map(|value| count(column, value)).transpose()
}

/// A machine as a unit of work sees it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MachineRecordRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) latest_run_id: Option<i64>,
    pub(crate) clock_offset_ms: Option<i64>,
    pub(crate) runner_timezone: Option<String>,
    /// Bumped by every write to the machine's runs: what an optimistic reader checks.
    pub(crate) version: i64,
}

impl MachineRecordRow {
    /// The machine as a unit of work sees it.
    pub(crate) fn record(self) -> stpt_core::MachineRecord {
        stpt_core::MachineRecord {
            id: stpt_core::MachineId(self.id),
            name: self.name,
            latest_run: self.latest_run_id.map(stpt_core::RunId),
            clock_offset: self.clock_offset_ms.map(ClockOffset::from_millis),
            timezone: runner_timezone(self.id, self.runner_timezone.as_deref()),
        }
    }
}

/// A stored zone name as a zone. A name this build's zone database does not know (it was
/// stored by a build with a newer one) reads as none, so the machine's events are read in the
/// server's default zone rather than refused.
fn runner_timezone(machine: i64, name: Option<&str>) -> Option<stpt_core::RunnerTimezone> {
    let name = name?;
    name.parse()
        .inspect_err(|_| {
            tracing::warn!(
                machine,
                zone = name.escape_debug().to_string(),
                "unknown stored runner time zone; using the default"
            );
        })
        .ok()
}

/// One item with its script.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ItemRow {
    pub(crate) run_id: i64,
    pub(crate) machine_id: i64,
    pub(crate) file_path: String,
    pub(crate) file_name: String,
    pub(crate) script: Option<String>,
    pub(crate) status: String,
    pub(crate) timestamp_start: Option<DateTime<Utc>>,
    pub(crate) timestamp_stop: Option<DateTime<Utc>>,
    /// A test's failure message (`NULL` for scenarios).
    pub(crate) failure_message: Option<String>,
    /// A test's failure details (`NULL` for scenarios).
    pub(crate) failure_details: Option<String>,
}

/// Whether `work` stores a test's failure text (which the fast write paths leave to a query
/// with bound parameters).
pub(crate) fn carries_failure(work: &stpt_core::rules::RunWork) -> bool {
    work.tests.iter().any(|test| test.failure.is_some())
}

/// How `work` moves its run's `running_test_id`, as the statements that store it take it
/// (`NULLIF(COALESCE(change, running_test_id), 0)`): `None` keeps it, `Some(0)` clears it (no
/// row has id 0) and `Some(id)` names the test that started. The rules keep at most one test
/// running per run, so a run with a running test whose work started none still runs the same.
pub(crate) fn running_test_change(work: &stpt_core::rules::RunWork) -> Option<i64> {
    if work.run.aggregate.counts.get(Status::Running) == 0 {
        return Some(0);
    }
    work.tests
        .iter()
        .rev()
        .find(|test| test.status == Status::Running)
        .map(|test| test.id.get())
}

/// Checks that every timestamp `changes` would store has a year the backend can store and read
/// back (`years`): a runner's odd clock is invalid input, not a run that cannot be read.
pub(crate) fn check_years(
    changes: &stpt_core::Changes,
    years: std::ops::RangeInclusive<i32>,
) -> Result<()> {
    use chrono::Datelike;
    let mut times = vec![Some(changes.seen_at)];
    if let Some(new_run) = &changes.new_run {
        times.extend([Some(new_run.timestamp), Some(new_run.received_at)]);
    }
    for work in &changes.runs {
        let aggregates = work
            .scenarios
            .iter()
            .map(|s| &s.aggregate)
            .chain([&work.run.aggregate]);
        for aggregate in aggregates {
            times.extend([aggregate.timestamp_start, aggregate.timestamp_stop]);
        }
        for test in &work.tests {
            times.extend([test.timestamp_start, test.timestamp_stop]);
        }
        times.push(work.closed.map(|closed| closed.at));
    }
    match times
        .into_iter()
        .flatten()
        .find(|t| !years.contains(&t.year()))
    {
        Some(bad) => Err(Error::invalid(
            "timestamp",
            format!(
                "{bad} is out of range: years {} to {} are stored",
                years.start(),
                years.end()
            ),
        )),
        None => Ok(()),
    }
}

/// A script's storage key.
pub(crate) type ScriptHash = [u8; 32];

fn script_hash(text: &str) -> ScriptHash {
    Sha256::digest(text.as_bytes()).into()
}

/// 64 bits of SHA-256 over (path, name): the fixed-size index key of a test's file.
pub(crate) fn file_key(file_path: &str, file_name: &str) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update((file_path.len() as u64).to_le_bytes());
    hasher.update(file_path.as_bytes());
    hasher.update(file_name.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

/// An item's file columns before insertion.
#[derive(Debug)]
pub(crate) struct FileCols {
    pub(crate) file_path: String,
    pub(crate) file_name: String,
    pub(crate) script: Option<ScriptHash>,
}

/// A scenario before insertion.
#[derive(Debug)]
pub(crate) struct ScenarioCols {
    pub(crate) seq: i64,
    pub(crate) file: FileCols,
    pub(crate) aggregate: Aggregate,
}

/// A test before insertion.
#[derive(Debug)]
pub(crate) struct TestCols {
    pub(crate) seq: i64,
    /// Index of its scenario in plan order.
    pub(crate) scenario: usize,
    pub(crate) file: FileCols,
    pub(crate) file_key: i64,
    /// Its identity's key ([`stpt_core::history::TestKey`]).
    pub(crate) identity_key: i64,
}

/// A plan flattened into rows, with its distinct scripts.
#[derive(Debug)]
pub(crate) struct PlanRows {
    /// Distinct scripts, sorted by hash (a fixed lock order for concurrent inserters).
    pub(crate) scripts: BTreeMap<ScriptHash, String>,
    pub(crate) master: FileCols,
    pub(crate) scenarios: Vec<ScenarioCols>,
    pub(crate) tests: Vec<TestCols>,
    /// How many tests each scenario has, in plan order.
    pub(crate) tests_per_scenario: Vec<usize>,
    /// The plan's distinct test identities.
    pub(crate) identities: Vec<stpt_core::history::TestIdentity>,
}

impl PlanRows {
    pub(crate) fn new(new_run: &NewRun) -> Self {
        let mut scripts = BTreeMap::new();
        let mut file = |file: &ScriptFile| FileCols {
            file_path: file.file_path.clone(),
            file_name: file.file_name.clone(),
            script: file.script.as_ref().map(|text| {
                let hash = script_hash(text);
                scripts.entry(hash).or_insert_with(|| text.clone());
                hash
            }),
        };
        let master = file(&new_run.plan.master);
        let mut scenarios = Vec::with_capacity(new_run.plan.scenarios.len());
        let mut tests = Vec::with_capacity(new_run.plan.test_count());
        let mut tests_per_scenario = Vec::with_capacity(new_run.plan.scenarios.len());
        let mut identities = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, (scenario, aggregate)) in new_run
            .plan
            .scenarios
            .iter()
            .zip(&new_run.scenario_aggregates)
            .enumerate()
        {
            scenarios.push(ScenarioCols {
                seq: seq(index),
                file: file(&scenario.file),
                aggregate: *aggregate,
            });
            tests_per_scenario.push(scenario.tests.len());
            let scenario_file = FileRef {
                file_path: scenario.file.file_path.clone(),
                file_name: scenario.file.file_name.clone(),
            };
            for test in &scenario.tests {
                let identity = stpt_core::history::TestIdentity::new(
                    scenario_file.clone(),
                    FileRef {
                        file_path: test.file_path.clone(),
                        file_name: test.file_name.clone(),
                    },
                );
                let identity_key = identity.key().get();
                if seen.insert(identity_key) {
                    identities.push(identity);
                }
                tests.push(TestCols {
                    seq: seq(tests.len()),
                    scenario: index,
                    file_key: file_key(&test.file_path, &test.file_name),
                    identity_key,
                    file: file(test),
                });
            }
        }
        PlanRows {
            scripts,
            master,
            scenarios,
            tests,
            tests_per_scenario,
            identities,
        }
    }
}

/// A position in plan order as stored.
fn seq(index: usize) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

/// Ids returned with their plan position, put back in plan order and checked complete.
/// `(id, seq)` pairs from a JSON array of `[id, seq]` arrays.
pub(crate) fn id_pairs_from_json(text: &str) -> Result<Vec<(i64, i64)>> {
    serde_json::from_str(text).map_err(Error::backend)
}

/// `(id, hash)` pairs from a JSON array of `[id, hex of hash]` arrays.
pub(crate) fn script_ids_from_json(text: &str) -> Result<Vec<(i64, Vec<u8>)>> {
    let pairs: Vec<(i64, String)> = serde_json::from_str(text).map_err(Error::backend)?;
    pairs
        .into_iter()
        .map(|(id, hex)| {
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| {
                    hex.get(i..i + 2)
                        .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                        .ok_or_else(|| Error::backend(format!("unreadable script hash `{hex}`")))
                })
                .collect::<Result<Vec<u8>>>()?;
            Ok((id, bytes))
        })
        .collect()
}

/// A timestamp as the SQLite store writes it (RFC 3339, UTC).
fn text_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| Error::backend(format!("unreadable timestamp `{text}`: {error}")))
}

pub(crate) fn in_plan_order(
    mut rows: Vec<(i64, i64)>,
    expected: usize,
    what: &'static str,
) -> Result<Vec<i64>> {
    rows.sort_by_key(|(_, seq)| *seq);
    let in_order = rows
        .iter()
        .enumerate()
        .all(|(index, (_, s))| usize::try_from(*s).is_ok_and(|s| s == index));
    if rows.len() != expected || !in_order {
        return Err(Error::backend(RowError::InsertMismatch {
            what,
            expected,
            got: rows.len(),
        }));
    }
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}
