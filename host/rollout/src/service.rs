//! The registry service: create, replace, delete, read and list records,
//! each change a new version with its audit record and event in the same
//! transaction.
//!
//! References between records (a programme's vaccines, a facility's
//! programmes, a vaccinator's facilities and programmes) are checked inside
//! the write closure, against what is committed at that moment, so a record
//! can never be stored pointing at a code that does not exist. A record
//! that others refer to cannot be deleted (deactivate it instead); nor can
//! a facility that certificates name.
//!
//! Events and audit details carry the kind, code and version only: a
//! vaccinator's name, phone or national id never leaves the record.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use divoc_storage::rollout::{self as store, ListFilter, RecordIndex, Update};
use divoc_storage::{audit, events, Database};
use std::sync::Arc;

use divoc_time::SharedClock;

use crate::error::{FieldError, RolloutError};
use crate::model::{Facility, Programme, Status, Vaccinator, Vaccine};

/// A kind of registry record.
pub trait RecordKind: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// `vaccine`, `programme`, `facility` or `vaccinator`.
    const KIND: &'static str;
    /// Its code.
    fn code(&self) -> &str;
    /// Its own rules ([`crate::model`]).
    fn check(&self) -> Vec<FieldError>;
    /// Its rules that depend on the date (`today`, `YYYY-MM-DD` in the
    /// service's time zone):
    /// none unless a kind says so.
    fn check_on(&self, _today: &str) -> Vec<FieldError> {
        Vec::new()
    }
    /// What lists filter on, and what it refers to.
    fn index(&self) -> RecordIndex;
    /// The records it refers to: `(field, kind, code)`.
    fn references(&self) -> Vec<(String, &'static str, String)>;
    /// Whether its records are personal data: deleting one erases the
    /// contents of its earlier versions too.
    const PERSONAL: bool = false;
    /// Derives what the record's links need from the service's secrets
    /// (an enrolment's keyed person hash) before it is checked and stored.
    fn prepare(&mut self, _person_key: &[u8]) {}
    /// Links no two records of the kind may share (checked inside the
    /// write): `(relation, key, what it means)`.
    fn unique_links(&self) -> Vec<(String, String, &'static str)> {
        Vec::new()
    }
}

fn links(pairs: impl IntoIterator<Item = (&'static str, String)>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(rel, code)| (rel.to_owned(), code))
        .collect()
}

impl RecordKind for Vaccine {
    const KIND: &'static str = "vaccine";
    fn code(&self) -> &str {
        &self.code
    }
    fn check(&self) -> Vec<FieldError> {
        Vaccine::check(self)
    }
    fn index(&self) -> RecordIndex {
        RecordIndex {
            status: self.status.as_str().to_owned(),
            ..RecordIndex::default()
        }
    }
    fn references(&self) -> Vec<(String, &'static str, String)> {
        Vec::new()
    }
}

impl RecordKind for Programme {
    const KIND: &'static str = "programme";
    fn code(&self) -> &str {
        &self.code
    }
    fn check(&self) -> Vec<FieldError> {
        Programme::check(self)
    }
    fn index(&self) -> RecordIndex {
        RecordIndex {
            status: self.status.as_str().to_owned(),
            links: links(self.vaccines.iter().map(|v| ("vaccine", v.clone()))),
            ..RecordIndex::default()
        }
    }
    fn references(&self) -> Vec<(String, &'static str, String)> {
        self.vaccines
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("vaccines[{i}]"), "vaccine", v.clone()))
            .collect()
    }
}

