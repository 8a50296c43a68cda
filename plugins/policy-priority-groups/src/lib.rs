//! Rollout policy by priority group: eligibility opens in phases, as
//! countries ran COVID-19 vaccination (health workers first, then the
//! elderly, then people with comorbidities, then everyone).
//!
//! A recipient may have a *phased* dose (by default dose 1) on `query.date`
//! when at least one phase that has started by then admits them. A phase
//! admits when every criterion it sets holds: an age band (`min_age`,
//! `max_age`, completed years), one of its `occupations`, one of its
//! `conditions`. Other doses follow the series rules only (`max_dose`, the
//! next dose in order, `min_days_between_doses`), since a series started in
//! an earlier phase must be completable.
//!
//! The 1.1 contract's `recipient` record carries no occupation and no
//! conditions, and the host does not pass them in any other field (see
//! [`facts`]). A phase with occupation or condition criteria therefore never
//! admits anyone through this contract: it fails closed, and its deny reason
//! says that the criterion cannot be checked here, rather than claiming that
//! the recipient does not meet it. See README.md for what the host would
//! need to pass.
//!
//! Deny reasons name phases, dates and criteria only, never the recipient's
//! data, so they are safe to show (`wit/worlds.wit`, `eligibility.decision`).

use divoc_sdk::eligibility::{Decision, Guest, Query};
use divoc_sdk::{config, Error};
use serde::Deserialize;

/// The configuration section as the operator writes it.
///
/// Unknown keys are refused: a typo such as `max_ages` would otherwise
/// silently widen who is eligible.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The phases, in any order.
    pub phases: Vec<PhaseConfig>,
    /// Dose numbers that need an admitting phase (default: `[1]`).
    pub phased_doses: Vec<u32>,
    /// When completed years are counted.
    pub age_on: AgeOn,
    /// Highest dose number given.
    pub max_dose: u32,
    /// Least number of days between two doses.
    pub min_days_between_doses: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            phases: Vec::new(),
            phased_doses: vec![1],
            age_on: AgeOn::Date,
            max_dose: 3,
            min_days_between_doses: 28,
        }
    }
}

/// When a recipient's age is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgeOn {
    /// Completed years on the vaccination date.
    #[default]
    Date,
    /// Completed years on 31 December of the vaccination's year, as some
    /// countries counted ("45+" meaning born in or before a year).
    YearEnd,
}

/// One phase as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseConfig {
    /// Shown in deny reasons, e.g. `phase 3`.
    pub name: String,
    /// ISO date the phase opens (inclusive).
    pub start: String,
    #[serde(default)]
    pub min_age: Option<u32>,
    #[serde(default)]
    pub max_age: Option<u32>,
    /// Any one of these occupations (empty: no occupation criterion).
    #[serde(default)]
    pub occupations: Vec<String>,
    /// Any one of these conditions (empty: no condition criterion).
    #[serde(default)]
    pub conditions: Vec<String>,
    /// The doses this phase admits to (default: `phased_doses`).
    #[serde(default)]
    pub doses: Option<Vec<u32>>,
}

/// A validated phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub start: Date,
    pub min_age: Option<u32>,
    pub max_age: Option<u32>,
    pub occupations: Vec<String>,
    pub conditions: Vec<String>,
    pub doses: Vec<u32>,
}

impl Phase {
    /// `name (criteria)`, e.g. `phase 3 (45-59, with diabetes or copd)`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        match (self.min_age, self.max_age) {
            (Some(min), Some(max)) => parts.push(format!("{min}-{max}")),
            (Some(min), None) => parts.push(format!("{min}+")),
            (None, Some(max)) => parts.push(format!("up to {max}")),
            (None, None) => {}
        }
        if !self.occupations.is_empty() {
            parts.push(self.occupations.join(" or "));
        }
        if !self.conditions.is_empty() {
            parts.push(format!("with {}", self.conditions.join(" or ")));
        }
        if parts.is_empty() {
            parts.push("everyone".into());
        }
        format!("{} ({})", self.name, parts.join(", "))
    }
}

/// The configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub phases: Vec<Phase>,
    pub phased_doses: Vec<u32>,
    pub age_on: AgeOn,
    pub max_dose: u32,
    pub min_days_between_doses: u32,
}

fn config_error(message: String) -> Error {
    // The operator's configuration is wrong, not the caller's input.
    Error::internal(format!("invalid plugin configuration: {message}"))
}

