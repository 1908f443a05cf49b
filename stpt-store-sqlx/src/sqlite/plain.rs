//! The writes of plain test events, gathered per group: each test, scenario, run and machine
//! a group changed once (the last state wins), written at commit time in one statement per
//! table, however many events the group holds: statements of fixed text, the rows bound as JSON.
//!
//! Every value comes from the rules' own types (ids, statuses, counts, timestamps the store
//! formats itself); no text a client sent is ever written into the rows.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use stpt_core::rules::{Aggregate, RunWork, TestState};
use stpt_core::{ClockOffset, Status};

use super::ts;
use crate::rows::count_i64;

/// What the plain events of a group changed, by row id.
#[derive(Debug, Default)]
pub(crate) struct PendingWrites {
    /// Test id → its run and new state.
    tests: BTreeMap<i64, (i64, TestState)>,
    /// Scenario id → its run and new aggregate.
    scenarios: BTreeMap<i64, (i64, Aggregate)>,
    /// Run id → its machine, new aggregate and running test change
    /// ([`crate::rows::running_test_change`], the group's events composed).
    runs: BTreeMap<i64, (i64, Aggregate, Option<i64>)>,
    /// Machine id → last seen, the latest clock offset estimate (milliseconds), and how many
    /// events (each bumps the row's version).
    machines: BTreeMap<i64, (DateTime<Utc>, Option<i64>, i64)>,
}

impl PendingWrites {
    /// Adds one event's work. `work.closed` must be `None` (a bulk close is written by query,
    /// in order with what came before it).
    pub(crate) fn add(
        &mut self,
        machine_id: i64,
        seen_at: DateTime<Utc>,
        clock_offset: Option<ClockOffset>,
        work: &RunWork,
    ) {
        let run_id = work.run.id.get();
        for test in &work.tests {
            self.tests.insert(test.id.get(), (run_id, test.clone()));
        }
        for scenario in &work.scenarios {
            self.scenarios
                .insert(scenario.id.get(), (run_id, scenario.aggregate));
        }
        let change = crate::rows::running_test_change(work);
        let earlier = self.runs.get(&run_id).and_then(|run| run.2);
        self.runs
            .insert(run_id, (machine_id, work.run.aggregate, change.or(earlier)));
        let machine = self
            .machines
            .entry(machine_id)
            .or_insert((seen_at, None, 0));
        machine.0 = seen_at;
        machine.1 = clock_offset.map(ClockOffset::millis).or(machine.1);
        machine.2 += 1;
    }

    /// Whether nothing is gathered.
    pub(crate) fn is_empty(&self) -> bool {
        self.machines.is_empty()
    }

    /// Everything gathered, as the rows [`PlainStatements`] bind, and an empty gathering.
    pub(crate) fn take_rows(&mut self) -> PlainRows {
        let pending = std::mem::take(self);
        let mut json = String::from("{\"tests\":");
        json_array(&mut json, &pending.tests, |row, (id, (run_id, test))| {
            let _ = write!(
                row,
                "[{id},{run_id},\"{status}\",{start},{stop}]",
                status = test.status.as_str(),
                start = json_time(test.timestamp_start),
                stop = json_time(test.timestamp_stop),
            );
        });
        json.push_str(",\"scenarios\":");
        json_array(
            &mut json,
            &pending.scenarios,
            |row, (id, (run_id, aggregate))| {
                aggregate_row(row, *id, *run_id, aggregate);
                row.push(']');
            },
        );
        json.push_str(",\"runs\":");
        json_array(
            &mut json,
            &pending.runs,
            |row, (id, (machine_id, aggregate, running))| {
                aggregate_row(row, *id, *machine_id, aggregate);
                match running {
                    Some(id) => {
                        let _ = write!(row, ",{id}]");
                    }
                    None => row.push_str(",null]"),
                }
            },
        );
        json.push_str(",\"machines\":");
        json_array(
            &mut json,
            &pending.machines,
            |row, (id, (seen_at, offset, events))| {
                let _ = write!(
                    row,
                    "[{id},\"{seen}\",{events},{offset}]",
                    seen = ts(*seen_at),
                    offset = offset.map_or_else(|| "null".to_owned(), |ms| ms.to_string()),
                );
            },
        );
        json.push('}');
        PlainRows { json }
    }
}

