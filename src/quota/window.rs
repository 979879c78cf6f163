//! Budget windows in UTC: minute, hour, day and calendar month, computed from `now_secs`
//! (seconds since the Unix epoch, passed in; the core never reads a clock).

use crate::calendar::{civil_from_days, days_from_civil, DAY_SECS as DAY};
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
            Window::Month => month_start_day(id).saturating_mul(DAY),
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

/// Days since 1970-01-01 of the first day of the `id`-th month since January 1970.
fn month_start_day(id: u64) -> u64 {
    // 1970 + id / 12 < i64::MAX for every u64 id, and id % 12 + 1 is 1..=12.
    let (year, month) = (1970 + (id / 12) as i64, (id % 12 + 1) as i64);
    u64::try_from(days_from_civil(year, month, 1)).unwrap_or(0)
}
