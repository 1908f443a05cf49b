//! A run compared with the machine's previous run of the same master scenario.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Outcome, TestIdentity, TestKey};
use crate::{RunDetail, RunId, Status, TestId, TestView};

/// How many of the biggest duration changes a diff lists.
pub const DURATION_CHANGES: usize = 10;

/// What changed between two runs of one master scenario on one machine.
///
/// Tests are matched by identity ([`TestIdentity`]); a test planned twice in a scenario is
/// matched by its order among those of its identity (first with first, second with second).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDiff {
    /// The run.
    pub run_id: RunId,
    /// The run it is compared with; `None` when the machine never ran this master scenario
    /// before, and every list is then empty.
    pub previous_run_id: Option<RunId>,
    /// Passed last time, failed now ([`Outcome`]).
    pub new_failures: Vec<DiffEntry>,
    /// Failed last time, passed now.
    pub fixed: Vec<DiffEntry>,
    /// Failed both times.
    pub still_failing: Vec<DiffEntry>,
    /// Not in the previous run.
    pub new_tests: Vec<DiffEntry>,
    /// In the previous run, not in this one.
    pub removed_tests: Vec<DiffEntry>,
    /// Ran last time, finished without running now (`unknown` or `cancelled`).
    pub not_executed: Vec<DiffEntry>,
    /// The biggest changes in duration between results of both runs, biggest first (at most
    /// [`DURATION_CHANGES`]).
    pub duration_changes: Vec<DurationChange>,
}

/// One test in a [`RunDiff`] list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffEntry {
    /// Its identity.
    pub identity: TestIdentity,
    /// The identity's key.
    pub key: TestKey,
    /// The test in this run, if it is in it.
    pub test_id: Option<TestId>,
    /// Its status in this run.
    pub status: Option<Status>,
    /// The test in the previous run, if it was in it.
    pub previous_test_id: Option<TestId>,
    /// Its status in the previous run.
    pub previous_status: Option<Status>,
}

/// A test whose duration changed between the two runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DurationChange {
    /// Its identity.
    pub identity: TestIdentity,
    /// The identity's key.
    pub key: TestKey,
    /// The test in this run.
    pub test_id: TestId,
    /// Its duration in the previous run, in milliseconds.
    pub previous_ms: i64,
    /// Its duration in this run, in milliseconds.
    pub current_ms: i64,
}

impl DurationChange {
    /// This run's duration minus the previous one's, in milliseconds.
    pub fn change_ms(&self) -> i64 {
        self.current_ms - self.previous_ms
    }
}

/// A test of a run with its identity.
struct Keyed<'a> {
    identity: TestIdentity,
    key: TestKey,
    test: &'a TestView,
}

/// The tests of `run` in plan order, each with its identity and its occurrence among the
/// tests of that identity.
fn keyed_tests(run: &RunDetail) -> Vec<((TestKey, usize), Keyed<'_>)> {
    let mut seen: HashMap<TestKey, usize> = HashMap::new();
    let mut tests = Vec::new();
    for scenario in &run.scenarios {
        for test in &scenario.tests {
            let identity = TestIdentity::new(scenario.file.clone(), test.file.clone());
            let key = identity.key();
            let occurrence = seen.entry(key).or_default();
            tests.push((
                (key, *occurrence),
                Keyed {
                    identity,
                    key,
                    test,
                },
            ));
            *occurrence += 1;
        }
    }
    tests
}

fn millis(test: &TestView) -> Option<i64> {
    Outcome::of(test.status)?;
    crate::duration(test.timestamp_start, test.timestamp_stop).map(|d| d.num_milliseconds())
}

impl RunDiff {
    /// `current` with nothing to compare it with.
    pub fn first(current: RunId) -> RunDiff {
        RunDiff {
            run_id: current,
            previous_run_id: None,
            new_failures: Vec::new(),
            fixed: Vec::new(),
            still_failing: Vec::new(),
            new_tests: Vec::new(),
            removed_tests: Vec::new(),
            not_executed: Vec::new(),
            duration_changes: Vec::new(),
        }
    }

