//! A batch of new certificates on PostgreSQL in one statement per table.
//!
//! One certificate one at a time is about seven statements (the dose
//! check, its row, its lookups, audit record, event and outbox row), and
//! on PostgreSQL each is a round trip that costs both processes far more
//! CPU than the row itself. Here a batch is one round trip per table,
//! whatever its size: every column travels as an array and `unnest` turns
//! the arrays back into rows (one statement text, prepared once).
//!
//! The outcome of every certificate is the one [`super::insert_prepared`]
//! in order would give, an earlier certificate of the batch counting as
//! stored. Anything unusual — a row another host stored first, a constraint
//! failing, `created` failing — is an error, and the caller redoes the batch
//! one certificate at a time, where each such case has its own answer.

use std::borrow::Borrow;
use std::collections::HashMap;

use super::{
    digest_from_db, digest_to_db, InsertOutcome, PreparedCertificate, DISTRIBUTE, UNROUTED,
};
use crate::audit::{self, AuditEntry};
use crate::db::Tx;
use crate::error::{to_i64, Result, StorageError};
use crate::outbox::{self, NewItem};
use crate::sql::{PgConn, SqlError};

/// A dose: program, recipient, dose number.
type Dose<'a> = (&'a str, &'a str, i64);

/// What is stored for a dose: `(id, payload hash, version)`.
type Versions = Vec<(String, String, i64)>;

pub(super) fn insert<P: Borrow<PreparedCertificate>>(
    tx: &Tx<'_>,
    pg: &PgConn,
    certs: &[P],
    created: &mut impl FnMut(&Tx<'_>, usize) -> Result<()>,
) -> Result<Vec<Result<InsertOutcome>>> {
    let certs: Vec<&PreparedCertificate> = certs.iter().map(Borrow::borrow).collect();
    let doses: Vec<Dose<'_>> = certs.iter().map(|p| dose(p)).collect();
    let mut stored = stored_versions(pg, &doses)?;

    // Decide in order; what the batch creates counts for what follows.
    let mut outcomes = Vec::with_capacity(certs.len());
    let mut fresh = Vec::new();
    for (i, p) in certs.iter().enumerate() {
        let c = &p.cert;
        let key = doses[i];
        if let Some(versions) = stored.get(&key) {
            // As `precheck`: the newest version with this payload is the
            // certificate, else the newest version conflicts.
            let same = versions.iter().find(|(_, h, _)| *h == c.payload_hash);
            if let Some((id, _, _)) = same.or(versions.first()) {
                outcomes.push(if same.is_some() {
                    InsertOutcome::Existing(id.clone())
                } else {
                    InsertOutcome::Conflict(id.clone())
                });
                continue;
            }
        }
        stored.insert(key, vec![(c.id.clone(), c.payload_hash.clone(), 1)]);
        outcomes.push(InsertOutcome::Created);
        fresh.push(i);
    }
    let fresh: Vec<&PreparedCertificate> = fresh.iter().map(|&i| certs[i]).collect();
    if !fresh.is_empty() {
        insert_rows(tx, pg, &fresh)?;
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        if *outcome == InsertOutcome::Created {
            created(tx, i)?;
        }
    }
    // Counted last, when nothing can fail any more: a failed batch is
    // redone one at a time and must not have counted.
    for p in &fresh {
        for (dimension, key) in &p.cert.counts {
            crate::stats::add(tx, crate::stats::CERTIFICATES_ISSUED, dimension, key, 1);
        }
    }
    Ok(outcomes.into_iter().map(Ok).collect())
}

fn dose(p: &PreparedCertificate) -> Dose<'_> {
    let c = &p.cert;
    (&c.program, &c.recipient_ref, i64::from(c.dose))
}

/// What is stored for each of `doses`, in one query.
pub(super) fn stored_versions<'a>(
    pg: &PgConn,
    doses: &[Dose<'a>],
) -> Result<HashMap<Dose<'a>, Versions>> {
    let programs: Vec<&str> = doses.iter().map(|d| d.0).collect();
    let recipients: Vec<&str> = doses.iter().map(|d| d.1).collect();
    let numbers: Vec<i64> = doses.iter().map(|d| d.2).collect();
    // Every dose is one probe of the (recipient_ref, program, dose,
    // version) unique index.
    let rows = pg.query_pg(
        "SELECT c.recipient_ref, c.program, c.dose, c.id, c.payload_hash, c.version
           FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::bigint[]))
                AS k(program, recipient_ref, dose)
           JOIN certificates c
             ON c.recipient_ref = k.recipient_ref AND c.program = k.program
            AND c.dose = k.dose",
        &[&programs, &recipients, &numbers],
    )?;
    // Keyed by the batch's own strings, so the map borrows nothing new.
    let by_text: HashMap<(&str, &str, i64), Dose<'a>> =
        doses.iter().map(|d| ((d.0, d.1, d.2), *d)).collect();
    let mut out: HashMap<Dose<'a>, Versions> = HashMap::new();
    for row in &rows {
        let recipient: &str = row.try_get(0).map_err(SqlError::from)?;
        let program: &str = row.try_get(1).map_err(SqlError::from)?;
        let number: i64 = row.try_get(2).map_err(SqlError::from)?;
        let Some(key) = by_text.get(&(program, recipient, number)) else {
            continue;
        };
        out.entry(*key).or_default().push((
            row.try_get(3).map_err(SqlError::from)?,
            digest_from_db(row.try_get(4).map_err(SqlError::from)?),
            row.try_get(5).map_err(SqlError::from)?,
        ));
    }
    for versions in out.values_mut() {
        versions.sort_unstable_by_key(|v| std::cmp::Reverse(v.2));
    }
    Ok(out)
}

