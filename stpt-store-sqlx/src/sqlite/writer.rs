//! The SQLite writer: one connection that every write of a store goes through, group commit
//! on it, and the memory of ongoing runs that lets most events skip the connection entirely.
//!
//! **Two locks, always taken in this order.** The *units* lock (held by a unit of work for its
//! whole life) orders this store's units and guards the memory and the *buffer*. The
//! *connection* lock guards the writer connection and its open transaction (the *group*).
//!
//! **Plain events** (a test start or stop on a remembered machine) read the memory, add their
//! writes to the buffer and their answer to the buffered units, update the memory, and
//! let the next unit in: they never touch the connection.
//!
//! **Everything else** (a plan, a machine not remembered yet, an event id to record, a
//! delete) takes the connection as well: it opens the group if none is open
//! (`BEGIN IMMEDIATE`, which takes SQLite's write lock for the file), runs the buffered
//! statements, then reads and writes by query inside a savepoint of its own, and releases it
//! into the group. A unit dropped with its savepoint open is rolled back to it: it leaves no
//! trace and the group goes on.
//!
//! **The flusher task** commits: it takes the buffer (briefly holding the units lock, so units
//! go on meanwhile with the memory already ahead of the file), opens the group if needed, and
//! runs the buffered statements and `COMMIT` in one call: one WAL flush
//! (`synchronous = FULL`) for every unit in the group, each answered only then. It is asked
//! to flush when no unit holds or waits for the units lock, when the buffer holds
//! [`MAX_GROUP`] units, or when a batch waits for its events.
//!
//! **Staleness.** The memory is trusted while no other connection wrote to the file. SQLite's
//! `PRAGMA data_version` changes exactly when another connection (another process, or another
//! connection of this one) committed; it is read whenever a group opens, under the write lock.
//! If it moved, every memory goes, and the units that were answered from it and not yet
//! written fail with [`Error::Stale`]: the tracker applies them again from the file. A failed
//! commit voids the memory the same way, since units after it built on what it would have
//! written.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use stpt_core::{Durability, Error, Result};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot};

use chrono::{DateTime, Utc};
use stpt_core::rules::RunWork;

use super::plain::{PendingWrites, PlainRows, PlainStatements};
use crate::error::SqlxResultExt;
use crate::memory::MachineMemory;

/// Units one group carries at most: past it, the flusher is asked to commit even while units
/// keep coming.
pub(crate) const MAX_GROUP: usize = 512;

/// Why a unit's changes were not stored.
#[derive(Debug, Clone)]
enum Failure {
    /// They were read from memory another connection made stale: apply the event again.
    Stale,
    /// The group's statements or its commit failed.
    Failed(String),
    /// The file could not be written (a full disk, failed I/O): retry later.
    Unavailable(String),
}

impl Failure {
    /// The failure of a group that `error` stopped; logged (a full disk is a warning, not a
    /// bug).
    fn of(error: &sqlx::Error) -> Failure {
        if crate::error::is_unavailable(error) {
            tracing::warn!(%error, "group commit failed: the file cannot be written");
            Failure::Unavailable(error.to_string())
        } else {
            tracing::error!(%error, "group commit failed");
            Failure::Failed(error.to_string())
        }
    }
}

type Answer = oneshot::Sender<std::result::Result<(), Failure>>;

/// The writer of one store; clones of the store share it.
#[derive(Debug)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    units: Arc<Mutex<Units>>,
    conn: Arc<Mutex<Conn>>,
    /// Units that hold or wait for the units lock.
    waiting: AtomicUsize,
    /// Wakes the flusher task.
    flush: Notify,
    /// The statements that write plain events, for the tables' prefix.
    statements: PlainStatements,
    /// The store is gone: the flusher commits what is open and ends.
    closed: AtomicBool,
    /// Groups committed, for the checkpointer.
    commits: AtomicU64,
    /// A group failed or read stale memory: the memory and the buffered units go, at the
    /// next taking of the units lock.
    void: AtomicBool,
}

/// What the units lock guards.
#[derive(Debug, Default)]
pub(crate) struct Units {
    /// Machines remembered, by name key.
    pub(crate) memories: HashMap<String, MachineMemory>,
    /// What plain events wrote that is not run yet.
    pending: PendingWrites,
    /// The units whose statements are in `buffer`.
    buffered: Vec<Answer>,
}