impl RecordKind for Facility {
    const KIND: &'static str = "facility";
    fn code(&self) -> &str {
        &self.code
    }
    fn check(&self) -> Vec<FieldError> {
        Facility::check(self)
    }
    fn index(&self) -> RecordIndex {
        // A facility is found under a programme whatever its status there:
        // `?programme=` lists the programme's facilities, `status` filters.
        RecordIndex {
            status: self.status.as_str().to_owned(),
            district: Some(self.address.district.clone()),
            state: Some(self.address.state.clone()),
            kind_of_site: Some(self.site_type.as_str().to_owned()),
            links: links(
                self.programmes
                    .iter()
                    .map(|p| ("programme", p.programme.clone())),
            ),
        }
    }
    fn references(&self) -> Vec<(String, &'static str, String)> {
        self.programmes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    format!("programmes[{i}].programme"),
                    "programme",
                    p.programme.clone(),
                )
            })
            .collect()
    }
}

impl RecordKind for Vaccinator {
    const KIND: &'static str = "vaccinator";
    fn code(&self) -> &str {
        &self.code
    }
    fn check(&self) -> Vec<FieldError> {
        Vaccinator::check(self)
    }
    fn index(&self) -> RecordIndex {
        RecordIndex {
            status: self.status.as_str().to_owned(),
            links: links(
                self.facilities
                    .iter()
                    .map(|f| ("facility", f.clone()))
                    .chain(
                        self.programmes
                            .iter()
                            .map(|p| ("programme", p.programme.clone())),
                    ),
            ),
            ..RecordIndex::default()
        }
    }
    fn references(&self) -> Vec<(String, &'static str, String)> {
        let facilities = self
            .facilities
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("facilities[{i}]"), "facility", f.clone()));
        let programmes = self.programmes.iter().enumerate().map(|(i, p)| {
            (
                format!("programmes[{i}].programme"),
                "programme",
                p.programme.clone(),
            )
        });
        facilities.chain(programmes).collect()
    }
}

/// A record with its version and times, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored<T> {
    /// The record.
    #[serde(flatten)]
    pub record: T,
    /// Its version (send it back as `If-Match` to update safely).
    pub version: i64,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// One kept version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version {
    /// The version number.
    pub version: i64,
    /// The record as it was; `null` for its deletion.
    pub record: Option<Value>,
    /// The token that made the change.
    pub actor: String,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The records, in the order they were created.
    pub items: Vec<Stored<T>>,
    /// Pass as `cursor` for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// The largest page a list returns.
pub const MAX_PAGE: usize = 1000;

/// The registry. Cheap to clone.
#[derive(Clone)]
pub struct RolloutService {
    db: Database,
    clock: SharedClock,
    /// The key of enrolments' person hashes ([`RolloutService::with_person_key`]).
    person_key: Arc<[u8; 32]>,
    /// The facilities' time zone: slots and dates are local to it.
    zone: Arc<divoc_time::Zone>,
    /// Appointment rules ([`RolloutService::with_booking`]).
    booking: crate::appointments::BookingRules,
    /// The `rollout-policy` plugins ([`RolloutService::with_policies`]).
    policies: Option<Arc<dyn crate::eligibility::PolicyPlugins>>,
    /// How vaccinations are recorded ([`RolloutService::with_recording`]).
    recording: crate::vaccination::RecordingRules,
    /// People one phone number may enrol in a programme through the API
    /// (0: no limit).
    members_per_contact: usize,
    /// Where identity documents are checked ([`RolloutService::with_identity_checks`]).
    identity: Option<divoc_certificates::CertificateService>,
}

impl std::fmt::Debug for RolloutService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutService").finish_non_exhaustive()
    }
}

/// A write closure's answer: the storage result outside, the domain's
/// decision inside. A closure answers `Ok(Err(..))` only before it has
/// written anything, so nothing of a refused change is stored.
pub(crate) type Decided<T> = divoc_storage::Result<Result<T, RolloutError>>;

pub(crate) fn flatten<T>(
    r: divoc_storage::Result<Result<T, RolloutError>>,
) -> Result<T, RolloutError> {
    r.map_err(RolloutError::Storage)?
}

