//! Test identities this process knows to be committed in `test_identities`, so that a plan
//! inserts only the others: the same tests are planned night after night, and upserting each
//! again is a plan's largest write beside its own rows.
//!
//! Identity rows are never deleted or changed, so a key once known committed stays true for
//! every process sharing the database. A key is learnt only after the commit that wrote it
//! is durable: one learnt earlier would, were that commit undone, leave its identity missing
//! for good.

use std::collections::HashSet;
use std::sync::Mutex;

/// At most this many keys are kept (8 bytes each, about 1 MiB with the set's overhead);
/// when full, the set starts again, and the next plans upsert their identities once more.
const CAPACITY: usize = 65_536;

/// The identity keys known committed (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct KnownIdentities(Mutex<HashSet<i64>>);

impl KnownIdentities {
    /// Whether `key` is known to be committed.
    pub(crate) fn contains(&self, key: i64) -> bool {
        self.lock().contains(&key)
    }

    /// Learns `keys`, which a durable commit wrote (or found written).
    pub(crate) fn learn(&self, keys: &[i64]) {
        if keys.is_empty() {
            return;
        }
        let mut known = self.lock();
        if known.len() + keys.len() > CAPACITY {
            known.clear();
        }
        known.extend(keys.iter().take(CAPACITY).copied());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        // The set holds no invariant a panic could break halfway.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learnt_keys_are_known_and_others_are_not() {
        let known = KnownIdentities::default();
        assert!(!known.contains(7));
        known.learn(&[7, -3]);
        assert!(known.contains(7));
        assert!(known.contains(-3));
        assert!(!known.contains(8));
    }

    #[test]
    fn a_full_set_starts_again_and_stays_bounded() {
        let known = KnownIdentities::default();
        let first: Vec<i64> = (0..CAPACITY as i64).collect();
        known.learn(&first);
        assert!(known.contains(0));
        known.learn(&[-1]);
        assert!(known.contains(-1));
        assert!(!known.contains(0), "the full set was cleared");
        assert_eq!(known.lock().len(), 1);
        let too_many: Vec<i64> = (0..CAPACITY as i64 * 2).collect();
        known.learn(&too_many);
        assert!(known.lock().len() <= CAPACITY);
    }
}