    /// What changed from `previous` to `current`; every list in `current`'s plan order
    /// (`removed_tests` in `previous`'s).
    pub fn between(previous: &RunDetail, current: &RunDetail) -> RunDiff {
        RunDiff::with_previous_statuses(previous, current).0
    }

    /// [`RunDiff::between`] and [`RunDiff::previous_statuses`] at once, keying each run's
    /// tests once (a run page needs both).
    pub fn with_previous_statuses(
        previous: &RunDetail,
        current: &RunDetail,
    ) -> (RunDiff, HashMap<TestId, Status>) {
        let mut statuses = HashMap::new();
        let mut diff = RunDiff::first(current.summary.id);
        diff.previous_run_id = Some(previous.summary.id);
        let mut before: HashMap<(TestKey, usize), Keyed<'_>> =
            keyed_tests(previous).into_iter().collect();
        let mut durations = Vec::new();
        for (slot, now) in keyed_tests(current) {
            let then = before.remove(&slot);
            let entry = DiffEntry {
                identity: now.identity.clone(),
                key: now.key,
                test_id: Some(now.test.id),
                status: Some(now.test.status),
                previous_test_id: then.as_ref().map(|then| then.test.id),
                previous_status: then.as_ref().map(|then| then.test.status),
            };
            let Some(then) = then else {
                diff.new_tests.push(entry);
                continue;
            };
            statuses.insert(now.test.id, then.test.status);
            let list = match (Outcome::of(then.test.status), Outcome::of(now.test.status)) {
                (Some(Outcome::Pass), Some(Outcome::Fail)) => Some(&mut diff.new_failures),
                (Some(Outcome::Fail), Some(Outcome::Pass)) => Some(&mut diff.fixed),
                (Some(Outcome::Fail), Some(Outcome::Fail)) => Some(&mut diff.still_failing),
                (Some(_), None)
                    if matches!(now.test.status, Status::Unknown | Status::Cancelled) =>
                {
                    Some(&mut diff.not_executed)
                }
                _ => None,
            };
            if let Some(list) = list {
                list.push(entry);
            }
            if let (Some(previous_ms), Some(current_ms)) = (millis(then.test), millis(now.test)) {
                if previous_ms != current_ms {
                    durations.push(DurationChange {
                        identity: now.identity,
                        key: now.key,
                        test_id: now.test.id,
                        previous_ms,
                        current_ms,
                    });
                }
            }
        }
        let mut removed: Vec<Keyed<'_>> = before.into_values().collect();
        removed.sort_by_key(|gone| gone.test.id);
        diff.removed_tests = removed
            .into_iter()
            .map(|gone| DiffEntry {
                identity: gone.identity,
                key: gone.key,
                test_id: None,
                status: None,
                previous_test_id: Some(gone.test.id),
                previous_status: Some(gone.test.status),
            })
            .collect();
        // Stable: equal changes keep plan order.
        durations.sort_by_key(|change| std::cmp::Reverse(change.change_ms().unsigned_abs()));
        durations.truncate(DURATION_CHANGES);
        diff.duration_changes = durations;
        (diff, statuses)
    }

    /// Each test of `current` matched in `previous`, with its status there: what a live page
    /// needs to say "new failure" the moment a test that passed last time fails.
    pub fn previous_statuses(previous: &RunDetail, current: &RunDetail) -> HashMap<TestId, Status> {
        RunDiff::with_previous_statuses(previous, current).1
    }

    /// Whether nothing changed that a list shows.
    pub fn is_empty(&self) -> bool {
        self.new_failures.is_empty()
            && self.fixed.is_empty()
            && self.still_failing.is_empty()
            && self.new_tests.is_empty()
            && self.removed_tests.is_empty()
            && self.not_executed.is_empty()
            && self.duration_changes.is_empty()
    }
}
