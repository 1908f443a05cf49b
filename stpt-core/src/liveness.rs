//! Is this rig alive? A machine's liveness from how long it has been silent.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{MachineStatus, RunSummary};

/// Whether a machine is being heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Liveness {
    /// Heard from within its expected interval.
    Online,
    /// Running a test, and silent for longer than its tests usually take (or
    /// [`LivenessPolicy::quiet_after`]): maybe a long test, maybe trouble.
    Quiet,
    /// Silent for [`LivenessPolicy::offline_after`] and, while running, longer than three times
    /// its tests' usual duration. Its ongoing run is closed `unknown` (see
    /// [`crate::LivenessWatch`]).
    Offline,
}

impl Liveness {
    /// The lowercase name used in the API and on pages.
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Online => "online",
            Liveness::Quiet => "quiet",
            Liveness::Offline => "offline",
        }
    }
}

impl std::fmt::Display for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When silence makes a machine quiet or offline. One policy per server; the defaults suit
/// rigs whose runners post a start and a stop per test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessPolicy {
    /// Silence after which a machine running a test is quiet, at the least (longer when its
    /// tests usually take longer). Default 2 minutes.
    pub quiet_after: Duration,
    /// Silence after which a machine is offline, at the least (while running, also longer
    /// than three times its tests' usual duration). Default 10 minutes.
    pub offline_after: Duration,
}

impl Default for LivenessPolicy {
    fn default() -> Self {
        LivenessPolicy {
            quiet_after: Duration::minutes(2),
            offline_after: Duration::minutes(10),
        }
    }
}

/// One machine's own liveness thresholds, set by an admin (`Store::set_machine_timeouts`):
/// each one set replaces the server's for that machine (`--quiet-after`, `--offline-after`),
/// each one unset (`null`) leaves the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineTimeouts {
    /// Silence, in seconds, after which the machine running a test is quiet, at the least
    /// (longer when its tests usually take longer); `null`: the server's.
    pub quiet_after_secs: Option<u32>,
    /// Silence, in seconds, after which the machine is offline, at the least (while running,
    /// also longer than three times its tests' usual duration); `null`: the server's.
    pub offline_after_secs: Option<u32>,
}

impl MachineTimeouts {
    /// The longest threshold a machine may have: 30 days.
    pub const MAX_SECS: u32 = 30 * 24 * 3600;

    /// Whether the machine uses the server's thresholds only.
    pub fn is_empty(&self) -> bool {
        self.quiet_after_secs.is_none() && self.offline_after_secs.is_none()
    }

    /// [`crate::Error::InvalidInput`] unless each threshold set is between 1 second and
    /// [`MachineTimeouts::MAX_SECS`], and quiet comes no later than offline when both are set.
    pub fn check(&self) -> crate::Result<()> {
        for (field, secs) in [
            ("quiet threshold", self.quiet_after_secs),
            ("offline threshold", self.offline_after_secs),
        ] {
            if secs.is_some_and(|secs| secs == 0 || secs > Self::MAX_SECS) {
                return Err(crate::Error::invalid(
                    field,
                    "must be between 1 second and 30 days",
                ));
            }
        }
        if let (Some(quiet), Some(offline)) = (self.quiet_after_secs, self.offline_after_secs) {
            if quiet > offline {
                return Err(crate::Error::invalid(
                    "quiet threshold",
                    "must not be longer than the offline threshold",
                ));
            }
        }
        Ok(())
    }
}

/// What liveness is judged from: when the machine was last heard, and its latest run if that
/// is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// When the machine last posted (server clock).
    pub last_seen: Option<DateTime<Utc>>,
    /// How long its running tests usually take, if it is running: from history where known,
    /// else [`Activity::usual_test_in_run`] of its ongoing run.
    pub running: Option<Option<Duration>>,
}

impl Activity {
    /// A machine's activity from its status, last-seen time and (when running) its latest run.
    pub fn of(
        status: MachineStatus,
        last_seen: Option<DateTime<Utc>>,
        latest_run: Option<&RunSummary>,
    ) -> Self {
        let ongoing = matches!(status, MachineStatus::Run(s) if s.is_ongoing());
        Activity {
            last_seen,
            running: ongoing
                .then(|| latest_run.and_then(|run| Self::usual_test_in_run(run, last_seen))),
        }
    }

    /// The mean time a finished test of `run` took, on the server's clock: from the run's start
    /// to the machine's last event, over its finished tests. `None` before a test finished.
    pub fn usual_test_in_run(
        run: &RunSummary,
        last_seen: Option<DateTime<Utc>>,
    ) -> Option<Duration> {
        let counts = &run.statistics.counts;
        let finished = counts.finished();
        let elapsed = last_seen? - run.timestamp_start?;
        (finished > 0 && elapsed > Duration::zero())
            .then(|| elapsed / i32::try_from(finished).unwrap_or(i32::MAX))
    }
}

impl LivenessPolicy {
    /// This policy with machine's own thresholds in place of the server's where it has them.
    pub fn for_machine(&self, own: &MachineTimeouts) -> LivenessPolicy {
        let seconds = |secs: Option<u32>, server: Duration| {
            secs.map_or(server, |secs| Duration::seconds(i64::from(secs)))
        };
        LivenessPolicy {
            quiet_after: seconds(own.quiet_after_secs, self.quiet_after),
            offline_after: seconds(own.offline_after_secs, self.offline_after),
        }
    }

    /// Silence after which a machine doing `activity` is quiet, if it can be.
    pub fn quiet_threshold(&self, activity: &Activity) -> Option<Duration> {
        let usual = activity.running?;
        Some(usual.map_or(self.quiet_after, |usual| usual.max(self.quiet_after)))
    }

    /// Silence after which a machine doing `activity` is offline.
    pub fn offline_threshold(&self, activity: &Activity) -> Duration {
        match activity.running {
            Some(Some(usual)) => (usual * 3).max(self.offline_after),
            _ => self.offline_after,
        }
    }

    /// The machine's liveness at `now`.
    pub fn judge(&self, activity: &Activity, now: DateTime<Utc>) -> Liveness {
        let Some(last_seen) = activity.last_seen else {
            return Liveness::Offline;
        };
        let silence = now - last_seen;
        if silence > self.offline_threshold(activity) {
            Liveness::Offline
        } else if self
            .quiet_threshold(activity)
            .is_some_and(|quiet| silence > quiet)
        {
            Liveness::Quiet
        } else {
            Liveness::Online
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machines_own_thresholds_replace_the_servers_one_by_one() {
        let server = LivenessPolicy::default();
        assert_eq!(server.for_machine(&MachineTimeouts::default()), server);
        let own = MachineTimeouts {
            quiet_after_secs: None,
            offline_after_secs: Some(60),
        };
        let policy = server.for_machine(&own);
        assert_eq!(policy.quiet_after, server.quiet_after);
        assert_eq!(policy.offline_after, Duration::seconds(60));
    }

    #[test]
    fn thresholds_out_of_range_are_refused() {
        let refused = [
            (Some(0), None),
            (None, Some(MachineTimeouts::MAX_SECS + 1)),
            (Some(600), Some(60)),
        ];
        for (quiet, offline) in refused {
            let timeouts = MachineTimeouts {
                quiet_after_secs: quiet,
                offline_after_secs: offline,
            };
            assert!(
                matches!(timeouts.check(), Err(crate::Error::InvalidInput { .. })),
                "{timeouts:?}"
            );
        }
        let fine = MachineTimeouts {
            quiet_after_secs: Some(60),
            offline_after_secs: Some(MachineTimeouts::MAX_SECS),
        };
        assert!(fine.check().is_ok());
    }
}
