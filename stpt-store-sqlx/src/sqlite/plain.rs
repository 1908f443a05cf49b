//! The writes of plain test events, gathered per group: each test, scenario, run and machine
//! a group changed once (the last state wins), written at commit time in one statement per
//! table, however many events the group holds.
//!
//! Every value comes from the rules' own types (ids, statuses, counts, timestamps the store
//! formats itself); no text a client sent is ever written into the SQL.

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
    /// Run id → its machine and new aggregate.
    runs: BTreeMap<i64, (i64, Aggregate)>,
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
        self.runs.insert(run_id, (machine_id, work.run.aggregate));
        let machine = self
            .machines
            .entry(machine_id)
            .or_insert((seen_at, None, 0));
        machine.0 = seen_at;
        machine.1 = clock_offset.map(ClockOffset::millis).or(machine.1);
        machine.2 += 1;
    }

    /// The statements that write everything gathered, and an empty gathering.
    pub(crate) fn take_sql(&mut self, prefix: &str) -> String {
        let pending = std::mem::take(self);
        let mut sql = String::new();
        if !pending.tests.is_empty() {
            let _ = write!(
                sql,
                "UPDATE {prefix}tests SET status = v.column3, timestamp_start = v.column4, \
                 timestamp_stop = v.column5 FROM (VALUES "
            );
            for (i, (id, (run_id, test))) in pending.tests.iter().enumerate() {
                let _ = write!(
                    sql,
                    "{comma}({id}, {run_id}, '{status}', {start}, {stop})",
                    comma = if i == 0 { "" } else { ", " },
                    status = test.status.as_str(),
                    start = time(test.timestamp_start),
                    stop = time(test.timestamp_stop),
                );
            }
            let _ = write!(
                sql,
                ") AS v WHERE {prefix}tests.id = v.column1 AND {prefix}tests.run_id = v.column2; "
            );
        }
        push_aggregates(&mut sql, prefix, "scenarios", "run_id", &pending.scenarios);
        push_aggregates(&mut sql, prefix, "runs", "machine_id", &pending.runs);
        if !pending.machines.is_empty() {
            let _ = write!(
                sql,
                "UPDATE {prefix}machines SET last_seen = v.column2, \
                 version = {prefix}machines.version + v.column3, \
                 clock_offset_ms = COALESCE(v.column4, {prefix}machines.clock_offset_ms) \
                 FROM (VALUES "
            );
            for (i, (id, (seen_at, offset, events))) in pending.machines.iter().enumerate() {
                let _ = write!(
                    sql,
                    "{comma}({id}, '{seen}', {events}, {offset})",
                    comma = if i == 0 { "" } else { ", " },
                    seen = ts(*seen_at),
                    offset = offset.map_or_else(|| "NULL".to_owned(), |ms| ms.to_string()),
                );
            }
            let _ = write!(sql, ") AS v WHERE {prefix}machines.id = v.column1; ");
        }
        sql
    }
}

/// One statement for every changed row of an aggregate table (`scenarios` or `runs`), each
/// row also checked against its parent (`run_id` or `machine_id`).
fn push_aggregates(
    sql: &mut String,
    prefix: &str,
    table: &str,
    parent: &str,
    rows: &BTreeMap<i64, (i64, Aggregate)>,
) {
    if rows.is_empty() {
        return;
    }
    let _ = write!(sql, "UPDATE {prefix}{table} SET status = v.column3");
    for (i, column) in COUNT_COLUMNS.iter().enumerate() {
        let _ = write!(sql, ", {column} = v.column{}", i + 4);
    }
    let _ = write!(
        sql,
        ", timestamp_start = v.column12, timestamp_stop = v.column13 FROM (VALUES "
    );
    for (i, (id, (parent_id, aggregate))) in rows.iter().enumerate() {
        let _ = write!(
            sql,
            "{comma}({id}, {parent_id}, '{status}'",
            comma = if i == 0 { "" } else { ", " },
            status = aggregate.status().as_str()
        );
        for status in Status::ALL {
            let _ = write!(sql, ", {}", count_i64(aggregate.counts.get(status)));
        }
        let _ = write!(
            sql,
            ", {start}, {stop})",
            start = time(aggregate.timestamp_start),
            stop = time(aggregate.timestamp_stop),
        );
    }
    let _ = write!(
        sql,
        ") AS v WHERE {prefix}{table}.id = v.column1 AND {prefix}{table}.{parent} = v.column2; "
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

fn time(time: Option<DateTime<Utc>>) -> String {
    time.map_or_else(|| "NULL".to_owned(), |time| format!("'{}'", ts(time)))
}
