//! Flaky tests: outcomes that flip between pass and fail on the same machine.

use std::collections::VecDeque;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{TestIdentity, TestKey};
use crate::{MachineId, Status, TestId};

/// How many of a test's latest outcomes on a machine its [`FlakyWindow`] keeps.
pub const FLAKY_WINDOW: usize = 20;

/// What a finished test's status says about the test: it passed or it failed.
///
/// `passed` and `warning` pass; `failed` and `error` fail. `unknown` and `cancelled` say
/// nothing about the test (it was interrupted or never ran) and ongoing statuses are not
/// results yet: they have no outcome and never enter a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    /// Passed, with or without warnings.
    Pass,
    /// Failed a check or raised an error.
    Fail,
}

impl Outcome {
    /// The outcome of `status`, if it has one.
    pub fn of(status: Status) -> Option<Outcome> {
        match status {
            Status::Passed | Status::Warning => Some(Outcome::Pass),
            Status::Failed | Status::Error => Some(Outcome::Fail),
            Status::Waiting | Status::Running | Status::Unknown | Status::Cancelled => None,
        }
    }

    fn letter(self) -> char {
        match self {
            Outcome::Pass => 'P',
            Outcome::Fail => 'F',
        }
    }
}

/// A test's latest outcomes on one machine (oldest first, at most [`FLAKY_WINDOW`]), with
/// the number of flips between neighbours and of failures kept up to date as outcomes are
/// pushed: adding a result costs the same however long the history, and the counts are
/// stored beside the outcomes so that the flakiest tests are an index read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlakyWindow {
    outcomes: VecDeque<Outcome>,
    flips: u32,
    failures: u32,
}

impl FlakyWindow {
    /// Adds the newest outcome, dropping the oldest beyond the window.
    pub fn push(&mut self, outcome: Outcome) {
        if self.outcomes.len() == FLAKY_WINDOW {
            if let Some(oldest) = self.outcomes.pop_front() {
                if self.outcomes.front().is_some_and(|&next| next != oldest) {
                    self.flips -= 1;
                }
                if oldest == Outcome::Fail {
                    self.failures -= 1;
                }
            }
        }
        if self.outcomes.back().is_some_and(|&last| last != outcome) {
            self.flips += 1;
        }
        if outcome == Outcome::Fail {
            self.failures += 1;
        }
        self.outcomes.push_back(outcome);
    }

    /// Adds the outcome of `status`, if it has one; answers whether it had.
    pub fn push_status(&mut self, status: Status) -> bool {
        Outcome::of(status)
            .map(|outcome| self.push(outcome))
            .is_some()
    }

    /// The kept outcomes, oldest first.
    pub fn outcomes(&self) -> impl ExactSizeIterator<Item = Outcome> + '_ {
        self.outcomes.iter().copied()
    }

    /// How many outcomes are kept.
    pub fn len(&self) -> u32 {
        u32::try_from(self.outcomes.len()).unwrap_or(u32::MAX)
    }

    /// Whether no outcome is kept.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// Neighbouring outcomes that differ.
    pub fn flips(&self) -> u32 {
        self.flips
    }

    /// Failures among the kept outcomes.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Passes among the kept outcomes.
    pub fn passes(&self) -> u32 {
        self.len() - self.failures
    }

    /// Flips over the chances to flip (outcomes − 1), 0 to 1; 0 with fewer than two outcomes.
    pub fn flip_rate(&self) -> f64 {
        match self.len() {
            0 | 1 => 0.0,
            n => f64::from(self.flips) / f64::from(n - 1),
        }
    }

    /// Passes over outcomes, 0 to 1; `None` when empty.
    pub fn pass_rate(&self) -> Option<f64> {
        (!self.is_empty()).then(|| f64::from(self.passes()) / f64::from(self.len()))
    }

    /// The outcomes as stored text: `P` for a pass, `F` for a failure, oldest first.
    pub fn to_text(&self) -> String {
        self.outcomes
            .iter()
            .map(|outcome| outcome.letter())
            .collect()
    }

    /// A window from [`FlakyWindow::to_text`]'s form; other characters are skipped and only
    /// the last [`FLAKY_WINDOW`] outcomes kept.
    pub fn from_text(text: &str) -> Self {
        let mut window = FlakyWindow::default();
        for letter in text.chars() {
            match letter {
                'P' => window.push(Outcome::Pass),
                'F' => window.push(Outcome::Fail),
                _ => {}
            }
        }
        window
    }
}

