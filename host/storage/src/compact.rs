//! Migration 0016: certificates into their compact tables, resumably.
//!
//! A database with millions of certificates takes minutes to convert, too
//! long for one transaction that a restart would throw away. So the copy
//! runs a chunk of rows per transaction, each recording in
//! `migration_progress` how far it got; a crash or kill loses at most the
//! chunk in flight, and the next start continues after the last committed
//! one. The old tables stay untouched (and the schema version at 15) until
//! the last transaction swaps the tables and bumps the version together.
//!
//! Credentials are re-encoded in Rust ([`credential_codec`]), so the copy
//! goes through this process, not a single `INSERT … SELECT`.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::certificates::digest_to_db;
use crate::credential_codec;

/// Rows copied per transaction: big enough that the commit's fsync is
/// noise, small enough that a chunk is well under a second.
const CHUNK: usize = 5_000;

const PREPARE: &str = include_str!("../migrations/0016_compact_prepare.sql");
const FINISH: &str = include_str!("../migrations/0016_compact_finish.sql");

/// Runs migration 0016 to version `version`; `finish` is the runner's
/// commit (foreign key check and version bump) of the last transaction.
pub(crate) fn run(
    conn: &mut Connection,
    finish: impl FnOnce(rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    run_chunks(conn, CHUNK, usize::MAX)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(FINISH)?;
    finish(tx)
}

/// Prepares and copies at most `limit` chunks of `chunk` rows; whether the
/// copy is complete. (Tests stop it part way to prove a resumed copy is
/// whole.)
pub(crate) fn run_chunks(
    conn: &mut Connection,
    chunk: usize,
    limit: usize,
) -> rusqlite::Result<bool> {
    conn.execute_batch(PREPARE)?;
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM certificates", (), |r| r.get(0))?;
    let mut chunks = 0;
    loop {
        if chunks == limit {
            return Ok(false);
        }
        chunks += 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let copied = copy_certificates(&tx, chunk)? + copy_lookups(&tx, chunk)?;
        tx.commit()?;
        if copied == 0 {
            return Ok(true);
        }
        if chunks % 20 == 0 {
            let done: i64 =
                conn.query_row("SELECT COUNT(*) FROM certificates_compact", (), |r| {
                    r.get(0)
                })?;
            tracing::info!(done, total, "migration 0016: compacting certificates");
        }
    }
}

fn progress(tx: &rusqlite::Transaction<'_>, step: &str) -> rusqlite::Result<Option<String>> {
    tx.query_row(
        "SELECT after FROM migration_progress WHERE step = ?1",
        [step],
        |r| r.get(0),
    )
    .optional()
}

fn set_progress(tx: &rusqlite::Transaction<'_>, step: &str, after: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO migration_progress (step, after) VALUES (?1, ?2)
         ON CONFLICT (step) DO UPDATE SET after = excluded.after",
        params![step, after],
    )?;
    Ok(())
}

