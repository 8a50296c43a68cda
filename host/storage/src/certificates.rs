//! The certificate repository: records, idempotent insertion, status
//! changes, corrections and history.
//!
//! Every state change appends its audit record and event (and, for new
//! certificates, an outbox row for distribution) in the caller's write
//! closure, so they commit together or not at all.
//!
//! Idempotency is a property of the schema, not of a cache: the unique key
//! `(program, recipient_ref, dose, version)` makes a second certificate for
//! the same dose impossible, and [`insert`] compares payload hashes to tell a
//! re-send (answer with the stored certificate) from a different payload
//! (a conflict; the caller must correct instead).
//!
//! Events and audit details carry ids, program, dose and version only: no
//! names, dates of birth, contacts or pre-enrolment codes.

use std::borrow::Borrow;
use std::collections::HashMap;

use crate::sql::{params, Optional, Row};
use serde_json::{json, Value};

use crate::db::{Reader, Tx};
use crate::error::{to_i64, to_u64, Result, StorageError};
use crate::{audit, credential_codec, events, outbox};

mod many_rows;

/// Stored status of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// In force.
    Valid,
    /// Permanently withdrawn (includes superseded by a correction).
    Revoked,
    /// Temporarily withdrawn, possibly until a date.
    Suspended,
}

impl CertStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Valid => "valid",
            CertStatus::Revoked => "revoked",
            CertStatus::Suspended => "suspended",
        }
    }

    fn parse(s: &str) -> Result<CertStatus> {
        match s {
            "valid" => Ok(CertStatus::Valid),
            "revoked" => Ok(CertStatus::Revoked),
            "suspended" => Ok(CertStatus::Suspended),
            other => Err(StorageError::InvalidArgument(format!(
                "unknown certificate status {other:?} in the database"
            ))),
        }
    }
}

/// One stored certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateRecord {
    /// Certificate id.
    pub id: String,
    /// Program.
    pub program: String,
    /// Recipient reference (pre-enrolment code).
    pub recipient_ref: String,
    /// Dose number.
    pub dose: u32,
    /// Version, 1 for the original, +1 per correction.
    pub version: u32,
    /// The version this one corrects.
    pub previous_id: Option<String>,
    /// Stored status. A suspension past its end is still stored as
    /// suspended: what that means now is the certificate module's rule.
    pub status: CertStatus,
    /// End of a suspension, ms since the epoch; `None` = until reinstated.
    pub suspended_until_ms: Option<i64>,
    /// Why it was revoked (`superseded` for corrected versions).
    pub revoked_reason: Option<String>,
    /// Global Bitstring Status List index.
    pub status_index: u64,
    /// Issuance time, ms.
    pub issued_at_ms: i64,
    /// Last status change, ms.
    pub updated_at_ms: i64,
    /// Issuing facility.
    pub facility_id: Option<String>,
    /// Hash of the canonical request, for idempotency.
    pub payload_hash: String,
    /// The signed credential.
    pub credential: Value,
}

/// A certificate to insert.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// Certificate id.
    pub id: String,
    /// Program.
    pub program: String,
    /// Recipient reference (pre-enrolment code).
    pub recipient_ref: String,
    /// Dose number.
    pub dose: u32,
    /// Issuing facility.
    pub facility_id: Option<String>,
    /// Hash of the canonical request.
    pub payload_hash: String,
    /// Status list index the credential was signed with.
    pub status_index: u64,
    /// The signed credential.
    pub credential: Value,
    /// Keyed hashes for contact + date-of-birth lookups.
    pub lookup_hashes: Vec<String>,
    /// Contacts to distribute the certificate to; go only into the outbox
    /// row (delivery needs them), never into events or the audit log.
    pub contacts: Vec<String>,
    /// Distribution channels (plugin names) to deliver it through: one
    /// outbox row each, so each channel is retried and reported on its own.
    /// Empty: one row for [`UNROUTED`], for channels configured later.
    pub channels: Vec<String>,
    /// Who issues it (for the audit log).
    pub actor: String,
    /// When it is issued (the certificate module's clock), ms.
    pub issued_at_ms: i64,
    /// The live counters it moves, as `(dimension, key)`: counted under
    /// `certificates.issued` (or `certificates.corrected` for a new
    /// version) in the same transaction ([`crate::stats`]).
    pub counts: Vec<(String, String)>,
}

/// Outbox `kind` of certificate deliveries.
pub const DISTRIBUTE: &str = "certificate.distribute";

/// Outbox `kind` of payments to capture once their certificate is stored;
/// the row's `target` is the payment-provider plugin.
pub const PAYMENT_CAPTURE: &str = "payment.capture";

/// Outbox `target` of a delivery queued while no channel was configured;
/// the distribution worker routes it to the channels configured when it
/// runs.
pub const UNROUTED: &str = "certificate";

/// What [`insert`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    /// Stored a new certificate.
    Created,
    /// The same payload was issued before: this is its id.
    Existing(String),
    /// A different payload was issued for this dose: the current version's id.
    Conflict(String),
}

const COLUMNS: &str = "id, program, recipient_ref, dose, version, previous_id, status,
    suspended_until, revoked_reason, status_index, issued_at, updated_at, facility_id,
    payload_hash, credential";

fn record(row: &Row<'_>) -> crate::sql::SqlResult<(CertificateRecordRaw, Vec<u8>)> {
    Ok((
        CertificateRecordRaw {
            id: row.get(0)?,
            program: row.get(1)?,
            recipient_ref: row.get(2)?,
            dose: row.get(3)?,
            version: row.get(4)?,
            previous_id: row.get(5)?,
            status: row.get(6)?,
            suspended_until_ms: row.get(7)?,
            revoked_reason: row.get(8)?,
            status_index: row.get(9)?,
            issued_at_ms: row.get(10)?,
            updated_at_ms: row.get(11)?,
            facility_id: row.get(12)?,
            payload_hash: digest_from_db(row.get(13)?),
        },
        row.get(14)?,
    ))
}

struct CertificateRecordRaw {
    id: String,
    program: String,
    recipient_ref: String,
    dose: i64,
    version: i64,
    previous_id: Option<String>,
    status: String,
    suspended_until_ms: Option<i64>,
    revoked_reason: Option<String>,
    status_index: i64,
    issued_at_ms: i64,
    updated_at_ms: i64,
    facility_id: Option<String>,
    payload_hash: String,
}