/// What the connection lock guards.
#[derive(Debug)]
struct Conn {
    conn: SqliteConnection,
    /// A transaction (the group) is open.
    in_group: bool,
    /// Units whose statements ran in the open group.
    group: Vec<Answer>,
    /// `PRAGMA data_version` when the last group opened.
    data_version: Option<i64>,
    /// A unit was dropped with its savepoint open: roll back to it first.
    rollback_pending: bool,
    /// A script was interrupted (its caller dropped): what ran of it is unknown.
    interrupted: bool,
}

impl Writer {
    /// Opens the writer's own connection (with the pool's settings, outside the pool, so
    /// reads never wait for it) and starts the flusher task on the current runtime.
    pub(crate) async fn start(pool: &SqlitePool, prefix: &'static str) -> Result<Writer> {
        let conn = SqliteConnection::connect_with(&pool.connect_options())
            .await
            .db()?;
        let shared = Arc::new(Shared {
            units: Arc::default(),
            conn: Arc::new(Mutex::new(Conn {
                conn,
                in_group: false,
                group: Vec::new(),
                data_version: None,
                rollback_pending: false,
                interrupted: false,
            })),
            waiting: AtomicUsize::new(0),
            flush: Notify::new(),
            statements: PlainStatements::new(prefix),
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            void: AtomicBool::new(false),
        });
        tokio::spawn(flush_when_asked(Arc::clone(&shared)));
        tokio::spawn(checkpoint_while_writing(
            pool.clone(),
            Arc::downgrade(&shared),
        ));
        Ok(Writer { shared })
    }

    /// Takes the units lock for one unit.
    pub(crate) async fn begin(&self) -> Result<UnitGuard> {
        let ticket = Ticket::new(&self.shared);
        let mut units = Arc::clone(&self.shared.units).lock_owned().await;
        units.clear_if_void(&self.shared);
        Ok(UnitGuard {
            units,
            shared: Arc::clone(&self.shared),
            ticket: Some(ticket),
        })
    }
}

impl Writer {
    /// A remembered test's machine, run and file.
    pub(crate) async fn locate(&self, id: stpt_core::TestId) -> Option<stpt_core::TestLocation> {
        let units = self.shared.units.lock().await;
        units.memories.values().find_map(|memory| {
            let (run_id, test) = memory.locate(id)?;
            Some(stpt_core::TestLocation {
                machine: stpt_core::MachineName::new(memory.machine.name.clone()).ok()?,
                run_id,
                file: stpt_core::FileRef {
                    file_path: test.file_path,
                    file_name: test.file_name,
                },
            })
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.flush.notify_one();
    }
}

/// Counts a unit among those that hold or wait for the units lock; the last one out asks
/// for a flush.
#[derive(Debug)]
struct Ticket {
    shared: Arc<Shared>,
}

impl Ticket {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.waiting.fetch_add(1, Ordering::AcqRel);
        Ticket {
            shared: Arc::clone(shared),
        }
    }

    /// Leaves; asks for a flush if `flush` and no unit is left.
    fn leave(self, flush: bool) {
        let last = self.shared.waiting.fetch_sub(1, Ordering::AcqRel) == 1;
        if flush && last {
            self.shared.flush.notify_one();
        }
        std::mem::forget(self);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.shared.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.flush.notify_one();
        }
    }
}

impl Units {
    /// Drops the memory and fails the buffered units, if a failure voided them.
    fn clear_if_void(&mut self, shared: &Shared) {
        if shared.void.swap(false, Ordering::AcqRel) {
            self.clear(|| Failure::Stale);
        }
    }

    fn clear(&mut self, failure: impl Fn() -> Failure) {
        self.memories.clear();
        self.pending = PendingWrites::default();
        for unit in self.buffered.drain(..) {
            // A unit that stopped waiting needs no answer.
            let _ = unit.send(Err(failure()));
        }
    }
}

/// One unit's hold on the units lock.
#[derive(Debug)]
pub(crate) struct UnitGuard {
    units: OwnedMutexGuard<Units>,
    shared: Arc<Shared>,
    /// `None` once the unit released its changes.
    ticket: Option<Ticket>,
}

impl UnitGuard {
    pub(crate) fn units(&self) -> &Units {
        &self.units
    }

    pub(crate) fn units_mut(&mut self) -> &mut Units {
        &mut self.units
    }

    /// Adds a plain event's writes to the buffer.
    pub(crate) fn buffer(
        &mut self,
        machine_id: i64,
        seen_at: DateTime<Utc>,
        clock_offset: Option<stpt_core::ClockOffset>,
        work: &RunWork,
    ) {
        self.units
            .pending
            .add(machine_id, seen_at, clock_offset, work);
    }

