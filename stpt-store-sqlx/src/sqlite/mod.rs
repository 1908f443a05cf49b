//! The SQLite backend.

mod plain;
mod unit;
mod writer;

use chrono::{DateTime, Utc};
use sqlx::migrate::{Migration, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use stpt_core::{Error, MachineName, MachineRecord, Result};
use tokio::sync::OnceCell;

#[cfg(feature = "accounts")]
use crate::accounts::sql_account_store;
use crate::common::{Sql, bind_counts, sql_store, sql_store_tx};
use crate::delete::sql_deletes;
use crate::durations::sql_durations;
use crate::error::{RowError, SqlxResultExt};
use crate::history::sql_history;
use crate::known_identities::KnownIdentities;
use crate::machine_settings::sql_machine_settings;
use crate::rows::MachineRecordRow;
use writer::{ConnGuard, UnitGuard, Writer};

/// SQLite allows 32766 bind parameters a statement (since 3.32).
const MAX_BINDS: usize = 32_766;

/// How long a writer waits for another process's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// A [`stpt_core::Store`] in an SQLite file: the zero-setup default.
///
/// Tables are prefixed `stpt_`, and [`SqliteStore::migrate`] keeps its bookkeeping in
/// `stpt_migrations` (not sqlx's `_sqlx_migrations`), so the file can be shared with a host
/// application's tables.
///
/// Ongoing runs are held in memory and written by one writer connection with group commit;
/// another process may share the file (see the crate docs, *Design*).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    sql: Arc<Sql>,
    known_identities: Arc<KnownIdentities>,
    writer: Arc<OnceCell<Writer>>,
}

impl SqliteStore {
    /// A store on an existing pool. Call [`SqliteStore::migrate`] before first use. The pool
    /// should be opened with [`SqliteStore::connect_options`] (or equivalent settings).
    pub fn new(pool: SqlitePool) -> Self {
        SqliteStore {
            pool,
            sql: Arc::new(Sql::new("stpt_")),
            known_identities: Arc::default(),
            writer: Arc::default(),
        }
    }

