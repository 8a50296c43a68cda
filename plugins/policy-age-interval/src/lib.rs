//! Rollout policy by age, dose number and interval.
//!
//! Configuration: `min_age` (years, default 18), `max_dose` (default 3),
//! `min_days_between_doses` (default 28). The recipient's age is taken from
//! `age`, else computed from `dob` at the vaccination date.

use divoc_sdk::eligibility::{Decision, Guest, Query};
use divoc_sdk::{config, Error};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Config {
    pub min_age: u32,
    pub max_dose: u32,
    pub min_days_between_doses: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_age: 18,
            max_dose: 3,
            min_days_between_doses: 28,
        }
    }
}

/// A calendar date from `YYYY-MM-DD` or an RFC 3339 date-time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub y: i32,
    pub m: u32,
    pub d: u32,
}

pub fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    let date = s.get(..10)?;
    if s.len() > 10 && !s[10..].starts_with(['T', 't', ' ']) {
        return None;
    }
    let mut it = date.split('-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let date = Date {
        y: y.parse().ok()?,
        m: m.parse().ok()?,
        d: d.parse().ok()?,
    };
    let leap = (date.y % 4 == 0 && date.y % 100 != 0) || date.y % 400 == 0;
    let days_in_month = [
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
    let valid =
        (1..=12).contains(&date.m) && date.d >= 1 && date.d <= days_in_month[(date.m - 1) as usize];
    valid.then_some(date)
}

