//! Commits of plain test events, several machines' to one statement: events of different
//! machines that arrive while a statement runs share the next one, so the database plans,
//! executes and flushes once for all of them (group commit).
//!
//! Each event carries the version of the machine row its reads belong to. The statement
//! applies an event only where that version is still current, and bumps it; an event whose
//! machine moved on writes nothing and is answered [`stpt_core::Error::Stale`].

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool};
use stpt_core::rules::RunWork;
use stpt_core::{Error, Result, Status};
use tokio::sync::{mpsc, oneshot};

use crate::rows::count_i64;

/// Events one statement carries at most.
const MAX_BATCH: usize = 64;

/// One test event's writes: one run's changed tests and scenarios, the run, the machine's
/// last-seen time, guarded by the machine row's version.
#[derive(Debug)]
pub(crate) struct FastWrite {
    pub(crate) machine_id: i64,
    pub(crate) version: i64,
    pub(crate) seen_at: DateTime<Utc>,
    pub(crate) clock_offset: Option<stpt_core::ClockOffset>,
    pub(crate) work: RunWork,
}

#[derive(Debug)]
struct Job {
    write: FastWrite,
    done: oneshot::Sender<Result<()>>,
}

/// The queue in front of the writer tasks.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task on the current runtime. It ends when the writer is dropped.
    ///
    /// One statement is in flight at a time: events queue meanwhile and make the next batch.
    /// (Two writers measured no faster: each batch was half the size.)
    pub(crate) fn start(pool: PgPool) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(pool, queue));
        Writer { jobs }
    }

    /// Applies `write` if its version is current: `Stale` if not, having written nothing.
    pub(crate) async fn write(&self, write: FastWrite) -> Result<()> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { write, done })
            .map_err(|_| Error::backend("the PostgreSQL writer stopped"))?;
        answer
            .await
            .map_err(|_| Error::backend("the PostgreSQL writer stopped"))?
    }
}

async fn write_batches(pool: PgPool, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut connection = None;
    loop {
        let received = queue.recv_many(&mut batch, MAX_BATCH).await;
        if received == 0 {
            return;
        }
        let outcome = match writer_connection(&pool, &mut connection).await {
            Ok(conn) => execute(conn, &batch).await,
            Err(error) => Err(error),
        };
        if matches!(&outcome, Err(error) if !matches!(error, sqlx::Error::Database(_))) {
            // Perhaps the connection broke: the next batch takes a new one.
            connection = None;
        }
        for job in batch.drain(..) {
            let answer = match &outcome {
                Ok(applied) if applied.contains(&job.write.machine_id) => Ok(()),
                Ok(_) => Err(Error::Stale {
                    message: format!("machine {} changed since it was read", job.write.machine_id),
                }),
                // The statement failed as a whole, so nothing of it was written: each event is
                // applied again, on its own and under its machine's lock.
                Err(sqlx::Error::Database(error)) => Err(Error::Stale {
                    message: format!("a combined commit failed: {error}"),
                }),
                Err(error) if crate::error::is_unavailable(error) => Err(Error::Unavailable {
                    message: format!("combined commit: {error}"),
                }),
                Err(error) => Err(Error::backend(format!("combined commit: {error}"))),
            };
            // The caller may have given up waiting; nothing to do then.
            let _ = job.done.send(answer);
        }
    }
}

/// The writer's own connection, opened on first use with the pool's settings but outside it
/// (a small pool is never starved). Its statement is always planned the same way (arrays of
/// any length, one row per event), so it keeps the generic plan instead of planning every
/// execution anew.
async fn writer_connection<'c>(
    pool: &PgPool,
    connection: &'c mut Option<PgConnection>,
) -> Result<&'c mut PgConnection, sqlx::Error> {
    if connection.is_none() {
        // Bounded like the pool's acquire: a PostgreSQL that does not answer is unavailable.
        let options = pool.connect_options();
        let connecting = PgConnection::connect_with(&options);
        let mut fresh = tokio::time::timeout(super::ACQUIRE_TIMEOUT, connecting)
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        sqlx::query("SET plan_cache_mode = force_generic_plan")
            .execute(&mut fresh)
            .await?;
        *connection = Some(fresh);
    }
    match connection {
        Some(conn) => Ok(conn),
        None => Err(sqlx::Error::PoolClosed),
    }
}