/// What a group's plain events changed: one JSON object, the parameter `?1` of every
/// [`PlainStatements`] statement, with an array of rows per table (`tests`: `[id, run_id,
/// status, start, stop]`; `scenarios`: `[id, parent id, status, 8 counts, start, stop]`; `runs`
/// the same and the running test change ([`crate::rows::running_test_change`]); `machines`:
/// `[id, last_seen, events, clock offset in ms]`). Every value is a
/// number, a status name or a timestamp the store formatted: nothing needs escaping. One
/// parameter shared by every statement, as sqlx binds `?N` per statement of a script and
/// leaves one unbound when a statement skips lower numbers.
#[derive(Debug)]
pub(crate) struct PlainRows {
    json: String,
}

impl PlainRows {
    /// No rows: the statements then write nothing.
    pub(crate) fn none() -> Self {
        PlainRows {
            json: r#"{"tests":[],"scenarios":[],"runs":[],"machines":[]}"#.to_owned(),
        }
    }

    /// The rows, with the `data_version` a checked commit expects.
    pub(crate) fn checked(&self, data_version: i64) -> String {
        let mut json = self.json.clone();
        json.pop();
        let _ = write!(json, ",\"data_version\":{data_version}}}");
        json
    }

    /// The rows, as bound.
    pub(crate) fn json(&self) -> &str {
        &self.json
    }
}

/// The statements that write a group's [`PlainRows`], for one table prefix. Their text never
/// changes, so the writer connection compiles them once and keeps them (sqlx's statement
/// cache); a script with the values written into it was compiled anew for every group, which
/// cost most of a group's time on the CPU (about 0.8 ms of 1.2 ms for a group of 8 events).
#[derive(Debug)]
pub(crate) struct PlainStatements {
    /// The four updates, one per table, binding [`PlainRows`] as `?1`.
    pub(crate) write: String,
    /// [`Self::write`], then `COMMIT`.
    pub(crate) write_and_commit: String,
    /// `BEGIN IMMEDIATE`, then a check that `data_version` is still the one `?1` holds
    /// ([`PlainRows::checked`]; else the statements stop with an integer overflow, see
    /// [`STALE_CHECK`]), then [`Self::write_and_commit`].
    pub(crate) checked_commit: String,
}

/// Stops a script, by overflowing `abs()`, when `data_version` is not the one `?1` holds: how
/// a group's commit fails when another connection wrote to the file since the last group.
pub(crate) const STALE_CHECK: &str = "SELECT CASE WHEN data_version = ?1 ->> 'data_version' \
     THEN 0 \
     ELSE abs(-9223372036854775807 - 1) END FROM pragma_data_version; ";

impl PlainStatements {
    pub(crate) fn new(prefix: &str) -> Self {
        let counts: String = COUNT_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, column)| format!(", {column} = r.value ->> {}", i + 3))
            .collect();
        let aggregate = |table: &str, parent: &str, more: &str| {
            format!(
                "UPDATE {prefix}{table} SET status = r.value ->> 2{counts}, \
                 timestamp_start = r.value ->> 11, timestamp_stop = r.value ->> 12{more} \
                 FROM json_each(?1, '$.{table}') AS r \
                 WHERE {prefix}{table}.id = r.value ->> 0 AND {prefix}{table}.{parent} = r.value ->> 1; "
            )
        };
        let write = format!(
            "UPDATE {prefix}tests SET status = r.value ->> 2, timestamp_start = r.value ->> 3, \
             timestamp_stop = r.value ->> 4 FROM json_each(?1, '$.tests') AS r \
             WHERE {prefix}tests.id = r.value ->> 0 AND {prefix}tests.run_id = r.value ->> 1; \
             {scenarios}{runs}\
             UPDATE {prefix}machines SET last_seen = r.value ->> 1, \
             version = {prefix}machines.version + (r.value ->> 2), \
             clock_offset_ms = COALESCE(r.value ->> 3, {prefix}machines.clock_offset_ms) \
             FROM json_each(?1, '$.machines') AS r WHERE {prefix}machines.id = r.value ->> 0; ",
            scenarios = aggregate("scenarios", "run_id", ""),
            runs = aggregate(
                "runs",
                "machine_id",
                &format!(
                    ", running_test_id = \
                     NULLIF(COALESCE(r.value ->> 13, {prefix}runs.running_test_id), 0)"
                ),
            ),
        );
        let write_and_commit = format!("{write}COMMIT;");
        let checked_commit = format!("BEGIN IMMEDIATE; {STALE_CHECK}{write_and_commit}");
        PlainStatements {
            write,
            write_and_commit,
            checked_commit,
        }
    }
}