/// A hex SHA-256 digest (payload hashes, lookup hashes) as stored: its 32
/// bytes, half the size of its hex text. Anything else (the certificate
/// module writes only lowercase hex digests) is stored as its text's bytes.
pub(crate) fn digest_to_db(digest: &str) -> Vec<u8> {
    match hex::decode(digest) {
        Ok(bytes) if bytes.len() == 32 => bytes,
        _ => digest.as_bytes().to_vec(),
    }
}

/// The text of a digest stored by [`digest_to_db`].
pub(crate) fn digest_from_db(stored: Vec<u8>) -> String {
    if stored.len() == 32 {
        hex::encode(stored)
    } else {
        String::from_utf8(stored)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

fn finish((raw, stored): (CertificateRecordRaw, Vec<u8>)) -> Result<CertificateRecord> {
    let credential = credential_codec::decode(&stored)?;
    let small = |v: i64, what: &str| {
        u32::try_from(v)
            .map_err(|_| StorageError::InvalidArgument(format!("{what} {v} out of range")))
    };
    Ok(CertificateRecord {
        dose: small(raw.dose, "certificates.dose")?,
        version: small(raw.version, "certificates.version")?,
        status: CertStatus::parse(&raw.status)?,
        status_index: to_u64(raw.status_index, "certificates.status_index")?,
        credential: serde_json::from_str(&credential).map_err(|source| StorageError::Json {
            what: "certificates.credential",
            source,
        })?,
        id: raw.id,
        program: raw.program,
        recipient_ref: raw.recipient_ref,
        previous_id: raw.previous_id,
        suspended_until_ms: raw.suspended_until_ms,
        revoked_reason: raw.revoked_reason,
        issued_at_ms: raw.issued_at_ms,
        updated_at_ms: raw.updated_at_ms,
        facility_id: raw.facility_id,
        payload_hash: raw.payload_hash,
    })
}

fn query(
    r: &Reader<'_>,
    filter: &str,
    args: impl crate::sql::Params,
) -> Result<Vec<CertificateRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM certificates {filter}");
    let mut stmt = r.conn().prepare_cached(&sql)?;
    let rows = stmt.query_map(args, record)?;
    rows.map(|row| finish(row?)).collect()
}

/// The certificate with this id.
pub fn get(r: &Reader<'_>, id: &str) -> Result<Option<CertificateRecord>> {
    Ok(query(r, "WHERE id = ?1", params![id])?.into_iter().next())
}

/// Every certificate (all programs, doses, versions) of a recipient
/// reference, oldest first.
pub fn by_recipient_ref(r: &Reader<'_>, recipient_ref: &str) -> Result<Vec<CertificateRecord>> {
    query(
        r,
        "WHERE recipient_ref = ?1 ORDER BY program, dose, version",
        params![recipient_ref],
    )
}

/// Certificates whose lookup hashes include `lookup_hash`.
pub fn by_lookup(r: &Reader<'_>, lookup_hash: &str) -> Result<Vec<CertificateRecord>> {
    query(
        r,
        "WHERE id IN (SELECT certificate_id FROM certificate_lookup WHERE lookup_hash = ?1)
         ORDER BY program, dose, version",
        params![digest_to_db(lookup_hash)],
    )
}

/// All versions of the certificate `id` belongs to (same program,
/// recipient and dose), oldest first; empty if `id` is unknown.
pub fn history(r: &Reader<'_>, id: &str) -> Result<Vec<CertificateRecord>> {
    query(
        r,
        "WHERE (program, recipient_ref, dose) =
               (SELECT program, recipient_ref, dose FROM certificates WHERE id = ?1)
         ORDER BY version",
        params![id],
    )
}

/// Versions for a dose, newest first.
fn versions(
    r: &Reader<'_>,
    program: &str,
    recipient_ref: &str,
    dose: u32,
) -> Result<Vec<(String, String, i64)>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT id, payload_hash, version FROM certificates
          WHERE program = ?1 AND recipient_ref = ?2 AND dose = ?3 ORDER BY version DESC",
    )?;
    let rows = stmt.query_map(params![program, recipient_ref, dose], |row| {
        Ok((row.get(0)?, digest_from_db(row.get(1)?), row.get(2)?))
    })?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// Whether this payload is already issued, conflicts, or is new, without
/// writing: lets the caller skip signing for a re-send.
pub fn precheck(
    r: &Reader<'_>,
    program: &str,
    recipient_ref: &str,
    dose: u32,
    payload_hash: &str,
) -> Result<Option<InsertOutcome>> {
    let v = versions(r, program, recipient_ref, dose)?;
    if let Some((id, _, _)) = v.iter().find(|(_, h, _)| h == payload_hash) {
        return Ok(Some(InsertOutcome::Existing(id.clone())));
    }
    Ok(v.into_iter()
        .next()
        .map(|(id, _, _)| InsertOutcome::Conflict(id)))
}

/// What is stored for many doses, read at once: [`precheck`] for a batch
/// without a query per certificate (on PostgreSQL, one query).
#[derive(Debug, Default)]
pub struct StoredDoses {
    /// `(program, recipient_ref, dose)` → `(id, payload hash)`, newest
    /// version first; every dose asked for has an entry.
    doses: HashMap<(String, String, u32), Vec<(String, String)>>,
}

impl StoredDoses {
    /// [`precheck`] of one dose, or `None` if it was not among those read.
    pub fn precheck(
        &self,
        program: &str,
        recipient_ref: &str,
        dose: u32,
        payload_hash: &str,
    ) -> Option<Option<InsertOutcome>> {
        let key = (program.to_owned(), recipient_ref.to_owned(), dose);
        let versions = self.doses.get(&key)?;
        let same = versions.iter().find(|(_, h)| h == payload_hash);
        Some(match same {
            Some((id, _)) => Some(InsertOutcome::Existing(id.clone())),
            None => versions
                .first()
                .map(|(id, _)| InsertOutcome::Conflict(id.clone())),
        })
    }
}

/// Reads what is stored for each of `doses` `(program, recipient_ref,
/// dose)`.
pub fn stored_doses(r: &Reader<'_>, doses: &[(&str, &str, u32)]) -> Result<StoredDoses> {
    let mut out = StoredDoses::default();
    if let Some(pg) = r.conn().pg() {
        let keys: Vec<(&str, &str, i64)> =
            doses.iter().map(|d| (d.0, d.1, i64::from(d.2))).collect();
        let found = many_rows::stored_versions(pg, &keys)?;
        for &(program, recipient_ref, dose) in doses {
            let versions = found
                .get(&(program, recipient_ref, i64::from(dose)))
                .map(|v| v.iter().map(|(id, h, _)| (id.clone(), h.clone())).collect())
                .unwrap_or_default();
            out.doses.insert(
                (program.to_owned(), recipient_ref.to_owned(), dose),
                versions,
            );
        }
        return Ok(out);
    }
    for &(program, recipient_ref, dose) in doses {
        let versions = versions(r, program, recipient_ref, dose)?
            .into_iter()
            .map(|(id, h, _)| (id, h))
            .collect();
        out.doses.insert(
            (program.to_owned(), recipient_ref.to_owned(), dose),
            versions,
        );
    }
    Ok(out)
}