    /// Takes the connection: opens the group if none is open and runs the buffered
    /// statements, so what the unit reads by query is current. `used_memory`: the unit
    /// already read the memory; if that memory turns out stale, the unit fails with
    /// [`Error::Stale`] (and is applied again).
    pub(crate) async fn connect(&mut self, used_memory: bool) -> Result<ConnGuard> {
        let mut conn = Arc::clone(&self.shared.conn).lock_owned().await;
        conn.settle().await;
        let mut stale = self.shared.void.swap(false, Ordering::AcqRel);
        if !conn.in_group {
            let version = conn.open_group().await?;
            if conn.data_version != Some(version) {
                conn.data_version = Some(version);
                stale = true;
            }
        }
        if stale {
            self.units.clear(|| Failure::Stale);
            if used_memory {
                return Err(Error::Stale {
                    message: "another connection wrote to the SQLite file".to_owned(),
                });
            }
        }
        let rows = (!self.units.pending.is_empty()).then(|| self.units.pending.take_rows());
        conn.group.append(&mut self.units.buffered);
        if let Some(rows) = rows {
            if let Err(error) = conn
                .run_plain(&self.shared.statements.write, &rows, None)
                .await
            {
                conn.abort(&self.shared, Failure::of(&error)).await;
                self.units.clear(|| Failure::Stale);
                return Err(crate::error::from_sqlx(error));
            }
        }
        Ok(ConnGuard {
            conn,
            savepoint: false,
        })
    }

    /// Releases the unit's changes: into the group if it wrote through `conn` (its
    /// savepoint released), else into the buffer. Unless `deferred`, a flush is asked for
    /// once no other unit holds or waits for the units lock.
    pub(crate) async fn release(
        &mut self,
        conn: Option<&mut ConnGuard>,
        deferred: bool,
    ) -> Result<Released> {
        let (answer, committed) = oneshot::channel();
        match conn {
            Some(conn) if conn.savepoint => {
                sqlx::query("RELEASE unit")
                    .execute(&mut conn.conn.conn)
                    .await
                    .db()?;
                conn.savepoint = false;
                conn.conn.group.push(answer);
            }
            _ => self.units.buffered.push(answer),
        }
        let full = self.units.buffered.len() >= MAX_GROUP;
        if let Some(ticket) = self.ticket.take() {
            ticket.leave(!deferred);
        }
        if full {
            self.shared.flush.notify_one();
        }
        Ok(Released {
            committed,
            flush_on_wait: deferred.then(|| Arc::clone(&self.shared)),
        })
    }
}

/// A unit's hold on the writer connection. Dereferences to it.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    conn: OwnedMutexGuard<Conn>,
    savepoint: bool,
}

impl ConnGuard {
    /// Opens the unit's savepoint: what it writes from now on is undone if it is dropped.
    pub(crate) async fn savepoint(&mut self) -> Result<()> {
        if !self.savepoint {
            sqlx::query("SAVEPOINT unit")
                .execute(&mut self.conn.conn)
                .await
                .db()?;
            self.savepoint = true;
        }
        Ok(())
    }
}

impl std::ops::Deref for ConnGuard {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn.conn
    }
}

impl std::ops::DerefMut for ConnGuard {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn.conn
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.savepoint {
            // The next holder of the connection rolls it back, before anything else.
            self.conn.rollback_pending = true;
        }
    }
}

/// A unit's changes on their way into a commit.
pub(crate) struct Released {
    committed: oneshot::Receiver<std::result::Result<(), Failure>>,
    flush_on_wait: Option<Arc<Shared>>,
}

impl Released {
    /// Waits until the group holding these changes is committed: `Ok` once they are durable.
    pub(crate) async fn wait(mut self) -> Result<()> {
        if let Some(shared) = self.flush_on_wait.take() {
            shared.flush.notify_one();
        }
        match (&mut self.committed).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Failure::Stale)) => Err(Error::Stale {
                message: "read from memory another connection made stale".to_owned(),
            }),
            Ok(Err(Failure::Failed(message))) => {
                Err(Error::backend(format!("group commit failed: {message}")))
            }
            Ok(Err(Failure::Unavailable(message))) => Err(Error::Unavailable {
                message: format!("group commit failed: {message}"),
            }),
            Err(_) => Err(Error::backend(
                "the SQLite writer stopped before the commit",
            )),
        }
    }

    /// These changes' [`Durability`].
    pub(crate) fn durability(self) -> Durability {
        Durability::new(self.wait())
    }
}

impl Drop for Released {
    fn drop(&mut self) {
        // A batch that stopped waiting: its group must still be committed.
        if let Some(shared) = self.flush_on_wait.take() {
            shared.flush.notify_one();
        }
    }
}

