//! The PostgreSQL backend.

mod memory;
mod unit;
mod writer;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use stpt_core::{MachineName, MachineRecord, Result};

#[cfg(feature = "accounts")]
use crate::accounts::sql_account_store;
use crate::common::{Sql, bind_counts, sql_store, sql_store_tx};
use crate::delete::sql_deletes;
use crate::durations::sql_durations;
use crate::error::SqlxResultExt;
use crate::history::sql_history;
use crate::known_identities::KnownIdentities;
use crate::machine_settings::sql_machine_settings;
use crate::rows::MachineRecordRow;
use writer::Writer;

/// The schema holding every stpt table and stpt's migration bookkeeping.
pub const SCHEMA: &str = "stpt";

/// First key of stpt's transaction-level advisory locks (`'STPT'`), so they never meet a host
/// application's own advisory locks on the same database.
const LOCK_CLASS: i32 = 0x5354_5054;

/// Second key of the lock duration flushes take turns on (migrations take 0, machines the
/// hash of their key: a machine whose key hashes to this only shares turns with the flushes).
const FLUSH_LOCK_KEY: i32 = 1;

/// The longest [`PgStore::connect`]'s pool (and the writer's own connection) waits for a
/// connection: a short outage (a restart) is ridden out, a longer one is answered.
pub(crate) const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// PostgreSQL allows 65535 bind parameters a statement.
const MAX_BINDS: usize = 65_535;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// A [`stpt_core::Store`] on PostgreSQL.
///
/// Every table lives in schema [`SCHEMA`] (`stpt`), and so does the bookkeeping of
/// [`PgStore::migrate`], so stpt can share a database with a host application that has its own
/// sqlx migrations. Units of work on one machine are serialised by a transaction-level
/// advisory lock on the machine's name key; units on different machines run in parallel.
///
/// Each store remembers the ongoing runs of the machines it writes to, with the version of
/// each machine's row. An event on a remembered machine reads nothing from the database, and
/// its writes are one statement, shared with other machines' events that arrive meanwhile;
/// the statement applies only if the machine's version is still the one remembered. Any
/// number of stores (server instances) can share one database: when another wrote first, the
/// event is applied again under the machine's lock.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    sql: Arc<Sql>,
    known_identities: Arc<KnownIdentities>,
    memories: Arc<Memories>,
    writer: Arc<OnceLock<Writer>>,
}

/// One slot per machine name key: its memory, and the in-process lock of its units.
type MemorySlot = Arc<tokio::sync::Mutex<memory::Slot>>;

#[derive(Debug, Default)]
struct Memories(Mutex<Slots>);

#[derive(Debug, Default)]
struct Slots {
    by_key: HashMap<String, MemorySlot>,
    /// Slots kept after the last clean-up: the next one runs when there are twice as many.
    kept: usize,
}

impl Memories {
    fn slot(&self, key: String) -> MemorySlot {
        let mut slots = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slots.by_key.len() >= (2 * slots.kept).max(64) {
            // Events naming machines that do not exist leave empty slots: drop those no unit
            // holds, so their number stays bounded.
            slots.by_key.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot.try_lock().map_or(true, |slot| {
                        slot.memory.is_some() || slot.last_written.is_some()
                    })
            });
            slots.kept = slots.by_key.len();
        }
        Arc::clone(slots.by_key.entry(key).or_default())
    }
}

impl PgStore {
    /// A store on an existing pool. Call [`PgStore::migrate`] before first use.
    pub fn new(pool: PgPool) -> Self {
        PgStore {
            pool,
            sql: Arc::new(Sql::new("stpt.")),
            known_identities: Arc::default(),
            memories: Arc::default(),
            writer: Arc::default(),
        }
    }

