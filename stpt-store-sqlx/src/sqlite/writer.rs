//! The SQLite writer: one connection that every unit of work of a store writes through, in
//! turn, with group commit.
//!
//! A unit takes the writer (an async mutex, first come first served). If no transaction is
//! open, it opens one with `BEGIN IMMEDIATE`, which takes SQLite's write lock for the whole
//! file. The unit reads, writes inside a savepoint, and releases the savepoint: its changes
//! then belong to the open *group*, and the unit is answered only once the group's `COMMIT`
//! has flushed the WAL (`synchronous = FULL`). One flush carries every unit of the group.
//!
//! The group is committed, by the flusher task, as soon as no other unit holds or waits for
//! the writer, or when it holds [`MAX_GROUP`] units: units that arrive meanwhile queue and
//! form the next group. A unit dropped with its savepoint open is rolled back to it, so it
//! leaves no trace and the group goes on. A unit committed *deferred* (a batch) does not ask
//! for a flush; the batch asks once, when it waits for its last event.
//!
//! Staleness: the memory of ongoing runs (`crate::memory`) is trusted only while no other
//! connection wrote to the file. SQLite's `PRAGMA data_version` changes exactly when another
//! connection (another process, or another connection of this one) committed; it is read at
//! the start of every group, under the write lock, and any change clears every memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use stpt_core::{Durability, Error, Result};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot};

use crate::error::SqlxResultExt;
use crate::memory::MachineMemory;

/// Units one group carries at most: past it, the group is committed even while others wait,
/// so none waits behind an endless stream.
pub(crate) const MAX_GROUP: usize = 512;

/// The writer of one store; clones share it.
#[derive(Debug)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Arc<Mutex<WriterState>>,
    /// Units that hold or wait for the writer.
    units: AtomicUsize,
    /// Wakes the flusher task.
    flush: Notify,
    /// Set when the store is gone: the flusher commits what is open and ends.
    closed: AtomicBool,
}

/// The writer's connection and what it knows, behind the writer's lock.
#[derive(Debug)]
pub(crate) struct WriterState {
    conn: SqliteConnection,
    /// A group transaction is open.
    in_group: bool,
    /// Units released into the open group, waiting for its commit.
    group: Vec<oneshot::Sender<std::result::Result<(), String>>>,
    /// `PRAGMA data_version` as of the open or last group.
    data_version: Option<i64>,
    /// A unit was dropped with its savepoint open: roll back to it before anything else.
    rollback_pending: bool,
    /// Machines remembered, by name key.
    pub(crate) memories: HashMap<String, MachineMemory>,
}

impl Writer {
    /// Opens the writer's own connection (with the pool's settings, outside the pool, so
    /// reads never wait for it) and starts the flusher task on the current runtime.
    pub(crate) async fn start(pool: &SqlitePool) -> Result<Writer> {
        let conn = SqliteConnection::connect_with(&pool.connect_options())
            .await
            .db()?;
        let shared = Arc::new(Shared {
            state: Arc::new(Mutex::new(WriterState {
                conn,
                in_group: false,
                group: Vec::new(),
                data_version: None,
                rollback_pending: false,
                memories: HashMap::new(),
            })),
            units: AtomicUsize::new(0),
            flush: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(flush_when_asked(Arc::clone(&shared)));
        Ok(Writer { shared })
    }

    /// Takes the writer for one unit, in the open group or a new one.
    pub(crate) async fn begin(&self) -> Result<UnitGuard> {
        let ticket = Ticket::new(&self.shared);
        let mut state = Arc::clone(&self.shared.state).lock_owned().await;
        state.settle().await;
        if !state.in_group {
            state.open_group().await?;
        }
        Ok(UnitGuard {
            state,
            ticket: Some(ticket),
            savepoint: false,
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.flush.notify_one();
    }
}

/// Counts a unit among those that hold or wait for the writer; the last one out asks for a
/// flush.
#[derive(Debug)]
struct Ticket {
    shared: Arc<Shared>,
}

impl Ticket {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.units.fetch_add(1, Ordering::AcqRel);
        Ticket {
            shared: Arc::clone(shared),
        }
    }

    /// Leaves; asks for a flush if `flush` and no unit is left.
    fn leave(self, flush: bool) {
        let last = self.shared.units.fetch_sub(1, Ordering::AcqRel) == 1;
        if flush && last {
            self.shared.flush.notify_one();
        }
        std::mem::forget(self);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.shared.units.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.flush.notify_one();
        }
    }
}

/// One unit's hold on the writer. Dereferences to the writer's connection.
#[derive(Debug)]
pub(crate) struct UnitGuard {
    state: OwnedMutexGuard<WriterState>,
    /// `None` once the unit released its changes into the group.
    ticket: Option<Ticket>,
    savepoint: bool,
}

/// A unit's changes in the open group, until the group's commit.
pub(crate) struct Released {
    committed: oneshot::Receiver<std::result::Result<(), String>>,
    flush_on_wait: Option<Arc<Shared>>,
}

impl UnitGuard {
    pub(crate) fn state(&mut self) -> &mut WriterState {
        &mut self.state
    }

    pub(crate) fn state_ref(&self) -> &WriterState {
        &self.state
    }

    /// Opens the unit's savepoint, if not open yet: what the unit writes from now on is undone
    /// if it is dropped.
    pub(crate) async fn savepoint(&mut self) -> Result<()> {
        if !self.savepoint {
            sqlx::query("SAVEPOINT unit")
                .execute(&mut self.state.conn)
                .await
                .db()?;
            self.savepoint = true;
        }
        Ok(())
    }

    /// Releases the unit's changes into the group. Unless `deferred`, the group is committed
    /// as soon as no other unit holds or waits for the writer. The writer stays taken until
    /// this guard is dropped.
    pub(crate) async fn release(&mut self, deferred: bool) -> Result<Released> {
        if self.savepoint {
            sqlx::query("RELEASE unit")
                .execute(&mut self.state.conn)
                .await
                .db()?;
            self.savepoint = false;
        }
        let (answer, committed) = oneshot::channel();
        self.state.group.push(answer);
        let full = self.state.group.len() >= MAX_GROUP;
        let shared = self
            .ticket
            .as_ref()
            .map(|ticket| Arc::clone(&ticket.shared));
        if let Some(ticket) = self.ticket.take() {
            ticket.leave(!deferred);
        }
        if full {
            if let Some(shared) = &shared {
                shared.flush.notify_one();
            }
        }
        Ok(Released {
            committed,
            flush_on_wait: if deferred { shared } else { None },
        })
    }

    /// Releases the unit's changes and waits until the group is committed.
    pub(crate) async fn commit(mut self) -> Result<()> {
        let released = self.release(false).await?;
        drop(self);
        released.wait().await
    }
}

impl std::ops::Deref for UnitGuard {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.state.conn
    }
}

impl std::ops::DerefMut for UnitGuard {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.state.conn
    }
}

