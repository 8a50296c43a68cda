//! Calendar dates and instants, without a date-time dependency.
//!
//! Certificates carry two kinds of time: calendar dates (date of birth,
//! effective start/until; ISO 8601 `YYYY-MM-DD`) and instants (vaccination
//! time, `validFrom`; RFC 3339 in UTC, what VC 2.0 calls an XML Schema
//! `dateTimeStamp`, <https://www.w3.org/TR/vc-data-model-2.0/#validity-period>).
//! DIVOC's payloads mix both, so [`parse_instant`] accepts either.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds per day.
const DAY_MS: i64 = 86_400_000;

/// A proleptic Gregorian calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Year, 1..=9999.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of month, 1..=31 (checked against the month).
    pub day: u32,
}

impl Date {
    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    pub fn days_since_epoch(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Midnight UTC at the start of this date, in ms since the epoch.
    pub fn start_ms(self) -> i64 {
        self.days_since_epoch() * DAY_MS
    }

    /// The date containing `ms` (UTC).
    pub fn from_ms(ms: i64) -> Date {
        // civil_from_days, the inverse of days_since_epoch.
        let z = ms.div_euclid(DAY_MS) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month: u32::try_from(month).unwrap_or(1),
            day: u32::try_from(day).unwrap_or(1),
        }
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses a strict ISO 8601 calendar date, `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let (month, day) = (num(5..7)?, num(8..10)?);
    if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(Date { year, month, day })
}

/// Parses an instant: an RFC 3339 date-time in UTC (`…Z`, optional
/// fraction) or a bare date (midnight UTC). Returns ms since the epoch.
pub fn parse_instant(s: &str) -> Option<i64> {
    if let Some(d) = parse_date(s) {
        return Some(d.start_ms());
    }
    let t = humantime::parse_rfc3339(s).ok()?;
    Some(system_time_to_ms(t))
}

/// `SystemTime` → ms since the epoch (0 before 1970: such clocks are broken).
pub fn system_time_to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The current time in ms since the epoch.
pub fn now_ms() -> i64 {
    system_time_to_ms(SystemTime::now())
}

/// Formats ms since the epoch as an RFC 3339 `dateTimeStamp`, to the second.
pub fn format_instant(ms: i64) -> String {
    let secs = u64::try_from(ms.max(0) / 1000).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Whole years between `dob` and `on` (a person's age on a date).
pub fn age_on(dob: Date, on: Date) -> i64 {
    let mut years = i64::from(on.year) - i64::from(dob.year);
    if (on.month, on.day) < (dob.month, dob.day) {
        years -= 1;
    }
    years
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_reject_impossible_days() {
        let d = parse_date("2021-03-01").unwrap();
        assert_eq!(Date::from_ms(d.start_ms()), d);
        assert_eq!(parse_date("1970-01-01").unwrap().days_since_epoch(), 0);
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("2021-13-01").is_none());
        assert!(parse_date("21-01-01").is_none());
        assert!(parse_date("2021-1-01").is_none());
        assert!(parse_date("+021-01-01").is_none());
    }

    #[test]
    fn instants_accept_dates_and_rfc3339() {
        assert_eq!(parse_instant("1970-01-02"), Some(DAY_MS));
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_instant("2021-01-16T05:30:00.000Z").map(|m| m % 1000),
            Some(0)
        );
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(format_instant(1000), "1970-01-01T00:00:01Z");
    }

    #[test]
    fn age_counts_whole_years() {
        let dob = parse_date("2000-06-15").unwrap();
        assert_eq!(age_on(dob, parse_date("2021-06-14").unwrap()), 20);
        assert_eq!(age_on(dob, parse_date("2021-06-15").unwrap()), 21);
    }
}