    /// Connects a pool to `url` (e.g. `postgres://user@host/db`). Does not migrate.
    ///
    /// A request waits at most 5 s for a connection: while PostgreSQL is
    /// down, callers get [`stpt_core::Error::Unavailable`] in bounded time instead of
    /// waiting for it to come back.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .db()?;
        Ok(Self::new(pool))
    }

    /// The pool behind this store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates schema `stpt` if needed and applies stpt's embedded migrations that are not
    /// applied yet. Idempotent; safe to run from several instances at once.
    ///
    /// sqlx's migrator keeps its bookkeeping table `_sqlx_migrations` in the connection's
    /// current schema, so this runs it on a connection of its own whose `search_path` is
    /// `stpt`: our bookkeeping is `stpt._sqlx_migrations`, and a host application's
    /// `_sqlx_migrations` (in its own schema) is never touched.
    pub async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await.db()?.detach();
        let result = async {
            // Instances starting at once: one creates the schema, the others wait. Released
            // when the connection closes.
            sqlx::query("SELECT pg_advisory_lock($1, 0)")
                .bind(LOCK_CLASS)
                .execute(&mut conn)
                .await
                .db()?;
            sqlx::query("CREATE SCHEMA IF NOT EXISTS stpt")
                .execute(&mut conn)
                .await
                .db()?;
            sqlx::query("SET search_path TO stpt")
                .execute(&mut conn)
                .await
                .db()?;
            // `run_direct` is what `run` calls (with sqlx's own migration lock); called
            // directly, this future stays `Send` (sqlx's "Acquire is not general enough").
            MIGRATOR
                .run_direct(&mut conn)
                .await
                .map_err(stpt_core::Error::backend)
        }
        .await;
        // The connection carries our search_path: close it rather than return it to the pool.
        if let Err(error) = sqlx::Connection::close(conn).await {
            tracing::debug!(%error, "closing the migration connection failed");
        }
        result?;
        self.backfill_identities().await?;
        Ok(())
    }

    async fn begin_tx(&self, machine: &MachineName) -> Result<PgTx> {
        let key = machine.key();
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(&key)
            .execute(&mut *tx)
            .await
            .db()?;
        // The row lock holds off the combined commits of other instances (which skip the
        // advisory lock) until this unit ends; they then find the version moved on.
        let row: Option<MachineRecordRow> = sqlx::query_as(&self.sql.machine_by_key_locked)
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        Ok(PgTx {
            tx,
            version: row.as_ref().map(|row| row.version),
            machine: row.map(MachineRecordRow::record),
            sql: Arc::clone(&self.sql),
            known_identities: Arc::clone(&self.known_identities),
            written_identities: Vec::new(),
        })
    }

    /// A transaction for the duration histories' flush of machine `id`. Flushes read and
    /// rewrite histories every machine shares (a test's history everywhere), so they take
    /// turns on a lock of their own, across instances. They leave the machine's lock alone,
    /// since holding its row for update would stall the writer's combined commit, and with it
    /// every machine's events, for as long as the flush runs; a key-share lock on the row
    /// holds off only its deletion (whose last statement removes the histories). `None` if
    /// the machine is gone.
    async fn begin_side_write(&self, id: i64, _machine: &MachineName) -> Result<Option<PgTx>> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(FLUSH_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .db()?;
        let exists: Option<i32> = sqlx::query_scalar(&format!(
            "SELECT 1 FROM {}machines WHERE id = $1 FOR KEY SHARE",
            self.sql.prefix
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        Ok(exists.map(|_| PgTx {
            tx,
            version: None,
            machine: None,
            sql: Arc::clone(&self.sql),
            known_identities: Arc::clone(&self.known_identities),
            written_identities: Vec::new(),
        }))
    }

    async fn read_tx(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .db()?;
        Ok(tx)
    }
}

/// A transaction holding a machine's advisory lock.
pub(crate) struct PgTx {
    tx: Transaction<'static, Postgres>,
    machine: Option<MachineRecord>,
    /// The machine row's version, read under the lock.
    version: Option<i64>,
    sql: Arc<Sql>,
    known_identities: Arc<KnownIdentities>,
    /// Identity keys this unit wrote: known committed once its commit is durable.
    written_identities: Vec<i64>,
}

impl PgStore {
    /// Tests are located by query: the memories are per machine, and a test id does not say
    /// which.
    async fn remembered_test(&self, _id: stpt_core::TestId) -> Option<stpt_core::TestLocation> {
        None
    }
}

impl PgTx {
    /// Commits the unit's transaction.
    async fn finish(self: Box<Self>) -> Result<()> {
        self.commit_unit().await
    }

    /// Commits the unit's transaction; then the identities it wrote are known committed.
    async fn commit_unit(self) -> Result<()> {
        let PgTx {
            tx,
            known_identities,
            written_identities,
            ..
        } = self;
        tx.commit().await.db()?;
        known_identities.learn(&written_identities);
        Ok(())
    }

    /// Commits a write beside the runs (duration histories).
    async fn finish_side_write(self: Box<Self>) -> Result<()> {
        self.finish().await
    }
}

fn ts(time: DateTime<Utc>) -> DateTime<Utc> {
    time
}

/// `TIMESTAMPTZ` holds 4713 BC to 294276 AD.
const YEARS: std::ops::RangeInclusive<i32> = -4712..=294_275;

sql_store!(store: PgStore, tx: PgTx, db: Postgres, ts: ts, years: YEARS, max_binds: MAX_BINDS, json_rows: false);
// Reads by query, for units on machines that other instances write to as well.
sql_store_tx!(tx: PgTx);
#[cfg(feature = "accounts")]
sql_account_store!(store: PgStore, ts: ts);
sql_deletes!(store: PgStore);
sql_machine_settings!(store: PgStore, tx: PgTx, db: Postgres);
sql_durations!(store: PgStore, db: Postgres, ts: ts, json_rows: false);
sql_history!(store: PgStore, db: Postgres, ts: ts, collate: " COLLATE \"C\"", json_rows: false);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use stpt_testkit::{TempDatabase, postgres_url};

    /// A machine that instances write to in turn is read by query: those reads must use an
    /// index, never scan the run (the status indexes were trimmed for heap-only updates).
    #[tokio::test]
    async fn reads_by_query_use_indexes() {
        let Some(url) = postgres_url() else { return };
        let db = TempDatabase::create(&url).await;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(db.options.clone())
            .await
            .unwrap();
        let store = PgStore::new(pool.clone());
        store.migrate().await.unwrap();
        // Tables this small would be scanned whatever their indexes; say which index serves.
        sqlx::query("SET enable_seqscan = off")
            .execute(&pool)
            .await
            .unwrap();
        let sql = &store.sql;
        for (name, (statement, arguments, index)) in [
            (&sql.first_waiting_test, "1, 1, 'x', 'y'", "tests_by_file"),
            (&sql.running_test, "1", "tests_pkey"),
            (&sql.ongoing_runs, "1", "runs_unfinished"),
            (&sql.machine_by_key_locked, "'x'", "machines_name_key_key"),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::raw_sql(&format!("PREPARE statement_{name} AS {statement}"))
                .execute(&pool)
                .await
                .unwrap();
            let rows = sqlx::raw_sql(&format!("EXPLAIN EXECUTE statement_{name}({arguments})"))
                .fetch_all(&pool)
                .await
                .unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, 0))
                .collect();
            assert!(
                plan.iter().any(|line| line.contains(index)),
                "{statement}\ndoes not use {index}:\n{}",
                plan.join("\n")
            );
        }
    }
}
