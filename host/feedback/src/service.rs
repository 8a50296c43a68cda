//! Filing and reading side-effect reports and ratings.
//!
//! A report is about one certificate: what the certificate says (programme,
//! vaccine, batch, facility, district, dose) is copied onto the report when
//! it is filed, so that a regulator's filters and the per-batch rate read
//! columns and counters, not credentials. In one transaction a report is
//! stored, counted (`feedback.reports`, and `feedback.serious` for a serious
//! one, by batch, facility, vaccine, …), logged as an event with ids only,
//! and — when serious — queued as an alert to the configured
//! pharmacovigilance contacts through the distribution channels.

use std::sync::Arc;

use divoc_certificates::{Certificate, CertificateService};
use divoc_storage::feedback::{self as store, RatingRow, ReportFilter, ReportRow};
use divoc_storage::{events, outbox, stats, Database};
use divoc_time::{Date, SharedClock, Zone};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::FeedbackError;
use crate::form::Form;
use crate::severity::{self, Severity, SeverityRule};

/// Reports counted per certificate at most (a report form is not a chat).
pub const MAX_REPORTS_PER_CERTIFICATE: i64 = 20;
/// The longest rating comment.
pub const MAX_COMMENT: usize = 1000;

/// How the module is set up.
#[derive(Debug)]
pub struct FeedbackSettings {
    /// The report form.
    pub form: Form,
    /// Severity rules.
    pub rules: Vec<SeverityRule>,
    /// Who hears of a serious report (`mailto:`, `tel:` contacts).
    pub alert_contacts: Vec<String>,
    /// The deployment's time zone (days of the counters).
    pub zone: Zone,
}

/// A stored report, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `rpt_…`.
    pub id: String,
    /// The list cursor of this report.
    pub seq: i64,
    /// The certificate it is about.
    pub certificate_id: String,
    /// From the certificate.
    pub programme: String,
    /// From the certificate.
    pub vaccine: String,
    /// From the certificate.
    pub batch: String,
    /// From the certificate.
    pub facility: String,
    /// The facility's district.
    pub district: String,
    /// The facility's state.
    pub state: String,
    /// Which dose.
    pub dose: i64,
    /// Graded by the rules.
    pub severity: String,
    /// The form's answers.
    pub answers: Value,
    /// Who filed it.
    pub filed_by: String,
    /// When.
    pub filed_at: String,
}

impl From<ReportRow> for Report {
    fn from(r: ReportRow) -> Self {
        Report {
            id: r.id,
            seq: r.seq,
            certificate_id: r.certificate_id,
            programme: r.programme,
            vaccine: r.vaccine,
            batch: r.batch,
            facility: r.facility,
            district: r.district,
            state: r.state,
            dose: r.dose,
            severity: r.severity,
            answers: r.answers,
            filed_by: r.filed_by,
            filed_at: divoc_time::format_millis(r.filed_at_ms),
        }
    }
}

/// A rating as sent.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewRating {
    /// The facility, 1-5.
    pub facility: i64,
    /// The vaccinator, 1-5 (optional).
    #[serde(default)]
    pub vaccinator: Option<i64>,
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A stored rating, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rating {
    /// The certificate rated.
    pub certificate_id: String,
    /// The facility rated.
    pub facility: String,
    /// The vaccinator rated.
    pub vaccinator: String,
    /// 1-5.
    pub facility_stars: i64,
    /// 1-5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vaccinator_stars: Option<i64>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When.
    pub rated_at: String,
}

impl From<RatingRow> for Rating {
    fn from(r: RatingRow) -> Self {
        Rating {
            certificate_id: r.certificate_id,
            facility: r.facility,
            vaccinator: r.vaccinator,
            facility_stars: r.facility_stars,
            vaccinator_stars: r.vaccinator_stars,
            comment: r.comment,
            rated_at: divoc_time::format_millis(r.rated_at_ms),
        }
    }
}

/// A page of reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportPage {
    /// Oldest first.
    pub items: Vec<Report>,
    /// Give it as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What a certificate says about the vaccination reported on.