    /// Opens the database file at `path`, creating it if missing. Does not migrate.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        // Writes are serialised anyway; a few connections serve concurrent reads, and with a
        // small page cache each the server's memory stays flat however long the history.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(Self::connect_options(path))
            .await
            .db()?;
        Ok(Self::new(pool))
    }

    /// The settings [`SqliteStore::open`] uses, to adjust and pass to a pool of your own:
    /// create the file if missing; WAL journal (readers never block the writer);
    /// `synchronous = FULL`, so an acknowledged event survives power loss, not only a crash
    /// of the process (`NORMAL` would be faster, and still safe against a process crash);
    /// a [`BUSY_TIMEOUT`] for writers of other processes; foreign keys enforced; a 512 KiB
    /// page cache per connection (events touch a handful of indexed pages, and the operating
    /// system caches the file anyway). Not `auto_vacuum`: setting it writes the file's header
    /// on every new connection, which the writer would take for another process's write
    /// ([`SqliteStore::migrate`] sets it once).
    pub fn connect_options(path: impl AsRef<Path>) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("cache_size", "-512")
    }

    /// The pool behind this store.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Writes a consistent copy of the whole database to a new file at `target`
    /// (`VACUUM INTO`: one read transaction, so writers go on meanwhile, and the copy is
    /// compact). Refuses a `target` that exists. Restore by stopping the server and putting
    /// the copy in place of the database file (and removing its `-wal` and `-shm` files).
    pub async fn backup_to(&self, target: impl AsRef<Path>) -> Result<()> {
        let target = target.as_ref();
        if target.exists() {
            return Err(Error::invalid(
                "backup",
                format!("{} exists: choose a new file", target.display()),
            ));
        }
        let target = target
            .to_str()
            .ok_or_else(|| Error::invalid("backup", "the backup path must be valid UTF-8"))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    /// Applies stpt's embedded migrations that are not applied yet, in one transaction, and
    /// records them in `stpt_migrations`. Idempotent. Fails if the file holds a migration this
    /// build does not know or one that changed since it was applied.
    ///
    /// First, a file not using incremental vacuum yet (`auto_vacuum = NONE`: a new file, or
    /// one made by an older stpt) is switched to it, so the space of deleted runs can be given
    /// back ([`SqliteStore::reclaim_free_pages`]). That takes a full `VACUUM`, instant on a new
    /// file; an older file is rewritten once (it needs as much free disk again, and about a
    /// second per 100 MB) before the store is used, and never again. A file set to `FULL` by
    /// its owner is left so (it gives space back at every commit).
    pub async fn migrate(&self) -> Result<()> {
        self.switch_to_incremental_vacuum().await?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.db()?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS stpt_migrations (\
                version INTEGER PRIMARY KEY, \
                description TEXT NOT NULL, \
                checksum BLOB NOT NULL, \
                installed_on TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .db()?;
        let applied: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT version, checksum FROM stpt_migrations ORDER BY version")
                .fetch_all(&mut *tx)
                .await
                .db()?;
        let ups: Vec<&'static Migration> = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        for (version, checksum) in &applied {
            match ups.iter().find(|m| m.version == *version) {
                None => {
                    return Err(Error::backend(RowError::MigrationUnknown {
                        version: *version,
                    }));
                }
                Some(known) if known.checksum.as_ref() != checksum.as_slice() => {
                    return Err(Error::backend(RowError::MigrationChanged {
                        version: *version,
                    }));
                }
                Some(_) => {}
            }
        }
        let pending: Vec<&'static Migration> = ups
            .into_iter()
            .filter(|m| !applied.iter().any(|(version, _)| *version == m.version))
            .collect();
        for migration in pending {
            tracing::info!(
                version = migration.version,
                description = %migration.description,
                "applying migration"
            );
            let sql: &'static str = migration.sql.as_ref();
            sqlx::Executor::execute(&mut *tx, sqlx::raw_sql(sql))
                .await
                .db()?;
            sqlx::query(
                "INSERT INTO stpt_migrations (version, description, checksum, installed_on) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(migration.version)
            .bind(migration.description.as_ref())
            .bind(migration.checksum.as_ref())
            .bind(ts(Utc::now()))
            .execute(&mut *tx)
            .await
            .db()?;
        }
        tx.commit().await.db()?;
        self.backfill_identities().await?;
        Ok(())
    }

    /// See [`SqliteStore::migrate`]. `VACUUM` cannot run in a transaction, so not in a
    /// migration: it runs here, on one connection of the pool.
    async fn switch_to_incremental_vacuum(&self) -> Result<()> {
        /// `PRAGMA auto_vacuum`'s answer for `NONE`.
        const NONE: i64 = 0;
        let mut conn = self.pool.acquire().await.db()?;
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&mut *conn)
            .await
            .db()?;
        if mode != NONE {
            return Ok(());
        }
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut *conn)
            .await
            .db()?;
        if pages > 1 {
            tracing::info!(
                pages,
                "switching the SQLite file to incremental vacuum: a one-time full VACUUM"
            );
        }
        sqlx::Executor::execute(
            &mut *conn,
            sqlx::raw_sql("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;"),
        )
        .await
        .db()?;
        Ok(())
    }

    /// Gives at most `max_pages` of the file's free pages (left by deleted runs) back to the
    /// file system (`PRAGMA incremental_vacuum`), and answers how many free pages remain.
    /// It is one short write through the store's writer, between events like any unit of
    /// work: call it repeatedly with a small `max_pages` (a few hundred pages, a few MB) so
    /// that ingestion never waits long. Frees nothing in a file whose `auto_vacuum` is not
    /// `INCREMENTAL` (see [`SqliteStore::migrate`]).
    pub async fn reclaim_free_pages(&self, max_pages: u32) -> Result<u64> {
        let mut units = self.writer().await?.begin().await?;
        let mut conn = units.connect(false).await?;
        conn.savepoint().await?;
        // 0 would mean every free page at once.
        let max_pages = max_pages.max(1);
        sqlx::query(&format!("PRAGMA incremental_vacuum({max_pages})"))
            .execute(&mut *conn)
            .await
            .db()?;
        let released = units.release(Some(&mut conn), false).await?;
        drop(conn);
        drop(units);
        released.wait().await?;
        self.free_pages().await
    }

    /// How many pages of the file are free (`PRAGMA freelist_count`): space deleted rows
    /// left, reused by later writes or given back by [`SqliteStore::reclaim_free_pages`].
    pub async fn free_pages(&self) -> Result<u64> {
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&self.pool)
            .await
            .db()?;
        Ok(u64::try_from(free).unwrap_or(0))
    }

    /// The store's writer, started on first use.
    async fn writer(&self) -> Result<&Writer> {
        self.writer
            .get_or_try_init(|| Writer::start(&self.pool, self.sql.prefix))
            .await
    }

    /// A unit that reads everything by query, for deletes: the savepoint is open from the
    /// start, and the machine's memory goes when it commits.
    async fn begin_tx(&self, machine: &MachineName) -> Result<SqliteTx> {
        let mut units = self.writer().await?.begin().await?;
        let conn = units.connect(false).await?;
        let mut tx = self.read_machine(conn, machine.key()).await?;
        tx.tx.savepoint().await?;
        tx.units = Some(units);
        Ok(tx)
    }

    /// A transaction for the duration histories' flush of machine `id`: a unit of the
    /// machine's, as every write goes through the one writer connection anyway. `None` if the
    /// machine is gone (deleted since its name was read).
    async fn begin_side_write(&self, id: i64, machine: &MachineName) -> Result<Option<SqliteTx>> {
        let tx = self.begin_tx(machine).await?;
        let exists = tx.machine.as_ref().is_some_and(|m| m.id.get() == id);
        Ok(exists.then_some(tx))
    }

    /// Reads the machine's row on the writer connection.
    async fn read_machine(&self, mut conn: ConnGuard, key: String) -> Result<SqliteTx> {
        let row: Option<MachineRecordRow> = sqlx::query_as(&self.sql.machine_by_key)
            .bind(&key)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
        Ok(SqliteTx {
            tx: conn,
            units: None,
            key,
            version: row.as_ref().map(|row| row.version),
            machine: row.map(MachineRecordRow::record),
            sql: Arc::clone(&self.sql),
            known_identities: Arc::clone(&self.known_identities),
            written_identities: Vec::new(),
        })
    }

    /// A test of an ongoing run this store remembers, located without reading the file: its
    /// machine, run and file never change once planned.
    async fn remembered_test(&self, id: stpt_core::TestId) -> Option<stpt_core::TestLocation> {
        let writer = self.writer.get()?;
        writer.locate(id).await
    }

    async fn read_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool.begin().await.db()
    }
}