fn credential_json(c: &NewCertificate) -> Result<String> {
    serde_json::to_string(&c.credential).map_err(|source| StorageError::Json {
        what: "certificate credential",
        source,
    })
}

/// The JSON texts stored beside a certificate row: its audit/event summary
/// and its outbox payload.
#[derive(Debug, Clone)]
struct RowTexts {
    credential: String,
    /// `credential` as stored ([`credential_codec`]).
    stored: Vec<u8>,
    summary: String,
    delivery: String,
}

impl RowTexts {
    fn new(
        c: &NewCertificate,
        credential: String,
        version: u32,
        previous_id: Option<&str>,
    ) -> Result<RowTexts> {
        let json = |what: &'static str, v: &Value| {
            serde_json::to_string(v).map_err(|source| StorageError::Json { what, source })
        };
        Ok(RowTexts {
            stored: credential_codec::encode(&credential)?,
            credential,
            summary: json(
                "certificate summary",
                &json!({
                    "id": c.id, "program": c.program, "dose": c.dose, "version": version,
                    "previous_id": previous_id, "facility_id": c.facility_id,
                }),
            )?,
            delivery: json(
                "outbox payload",
                &json!({ "certificate_id": c.id, "contacts": c.contacts }),
            )?,
        })
    }
}

fn insert_row(
    tx: &Tx<'_>,
    c: &NewCertificate,
    version: u32,
    previous_id: Option<&str>,
    now: i64,
) -> Result<bool> {
    let texts = RowTexts::new(c, credential_json(c)?, version, previous_id)?;
    insert_row_texts(tx, c, &texts, version, previous_id, now)
}

