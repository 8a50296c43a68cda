//! Offline facilities: the vaccinations a facility app recorded without a
//! connection, sent when it has one.
//!
//! Each item carries an id the app made. Items are applied in the order
//! sent, each in its own transaction (a vaccination is whole or absent),
//! and each is answered: done, with its certificate, or refused, with the
//! reason to show (a duplicate dose, the rate reached, not eligible…). The
//! answer is kept under the app's id — with the dose itself, in the
//! certificate's transaction — so an item sent again gets the same answer
//! and is not applied twice. An item that could not be decided (a plugin or
//! the database unavailable) is answered `retry` and not kept.

use serde::{Deserialize, Serialize};

use divoc_certificates::CertificateService;
use divoc_storage::vaccinations as store;

use crate::error::{FieldError, RolloutError};
use crate::service::RolloutService;
use crate::vaccination::{Vaccinate, Vaccinated};

/// Most items in one request.
pub const MAX_SYNC_ITEMS: usize = 500;

/// What an offline app sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncRequest {
    /// The facility the app serves.
    pub facility: String,
    /// Its recorded vaccinations, in the order they happened.
    pub items: Vec<SyncItem>,
}

/// One recorded vaccination.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncItem {
    /// The app's id of the item (1-100 characters), unique per facility.
    pub client_id: String,
    /// The vaccination, with `at`, when it was given.
    pub vaccination: Vaccinate,
}

/// How an item went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum SyncAnswer {
    /// Recorded; its certificate issued.
    Done(Vaccinated),
    /// Refused, for a reason to show.
    #[serde(rename_all = "camelCase")]
    Refused {
        /// `invalid_input`, `duplicate`, `rate_limited`, `ineligible`,
        /// `conflict`, `slot_full`.
        code: String,
        /// For the person at the facility.
        message: String,
        /// The field, when one is to blame.
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    /// Not decided now; send it again later.
    Retry {
        /// Why.
        message: String,
    },
}

/// An item's answer, by the app's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// The app's id.
    pub client_id: String,
    /// How it went.
    #[serde(flatten)]
    pub answer: SyncAnswer,
}

