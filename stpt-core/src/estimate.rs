//! When will it finish? Per-test duration histories, kept incrementally, and a run's ETA.
//!
//! A test's identity across runs is its file path and name. For each identity stpt keeps its
//! last [`DURATION_WINDOW`] durations on each machine and across all machines
//! ([`DurationHistory`]); each finished test adds one sample ([`Store::record_finished`]),
//! so recording stays constant-cost and reading an estimate is a lookup, never a scan of past
//! runs. An estimate is the median of the history: robust to the odd hung or aborted run.
//! Only `passed`, `warning`, `failed` and `error` results count: a `cancelled` or `unknown`
//! test did not run its course.
//!
//! [`Store::record_finished`]: crate::Store::record_finished

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{ClockOffset, FileRef, MachineId, RunSummary, Status, TestId, TestState};

/// How many of an identity's latest durations an estimate is taken from.
pub const DURATION_WINDOW: usize = 20;

/// A test running longer than this many times its usual duration is flagged as overrunning.
pub const OVERRUN_FACTOR: i32 = 3;

/// The latest durations of one test identity (oldest first), in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationHistory {
    samples: Vec<i64>,
}

impl DurationHistory {
    /// A history of `samples` (oldest first); only the last [`DURATION_WINDOW`] are kept.
    pub fn from_samples(mut samples: Vec<i64>) -> Self {
        let excess = samples.len().saturating_sub(DURATION_WINDOW);
        samples.drain(..excess);
        DurationHistory { samples }
    }

    /// The kept durations in milliseconds, oldest first.
    pub fn samples(&self) -> &[i64] {
        &self.samples
    }

    /// Adds the newest duration, dropping the oldest beyond the window.
    pub fn push(&mut self, millis: i64) {
        if self.samples.len() == DURATION_WINDOW {
            self.samples.remove(0);
        }
        self.samples.push(millis);
    }

    /// The median duration (the lower middle of an even count), or `None` when empty.
    pub fn median(&self) -> Option<Duration> {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let middle = sorted.len().checked_sub(1)? / 2;
        sorted.get(middle).map(|&ms| Duration::milliseconds(ms))
    }

    /// The history as stored text: milliseconds separated by commas. A backend stores it in
    /// one column.
    pub fn to_text(&self) -> String {
        let texts: Vec<String> = self.samples.iter().map(i64::to_string).collect();
        texts.join(",")
    }

    /// A history from [`DurationHistory::to_text`]'s form; what does not parse is skipped.
    pub fn from_text(text: &str) -> Self {
        DurationHistory::from_samples(
            text.split(',')
                .filter_map(|part| part.trim().parse().ok())
                .collect(),
        )
    }
}

/// A test that just finished, to add to its identity's histories: its duration to the
/// duration histories ([`DurationHistory`]), its outcome to the flaky window on its machine
/// ([`crate::history::FlakyWindow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedTest {
    /// The machine that ran it.
    pub machine_id: MachineId,
    /// The test.
    pub test_id: TestId,
    /// Its file (the duration histories' identity).
    pub file: FileRef,
    /// How it finished.
    pub status: Status,
    /// How long it took, in milliseconds (runner clock, stop minus start), when known.
    pub millis: Option<i64>,
}

impl FinishedTest {
    /// What a test that just changed gives, if it finished.
    pub fn of(machine_id: MachineId, test: &TestState) -> Option<Self> {
        if test.status.is_ongoing() {
            return None;
        }
        let millis = crate::duration(test.timestamp_start, test.timestamp_stop)
            .map(|duration| duration.num_milliseconds());
        Some(FinishedTest {
            machine_id,
            test_id: test.id,
            file: FileRef {
                file_path: test.file_path.clone(),
                file_name: test.file_name.clone(),
            },
            status: test.status,
            millis,
        })
    }

    /// The duration it adds to the duration histories, if its result counts (see the module
    /// docs).
    pub fn duration_sample(&self) -> Option<i64> {
        let counts = matches!(
            self.status,
            Status::Passed | Status::Warning | Status::Failed | Status::Error
        );
        self.millis.filter(|&millis| counts && millis >= 0)
    }
}

/// A run and what it still has to do: what [`crate::Store::remaining_work`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRemaining {
    /// The run.
    pub run: RunSummary,
    /// One entry per test identity with waiting or running tests.
    pub work: Vec<RemainingWork>,
}

/// What a run still has to do for one test identity, with that identity's histories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemainingWork {
    /// The identity.
    pub file: FileRef,
    /// How many of its tests wait in the run.
    pub waiting: u32,
    /// The running test of this identity, and when it started (runner clock), if any.
    pub running: Option<(TestId, DateTime<Utc>)>,
    /// Its history on the run's machine.
    pub on_machine: DurationHistory,
    /// Its history across all machines.
    pub everywhere: DurationHistory,
}

impl RemainingWork {
    /// The identity's usual duration: the median on this machine, else across machines.
    pub fn usual(&self) -> Option<Duration> {
        self.on_machine
            .median()
            .or_else(|| self.everywhere.median())
    }
}

