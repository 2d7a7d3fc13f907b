//! UTC days of event time. No clock: every time is given by the caller (µs since the epoch).
//!
//! Invariants: total functions (any `i64` in, no panic); `day_index` is floor division, so
//! times before 1970 fall on the right (negative) day.

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// The UTC day of `time_us` (days since 1970-01-01, floor).
pub fn day_index(time_us: i64) -> i64 {
    time_us.div_euclid(DAY_US)
}

/// `YYYY-MM-DD` of a day index (proleptic Gregorian; H. Hinnant's `civil_from_days`).
pub fn day_string(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    if y < 0 {
        format!("-{:04}-{m:02}-{d:02}", -y)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// The last microsecond of a day (saturating).
pub(crate) fn day_end_us(day: i64) -> i64 {
    day.saturating_add(1)
        .saturating_mul(DAY_US)
        .saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(-1), "1969-12-31");
        assert_eq!(day_string(day_index(1_700_000_000_000_000)), "2023-11-14");
        assert_eq!(day_string(day_index(951_782_400_000_000)), "2000-02-29");
        assert_eq!(day_index(-1), -1);
        assert_eq!(day_index(DAY_US), 1);
    }

    #[test]
    fn extremes_do_not_panic() {
        for t in [i64::MIN, i64::MAX, 0, -1] {
            let s = day_string(day_index(t));
            assert!(s.len() >= 10, "{s}");
            let _ = day_end_us(day_index(t));
        }
    }
}