/// Days since 1970-01-01 (proleptic Gregorian; H. Hinnant's `days_from_civil`).
pub fn days(d: Date) -> i64 {
    let y = i64::from(d.y) - i64::from(d.m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(d.m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d.d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Completed years between `dob` and `on`.
pub fn age_on(dob: Date, on: Date) -> i64 {
    let mut years = i64::from(on.y) - i64::from(dob.y);
    if (on.m, on.d) < (dob.m, dob.d) {
        years -= 1;
    }
    years
}

pub fn evaluate(cfg: &Config, q: &Query) -> Result<Decision, Error> {
    let on = parse_date(&q.date).ok_or_else(|| {
        Error::invalid_input(format!("invalid date {}", divoc_sdk::quote(&q.date)))
    })?;
    if q.dose == 0 {
        return Err(Error::invalid_input("doses are numbered from 1"));
    }
    let mut reasons = Vec::new();

    let age = match (q.recipient.age, q.recipient.dob.as_deref()) {
        (Some(age), _) => Some(i64::from(age)),
        (None, Some(dob)) => {
            let dob = parse_date(dob)
                .ok_or_else(|| Error::invalid_input(format!("invalid date of birth {dob:?}")))?;
            Some(age_on(dob, on))
        }
        (None, None) => None,
    };
    match age {
        None => reasons.push("the recipient's age or date of birth is needed".to_string()),
        Some(a) if a < i64::from(cfg.min_age) => reasons.push(format!(
            "recipients must be at least {} years old",
            cfg.min_age
        )),
        Some(_) => {}
    }

    if q.dose > cfg.max_dose {
        reasons.push(format!(
            "this programme gives at most {} doses",
            cfg.max_dose
        ));
    }
    let previous = q.previous_doses.iter().map(|d| d.dose).max().unwrap_or(0);
    if q.dose != previous + 1 {
        reasons.push(format!(
            "the recipient's next dose is dose {}, not dose {}",
            previous + 1,
            q.dose
        ));
    }
    let mut last: Option<Date> = None;
    for d in &q.previous_doses {
        let date = parse_date(&d.date).ok_or_else(|| {
            Error::invalid_input(format!("invalid dose date {}", divoc_sdk::quote(&d.date)))
        })?;
        last = last.max(Some(date));
    }
    if let Some(last) = last {
        let gap = days(on) - days(last);
        if gap < i64::from(cfg.min_days_between_doses) {
            let wait = i64::from(cfg.min_days_between_doses) - gap;
            reasons.push(format!(
                "doses must be at least {} days apart; the next dose is possible in {wait} days",
                cfg.min_days_between_doses
            ));
        }
    }
    Ok(if reasons.is_empty() {
        Decision::Allow
    } else {
        Decision::Deny(reasons)
    })
}

struct Plugin;

impl Guest for Plugin {
    fn evaluate(query: Query) -> Result<Decision, Error> {
        evaluate(&config::load()?, &query)
    }
}

divoc_sdk::export_rollout_policy!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use divoc_sdk::eligibility::PreviousDose;
    use divoc_sdk::{Identity, Recipient};

    fn query(age: Option<u32>, dob: Option<&str>, dose: u32, prev: &[(u32, &str)]) -> Query {
        Query {
            recipient: Recipient {
                name: "A".into(),
                dob: dob.map(Into::into),
                age,
                gender: None,
                nationality: None,
                identity: Identity {
                    id_type: "national-id".into(),
                    value: "1".into(),
                },
                contacts: vec![],
                address: None,
            },
            program: "covid-19".into(),
            vaccine: None,
            dose,
            date: "2024-03-01".into(),
            previous_doses: prev
                .iter()
                .map(|(d, date)| PreviousDose {
                    vaccine: "x".into(),
                    dose: *d,
                    date: (*date).into(),
                })
                .collect(),
        }
    }

    fn reasons(d: Decision) -> Vec<String> {
        match d {
            Decision::Allow => vec![],
            Decision::Deny(r) => r,
        }
    }

    #[test]
    fn dates() {
        assert_eq!(days(parse_date("1970-01-01").unwrap()), 0);
        assert_eq!(days(parse_date("2000-03-01").unwrap()), 11017);
        assert_eq!(
            parse_date("2024-02-29T10:00:00Z"),
            Some(Date {
                y: 2024,
                m: 2,
                d: 29
            })
        );
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("2023-13-01").is_none());
        assert!(parse_date("20230101").is_none());
        assert_eq!(
            age_on(
                parse_date("2006-03-02").unwrap(),
                parse_date("2024-03-01").unwrap()
            ),
            17
        );
        assert_eq!(
            age_on(
                parse_date("2006-03-01").unwrap(),
                parse_date("2024-03-01").unwrap()
            ),
            18
        );
    }

    #[test]
    fn allows_and_denies_with_reasons() {
        let cfg = Config::default();
        assert_eq!(
            reasons(evaluate(&cfg, &query(Some(30), None, 1, &[])).unwrap()),
            Vec::<String>::new()
        );
        let r = reasons(evaluate(&cfg, &query(None, Some("2006-03-02"), 1, &[])).unwrap());
        assert!(r[0].contains("at least 18 years"));
        let r = reasons(evaluate(&cfg, &query(None, None, 1, &[])).unwrap());
        assert!(r[0].contains("date of birth"));
        let r = reasons(evaluate(&cfg, &query(Some(30), None, 2, &[(1, "2024-02-20")])).unwrap());
        assert!(r[0].contains("18 days"), "{r:?}");
        assert_eq!(
            reasons(evaluate(&cfg, &query(Some(30), None, 2, &[(1, "2024-01-01")])).unwrap()).len(),
            0
        );
        let r = reasons(
            evaluate(
                &cfg,
                &query(
                    Some(30),
                    None,
                    4,
                    &[(1, "2023-01-01"), (2, "2023-03-01"), (3, "2023-06-01")],
                ),
            )
            .unwrap(),
        );
        assert!(r[0].contains("at most 3 doses"));
        let r = reasons(evaluate(&cfg, &query(Some(30), None, 3, &[(1, "2023-01-01")])).unwrap());
        assert!(r[0].contains("dose 2"));
        assert!(evaluate(&cfg, &query(Some(30), None, 0, &[])).is_err());
    }
}
