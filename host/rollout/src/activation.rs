//! A controller's bulk operation: activate (or deactivate) the facilities
//! that match a filter for a programme, and set their daily rate.
//!
//! Each facility that changes gets a new version, an audit record, an
//! event and a notice for the facility (an outbox row the distribution
//! worker delivers through the configured channels), in chunks of
//! [`CHUNK`] facilities per transaction; facilities
//! already in the asked state are left alone (so repeating an activation
//! changes nothing).

use serde::{Deserialize, Serialize};

use divoc_storage::rollout::{self as store, ListFilter, Update};

use crate::error::{FieldError, RolloutError};
use crate::model::{Facility, FacilityProgramme, Programme, Status};
use crate::service::{RecordKind, RolloutService};

/// Facilities per transaction.
pub const CHUNK: usize = 500;

/// Which facilities an activation applies to: every given criterion must
/// hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FacilityFilter {
    /// District.
    #[serde(default)]
    pub district: Option<String>,
    /// State.
    #[serde(default)]
    pub state: Option<String>,
    /// `fixed`, `mobile` or `both`.
    #[serde(default, rename = "type")]
    pub site_type: Option<String>,
    /// The facility's own status.
    #[serde(default)]
    pub status: Option<Status>,
    /// Only these facility codes.
    #[serde(default)]
    pub codes: Option<Vec<String>>,
    /// Only facilities that take part in this programme (e.g. activate a
    /// booster programme where the primary one runs).
    #[serde(default)]
    pub programme: Option<String>,
}

/// `POST /v1/programmes/{code}/facilities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Activation {
    /// `active` or `inactive` for the programme.
    pub status: Status,
    /// The daily rate to set; none keeps each facility's rate.
    #[serde(default)]
    pub daily_rate: Option<u32>,
    /// Which facilities.
    pub filter: FacilityFilter,
}

/// How an activation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ActivationReport {
    /// Facilities the filter matched.
    pub matched: u64,
    /// Of those, the ones that changed.
    pub changed: u64,
}

impl Activation {
    fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.status == Status::Blocked {
            errors.push(FieldError::new("status", "must be active or inactive"));
        }
        if let Some(rate) = self.daily_rate {
            if !(1..=1_000_000).contains(&rate) {
                errors.push(FieldError::new("dailyRate", "must be 1-1000000"));
            }
        }
        if self.filter.codes.as_ref().is_some_and(|c| c.len() > 1000) {
            errors.push(FieldError::new("filter.codes", "at most 1000 codes"));
        }
        if let Some(t) = &self.filter.site_type {
            if !["fixed", "mobile", "both"].contains(&t.as_str()) {
                errors.push(FieldError::new(
                    "filter.type",
                    "must be fixed, mobile or both",
                ));
            }
        }
        errors
    }

    /// Applies to one facility; whether it changed.
    fn apply(&self, programme: &str, f: &mut Facility) -> bool {
        match f.programmes.iter_mut().find(|p| p.programme == programme) {
            Some(p) => {
                let rate = self.daily_rate.or(p.daily_rate);
                let changed = p.status != self.status || p.daily_rate != rate;
                p.status = self.status;
                p.daily_rate = rate;
                changed
            }
            None if self.status == Status::Inactive && self.daily_rate.is_none() => false,
            None => {
                f.programmes.push(FacilityProgramme {
                    programme: programme.to_owned(),
                    status: self.status,
                    daily_rate: self.daily_rate,
                    schedule: None,
                    slots: Vec::new(),
                    walk_in: Vec::new(),
                });
                true
            }
        }
    }
}

/// Queues the facility's notice of its new programme status and rate, in
/// the change's own transaction, for the distribution channels (the
/// facility's phone and e-mail; a facility with neither gets none).
fn notify(
    tx: &divoc_storage::Tx<'_>,
    f: &Facility,
    programme: &str,
    now_ms: i64,
) -> divoc_storage::Result<()> {
    let mut contacts = Vec::new();
    if let Some(phone) = &f.contact {
        let digits: String = phone
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        contacts.push(format!("tel:{digits}"));
    }
    if let Some(email) = &f.email {
        contacts.push(format!("mailto:{email}"));
    }
    if contacts.is_empty() {
        return Ok(());
    }
    let Some(p) = f.programmes.iter().find(|p| p.programme == programme) else {
        return Ok(());
    };
    let payload = serde_json::json!({
        "template": "facility-programme-updated",
        "recipient_name": f.name,
        "contacts": contacts,
        "subject": f.code,
        "variables": {
            "facility": f.code,
            "programme": programme,
            "status": p.status.as_str(),
            "daily-rate": p.daily_rate.map(|r| r.to_string()).unwrap_or_default(),
        },
    });
    divoc_storage::outbox::enqueue(
        tx,
        divoc_storage::outbox::NOTIFY,
        divoc_storage::outbox::NOTIFY_UNROUTED,
        &payload,
        now_ms,
    )?;
    Ok(())
}

