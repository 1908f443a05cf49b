//! Times and durations as people read them, in the seed's formats.

use chrono::{DateTime, Duration, Utc};

/// The seed's display format: `dd-mm-YYYY  HH:MM:SS` (two spaces), UTC.
pub(crate) fn display_time(time: DateTime<Utc>) -> String {
    time.format("%d-%m-%Y  %H:%M:%S").to_string()
}

/// A duration in its two largest units, as Django's `timesince`: `2 hours, 5 minutes`,
/// `0 minutes` below a minute. Negative durations (clocks disagreeing) read as zero.
pub(crate) fn human_duration(duration: Duration) -> String {
    two_units(duration, " ")
}

/// Django's `timesince` text exactly, as the seed's API answered it: `human_duration` with
/// a non-breaking space between each number and its unit (`2\u{a0}hours, 5\u{a0}minutes`).
pub(crate) fn timesince(duration: Duration) -> String {
    two_units(duration, "\u{a0}")
}

fn two_units(duration: Duration, space: &str) -> String {
    const UNITS: [(&str, i64); 6] = [
        ("year", 365 * 24 * 3600),
        ("month", 30 * 24 * 3600),
        ("week", 7 * 24 * 3600),
        ("day", 24 * 3600),
        ("hour", 3600),
        ("minute", 60),
    ];
    let seconds = duration.num_seconds().max(0);
    let Some(first) = UNITS.iter().position(|(_, size)| seconds >= *size) else {
        return format!("0{space}minutes");
    };
    let plural = |count: i64, name: &str| {
        format!("{count}{space}{name}{}", if count == 1 { "" } else { "s" })
    };
    let (name, size) = UNITS[first];
    let count = seconds / size;
    let mut text = plural(count, name);
    if let Some((next_name, next_size)) = UNITS.get(first + 1) {
        let rest = (seconds - count * size) / next_size;
        if rest > 0 {
            text = format!("{text}, {}", plural(rest, next_name));
        }
    }
    text
}

/// `human_duration` of the time from `then` to `now`, with " ago".
pub(crate) fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", human_duration(now - then))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn seed_display_format() {
        let time = Utc.with_ymd_and_hms(2018, 12, 30, 13, 1, 57).unwrap();
        assert_eq!(display_time(time), "30-12-2018  13:01:57");
    }

    #[test]
    fn durations_read_like_timesince() {
        assert_eq!(human_duration(Duration::seconds(30)), "0 minutes");
        assert_eq!(human_duration(Duration::seconds(61)), "1 minute");
        assert_eq!(human_duration(Duration::minutes(125)), "2 hours, 5 minutes");
        assert_eq!(
            human_duration(Duration::hours(24 * 3 + 1)),
            "3 days, 1 hour"
        );
        assert_eq!(human_duration(Duration::days(3)), "3 days");
        assert_eq!(human_duration(Duration::days(8)), "1 week, 1 day");
        assert_eq!(human_duration(Duration::seconds(-5)), "0 minutes");
    }

    #[test]
    fn timesince_keeps_number_and_unit_together() {
        assert_eq!(timesince(Duration::seconds(7)), "0\u{a0}minutes");
        assert_eq!(
            timesince(Duration::minutes(125)),
            "2\u{a0}hours, 5\u{a0}minutes"
        );
    }
}
