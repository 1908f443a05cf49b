//! Timestamps as runners send them: Python's naive `str(datetime.now())`, taken as UTC as the
//! seed did, or RFC 3339.

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, de::Error as _};

/// Naive layouts a runner may send: `str(datetime)` and `datetime.isoformat()`, with or without
/// fractional seconds (`%.f` makes the fraction optional).
const NAIVE_FORMATS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];

/// Parses a runner timestamp: RFC 3339 (`T` or space, `Z` or an offset), or a naive date and
/// time taken as UTC, in the years 1 to 9999 (what every database stores). Returns `None` for
/// anything else.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let parsed = match DateTime::parse_from_rfc3339(text) {
        Ok(aware) => aware.with_timezone(&Utc),
        Err(_) => NAIVE_FORMATS
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())?
            .and_utc(),
    };
    (1..=9999).contains(&parsed.year()).then_some(parsed)
}

/// `#[serde(deserialize_with = "...")]` helper for a runner timestamp in any accepted form.
pub fn deserialize_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_timestamp(&text).ok_or_else(|| {
        D::Error::custom(format!(
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
    fn garbage_is_rejected() {
        for text in [
            "",
            "yesterday",
            "2018-13-30 13:01:57",
            "1546174917",
            "2018-12-30",
        ] {
            assert_eq!(parse_timestamp(text), None, "{text}");
        }
    }
}