#[derive(Debug, Clone)]
struct Facts {
    programme: String,
    vaccine: String,
    batch: String,
    facility: String,
    district: String,
    state: String,
    vaccinator: String,
    dose: i64,
}

fn facts(c: &Certificate) -> Result<Facts, FeedbackError> {
    let v = c
        .credential
        .pointer("/credentialSubject/vaccination")
        .ok_or_else(|| FeedbackError::field("certificate", "is not a vaccination certificate"))?;
    let text = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Facts {
        programme: c.program.clone(),
        vaccine: text("/vaccine"),
        batch: text("/batch"),
        facility: c
            .facility_id
            .clone()
            .unwrap_or_else(|| text("/facility/name")),
        district: text("/facility/address/district"),
        state: text("/facility/address/state"),
        vaccinator: text("/vaccinator/name"),
        dose: i64::from(c.dose),
    })
}

fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("rpt_{}", hex::encode(bytes))
}

struct Inner {
    db: Database,
    certificates: CertificateService,
    settings: FeedbackSettings,
    clock: SharedClock,
}

/// The feedback module.
#[derive(Clone)]
pub struct FeedbackService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FeedbackService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackService")
            .field("form", &self.inner.settings.form)
            .finish()
    }
}

impl FeedbackService {
    /// The module over `db`, reading certificates through `certificates`.
    pub fn new(
        db: Database,
        certificates: CertificateService,
        settings: FeedbackSettings,
        clock: SharedClock,
    ) -> FeedbackService {
        FeedbackService {
            inner: Arc::new(Inner {
                db,
                certificates,
                settings,
                clock,
            }),
        }
    }

    /// The report form.
    pub fn form(&self) -> &Form {
        &self.inner.settings.form
    }