/// Column arrays of the aggregates (a run's or scenarios'), one entry per row.
#[derive(Default)]
struct Aggregates {
    status: Vec<&'static str>,
    counts: [Vec<i64>; 8],
    timestamp_start: Vec<Option<DateTime<Utc>>>,
    timestamp_stop: Vec<Option<DateTime<Utc>>>,
}

impl Aggregates {
    fn push(&mut self, aggregate: &stpt_core::rules::Aggregate) {
        self.status.push(aggregate.status().as_str());
        for (column, status) in self.counts.iter_mut().zip(Status::ALL) {
            column.push(count_i64(aggregate.counts.get(status)));
        }
        self.timestamp_start.push(aggregate.timestamp_start);
        self.timestamp_stop.push(aggregate.timestamp_stop);
    }
}

/// Runs one statement for `batch`; answers the machines whose events were applied.
async fn execute(conn: &mut PgConnection, batch: &[Job]) -> Result<HashSet<i64>, sqlx::Error> {
    let mut machine_ids = Vec::with_capacity(batch.len());
    let mut versions = Vec::with_capacity(batch.len());
    let mut seen_at = Vec::with_capacity(batch.len());
    let mut clock_offsets = Vec::with_capacity(batch.len());
    let mut run_ids = Vec::with_capacity(batch.len());
    let mut running_test_ids = Vec::with_capacity(batch.len());
    let mut test_counts = Vec::with_capacity(batch.len());
    let mut scenario_counts = Vec::with_capacity(batch.len());
    let mut runs = Aggregates::default();
    let mut scenario_machines = Vec::new();
    let mut scenario_ids = Vec::new();
    let mut scenarios = Aggregates::default();
    let mut test_machines = Vec::new();
    let mut test_ids = Vec::new();
    let mut test_status = Vec::new();
    let mut test_start = Vec::new();
    let mut test_stop = Vec::new();
    for job in batch {
        let FastWrite {
            machine_id,
            version,
            seen_at: seen,
            clock_offset,
            work,
        } = &job.write;
        clock_offsets.push(clock_offset.map(stpt_core::ClockOffset::millis));
        machine_ids.push(*machine_id);
        versions.push(*version);
        seen_at.push(*seen);
        run_ids.push(work.run.id.get());
        running_test_ids.push(crate::rows::running_test_change(work));
        test_counts.push(i64::try_from(work.tests.len()).unwrap_or(i64::MAX));
        scenario_counts.push(i64::try_from(work.scenarios.len()).unwrap_or(i64::MAX));
        runs.push(&work.run.aggregate);
        for scenario in &work.scenarios {
            scenario_machines.push(*machine_id);
            scenario_ids.push(scenario.id.get());
            scenarios.push(&scenario.aggregate);
        }
        for test in &work.tests {
            test_machines.push(*machine_id);
            test_ids.push(test.id.get());
            test_status.push(test.status.as_str());
            test_start.push(test.timestamp_start);
            test_stop.push(test.timestamp_stop);
        }
    }
    let [r0, r1, r2, r3, r4, r5, r6, r7] = runs.counts;
    let [s0, s1, s2, s3, s4, s5, s6, s7] = scenarios.counts;
    let applied: Vec<(i64, i64)> = sqlx::query_as(STATEMENT)
        .bind(machine_ids)
        .bind(versions)
        .bind(seen_at)
        .bind(run_ids)
        .bind(test_counts)
        .bind(scenario_counts)
        .bind(runs.status)
        .bind(r0)
        .bind(r1)
        .bind(r2)
        .bind(r3)
        .bind(r4)
        .bind(r5)
        .bind(r6)
        .bind(r7)
        .bind(runs.timestamp_start)
        .bind(runs.timestamp_stop)
        .bind(scenario_machines)
        .bind(scenario_ids)
        .bind(scenarios.status)
        .bind(s0)
        .bind(s1)
        .bind(s2)
        .bind(s3)
        .bind(s4)
        .bind(s5)
        .bind(s6)
        .bind(s7)
        .bind(scenarios.timestamp_start)
        .bind(scenarios.timestamp_stop)
        .bind(test_machines)
        .bind(test_ids)
        .bind(test_status)
        .bind(test_start)
        .bind(test_stop)
        .bind(clock_offsets)
        .bind(running_test_ids)
        .fetch_all(conn)
        .await?;
    Ok(applied.into_iter().map(|(machine, _)| machine).collect())
}