impl Config {
    /// Checks the configuration; errors name the offending key.
    pub fn validate(self) -> Result<Policy, Error> {
        if self.phased_doses.contains(&0) {
            return Err(config_error(
                "phased_doses: doses are numbered from 1".into(),
            ));
        }
        let mut phases = Vec::with_capacity(self.phases.len());
        for (i, p) in self.phases.into_iter().enumerate() {
            let at = format!("phases[{i}]");
            if p.name.trim().is_empty() {
                return Err(config_error(format!("{at}.name: must not be blank")));
            }
            let start = parse_date(&p.start).ok_or_else(|| {
                config_error(format!(
                    "{at}.start: {:?} is not a YYYY-MM-DD date",
                    p.start
                ))
            })?;
            if let (Some(min), Some(max)) = (p.min_age, p.max_age) {
                if min > max {
                    return Err(config_error(format!(
                        "{at}: min_age {min} is above max_age {max}"
                    )));
                }
            }
            let clean = |list: Vec<String>, key: &str| -> Result<Vec<String>, Error> {
                list.into_iter()
                    .map(|s| {
                        let s = s.trim().to_string();
                        if s.is_empty() {
                            Err(config_error(format!("{at}.{key}: blank entry")))
                        } else {
                            Ok(s)
                        }
                    })
                    .collect()
            };
            let doses = p.doses.unwrap_or_else(|| self.phased_doses.clone());
            if doses.contains(&0) {
                return Err(config_error(format!(
                    "{at}.doses: doses are numbered from 1"
                )));
            }
            phases.push(Phase {
                name: p.name.trim().to_string(),
                start,
                min_age: p.min_age,
                max_age: p.max_age,
                occupations: clean(p.occupations, "occupations")?,
                conditions: clean(p.conditions, "conditions")?,
                doses,
            });
        }
        Ok(Policy {
            phases,
            phased_doses: self.phased_doses,
            age_on: self.age_on,
            max_dose: self.max_dose,
            min_days_between_doses: self.min_days_between_doses,
        })
    }
}

/// A calendar date from `YYYY-MM-DD` or an RFC 3339 date-time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub y: i32,
    pub m: u32,
    pub d: u32,
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.y, self.m, self.d)
    }
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
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(y) && all_digits(m) && all_digits(d)) {
        return None;
    }
    let date = Date {
        y: y.parse().ok()?,
        m: m.parse().ok()?,
        d: d.parse().ok()?,
    };
    let leap = (date.y % 4 == 0 && date.y % 100 != 0) || date.y % 400 == 0;
    let feb = if leap { 29 } else { 28 };
    let days_in_month = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
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

/// What the policy knows about the recipient.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Completed years (see [`AgeOn`]); `None` without `dob` or `age`.
    pub age: Option<i64>,
    /// `None`: the query does not say (see [`facts`]).
    pub occupation: Option<String>,
    /// `None`: the query does not say (see [`facts`]).
    pub conditions: Option<Vec<String>>,
}

/// The facts a query carries.
///
/// The age comes from `dob` (exact for the vaccination date), else from
/// `age`. Occupation and conditions are always unknown: the 1.1 `recipient`
/// record (`wit/types.wit`) has no field for them, and the host's
/// `RuntimePolicies` (host/divoc/src/wiring.rs) builds the recipient from
/// name, date of birth, gender, nationality and a `national-id` identity
/// only, although enrolments do record declared conditions. Guessing them
/// from another field would be wrong, so they stay `None` until the
/// contract carries them; [`fit`] then reports "cannot be checked".
pub fn facts(q: &Query, on: Date, basis: AgeOn) -> Result<Facts, Error> {
    let reference = match basis {
        AgeOn::Date => on,
        AgeOn::YearEnd => Date {
            y: on.y,
            m: 12,
            d: 31,
        },
    };
    let age = match (q.recipient.dob.as_deref(), q.recipient.age) {
        (Some(dob), _) => {
            let dob = parse_date(dob).ok_or_else(|| {
                Error::invalid_input(format!("invalid date of birth {}", divoc_sdk::quote(dob)))
            })?;
            Some(age_on(dob, reference))
        }
        (None, Some(age)) => Some(i64::from(age)),
        (None, None) => None,
    };
    Ok(Facts {
        age,
        occupation: None,
        conditions: None,
    })
}