/// The rows of new certificates, as [`super::insert_row_texts`] writes
/// one (version 1), table by table.
fn insert_rows(tx: &Tx<'_>, pg: &PgConn, fresh: &[&PreparedCertificate]) -> Result<()> {
    let n = fresh.len();
    let mut c_ids = Vec::with_capacity(n);
    let mut programs = Vec::with_capacity(n);
    let mut recipients = Vec::with_capacity(n);
    let mut doses = Vec::with_capacity(n);
    let mut indexes = Vec::with_capacity(n);
    let mut issued = Vec::with_capacity(n);
    let mut facilities = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    let mut credentials = Vec::with_capacity(n);
    for p in fresh {
        let c = &p.cert;
        c_ids.push(c.id.as_str());
        programs.push(c.program.as_str());
        recipients.push(c.recipient_ref.as_str());
        doses.push(i64::from(c.dose));
        indexes.push(to_i64(c.status_index, "status_index")?);
        issued.push(c.issued_at_ms);
        facilities.push(c.facility_id.as_deref());
        hashes.push(digest_to_db(&c.payload_hash));
        credentials.push(p.texts.stored.as_slice());
    }
    let inserted = pg.query_pg(
        "INSERT INTO certificates (id, program, recipient_ref, dose, version, previous_id,
            status_index, issued_at, updated_at, facility_id, payload_hash, credential)
         SELECT i, pr, r, d, 1, NULL, s, a, a, f, h, c
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                       $6::bigint[], $7::text[], $8::bytea[], $9::bytea[])
                AS t(i, pr, r, d, s, a, f, h, c)
         ON CONFLICT (recipient_ref, program, dose, version) DO NOTHING
         RETURNING id",
        &[
            &c_ids,
            &programs,
            &recipients,
            &doses,
            &indexes,
            &issued,
            &facilities,
            &hashes,
            &credentials,
        ],
    )?;
    if inserted.len() != n {
        // Another host stored one of these doses since the check (under
        // the writers' lock this does not happen; if it does, the
        // certificate-at-a-time path gives each its own outcome).
        return Err(StorageError::Rejected(format!(
            "{} of {n} doses were stored by another host first",
            n - inserted.len()
        )));
    }

    let mut lookup_hashes = Vec::new();
    let mut lookup_ids = Vec::new();
    for p in fresh {
        for h in &p.cert.lookup_hashes {
            lookup_hashes.push(digest_to_db(h));
            lookup_ids.push(p.cert.id.as_str());
        }
    }
    if !lookup_ids.is_empty() {
        pg.execute_pg(
            "INSERT INTO certificate_lookup (lookup_hash, certificate_id)
             SELECT * FROM unnest($1::bytea[], $2::text[])
             ON CONFLICT DO NOTHING",
            &[&lookup_hashes, &lookup_ids],
        )?;
    }

    const ISSUED: &str = "certificate.issued";
    let entries: Vec<AuditEntry<'_>> = fresh
        .iter()
        .map(|p| AuditEntry {
            actor: &p.cert.actor,
            action: ISSUED,
            subject: &p.cert.id,
            detail: &p.texts.summary,
        })
        .collect();
    audit::append_audit_json_many(tx, &entries)?;
    let events: Vec<(&str, &str, &str)> = fresh
        .iter()
        .map(|p| (ISSUED, p.cert.id.as_str(), p.texts.summary.as_str()))
        .collect();
    crate::events::append_events_json(tx, &events)?;
    let mut deliveries = Vec::with_capacity(n);
    for p in fresh {
        let c = &p.cert;
        let item = |target| NewItem {
            kind: DISTRIBUTE,
            target,
            payload: &p.texts.delivery,
            not_before_ms: c.issued_at_ms,
        };
        if c.channels.is_empty() {
            deliveries.push(item(UNROUTED));
        }
        deliveries.extend(c.channels.iter().map(|ch| item(ch)));
    }
    outbox::enqueue_json_many(tx, &deliveries)
}