impl Drop for UnitGuard {
    fn drop(&mut self) {
        if self.savepoint {
            // The next holder of the writer rolls it back, before anything else.
            self.state.rollback_pending = true;
        }
        // The ticket is dropped after the writer's lock: a flush it asks for finds the
        // writer free.
    }
}

impl Released {
    /// Waits until the group holding these changes is committed: `Ok` once they are durable.
    pub(crate) async fn wait(mut self) -> Result<()> {
        if let Some(shared) = self.flush_on_wait.take() {
            shared.flush.notify_one();
        }
        match (&mut self.committed).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::backend(format!("group commit failed: {message}"))),
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
        // A deferred unit's batch that stopped waiting: its group must still be committed.
        if let Some(shared) = self.flush_on_wait.take() {
            shared.flush.notify_one();
        }
    }
}

impl WriterState {
    /// Opens a group: takes the write lock and checks whether another connection wrote since
    /// the last group; if one did, every memory goes.
    async fn open_group(&mut self) -> Result<()> {
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await
            .db()?;
        self.in_group = true;
        let version: i64 = match sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut self.conn)
            .await
            .db()
        {
            Ok(version) => version,
            Err(error) => {
                self.abort("reading data_version failed").await;
                return Err(error);
            }
        };
        if self.data_version != Some(version) {
            if self.data_version.is_some() && !self.memories.is_empty() {
                tracing::debug!("another connection wrote to the SQLite file: memory cleared");
            }
            self.memories.clear();
            self.data_version = Some(version);
        }
        Ok(())
    }

    /// Rolls back a dropped unit's savepoint; if that fails, the whole group.
    async fn settle(&mut self) {
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
            self.abort(&format!("rolling back a unit failed: {error}"))
                .await;
        }
    }

    /// Commits the open group and answers its units.
    async fn flush(&mut self) {
        self.settle().await;
        if !self.in_group {
            return;
        }
        match sqlx::query("COMMIT").execute(&mut self.conn).await {
            Ok(_) => {
                self.in_group = false;
                for unit in self.group.drain(..) {
                    // A unit that stopped waiting needs no answer.
                    let _ = unit.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(%error, "group commit failed");
                self.abort(&error.to_string()).await;
            }
        }
    }

    /// Rolls back the open group: its units fail, and memory, which holds their changes, goes.
    async fn abort(&mut self, message: &str) {
        if let Err(error) = sqlx::query("ROLLBACK").execute(&mut self.conn).await {
            tracing::warn!(%error, "rollback after a failed group");
        }
        self.in_group = false;
        self.memories.clear();
        for unit in self.group.drain(..) {
            let _ = unit.send(Err(message.to_owned()));
        }
    }
}

/// The flusher task: commits the open group whenever asked, until the store is gone.
async fn flush_when_asked(shared: Arc<Shared>) {
    loop {
        shared.flush.notified().await;
        let closed = shared.closed.load(Ordering::Acquire);
        shared.state.lock().await.flush().await;
        if closed {
            return;
        }
    }
}