impl Conn {
    /// Opens a group: `BEGIN IMMEDIATE` and the file's `data_version`.
    async fn open_group(&mut self) -> Result<i64> {
        match begin_group(&mut self.conn).await {
            Ok(version) => {
                self.in_group = true;
                Ok(version)
            }
            Err(error) => {
                // The BEGIN may have run without the read.
                if let Err(error) = sqlx::query("ROLLBACK").execute(&mut self.conn).await {
                    tracing::debug!(%error, "no group to roll back");
                }
                Err(crate::error::from_sqlx(error))
            }
        }
    }

    /// Commits buffered writes in one call, the whole group: takes the write lock, checks
    /// that no other connection wrote since the last group (a failing expression stops the
    /// statements if `data_version` moved), writes, commits.
    async fn commit_checked(
        &mut self,
        shared: &Shared,
        expected: i64,
        rows: &PlainRows,
        units: Vec<Answer>,
    ) {
        let started = std::time::Instant::now();
        let outcome = self
            .run_plain(&shared.statements.checked_commit, rows, Some(expected))
            .await;
        tracing::debug!(units = units.len(), elapsed = ?started.elapsed(), "checked group committed");
        let failure = match outcome {
            Ok(()) => {
                shared.commits.fetch_add(1, Ordering::Relaxed);
                for unit in units {
                    let _ = unit.send(Ok(()));
                }
                return;
            }
            Err(error) => error,
        };
        if let Err(error) = sqlx::query("ROLLBACK").execute(&mut self.conn).await {
            tracing::debug!(%error, "nothing to roll back");
        }
        shared.void.store(true, Ordering::Release);
        let stale = matches!(&failure, sqlx::Error::Database(error) if error.message().contains("integer overflow"));
        let failure = if stale {
            // Another connection wrote: the units read stale memory.
            match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&mut self.conn)
                .await
            {
                Ok(version) => self.data_version = Some(version),
                Err(_) => self.data_version = None,
            }
            Failure::Stale
        } else {
            Failure::of(&failure)
        };
        for unit in units {
            let _ = unit.send(Err(failure.clone()));
        }
    }

    /// Runs statements that write plain events' `rows` (and, for a checked commit, bind the
    /// `data_version` expected), noting if they are interrupted half-way.
    async fn run_plain(
        &mut self,
        sql: &str,
        rows: &PlainRows,
        expected: Option<i64>,
    ) -> std::result::Result<(), sqlx::Error> {
        self.interrupted = true;
        let result = run_plain(&mut self.conn, sql, rows, expected).await;
        self.interrupted = false;
        result
    }

    /// Runs a statement without parameters, noting if it is interrupted half-way.
    async fn run(&mut self, sql: &str) -> std::result::Result<(), sqlx::Error> {
        self.interrupted = true;
        let result = run_script(&mut self.conn, sql).await;
        self.interrupted = false;
        result
    }

    /// Rolls back a dropped unit's savepoint; if that fails, or a script was interrupted, the
    /// whole group.
    async fn settle(&mut self) {
        if self.interrupted {
            self.interrupted = false;
            self.rollback_pending = false;
            self.fail_group(Failure::Failed("a write was interrupted".to_owned()))
                .await;
            return;
        }
        if !self.rollback_pending {
            return;
        }
        self.rollback_pending = false;
        let mut undone = sqlx::query("ROLLBACK TO unit")
            .execute(&mut self.conn)
            .await;
        if undone.is_ok() {
            undone = sqlx::query("RELEASE unit").execute(&mut self.conn).await;
        }
        if let Err(error) = undone {
            tracing::error!(%error, "rolling back a unit failed: rolling back its group");
            self.fail_group(Failure::Failed(format!(
                "rolling back a unit failed: {error}"
            )))
            .await;
        }
    }

    /// Rolls back the open group and fails its units.
    async fn fail_group(&mut self, failure: Failure) {
        if let Err(error) = sqlx::query("ROLLBACK").execute(&mut self.conn).await {
            tracing::warn!(%error, "rollback after a failed group");
        }
        self.in_group = false;
        for unit in self.group.drain(..) {
            let _ = unit.send(Err(failure.clone()));
        }
    }

    /// [`Conn::fail_group`], and voids the memory built on the group.
    async fn abort(&mut self, shared: &Shared, failure: Failure) {
        shared.void.store(true, Ordering::Release);
        self.fail_group(failure).await;
    }
}