/// `[row, row, …]` into `out`.
fn json_array<K, V>(
    out: &mut String,
    rows: &BTreeMap<K, V>,
    mut row: impl FnMut(&mut String, (&K, &V)),
) {
    out.push('[');
    for (i, entry) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        row(out, entry);
    }
    out.push(']');
}

/// A scenario's or run's row: `[id, parent id, status, 8 counts, start, stop` (unclosed:
/// runs add a column).
fn aggregate_row(row: &mut String, id: i64, parent_id: i64, aggregate: &Aggregate) {
    let _ = write!(
        row,
        "[{id},{parent_id},\"{status}\"",
        status = aggregate.status().as_str()
    );
    for status in Status::ALL {
        let _ = write!(row, ",{}", count_i64(aggregate.counts.get(status)));
    }
    let _ = write!(
        row,
        ",{start},{stop}",
        start = json_time(aggregate.timestamp_start),
        stop = json_time(aggregate.timestamp_stop),
    );
}

/// The count columns, in `Status::ALL` order.
const COUNT_COLUMNS: [&str; 8] = [
    "n_waiting",
    "n_running",
    "n_passed",
    "n_warning",
    "n_failed",
    "n_error",
    "n_unknown",
    "n_cancelled",
];

fn json_time(time: Option<DateTime<Utc>>) -> String {
    time.map_or_else(|| "null".to_owned(), |time| format!("\"{}\"", ts(time)))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use stpt_core::rules::{RunState, ScenarioState};
    use stpt_core::{ClockOffset, RunId, ScenarioId, TestId};

    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 7, 0, second)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn rows_are_json_with_the_last_state_of_each_row() {
        let mut pending = PendingWrites::default();
        assert!(pending.is_empty());
        let mut test = TestState {
            id: TestId::from(7),
            scenario_id: ScenarioId::from(3),
            file_path: "dir".to_owned(),
            file_name: "a \"quoted\" name.py".to_owned(),
            status: Status::Running,
            timestamp_start: Some(at(1)),
            timestamp_stop: None,
            failure: None,
        };
        let mut aggregate = Aggregate::planned(2);
        aggregate.shift(Status::Waiting, Status::Running, 1, at(1));
        let mut work = RunWork::new(
            RunState {
                id: RunId::from(2),
                aggregate,
            },
            vec![ScenarioState {
                id: ScenarioId::from(3),
                aggregate,
            }],
        );
        work.tests.push(test.clone());
        pending.add(1, at(1), Some(ClockOffset::from_millis(-5)), &work);
        test.status = Status::Passed;
        test.timestamp_stop = Some(at(2));
        work.tests = vec![test];
        pending.add(1, at(2), None, &work);
        let rows = pending.take_rows();
        assert!(pending.is_empty());
        let json: serde_json::Value =
            serde_json::from_str(&rows.checked(42)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json["tests"],
            serde_json::json!([[7, 2, "passed", ts(at(1)), ts(at(2))]])
        );
        assert_eq!(json["scenarios"][0][0], 3);
        assert_eq!(
            (
                &json["runs"][0][0],
                &json["runs"][0][1],
                &json["runs"][0][2]
            ),
            (
                &serde_json::json!(2),
                &serde_json::json!(1),
                &serde_json::json!("running")
            )
        );
        assert_eq!(
            json["runs"][0][13], 7,
            "the first event's running test, which the second left running"
        );
        // A group in which the run's running test stops clears it.
        aggregate.shift(Status::Running, Status::Passed, 1, at(2));
        work.run.aggregate = aggregate;
        pending.add(1, at(3), None, &work);
        let later: serde_json::Value =
            serde_json::from_str(pending.take_rows().json()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(later["runs"][0][13], 0);
        assert_eq!(
            json["machines"],
            serde_json::json!([[1, ts(at(2)), 2, -5]]),
            "two events, the latest offset kept"
        );
        assert_eq!(json["data_version"], 42);
        let none: serde_json::Value =
            serde_json::from_str(PlainRows::none().json()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none["tests"], serde_json::json!([]));
    }
}
