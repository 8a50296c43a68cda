//! Host events as vaccinations: what each payload carries, its local date
//! and its DHIS2 period.
//!
//! Payloads (`wit/worlds.wit`, `events.event`) carry no personal data, and
//! only the fields below are read: `rollout.vaccinated` also carries the
//! enrolment code and the vaccinator, which are never read, so they can
//! never reach DHIS2 or the log.

use divoc_sdk::events::Event;
use serde::Deserialize;

use crate::config::{PeriodType, Source};

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub y: i32,
    pub m: u32,
    pub d: u32,
}

impl Date {
    /// The DHIS2 period identifier of the day or month containing the date
    /// (Web API docs, "Date and period format": daily `yyyyMMdd`, monthly
    /// `yyyyMM`).
    pub fn period(self, kind: PeriodType) -> String {
        match kind {
            PeriodType::Daily => format!("{:04}{:02}{:02}", self.y, self.m, self.d),
            PeriodType::Monthly => format!("{:04}{:02}", self.y, self.m),
        }
    }
}

/// A local wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    pub h: u32,
    pub min: u32,
    pub s: u32,
}

/// `YYYY-MM-DD`, checked.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let y = i32::try_from(y).ok()?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let ok = (1..=12).contains(&m) && d >= 1 && d <= days[(m - 1) as usize] && y >= 1;
    ok.then_some(Date { y, m, d })
}

/// The civil date of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
pub fn civil(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Date {
        y: i32::try_from(y).unwrap_or(i32::MAX),
        m: u32::try_from(m).unwrap_or(1),
        d: u32::try_from(d).unwrap_or(1),
    }
}

/// Local date and time of an instant in ms since the epoch, shifted by
/// `offset_minutes`; `None` outside years 1-9999 (DHIS2 periods are four
/// digit years).
pub fn local(ms: u64, offset_minutes: i32) -> Option<(Date, Time)> {
    let secs = i64::try_from(ms / 1000)
        .ok()?
        .checked_add(i64::from(offset_minutes).checked_mul(60)?)?;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    if days > 2_932_896 {
        // 9999-12-31: later dates do not make a four-digit year.
        return None;
    }
    let date = civil(days);
    let time = Time {
        h: u32::try_from(rem / 3600).ok()?,
        min: u32::try_from(rem % 3600 / 60).ok()?,
        s: u32::try_from(rem % 60).ok()?,
    };
    (date.y >= 1).then_some((date, time))
}

/// One vaccination, as much as an event tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vaccination {
    pub sequence: u64,
    pub program: String,
    pub dose: u32,
    pub vaccine: Option<String>,
    pub facility: Option<String>,
    /// The local vaccination date (`rollout.vaccinated`) or issue date.
    pub date: Date,
    /// The local issue time (`certificate.issued` only).
    pub time: Option<Time>,
}

/// What an event is to this exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not the configured source kind: acknowledged, nothing to do.
    Other,
    /// The source kind, but without what an export needs; the reason is a
    /// fixed text (no payload data), for the log.
    Malformed(&'static str),
    Vaccination(Vaccination),
}

/// The payload fields read. `certificate.issued` is
/// `{"id","program","dose","version","previous_id","facility_id"}`
/// (host/storage/src/certificates.rs), `rollout.vaccinated` is
/// `{"programme","dose","facility","vaccine","date",...}`
/// (host/rollout/src/vaccination.rs); the feeder adds `subject`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Payload {
    #[serde(alias = "programme")]
    program: Option<String>,
    dose: Option<u64>,
    vaccine: Option<String>,
    #[serde(alias = "facility")]
    facility_id: Option<String>,
    date: Option<String>,
    version: Option<u64>,
}