impl RolloutService {
    /// Activates or deactivates the facilities matching the filter for a
    /// programme (404 if the programme does not exist).
    pub fn activate(
        &self,
        programme: &str,
        activation: &Activation,
        actor: &str,
    ) -> Result<ActivationReport, RolloutError> {
        let errors = activation.check();
        if !errors.is_empty() {
            return Err(RolloutError::Validation(errors));
        }
        self.get::<Programme>(programme)?;
        let mut filter = ListFilter {
            status: activation.filter.status.map(|s| s.as_str().to_owned()),
            district: activation.filter.district.clone(),
            state: activation.filter.state.clone(),
            kind_of_site: activation.filter.site_type.clone(),
            codes: activation.filter.codes.clone(),
            link: activation
                .filter
                .programme
                .clone()
                .map(|p| ("programme".to_owned(), p)),
            ..ListFilter::default()
        };
        let mut report = ActivationReport {
            matched: 0,
            changed: 0,
        };
        loop {
            let page = self
                .db()
                .read(|r| store::list(r, Facility::KIND, &filter, CHUNK))?;
            let Some(last) = page.last() else { break };
            filter.after = Some(last.id);
            report.matched += page.len() as u64;
            let (programme, activation, actor) =
                (programme.to_owned(), activation.clone(), actor.to_owned());
            let now = self.clock().now_ms();
            let changed = self
                .db()
                .write(
                    move |tx| -> divoc_storage::Result<Result<u64, RolloutError>> {
                        // Still there? (It may have been deleted since the first
                        // chunk; a facility must not be linked to no programme.)
                        if store::get(&tx.reader(), Programme::KIND, &programme)?.is_none() {
                            return Ok(Err(RolloutError::NotFound(format!(
                                "programme {programme}"
                            ))));
                        }
                        let mut changed = 0u64;
                        for rec in page {
                            let mut f: Facility = serde_json::from_str(&rec.body).map_err(|e| {
                                divoc_storage::StorageError::InvalidArgument(e.to_string())
                            })?;
                            if !activation.apply(&programme, &mut f) {
                                continue;
                            }
                            let body = serde_json::to_string(&f).map_err(|e| {
                                divoc_storage::StorageError::InvalidArgument(e.to_string())
                            })?;
                            // Only if no one changed it since the page was read;
                            // a facility changed meanwhile keeps that change.
                            let update = store::update(
                                tx,
                                Facility::KIND,
                                &f.code,
                                Some(rec.version),
                                &f.index(),
                                &body,
                                &actor,
                                now,
                            )?;
                            if let Update::Updated(v) = update {
                                RolloutService::log_change(
                                    tx,
                                    &actor,
                                    Facility::KIND,
                                    "updated",
                                    &f.code,
                                    v,
                                )?;
                                notify(tx, &f, &programme, now)?;
                                changed += 1;
                            }
                        }
                        Ok(Ok(changed))
                    },
                )
                .wait()??;
            report.changed += changed;
        }
        Ok(report)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::upload::{UploadKind, UploadOptions};
    use divoc_storage::{Database, DbOptions};
    use divoc_time::ManualClock;
    use serde_json::json;

    #[test]
    fn a_district_is_activated_with_a_rate_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let svc = RolloutService::new(db, ManualClock::new(1_700_000_000_000));
        let csv = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/divoc-facilities.csv"),
        )
        .unwrap();
        let options = UploadOptions {
            country: Some("IN".into()),
            programme: None,
        };
        svc.upload(UploadKind::Facilities, csv.as_slice(), &options, "ctl")
            .unwrap();
        crate::test_support::seed_c19(&svc);
        let activation: Activation = serde_json::from_value(json!({
            "status": "active", "dailyRate": 100, "filter": {"district": "Bengaluru Urban"}
        }))
        .unwrap();
        let r = svc.activate("C19", &activation, "ctl").unwrap();
        assert_eq!(
            r,
            ActivationReport {
                matched: 2,
                changed: 2
            }
        );
        let notices = svc
            .db()
            .read(|r| divoc_storage::outbox::list(r, divoc_storage::OutboxStatus::Pending, 10))
            .unwrap();
        assert_eq!(notices.len(), 2);
        assert_eq!(notices[0].kind, "notify");
        assert_eq!(notices[0].payload["variables"]["daily-rate"], "100");
        assert_eq!(notices[0].payload["contacts"][0], "tel:08023456789");
        assert_eq!(
            svc.facility_programme("BLR311", "C19").unwrap(),
            Some((Status::Active, Some(100)))
        );
        assert_eq!(svc.facility_programme("DEL010", "C19").unwrap(), None);
        // Again: nothing changes.
        assert_eq!(svc.activate("C19", &activation, "ctl").unwrap().changed, 0);
        // Deactivating keeps the rate.
        let off: Activation = serde_json::from_value(json!({
            "status": "inactive", "filter": {"codes": ["BLR312", "DEL010"]}
        }))
        .unwrap();
        assert_eq!(
            svc.activate("C19", &off, "ctl").unwrap(),
            ActivationReport {
                matched: 2,
                changed: 1
            }
        );
        assert_eq!(
            svc.facility_programme("BLR312", "C19").unwrap(),
            Some((Status::Inactive, Some(100)))
        );
        // Facilities of a programme: the two in C19 (one now inactive).
        let by_programme: Activation = serde_json::from_value(json!({
            "status": "active", "dailyRate": 5, "filter": {"programme": "C19", "status": "active"}
        }))
        .unwrap();
        let r = svc.activate("C19", &by_programme, "ctl").unwrap();
        assert_eq!((r.matched, r.changed), (2, 2));
        // The listed facilities of the programme.
        let listed = svc
            .list::<Facility>(
                &ListFilter {
                    link: Some(("programme".into(), "C19".into())),
                    ..ListFilter::default()
                },
                10,
            )
            .unwrap();
        assert_eq!(listed.items.len(), 2);
        let bad: Activation = serde_json::from_value(json!({
            "status": "blocked", "dailyRate": 0, "filter": {"type": "tent"}
        }))
        .unwrap();
        let RolloutError::Validation(e) = svc.activate("C19", &bad, "ctl").unwrap_err() else {
            panic!()
        };
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["status", "dailyRate", "filter.type"]);
        assert!(matches!(
            svc.activate("NOPE", &activation, "ctl"),
            Err(RolloutError::NotFound(_))
        ));
    }
}