impl RolloutService {
    /// A service over `db`, reading the time from `clock`.
    pub fn new(db: Database, clock: SharedClock) -> RolloutService {
        RolloutService {
            db,
            clock,
            person_key: Arc::new([0; 32]),
            zone: Arc::new(divoc_time::Zone::utc()),
            booking: crate::appointments::BookingRules::default(),
            policies: None,
            recording: crate::vaccination::RecordingRules::default(),
            members_per_contact: 4,
            identity: None,
        }
    }

    /// Checks the identity documents of programmes that ask for it through
    /// the certificate service's identity providers (the same plugins as
    /// issuance). Without it, such a programme refuses enrolments (fails
    /// closed).
    pub fn with_identity_checks(
        mut self,
        certificates: divoc_certificates::CertificateService,
    ) -> RolloutService {
        self.identity = Some(certificates);
        self
    }

    pub(crate) fn identity_checks(&self) -> Option<&divoc_certificates::CertificateService> {
        self.identity.as_ref()
    }

    /// Sets how many people one phone number may enrol in a programme
    /// through the API (0: no limit; uploads are the ministry's lists and
    /// are not limited).
    pub fn with_members_per_contact(mut self, most: usize) -> RolloutService {
        self.members_per_contact = most;
        self
    }

    pub(crate) fn members_per_contact(&self) -> usize {
        self.members_per_contact
    }

    /// Sets how vaccinations are recorded (rate mode, reminders).
    pub fn with_recording(mut self, rules: crate::vaccination::RecordingRules) -> RolloutService {
        self.recording = rules;
        self
    }

    pub(crate) fn recording_rules(&self) -> crate::vaccination::RecordingRules {
        self.recording
    }

    /// Sets where programmes' `rollout-policy` plugins are found. Without
    /// it, a programme that names a plugin refuses (fails closed).
    pub fn with_policies(
        mut self,
        policies: Arc<dyn crate::eligibility::PolicyPlugins>,
    ) -> RolloutService {
        self.policies = Some(policies);
        self
    }

    pub(crate) fn policies(&self) -> Option<&dyn crate::eligibility::PolicyPlugins> {
        self.policies.as_deref()
    }

    /// Sets the time zone facilities keep their schedules in (default UTC).
    pub fn with_zone(mut self, zone: divoc_time::Zone) -> RolloutService {
        self.zone = Arc::new(zone);
        self
    }

    /// Sets the appointment rules.
    pub fn with_booking(mut self, rules: crate::appointments::BookingRules) -> RolloutService {
        self.booking = rules;
        self
    }

    pub(crate) fn zone(&self) -> &divoc_time::Zone {
        &self.zone
    }

    /// A facility's own time zone, or the deployment's.
    pub(crate) fn zone_of<'a>(&'a self, facility: &'a Facility) -> &'a divoc_time::Zone {
        facility.time_zone.as_ref().unwrap_or(&self.zone)
    }

    pub(crate) fn booking_rules(&self) -> crate::appointments::BookingRules {
        self.booking
    }

    /// Sets the key of enrolments' person hashes (keep it outside the
    /// database, and the same across restarts: a new key does not find the
    /// people enrolled under the old one). Without it, a fixed all-zero key
    /// is used (tests).
    pub fn with_person_key(mut self, key: [u8; 32]) -> RolloutService {
        self.person_key = Arc::new(key);
        self
    }

    pub(crate) fn person_key(&self) -> Arc<[u8; 32]> {
        self.person_key.clone()
    }

    fn stored<T: RecordKind>(rec: store::Record) -> Result<Stored<T>, RolloutError> {
        let record = serde_json::from_str(&rec.body)
            .map_err(|e| RolloutError::Internal(format!("{} {}: {e}", T::KIND, rec.code)))?;
        Ok(Stored {
            record,
            version: rec.version,
            created_at: divoc_time::format_millis(rec.created_ms),
            updated_at: divoc_time::format_millis(rec.updated_ms),
        })
    }

    /// Today's date, `YYYY-MM-DD`, by the service's clock in its time zone
    /// (a child born today in India is born today before 05:30 too).
    pub(crate) fn today(&self) -> String {
        divoc_time::Date::in_zone(self.clock().now_ms(), self.zone()).to_string()
    }