/// The combined commit. `g` holds one row per event (its machine, the version it read, the
/// run's new aggregate); `m` bumps the versions that are still current, and every other
/// write joins `m`, so an outdated event writes nothing. The final check turns a missing row
/// into an error, which undoes the whole statement.
const STATEMENT: &str = "\
WITH g AS (
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::timestamptz[], $4::int8[], $5::int8[],
        $6::int8[], $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[],
        $13::int8[], $14::int8[], $15::int8[], $16::timestamptz[], $17::timestamptz[],
        $36::int8[], $37::int8[])
    AS g(machine_id, version, seen_at, run_id, n_tests, n_scenarios, status, n_waiting,
        n_running, n_passed, n_warning, n_failed, n_error, n_unknown, n_cancelled,
        timestamp_start, timestamp_stop, clock_offset_ms, running_test_id)
),
m AS (
    UPDATE stpt.machines x SET version = x.version + 1, last_seen = g.seen_at,
        clock_offset_ms = COALESCE(g.clock_offset_ms, x.clock_offset_ms)
    FROM g WHERE x.id = g.machine_id AND x.version = g.version
    RETURNING x.id
),
r AS (
    UPDATE stpt.runs x SET status = g.status, n_waiting = g.n_waiting,
        n_running = g.n_running, n_passed = g.n_passed, n_warning = g.n_warning,
        n_failed = g.n_failed, n_error = g.n_error, n_unknown = g.n_unknown,
        n_cancelled = g.n_cancelled, timestamp_start = g.timestamp_start,
        timestamp_stop = g.timestamp_stop,
        running_test_id = NULLIF(COALESCE(g.running_test_id, x.running_test_id), 0)
    FROM g JOIN m ON m.id = g.machine_id
    WHERE x.id = g.run_id AND x.machine_id = g.machine_id
    RETURNING g.machine_id
),
s AS (
    UPDATE stpt.scenarios x SET status = u.status, n_waiting = u.n_waiting,
        n_running = u.n_running, n_passed = u.n_passed, n_warning = u.n_warning,
        n_failed = u.n_failed, n_error = u.n_error, n_unknown = u.n_unknown,
        n_cancelled = u.n_cancelled, timestamp_start = u.timestamp_start,
        timestamp_stop = u.timestamp_stop
    FROM unnest($18::int8[], $19::int8[], $20::text[], $21::int8[], $22::int8[], $23::int8[],
        $24::int8[], $25::int8[], $26::int8[], $27::int8[], $28::int8[], $29::timestamptz[],
        $30::timestamptz[])
        AS u(machine_id, id, status, n_waiting, n_running, n_passed, n_warning, n_failed,
            n_error, n_unknown, n_cancelled, timestamp_start, timestamp_stop)
        JOIN g ON g.machine_id = u.machine_id
        JOIN m ON m.id = u.machine_id
    WHERE x.id = u.id AND x.run_id = g.run_id
    RETURNING u.machine_id
),
t AS (
    UPDATE stpt.tests x SET status = u.status, timestamp_start = u.timestamp_start,
        timestamp_stop = u.timestamp_stop
    FROM unnest($31::int8[], $32::int8[], $33::text[], $34::timestamptz[], $35::timestamptz[])
        AS u(machine_id, id, status, timestamp_start, timestamp_stop)
        JOIN g ON g.machine_id = u.machine_id
        JOIN m ON m.id = u.machine_id
    WHERE x.id = u.id AND x.run_id = g.run_id
    RETURNING u.machine_id
)
SELECT g.machine_id,
    CAST(CASE
        WHEN (SELECT count(*) FROM r WHERE r.machine_id = g.machine_id) = 1
            AND (SELECT count(*) FROM s WHERE s.machine_id = g.machine_id) = g.n_scenarios
            AND (SELECT count(*) FROM t WHERE t.machine_id = g.machine_id) = g.n_tests
        THEN '1'
        ELSE 'stpt: a remembered row of machine ' || g.machine_id || ' is not stored'
    END AS int8)
FROM g JOIN m ON m.id = g.machine_id";