impl RolloutService {
    /// Applies an offline app's vaccinations in order (see the module
    /// docs). The request as a whole is refused (422, naming the item's
    /// field) if it is malformed; otherwise every item is answered.
    pub fn sync_vaccinations(
        &self,
        certificates: &CertificateService,
        request: &SyncRequest,
        actor: &str,
        staff_rates: &std::collections::BTreeMap<String, u32>,
    ) -> Result<Vec<SyncResult>, RolloutError> {
        let mut errors = Vec::new();
        if request.items.len() > MAX_SYNC_ITEMS {
            errors.push(FieldError::new(
                "items",
                format!("at most {MAX_SYNC_ITEMS} in one request"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, item) in request.items.iter().enumerate() {
            if item.client_id.is_empty() || item.client_id.len() > 100 {
                errors.push(FieldError::new(
                    format!("items[{i}].clientId"),
                    "must be 1-100 characters",
                ));
            } else if !seen.insert(item.client_id.as_str()) {
                errors.push(FieldError::new(
                    format!("items[{i}].clientId"),
                    "is sent twice in this request",
                ));
            }
            if item.vaccination.facility != request.facility {
                errors.push(FieldError::new(
                    format!("items[{i}].vaccination.facility"),
                    "must be the facility the request is for",
                ));
            }
            if item.vaccination.at.is_none() {
                errors.push(FieldError::new(
                    format!("items[{i}].vaccination.at"),
                    "is needed for a vaccination recorded offline: when it was given",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(RolloutError::Validation(errors));
        }
        let mut results = Vec::with_capacity(request.items.len());
        for item in &request.items {
            let facility = request.facility.clone();
            let kept = self
                .db()
                .read(|r| store::sync_answer(r, &facility, &item.client_id))?;
            let answer = match kept.map(|a| serde_json::from_str::<SyncAnswer>(&a)) {
                Some(Ok(answer)) => answer,
                Some(Err(e)) => return Err(RolloutError::Internal(e.to_string())),
                None => self.apply(certificates, &facility, item, actor, staff_rates)?,
            };
            results.push(SyncResult {
                client_id: item.client_id.clone(),
                answer,
            });
        }
        Ok(results)
    }

    /// Applies one item not seen before, and keeps a refusal's answer.
    fn apply(
        &self,
        certificates: &CertificateService,
        facility: &str,
        item: &SyncItem,
        actor: &str,
        staff_rates: &std::collections::BTreeMap<String, u32>,
    ) -> Result<SyncAnswer, RolloutError> {
        let key = Some((facility.to_owned(), item.client_id.clone()));
        let e = match self.vaccinate_keyed(certificates, &item.vaccination, actor, staff_rates, key)
        {
            // Made now: its answer was kept with it.
            Ok(done) if done.created => return Ok(SyncAnswer::Done(done)),
            // The certificate existed: the item was applied by a request
            // sent at the same time, whose answer (kept in the same
            // transaction) is this one's too.
            Ok(done) => {
                let (f, id) = (facility.to_owned(), item.client_id.clone());
                return match self.db().read(|r| store::sync_answer(r, &f, &id))? {
                    Some(kept) => serde_json::from_str(&kept)
                        .map_err(|e| RolloutError::Internal(e.to_string())),
                    None => Ok(SyncAnswer::Done(done)),
                };
            }
            Err(e) => e,
        };
        // Sent twice at once: the request that stored its answer first
        // decided; this one answers the same.
        let (f, id) = (facility.to_owned(), item.client_id.clone());
        if let Some(kept) = self.db().read(|r| store::sync_answer(r, &f, &id))? {
            return serde_json::from_str(&kept).map_err(|e| RolloutError::Internal(e.to_string()));
        }
        let (code, message, field) = match e {
            RolloutError::Validation(fields) => {
                let first = fields.first().map(|f| f.field.clone());
                let message = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                ("invalid_input", message, first)
            }
            e @ RolloutError::Duplicate { .. } => ("duplicate", e.to_string(), None),
            e @ RolloutError::RateLimited { .. } => ("rate_limited", e.to_string(), None),
            RolloutError::Ineligible(reasons) => ("ineligible", reasons.join("; "), None),
            e @ RolloutError::Conflict(_) => ("conflict", e.to_string(), None),
            e @ RolloutError::Full(_) => ("slot_full", e.to_string(), None),
            // Not decided: the app sends it again; nothing is kept.
            other => {
                tracing::warn!(error = %other, "an offline item could not be applied now");
                return Ok(SyncAnswer::Retry {
                    message: "not recorded now; send it again later".into(),
                });
            }
        };
        let answer = SyncAnswer::Refused {
            code: code.to_owned(),
            message,
            field,
        };
        let json =
            serde_json::to_string(&answer).map_err(|e| RolloutError::Internal(e.to_string()))?;
        let (facility, client_id, now) = (
            facility.to_owned(),
            item.client_id.clone(),
            self.clock().now_ms(),
        );
        let (f, id) = (facility.clone(), client_id.clone());
        let kept = self
            .db()
            .write(move |tx| store::keep_sync_answer(tx, &facility, &client_id, &json, now))
            .wait()?;
        if !kept {
            if let Some(first) = self.db().read(|r| store::sync_answer(r, &f, &id))? {
                return serde_json::from_str(&first)
                    .map_err(|e| RolloutError::Internal(e.to_string()));
            }
        }
        Ok(answer)
    }
}

/// What a facility app needs to work offline, changed since its last
/// sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Send as `since` next time: [`SYNC_OVERLAP_MS`] before this
    /// snapshot was started, so that a record stamped before a write that
    /// committed after the snapshot read comes next time (records may come
    /// twice; the app keeps the latest version).
    pub cursor: String,
    /// The facility itself, if changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility: Option<crate::service::Stored<crate::model::Facility>>,
    /// The programmes it is active in, where changed.
    pub programmes: Vec<crate::service::Stored<crate::model::Programme>>,
    /// Their vaccines, where changed.
    pub vaccines: Vec<crate::service::Stored<crate::model::Vaccine>>,
    /// Its vaccinators, where changed.
    pub vaccinators: Vec<crate::service::Stored<crate::model::Vaccinator>>,
    /// The people pre-enrolled at it, where changed (a page: see
    /// `enrolmentsNext`).
    pub enrolments: Vec<crate::service::Stored<crate::enrolment::Enrolment>>,
    /// Pass as `after` (with the same `since`) for the next page of
    /// enrolments; none on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrolments_next: Option<String>,
    /// Today's and tomorrow's appointments, whole.
    pub appointments: Vec<crate::appointments::DayEntry>,
}

/// How far back a snapshot's cursor reaches before its start: longer than
/// any write takes to commit after it stamped its records (an upload's
/// transaction of 100,000 rows takes seconds).
pub const SYNC_OVERLAP_MS: i64 = 10 * 60_000;

impl RolloutService {
    /// What the app of `facility` needs offline (see [`Snapshot`]):
    /// records changed at or after `since` (ms; none: everything), the
    /// enrolments after `after` (a page cursor).
    pub fn facility_snapshot(
        &self,
        facility: &str,
        since: Option<i64>,
        after: Option<i64>,
    ) -> Result<Snapshot, RolloutError> {
        use crate::model::{Facility, Programme, Status, Vaccinator, Vaccine};
        use crate::ListFilter;
        let started = self.clock().now_ms();
        let f = self.get::<Facility>(facility)?;
        let active: Vec<String> = f
            .record
            .programmes
            .iter()
            .filter(|p| p.status == Status::Active)
            .map(|p| p.programme.clone())
            .collect();
        let changed = |updated_at: &str| {
            since.is_none_or(|s| {
                divoc_time::parse_instant(updated_at, &divoc_time::Zone::utc())
                    .is_none_or(|u| u >= s)
            })
        };
        let mut programmes = Vec::new();
        let mut vaccine_codes = std::collections::BTreeSet::new();
        for code in &active {
            if let Ok(p) = self.get::<Programme>(code) {
                vaccine_codes.extend(p.record.vaccines.iter().cloned());
                if changed(&p.updated_at) {
                    programmes.push(p);
                }
            }
        }
        let mut vaccines = Vec::new();
        for code in &vaccine_codes {
            if let Ok(v) = self.get::<Vaccine>(code) {
                if changed(&v.updated_at) {
                    vaccines.push(v);
                }
            }
        }
        let of_facility = |after| ListFilter {
            link: Some(("facility".to_owned(), facility.to_owned())),
            updated_since: since,
            after,
            ..ListFilter::default()
        };
        let mut vaccinators = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list::<Vaccinator>(&of_facility(cursor), crate::MAX_PAGE)?;
            vaccinators.extend(page.items);
            match page.next_cursor.and_then(|c| c.parse().ok()) {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let page =
            self.list::<crate::enrolment::Enrolment>(&of_facility(after), crate::MAX_PAGE)?;
        let today = divoc_time::Date::in_zone(started, self.zone_of(&f.record));
        let mut appointments = self.day(facility, Some(&today.to_string()))?;
        if let Some(tomorrow) = today.add_days(1) {
            appointments.extend(self.day(facility, Some(&tomorrow.to_string()))?);
        }
        Ok(Snapshot {
            cursor: (started - SYNC_OVERLAP_MS).to_string(),
            facility: changed(&f.updated_at).then_some(f),
            programmes,
            vaccines,
            vaccinators,
            enrolments: page.items,
            enrolments_next: page.next_cursor,
            appointments,
        })
    }
}