    /// The certificate a report or rating is about.
    pub fn certificate(&self, id: &str) -> Result<Certificate, FeedbackError> {
        match self.inner.certificates.get(id) {
            Ok(c) => Ok(c),
            Err(divoc_certificates::CertError::NotFound(_)) => {
                Err(FeedbackError::NotFound(format!("certificate {id}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `qr_text` is the certificate's own QR (proof that its
    /// holder files): the credential in it is the stored one, proof and
    /// all.
    pub fn holds(&self, certificate: &Certificate, qr_text: &str) -> bool {
        let Ok(decoded) = divoc_certificates::qr::decode(qr_text) else {
            return false;
        };
        let stored = &certificate.credential;
        decoded.get("id").is_some() && decoded.get("id") == stored.get("id") && {
            let proof = |c: &Value| c.pointer("/proof/proofValue").cloned();
            proof(&decoded).is_some() && proof(&decoded) == proof(stored)
        }
    }

    /// Files a side-effect report about `certificate` (already checked to
    /// be the caller's to report on).
    pub fn file(
        &self,
        certificate: &Certificate,
        answers: Value,
        filed_by: &str,
    ) -> Result<Report, FeedbackError> {
        let s = &self.inner.settings;
        s.form.check(&answers)?;
        let facts = facts(certificate)?;
        if let Some(onset) = answers.get("onsetDate").and_then(Value::as_str) {
            let vaccinated = certificate
                .credential
                .pointer("/credentialSubject/vaccination/date")
                .and_then(Value::as_str)
                .and_then(|d| divoc_time::parse_instant(d, &s.zone))
                .map(|ms| Date::in_zone(ms, &s.zone));
            let onset = divoc_time::parse_date(onset);
            let today = Date::in_zone(self.inner.clock.now_ms(), &s.zone);
            match (onset, vaccinated) {
                (Some(o), _) if o > today => {
                    return Err(FeedbackError::field(
                        "answers/onsetDate",
                        "is in the future",
                    ))
                }
                (Some(o), Some(v)) if o < v => {
                    return Err(FeedbackError::field(
                        "answers/onsetDate",
                        format!("is before the vaccination ({v})"),
                    ))
                }
                _ => {}
            }
        }
        let grade = severity::grade(&s.rules, &answers);
        let now = self.inner.clock.now_ms();
        let row = ReportRow {
            seq: 0,
            id: new_id(),
            certificate_id: certificate.id.clone(),
            programme: facts.programme.clone(),
            vaccine: facts.vaccine.clone(),
            batch: facts.batch.clone(),
            facility: facts.facility.clone(),
            district: facts.district.clone(),
            state: facts.state.clone(),
            dose: facts.dose,
            severity: grade.as_str().to_owned(),
            answers,
            filed_by: filed_by.to_owned(),
            filed_at_ms: now,
        };
        let day = Date::in_zone(now, &s.zone).to_string();
        let contacts = s.alert_contacts.clone();
        let stored = row.clone();
        let seq = self
            .inner
            .db
            .write(move |tx| -> Result<Result<i64, FeedbackError>, divoc_storage::StorageError> {
                let r = &stored;
                if store::reports_of(&tx.reader(), &r.certificate_id)?
                    >= MAX_REPORTS_PER_CERTIFICATE
                {
                    return Ok(Err(FeedbackError::Conflict(format!(
                        "certificate {} has {MAX_REPORTS_PER_CERTIFICATE} reports: the most one certificate takes",
                        r.certificate_id
                    ))));
                }
                let seq = store::insert_report(tx, r)?;
                let ids = json!({
                    "id": r.id, "certificateId": r.certificate_id, "severity": r.severity,
                    "programme": r.programme, "vaccine": r.vaccine, "batch": r.batch,
                    "facility": r.facility, "dose": r.dose,
                });
                events::append_event(tx, "feedback.reported", &r.id, &ids)?;
                let mut metrics = vec!["feedback.reports"];
                if r.severity == Severity::Serious.as_str() {
                    metrics.push("feedback.serious");
                    events::append_event(tx, "feedback.serious", &r.id, &ids)?;
                    if !contacts.is_empty() {
                        outbox::enqueue(
                            tx,
                            outbox::NOTIFY,
                            outbox::NOTIFY_UNROUTED,
                            &json!({
                                "template": "aefi-serious",
                                "recipient_name": "",
                                "contacts": contacts,
                                "subject": r.id,
                                "variables": {
                                    "report": r.id, "severity": r.severity,
                                    "programme": r.programme, "vaccine": r.vaccine,
                                    "batch": r.batch, "facility": r.facility,
                                    "district": r.district, "dose": r.dose.to_string(),
                                },
                            }),
                            r.filed_at_ms,
                        )?;
                    }
                }
                for metric in metrics {
                    for (dimension, key) in [
                        ("total", "all"),
                        ("day", day.as_str()),
                        ("programme", r.programme.as_str()),
                        ("vaccine", r.vaccine.as_str()),
                        ("batch", r.batch.as_str()),
                        ("facility", r.facility.as_str()),
                        ("district", r.district.as_str()),
                        ("severity", r.severity.as_str()),
                    ] {
                        if !key.is_empty() {
                            stats::add(tx, metric, dimension, key, 1);
                        }
                    }
                }
                Ok(Ok(seq))
            })
            .wait()??;
        Ok(Report::from(ReportRow { seq, ..row }))
    }

    /// Rates the facility (and the vaccinator) of `certificate`: once per
    /// certificate (409 after).
    pub fn rate(
        &self,
        certificate: &Certificate,
        rating: NewRating,
    ) -> Result<Rating, FeedbackError> {
        let mut errors = Vec::new();
        if !(1..=5).contains(&rating.facility) {
            errors.push(divoc_certificates::FieldError::new(
                "facility",
                "must be 1-5",
            ));
        }
        if rating.vaccinator.is_some_and(|v| !(1..=5).contains(&v)) {
            errors.push(divoc_certificates::FieldError::new(
                "vaccinator",
                "must be 1-5",
            ));
        }
        let comment = rating
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT)
        {
            errors.push(divoc_certificates::FieldError::new(
                "comment",
                format!("must be at most {MAX_COMMENT} characters"),
            ));
        }
        if !errors.is_empty() {
            return Err(FeedbackError::Validation(errors));
        }
        let facts = facts(certificate)?;
        let row = RatingRow {
            certificate_id: certificate.id.clone(),
            facility: facts.facility,
            vaccinator: facts.vaccinator,
            facility_stars: rating.facility,
            vaccinator_stars: rating.vaccinator,
            comment,
            rated_at_ms: self.inner.clock.now_ms(),
        };
        let stored = row.clone();
        let inserted = self
            .inner
            .db
            .write(move |tx| {
                let r = &stored;
                if !store::insert_rating(tx, r)? {
                    return Ok(false);
                }
                events::append_event(
                    tx,
                    "feedback.rated",
                    &r.certificate_id,
                    &json!({"certificateId": r.certificate_id, "facility": r.facility,
                            "facilityStars": r.facility_stars, "vaccinatorStars": r.vaccinator_stars}),
                )?;
                stats::add(tx, "ratings.facility.count", "facility", &r.facility, 1);
                stats::add(tx, "ratings.facility.stars", "facility", &r.facility, r.facility_stars);
                if let (Some(stars), false) = (r.vaccinator_stars, r.vaccinator.is_empty()) {
                    stats::add(tx, "ratings.vaccinator.count", "vaccinator", &r.vaccinator, 1);
                    stats::add(tx, "ratings.vaccinator.stars", "vaccinator", &r.vaccinator, stars);
                }
                Ok(true)
            })
            .wait()?;
        if !inserted {
            return Err(FeedbackError::Conflict(format!(
                "certificate {} is rated already",
                row.certificate_id
            )));
        }
        Ok(Rating::from(row))
    }

    /// A certificate's rating, if it has one.
    pub fn rating(&self, certificate_id: &str) -> Result<Option<Rating>, FeedbackError> {
        Ok(self
            .inner
            .db
            .read(|r| store::get_rating(r, certificate_id))?
            .map(Rating::from))
    }

    /// One report.
    pub fn report(&self, id: &str) -> Result<Report, FeedbackError> {
        self.inner
            .db
            .read(|r| store::get_report(r, id))?
            .map(Report::from)
            .ok_or_else(|| FeedbackError::NotFound(format!("report {id}")))
    }

    /// Reports matching `filter`, oldest first.
    pub fn list(&self, filter: &ReportFilter, limit: usize) -> Result<ReportPage, FeedbackError> {
        if let Some(s) = &filter.severity {
            if Severity::parse(s).is_none() {
                return Err(FeedbackError::field(
                    "severity",
                    "must be mild, moderate or serious",
                ));
            }
        }
        let rows = self.inner.db.read(|r| store::list(r, filter, limit))?;
        let next_cursor = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.seq.to_string()))
            .flatten();
        Ok(ReportPage {
            items: rows.into_iter().map(Report::from).collect(),
            next_cursor,
        })
    }

    /// The reports matching `filter` as CSV (RFC 4180), every page of them.
    pub fn csv(&self, filter: &ReportFilter) -> Result<Vec<u8>, FeedbackError> {
        let mut out = csv::Writer::from_writer(Vec::new());
        let header = [
            "id",
            "filedAt",
            "certificateId",
            "programme",
            "vaccine",
            "batch",
            "facility",
            "district",
            "state",
            "dose",
            "severity",
            "symptoms",
            "onsetDate",
            "medicalCare",
            "description",
            "filedBy",
        ];
        let csv_err = |e: csv::Error| FeedbackError::Config(format!("cannot write CSV: {e}"));
        out.write_record(header).map_err(csv_err)?;
        let mut f = filter.clone();
        loop {
            let page = self.list(&f, 1000)?;
            for r in &page.items {
                let answer = |k: &str| match r.answers.get(k) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(";"),
                    Some(Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                };
                out.write_record([
                    r.id.as_str(),
                    &r.filed_at,
                    &r.certificate_id,
                    &r.programme,
                    &r.vaccine,
                    &r.batch,
                    &r.facility,
                    &r.district,
                    &r.state,
                    &r.dose.to_string(),
                    &r.severity,
                    &answer("symptoms"),
                    &answer("onsetDate"),
                    &answer("medicalCare"),
                    &answer("description"),
                    &r.filed_by,
                ])
                .map_err(csv_err)?;
            }
            match page.next_cursor.and_then(|c| c.parse().ok()) {
                Some(c) => f.after = Some(c),
                None => break,
            }
        }
        out.into_inner()
            .map_err(|e| FeedbackError::Config(format!("cannot write CSV: {e}")))
    }
}