/// The window as the API shows it: its outcomes and their counts.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = FlakyWindow))]
struct FlakyWindowWire {
    /// Outcomes, oldest first: `P` pass, `F` fail.
    outcomes: String,
    /// Neighbouring outcomes that differ.
    #[serde(default)]
    flips: u32,
    /// Flips over outcomes − 1.
    #[serde(default)]
    flip_rate: f64,
    /// Failures among the outcomes.
    #[serde(default)]
    failures: u32,
}

impl Serialize for FlakyWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FlakyWindowWire {
            outcomes: self.to_text(),
            flips: self.flips,
            flip_rate: self.flip_rate(),
            failures: self.failures,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FlakyWindow {
    /// Rebuilt from the outcomes; the counts are derived, never trusted.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FlakyWindowWire::deserialize(deserializer)
            .map(|wire| FlakyWindow::from_text(&wire.outcomes))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for FlakyWindow {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <FlakyWindowWire as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for FlakyWindow {}

/// When a test counts as flaky.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlakyPolicy {
    /// Flaky once its window holds at least this many flips between pass and fail.
    pub min_flips: u32,
}

impl FlakyPolicy {
    /// Whether `window` is flaky under this policy.
    pub fn is_flaky(&self, window: &FlakyWindow) -> bool {
        self.min_flips > 0 && window.flips() >= self.min_flips
    }
}

impl Default for FlakyPolicy {
    /// Three flips in the last 20 results: one failure among passes (two flips) is a failure
    /// to look at, not yet flakiness.
    fn default() -> Self {
        FlakyPolicy { min_flips: 3 }
    }
}

/// A test of a run with its identity's window on the run's machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestFlakiness {
    /// The test in the run.
    pub test_id: TestId,
    /// Its identity's key.
    pub key: TestKey,
    /// Its identity's latest outcomes on the run's machine.
    pub window: FlakyWindow,
}

/// A test identity's window on one machine, for the list of the flakiest tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlakyTest {
    /// The identity.
    pub identity: TestIdentity,
    /// Its key.
    pub key: TestKey,
    /// The machine.
    pub machine_id: MachineId,
    /// The machine's name.
    pub machine_name: String,
    /// The identity's latest outcomes on that machine.
    pub window: FlakyWindow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_and_failures_follow_the_outcomes() {
        let window = FlakyWindow::from_text("PPFPF");
        assert_eq!(window.flips(), 3);
        assert_eq!(window.failures(), 2);
        assert_eq!(window.passes(), 3);
        assert!((window.flip_rate() - 0.75).abs() < 1e-9);
        assert!(FlakyPolicy::default().is_flaky(&window));
        assert!(!FlakyPolicy::default().is_flaky(&FlakyWindow::from_text("PPPFP")));
    }

    #[test]
    fn the_oldest_outcome_leaves_with_its_flip() {
        let mut window = FlakyWindow::from_text(&format!("F{}", "P".repeat(FLAKY_WINDOW - 1)));
        assert_eq!((window.flips(), window.failures()), (1, 1));
        window.push(Outcome::Pass);
        assert_eq!(
            (window.flips(), window.failures(), window.len()),
            (0, 0, 20)
        );
    }

    #[test]
    fn statuses_without_an_outcome_stay_out() {
        let mut window = FlakyWindow::default();
        for status in [
            Status::Unknown,
            Status::Cancelled,
            Status::Running,
            Status::Waiting,
        ] {
            assert!(!window.push_status(status));
        }
        assert!(window.push_status(Status::Warning));
        assert!(window.push_status(Status::Error));
        assert_eq!(window.to_text(), "PF");
    }

    #[test]
    fn the_wire_form_is_rebuilt_from_the_outcomes() {
        let json = serde_json::to_value(FlakyWindow::from_text("PF")).unwrap_or_default();
        assert_eq!(json["outcomes"], "PF");
        assert_eq!(json["flips"], 1);
        let lying = r#"{"outcomes": "PP", "flips": 9, "flip_rate": 1.0, "failures": 9}"#;
        let window: FlakyWindow = serde_json::from_str(lying).unwrap_or_default();
        assert_eq!((window.flips(), window.failures()), (0, 0));
    }
}
