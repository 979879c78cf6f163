//! Budget windows in UTC: minute, hour, day and calendar month, computed from `now_secs`
//! (seconds since the Unix epoch, passed in; the core never reads a clock).

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Minute,
    Hour,
    Day,
    /// A calendar month in UTC (28 to 31 days).
    Month,
}

const DAY: u64 = 86_400;

impl Window {
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// The window containing `now_secs`, numbered from the epoch (minutes, hours, days or
    /// months since 1970-01-01 00:00 UTC).
    pub fn id(self, now_secs: u64) -> u64 {
        match self {
            Window::Minute => now_secs / 60,
            Window::Hour => now_secs / 3600,
            Window::Day => now_secs / DAY,
            Window::Month => {
                let (year, month, _) = civil_from_days(now_secs / DAY);
                (year - 1970) * 12 + (month - 1)
            }
        }
    }

    /// First second of window `id`.
    pub fn start(self, id: u64) -> u64 {
        match self {
            Window::Minute => id.saturating_mul(60),
            Window::Hour => id.saturating_mul(3600),
            Window::Day => id.saturating_mul(DAY),
            Window::Month => days_from_civil(1970 + id / 12, id % 12 + 1).saturating_mul(DAY),
        }
    }

    /// First second after window `id` (when its budget resets).
    pub fn end(self, id: u64) -> u64 {
        self.start(id.saturating_add(1))
    }

    /// Seconds from `now_secs` until the current window resets (at least 1).
    pub fn reset_secs(self, now_secs: u64) -> u64 {
        self.end(self.id(now_secs)).saturating_sub(now_secs).max(1)
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian.
/// Howard Hinnant's `civil_from_days`, restricted to dates on or after the epoch.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
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

/// Days since 1970-01-01 of the first day of `month` (1..=12) in `year` (>= 1970).
pub fn days_from_civil(year: u64, month: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}
