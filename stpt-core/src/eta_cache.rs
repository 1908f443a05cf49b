//! What a run still has to do, held in memory between estimates: reading it from a store
//! costs one row per waiting test (tens of milliseconds on a 10,000-test run), while an
//! estimate is asked after every event of a watched run. Kept current from the work this
//! process commits ([`EtaCache::apply`]) and the durations it flushes
//! ([`EtaCache::add_durations`]). Before it is used, the run's counts are read from the store
//! (one indexed row): if another process moved the run (several servers on one database),
//! the run is read again in full. Durations another process flushed show once the run is
//! read again, at the latest after [`EtaCache::MAX_AGE`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};

use crate::estimate::{FinishedTest, RunRemaining};
use crate::rules::RunWork;
use crate::{FileRef, MachineId, RunId, RunSummary, Statistics};

/// One run's remaining work, as last read and updated since.
#[derive(Debug, Clone)]
struct Cached {
    remaining: RunRemaining,
    /// Position of each identity in `remaining.work`.
    by_file: HashMap<FileRef, usize>,
    read_at: DateTime<Utc>,
}

/// Remaining work of the runs whose estimates were asked for recently.
#[derive(Debug, Default)]
pub(crate) struct EtaCache {
    runs: Mutex<HashMap<RunId, Cached>>,
    /// Whether `runs` holds any: every committed event asks, and most servers hold none (no
    /// one watches an ETA), so the answer is kept outside the lock. A run put while an event
    /// skipped it misses that event, which [`EtaCache::summary`]'s agreement check catches.
    holds_any: AtomicBool,
}

impl EtaCache {
    /// How long a read stays trusted without being read again.
    pub(crate) const MAX_AGE: Duration = Duration::seconds(60);
    /// The most runs held; beyond, the oldest read goes.
    const MAX_RUNS: usize = 64;

    fn lock(&self) -> Held<'_> {
        Held {
            runs: self
                .runs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            holds_any: &self.holds_any,
        }
    }

    /// Run `id`'s summary if its remaining work is held, younger than [`Self::MAX_AGE`] at
    /// `now`, and agreeing with the run's counts (an update lost or applied twice in a race
    /// with a read shows as a disagreement: the run is then read again).
    pub(crate) fn summary(&self, id: RunId, now: DateTime<Utc>) -> Option<RunSummary> {
        let mut runs = self.lock();
        let cached = runs.get(&id)?;
        let counts = cached.remaining.run.statistics.counts;
        let waiting: u32 = cached.remaining.work.iter().map(|w| w.waiting).sum();
        let running = cached
            .remaining
            .work
            .iter()
            .filter(|w| w.running.is_some())
            .count();
        let agrees = waiting == counts.get(crate::Status::Waiting)
            && u32::try_from(running).ok() == Some(counts.get(crate::Status::Running));
        if agrees && now - cached.read_at < Self::MAX_AGE {
            return Some(cached.remaining.run.clone());
        }
        runs.remove(&id);
        None
    }

    /// `f` of run `id`'s held remaining work, if held: computed in place, as a big run's
    /// work is thousands of histories.
    pub(crate) fn with<R>(&self, id: RunId, f: impl FnOnce(&RunRemaining) -> R) -> Option<R> {
        self.lock().get(&id).map(|cached| f(&cached.remaining))
    }

    /// Holds `remaining`, read from the store at `now`.
    pub(crate) fn put(&self, remaining: RunRemaining, now: DateTime<Utc>) {
        let mut runs = self.lock();
        if runs.len() >= Self::MAX_RUNS && !runs.contains_key(&remaining.run.id) {
            let oldest = runs
                .iter()
                .min_by_key(|(_, cached)| cached.read_at)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                runs.remove(&oldest);
            }
        }
        let by_file = remaining
            .work
            .iter()
            .enumerate()
            .map(|(at, work)| (work.file.clone(), at))
            .collect();
        runs.insert(
            remaining.run.id,
            Cached {
                remaining,
                by_file,
                read_at: now,
            },
        );
    }

    /// Applies committed `work` to its run, if held: its summary's status, counts and times,
    /// and each changed test's identity's waiting count and running test.
    pub(crate) fn apply(&self, work: &RunWork) {
        if !self.holds_any.load(Ordering::Acquire) {
            return;
        }
        let mut runs = self.lock();
        let aggregate = &work.run.aggregate;
        if !aggregate.status().is_ongoing() {
            // Finished: nothing left to estimate.
            runs.remove(&work.run.id);
            return;
        }
        let Some(cached) = runs.get_mut(&work.run.id) else {
            return;
        };
        let run = &mut cached.remaining.run;
        run.status = aggregate.status();
        run.statistics = Statistics::new(aggregate.counts, run.statistics.scenarios);
        run.timestamp_start = aggregate.timestamp_start;
        run.timestamp_stop = aggregate.timestamp_stop;
        if work.closed.is_some() {
            for entry in &mut cached.remaining.work {
                entry.waiting = 0;
                entry.running = None;
            }
        }
        for test in &work.tests {
            let file = FileRef {
                file_path: test.file_path.clone(),
                file_name: test.file_name.clone(),
            };
            let Some(entry) = cached
                .by_file
                .get(&file)
                .and_then(|at| cached.remaining.work.get_mut(*at))
            else {
                continue;
            };
            let was_running = entry.running.is_some_and(|(id, _)| id == test.id);
            if test.status == crate::Status::Running {
                // Tests start from waiting.
                entry.waiting = entry.waiting.saturating_sub(1);
                entry.running = test.timestamp_start.map(|start| (test.id, start));
            } else if was_running {
                entry.running = None;
            } else if !test.status.is_ongoing() {
                entry.waiting = entry.waiting.saturating_sub(1);
            }
        }
    }

    /// Adds flushed durations to the histories of the runs held, as the store added them.
    pub(crate) fn add_durations(&self, samples: &[FinishedTest]) {
        let mut runs = self.lock();
        for cached in runs.values_mut() {
            let machine: MachineId = cached.remaining.run.machine_id;
            for sample in samples {
                let Some(millis) = sample.duration_sample() else {
                    continue;
                };
                let Some(entry) = cached
                    .by_file
                    .get(&sample.file)
                    .and_then(|at| cached.remaining.work.get_mut(*at))
                else {
                    continue;
                };
                if sample.machine_id == machine {
                    entry.on_machine.push(millis);
                }
                entry.everywhere.push(millis);
            }
        }
    }

    /// Forgets run `id` (deleted).
    pub(crate) fn forget(&self, id: RunId) {
        self.lock().remove(&id);
    }

    /// Forgets the runs of machine `id` (deleted).
    pub(crate) fn forget_machine(&self, id: MachineId) {
        self.lock()
            .retain(|_, cached| cached.remaining.run.machine_id != id);
    }
}

/// The held runs, locked; on unlock, [`EtaCache::holds_any`] is set from what is left.
struct Held<'a> {
    runs: std::sync::MutexGuard<'a, HashMap<RunId, Cached>>,
    holds_any: &'a AtomicBool,
}

impl std::ops::Deref for Held<'_> {
    type Target = HashMap<RunId, Cached>;

    fn deref(&self) -> &Self::Target {
        &self.runs
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.runs
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.holds_any
            .store(!self.runs.is_empty(), Ordering::Release);
    }
}