fn insert_row_texts(
    tx: &Tx<'_>,
    c: &NewCertificate,
    texts: &RowTexts,
    version: u32,
    previous_id: Option<&str>,
    now: i64,
) -> Result<bool> {
    let conn = tx.conn();
    // The idempotency key decides between hosts: on PostgreSQL another
    // host may store the same dose between our check and this insert; its
    // row then wins and this one writes nothing (the caller reads the
    // winner). SQLite's one writer made the check in this transaction
    // final, and a conflict there is an error.
    let inserted = conn
        .prepare_cached(match conn.dialect() {
            crate::sql::Dialect::Sqlite => {
                "INSERT INTO certificates (id, program, recipient_ref, dose, version, previous_id,
                    status_index, issued_at, updated_at, facility_id, payload_hash, credential)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11)"
            }
            crate::sql::Dialect::Postgres => {
                "INSERT INTO certificates (id, program, recipient_ref, dose, version, previous_id,
                    status_index, issued_at, updated_at, facility_id, payload_hash, credential)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11)
                 ON CONFLICT (recipient_ref, program, dose, version) DO NOTHING"
            }
        })?
        .execute(params![
            c.id,
            c.program,
            c.recipient_ref,
            c.dose,
            version,
            previous_id,
            to_i64(c.status_index, "status_index")?,
            now,
            c.facility_id,
            digest_to_db(&c.payload_hash),
            texts.stored
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    if !c.lookup_hashes.is_empty() {
        let mut lookup = conn.prepare_cached(
            "INSERT INTO certificate_lookup (lookup_hash, certificate_id) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
        )?;
        for h in &c.lookup_hashes {
            lookup.execute(params![digest_to_db(h), c.id])?;
        }
    }
    let action = if previous_id.is_some() {
        "certificate.corrected"
    } else {
        "certificate.issued"
    };
    audit::append_audit_json(tx, &c.actor, action, &c.id, &texts.summary)?;
    events::append_event_json(tx, action, &c.id, &texts.summary)?;
    let metric = if previous_id.is_some() {
        crate::stats::CERTIFICATES_CORRECTED
    } else {
        crate::stats::CERTIFICATES_ISSUED
    };
    for (dimension, key) in &c.counts {
        crate::stats::add(tx, metric, dimension, key, 1);
    }
    if c.channels.is_empty() {
        outbox::enqueue_json(tx, DISTRIBUTE, UNROUTED, &texts.delivery, now)?;
    }
    for channel in &c.channels {
        outbox::enqueue_json(tx, DISTRIBUTE, channel, &texts.delivery, now)?;
    }
    Ok(true)
}

/// The outcome for a dose another host stored first (see
/// [`insert_row_texts`]): the same payload is that certificate, another
/// is a conflict with it.
fn stored_elsewhere(tx: &Tx<'_>, c: &NewCertificate) -> Result<InsertOutcome> {
    precheck(
        &tx.reader(),
        &c.program,
        &c.recipient_ref,
        c.dose,
        &c.payload_hash,
    )?
    .ok_or_else(|| {
        StorageError::NotFound(format!(
            "certificate for {} dose {} stored by another host",
            c.program, c.dose
        ))
    })
}

/// The distribution outbox rows of a certificate, oldest first.
///
/// There is no index on the payload's certificate id: this scans the
/// certificate rows of the outbox, which is fine for an operator's status
/// query but not for a hot path.
pub fn distribution(r: &Reader<'_>, certificate_id: &str) -> Result<Vec<outbox::OutboxItem>> {
    outbox::by_payload_field(r, DISTRIBUTE, "certificate_id", certificate_id)
}

/// Stores a new certificate (version 1) with its lookups, audit record,
/// `certificate.issued` event and distribution outbox row — unless the
/// dose is already issued, in which case nothing is written and the
/// outcome says whether it was the same payload.
pub fn insert(tx: &Tx<'_>, c: &NewCertificate) -> Result<InsertOutcome> {
    if let Some(outcome) = precheck(
        &tx.reader(),
        &c.program,
        &c.recipient_ref,
        c.dose,
        &c.payload_hash,
    )? {
        return Ok(outcome);
    }
    if !insert_row(tx, c, 1, None, c.issued_at_ms)? {
        return stored_elsewhere(tx, c);
    }
    Ok(InsertOutcome::Created)
}

/// A [`NewCertificate`] with its credential, audit summary and outbox
/// payload already serialized.
///
/// Serializing them is several microseconds per certificate, and the
/// writer is the one thread every issuance waits for;
/// [`PreparedCertificate::new`] does it on the caller's thread instead,
/// before [`crate::Database::write`].
#[derive(Debug, Clone)]
pub struct PreparedCertificate {
    cert: NewCertificate,
    texts: RowTexts,
}

impl PreparedCertificate {
    /// Serializes the credential and what is stored beside it. The
    /// credential's `Value` is dropped here, on the caller's thread: freeing
    /// a parsed credential is itself several microseconds, and would
    /// otherwise happen on the writer when the work item is dropped.
    pub fn new(mut cert: NewCertificate) -> Result<PreparedCertificate> {
        let texts = RowTexts::new(&cert, credential_json(&cert)?, 1, None)?;
        drop(std::mem::take(&mut cert.credential));
        Ok(PreparedCertificate { cert, texts })
    }

    /// [`new`](Self::new) for a credential already serialized (the
    /// certificate module writes its vaccination credential's JSON text
    /// directly); `cert.credential` is ignored.
    pub fn from_credential_json(
        mut cert: NewCertificate,
        credential: String,
    ) -> Result<PreparedCertificate> {
        let texts = RowTexts::new(&cert, credential, 1, None)?;
        drop(std::mem::take(&mut cert.credential));
        Ok(PreparedCertificate { cert, texts })
    }

    /// The certificate; its `credential` is `null` (see
    /// [`credential_json`](Self::credential_json)).
    pub fn certificate(&self) -> &NewCertificate {
        &self.cert
    }

    /// The signed credential as it is stored (serialized JSON).
    pub fn credential_json(&self) -> &str {
        &self.texts.credential
    }
}

/// [`insert`] for a certificate serialized beforehand.
pub fn insert_prepared(tx: &Tx<'_>, p: &PreparedCertificate) -> Result<InsertOutcome> {
    let c = &p.cert;
    if let Some(outcome) = precheck(
        &tx.reader(),
        &c.program,
        &c.recipient_ref,
        c.dose,
        &c.payload_hash,
    )? {
        return Ok(outcome);
    }
    if !insert_row_texts(tx, c, &p.texts, 1, None, c.issued_at_ms)? {
        return stored_elsewhere(tx, c);
    }
    Ok(InsertOutcome::Created)
}

/// Inserts many certificates as one work item: one result per
/// certificate, in order, each as [`insert_prepared`] would give it (a
/// later duplicate of an earlier one in `certs` is `Existing` or a
/// `Conflict`).
///
/// The writer gives each work item a savepoint, and a savepoint copies
/// every page it first touches (the tail pages of each table and index,
/// the audit head…) into its sub-journal; for a batch of certificates
/// that is the same few dozen pages copied again per certificate. Here the
/// whole batch runs under one savepoint. Should any certificate fail, the
/// batch is rolled back and redone one savepoint per certificate, so that
/// one bad certificate still fails alone.
pub fn insert_many<P: Borrow<PreparedCertificate>>(
    tx: &Tx<'_>,
    certs: &[P],
) -> Result<Vec<Result<InsertOutcome>>> {
    insert_many_with(tx, certs, |_, _| Ok(()))
}

/// [`insert_many`], running `created(tx, i)` right after `certs[i]` is
/// stored as new, in its savepoint: what it writes commits with that
/// certificate or not at all, and its error fails that certificate alone.
pub fn insert_many_with<P: Borrow<PreparedCertificate>>(
    tx: &Tx<'_>,
    certs: &[P],
    mut created: impl FnMut(&Tx<'_>, usize) -> Result<()>,
) -> Result<Vec<Result<InsertOutcome>>> {
    let conn = tx.conn();
    let exec = |sql: &str| -> Result<()> {
        conn.prepare_cached(sql)?.execute(())?;
        Ok(())
    };
    // What the audit chain's head and the counts were at each savepoint:
    // rolling back to one takes its audit records, so both go back too.
    let many = tx.mark();
    exec("SAVEPOINT divoc_many")?;
    let all = match conn.pg() {
        // A statement per table for the lot: PostgreSQL is bound by round
        // trips, SQLite (in process) is not.
        Some(pg) => many_rows::insert(tx, pg, certs, &mut created).ok(),
        None => {
            let mut out = Vec::with_capacity(certs.len());
            for (i, p) in certs.iter().enumerate() {
                match insert_one(tx, p.borrow(), i, &mut created) {
                    Ok(outcome) => out.push(Ok(outcome)),
                    Err(_) => break,
                }
            }
            (out.len() == certs.len()).then_some(out)
        }
    };
    if let Some(out) = all {
        exec("RELEASE divoc_many")?;
        return Ok(out);
    }
    exec("ROLLBACK TO divoc_many")?;
    tx.rewind(many);
    let mut out = Vec::with_capacity(certs.len());
    let mut one = |i: usize, p: &PreparedCertificate| insert_one(tx, p, i, &mut created);
    for (i, p) in certs.iter().enumerate() {
        let before = tx.mark();
        exec("SAVEPOINT divoc_one")?;
        let outcome = one(i, p.borrow());
        if outcome.is_err() {
            exec("ROLLBACK TO divoc_one")?;
            tx.rewind(before);
        }
        exec("RELEASE divoc_one")?;
        out.push(outcome);
    }
    exec("RELEASE divoc_many")?;
    Ok(out)
}

/// [`insert_prepared`], then `created` if it was stored as new.
fn insert_one(
    tx: &Tx<'_>,
    p: &PreparedCertificate,
    i: usize,
    created: &mut impl FnMut(&Tx<'_>, usize) -> Result<()>,
) -> Result<InsertOutcome> {
    let outcome = insert_prepared(tx, p)?;
    if outcome == InsertOutcome::Created {
        created(tx, i)?;
    }
    Ok(outcome)
}

/// Stores `p` as version `version` of a dose, correcting `previous_id`,
/// and marks `previous_id` revoked as `superseded` (with its audit record
/// and event). Whether the correction is allowed is the certificate
/// module's decision, made before this is called in the same transaction.
pub fn insert_correction(
    tx: &Tx<'_>,
    p: &PreparedCertificate,
    version: u32,
    previous_id: &str,
) -> Result<()> {
    let c = &p.cert;
    let now = c.issued_at_ms;
    let texts = RowTexts::new(c, p.texts.credential.clone(), version, Some(previous_id))?;
    if !insert_row_texts(tx, c, &texts, version, Some(previous_id), now)? {
        return Err(StorageError::Rejected(format!(
            "version {version} of {previous_id} was stored by another host first"
        )));
    }
    tx.conn()
        .prepare_cached(
            "UPDATE certificates SET status = 'revoked', revoked_reason = 'superseded',
                    suspended_until = NULL, updated_at = ?2 WHERE id = ?1",
        )?
        .execute(params![previous_id, now])?;
    crate::db::notify(tx, STATUS_CHANNEL, previous_id)?;
    let detail = json!({ "id": previous_id, "reason": "superseded", "superseded_by": c.id });
    audit::append_audit(tx, &c.actor, "certificate.revoked", previous_id, &detail)?;
    events::append_event(tx, "certificate.revoked", previous_id, &detail)?;
    Ok(())
}

/// A status write decided by the certificate module.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite<'a> {
    /// The new stored status.
    pub status: CertStatus,
    /// End of a suspension (ms), for `suspended`.
    pub suspended_until_ms: Option<i64>,
    /// Why, for `revoked`.
    pub revoked_reason: Option<&'a str>,
    /// When (ms).
    pub at_ms: i64,
    /// Who (for the audit log).
    pub actor: &'a str,
    /// The audit action and event kind, e.g. `certificate.revoked`.
    pub action: &'a str,
    /// The audit record's and event's detail.
    pub detail: &'a Value,
    /// The live counters it moves, as `(dimension, key)`, counted under
    /// the action's metric (`certificate.revoked` → `certificates.revoked`).
    pub counts: &'a [(String, String)],
}

/// Writes a certificate's status columns with the audit record and event,
/// in the caller's transaction. Returns whether a certificate `id` exists.
pub fn write_status(tx: &Tx<'_>, id: &str, w: &StatusWrite<'_>) -> Result<bool> {
    let changed = tx
        .conn()
        .prepare_cached(
            "UPDATE certificates SET status = ?2, suspended_until = ?3, revoked_reason = ?4,
                    updated_at = ?5 WHERE id = ?1",
        )?
        .execute(params![
            id,
            w.status.as_str(),
            w.suspended_until_ms,
            w.revoked_reason,
            w.at_ms
        ])?;
    if changed == 0 {
        return Ok(false);
    }
    crate::db::notify(tx, STATUS_CHANNEL, id)?;
    audit::append_audit(tx, w.actor, w.action, id, w.detail)?;
    events::append_event(tx, w.action, id, w.detail)?;
    let metric = w.action.replacen("certificate.", "certificates.", 1);
    for (dimension, key) in w.counts {
        crate::stats::add(tx, &metric, dimension, key, 1);
    }
    Ok(true)
}

/// Certificates with a status index in `lo..hi` that are not plainly
/// valid: `(status_index, status, suspended_until_ms)`. Enough to build a
/// status list; valid certificates are the zero bits.
pub fn status_entries(
    r: &Reader<'_>,
    lo: u64,
    hi: u64,
) -> Result<Vec<(u64, CertStatus, Option<i64>)>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT status_index, status, suspended_until FROM certificates
          WHERE status_index >= ?1 AND status_index < ?2 AND status <> 'valid'",
    )?;
    let rows = stmt.query_map(params![to_i64(lo, "lo")?, to_i64(hi, "hi")?], |row| {
        Ok((row.get::<i64>(0)?, row.get::<String>(1)?, row.get(2)?))
    })?;
    rows.map(|row| {
        let (i, s, until) = row?;
        Ok((to_u64(i, "status_index")?, CertStatus::parse(&s)?, until))
    })
    .collect()
}

