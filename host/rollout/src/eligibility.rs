//! Who may be enrolled, booked and vaccinated in a programme: the
//! programme's `rollout-policy` plugin, or the built-in rule (an age range
//! and listed conditions) when it names none.
//!
//! Decisions are made on the server at enrolment (the API's, not a
//! ministry's pre-enrolment upload: its list is the ministry's own
//! decision) and at booking, for the date of the vaccination. Plugins are
//! reached through [`PolicyPlugins`], which the host wires to its plugin
//! runtime, so the plugin swapped in last decides the next request. Fails
//! closed: a plugin that cannot be reached or errs refuses (503), never
//! allows.

use divoc_time::Date;

use crate::enrolment::{Enrolment, Gender};
use crate::error::RolloutError;
use crate::model::{Eligibility, EligibilityRule, Programme};
use crate::service::RolloutService;

/// What a policy is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EligibilityQuery {
    /// The programme's code.
    pub programme: String,
    /// The vaccine, when known.
    pub vaccine: Option<String>,
    /// Which dose (1 = the first).
    pub dose: u32,
    /// The date of the vaccination.
    pub date: Date,
    /// The person's date of birth, `YYYY-MM-DD`.
    pub dob: String,
    /// The person's gender, as the WIT contract's text (`male`, …).
    pub gender: String,
    /// The person's nationality, if given.
    pub nationality: Option<String>,
    /// The person's name (a policy may need it to call an external
    /// registry; it is not logged).
    pub name: String,
    /// The identity document's number, if given.
    pub identity: Option<String>,
    /// Doses the person had: `(vaccine, dose, date)`.
    pub previous_doses: Vec<(String, u32, Date)>,
}

/// A policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Eligible.
    Allow,
    /// Not eligible, with reasons that are safe to show to the person.
    Deny(Vec<String>),
}

/// The `rollout-policy` plugins, by name.
pub trait PolicyPlugins: Send + Sync {
    /// Asks plugin `name`. `Err` (a plugin missing, failing, or trapping)
    /// is explained in one line without personal data.
    fn evaluate(&self, name: &str, query: &EligibilityQuery) -> Result<Decision, String>;
}

impl RolloutService {
    /// Whether `enrolment` may have `dose` of `programme` on `date`:
    /// `Ok` or [`RolloutError::Ineligible`] with the reasons.
    pub(crate) fn check_eligible(
        &self,
        programme: &Programme,
        enrolment: &Enrolment,
        dose: u32,
        date: Date,
    ) -> Result<(), RolloutError> {
        // The doses recorded here (a plugin decides on the series).
        let previous = if enrolment.code.is_empty() {
            Vec::new()
        } else {
            self.db()
                .read(|r| {
                    divoc_storage::vaccinations::of_enrolment(r, &enrolment.code, &programme.code)
                })?
                .into_iter()
                .filter_map(|v| {
                    let date = divoc_time::parse_date(&v.date)?;
                    Some((v.vaccine, u32::try_from(v.dose).ok()?, date))
                })
                .collect()
        };
        self.check_eligible_with(programme, enrolment, dose, date, previous)
    }

    /// [`check_eligible`](Self::check_eligible) with the person's doses so
    /// far given: `(vaccine, dose, date)`.
    pub(crate) fn check_eligible_with(
        &self,
        programme: &Programme,
        enrolment: &Enrolment,
        dose: u32,
        date: Date,
        previous_doses: Vec<(String, u32, Date)>,
    ) -> Result<(), RolloutError> {
        let decision = match &programme.eligibility {
            Eligibility::Rule(rule) => built_in(rule, enrolment, date),
            Eligibility::Plugin(name) => {
                let Some(plugins) = self.policies() else {
                    return Err(RolloutError::Unavailable(format!(
                        "programme {} names the eligibility policy {name}, and no plugins are \
                         loaded",
                        programme.code
                    )));
                };
                let query = EligibilityQuery {
                    programme: programme.code.clone(),
                    vaccine: (programme.vaccines.len() == 1).then(|| programme.vaccines[0].clone()),
                    dose,
                    date,
                    dob: enrolment.dob.clone(),
                    gender: match enrolment.gender {
                        Gender::Male => "male",
                        Gender::Female => "female",
                        Gender::Other => "other",
                    }
                    .to_owned(),
                    nationality: enrolment.nationality.clone(),
                    name: enrolment.name.clone(),
                    identity: enrolment.identity.clone(),
                    previous_doses,
                };
                plugins.evaluate(name, &query).map_err(|e| {
                    RolloutError::Unavailable(format!(
                        "the eligibility policy {name} could not decide: {e}"
                    ))
                })?
            }
        };
        match decision {
            Decision::Allow => Ok(()),
            Decision::Deny(reasons) => Err(RolloutError::Ineligible(reasons)),
        }
    }
}

