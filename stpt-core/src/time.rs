//! Timestamps as runners send them: Python's naive `str(datetime.now())`, taken as UTC as the
//! seed did, RFC 3339, or any other form the seed's parser (Django REST framework's) took.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Deserializer};

/// Parses a runner timestamp, in the years 1 to 9999 (what every database stores); `None` for
/// anything else.
///
/// Accepted, as the seed's parser accepted them: `YYYY-MM-DD`, then `T` or a space, then
/// `HH:MM`, optionally `:SS` and a fraction (`.` or `,`, up to 6 digits kept, more ignored),
/// then optionally spaces and a zone: `Z`, `±HH`, `±HHMM` or `±HH:MM`. Month, day, hour, minute
/// and second may have one digit. Without a zone the time is UTC (the seed's `TIME_ZONE`).
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
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
    let time = parse_time(time.trim_end())?;
    let offset = parse_zone(zone)?;
    let local = NaiveDateTime::new(date, time);
    let utc = local.checked_sub_offset(offset)?.and_utc();
    (1..=9999).contains(&utc.year()).then_some(utc)
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

/// Empty (UTC), `Z`, `±HH`, `±HHMM` or `±HH:MM`.
fn parse_zone(text: &str) -> Option<FixedOffset> {
    let text = text.trim_start();
    if text.is_empty() || text == "Z" {
        return FixedOffset::east_opt(0);
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
    FixedOffset::east_opt(sign * i32::try_from(hours * 3600 + minutes * 60).ok()?)
}

/// A run of `min..=max` ASCII digits.
fn number(text: &str, min: usize, max: usize) -> Option<u32> {
    ((min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `#[serde(deserialize_with = "...")]` helper for a runner timestamp in any accepted form.
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
    parse_timestamp(text).ok_or_else(|| {
        E::custom(format!(
            "`{text}` is not a timestamp (expected e.g. `2018-12-30 13:01:57.461401` or RFC 3339)"
        ))
    })
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