    fn checked<T: RecordKind>(
        record: &T,
        today: &str,
    ) -> Result<(String, RecordIndex), RolloutError> {
        let mut errors = record.check();
        // A field already refused is not refused again for its date.
        for e in record.check_on(today) {
            if !errors.iter().any(|have| have.field == e.field) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(RolloutError::Validation(errors));
        }
        let body =
            serde_json::to_string(record).map_err(|e| RolloutError::Internal(e.to_string()))?;
        Ok((body, record.index()))
    }

    /// Names every reference that does not exist (inside the write).
    pub(crate) fn missing_references_in<T: RecordKind>(
        tx: &divoc_storage::Tx<'_>,
        record: &T,
    ) -> divoc_storage::Result<Vec<FieldError>> {
        let reader = tx.reader();
        let mut missing = Vec::new();
        for (field, kind, code) in record.references() {
            if store::get(&reader, kind, &code)?.is_none() {
                missing.push(FieldError::new(field, format!("no {kind} with this code")));
            }
        }
        Ok(missing)
    }

    /// The duplicate a record would be (inside the write): another record
    /// of its kind sharing one of its unique links.
    pub(crate) fn duplicate_in<T: RecordKind>(
        tx: &divoc_storage::Tx<'_>,
        record: &T,
        itself: Option<&str>,
    ) -> divoc_storage::Result<Option<RolloutError>> {
        let reader = tx.reader();
        for (rel, key, what) in record.unique_links() {
            let found = store::referrers(&reader, &rel, &key, 2)?;
            if let Some((_, code)) = found
                .into_iter()
                .find(|(kind, code)| kind == T::KIND && Some(code.as_str()) != itself)
            {
                return Ok(Some(RolloutError::Duplicate {
                    message: format!("{what} exists with code {code}"),
                    existing: code,
                }));
            }
        }
        Ok(None)
    }

    /// Creates a record (version 1, or on from an earlier deleted record of
    /// the code): 409 if the code is taken, 422 naming every bad field or
    /// unknown reference.
    pub fn create<T: RecordKind>(&self, record: T, actor: &str) -> Result<Stored<T>, RolloutError> {
        self.create_capped(record, actor, Vec::new())
    }

    /// [`create`](Self::create), refusing (409) when `caps` are reached:
    /// `(rel, target, most, message)` — at most `most` records of the kind
    /// share that link (counted inside the write, so concurrent creates
    /// cannot pass it together).
    pub(crate) fn create_capped<T: RecordKind>(
        &self,
        record: T,
        actor: &str,
        caps: Vec<(String, String, usize, String)>,
    ) -> Result<Stored<T>, RolloutError> {
        let mut record = record;
        record.prepare(&self.person_key[..]);
        let (body, index) = Self::checked(&record, &self.today())?;
        let now = self.clock.now_ms();
        let code = record.code().to_owned();
        let actor = actor.to_owned();
        let rec = record.clone();
        let version = flatten(
            self.db
                .write(move |tx| -> Decided<i64> {
                    let missing = Self::missing_references_in(tx, &rec)?;
                    if !missing.is_empty() {
                        return Ok(Err(RolloutError::Validation(missing)));
                    }
                    if let Some(e) = Self::duplicate_in(tx, &rec, None)? {
                        return Ok(Err(e));
                    }
                    for (rel, target, most, message) in &caps {
                        let found = store::referrers(&tx.reader(), rel, target, most + 64)?;
                        if found.iter().filter(|(kind, _)| kind == T::KIND).count() >= *most {
                            return Ok(Err(RolloutError::Conflict(message.clone())));
                        }
                    }
                    let Some(version) =
                        store::insert(tx, T::KIND, &code, &index, &body, &actor, now)?
                    else {
                        return Ok(Err(RolloutError::Conflict(format!(
                            "a {} with code {code} exists",
                            T::KIND
                        ))));
                    };
                    Self::log_change(tx, &actor, T::KIND, "created", &code, version)?;
                    Ok(Ok(version))
                })
                .wait(),
        )?;
        Ok(Stored {
            record,
            version,
            created_at: divoc_time::format_millis(now),
            updated_at: divoc_time::format_millis(now),
        })
    }

