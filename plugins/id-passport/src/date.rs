//! Calendar dates (proleptic Gregorian) and the two-digit years of the MRZ.

use std::fmt;

/// A calendar date. Ordered chronologically (year, then month, then day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i64,
    pub month: u32,
    pub day: u32,
}

impl fmt::Display for Date {
    /// ISO 8601 calendar date, `YYYY-MM-DD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

pub fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// The date, if it exists.
    pub fn new(year: i64, month: u32, day: u32) -> Option<Date> {
        (day >= 1 && day <= days_in_month(year, month)).then_some(Date { year, month, day })
    }

    /// The UTC date of a Unix time (seconds), by H. Hinnant's
    /// `civil_from_days` algorithm.
    pub fn from_unix_seconds(seconds: u64) -> Date {
        let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        // `month` is 1..=12 and `day` 1..=31 by construction.
        Date {
            year,
            month: u32::try_from(month).unwrap_or(1),
            day: u32::try_from(day).unwrap_or(1),
        }
    }
}

/// The MRZ's two-digit year `yy` read as a year of birth: the latest year
/// ending in `yy` that does not put the birth (month and day, where known)
/// after `today`. E.g. in 2026, `74` is 1974, `05` is 2005, `30` is 1930.
pub fn birth_year(yy: u32, month: Option<u32>, day: Option<u32>, today: Date) -> i64 {
    let year = today.year - today.year.rem_euclid(100) + i64::from(yy);
    let earliest = Date {
        year,
        month: month.unwrap_or(1),
        day: day.unwrap_or(1),
    };
    if earliest > today {
        year - 100
    } else {
        year
    }
}

/// The MRZ's two-digit year `yy` read as a year of expiry: the year ending
/// in `yy` within 50 years of today's (passports are valid for at most ten
/// years, so the window is generous both ways). E.g. in 2026, `12` is 2012
/// and `34` is 2034.
pub fn expiry_year(yy: u32, today: Date) -> i64 {
    let year = today.year - today.year.rem_euclid(100) + i64::from(yy);
    if year > today.year + 50 {
        year - 100
    } else if year < today.year - 50 {
        year + 100
    } else {
        year
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(year: i64, month: u32, day: u32) -> Date {
        Date::new(year, month, day).unwrap()
    }

    #[test]
    fn unix_seconds_to_dates() {
        assert_eq!(Date::from_unix_seconds(0), d(1970, 1, 1));
        assert_eq!(Date::from_unix_seconds(951_782_400), d(2000, 2, 29));
        assert_eq!(Date::from_unix_seconds(1_700_000_000), d(2023, 11, 14));
        assert_eq!(Date::from_unix_seconds(4_102_444_799), d(2099, 12, 31));
        assert_eq!(d(1974, 8, 12).to_string(), "1974-08-12");
    }

    #[test]
    fn validates_calendar_dates() {
        assert!(Date::new(2000, 2, 29).is_some());
        assert!(Date::new(1900, 2, 29).is_none());
        assert!(Date::new(2024, 2, 29).is_some());
        assert!(Date::new(2023, 2, 29).is_none());
        assert!(Date::new(2023, 4, 31).is_none());
        assert!(Date::new(2023, 13, 1).is_none());
        assert!(Date::new(2023, 0, 1).is_none());
        assert!(Date::new(2023, 1, 0).is_none());
    }

    #[test]
    fn centuries() {
        let today = d(2026, 3, 10);
        assert_eq!(birth_year(74, Some(8), Some(12), today), 1974);
        assert_eq!(birth_year(5, Some(1), Some(1), today), 2005);
        assert_eq!(birth_year(26, Some(3), Some(10), today), 2026);
        // Born "26-12-01" cannot be in the future: 1926.
        assert_eq!(birth_year(26, Some(12), Some(1), today), 1926);
        assert_eq!(birth_year(30, None, None, today), 1930);
        assert_eq!(expiry_year(12, today), 2012);
        assert_eq!(expiry_year(34, today), 2034);
        assert_eq!(expiry_year(99, today), 1999);
        assert_eq!(expiry_year(5, d(2095, 1, 1)), 2105);
    }
}
