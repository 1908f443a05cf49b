//! What the PostgreSQL store keeps of each machine between its units.

pub(crate) use crate::memory::MachineMemory;

/// What this store keeps of one machine between its units.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// The machine and its ongoing runs, if remembered.
    pub(crate) memory: Option<MachineMemory>,
    /// The machine's version right after this store's last commit on it.
    pub(crate) last_written: Option<i64>,
    /// Units in a row that found, under the lock, no other writer since this store's last
    /// commit.
    pub(crate) undisturbed: u32,
}