    /// Replaces a record with a new version; with `expected`, only if it is
    /// still at that version (412 otherwise).
    pub fn replace<T: RecordKind>(
        &self,
        code: &str,
        record: T,
        expected: Option<i64>,
        actor: &str,
    ) -> Result<Stored<T>, RolloutError> {
        if record.code() != code {
            return Err(RolloutError::Validation(vec![FieldError::new(
                "code",
                "must be the code in the path (codes do not change)",
            )]));
        }
        let mut record = record;
        record.prepare(&self.person_key[..]);
        let (body, index) = Self::checked(&record, &self.today())?;
        let now = self.clock.now_ms();
        let (code, actor, rec) = (code.to_owned(), actor.to_owned(), record.clone());
        let version = flatten(
            self.db
                .write(move |tx| -> Decided<i64> {
                    let missing = Self::missing_references_in(tx, &rec)?;
                    if !missing.is_empty() {
                        return Ok(Err(RolloutError::Validation(missing)));
                    }
                    if let Some(e) = Self::duplicate_in(tx, &rec, Some(&code))? {
                        return Ok(Err(e));
                    }
                    Ok(
                        match store::update(
                            tx,
                            T::KIND,
                            &code,
                            expected,
                            &index,
                            &body,
                            &actor,
                            now,
                        )? {
                            Update::Updated(v) => {
                                Self::log_change(tx, &actor, T::KIND, "updated", &code, v)?;
                                Ok(v)
                            }
                            Update::NotFound => {
                                Err(RolloutError::NotFound(format!("{} {code}", T::KIND)))
                            }
                            Update::Stale { current } => Err(RolloutError::Stale {
                                expected: expected.unwrap_or_default(),
                                current,
                            }),
                        },
                    )
                })
                .wait(),
        )?;
        // The version written, even if another change followed at once.
        let mut stored = self.get::<T>(record.code())?;
        if stored.version != version {
            stored.record = record;
            stored.version = version;
        }
        Ok(stored)
    }

    /// Deletes a record nothing refers to (409 naming a referrer
    /// otherwise; a facility that certificates name is never deleted).
    pub fn delete<T: RecordKind>(&self, code: &str, actor: &str) -> Result<(), RolloutError> {
        // A reader, not the writer: the certificates table has no index by
        // facility (it would cost bytes on every certificate), so this is a
        // scan, and the single writer must not wait for it. A certificate
        // issued between this check and the delete keeps its facility's
        // details in itself.
        if T::KIND == Facility::KIND {
            // Tokens scoped to it would see a facility re-created under its
            // code: they go first.
            let now = self.clock.now_ms();
            let tokens = self
                .db
                .read(|r| divoc_storage::tokens::live_for_facility(r, code, now, 5))?;
            if !tokens.is_empty() {
                return Err(RolloutError::Conflict(format!(
                    "facility {code} is named by live API tokens ({}): revoke them first",
                    tokens.join(", ")
                )));
            }
        }
        if T::KIND == Facility::KIND
            && self
                .db
                .read(|r| store::facility_has_certificates(r, code))?
        {
            return Err(RolloutError::Conflict(format!(
                "facility {code} has issued certificates: set its status to inactive instead"
            )));
        }
        let now = self.clock.now_ms();
        let (code, actor) = (code.to_owned(), actor.to_owned());
        flatten(
            self.db
                .write(move |tx| -> Decided<()> {
                    let reader = tx.reader();
                    let referrer = store::referrers(&reader, T::KIND, &code, 1)?.into_iter().next();
                    if let Some((kind, by)) = referrer {
                        return Ok(Err(RolloutError::Conflict(format!(
                            "{} {code} is referred to by {kind} {by}: set its status to inactive instead",
                            T::KIND
                        ))));
                    }
                    Ok(match store::delete(tx, T::KIND, &code, T::PERSONAL, &actor, now)? {
                        Some(v) => {
                            Self::log_change(tx, &actor, T::KIND, "deleted", &code, v)?;
                            Ok(())
                        }
                        None => Err(RolloutError::NotFound(format!("{} {code}", T::KIND))),
                    })
                })
                .wait(),
        )
    }

