//! Proleptic Gregorian calendar arithmetic in UTC (Howard Hinnant's `civil_from_days` and
//! `days_from_civil`, <https://howardhinnant.github.io/date_algorithms.html>), the one copy
//! behind month budget windows (`quota::window`), SigV4's `x-amz-date`, Anthropic's
//! `created_at` and Gemini's `createTime`. The core never reads a clock: callers pass seconds.

/// Seconds in a day.
pub const DAY_SECS: u64 = 86_400;

/// A UTC date and time of day, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: u64,
    /// 1..=12
    pub month: u64,
    /// 1..=31
    pub day: u64,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
}

impl UtcTime {
    /// The UTC date and time of `unix_secs` (seconds since 1970-01-01 00:00:00 UTC).
    pub fn from_unix(unix_secs: u64) -> Self {
        let (year, month, day) = civil_from_days(unix_secs / DAY_SECS);
        let rest = unix_secs % DAY_SECS;
        UtcTime { year, month, day, hour: rest / 3600, minute: rest % 3600 / 60, second: rest % 60 }
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), for dates on or after the epoch.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days.saturating_add(719_468);
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of `year`-`month`-`day` (negative before the epoch; signed because an
/// RFC 3339 timestamp may predate it). `month` 1..=12 and `day` 1..=31 for a real date; other
/// values give some day without overflow (parsers pass what they read).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year.saturating_sub(1) } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month % 12 + 9) % 12;
    let doy = ((153 * mp + 2) / 5).saturating_add(day).saturating_sub(1);
    let doe = (yoe * 365 + yoe / 4 - yoe / 100).saturating_add(doy);
    era.saturating_mul(146_097).saturating_add(doe).saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29), "2000 is a leap year");
        assert_eq!(days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 1), 28, "2100 is not");
        assert_eq!(days_from_civil(2028, 3, 1) - days_from_civil(2028, 2, 1), 29, "2028 is");
        assert_eq!(days_from_civil(0, 3, 1), -719_468, "the epoch of the algorithm");
    }

    #[test]
    fn utc_time_of_unix_seconds() {
        let t = UtcTime::from_unix(1_440_938_160);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2015, 8, 30, 12, 36, 0));
        let t = UtcTime::from_unix(4_102_444_799);
        assert_eq!((t.year, t.month, t.day, t.hour, t.minute, t.second), (2099, 12, 31, 23, 59, 59));
    }

    #[test]
    fn absurd_inputs_do_not_overflow() {
        assert_eq!(civil_from_days(u64::MAX).1, civil_from_days(u64::MAX - 1).1);
        let _ = days_from_civil(i64::MAX, 13, i64::MAX);
        let _ = days_from_civil(i64::MIN, -11, i64::MIN);
    }

    proptest! {
        #[test]
        fn the_two_directions_agree(days in 0u64..10_000_000) {
            let (year, month, day) = civil_from_days(days);
            prop_assert!((1..=12).contains(&month) && (1..=31).contains(&day));
            prop_assert_eq!(days_from_civil(year as i64, month as i64, day as i64), days as i64);
            // The next day is the same month's next day or the first of the next month.
            let (y2, m2, d2) = civil_from_days(days + 1);
            prop_assert!((y2, m2, d2) == (year, month, day + 1) || (d2 == 1 && (m2 == month % 12 + 1)));
        }
    }
}