/// The built-in rule: age on `date` within the range, and one of the
/// listed conditions declared (if any are listed).
fn built_in(rule: &EligibilityRule, e: &Enrolment, date: Date) -> Decision {
    let mut reasons = Vec::new();
    if rule.min_age.is_some() || rule.max_age.is_some() {
        match divoc_time::parse_date(&e.dob) {
            None => reasons.push("a valid date of birth is needed".to_owned()),
            Some(dob) => {
                let age = dob.age_on(date);
                if let Some(min) = rule.min_age.filter(|m| age < i64::from(*m)) {
                    reasons.push(format!("must be at least {min} years old on {date}"));
                }
                if let Some(max) = rule.max_age.filter(|m| age > i64::from(*m)) {
                    reasons.push(format!("must be at most {max} years old on {date}"));
                }
            }
        }
    }
    if !rule.conditions.is_empty() && !e.conditions.iter().any(|c| rule.conditions.contains(c)) {
        reasons.push(format!(
            "this programme is for people with one of: {}",
            rule.conditions.join(", ")
        ));
    }
    if reasons.is_empty() {
        Decision::Allow
    } else {
        Decision::Deny(reasons)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::Vaccine;
    use divoc_storage::{Database, DbOptions};
    use divoc_time::ManualClock;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    /// Monday 2026-12-07, 06:00 UTC.
    const NOW: i64 = 1_796_623_200_000;

    /// A policy that denies people named "Minor", and records what it was
    /// asked; "broken" fails.
    #[derive(Default)]
    struct Fake {
        asked: Mutex<Vec<EligibilityQuery>>,
    }

    impl PolicyPlugins for Fake {
        fn evaluate(&self, name: &str, q: &EligibilityQuery) -> Result<Decision, String> {
            self.asked.lock().unwrap().push(q.clone());
            match name {
                "broken" => Err("the plugin trapped".into()),
                "fake" if q.name == "Minor" => Ok(Decision::Deny(vec!["too young".into()])),
                "fake" => Ok(Decision::Allow),
                other => Err(format!("no rollout-policy plugin {other}")),
            }
        }
    }

    fn service(policies: Option<Arc<Fake>>) -> (tempfile::TempDir, RolloutService) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let mut svc = RolloutService::new(db, ManualClock::new(NOW));
        if let Some(p) = policies {
            svc = svc.with_policies(p);
        }
        let vaccine: Vaccine = serde_json::from_value(json!({
            "code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection", "doses": 2,
            "intervals": [{"minDays": 28}]
        }))
        .unwrap();
        svc.create(vaccine, "ctl").unwrap();
        (dir, svc)
    }

    fn programme(svc: &RolloutService, code: &str, eligibility: serde_json::Value) {
        let p: Programme = serde_json::from_value(json!({
            "code": code, "name": code, "startDate": "2021-01-16", "vaccines": ["COVAX"],
            "eligibility": eligibility
        }))
        .unwrap();
        svc.create(p, "ctl").unwrap();
    }

    fn person(programme: &str, name: &str, dob: &str, conditions: &[&str]) -> Enrolment {
        serde_json::from_value(json!({
            "programme": programme, "name": name, "dob": dob, "gender": "Female",
            "conditions": conditions,
            "address": {"line1": "Road", "district": "D", "state": "S"}
        }))
        .unwrap()
    }

    fn reasons(e: RolloutError) -> Vec<String> {
        match e {
            RolloutError::Ineligible(r) => r,
            other => panic!("not a refusal: {other}"),
        }
    }

    #[test]
    fn the_built_in_rule_checks_age_and_conditions() {
        let (_d, svc) = service(None);
        programme(&svc, "ADULT", json!({"rule": {"minAge": 18, "maxAge": 60}}));
        programme(
            &svc,
            "CHRONIC",
            json!({"rule": {"conditions": ["diabetes", "copd"]}}),
        );
        // 18 on 2026-12-07 exactly is old enough; a day younger is not.
        svc.enrol(person("ADULT", "A", "2008-12-07", &[]), "ctl")
            .unwrap();
        let r = reasons(
            svc.enrol(person("ADULT", "B", "2008-12-08", &[]), "ctl")
                .unwrap_err(),
        );
        assert_eq!(r, ["must be at least 18 years old on 2026-12-07"]);
        let r = reasons(
            svc.enrol(person("ADULT", "C", "1960-01-01", &[]), "ctl")
                .unwrap_err(),
        );
        assert_eq!(r, ["must be at most 60 years old on 2026-12-07"]);
        let r = reasons(
            svc.enrol(person("CHRONIC", "D", "1990-01-01", &[]), "ctl")
                .unwrap_err(),
        );
        assert_eq!(
            r,
            ["this programme is for people with one of: diabetes, copd"]
        );
        svc.enrol(person("CHRONIC", "E", "1990-01-01", &["copd"]), "ctl")
            .unwrap();
    }

    #[test]
    fn a_plugin_decides_and_fails_closed() {
        let fake = Arc::new(Fake::default());
        let (_d, svc) = service(Some(fake.clone()));
        programme(&svc, "P", json!({"plugin": "fake"}));
        programme(&svc, "BROKEN", json!({"plugin": "broken"}));
        programme(&svc, "GONE", json!({"plugin": "gone"}));
        svc.enrol(person("P", "Adult", "1990-01-01", &[]), "ctl")
            .unwrap();
        let r = reasons(
            svc.enrol(person("P", "Minor", "2015-01-01", &[]), "ctl")
                .unwrap_err(),
        );
        assert_eq!(r, ["too young"]);
        let asked = fake.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 2);
        assert_eq!(
            (
                asked[0].programme.as_str(),
                asked[0].vaccine.as_deref(),
                asked[0].dose
            ),
            ("P", Some("COVAX"), 1)
        );
        assert_eq!(asked[0].date.to_string(), "2026-12-07");
        for code in ["BROKEN", "GONE"] {
            let e = svc
                .enrol(person(code, "Adult", "1990-01-01", &[]), "ctl")
                .unwrap_err();
            assert!(matches!(e, RolloutError::Unavailable(_)), "{code}: {e}");
        }
        // No plugins at all: a programme naming one refuses too.
        let (_d2, bare) = service(None);
        programme(&bare, "P", json!({"plugin": "fake"}));
        let e = bare
            .enrol(person("P", "Adult", "1990-01-01", &[]), "ctl")
            .unwrap_err();
        assert!(matches!(e, RolloutError::Unavailable(_)), "{e}");
        // Nothing refused was stored.
        let all = svc
            .list::<Enrolment>(&crate::ListFilter::default(), 10)
            .unwrap();
        assert_eq!(all.items.len(), 1);
    }

    #[test]
    fn booking_asks_again_for_the_slot_date() {
        let fake = Arc::new(Fake::default());
        let (_d, svc) = service(Some(fake.clone()));
        programme(&svc, "P", json!({"plugin": "fake"}));
        let code = svc
            .enrol(person("P", "Adult", "1990-01-01", &[]), "ctl")
            .unwrap()
            .record
            .code;
        let f: crate::model::Facility = serde_json::from_value(json!({
            "code": "F1", "name": "PHC", "category": "government", "type": "fixed",
            "address": {"line1": "Main Road", "district": "D", "state": "S", "country": "IN"},
            "programmes": [{"programme": "P", "slots": [{
                "days": ["tue"], "startTime": "09:00", "endTime": "10:00", "minutes": 60, "capacity": 5
            }]}]
        }))
        .unwrap();
        svc.create(f, "ctl").unwrap();
        let booking = crate::Booking {
            enrolment: code,
            facility: "F1".into(),
            date: "2026-12-08".into(),
            time: "09:00".into(),
            dose: None,
        };
        svc.book(&booking, "staff").unwrap();
        let last = fake.asked.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            (last.dose, last.date.to_string()),
            (1, "2026-12-08".to_owned())
        );
    }
}