/// Every status index in `lo..hi` (to recover an index allocator).
pub fn status_indexes(r: &Reader<'_>, lo: u64, hi: u64) -> Result<Vec<u64>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT status_index FROM certificates WHERE status_index >= ?1 AND status_index < ?2",
    )?;
    let rows = stmt.query_map(params![to_i64(lo, "lo")?, to_i64(hi, "hi")?], |row| {
        row.get::<i64>(0)
    })?;
    rows.map(|i| to_u64(i?, "status_index")).collect()
}

/// The channel on which hosts sharing a PostgreSQL database announce that a
/// certificate's status changed (its id as the payload), so each drops the
/// status lists it has signed and cached ([`crate::Database::on_change`]).
pub const STATUS_CHANNEL: &str = "divoc_status";

/// Leases the next free block of status-list sequence numbers, at least
/// `at_least`, for `host`; returns the block. Another host leasing at the
/// same moment takes another block: the primary key decides, and a taken
/// number is skipped (PostgreSQL's `READ COMMITTED` sees the other lease
/// once it commits).
pub fn lease_status_block(tx: &Tx<'_>, at_least: u64, host: &str, now_ms: i64) -> Result<u64> {
    let conn = tx.conn();
    let at_least = to_i64(at_least, "status block")?;
    loop {
        let next: i64 = conn
            .prepare_cached("SELECT COALESCE(MAX(block) + 1, 0) FROM status_blocks")?
            .query_row((), |r| r.get(0))?;
        let block = next.max(at_least);
        let taken = conn
            .prepare_cached(
                "INSERT INTO status_blocks (block, host, leased_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![block, host, now_ms])?;
        if taken == 1 {
            return to_u64(block, "status block");
        }
    }
}

/// The highest status index in use.
pub fn max_status_index(r: &Reader<'_>) -> Result<Option<u64>> {
    let v: Option<i64> = r
        .conn()
        .query_row("SELECT MAX(status_index) FROM certificates", (), |row| {
            row.get(0)
        })
        .optional()?
        .flatten();
    v.map(|i| to_u64(i, "status_index")).transpose()
}

/// A certificate's status without its credential: all that an online
/// verification needs from the database (see [`status_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRow {
    /// Global Bitstring Status List index.
    pub status_index: u64,
    /// Stored status.
    pub status: CertStatus,
    /// End of a suspension, ms since the epoch; `None` = until reinstated.
    pub suspended_until_ms: Option<i64>,
}

/// The status of certificate `id`, reading neither its credential nor
/// anything else: [`get`] parses the whole signed credential, which costs a
/// verification more than its signature check.
pub fn status_of(r: &Reader<'_>, id: &str) -> Result<Option<StatusRow>> {
    let row = r
        .conn()
        .prepare_cached(
            "SELECT status_index, status, suspended_until FROM certificates WHERE id = ?1",
        )?
        .query_row(params![id], |row| {
            Ok((
                row.get::<i64>(0)?,
                row.get::<String>(1)?,
                row.get::<Option<i64>>(2)?,
            ))
        })
        .optional()?;
    row.map(|(index, status, until)| {
        Ok(StatusRow {
            status_index: to_u64(index, "certificates.status_index")?,
            status: CertStatus::parse(&status)?,
            suspended_until_ms: until,
        })
    })
    .transpose()
}

