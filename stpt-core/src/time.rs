//! Timestamps as runners send them: Python's naive `str(datetime.now())`, RFC 3339, or any
//! other form the seed's parser (Django REST framework's) took. A naive timestamp is kept
//! naive ([`RunnerTime::Naive`]) until the tracker knows the machine and so the time zone to
//! read it in ([`RunnerTimezone`]; UTC unless configured, as the seed).

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Utc,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A runner's timestamp as sent: a wall-clock reading without a zone, or an instant.
///
/// Payloads keep this distinction; the [`crate::Tracker`] reads a naive time in the machine's
/// [`RunnerTimezone`] when it applies the event ([`RunnerTime::in_zone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunnerTime {
    /// No zone or offset was given (Python's `str(datetime.now())`).
    Naive(NaiveDateTime),
    /// `Z` or an offset was given: an instant, whatever the machine's zone.
    Zoned(DateTime<Utc>),
}

impl RunnerTime {
    /// Parses a runner timestamp (the forms of [`parse_timestamp`]), keeping whether it was
    /// naive. `None` for anything else, or outside the years 1 to 9999.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (date, rest) = text.split_at_checked(text.find(['T', ' '])?)?;
        let date = parse_date(date)?;
        let rest = rest.get(1..)?;
        let zone_at = rest
            .char_indices()
            .skip(1)
            .find(|(_, c)| matches!(c, 'Z' | '+' | '-'))
            .map_or(rest.len(), |(at, _)| at);
        let (time, zone) = rest.split_at(zone_at);
        let local = NaiveDateTime::new(date, parse_time(time.trim_end())?);
        match parse_zone(zone)? {
            None => Some(RunnerTime::Naive(local)),
            Some(offset) => {
                let utc = local.checked_sub_offset(offset)?.and_utc();
                in_years(utc).map(RunnerTime::Zoned)
            }
        }
    }

    /// The instant this is, reading a naive time in `zone` (see [`RunnerTimezone::instant`]);
    /// `None` when that falls outside the years 1 to 9999.
    pub fn in_zone(self, zone: RunnerTimezone) -> Option<DateTime<Utc>> {
        match self {
            RunnerTime::Naive(local) => zone.instant(local),
            RunnerTime::Zoned(utc) => Some(utc),
        }
    }
}

impl From<DateTime<Utc>> for RunnerTime {
    fn from(utc: DateTime<Utc>) -> Self {
        RunnerTime::Zoned(utc)
    }
}

impl fmt::Display for RunnerTime {
    /// Naive as `2018-12-30T13:01:57.461401`, zoned as RFC 3339 in UTC: both parse back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunnerTime::Naive(local) => write!(f, "{}", local.format("%Y-%m-%dT%H:%M:%S%.f")),
            RunnerTime::Zoned(utc) => f.write_str(&utc.to_rfc3339()),
        }
    }
}

impl Serialize for RunnerTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunnerTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        RunnerTime::parse(&text).ok_or_else(|| not_a_timestamp(&text))
    }
}

/// The time zone a machine's runner writes naive timestamps in: an IANA name such as
/// `Europe/Warsaw`. UTC by default, as the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunnerTimezone(chrono_tz::Tz);

impl RunnerTimezone {
    /// UTC: naive timestamps are taken as they are.
    pub const UTC: RunnerTimezone = RunnerTimezone(chrono_tz::Tz::UTC);

    /// The zone's IANA name, as given.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The instant a wall-clock reading in this zone stands for; `None` outside the years 1
    /// to 9999.
    ///
    /// Around a change of offset: a time that occurs twice (clocks set back) is the earlier
    /// instant; a time that never occurs (clocks set forward) is read with the offset before
    /// the change, i.e. moved forward by the gap (02:30 in a one-hour spring gap is 03:30).
    pub fn instant(self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let utc = match self.0.from_local_datetime(&local) {
            LocalResult::Single(time) | LocalResult::Ambiguous(time, _) => time.with_timezone(&Utc),
            LocalResult::None => {
                // Offsets change at most once in a day anywhere, so a day before the
                // reading is before the gap.
                let before = local.checked_sub_signed(Duration::days(1))?;
                let offset = self.0.offset_from_utc_datetime(&before).fix();
                local.checked_sub_offset(offset)?.and_utc()
            }
        };
        in_years(utc)
    }
}

impl Default for RunnerTimezone {
    fn default() -> Self {
        RunnerTimezone::UTC
    }
}

impl FromStr for RunnerTimezone {
    type Err = Error;