/// How a phase's criteria fit a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Every criterion holds.
    Admits,
    /// At least one criterion is known not to hold, or cannot be checked;
    /// `known_miss` is `false` when nothing failed except criteria the
    /// query cannot answer. `why` is each failed criterion, safe to show.
    Not { known_miss: bool, why: Vec<String> },
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Checks a phase's criteria (not its date) against the facts. A missing
/// age is left to the caller (one reason for all phases).
pub fn fit(phase: &Phase, f: &Facts) -> Fit {
    let mut why = Vec::new();
    let mut known_miss = false;
    if phase.min_age.is_some() || phase.max_age.is_some() {
        match f.age {
            None => known_miss = true,
            Some(age) => {
                let low = phase.min_age.is_some_and(|m| age < i64::from(m));
                let high = phase.max_age.is_some_and(|m| age > i64::from(m));
                if low || high {
                    known_miss = true;
                    why.push(match (phase.min_age, phase.max_age) {
                        (Some(min), Some(max)) => format!("is for ages {min} to {max}"),
                        (Some(min), None) => format!("is for ages {min} and over"),
                        (None, Some(max)) => format!("is for ages up to {max}"),
                        (None, None) => String::new(),
                    });
                }
            }
        }
    }
    if !phase.occupations.is_empty() {
        let list = phase.occupations.join(" or ");
        match f.occupation.as_deref() {
            None => why.push(format!(
                "requires occupation {list}, which this host does not pass to the policy, \
                 so it cannot be checked"
            )),
            Some(o) if !phase.occupations.iter().any(|x| same(x, o)) => {
                known_miss = true;
                why.push(format!("requires occupation {list}"));
            }
            Some(_) => {}
        }
    }
    if !phase.conditions.is_empty() {
        let list = phase.conditions.join(" or ");
        match f.conditions.as_deref() {
            None => why.push(format!(
                "requires one of the conditions {list}, which this host does not pass to \
                 the policy, so it cannot be checked"
            )),
            Some(cs)
                if !cs
                    .iter()
                    .any(|c| phase.conditions.iter().any(|x| same(x, c))) =>
            {
                known_miss = true;
                why.push(format!("requires one of the conditions {list}"));
            }
            Some(_) => {}
        }
    }
    if why.is_empty() && !known_miss {
        Fit::Admits
    } else {
        Fit::Not { known_miss, why }
    }
}

/// Deny reasons from the phases for `dose` on `on` (empty: admitted).
pub fn phase_reasons(p: &Policy, f: &Facts, dose: u32, on: Date) -> Vec<String> {
    if !p.phased_doses.contains(&dose) {
        return Vec::new();
    }
    let relevant: Vec<&Phase> = p
        .phases
        .iter()
        .filter(|ph| ph.doses.contains(&dose))
        .collect();
    let (open, later): (Vec<&Phase>, Vec<&Phase>) = relevant.iter().partition(|ph| ph.start <= on);
    if open.iter().any(|ph| fit(ph, f) == Fit::Admits) {
        return Vec::new();
    }
    let mut reasons = Vec::new();
    let needs_age = relevant
        .iter()
        .any(|ph| ph.min_age.is_some() || ph.max_age.is_some());
    if f.age.is_none() && needs_age {
        reasons.push("the recipient's age or date of birth is needed".to_string());
    }
    // The earliest later phase whose criteria are known to hold.
    let next = later
        .iter()
        .filter(|ph| fit(ph, f) == Fit::Admits)
        .min_by_key(|ph| ph.start);
    if let Some(ph) = next {
        reasons.push(format!(
            "not yet eligible: {} opens {}",
            ph.label(),
            ph.start
        ));
        return reasons;
    }
    if relevant.is_empty() {
        reasons.push(format!("no vaccination phase is open for dose {dose}"));
        return reasons;
    }
    if open.is_empty() {
        if let Some(first) = later.iter().min_by_key(|ph| ph.start) {
            reasons.push(format!(
                "not yet eligible: no phase has opened; the first, {}, opens {}",
                first.label(),
                first.start
            ));
        }
        return reasons;
    }
    reasons.push(format!("not eligible in the phases open on {on}"));
    for ph in open {
        if let Fit::Not { why, .. } = fit(ph, f) {
            if !why.is_empty() {
                reasons.push(format!("{} {}", ph.label(), why.join("; ")));
            }
        }
    }
    reasons
}