/// The running test measured against its usual duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunningProgress {
    /// The test.
    pub test_id: TestId,
    /// How long it has been running, on the server's time line, in seconds.
    pub elapsed_seconds: i64,
    /// How long it usually takes, in seconds, if known.
    pub usual_seconds: Option<i64>,
    /// Running longer than [`OVERRUN_FACTOR`] times its usual duration.
    pub overrunning: bool,
}

/// When a run will finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunEta {
    /// The run.
    pub run_id: crate::RunId,
    /// When the estimate was made (server clock).
    pub now: DateTime<Utc>,
    /// Expected time left, in seconds; `None` when nothing is known to estimate from (or the
    /// run is over: then 0).
    pub remaining_seconds: Option<i64>,
    /// When the run is expected to end; `None` as `remaining_seconds`.
    pub ends_at: Option<DateTime<Utc>>,
    /// Share of the expected time done, from 0 to 1; `None` as `remaining_seconds`.
    pub progress: Option<f64>,
    /// `true` when some tests have no history and were estimated from this run's own pace.
    pub rough: bool,
    /// The running test against its usual duration, if a test is running.
    pub running: Option<RunningProgress>,
}

/// Estimates when `run` ends, from what it still has to do (`remaining`), at `now` (server
/// clock), with the machine's runner clock `offset` (to place the running test's start on
/// the server's time line).
///
/// Each waiting test takes its usual duration; the running test takes what remains of its
/// usual duration (nothing once overdue: it may end any moment). Tests with no history take
/// the mean of this run's finished tests so far, and the estimate is marked rough; with no
/// finished test either, there is no estimate.
pub fn estimate_run(
    run: &RunSummary,
    remaining: &[RemainingWork],
    now: DateTime<Utc>,
    offset: Option<ClockOffset>,
) -> RunEta {
    let mut eta = RunEta {
        run_id: run.id,
        now,
        remaining_seconds: None,
        ends_at: None,
        progress: None,
        rough: false,
        running: None,
    };
    if !run.status.is_ongoing() {
        eta.remaining_seconds = Some(0);
        eta.progress = Some(1.0);
        return eta;
    }
    let elapsed = run.timestamp_start.map(|start| now - start);
    let running_elapsed = remaining.iter().find_map(|work| {
        let (test_id, started) = work.running?;
        let started = offset.map_or(started, |offset| offset.to_server_time(started));
        Some((work, test_id, (now - started).max(Duration::zero())))
    });
    // This run's own pace: its elapsed time before the running test, over its finished tests.
    let finished = run.statistics.counts.finished();
    let pace = match (elapsed, finished) {
        (Some(elapsed), 1..) => {
            let before_running = elapsed - running_elapsed.map_or(Duration::zero(), |r| r.2);
            Some(before_running.max(Duration::zero()) / i32::try_from(finished).unwrap_or(i32::MAX))
        }
        _ => None,
    };
    let mut left = Duration::zero();
    let mut known = true;
    for work in remaining {
        if work.waiting == 0 && work.running.is_none() {
            // Nothing left of this identity (a held list keeps identities that are done).
            continue;
        }
        let usual = work.usual();
        if usual.is_none() && (work.waiting > 0 || work.running.is_some()) {
            eta.rough = true;
        }
        let Some(each) = usual.or(pace) else {
            known = false;
            continue;
        };
        left += each * i32::try_from(work.waiting).unwrap_or(i32::MAX);
    }
    if let Some((work, test_id, running_for)) = running_elapsed {
        let usual = work.usual();
        eta.running = Some(RunningProgress {
            test_id,
            elapsed_seconds: running_for.num_seconds(),
            usual_seconds: usual.map(|usual| usual.num_seconds()),
            overrunning: usual.is_some_and(|usual| running_for > usual * OVERRUN_FACTOR),
        });
        match usual.or(pace) {
            Some(each) => left += (each - running_for).max(Duration::zero()),
            None => known = false,
        }
    }
    if known {
        eta.remaining_seconds = Some(left.num_seconds());
        eta.ends_at = Some(now + left);
        let done = elapsed.unwrap_or_else(Duration::zero);
        let total = done + left;
        eta.progress = Some(if total > Duration::zero() {
            done.num_milliseconds() as f64 / total.num_milliseconds() as f64
        } else {
            0.0
        });
    }
    eta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_the_window() {
        let mut history = DurationHistory::default();
        assert_eq!(history.median(), None);
        for ms in [5, 1, 9] {
            history.push(ms);
        }
        assert_eq!(history.median(), Some(Duration::milliseconds(5)));
        history.push(7);
        assert_eq!(
            history.median(),
            Some(Duration::milliseconds(5)),
            "lower middle"
        );
        for ms in 0..30 {
            history.push(1000 + ms);
        }
        assert_eq!(history.samples().len(), DURATION_WINDOW);
        assert_eq!(history.samples()[0], 1010);
    }

    #[test]
    fn text_round_trips_and_skips_garbage() {
        let history = DurationHistory::from_samples(vec![3, 1, 2]);
        assert_eq!(history.to_text(), "3,1,2");
        assert_eq!(DurationHistory::from_text("3,1,2"), history);
        assert_eq!(DurationHistory::from_text(""), DurationHistory::default());
        assert_eq!(DurationHistory::from_text("4,x,5").samples(), &[4, 5]);
    }
}
