//! Statuses, their priority, and counts of tests by status.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The status of a test, a scenario, a master scenario or a run.
///
/// `waiting` and `running` are *ongoing*; the other six are *finished*.
/// Serialised in lowercase, as the seed's runners send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Status {
    /// Planned, not started yet.
    Waiting,
    /// Started, not stopped yet.
    Running,
    /// Finished successfully.
    Passed,
    /// Finished with warnings.
    Warning,
    /// Finished with a failed check.
    Failed,
    /// Finished with an error in the test itself.
    Error,
    /// Finished without a known result (abandoned, interrupted, or no tests).
    Unknown,
    /// Cancelled; cancelling one test cancels its whole run.
    Cancelled,
}

impl Status {
    /// Every status, in declaration order (the order of [`StatusCounts`]).
    pub const ALL: [Status; 8] = [
        Status::Waiting,
        Status::Running,
        Status::Passed,
        Status::Warning,
        Status::Failed,
        Status::Error,
        Status::Unknown,
        Status::Cancelled,
    ];

    /// Every status, highest aggregation priority first ([priority](crate::rules#aggregation):
    /// cancelled, running, waiting, unknown, failed, error, warning, passed).
    pub const BY_PRIORITY: [Status; 8] = [
        Status::Cancelled,
        Status::Running,
        Status::Waiting,
        Status::Unknown,
        Status::Failed,
        Status::Error,
        Status::Warning,
        Status::Passed,
    ];

    /// Aggregation priority: higher wins when statuses are combined.
    pub fn priority(self) -> u8 {
        match self {
            Status::Cancelled => 7,
            Status::Running => 6,
            Status::Waiting => 5,
            Status::Unknown => 4,
            Status::Failed => 3,
            Status::Error => 2,
            Status::Warning => 1,
            Status::Passed => 0,
        }
    }

    /// `waiting` or `running`.
    pub fn is_ongoing(self) -> bool {
        matches!(self, Status::Waiting | Status::Running)
    }

    /// Not ongoing: one of the six final statuses.
    pub fn is_finished(self) -> bool {
        !self.is_ongoing()
    }

    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Running => "running",
            Status::Passed => "passed",
            Status::Warning => "warning",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Unknown => "unknown",
            Status::Cancelled => "cancelled",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The higher-priority of two statuses.
    pub fn max_priority(self, other: Status) -> Status {
        if other.priority() > self.priority() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| Error::invalid("status", format!("unknown status `{s}`")))
    }
}

/// The status of a machine: its latest run's status, or `not-available` when it has no run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MachineStatus {
    /// The status of the machine's latest run.
    Run(Status),
    /// The machine has no run.
    #[serde(with = "not_available")]
    NotAvailable,
}

impl MachineStatus {
    /// The wire name: a status name or `not-available`.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineStatus::Run(status) => status.as_str(),
            MachineStatus::NotAvailable => "not-available",
        }
    }
}

impl fmt::Display for MachineStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

mod not_available {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("not-available")
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "not-available" {
            Ok(())
        } else {
            Err(D::Error::custom("expected `not-available`"))
        }
    }
}

/// How many tests are in each status: the aggregate kept per scenario and per run so that an
/// event updates counts instead of rescanning the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StatusCounts([u32; 8]);

impl StatusCounts {
    /// No tests.
    pub const fn new() -> Self {
        StatusCounts([0; 8])
    }

    /// The count of tests in `status`.
    pub fn get(&self, status: Status) -> u32 {
        self.0[status.index()]
    }

    /// Tests that failed a check or raised an error (`failed` and `error`): what a page
    /// shows beside a run's status.
    pub fn failures(&self) -> u32 {
        self.get(Status::Failed) + self.get(Status::Error)
    }

    /// Sets the count of tests in `status`.
    pub fn set(&mut self, status: Status, count: u32) {
        self.0[status.index()] = count;
    }

    /// Adds one test in `status`.
    pub fn add(&mut self, status: Status) {
        self.0[status.index()] += 1;
    }

    /// Moves `count` tests from one status to another. Saturates rather than underflows, so a
    /// corrupt backend row cannot panic the server.
    pub fn shift(&mut self, from: Status, to: Status, count: u32) {
        let moved = count.min(self.0[from.index()]);
        self.0[from.index()] -= moved;
        self.0[to.index()] += moved;
    }

    /// The number of tests counted.
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }

    /// Tests still waiting or running.
    pub fn ongoing(&self) -> u32 {
        self.get(Status::Waiting) + self.get(Status::Running)
    }

    /// Tests in a finished status.
    pub fn finished(&self) -> u32 {
        self.total() - self.ongoing()
    }

    /// The aggregated status: the highest-priority status present, or `unknown` with no tests.
    pub fn status(&self) -> Status {
        Status::BY_PRIORITY
            .into_iter()
            .find(|status| self.get(*status) > 0)
            .unwrap_or(Status::Unknown)
    }

    /// The sum of two counts, status by status.
    pub fn plus(&self, other: &StatusCounts) -> StatusCounts {
        let mut sum = *self;
        for (mine, theirs) in sum.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
        sum
    }

    /// `(status, count)` pairs in [`Status::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Status, u32)> + '_ {
        Status::ALL
            .into_iter()
            .map(|status| (status, self.get(status)))
    }
}

impl FromIterator<Status> for StatusCounts {
    fn from_iter<I: IntoIterator<Item = Status>>(iter: I) -> Self {
        let mut counts = StatusCounts::new();
        for status in iter {
            counts.add(status);
        }
        counts
    }
}

/// Serialised as an object with one field per status: `{"waiting": 3, "running": 1, ...}`.
impl Serialize for StatusCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(8))?;
        for (status, count) in self.iter() {
            map.serialize_entry(status.as_str(), &count)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for StatusCounts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<Status, u32>::deserialize(deserializer)?;
        let mut counts = StatusCounts::new();
        for (status, count) in map {
            counts.set(status, count);
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_order_matches_spec() {
        let priorities: Vec<u8> = Status::BY_PRIORITY.iter().map(|s| s.priority()).collect();
        assert_eq!(priorities, vec![7, 6, 5, 4, 3, 2, 1, 0]);
    }

    #[test]
    fn wire_names_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
        assert!("PASSED".parse::<Status>().is_err());
        assert!("done".parse::<Status>().is_err());
    }

    #[test]
    fn machine_status_serialises_not_available() {
        assert_eq!(
            serde_json::to_string(&MachineStatus::NotAvailable).unwrap(),
            "\"not-available\""
        );
        assert_eq!(
            serde_json::to_string(&MachineStatus::Run(Status::Failed)).unwrap(),
            "\"failed\""
        );
        let parsed: MachineStatus = serde_json::from_str("\"not-available\"").unwrap();
        assert_eq!(parsed, MachineStatus::NotAvailable);
    }

    #[test]
    fn empty_counts_are_unknown() {
        assert_eq!(StatusCounts::new().status(), Status::Unknown);
    }

    #[test]
    fn one_failure_among_passes_is_failed() {
        let counts: StatusCounts = [Status::Passed, Status::Failed, Status::Passed]
            .into_iter()
            .collect();
        assert_eq!(counts.status(), Status::Failed);
    }

    #[test]
    fn counts_serialise_as_object() {
        let counts: StatusCounts = [Status::Passed, Status::Passed].into_iter().collect();
        let json = serde_json::to_value(counts).unwrap();
        assert_eq!(json["passed"], 2);
        assert_eq!(json["waiting"], 0);
        let back: StatusCounts = serde_json::from_value(json).unwrap();
        assert_eq!(back, counts);
    }
}