/// Deny reasons from the dose series: dose count, order and interval.
pub fn series_reasons(p: &Policy, q: &Query, on: Date) -> Result<Vec<String>, Error> {
    let mut reasons = Vec::new();
    if q.dose > p.max_dose {
        reasons.push(format!("this programme gives at most {} doses", p.max_dose));
    }
    let previous = q.previous_doses.iter().map(|d| d.dose).max().unwrap_or(0);
    let next = previous.saturating_add(1);
    if q.dose != next {
        reasons.push(format!(
            "the recipient's next dose is dose {next}, not dose {}",
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
        let min = i64::from(p.min_days_between_doses);
        if gap < min {
            reasons.push(format!(
                "doses must be at least {min} days apart; the next dose is possible in {} days",
                min - gap
            ));
        }
    }
    Ok(reasons)
}

pub fn evaluate(p: &Policy, q: &Query) -> Result<Decision, Error> {
    let on = parse_date(&q.date).ok_or_else(|| {
        Error::invalid_input(format!("invalid date {}", divoc_sdk::quote(&q.date)))
    })?;
    if q.dose == 0 {
        return Err(Error::invalid_input("doses are numbered from 1"));
    }
    let f = facts(q, on, p.age_on)?;
    let mut reasons = phase_reasons(p, &f, q.dose, on);
    reasons.extend(series_reasons(p, q, on)?);
    Ok(if reasons.is_empty() {
        Decision::Allow
    } else {
        Decision::Deny(reasons)
    })
}

struct Plugin;

impl Guest for Plugin {
    fn evaluate(query: Query) -> Result<Decision, Error> {
        let policy = config::load::<Config>()?.validate()?;
        evaluate(&policy, &query)
    }
}

divoc_sdk::export_rollout_policy!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use divoc_sdk::eligibility::PreviousDose;
    use divoc_sdk::{Identity, Recipient};

    /// India's 2021 schedule, roughly.
    fn policy() -> Policy {
        config::parse::<Config>(
            r#"{
              "phases": [
                {"name": "phase 1", "start": "2021-01-16", "occupations": ["healthcare-worker"]},
                {"name": "phase 2", "start": "2021-02-02", "occupations": ["frontline-worker"]},
                {"name": "phase 3", "start": "2021-03-01", "min_age": 60},
                {"name": "phase 3b", "start": "2021-03-01", "min_age": 45, "max_age": 59,
                 "conditions": ["diabetes", "copd"]},
                {"name": "phase 4", "start": "2021-04-01", "min_age": 45},
                {"name": "phase 5", "start": "2021-05-01", "min_age": 18}
              ],
              "max_dose": 2,
              "min_days_between_doses": 28
            }"#,
        )
        .unwrap()
        .validate()
        .unwrap()
    }

    fn query(dob: Option<&str>, dose: u32, date: &str, prev: &[(u32, &str)]) -> Query {
        Query {
            recipient: Recipient {
                name: "A".into(),
                dob: dob.map(Into::into),
                age: None,
                gender: None,
                nationality: None,
                identity: Identity {
                    id_type: "national-id".into(),
                    value: "1".into(),
                },
                contacts: vec![],
                address: None,
            },
            program: "C19".into(),
            vaccine: None,
            dose,
            date: date.into(),
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

    fn run(dob: &str, date: &str) -> Vec<String> {
        reasons(evaluate(&policy(), &query(Some(dob), 1, date, &[])).unwrap())
    }

    #[test]
    fn an_age_phase_admits_from_its_start_date() {
        // 50 in March 2021: phase 4 (45+) is the one that opens for them.
        assert_eq!(
            run("1971-01-01", "2021-03-15"),
            ["not yet eligible: phase 4 (45+) opens 2021-04-01"]
        );
        assert!(run("1971-01-01", "2021-04-01").is_empty());
        // 60 on the day phase 3 opens.
        assert!(run("1961-03-01", "2021-03-01").is_empty());
        assert_eq!(
            run("1961-03-02", "2021-03-01"),
            ["not yet eligible: phase 4 (45+) opens 2021-04-01"]
        );
        // A 30-year-old waits for phase 5.
        assert_eq!(
            run("1991-01-01", "2021-03-15"),
            ["not yet eligible: phase 5 (18+) opens 2021-05-01"]
        );
    }

    #[test]
    fn before_any_phase_the_first_is_named() {
        assert_eq!(
            run("1991-01-01", "2021-01-01"),
            ["not yet eligible: phase 5 (18+) opens 2021-05-01"]
        );
        // A 16-year-old matches no phase at all.
        assert_eq!(
            run("2005-01-01", "2021-01-01"),
            ["not yet eligible: no phase has opened; the first, phase 1 (healthcare-worker), opens 2021-01-16"]
        );
    }

    #[test]
    fn no_phase_ever_admits_explains_the_open_ones() {
        let r = run("2005-01-01", "2021-06-01");
        assert_eq!(r[0], "not eligible in the phases open on 2021-06-01");
        assert!(
            r.contains(&"phase 3 (60+) is for ages 60 and over".to_string()),
            "{r:?}"
        );
        assert!(
            r.contains(&"phase 5 (18+) is for ages 18 and over".to_string()),
            "{r:?}"
        );
        // Occupation and condition criteria are reported as unverifiable,
        // not as unmet: the query does not carry them.
        let hcw = r.iter().find(|l| l.starts_with("phase 1")).unwrap();
        assert!(hcw.contains("cannot be checked"), "{hcw}");
        let comorbid = r.iter().find(|l| l.starts_with("phase 3b")).unwrap();
        assert_eq!(
            comorbid,
            "phase 3b (45-59, with diabetes or copd) is for ages 45 to 59; requires one of the \
             conditions diabetes or copd, which this host does not pass to the policy, so it \
             cannot be checked"
        );
    }

    #[test]
    fn occupation_and_condition_phases_fail_closed_without_the_facts() {
        let p = policy();
        let hcw = &p.phases[0];
        let f = Facts {
            age: Some(30),
            ..Facts::default()
        };
        match fit(hcw, &f) {
            Fit::Not { known_miss, why } => {
                assert!(!known_miss);
                assert!(why[0].contains("cannot be checked"));
            }
            Fit::Admits => panic!("admitted without knowing the occupation"),
        }
        // Dated 2021-01-20, only phase 1 is open: a 30-year-old is denied.
        let r = reasons(evaluate(&p, &query(Some("1991-01-01"), 1, "2021-01-20", &[])).unwrap());
        assert_eq!(r[0], "not yet eligible: phase 5 (18+) opens 2021-05-01");
    }

    #[test]
    fn known_occupation_and_conditions_are_matched_when_carried() {
        let p = policy();
        let on = parse_date("2021-03-10").unwrap();
        let nurse = Facts {
            age: Some(30),
            occupation: Some("Healthcare-Worker".into()),
            conditions: Some(vec![]),
        };
        assert!(phase_reasons(&p, &nurse, 1, on).is_empty());
        let teacher = Facts {
            occupation: Some("teacher".into()),
            ..nurse.clone()
        };
        assert_eq!(
            fit(&p.phases[0], &teacher),
            Fit::Not {
                known_miss: true,
                why: vec!["requires occupation healthcare-worker".into()]
            }
        );
        let diabetic = Facts {
            age: Some(50),
            occupation: Some("teacher".into()),
            conditions: Some(vec!["diabetes".into()]),
        };
        assert!(phase_reasons(&p, &diabetic, 1, on).is_empty());
        let healthy = Facts {
            conditions: Some(vec!["asthma".into()]),
            ..diabetic
        };
        assert_eq!(
            phase_reasons(&p, &healthy, 1, on),
            ["not yet eligible: phase 4 (45+) opens 2021-04-01"]
        );
    }

    #[test]
    fn later_doses_follow_the_series_rules() {
        let p = policy();
        // Dose 2 is not phased: a 30-year-old vaccinated elsewhere continues.
        let q = query(Some("1991-01-01"), 2, "2021-03-15", &[(1, "2021-02-01")]);
        assert_eq!(reasons(evaluate(&p, &q).unwrap()), Vec::<String>::new());
        let q = query(Some("1991-01-01"), 2, "2021-02-10", &[(1, "2021-02-01")]);
        let r = reasons(evaluate(&p, &q).unwrap());
        assert_eq!(
            r,
            ["doses must be at least 28 days apart; the next dose is possible in 19 days"]
        );
        let q = query(
            Some("1961-01-01"),
            3,
            "2021-09-01",
            &[(1, "2021-03-01"), (2, "2021-04-01")],
        );
        assert_eq!(
            reasons(evaluate(&p, &q).unwrap()),
            ["this programme gives at most 2 doses"]
        );
        let q = query(Some("1961-01-01"), 3, "2021-09-01", &[(1, "2021-03-01")]);
        let r = reasons(evaluate(&p, &q).unwrap());
        assert!(r.iter().any(|l| l.contains("next dose is dose 2")), "{r:?}");
    }

    #[test]
    fn a_booster_phase_gates_its_own_dose() {
        let p = config::parse::<Config>(
            r#"{"phased_doses": [1, 3],
                "phases": [
                  {"name": "adults", "start": "2021-05-01", "min_age": 18, "doses": [1]},
                  {"name": "precaution", "start": "2022-01-10", "min_age": 60, "doses": [3]}
                ]}"#,
        )
        .unwrap()
        .validate()
        .unwrap();
        let q = query(
            Some("1990-01-01"),
            3,
            "2022-02-01",
            &[(1, "2021-06-01"), (2, "2021-09-01")],
        );
        let r = reasons(evaluate(&p, &q).unwrap());
        assert_eq!(r[0], "not eligible in the phases open on 2022-02-01");
        assert_eq!(r[1], "precaution (60+) is for ages 60 and over");
        let q = query(
            Some("1950-01-01"),
            3,
            "2022-02-01",
            &[(1, "2021-06-01"), (2, "2021-09-01")],
        );
        assert!(reasons(evaluate(&p, &q).unwrap()).is_empty());
    }

    #[test]
    fn age_on_year_end_counts_the_birth_year() {
        let mut p = policy();
        // Turns 45 in December 2021: eligible from phase 4 when counted by year.
        let q = query(Some("1976-12-20"), 1, "2021-04-02", &[]);
        assert!(!reasons(evaluate(&p, &q).unwrap()).is_empty());
        p.age_on = AgeOn::YearEnd;
        assert!(reasons(evaluate(&p, &q).unwrap()).is_empty());
    }

    #[test]
    fn without_phases_or_age_nobody_is_admitted() {
        let empty = Config::default().validate().unwrap();
        let r =
            reasons(evaluate(&empty, &query(Some("1980-01-01"), 1, "2025-06-01", &[])).unwrap());
        assert_eq!(r, ["no vaccination phase is open for dose 1"]);
        let r = reasons(evaluate(&policy(), &query(None, 1, "2021-06-01", &[])).unwrap());
        assert_eq!(r[0], "the recipient's age or date of birth is needed");
        // `age` is used when there is no date of birth.
        let mut q = query(None, 1, "2021-06-01", &[]);
        q.recipient.age = Some(30);
        assert!(reasons(evaluate(&policy(), &q).unwrap()).is_empty());
    }

    #[test]
    fn bad_input_and_bad_config_are_errors() {
        let p = policy();
        let e = evaluate(&p, &query(Some("1980-01-01"), 1, "not-a-date", &[])).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)));
        let e = evaluate(&p, &query(Some("1980-01-01"), 0, "2021-06-01", &[])).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)));
        let e = evaluate(&p, &query(Some("1980-02-30"), 1, "2021-06-01", &[])).unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)));
        let q = query(Some("1980-01-01"), 2, "2021-06-01", &[(1, "junk")]);
        assert!(matches!(evaluate(&p, &q), Err(Error::InvalidInput(_))));
        // A huge dose number does not overflow.
        let q = query(
            Some("1980-01-01"),
            u32::MAX,
            "2021-06-01",
            &[(u32::MAX, "2021-01-01")],
        );
        assert!(!reasons(evaluate(&p, &q).unwrap()).is_empty());

        for bad in [
            r#"{"phases": [{"name": "x", "start": "2021-13-01"}]}"#,
            r#"{"phases": [{"name": " ", "start": "2021-01-01"}]}"#,
            r#"{"phases": [{"name": "x", "start": "2021-01-01", "min_age": 60, "max_age": 45}]}"#,
            r#"{"phases": [{"name": "x", "start": "2021-01-01", "max_ages": 45}]}"#,
            r#"{"phases": [{"name": "x", "start": "2021-01-01", "doses": [0]}]}"#,
            r#"{"age_on": "birthday"}"#,
            r#"{"max_doses": 2}"#,
        ] {
            let r = config::parse::<Config>(bad).and_then(Config::validate);
            assert!(matches!(r, Err(Error::Internal(_))), "{bad}: {r:?}");
        }
    }

    #[test]
    fn labels_describe_the_criteria() {
        let p = policy();
        let labels: Vec<String> = p.phases.iter().map(Phase::label).collect();
        assert_eq!(
            labels,
            [
                "phase 1 (healthcare-worker)",
                "phase 2 (frontline-worker)",
                "phase 3 (60+)",
                "phase 3b (45-59, with diabetes or copd)",
                "phase 4 (45+)",
                "phase 5 (18+)"
            ]
        );
        let all = Phase {
            name: "open".into(),
            start: parse_date("2021-01-01").unwrap(),
            min_age: None,
            max_age: Some(17),
            occupations: vec![],
            conditions: vec![],
            doses: vec![1],
        };
        assert_eq!(all.label(), "open (up to 17)");
    }
}