fn codec_failure(e: crate::StorageError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// The next chunk of certificates, in rowid order (rowids are kept, so the
/// new table's order is the old one's).
fn copy_certificates(tx: &rusqlite::Transaction<'_>, chunk: usize) -> rusqlite::Result<usize> {
    let after: i64 = progress(tx, "certificates")?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut read = tx.prepare_cached(
        "SELECT rowid, id, program, recipient_ref, dose, version, previous_id, status,
                suspended_until, revoked_reason, status_index, issued_at, updated_at,
                facility_id, payload_hash, credential
           FROM certificates WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let mut write = tx.prepare_cached(
        "INSERT INTO certificates_compact (rowid, id, program, recipient_ref, dose, version,
                previous_id, status, suspended_until, revoked_reason, status_index, issued_at,
                updated_at, facility_id, payload_hash, credential)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    let mut rows = read.query(params![after, chunk as i64])?;
    let (mut n, mut last) = (0, after);
    while let Some(r) = rows.next()? {
        let rowid: i64 = r.get(0)?;
        let hash: String = r.get(14)?;
        let credential: String = r.get(15)?;
        let stored = credential_codec::encode(&credential).map_err(codec_failure)?;
        write.execute(params![
            rowid,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, Option<i64>>(8)?,
            r.get::<_, Option<String>>(9)?,
            r.get::<_, i64>(10)?,
            r.get::<_, i64>(11)?,
            r.get::<_, i64>(12)?,
            r.get::<_, Option<String>>(13)?,
            digest_to_db(&hash),
            stored,
        ])?;
        (n, last) = (n + 1, rowid);
    }
    if n > 0 {
        set_progress(tx, "certificates", &last.to_string())?;
    }
    Ok(n)
}

/// The next chunk of lookup rows, in the old table's key order; progress
/// is the last key copied, as `hash\tcertificate id`.
fn copy_lookups(tx: &rusqlite::Transaction<'_>, chunk: usize) -> rusqlite::Result<usize> {
    let after = progress(tx, "certificate_lookup")?;
    let (hash, id) = match after.as_deref().and_then(|s| s.split_once('\t')) {
        Some((h, i)) => (h.to_owned(), i.to_owned()),
        // Sorts before every key: NULL compares as false, so start with
        // the empty string, which no stored text sorts below.
        None => (String::new(), String::new()),
    };
    let mut read = tx.prepare_cached(
        "SELECT lookup_hash, certificate_id FROM certificate_lookup
          WHERE (lookup_hash, certificate_id) > (?1, ?2)
          ORDER BY lookup_hash, certificate_id LIMIT ?3",
    )?;
    let mut write = tx.prepare_cached(
        "INSERT OR IGNORE INTO certificate_lookup_compact (lookup_hash, certificate_id)
         VALUES (?1, ?2)",
    )?;
    let mut rows = read.query(params![hash, id, chunk as i64])?;
    let mut n = 0;
    let mut last = None;
    while let Some(r) = rows.next()? {
        let (h, i): (String, String) = (r.get(0)?, r.get(1)?);
        write.execute(params![digest_to_db(&h), i])?;
        n += 1;
        last = Some((h, i));
    }
    if let Some((h, i)) = last {
        set_progress(tx, "certificate_lookup", &format!("{h}\t{i}"))?;
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::certificates;
    use crate::{Database, DbOptions};

    /// Every certificate row as the old schema held it, by id: the stored
    /// text of the credential and the other columns.
    type OldRows = BTreeMap<String, (String, String, String, Option<String>, i64)>;

    fn old_rows(conn: &Connection) -> OldRows {
        conn.prepare(
            "SELECT id, credential, payload_hash, status, previous_id, status_index
               FROM certificates",
        )
        .unwrap()
        .query_map((), |r| {
            Ok((
                r.get(0)?,
                (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    fn old_lookups(conn: &Connection) -> Vec<(String, String)> {
        conn.prepare("SELECT lookup_hash, certificate_id FROM certificate_lookup ORDER BY 1, 2")
            .unwrap()
            .query_map((), |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// The new tables hold exactly the old rows: credentials byte for byte
    /// (so their proofs verify as before), digests, statuses, lookups.
    fn assert_same(conn: &Connection, old: &OldRows, lookups: &[(String, String)]) {
        let r = crate::db::Reader {
            conn: crate::sql::Conn::Lite(conn),
        };
        for (id, (text, hash, status, previous, index)) in old {
            let stored: Vec<u8> = conn
                .query_row(
                    "SELECT credential FROM certificates WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(&credential_codec::decode(&stored).unwrap(), text, "{id}");
            let record = certificates::get(&r, id).unwrap().unwrap();
            assert_eq!(&record.payload_hash, hash);
            assert_eq!(record.status.as_str(), status);
            assert_eq!(&record.previous_id, previous);
            assert_eq!(record.status_index, *index as u64);
            assert_eq!(
                record.credential,
                serde_json::from_str::<serde_json::Value>(text).unwrap()
            );
        }
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM certificates", (), |r| r.get(0))
            .unwrap();
        assert_eq!(n as usize, old.len());
        for (hash, id) in lookups {
            let found = certificates::by_lookup(&r, hash).unwrap();
            assert!(found.iter().any(|c| &c.id == id), "{hash} → {id}");
        }
        let m: i64 = conn
            .query_row("SELECT COUNT(*) FROM certificate_lookup", (), |r| r.get(0))
            .unwrap();
        assert_eq!(m as usize, lookups.len());
        let leftovers: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name LIKE '%compact%'
                    OR name = 'migration_progress'",
                (),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leftovers, 0);
    }

    /// A database written by the release before this migration (schema
    /// 15: six certificates, one revoked, one suspended, one corrected, with
    /// their audit records) opens, converts, and its audit chain verifies.
    #[test]
    fn a_schema_15_database_converts_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("divoc.sqlite");
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases/schema-v15.sqlite"),
            &path,
        )
        .unwrap();
        let (old, lookups) = {
            let conn = Connection::open(&path).unwrap();
            let v: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, 15);
            (old_rows(&conn), old_lookups(&conn))
        };
        assert_eq!(old.len(), 7);
        let db = Database::open(&path, DbOptions::default()).unwrap();
        let report = db.verify_audit_chain().unwrap();
        assert_eq!(report.first_bad, None);
        assert_eq!(report.records, 10);
        drop(db);
        let conn = Connection::open(&path).unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, crate::migrate::latest_version());
        assert_same(&conn, &old, &lookups);
        // The partial index of withdrawn certificates is back and used.
        let withdrawn: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM certificates WHERE status != 'valid'",
                (),
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(withdrawn, 3);
    }

    /// A conversion stopped after its first chunk (a crash between chunks)
    /// leaves the old schema in charge; the next open finishes it, and
    /// nothing is lost or copied twice.
    #[test]
    fn an_interrupted_conversion_resumes() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        crate::migrate::run_to(&mut conn, 15).unwrap();
        let sample = include_str!("../tests/cases/credential-sample.json").trim_end();
        for i in 0..25 {
            let text = sample.replace("Sooraj", &format!("Sooraj{i}"));
            let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
            let previous = (i % 5 == 4).then(|| format!("C{:02}", i - 1));
            conn.execute(
                "INSERT INTO certificates (id, program, recipient_ref, dose, version,
                     previous_id, status, status_index, issued_at, updated_at, payload_hash,
                     credential)
                 VALUES (?1, 'p', ?2, 1, ?3, ?4, ?5, ?6, 1, 1, ?7, ?8)",
                params![
                    format!("C{i:02}"),
                    format!("R{}", if i % 5 == 4 { i - 1 } else { i }),
                    1 + i64::from(i % 5 == 4),
                    previous,
                    if i % 3 == 0 { "revoked" } else { "valid" },
                    i * 7,
                    // One row with a digest the certificate module would
                    // never write: kept as text.
                    if i == 3 { "not-hex".to_owned() } else { hash },
                    text,
                ],
            )
            .unwrap();
            for k in 0..2 {
                let h = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    format!("{i}/{k}").as_bytes(),
                ));
                conn.execute(
                    "INSERT INTO certificate_lookup VALUES (?1, ?2)",
                    params![h, format!("C{i:02}")],
                )
                .unwrap();
            }
        }
        let (old, lookups) = (old_rows(&conn), old_lookups(&conn));
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        assert!(!run_chunks(&mut conn, 10, 1).unwrap());
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 15, "the old schema stays in charge");
        let copied: i64 = conn
            .query_row("SELECT COUNT(*) FROM certificates_compact", (), |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(copied, 10);
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        crate::migrate::run(&mut conn).unwrap();
        assert_same(&conn, &old, &lookups);
    }
}
