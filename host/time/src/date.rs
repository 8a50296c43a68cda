//! Calendar dates: strict ISO 8601 `YYYY-MM-DD`, proleptic Gregorian.

use std::fmt;

use jiff::civil;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A calendar date from year 1 to 9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(civil::Date);

impl Date {
    /// The date of `year-month-day`, if it exists (`2023-02-29` does not).
    pub fn new(year: i32, month: u32, day: u32) -> Option<Date> {
        let year = i16::try_from(year).ok().filter(|y| *y >= 1)?;
        let month = i8::try_from(month).ok()?;
        let day = i8::try_from(day).ok()?;
        civil::Date::new(year, month, day).ok().map(Date)
    }

    /// Year.
    pub fn year(self) -> i32 {
        i32::from(self.0.year())
    }

    /// Month, 1..=12.
    pub fn month(self) -> u32 {
        u32::try_from(self.0.month()).unwrap_or(1)
    }

    /// Day of the month, 1..=31.
    pub fn day(self) -> u32 {
        u32::try_from(self.0.day()).unwrap_or(1)
    }

    /// Midnight UTC at the start of this date, in ms since the epoch.
    pub fn start_ms(self) -> i64 {
        self.0
            .to_zoned(TimeZone::UTC)
            .map(|z| z.timestamp().as_millisecond())
            // Every date from year 1 to 9999 is a valid UTC instant.
            .unwrap_or(i64::MIN)
    }

    /// The UTC date containing `ms`.
    pub fn from_ms(ms: i64) -> Date {
        let ts = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        });
        Date(ts.to_zoned(TimeZone::UTC).date())
    }

    /// The date in time zone `zone` at instant `ms`.
    pub fn in_zone(ms: i64, zone: &crate::Zone) -> Date {
        let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
        Date(ts.to_zoned(zone.tz().clone()).date())
    }

    /// Whole years from `self` (a date of birth) to `on`: a person's age.
    pub fn age_on(self, on: Date) -> i64 {
        let mut years = i64::from(on.year()) - i64::from(self.year());
        if (on.month(), on.day()) < (self.month(), self.day()) {
            years -= 1;
        }
        years
    }

    /// The date `days` later (earlier when negative); `None` past year 9999.
    pub fn add_days(self, days: i64) -> Option<Date> {
        self.0
            .checked_add(jiff::Span::new().try_days(days).ok()?)
            .ok()
            .map(Date)
    }

    /// Days from `self` to `other` (negative when `other` is earlier).
    pub fn days_until(self, other: Date) -> i64 {
        (other.start_ms() - self.start_ms()).div_euclid(crate::DAY_MS)
    }

    /// Day of the week, 0 = Monday … 6 = Sunday (ISO 8601).
    pub fn weekday(self) -> u32 {
        u32::from(self.0.weekday().to_monday_zero_offset().unsigned_abs())
    }

    pub(crate) fn civil(self) -> civil::Date {
        self.0
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.year(),
            self.month(),
            self.day()
        )
    }
}

/// Parses a strict ISO 8601 calendar date, `YYYY-MM-DD` (four-digit year,
/// two-digit month and day, nothing else).
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
    Date::new(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_reject_impossible_days() {
        let d = parse_date("2021-03-01").unwrap();
        assert_eq!(Date::from_ms(d.start_ms()), d);
        assert_eq!(parse_date("1970-01-01").unwrap().start_ms(), 0);
        assert_eq!(parse_date("1970-01-02").unwrap().start_ms(), crate::DAY_MS);
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("2021-04-31").is_none());
        assert!(parse_date("2021-13-01").is_none());
        assert!(parse_date("0000-01-01").is_none());
        assert!(parse_date("21-01-01").is_none());
        assert!(parse_date("2021-1-01").is_none());
        assert!(parse_date("+021-01-01").is_none());
        assert!(parse_date("2021-01-01T00:00:00Z").is_none());
        assert_eq!(parse_date("0999-12-31").unwrap().to_string(), "0999-12-31");
        assert_eq!(Date::from_ms(-1).to_string(), "1969-12-31");
    }

    #[test]
    fn weekdays_start_on_monday() {
        // 2026-12-07 is a Monday; 2000-01-01 was a Saturday.
        assert_eq!(parse_date("2026-12-07").unwrap().weekday(), 0);
        assert_eq!(parse_date("2026-12-13").unwrap().weekday(), 6);
        assert_eq!(parse_date("2000-01-01").unwrap().weekday(), 5);
    }

    #[test]
    fn age_counts_whole_years() {
        let dob = parse_date("2000-06-15").unwrap();
        assert_eq!(dob.age_on(parse_date("2021-06-14").unwrap()), 20);
        assert_eq!(dob.age_on(parse_date("2021-06-15").unwrap()), 21);
        let leap = parse_date("2004-02-29").unwrap();
        assert_eq!(leap.age_on(parse_date("2022-02-28").unwrap()), 17);
        assert_eq!(leap.age_on(parse_date("2022-03-01").unwrap()), 18);
    }

    #[test]
    fn day_arithmetic() {
        let d = parse_date("2024-02-28").unwrap();
        assert_eq!(d.add_days(1).unwrap().to_string(), "2024-02-29");
        assert_eq!(d.add_days(2).unwrap().to_string(), "2024-03-01");
        assert_eq!(d.add_days(-59).unwrap().to_string(), "2023-12-31");
        assert_eq!(d.days_until(parse_date("2024-03-28").unwrap()), 29);
        assert_eq!(parse_date("2024-03-28").unwrap().days_until(d), -29);
    }
}
