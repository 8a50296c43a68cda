//! Instants: RFC 3339 with any offset, or a local date-time in the
//! deployment's time zone; always written in UTC.

use std::fmt;
use std::str::FromStr;

use jiff::civil;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::date::parse_date;

/// A time zone from the IANA database, e.g. `Asia/Kolkata`, `UTC`: the
/// deployment's zone, in which local date-times without an offset are
/// read (DIVOC's clients sent `2020-03-24T19:21:19.646` and meant local
/// time).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

/// A time zone name that the time zone database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone `{0}` (use an IANA name such as `Asia/Kolkata` or `UTC`)")]
pub struct ZoneError(pub String);

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }

    /// The zone named `name` in the IANA time zone database (the system's,
    /// or the copy bundled into the binary where the system has none).
    pub fn named(name: &str) -> Result<Zone, ZoneError> {
        let tz = TimeZone::get(name).map_err(|_| ZoneError(name.to_owned()))?;
        Ok(Zone {
            name: name.to_owned(),
            tz,
        })
    }

    /// The zone's name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// Midnight at the start of `date` in this zone, ms since the epoch.
    pub fn start_of_day_ms(&self, date: crate::Date) -> i64 {
        date.civil()
            .to_zoned(self.tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or_else(|_| date.start_ms())
    }

    /// `date` at `hour:minute` local time in this zone, ms since the epoch.
    /// A time skipped by a daylight-saving change is moved forward, a
    /// repeated one takes its first occurrence (RFC 5545's rule, jiff's
    /// "compatible" disambiguation).
    pub fn local_ms(&self, date: crate::Date, hour: u32, minute: u32) -> Option<i64> {
        let time =
            civil::Time::new(i8::try_from(hour).ok()?, i8::try_from(minute).ok()?, 0, 0).ok()?;
        date.civil()
            .to_datetime(time)
            .to_zoned(self.tz.clone())
            .ok()
            .map(|z| z.timestamp().as_millisecond())
    }
}

impl Default for Zone {
    fn default() -> Self {
        Zone::utc()
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name)
    }
}

impl TryFrom<String> for Zone {
    type Error = ZoneError;
    fn try_from(name: String) -> Result<Zone, ZoneError> {
        Zone::named(&name)
    }
}

impl From<Zone> for String {
    fn from(z: Zone) -> String {
        z.name
    }
}

/// Parses an instant into ms since the epoch. Accepted:
/// - an RFC 3339 date-time with `Z` or any offset (`+05:30`, `-05:00`),
///   with or without fractional seconds, `T` or a space between date and
///   time (RFC 3339 §5.6 allows either);
/// - a local date-time without an offset (`2020-03-24T19:21:19.646`),
///   read in `zone`;
/// - a bare date `YYYY-MM-DD`, read as midnight UTC (a calendar day, not a
///   moment: it prints as the same day everywhere).
///
/// Impossible dates and times (`2021-02-30`, `25:00`) are refused, and so is
/// a bracketed zone annotation without an offset, which would otherwise be
/// read in the wrong zone.
pub fn parse_instant(s: &str, zone: &Zone) -> Option<i64> {
    if let Some(d) = parse_date(s) {
        return Some(d.start_ms());
    }
    // The shortest date-time is `YYYY-MM-DDTHH:MM`.
    if s.len() < 16 || !s.is_ascii() || s.contains('[') {
        return None;
    }
    if let Ok(ts) = Timestamp::from_str(s) {
        return offset_in_range(s).then(|| ts.as_millisecond());
    }
    // No offset: a local time. (`Z` or an offset would have parsed above.)
    let local = civil::DateTime::from_str(s).ok()?;
    let zoned = local.to_zoned(zone.tz.clone()).ok()?;
    Some(zoned.timestamp().as_millisecond())
}