    pub(crate) fn log_change(
        tx: &divoc_storage::Tx<'_>,
        actor: &str,
        kind: &str,
        what: &str,
        code: &str,
        version: i64,
    ) -> divoc_storage::Result<()> {
        let detail = json!({ "kind": kind, "code": code, "version": version });
        audit::append_audit(tx, actor, &format!("{kind}.{what}"), code, &detail)?;
        events::append_event(tx, &format!("rollout.{kind}.{what}"), code, &detail)?;
        Ok(())
    }

    /// The record with this code.
    pub fn get<T: RecordKind>(&self, code: &str) -> Result<Stored<T>, RolloutError> {
        let rec = self
            .db
            .read(|r| store::get(r, T::KIND, code))?
            .ok_or_else(|| RolloutError::NotFound(format!("{} {code}", T::KIND)))?;
        Self::stored(rec)
    }

    /// Every version of a record, oldest first (404 if it never existed).
    pub fn history<T: RecordKind>(&self, code: &str) -> Result<Vec<Version>, RolloutError> {
        let versions = self.db.read(|r| store::versions(r, T::KIND, code))?;
        if versions.is_empty() {
            return Err(RolloutError::NotFound(format!("{} {code}", T::KIND)));
        }
        versions
            .into_iter()
            .map(|v| {
                let record = v
                    .body
                    .map(|b| serde_json::from_str(&b))
                    .transpose()
                    .map_err(|e| RolloutError::Internal(e.to_string()))?;
                Ok(Version {
                    version: v.version,
                    record,
                    actor: v.actor,
                    at: divoc_time::format_millis(v.at_ms),
                })
            })
            .collect()
    }

