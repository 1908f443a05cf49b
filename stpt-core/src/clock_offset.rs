//! How far a runner's clock is from the server's ([two clocks](crate::rules#two-clocks)).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A runner clock's offset from the server's: runner time minus server time, estimated from
/// the machine's events (positive when the rig's clock is ahead). Subtract it from a runner
/// timestamp to place that moment on the server's time line.
///
/// Each event gives a sample, its runner timestamp minus its receipt time. A sample is the true
/// offset minus however long the event took to arrive, so the largest recent sample is the best
/// estimate: a sample above the estimate is taken at once, and one below (a slow request, or a
/// clock set back) moves the estimate only [`ClockOffset::SETTLE`]th of the way, so one slow
/// request barely moves it while a real change of clock is followed within a few dozen events.
/// A runner replaying a backlog of old events pulls the estimate down the same way; it comes
/// back with the first live event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClockOffset {
    millis: i64,
}

impl ClockOffset {
    /// A sample below the estimate moves it by this fraction of the difference.
    pub const SETTLE: i64 = 8;

    /// An offset of `millis` milliseconds.
    pub fn from_millis(millis: i64) -> Self {
        ClockOffset { millis }
    }

    /// Milliseconds, runner minus server.
    pub fn millis(self) -> i64 {
        self.millis
    }

    /// The offset as a duration, runner minus server.
    pub fn duration(self) -> Duration {
        Duration::milliseconds(self.millis)
    }

    /// The estimate after an event stamped `runner` by the runner and received at `received`,
    /// given the previous estimate (`None` for a machine's first event).
    pub fn update(
        previous: Option<ClockOffset>,
        runner: DateTime<Utc>,
        received: DateTime<Utc>,
    ) -> ClockOffset {
        let sample = (runner - received).num_milliseconds();
        let millis = match previous {
            None => sample,
            Some(previous) if sample >= previous.millis => sample,
            Some(previous) => previous.millis - (previous.millis - sample) / Self::SETTLE,
        };
        ClockOffset { millis }
    }

    /// Whether the offset is large enough to show: over a minute either way.
    pub fn is_notable(self) -> bool {
        self.millis.abs() > 60_000
    }

    /// A runner timestamp placed on the server's time line.
    pub fn to_server_time(self, runner: DateTime<Utc>) -> DateTime<Utc> {
        runner - self.duration()
    }

    /// The offset in words, as pages show it: `rig clock 59 min ahead of the server`.
    pub fn describe(self) -> String {
        let seconds = self.millis.unsigned_abs() / 1000;
        let amount = if seconds < 120 {
            format!("{seconds} s")
        } else if seconds < 2 * 3600 {
            format!("{} min", (seconds + 30) / 60)
        } else {
            let minutes = (seconds + 30) / 60;
            match minutes % 60 {
                0 => format!("{} h", minutes / 60),
                rest => format!("{} h {rest} min", minutes / 60),
            }
        };
        let direction = if self.millis >= 0 {
            "ahead of"
        } else {
            "behind"
        };
        format!("rig clock {amount} {direction} the server")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn the_first_sample_is_the_estimate() {
        let offset = ClockOffset::update(None, at(3600), at(0));
        assert_eq!(offset.millis(), 3_600_000);
        assert!(offset.is_notable());
        assert_eq!(offset.describe(), "rig clock 60 min ahead of the server");
    }

    #[test]
    fn one_slow_request_barely_moves_it_and_a_faster_one_is_taken() {
        let settled = ClockOffset::from_millis(-2_000);
        // This event took 8 s to arrive.
        let slow = ClockOffset::update(Some(settled), at(100), at(110));
        assert_eq!(slow.millis(), -3_000);
        let fast = ClockOffset::update(Some(slow), at(200), at(201));
        assert_eq!(fast.millis(), -1_000);
    }

    #[test]
    fn a_clock_set_back_is_followed() {
        let mut offset = ClockOffset::from_millis(3_600_000);
        for event in 0..60 {
            offset = ClockOffset::update(Some(offset), at(event), at(event));
        }
        assert!(!offset.is_notable(), "{offset:?}");
    }

    #[test]
    fn descriptions_read_naturally() {
        let text = |millis| ClockOffset::from_millis(millis).describe();
        assert_eq!(text(-45_000), "rig clock 45 s behind the server");
        assert_eq!(
            text(59 * 60_000 + 10_000),
            "rig clock 59 min ahead of the server"
        );
        assert_eq!(
            text(-(3 * 3600 + 20 * 60) * 1000),
            "rig clock 3 h 20 min behind the server"
        );
        assert_eq!(text(5 * 3600 * 1000), "rig clock 5 h ahead of the server");
        assert!(!ClockOffset::from_millis(59_000).is_notable());
    }

    #[test]
    fn runner_times_move_onto_the_server_time_line() {
        let offset = ClockOffset::from_millis(3_600_000);
        assert_eq!(offset.to_server_time(at(3600)), at(0));
    }
}