/// RFC 3339 §5.6: `time-numoffset = ("+" / "-") time-hour ":" time-minute`
/// with `time-hour` 00–23. jiff reads offsets up to ±25:59:59 (what
/// Temporal allows), so the hour is checked here.
fn offset_in_range(s: &str) -> bool {
    let Some(pos) = s.rfind(['+', '-']).filter(|&p| p > 10) else {
        // `Z`: no numeric offset.
        return true;
    };
    let hours = s.get(pos + 1..pos + 3).and_then(|h| h.parse::<u8>().ok());
    matches!(hours, Some(h) if h <= 23)
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::UNIX_EPOCH
    } else {
        Timestamp::MAX
    })
}

/// Writes ms since the epoch as an RFC 3339 UTC `dateTimeStamp`, to the
/// second (what credentials carry in `validFrom` / `validUntil`).
pub fn format_seconds(ms: i64) -> String {
    format!("{:.0}", timestamp(ms.div_euclid(1000) * 1000))
}

/// Writes ms since the epoch as an RFC 3339 UTC date-time, with
/// milliseconds when there are any: the same instant that was given.
pub fn format_millis(ms: i64) -> String {
    if ms.rem_euclid(1000) == 0 {
        format_seconds(ms)
    } else {
        format!("{:.3}", timestamp(ms))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Case {
        input: String,
        #[serde(default)]
        zone: Option<String>,
        /// The instant in UTC, as [`format_millis`] writes it; absent when
        /// the input must be refused.
        utc: Option<String>,
        why: String,
    }

    /// The cases in `cases/instants.json`: the forms DIVOC's clients sent,
    /// offsets of the countries that ran it, and what must be refused.
    #[test]
    fn instant_cases() {
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("../cases/instants.json")).unwrap();
        assert!(cases.len() >= 20);
        for c in cases {
            let zone = match &c.zone {
                Some(z) => Zone::named(z).unwrap(),
                None => Zone::utc(),
            };
            let got = parse_instant(&c.input, &zone).map(format_millis);
            assert_eq!(got, c.utc, "{:?} in {:?}: {}", c.input, c.zone, c.why);
        }
    }

    #[test]
    fn zones_by_name() {
        assert_eq!(Zone::named("Asia/Kolkata").unwrap().name(), "Asia/Kolkata");
        assert!(Zone::named("Mars/Olympus_Mons").is_err());
        let z: Zone = serde_json::from_str("\"America/Bogota\"").unwrap();
        assert_eq!(serde_json::to_string(&z).unwrap(), "\"America/Bogota\"");
        assert!(serde_json::from_str::<Zone>("\"Nowhere\"").is_err());
    }

    #[test]
    fn local_times_in_a_zone() {
        let ist = Zone::named("Asia/Kolkata").unwrap();
        let d = crate::parse_date("2021-03-02").unwrap();
        assert_eq!(
            format_millis(ist.start_of_day_ms(d)),
            "2021-03-01T18:30:00Z"
        );
        assert_eq!(
            format_millis(ist.local_ms(d, 9, 15).unwrap()),
            "2021-03-02T03:45:00Z"
        );
        assert!(ist.local_ms(d, 24, 0).is_none());
        // New York skips 02:00-03:00 on 2021-03-14: moved forward.
        let ny = Zone::named("America/New_York").unwrap();
        let spring = crate::parse_date("2021-03-14").unwrap();
        assert_eq!(
            format_millis(ny.local_ms(spring, 2, 30).unwrap()),
            "2021-03-14T07:30:00Z"
        );
        assert_eq!(
            crate::Date::in_zone(ist.start_of_day_ms(d), &ist).to_string(),
            "2021-03-02"
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(format_seconds(1000), "1970-01-01T00:00:01Z");
        assert_eq!(format_seconds(1999), "1970-01-01T00:00:01Z");
        assert_eq!(format_millis(1999), "1970-01-01T00:00:01.999Z");
        assert_eq!(format_millis(1000), "1970-01-01T00:00:01Z");
    }
}