    /// One page of records matching `filter` (its `after` is the cursor),
    /// at most `limit` (1–[`MAX_PAGE`]).
    pub fn list<T: RecordKind>(
        &self,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<Page<T>, RolloutError> {
        let limit = limit.clamp(1, MAX_PAGE);
        // One more than asked tells whether there is a next page.
        let mut rows = self
            .db
            .read(|r| store::list(r, T::KIND, filter, limit + 1))?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|r| r.id.to_string())
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(Self::stored)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// The clock the registry reads.
    pub fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    /// Which of these facility and programme codes do not exist, as
    /// `(field, message)` with fields `facilities[i]` and
    /// `dailyRates.{code}` (for scoping a token to them).
    pub fn missing_codes(
        &self,
        facilities: &[String],
        programmes: &[String],
    ) -> Result<Vec<(String, String)>, RolloutError> {
        let found_f = self
            .db
            .read(|r| store::existing(r, Facility::KIND, facilities))?;
        let found_p = self
            .db
            .read(|r| store::existing(r, Programme::KIND, programmes))?;
        let mut missing: Vec<(String, String)> = facilities
            .iter()
            .enumerate()
            .filter(|(_, f)| !found_f.contains(f))
            .map(|(i, _)| {
                (
                    format!("facilities[{i}]"),
                    "no facility with this code".to_owned(),
                )
            })
            .collect();
        missing.extend(programmes.iter().filter(|p| !found_p.contains(p)).map(|p| {
            (
                format!("dailyRates.{p}"),
                "no programme with this code".to_owned(),
            )
        }));
        Ok(missing)
    }

    /// Whether a facility is active in a programme and at what daily rate
    /// (for Rollout II's enforcement and the facility app).
    pub fn facility_programme(
        &self,
        facility: &str,
        programme: &str,
    ) -> Result<Option<(Status, Option<u32>)>, RolloutError> {
        let f = self.get::<Facility>(facility)?;
        Ok(f.record
            .programmes
            .iter()
            .find(|p| p.programme == programme)
            .map(|p| (p.status, p.daily_rate)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use divoc_storage::DbOptions;
    use divoc_time::ManualClock;
    use serde_json::json;

    fn service() -> (tempfile::TempDir, Database, RolloutService) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let svc = RolloutService::new(db.clone(), ManualClock::new(1_700_000_000_000));
        (dir, db, svc)
    }

    fn vaccine(code: &str) -> Vaccine {
        serde_json::from_value(json!({
            "code": code, "name": "CoVax", "manufacturer": "COVPharma", "mode": "injection",
            "doses": 2, "intervals": [{"minDays": 28}]
        }))
        .unwrap()
    }

    fn programme(code: &str, vaccines: &[&str]) -> Programme {
        serde_json::from_value(json!({
            "code": code, "name": "COVID-19", "startDate": "2021-01-16", "vaccines": vaccines
        }))
        .unwrap()
    }

    fn facility(code: &str, district: &str, programmes: &[&str]) -> Facility {
        let programmes: Vec<Value> = programmes
            .iter()
            .map(|p| json!({"programme": p, "dailyRate": 100}))
            .collect();
        serde_json::from_value(json!({
            "code": code, "name": format!("PHC {code}"),
            "address": {"line1": "Main Road", "district": district, "state": "Karnataka", "country": "IN"},
            "category": "government", "type": "fixed", "programmes": programmes
        }))
        .unwrap()
    }

    fn fields(e: RolloutError) -> Vec<String> {
        match e {
            RolloutError::Validation(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn references_must_exist_and_nothing_is_half_stored() {
        let (_d, db, svc) = service();
        let e = svc
            .create(programme("C19", &["COVAX", "NOPE"]), "admin")
            .unwrap_err();
        assert_eq!(fields(e), ["vaccines[0]", "vaccines[1]"]);
        svc.create(vaccine("COVAX"), "admin").unwrap();
        let e = svc
            .create(programme("C19", &["COVAX", "NOPE"]), "admin")
            .unwrap_err();
        assert_eq!(fields(e), ["vaccines[1]"]);
        assert!(matches!(
            svc.get::<Programme>("C19"),
            Err(RolloutError::NotFound(_))
        ));
        svc.create(programme("C19", &["COVAX"]), "admin").unwrap();
        let e = svc
            .create(facility("F1", "North", &["C19", "HPV"]), "admin")
            .unwrap_err();
        assert_eq!(fields(e), ["programmes[1].programme"]);
        // One audit record and one event per stored change, nothing for the
        // refused ones; events carry kind, code and version only.
        let events = db.events_after(0, 100).unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["rollout.vaccine.created", "rollout.programme.created"]
        );
        assert_eq!(
            events[1].payload,
            json!({"kind": "programme", "code": "C19", "version": 1})
        );
        assert!(db.verify_audit_chain().unwrap().is_intact());
    }

    #[test]
    fn codes_are_unique_even_when_created_at_once() {
        let (_d, _db, svc) = service();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let svc = svc.clone();
                std::thread::spawn(move || svc.create(vaccine("COVAX"), "admin"))
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        assert!(results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, RolloutError::Conflict(_))));
    }

    #[test]
    fn every_change_is_a_version_and_a_stale_write_is_refused() {
        let (_d, db, svc) = service();
        svc.create(vaccine("COVAX"), "admin").unwrap();
        let mut v = vaccine("COVAX");
        v.status = Status::Blocked;
        let e = svc.replace("COVAX", v.clone(), Some(5), "ctl").unwrap_err();
        assert!(matches!(
            e,
            RolloutError::Stale {
                expected: 5,
                current: 1
            }
        ));
        let e = svc.replace("OTHER", v.clone(), None, "ctl").unwrap_err();
        assert_eq!(fields(e), ["code"]);
        let stored = svc.replace("COVAX", v, Some(1), "ctl").unwrap();
        assert_eq!((stored.version, stored.record.status), (2, Status::Blocked));
        let history = svc.history::<Vaccine>("COVAX").unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].record.as_ref().unwrap()["status"], "active");
        assert_eq!(
            (history[1].actor.as_str(), history[1].at.as_str()),
            ("ctl", "2023-11-14T22:13:20Z")
        );
        let page = svc
            .list::<Vaccine>(
                &ListFilter {
                    status: Some("blocked".into()),
                    ..ListFilter::default()
                },
                10,
            )
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(db.events_after(0, 10).unwrap().len(), 2);
    }

    #[test]
    fn what_others_refer_to_cannot_be_deleted() {
        let (_d, _db, svc) = service();
        svc.create(vaccine("COVAX"), "admin").unwrap();
        svc.create(programme("C19", &["COVAX"]), "admin").unwrap();
        svc.create(facility("F1", "North", &["C19"]), "admin")
            .unwrap();
        let vaccinator: Vaccinator = serde_json::from_value(json!({
            "code": "VAC-1", "name": "Asha", "facilities": ["F1"],
            "programmes": [{"programme": "C19", "certified": true}]
        }))
        .unwrap();
        svc.create(vaccinator, "admin").unwrap();
        for e in [
            svc.delete::<Vaccine>("COVAX", "admin").unwrap_err(),
            svc.delete::<Programme>("C19", "admin").unwrap_err(),
            svc.delete::<Facility>("F1", "admin").unwrap_err(),
        ] {
            assert!(
                matches!(&e, RolloutError::Conflict(m) if m.contains("inactive instead")),
                "{e}"
            );
        }
        svc.delete::<Vaccinator>("VAC-1", "admin").unwrap();
        svc.delete::<Facility>("F1", "admin").unwrap();
        assert!(matches!(
            svc.delete::<Facility>("F1", "admin"),
            Err(RolloutError::NotFound(_))
        ));
        assert_eq!(
            svc.history::<Facility>("F1")
                .unwrap()
                .last()
                .unwrap()
                .record,
            None
        );
        // The code can be used again; versions go on from the deletion.
        let again = svc
            .create(facility("F1", "North", &["C19"]), "admin")
            .unwrap();
        assert_eq!(again.version, 3);
    }

    #[test]
    fn lists_page_by_cursor_under_filters() {
        let (_d, _db, svc) = service();
        svc.create(vaccine("COVAX"), "admin").unwrap();
        svc.create(programme("C19", &["COVAX"]), "admin").unwrap();
        for i in 0..25 {
            let district = if i % 5 == 0 { "North" } else { "South" };
            let programmes: &[&str] = if i % 2 == 0 { &["C19"] } else { &[] };
            svc.create(facility(&format!("F{i:02}"), district, programmes), "admin")
                .unwrap();
        }
        let filter = ListFilter {
            district: Some("South".into()),
            ..ListFilter::default()
        };
        let (mut seen, mut f) = (Vec::new(), filter.clone());
        loop {
            let page = svc.list::<Facility>(&f, 7).unwrap();
            seen.extend(page.items.iter().map(|s| s.record.code.clone()));
            match page.next_cursor {
                Some(c) => f.after = Some(c.parse().unwrap()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 20);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        let c19 = ListFilter {
            link: Some(("programme".into(), "C19".into())),
            district: Some("North".into()),
            ..ListFilter::default()
        };
        let codes: Vec<String> = svc
            .list::<Facility>(&c19, 100)
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.record.code)
            .collect();
        assert_eq!(codes, ["F00", "F10", "F20"]);
        assert_eq!(
            svc.facility_programme("F00", "C19").unwrap(),
            Some((Status::Active, Some(100)))
        );
    }
}