    /// An IANA zone name, exactly as the database spells it (`Europe/Warsaw`, `UTC`).
    fn from_str(name: &str) -> crate::Result<Self> {
        name.trim().parse::<chrono_tz::Tz>().map(RunnerTimezone).map_err(|_| {
            Error::invalid(
                "runner_timezone",
                "is not an IANA time zone name (e.g. `Europe/Warsaw`, `UTC`; names are case-sensitive)",
            )
        })
    }
}

impl fmt::Display for RunnerTimezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for RunnerTimezone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for RunnerTimezone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(|_| {
            serde::de::Error::custom(format!("`{name}` is not an IANA time zone name"))
        })
    }
}

/// `time` read in `zone`, or invalid input naming `field`.
pub(crate) fn resolve(
    field: &str,
    time: RunnerTime,
    zone: RunnerTimezone,
) -> crate::Result<DateTime<Utc>> {
    time.in_zone(zone).ok_or_else(|| {
        Error::invalid(
            field,
            format!("`{time}` read in {zone} falls outside the years 1 to 9999"),
        )
    })
}

fn in_years(utc: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (1..=9999).contains(&utc.year()).then_some(utc)
}

/// Parses a runner timestamp, in the years 1 to 9999 (what every database stores); `None` for
/// anything else.
///
/// Accepted, as the seed's parser accepted them: `YYYY-MM-DD`, then `T` or a space, then
/// `HH:MM`, optionally `:SS` and a fraction (`.` or `,`, up to 6 digits kept, more ignored),
/// then optionally spaces and a zone: `Z`, `±HH`, `±HHMM` or `±HH:MM`. Month, day, hour, minute
/// and second may have one digit. Without a zone the time is taken as UTC (the seed's
/// `TIME_ZONE`); runner payloads use [`RunnerTime`] instead, which keeps it naive.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    RunnerTime::parse(text)?.in_zone(RunnerTimezone::UTC)
}