/// Reads and writes by query on the writer connection.
pub(crate) struct SqliteTx {
    // Declared before `units`: the connection is let go first.
    tx: ConnGuard,
    /// The units lock, for a unit of its own (a delete); a [`unit::SqliteUnit`] keeps it.
    units: Option<UnitGuard>,
    /// The machine's name key.
    key: String,
    machine: Option<MachineRecord>,
    /// The machine row's version.
    version: Option<i64>,
    sql: Arc<Sql>,
    known_identities: Arc<KnownIdentities>,
    /// Identity keys this unit wrote: known committed once its commit is durable.
    written_identities: Vec<i64>,
}

impl SqliteTx {
    /// Commits with the group; the machine's memory, which may hold what this unit changed,
    /// goes.
    /// Commits a write beside the runs (duration histories): the machine's memory stays, as
    /// nothing it holds changed.
    async fn finish_side_write(self: Box<Self>) -> Result<()> {
        let SqliteTx { mut tx, units, .. } = *self;
        let Some(mut units) = units else {
            return Err(Error::invariant("a side write without the units lock"));
        };
        let released = units.release(Some(&mut tx), false).await?;
        drop(tx);
        drop(units);
        released.wait().await
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        let SqliteTx {
            mut tx,
            units,
            key,
            known_identities,
            written_identities,
            ..
        } = *self;
        let Some(mut units) = units else {
            return Err(Error::invariant("a delete without the units lock"));
        };
        units.units_mut().memories.remove(&key);
        let released = units.release(Some(&mut tx), false).await?;
        drop(tx);
        drop(units);
        released.wait().await?;
        known_identities.learn(&written_identities);
        Ok(())
    }
}

