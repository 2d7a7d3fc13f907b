//! Calendar arithmetic shared by the analytics: ISO weeks, UTC days, and the cohort bands
//! that depend on dates.
//!
//! Invariants:
//! - Integer microseconds throughout (no floating point), UTC.
//! - A week is an ISO week: it starts Monday 00:00 UTC; [`week_start_us`] is exact for
//!   every `i64` time that has a calendar date (and never panics for others).
//! - Band labels are stable strings (they are grouping keys and file contents).

use chrono::{DateTime, Datelike, NaiveDate};

/// One day, µs.
pub const DAY_US: i64 = 86_400_000_000;
/// One week, µs.
pub const WEEK_US: i64 = 7 * DAY_US;
/// 1970-01-05T00:00:00Z, the first Monday after the epoch.
const MONDAY_US: i64 = 4 * DAY_US;

/// Start (Monday 00:00 UTC) of the ISO week containing `t_us`.
pub fn week_start_us(t_us: i64) -> i64 {
    (t_us - MONDAY_US).div_euclid(WEEK_US) * WEEK_US + MONDAY_US
}

/// Start (00:00 UTC) of the day containing `t_us`.
pub fn day_start_us(t_us: i64) -> i64 {
    t_us.div_euclid(DAY_US) * DAY_US
}

/// ISO year and `YYYY-Www` label of the week starting at `week_start_us`.
pub fn iso_week(week_start_us: i64) -> (i32, String) {
    match DateTime::from_timestamp_micros(week_start_us) {
        Some(t) => {
            let w = t.iso_week();
            (w.year(), format!("{:04}-W{:02}", w.year(), w.week()))
        }
        None => (0, "invalid".to_owned()),
    }
}

/// Parses a time for command lines: `YYYY-MM-DD` (00:00 UTC), RFC 3339
/// (`2024-03-01T12:00:00Z`), or an integer of µs since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(us) = s.parse::<i64>() {
        return Ok(us);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros())
            .ok_or_else(|| format!("{s:?} is not a representable day"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .map_err(|_| format!("{s:?} is not a time: use YYYY-MM-DD, RFC 3339 or µs since the epoch"))
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a time (for messages).
pub fn format_time(t_us: i64) -> String {
    DateTime::from_timestamp_micros(t_us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{t_us}µs"))
}

/// Age bands, in order; `unknown` (no birth year) last.
pub const AGE_BANDS: [&str; 8] = [
    "<18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown",
];

/// Index into [`AGE_BANDS`] of the age reached in `year` by someone born in
/// `birth_year` (`0` = unknown).
pub fn age_band(birth_year: i32, year: i32) -> usize {
    if birth_year <= 0 {
        return 7;
    }
    match year - birth_year {
        ..18 => 0,
        18..=24 => 1,
        25..=34 => 2,
        35..=44 => 3,
        45..=54 => 4,
        55..=64 => 5,
        _ => 6,
    }
}

/// Training-age bands (years of structured training at enrollment), in order.
pub const TRAINING_AGE_BANDS: [&str; 4] = ["0-1", "2-4", "5-9", "10+"];

/// Index into [`TRAINING_AGE_BANDS`].
pub fn training_age_band(years: i32) -> usize {
    match years {
        ..=1 => 0,
        2..=4 => 1,
        5..=9 => 2,
        _ => 3,
    }
}

/// A free-text cohort label as a grouping key: trimmed, lower-cased, `unknown` when empty.
pub fn cohort_label(s: &str) -> String {
    let t = s.trim().to_lowercase();
    if t.is_empty() {
        "unknown".to_owned()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_weeks() {
        // 2024-01-01 is a Monday (ISO 2024-W01); 2021-01-03 a Sunday of 2020-W53.
        let monday = parse_time("2024-01-01").unwrap();
        assert_eq!(week_start_us(monday), monday);
        assert_eq!(week_start_us(monday + WEEK_US - 1), monday);
        assert_eq!(week_start_us(monday - 1), monday - WEEK_US);
        assert_eq!(iso_week(monday), (2024, "2024-W01".to_owned()));
        let sunday = parse_time("2021-01-03T23:00:00Z").unwrap();
        assert_eq!(
            iso_week(week_start_us(sunday)),
            (2020, "2020-W53".to_owned())
        );
        assert_eq!(week_start_us(0), -3 * DAY_US);
        assert_eq!(day_start_us(monday + DAY_US + 5), monday + DAY_US);
        assert_eq!(day_start_us(-1), -DAY_US);
    }

    #[test]
    fn parses_times() {
        assert_eq!(
            parse_time("1700000000000000").unwrap(),
            1_700_000_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(format_time(1_700_000_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn bands() {
        assert_eq!(AGE_BANDS[age_band(0, 2024)], "unknown");
        assert_eq!(AGE_BANDS[age_band(2007, 2024)], "<18");
        assert_eq!(AGE_BANDS[age_band(2006, 2024)], "18-24");
        assert_eq!(AGE_BANDS[age_band(1999, 2024)], "25-34");
        assert_eq!(AGE_BANDS[age_band(1959, 2024)], "65+");
        assert_eq!(TRAINING_AGE_BANDS[training_age_band(0)], "0-1");
        assert_eq!(TRAINING_AGE_BANDS[training_age_band(4)], "2-4");
        assert_eq!(TRAINING_AGE_BANDS[training_age_band(10)], "10+");
        assert_eq!(cohort_label(" F "), "f");
        assert_eq!(cohort_label(""), "unknown");
    }
}