fn non_blank(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Reads one event.
pub fn parse(source: Source, offset_minutes: i32, e: &Event) -> Parsed {
    if e.kind != source.kind() {
        return Parsed::Other;
    }
    let Ok(p) = serde_json::from_str::<Payload>(&e.payload) else {
        return Parsed::Malformed("the payload is not the expected JSON object");
    };
    let Some(program) = non_blank(p.program) else {
        return Parsed::Malformed("the payload names no programme");
    };
    let Some(dose) = p
        .dose
        .and_then(|d| u32::try_from(d).ok())
        .filter(|d| *d > 0)
    else {
        return Parsed::Malformed("the payload has no valid dose number");
    };
    // A correction is `certificate.corrected`; a version above 1 here would
    // be a new version of a dose already counted.
    if p.version.is_some_and(|v| v != 1) {
        return Parsed::Malformed("the certificate is not a first version");
    }
    let (date, time) = match source {
        Source::CertificateIssued => match local(e.occurred_at, offset_minutes) {
            Some((d, t)) => (d, Some(t)),
            None => return Parsed::Malformed("the event time is out of range"),
        },
        Source::RolloutVaccinated => match p.date.as_deref().and_then(parse_date) {
            Some(d) => (d, None),
            None => return Parsed::Malformed("the payload has no valid vaccination date"),
        },
    };
    Parsed::Vaccination(Vaccination {
        sequence: e.sequence,
        program,
        dose,
        vaccine: non_blank(p.vaccine),
        facility: non_blank(p.facility_id),
        date,
        time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn ev(sequence: u64, kind: &str, occurred_at: u64, payload: &str) -> Event {
        Event {
            sequence,
            kind: kind.into(),
            occurred_at,
            payload: payload.into(),
        }
    }

    #[test]
    fn dates_and_periods() {
        assert_eq!(
            civil(0),
            Date {
                y: 1970,
                m: 1,
                d: 1
            }
        );
        assert_eq!(
            civil(11_017),
            Date {
                y: 2000,
                m: 3,
                d: 1
            }
        );
        assert_eq!(
            civil(-1),
            Date {
                y: 1969,
                m: 12,
                d: 31
            }
        );
        // 2021-03-31T20:00:00Z is already April 1st in India (UTC+05:30).
        let ms = 1_617_220_800_000;
        let (d, t) = local(ms, 0).unwrap();
        assert_eq!(
            (d.period(PeriodType::Monthly), t.h),
            ("202103".to_string(), 20)
        );
        let (d, t) = local(ms, 330).unwrap();
        assert_eq!(d.period(PeriodType::Daily), "20210401");
        assert_eq!((t.h, t.min), (1, 30));
        assert!(local(u64::MAX, 0).is_none());
        assert!(local(0, i32::MIN).is_none());
        assert!(local(253_402_300_799_000, 0).is_some());
        assert!(local(253_402_300_800_000, 0).is_none());
        assert_eq!(
            parse_date("2024-02-29"),
            Some(Date {
                y: 2024,
                m: 2,
                d: 29
            })
        );
        for bad in [
            "2023-02-29",
            "2023-13-01",
            "20230101",
            "2023-1-01",
            "+023-01-01",
            "0000-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn certificate_issued_events() {
        let payload = r#"{"id":"c1","program":"C19","dose":2,"version":1,"previous_id":null,
                          "facility_id":"F1","subject":"c1"}"#;
        let Parsed::Vaccination(v) = parse(
            Source::CertificateIssued,
            0,
            &ev(7, "certificate.issued", 1_617_220_800_000, payload),
        ) else {
            panic!("not a vaccination")
        };
        assert_eq!((v.sequence, v.program.as_str(), v.dose), (7, "C19", 2));
        assert_eq!(v.facility.as_deref(), Some("F1"));
        assert_eq!(v.vaccine, None);
        assert_eq!(
            v.date,
            Date {
                y: 2021,
                m: 3,
                d: 31
            }
        );
        // Other kinds are not ours; incomplete payloads are malformed.
        assert_eq!(
            parse(
                Source::CertificateIssued,
                0,
                &ev(1, "certificate.revoked", 0, payload)
            ),
            Parsed::Other
        );
        for bad in [
            "{}",
            r#"{"certificate-id":"c1"}"#,
            "not json",
            r#"{"program":"C19"}"#,
            r#"{"program":"C19","dose":0}"#,
            r#"{"program":" ","dose":1}"#,
            r#"{"program":"C19","dose":"1"}"#,
            r#"{"program":"C19","dose":1,"version":2}"#,
            r#"{"program":"C19","dose":99999999999}"#,
        ] {
            assert!(
                matches!(
                    parse(
                        Source::CertificateIssued,
                        0,
                        &ev(1, "certificate.issued", 0, bad)
                    ),
                    Parsed::Malformed(_)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn rollout_vaccinated_events_use_the_vaccination_date() {
        let payload = r#"{"enrolment":"1234567890","programme":"C19","dose":1,"certificate":"c1",
                          "facility":"F2","vaccinator":"V","vaccine":"COVAX","date":"2021-04-02"}"#;
        let Parsed::Vaccination(v) = parse(
            Source::RolloutVaccinated,
            0,
            &ev(3, "rollout.vaccinated", 1_700_000_000_000, payload),
        ) else {
            panic!("not a vaccination")
        };
        assert_eq!(v.vaccine.as_deref(), Some("COVAX"));
        assert_eq!(v.facility.as_deref(), Some("F2"));
        assert_eq!(
            v.date,
            Date {
                y: 2021,
                m: 4,
                d: 2
            }
        );
        assert_eq!(v.time, None);
        let undated = r#"{"programme":"C19","dose":1}"#;
        assert!(matches!(
            parse(
                Source::RolloutVaccinated,
                0,
                &ev(3, "rollout.vaccinated", 0, undated)
            ),
            Parsed::Malformed(_)
        ));
    }
}