/// `YYYY-M-D`: four-digit year, one- or two-digit month and day.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let mut parts = text.split('-');
    let year = number(parts.next()?, 4, 4)?;
    let month = number(parts.next()?, 1, 2)?;
    let day = number(parts.next()?, 1, 2)?;
    if parts.next().is_some() {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

/// `H:M`, optionally `:S` and a fraction of a second.
fn parse_time(text: &str) -> Option<NaiveTime> {
    let (clock, fraction) = match text.find(['.', ',']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let mut parts = clock.split(':');
    let hour = number(parts.next()?, 1, 2)?;
    let minute = number(parts.next()?, 1, 2)?;
    let second = match parts.next() {
        Some(second) => number(second, 1, 2)?,
        None if fraction.is_none() => 0,
        None => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    let micros = match fraction {
        None => 0,
        Some(digits) => {
            if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let kept = &digits[..digits.len().min(6)];
            let scale = 10_u32.pow(u32::try_from(6 - kept.len()).ok()?);
            kept.parse::<u32>().ok()? * scale
        }
    };
    NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
}

/// Empty (`Some(None)`: naive), `Z`, `±HH`, `±HHMM` or `±HH:MM`.
fn parse_zone(text: &str) -> Option<Option<FixedOffset>> {
    let text = text.trim_start();
    if text.is_empty() {
        return Some(None);
    }
    if text == "Z" {
        return FixedOffset::east_opt(0).map(Some);
    }
    let sign = match text.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let digits = text[1..].replacen(':', "", usize::from(text.len() == 6));
    let (hours, minutes) = match digits.len() {
        2 => (number(&digits, 2, 2)?, 0),
        4 => (number(&digits[..2], 2, 2)?, number(&digits[2..], 2, 2)?),
        _ => return None,
    };
    if minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * i32::try_from(hours * 3600 + minutes * 60).ok()?).map(Some)
}

/// A run of `min..=max` ASCII digits.
fn number(text: &str, min: usize, max: usize) -> Option<u32> {
    ((min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `#[serde(deserialize_with = "...")]` helper for a timestamp in any accepted form, naive
/// ones taken as UTC. For a runner's timestamps, use [`RunnerTime`]: it honours the
/// machine's time zone.
pub fn deserialize_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    parse_or_error(&String::deserialize(deserializer)?)
}

/// [`deserialize_timestamp`] for an optional field: `null` (or, with `#[serde(default)]`, a
/// missing field) is `None`.
pub fn deserialize_optional_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|text| parse_or_error(&text))
        .transpose()
}

fn parse_or_error<E: serde::de::Error>(text: &str) -> Result<DateTime<Utc>, E> {
    parse_timestamp(text).ok_or_else(|| not_a_timestamp(text))
}

fn not_a_timestamp<E: serde::de::Error>(text: &str) -> E {
    E::custom(format!(
        "`{text}` is not a timestamp (expected e.g. `2018-12-30 13:01:57.461401` or RFC 3339)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micros: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
            + chrono::Duration::microseconds(i64::from(micros))
    }

    #[test]
    fn python_str_datetime_is_utc() {
        assert_eq!(
            parse_timestamp("2018-12-30 13:01:57.461401"),
            Some(utc(2018, 12, 30, 13, 1, 57, 461_401))
        );
    }

    #[test]
    fn python_str_without_fraction() {
        assert_eq!(
            parse_timestamp("2018-12-30 13:01:57"),
            Some(utc(2018, 12, 30, 13, 1, 57, 0))
        );
    }

    #[test]
    fn isoformat_naive() {
        assert_eq!(
            parse_timestamp("2018-12-30T13:01:57.5"),
            Some(utc(2018, 12, 30, 13, 1, 57, 500_000))
        );
    }

    #[test]
    fn rfc3339_variants() {
        let expected = Some(utc(2018, 12, 30, 13, 1, 57, 0));
        assert_eq!(parse_timestamp("2018-12-30T13:01:57Z"), expected);
        assert_eq!(parse_timestamp("2018-12-30T14:01:57+01:00"), expected);
        assert_eq!(parse_timestamp("2018-12-30 14:01:57+01:00"), expected);
    }

    #[test]
    fn the_seed_parsers_other_forms() {
        let expected = Some(utc(2018, 12, 30, 13, 1, 0, 0));
        // Without seconds, naive and with zones.
        assert_eq!(parse_timestamp("2018-12-30 13:01"), expected);
        assert_eq!(parse_timestamp("2018-12-30T13:01"), expected);
        assert_eq!(parse_timestamp("2018-12-30T14:01+01:00"), expected);
        // `+HHMM`, `+HH`, a space before the zone, negative offsets.
        assert_eq!(parse_timestamp("2018-12-30T14:01:00+0100"), expected);
        assert_eq!(parse_timestamp("2018-12-30 14:01:00+01"), expected);
        assert_eq!(parse_timestamp("2018-12-30 14:01:00 +01:00"), expected);
        assert_eq!(parse_timestamp("2018-12-30T11:31:00-0130"), expected);
        // One-digit fields, a comma before the fraction, digits past microseconds.
        assert_eq!(
            parse_timestamp("2018-1-3 3:1:5,1234567"),
            Some(utc(2018, 1, 3, 3, 1, 5, 123_456))
        );
        // The offset can move the date across a year boundary.
        assert_eq!(
            parse_timestamp("2019-01-01T00:30:00+01:00"),
            Some(utc(2018, 12, 31, 23, 30, 0, 0))
        );
    }

    fn naive(text: &str) -> NaiveDateTime {
        match RunnerTime::parse(text) {
            Some(RunnerTime::Naive(local)) => local,
            other => panic!("{text} parsed as {other:?}"),
        }
    }

    fn zone(name: &str) -> RunnerTimezone {
        name.parse().unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn naive_times_stay_naive_and_zoned_ones_are_instants() {
        assert_eq!(
            RunnerTime::parse("2018-12-30 13:01:57.461401"),
            Some(RunnerTime::Naive(
                NaiveDate::from_ymd_opt(2018, 12, 30)
                    .and_then(|d| d.and_hms_micro_opt(13, 1, 57, 461_401))
                    .unwrap()
            ))
        );
        assert_eq!(
            RunnerTime::parse("2018-12-30T14:01:57+01:00"),
            Some(RunnerTime::Zoned(utc(2018, 12, 30, 13, 1, 57, 0)))
        );
        assert_eq!(
            RunnerTime::parse("2018-12-30T13:01:57Z"),
            Some(RunnerTime::Zoned(utc(2018, 12, 30, 13, 1, 57, 0)))
        );
    }

    #[test]
    fn a_naive_time_is_read_in_the_zone_and_an_explicit_offset_is_kept() {
        let warsaw = zone("Europe/Warsaw");
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(
            RunnerTime::parse("2026-11-24 13:00:00.123456").and_then(|t| t.in_zone(warsaw)),
            Some(utc(2026, 11, 24, 12, 0, 0, 123_456))
        );
        assert_eq!(
            RunnerTime::parse("2026-07-01 13:00:00").and_then(|t| t.in_zone(warsaw)),
            Some(utc(2026, 7, 1, 11, 0, 0, 0))
        );
        assert_eq!(
            RunnerTime::parse("2026-07-01T13:00:00Z").and_then(|t| t.in_zone(warsaw)),
            Some(utc(2026, 7, 1, 13, 0, 0, 0))
        );
        assert_eq!(
            RunnerTime::parse("2026-07-01 13:00:00").and_then(|t| t.in_zone(RunnerTimezone::UTC)),
            Some(utc(2026, 7, 1, 13, 0, 0, 0))
        );
    }

    #[test]
    fn a_time_that_occurs_twice_is_the_earlier_instant() {
        // Warsaw set its clocks back from 03:00 CEST to 02:00 CET on 2026-10-25: 02:30
        // happened at 00:30 UTC and again at 01:30 UTC.
        assert_eq!(
            zone("Europe/Warsaw").instant(naive("2026-10-25 02:30:00")),
            Some(utc(2026, 10, 25, 0, 30, 0, 0))
        );
        // New York at 01:30 on 2026-11-01: 05:30 UTC (EDT), then 06:30 UTC (EST).
        assert_eq!(
            zone("America/New_York").instant(naive("2026-11-01 01:30:00")),
            Some(utc(2026, 11, 1, 5, 30, 0, 0))
        );
    }

    #[test]
    fn a_time_that_never_occurs_is_moved_forward_by_the_gap() {
        // Warsaw set its clocks forward from 02:00 CET to 03:00 CEST on 2026-03-29: 02:30 is
        // read as 03:30 CEST, 01:30 UTC.
        let warsaw = zone("Europe/Warsaw");
        assert_eq!(
            warsaw.instant(naive("2026-03-29 02:30:00")),
            Some(utc(2026, 3, 29, 1, 30, 0, 0))
        );
        assert_eq!(
            warsaw.instant(naive("2026-03-29 03:30:00")),
            Some(utc(2026, 3, 29, 1, 30, 0, 0))
        );
        // Lord Howe Island's gap is half an hour (02:00 to 02:30 on 2026-10-04, UTC+10:30 to
        // UTC+11): 02:10 is read as 02:40.
        assert_eq!(
            zone("Australia/Lord_Howe").instant(naive("2026-10-04 02:10:00")),
            zone("Australia/Lord_Howe").instant(naive("2026-10-04 02:40:00"))
        );
    }

    #[test]
    fn zone_names_are_iana_names() {
        assert_eq!(zone("Europe/Warsaw").name(), "Europe/Warsaw");
        assert_eq!(zone(" UTC ").to_string(), "UTC");
        assert_eq!(RunnerTimezone::default(), RunnerTimezone::UTC);
        for name in ["", "Warsaw", "europe/warsaw", "Mars/Olympus", "+01:00"] {
            assert!(name.parse::<RunnerTimezone>().is_err(), "{name:?}");
        }
    }

    #[test]
    fn readings_that_leave_the_supported_years_are_refused() {
        let time = RunnerTime::parse("0001-01-01 00:30:00").unwrap();
        assert_eq!(time.in_zone(zone("Europe/Warsaw")), None);
        assert!(time.in_zone(RunnerTimezone::UTC).is_some());
    }

    #[test]
    fn runner_times_serialise_to_text_that_parses_back() {
        for text in [
            "2018-12-30 13:01:57.461401",
            "2018-12-30T13:01:57+02:00",
            "2018-12-30 13:01",
        ] {
            let time = RunnerTime::parse(text).unwrap();
            let json = serde_json::to_string(&time).unwrap();
            assert_eq!(
                serde_json::from_str::<RunnerTime>(&json).unwrap(),
                time,
                "{json}"
            );
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for text in [
            "",
            "yesterday",
            "2018-13-30 13:01:57",
            "1546174917",
            "2018-12-30",
            "2018-12-30 13",
            "2018-12-30 13:01:57.",
            "2018-12-30 13:01:57+1",
            "2018-12-30 13:01:57+01:60",
            "2018-12-30 13:01:57 UTC",
            "2018-12-30 25:01:57",
            "18-12-30 13:01:57",
            "2018-12-30  13:01:57",
            "0000-12-31 23:59:59",
        ] {
            assert_eq!(parse_timestamp(text), None, "{text}");
        }
    }
}