/// How many certificates (every version) are stored.
pub fn count(r: &Reader<'_>) -> Result<u64> {
    let n: i64 = r
        .conn()
        .query_row("SELECT COUNT(*) FROM certificates", (), |row| row.get(0))?;
    to_u64(n, "certificate count")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Database, DbOptions};
    use std::time::Duration;

    fn new_cert(id: &str, hash: &str, index: u64) -> NewCertificate {
        NewCertificate {
            id: id.into(),
            program: "p".into(),
            recipient_ref: "r".into(),
            dose: 1,
            facility_id: None,
            payload_hash: hash.into(),
            status_index: index,
            credential: json!({ "id": id }),
            lookup_hashes: vec!["h".into()],
            contacts: vec![],
            channels: vec![],
            actor: "t".into(),
            issued_at_ms: 1_000,
            counts: Vec::new(),
        }
    }

    #[test]
    fn two_hosts_issuing_the_same_doses_store_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = crate::db::two_handles_for_tests(&dir);
        let doses = 40u64;
        let outcomes: Vec<Vec<InsertOutcome>> = std::thread::scope(|s| {
            let hosts: Vec<_> = [&a, &b]
                .into_iter()
                .enumerate()
                .map(|(h, db)| {
                    s.spawn(move || {
                        let pending: Vec<_> = (0..doses)
                            .map(|i| {
                                let mut c =
                                    new_cert(&format!("C{h}-{i}"), "h1", 100 * i + h as u64);
                                c.recipient_ref = format!("r{i}");
                                db.write(move |tx| insert(tx, &c))
                            })
                            .collect();
                        pending.into_iter().map(|p| p.wait().unwrap()).collect()
                    })
                })
                .collect();
            hosts.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, pair) in outcomes[0].iter().zip(&outcomes[1]).enumerate() {
            match pair {
                (InsertOutcome::Created, InsertOutcome::Existing(id)) => {
                    assert_eq!(id, &format!("C0-{i}"))
                }
                (InsertOutcome::Existing(id), InsertOutcome::Created) => {
                    assert_eq!(id, &format!("C1-{i}"))
                }
                other => panic!("dose {i}: {other:?}"),
            }
        }
        assert_eq!(a.read(count).unwrap(), doses);
        assert_eq!(a.events_after(0, 1000).unwrap().len(), doses as usize);
        assert!(a.verify_audit_chain().unwrap().is_intact());
    }

    #[test]
    fn a_status_change_on_one_host_is_announced_to_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.db");
        let url = crate::pg::test_database_url();
        let open = || match &url {
            Some(url) => Database::open_postgres(url, DbOptions::default()).unwrap(),
            None => Database::open(&path, DbOptions::default()).unwrap(),
        };
        let (a, b) = (open(), open());
        let (tx_seen, seen) = std::sync::mpsc::channel::<String>();
        let tx_seen = std::sync::Mutex::new(tx_seen);
        b.on_change(
            STATUS_CHANNEL,
            std::sync::Arc::new(move |id: &str| {
                let _ = tx_seen.lock().unwrap().send(id.to_owned());
            }),
        );
        let wait = Duration::from_secs(10);
        if url.is_some() {
            // Listening: the first call says "anything may have changed".
            assert_eq!(seen.recv_timeout(wait).unwrap(), "");
        }
        let c = new_cert("A", "h1", 1);
        a.write(move |tx| insert(tx, &c)).wait().unwrap();
        let detail = json!({});
        a.write(move |tx| {
            write_status(
                tx,
                "A",
                &StatusWrite {
                    status: CertStatus::Revoked,
                    suspended_until_ms: None,
                    revoked_reason: Some("error"),
                    at_ms: 2_000,
                    actor: "t",
                    action: "certificate.revoked",
                    detail: &detail,
                    counts: &[],
                },
            )
        })
        .wait()
        .unwrap();
        if url.is_some() {
            assert_eq!(seen.recv_timeout(wait).unwrap(), "A");
        } else {
            // One host on SQLite: it knows its own changes.
            assert!(seen.recv_timeout(Duration::from_millis(200)).is_err());
        }
    }

    #[test]
    fn status_blocks_are_leased_once_each_and_after_the_floor() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open_test(&tmp.path().join("d.db"), DbOptions::default()).unwrap();
        let lease = |floor: u64| {
            db.write(move |tx| lease_status_block(tx, floor, "h", 1))
                .wait()
                .unwrap()
        };
        assert_eq!(lease(0), 0);
        assert_eq!(lease(0), 1);
        // Certificates from before the blocks existed end at block 6.
        assert_eq!(lease(7), 7);
        assert_eq!(lease(0), 8);
    }

    #[test]
    fn insert_is_idempotent_and_conflicts_on_other_payload() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open_test(&tmp.path().join("d.db"), DbOptions::default()).unwrap();
        let ins = |c: NewCertificate| db.write(move |tx| insert(tx, &c)).wait().unwrap();
        assert_eq!(ins(new_cert("A", "h1", 5)), InsertOutcome::Created);
        assert_eq!(
            ins(new_cert("B", "h1", 6)),
            InsertOutcome::Existing("A".into())
        );
        assert_eq!(
            ins(new_cert("C", "h2", 7)),
            InsertOutcome::Conflict("A".into())
        );
        // Only A was written, with one event, audit record and outbox row.
        assert!(db.read(|r| get(r, "B")).unwrap().is_none());
        assert_eq!(db.events_after(0, 10).unwrap().len(), 1);
        assert_eq!(db.outbox_counts().unwrap().pending, 1);
        assert_eq!(db.read(|r| by_lookup(r, "h")).unwrap().len(), 1);
        assert_eq!(db.read(max_status_index).unwrap(), Some(5));
        // The schema itself refuses a second version 1 for the dose.
        let dup = new_cert("D", "h3", 8);
        let err = db.write(move |tx| insert_row(tx, &dup, 1, None, 0)).wait();
        assert!(!matches!(err, Ok(true)), "{err:?}");
    }

    #[test]
    fn a_certificate_is_queued_once_per_channel_and_found_by_id() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open_test(&tmp.path().join("d.db"), DbOptions::default()).unwrap();
        let mut c = new_cert("A", "h1", 1);
        c.channels = vec!["sms".into(), "webhook".into()];
        c.contacts = vec!["tel:1".into()];
        db.write(move |tx| insert(tx, &c)).wait().unwrap();
        let mut b = new_cert("B", "h2", 2);
        b.recipient_ref = "other".into();
        db.write(move |tx| insert(tx, &b)).wait().unwrap();

        let rows = db.read(|r| distribution(r, "A")).unwrap();
        let targets: Vec<_> = rows.iter().map(|i| i.target.as_str()).collect();
        assert_eq!(targets, vec!["sms", "webhook"]);
        assert!(rows.iter().all(|i| i.kind == DISTRIBUTE
            && i.payload == json!({"certificate_id": "A", "contacts": ["tel:1"]})));
        // No channel configured: one row for whatever is configured later.
        let rows = db.read(|r| distribution(r, "B")).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].target, UNROUTED);
    }

    #[test]
    fn insert_many_gives_each_certificate_its_own_outcome() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open_test(&tmp.path().join("d.db"), DbOptions::default()).unwrap();
        let cert = |id: &str, r: &str, hash: &str, index: u64| {
            let mut c = new_cert(id, hash, index);
            c.recipient_ref = r.into();
            PreparedCertificate::new(c).unwrap()
        };
        // All good, with a re-send and a conflicting payload inside the batch.
        let batch = vec![
            cert("A", "r1", "h1", 1),
            cert("B", "r2", "h2", 2),
            cert("C", "r1", "h1", 3),
            cert("D", "r2", "hx", 4),
        ];
        let out = db.write(move |tx| insert_many(tx, &batch)).wait().unwrap();
        let out: Vec<_> = out.into_iter().map(|o| o.unwrap()).collect();
        assert_eq!(
            out,
            vec![
                InsertOutcome::Created,
                InsertOutcome::Created,
                InsertOutcome::Existing("A".into()),
                InsertOutcome::Conflict("B".into()),
            ]
        );
        // One fails in SQL (status index 1 is taken): it fails alone.
        let batch = vec![
            cert("E", "r3", "h3", 5),
            cert("F", "r4", "h4", 1),
            cert("G", "r5", "h5", 6),
        ];
        let out = db.write(move |tx| insert_many(tx, &batch)).wait().unwrap();
        assert_eq!(out[0].as_ref().unwrap(), &InsertOutcome::Created);
        assert!(out[1].is_err());
        assert_eq!(out[2].as_ref().unwrap(), &InsertOutcome::Created);
        assert!(db.read(|r| get(r, "F")).unwrap().is_none());
        assert_eq!(db.read(count).unwrap(), 4);
        // Each created certificate has its audit record and event; the
        // failed one left nothing behind.
        assert_eq!(db.events_after(0, 100).unwrap().len(), 4);
        assert!(db.verify_audit_chain().unwrap().is_intact());
        let stored = db.read(|r| get(r, "E")).unwrap().unwrap();
        assert_eq!(stored.credential, json!({ "id": "E" }));
    }

    /// Everything but times and the hashes that include them, to compare
    /// two databases.
    fn contents(db: &Database) -> Vec<Vec<Vec<Value>>> {
        [
            "SELECT id, program, recipient_ref, dose, version, previous_id, status, status_index,
                    issued_at, facility_id, payload_hash, credential FROM certificates ORDER BY id",
            "SELECT lookup_hash, certificate_id FROM certificate_lookup
              ORDER BY certificate_id, lookup_hash",
            "SELECT seq, actor, action, subject, detail FROM audit ORDER BY seq",
            "SELECT seq, kind, subject, payload FROM events ORDER BY seq",
            "SELECT id, kind, target, payload, next_attempt_at, status FROM outbox ORDER BY id",
            "SELECT metric, dimension, key, n FROM stats_counts ORDER BY metric, dimension, key",
        ]
        .iter()
        .map(|q| db.query_json_for_tests(q).unwrap())
        .collect()
    }

    #[test]
    fn a_batch_stores_what_one_certificate_at_a_time_stores() {
        let tmp = tempfile::tempdir().unwrap();
        let open =
            |name: &str| Database::open_test(&tmp.path().join(name), DbOptions::default()).unwrap();
        let cert = |id: &str, r: &str, dose: u32, hash: &str, index: u64| {
            let mut c = new_cert(id, hash, index);
            c.recipient_ref = r.into();
            c.dose = dose;
            c.issued_at_ms = 1_000 + i64::try_from(index).unwrap();
            c.lookup_hashes = (0..index % 3).map(|k| format!("{k:064x}")).collect();
            c.channels = match index % 3 {
                0 => vec![],
                1 => vec!["sms".into()],
                _ => vec!["sms".into(), "webhook".into()],
            };
            c.facility_id = index.is_multiple_of(2).then(|| format!("F{index}"));
            c.counts = vec![("vaccine".into(), format!("V{}", index % 2))];
            c.payload_hash = format!("{:0>64}", hex::encode(hash));
            c.credential = json!({ "id": id, "name": "Ünïcode \"quoted\"" });
            PreparedCertificate::new(c).unwrap()
        };
        // Stored before the batch: r1 dose 1, corrected (version 2).
        let before = |db: &Database| {
            let first = cert("OLD1", "r1", 1, "h-old", 100);
            db.write(move |tx| insert_prepared(tx, &first))
                .wait()
                .unwrap();
            let fix = cert("OLD2", "r1", 1, "h-fix", 101);
            db.write(move |tx| insert_correction(tx, &fix, 2, "OLD1"))
                .wait()
                .unwrap();
        };
        let batch = || {
            vec![
                cert("A", "r2", 1, "ha", 1),
                cert("B", "r3", 1, "hb", 2),
                cert("C", "r2", 1, "ha", 3),    // re-send of A
                cert("D", "r3", 1, "hz", 4),    // conflicts with B
                cert("E", "r1", 1, "h-old", 5), // the first version again
                cert("F", "r1", 1, "h-new", 6), // conflicts with the newest
                cert("G", "r1", 2, "hg", 7),    // another dose: new
                cert("H", "r4", 1, "hh", 8),
                cert("I", "r5", 3, "hi", 9),
            ]
        };
        let (many, one_by_one) = (open("many.db"), open("one.db"));
        before(&many);
        before(&one_by_one);
        let certs = batch();
        let out_many = many
            .write(move |tx| match tx.conn().pg() {
                // The statement-per-table path itself, not its fallback.
                Some(pg) => many_rows::insert(tx, pg, &certs, &mut |_, _| Ok(())),
                None => insert_many(tx, &certs),
            })
            .wait()
            .unwrap();
        let mut out_one = Vec::new();
        for c in batch() {
            out_one.push(one_by_one.write(move |tx| insert_prepared(tx, &c)).wait());
        }
        let outcomes = |v: Vec<Result<InsertOutcome>>| -> Vec<InsertOutcome> {
            v.into_iter().map(|o| o.unwrap()).collect()
        };
        let out_many = outcomes(out_many);
        assert_eq!(out_many, outcomes(out_one));
        use InsertOutcome::{Conflict, Created, Existing};
        assert_eq!(
            out_many,
            [
                Created,
                Created,
                Existing("A".into()),
                Conflict("B".into()),
                Existing("OLD1".into()),
                Conflict("OLD2".into()),
                Created,
                Created,
                Created,
            ]
        );
        assert_eq!(contents(&many), contents(&one_by_one));
        assert!(many.verify_audit_chain().unwrap().is_intact());
        // And the next batch follows on the chain and the sequences.
        let next = vec![cert("J", "r6", 1, "hj", 10)];
        many.write(move |tx| insert_many(tx, &next)).wait().unwrap();
        assert!(many.verify_audit_chain().unwrap().is_intact());
    }

    #[test]
    fn insert_many_with_runs_its_step_in_each_certificates_savepoint() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open_test(&tmp.path().join("d.db"), DbOptions::default()).unwrap();
        let batch: Vec<_> = ["A", "B", "C"]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut c = new_cert(id, "h", i as u64 + 1);
                c.recipient_ref = format!("r{i}");
                PreparedCertificate::new(c).unwrap()
            })
            .collect();
        // The step writes an audit record per certificate and fails for B:
        // B is not stored and neither is its record; A and C keep theirs.
        let out = db
            .write(move |tx| {
                insert_many_with(tx, &batch, |tx, i| {
                    let id = batch[i].certificate().id.clone();
                    audit::append_audit(tx, "t", "certificate.payment", &id, &json!({}))?;
                    if id == "B" {
                        return Err(StorageError::InvalidArgument("no".into()));
                    }
                    Ok(())
                })
            })
            .wait()
            .unwrap();
        assert_eq!(out[0].as_ref().unwrap(), &InsertOutcome::Created);
        assert!(out[1].is_err());
        assert_eq!(out[2].as_ref().unwrap(), &InsertOutcome::Created);
        assert!(db.read(|r| get(r, "B")).unwrap().is_none());
        assert_eq!(db.read(count).unwrap(), 2);
        let payments = db
            .audit_after(0, 100)
            .unwrap()
            .into_iter()
            .filter(|r| r.action == "certificate.payment")
            .map(|r| r.subject)
            .collect::<Vec<_>>();
        assert_eq!(payments, vec!["A".to_string(), "C".to_string()]);
        assert!(db.verify_audit_chain().unwrap().is_intact());
    }

    fn suspend(id: &'static str, until: i64) -> impl FnOnce(&Tx<'_>) -> Result<bool> {
        move |tx| {
            let detail = json!({ "id": id, "until_ms": until });
            write_status(
                tx,
                id,
                &StatusWrite {
                    status: CertStatus::Suspended,
                    suspended_until_ms: Some(until),
                    revoked_reason: None,
                    at_ms: 2_000,
                    actor: "t",
                    action: "certificate.suspended",
                    detail: &detail,
                    counts: &[],
                },
            )
        }
    }

    #[test]
    fn status_of_matches_the_record() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open_test(&tmp.path().join("d.db"), DbOptions::default()).unwrap();
        let c = new_cert("A", "h1", 42);
        db.write(move |tx| insert(tx, &c)).wait().unwrap();
        assert!(db.write(suspend("A", 5_000)).wait().unwrap());
        let row = db.read(|r| status_of(r, "A")).unwrap().unwrap();
        let rec = db.read(|r| get(r, "A")).unwrap().unwrap();
        assert_eq!(row.status_index, 42);
        assert_eq!(row.status, CertStatus::Suspended);
        assert_eq!(row.status, rec.status);
        assert_eq!(row.suspended_until_ms, Some(5_000));
        assert_eq!(row.suspended_until_ms, rec.suspended_until_ms);
        assert_eq!((rec.issued_at_ms, rec.updated_at_ms), (1_000, 2_000));
        assert!(db.read(|r| status_of(r, "B")).unwrap().is_none());
    }

    #[test]
    fn status_writes_are_audited_and_unknown_ids_write_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Database::open_test(&tmp.path().join("d.db"), DbOptions::default()).unwrap();
        let c = new_cert("A", "h1", 0);
        db.write(move |tx| insert(tx, &c)).wait().unwrap();
        let before = db.audit_after(0, 100).unwrap().len();
        assert!(!db.write(suspend("B", 5_000)).wait().unwrap());
        assert_eq!(db.audit_after(0, 100).unwrap().len(), before);
        assert!(db.write(suspend("A", 5_000)).wait().unwrap());
        let audit = db.audit_after(0, 100).unwrap();
        assert_eq!(audit.len(), before + 1);
        assert_eq!(audit[before].action, "certificate.suspended");
        let entries = db.read(|r| status_entries(r, 0, 10)).unwrap();
        assert_eq!(entries, vec![(0, CertStatus::Suspended, Some(5_000))]);
    }
}

/// A certificate that is not in force, for other formats' revocation lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawnRow {
    /// Certificate id.
    pub id: String,
    /// `Revoked` or `Suspended`.
    pub status: CertStatus,
    /// For a suspension: until when (ms); `None` until reinstated.
    pub suspended_until_ms: Option<i64>,
    /// When the status last changed (ms).
    pub updated_at_ms: i64,
}

/// Every certificate that is revoked (including superseded by a correction)
/// or suspended, in id order (partial index `certificates_withdrawn`).
pub fn withdrawn(r: &Reader<'_>) -> Result<Vec<WithdrawnRow>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT id, status, suspended_until, updated_at FROM certificates \
         WHERE status != 'valid' ORDER BY id",
    )?;
    let rows = stmt.query_map((), |row| {
        Ok((
            row.get::<String>(0)?,
            row.get::<String>(1)?,
            row.get::<Option<i64>>(2)?,
            row.get::<i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, status, suspended_until_ms, updated_at_ms) = row?;
        out.push(WithdrawnRow {
            id,
            status: CertStatus::parse(&status)?,
            suspended_until_ms,
            updated_at_ms,
        });
    }
    Ok(out)
}