/// Timestamps are stored as fixed-width RFC 3339 UTC text with microseconds.
fn ts(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The fixed-width text form holds four-digit years.
const YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

sql_store!(store: SqliteStore, tx: SqliteTx, db: Sqlite, ts: ts, years: YEARS, max_binds: MAX_BINDS, json_rows: true);
sql_store_tx!(tx: SqliteTx);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Reads by query (loading a machine into memory, and every read of a unit that the
    /// memory cannot answer) search an index, never scan a table; the writes find their row
    /// by its key.
    #[tokio::test]
    async fn event_statements_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("plan.sqlite3"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let sql = &store.sql;
        for (name, statement) in [
            ("machine_by_key", &sql.machine_by_key),
            ("ongoing_runs", &sql.ongoing_runs),
            ("scenario_state", &sql.scenario_state),
            ("first_waiting_test", &sql.first_waiting_test),
            ("running_test", &sql.running_test),
            ("machine_test", &sql.machine_test),
            ("recorded_event", &sql.recorded_event),
            ("update_test", &sql.update_test),
            ("update_scenario", &sql.update_scenario),
            ("update_run", &sql.update_run),
            ("touch_machine", &sql.touch_machine),
            ("set_latest_run", &sql.set_latest_run),
            ("close_ongoing", &sql.close_ongoing),
            ("scenario_states", &sql.scenario_states),
            ("machine", &sql.machine),
            ("runs_page", &sql.runs_page),
            ("run_head", &sql.run_head),
            ("run_scenarios", &sql.run_scenarios),
            ("run_tests", &sql.run_tests),
            ("run_tests_json", &sql.run_tests_json),
            ("test_ids_json", &sql.test_ids_json),
            ("scenario_ids_json", &sql.scenario_ids_json),
            ("item_test", &sql.item_test),
            ("item_scenario", &sql.item_scenario),
            ("item_master", &sql.item_master),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {statement}"))
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
            let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
            assert!(!plan.is_empty(), "{name}: no plan");
            let expected = match name {
                "first_waiting_test" => "USING INDEX stpt_tests_by_file (run_id=? AND file_key=?)",
                // All of a run's tests: any index on `run_id` serves.
                "close_ongoing" | "run_tests_json" | "test_ids_json" => "(run_id=?)",
                "ongoing_runs" => "USING INDEX stpt_runs_unfinished (machine_id=?)",
                "update_test" | "update_scenario" | "update_run" | "touch_machine"
                | "set_latest_run" | "scenario_state" | "machine_test" | "running_test" => {
                    "USING INTEGER PRIMARY KEY (rowid=?)"
                }
                _ => "",
            };
            assert!(
                plan.iter().any(|step| step.contains(expected)),
                "{name} does not use {expected}: {plan:?}"
            );
            for step in &plan {
                assert!(
                    (!step.starts_with("SCAN") || step.starts_with("SCAN (subquery"))
                        && !step.contains("TEMP B-TREE"),
                    "{name} scans or sorts: {plan:?}"
                );
            }
        }
    }
}
#[cfg(feature = "accounts")]
sql_account_store!(store: SqliteStore, ts: ts);
sql_deletes!(store: SqliteStore);
sql_machine_settings!(store: SqliteStore, tx: SqliteTx, db: Sqlite);
sql_durations!(store: SqliteStore, db: Sqlite, ts: ts, json_rows: true);
sql_history!(store: SqliteStore, db: Sqlite, ts: ts, collate: "", json_rows: true);