/// The flusher task: commits the buffer and the open group whenever asked, until the store
/// is gone.
async fn flush_when_asked(shared: Arc<Shared>) {
    loop {
        shared.flush.notified().await;
        let closed = shared.closed.load(Ordering::Acquire);
        let mut units = Arc::clone(&shared.units).lock_owned().await;
        units.clear_if_void(&shared);
        let mut conn = shared.conn.lock().await;
        let mut rows = (!units.pending.is_empty()).then(|| units.pending.take_rows());
        let buffered = std::mem::take(&mut units.buffered);
        // Units go on with the memory while this commit runs.
        drop(units);
        conn.settle().await;
        if !buffered.is_empty() && !conn.in_group {
            if let Some(expected) = conn.data_version {
                let rows = rows.unwrap_or_else(PlainRows::none);
                conn.commit_checked(&shared, expected, &rows, buffered)
                    .await;
                if closed {
                    return;
                }
                continue;
            }
        }
        if !buffered.is_empty() {
            let fresh = if conn.in_group {
                Ok(())
            } else {
                match conn.open_group().await {
                    Ok(version) if conn.data_version == Some(version) => Ok(()),
                    Ok(version) => {
                        // Another connection wrote: the buffered units read stale memory.
                        conn.data_version = Some(version);
                        Err(Failure::Stale)
                    }
                    Err(Error::Unavailable { message }) => Err(Failure::Unavailable(message)),
                    Err(error) => Err(Failure::Failed(error.to_string())),
                }
            };
            match fresh {
                Ok(()) => conn.group.extend(buffered),
                Err(failure) => {
                    shared.void.store(true, Ordering::Release);
                    for unit in buffered {
                        let _ = unit.send(Err(failure.clone()));
                    }
                    rows = None;
                }
            }
        }
        if conn.in_group {
            let committed = match &rows {
                Some(rows) => {
                    let statements = &shared.statements.write_and_commit;
                    conn.run_plain(statements, rows, None).await
                }
                None => conn.run("COMMIT").await,
            };
            match committed {
                Ok(()) => {
                    shared.commits.fetch_add(1, Ordering::Relaxed);
                    conn.in_group = false;
                    for unit in conn.group.drain(..) {
                        let _ = unit.send(Ok(()));
                    }
                }
                Err(error) => conn.abort(&shared, Failure::of(&error)).await,
            }
        }
        if closed {
            return;
        }
    }
}

/// How often the checkpointer looks for new commits.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Copies the WAL into the database file while groups keep committing: a passive checkpoint
/// on a reader connection, after any interval with commits, never waiting for the writer. The
/// writer's own automatic checkpoint (SQLite's default, every 1,000 pages) then finds little
/// left to copy, and still lets the WAL start over once all of it is copied.
async fn checkpoint_while_writing(pool: SqlitePool, shared: std::sync::Weak<Shared>) {
    let mut checkpointed = 0;
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let commits = shared.commits.load(Ordering::Relaxed);
        drop(shared);
        if commits == checkpointed {
            continue;
        }
        checkpointed = commits;
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(%error, "passive checkpoint");
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs several statements in one call (one round trip to the connection's thread). Boxed:
/// the borrow of a script built at run time otherwise keeps callers' futures from being
/// provably `Send`.
fn run_script<'c>(
    conn: &'c mut SqliteConnection,
    sql: &'c str,
) -> BoxFuture<'c, std::result::Result<(), sqlx::Error>> {
    Box::pin(async move {
        sqlx::Executor::execute(conn, sqlx::raw_sql(sql)).await?;
        Ok(())
    })
}

/// [`PlainStatements`] with their rows bound, in one call. Boxed, as [`run_script`].
fn run_plain<'c>(
    conn: &'c mut SqliteConnection,
    sql: &'c str,
    rows: &'c PlainRows,
    expected: Option<i64>,
) -> BoxFuture<'c, std::result::Result<(), sqlx::Error>> {
    Box::pin(async move {
        let query = match expected {
            Some(version) => sqlx::query(sql).bind(rows.checked(version)),
            None => sqlx::query(sql).bind(rows.json()),
        };
        query.execute(conn).await?;
        Ok(())
    })
}

/// `BEGIN IMMEDIATE` and the file's `data_version`, in one call.
fn begin_group(
    conn: &mut SqliteConnection,
) -> BoxFuture<'_, std::result::Result<i64, sqlx::Error>> {
    Box::pin(async move {
        use sqlx::Row;
        let row =
            sqlx::Executor::fetch_one(conn, sqlx::raw_sql("BEGIN IMMEDIATE; PRAGMA data_version;"))
                .await?;
        row.try_get(0)
    })
}
