//! A hash-chained, append-only audit log.
//!
//! Every record carries the hash of the record before it, so modifying or
//! removing a record breaks the chain at that point. The newest record's
//! sequence number and hash are also kept in the one-row `audit_head`
//! table, updated in the same transaction as each append; without it,
//! deleting the newest records would leave a shorter but valid chain.
//!
//! # Hash encoding (version 1)
//!
//! `hash = SHA-256(m)`, stored as 64 lowercase hex digits, where `m` is the
//! concatenation of:
//!
//! | field       | encoding                                                    |
//! |-------------|-------------------------------------------------------------|
//! | domain tag  | the 15 ASCII bytes `divoc-audit-v1` followed by `\n`        |
//! | `seq`       | 8 bytes, big-endian two's complement `i64` (first record 1) |
//! | `at`        | 8 bytes, big-endian `i64`, milliseconds since the Unix epoch|
//! | `actor`     | 8-byte big-endian `u64` byte length, then the UTF-8 bytes   |
//! | `action`    | same as `actor`                                             |
//! | `subject`   | same as `actor`                                             |
//! | `detail`    | same as `actor`, over the JSON text exactly as stored       |
//! | `prev_hash` | the 32 raw bytes of the previous record's hash (all zero for the first record) |
//!
//! Length prefixes make the encoding unambiguous (no two field lists give
//! the same bytes). `detail` is hashed as the stored text, not re-serialised,
//! so verification never depends on how a JSON library orders keys; the
//! text is written as compact `serde_json` output.
//!
//! # What this detects, and what it cannot
//!
//! [`verify_audit_chain`] finds a modified record, a deleted record (a gap
//! in `seq` or a broken link) and a truncated tail (the head checkpoint is
//! ahead of the last record). Someone who can write the file can still
//! rewrite the whole chain *and* the head consistently; catching that needs
//! the head hash anchored outside the database (e.g. signed and published),
//! which is the caller's job: see [`audit_head`].

use crate::sql::Optional;
use sha2::{Digest, Sha256};

use crate::db::{Database, PendingWrite, Reader, Tx};
use crate::error::{Result, StorageError};

/// Domain tag that starts every hashed message; bump the version with any
/// change to the encoding.
const DOMAIN: &[u8] = b"divoc-audit-v1\n";

/// The `prev_hash` of the first record.
const GENESIS: [u8; 32] = [0; 32];

/// One stored audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Position in the chain, starting at 1, without gaps.
    pub seq: i64,
    /// When the record was appended, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who did it (a user, a plugin, the host).
    pub actor: String,
    /// What was done, e.g. `"certificate.revoke"`.
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// Action-specific detail.
    pub detail: serde_json::Value,
    /// Hex hash of the previous record.
    pub prev_hash: String,
    /// Hex hash of this record.
    pub hash: String,
}

/// Why verification stopped trusting the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditFault {
    /// A sequence number is missing: a record was deleted (or inserted with
    /// a wrong number).
    Gap {
        /// The sequence number that should have come next.
        expected: i64,
        /// The one found instead.
        found: i64,
    },
    /// The record's `prev_hash` is not the previous record's hash: the
    /// previous record was replaced, or this link was edited.
    ChainBreak,
    /// The stored hash does not match the record's contents: the record was
    /// modified.
    HashMismatch,
    /// A stored hash is not 64 hex digits.
    MalformedHash,
    /// The head checkpoint names a later record than the last one present:
    /// the newest records were deleted.
    TruncatedTail {
        /// Sequence number in the head checkpoint.
        head_seq: i64,
        /// Last sequence number present.
        last_seq: i64,
    },
    /// Records exist beyond the head checkpoint: they were not appended
    /// through this crate.
    BeyondHead {
        /// Sequence number in the head checkpoint.
        head_seq: i64,
        /// Last sequence number present.
        last_seq: i64,
    },
    /// The head checkpoint's hash differs from the last record's hash.
    HeadMismatch,
    /// Records exist but the head checkpoint is missing.
    MissingHead,
}

impl std::fmt::Display for AuditFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditFault::Gap { expected, found } => {
                write!(
                    f,
                    "expected record {expected}, found {found}: records deleted"
                )
            }
            AuditFault::ChainBreak => write!(f, "prev_hash does not match the previous record"),
            AuditFault::HashMismatch => {
                write!(f, "hash does not match the record: record modified")
            }
            AuditFault::MalformedHash => write!(f, "stored hash is not 64 hex digits"),
            AuditFault::TruncatedTail { head_seq, last_seq } => write!(
                f,
                "head checkpoint is at {head_seq} but the log ends at {last_seq}: tail truncated"
            ),
            AuditFault::BeyondHead { head_seq, last_seq } => write!(
                f,
                "log runs to {last_seq} past the head checkpoint at {head_seq}"
            ),
            AuditFault::HeadMismatch => {
                write!(f, "head checkpoint hash differs from the last record")
            }
            AuditFault::MissingHead => {
                write!(f, "records exist but the head checkpoint is missing")
            }
        }
    }
}

/// Result of [`verify_audit_chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Number of records in the log.
    pub records: u64,
    /// The first problem found, with the sequence number it was found at;
    /// `None` if the whole chain and the head checkpoint verify.
    pub first_bad: Option<(i64, AuditFault)>,
}

impl AuditReport {
    /// Whether the log verified completely.
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Computes a record's hash per the encoding in the module docs.
pub fn audit_hash(
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail_json: &str,
    prev_hash: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    for field in [actor, action, subject, detail_json] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.update(prev_hash);
    h.finalize().into()
}

fn decode_hash(hex_str: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).ok()?;
    Some(out)
}

fn read_head(conn: crate::sql::Conn<'_>) -> Result<Option<(i64, String)>> {
    // Cached statements: an append runs once per audited change, inside the
    // writer's group transaction, where re-parsing SQL each time showed up.
    Ok(conn
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
        .query_row((), |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

/// Appends a record inside a write closure and returns its sequence number.
/// Use it in the same closure as the change being audited, so both commit
/// or neither does.
pub fn append_audit(
    tx: &Tx<'_>,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<i64> {
    let detail = serde_json::to_string(detail).map_err(|source| StorageError::Json {
        what: "audit detail",
        source,
    })?;
    append_audit_json(tx, actor, action, subject, &detail)
}

/// [`append_audit`] with the detail already serialized as a JSON object,
/// so that callers can serialize outside the writer thread. The detail is
/// stored and hashed exactly as given.
pub fn append_audit_json(
    tx: &Tx<'_>,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<i64> {
    let conn = tx.conn();
    // Many hosts on one PostgreSQL database append to one chain: each
    // host's writer takes a transaction-level advisory lock when it begins
    // a group (`db.rs`, `WRITE_LOCK`) and holds it until the group
    // commits, so the next host's group reads the head this one wrote
    // (docs/SCALE.md, § The audit chain). SQLite has one writer already.
    // The head, not MAX(seq), decides the next number: if the tail was
    // deleted, new records must not quietly reuse its numbers and paper
    // over the gap. It is read once per group and written once, before
    // the group commits ([`GroupHead`]).
    let (prev_seq, prev_hash) = group_head(tx)?;
    let seq = prev_seq + 1;
    let at = crate::now_ms();
    let hash = audit_hash(seq, at, actor, action, subject, detail, &prev_hash);
    let (prev_hex, hash_hex) = (hex::encode(prev_hash), hex::encode(hash));
    conn.prepare_cached(
        "INSERT INTO audit(seq, at, actor, action, subject, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(crate::sql::params![
        seq, at, actor, action, subject, detail, prev_hex, hash_hex
    ])?;
    tx.audit_head.borrow_mut().appended((seq, hash));
    Ok(seq)
}

/// The chain's head as the running closure sees it: read once per group.
fn group_head(tx: &Tx<'_>) -> Result<(i64, [u8; 32])> {
    if let Some(head) = tx.audit_head.borrow().current() {
        return Ok(head);
    }
    let head = match read_head(tx.conn())? {
        Some((seq, hash)) => match decode_hash(&hash) {
            Some(h) => (seq, h),
            None => {
                return Err(StorageError::InvalidArgument(format!(
                    "audit head hash {hash:?} is not 64 hex digits"
                )))
            }
        },
        None => (0, GENESIS),
    };
    tx.audit_head.borrow_mut().read(head);
    Ok(head)
}

/// One record for [`append_audit_json_many`].
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    /// Who.
    pub actor: &'a str,
    /// What, e.g. `certificate.issued`.
    pub action: &'a str,
    /// To what.
    pub subject: &'a str,
    /// The detail, a JSON object, stored and hashed exactly as given.
    pub detail: &'a str,
}

/// Appends `entries` in order, exactly as one [`append_audit_json`] each
/// would: the hashes are chained in memory, and on PostgreSQL the records
/// go in one statement (a batch of certificates is one round trip, not one
/// per certificate). If the statement fails, nothing was appended and the
/// head has not moved.
pub fn append_audit_json_many(tx: &Tx<'_>, entries: &[AuditEntry<'_>]) -> Result<()> {
    let Some(pg) = tx.conn().pg() else {
        for e in entries {
            append_audit_json(tx, e.actor, e.action, e.subject, e.detail)?;
        }
        return Ok(());
    };
    if entries.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev) = group_head(tx)?;
    let at = crate::now_ms();
    let n = entries.len();
    let (mut seqs, mut prevs, mut hashes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for e in entries {
        seq += 1;
        let hash = audit_hash(seq, at, e.actor, e.action, e.subject, e.detail, &prev);
        seqs.push(seq);
        prevs.push(hex::encode(prev));
        hashes.push(hex::encode(hash));
        prev = hash;
    }
    let actors: Vec<&str> = entries.iter().map(|e| e.actor).collect();
    let actions: Vec<&str> = entries.iter().map(|e| e.action).collect();
    let subjects: Vec<&str> = entries.iter().map(|e| e.subject).collect();
    let details: Vec<&str> = entries.iter().map(|e| e.detail).collect();
    pg.execute_pg(
        "INSERT INTO audit(seq, at, actor, action, subject, detail, prev_hash, hash)
         SELECT s, $2, a, ac, su, d, p, h
           FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[]) AS t(s, a, ac, su, d, p, h)",
        &[
            &seqs, &at, &actors, &actions, &subjects, &details, &prevs, &hashes,
        ],
    )?;
    tx.audit_head.borrow_mut().appended((seq, prev));
    Ok(())
}

/// The chain's head within one writer group: read from `audit_head` by the
/// group's first append, advanced in memory by every append, and written
/// back once before the group commits. On PostgreSQL that is one round
/// trip per audited change instead of three, and on both backends one
/// update of the head row per group instead of one per record. A closure
/// that fails takes its appends with its savepoint, and its advance of the
/// head with it.
#[derive(Debug, Default)]
pub(crate) struct GroupHead {
    /// The head after the group's successful closures (or as read).
    group: Option<(i64, [u8; 32])>,
    /// The head after the running closure's appends, if it appended.
    item: Option<(i64, [u8; 32])>,
    /// Whether the group appended, so the head row must be written.
    dirty: bool,
}

/// Where the running closure's appends stood, to go back to with
/// [`crate::Tx::rewind`] after rolling back to a savepoint of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuditMark(Option<(i64, [u8; 32])>);

impl GroupHead {
    fn current(&self) -> Option<(i64, [u8; 32])> {
        self.item.or(self.group)
    }

    fn read(&mut self, head: (i64, [u8; 32])) {
        self.group = Some(head);
    }

    fn appended(&mut self, head: (i64, [u8; 32])) {
        self.item = Some(head);
    }

    /// The running closure ended: its appends join the group's or are
    /// gone with its savepoint.
    pub(crate) fn item_done(&mut self, ok: bool) {
        if let Some(head) = self.item.take() {
            if ok {
                self.group = Some(head);
                self.dirty = true;
            }
        }
    }

    pub(crate) fn mark(&self) -> AuditMark {
        AuditMark(self.item)
    }

    pub(crate) fn rewind(&mut self, mark: AuditMark) {
        self.item = mark.0;
    }

    /// Writes the head row, if the group appended.
    pub(crate) fn flush(&self, conn: crate::sql::Conn<'_>) -> crate::sql::SqlResult<()> {
        let (Some((seq, hash)), true) = (self.group, self.dirty) else {
            return Ok(());
        };
        conn.prepare_cached(
            "INSERT INTO audit_head(id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )?
        .execute(crate::sql::params![seq, hex::encode(hash)])?;
        Ok(())
    }
}

/// The head checkpoint: sequence number and hex hash of the newest record,
/// or `None` for an empty log. Publishing or signing this value elsewhere
/// lets a later check detect even a consistent rewrite of the whole log.
pub fn audit_head(r: &Reader<'_>) -> Result<Option<(i64, String)>> {
    read_head(r.conn())
}

/// Up to `limit` records with `seq > after`, oldest first.
pub fn audit_after(r: &Reader<'_>, after: i64, limit: usize) -> Result<Vec<AuditRecord>> {
    let limit = crate::error::to_i64(limit as u64, "limit")?;
    let mut stmt = r.conn().prepare_cached(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash
           FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(crate::sql::params![after, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let detail: String = row.get(5)?;
        out.push(AuditRecord {
            seq: row.get(0)?,
            at_ms: row.get(1)?,
            actor: row.get(2)?,
            action: row.get(3)?,
            subject: row.get(4)?,
            detail: serde_json::from_str(&detail).map_err(|source| StorageError::Json {
                what: "audit.detail",
                source,
            })?,
            prev_hash: row.get(6)?,
            hash: row.get(7)?,
        });
    }
    Ok(out)
}

/// Walks the whole log in order, recomputing every hash, and compares the
/// end of the chain with the head checkpoint. Reads one consistent snapshot
/// (the caller's read transaction). Returns `Err` only if the database
/// cannot be read; tampering is reported in the [`AuditReport`].
pub fn verify_audit_chain(r: &Reader<'_>) -> Result<AuditReport> {
    let mut stmt = r.conn().prepare(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit ORDER BY seq",
    )?;
    let mut rows = stmt.query(())?;
    let mut records = 0u64;
    let mut first_bad: Option<(i64, AuditFault)> = None;
    let mut expected = 1i64;
    let mut prev = GENESIS;
    while let Some(row) = rows.next()? {
        records += 1;
        // Keep counting after a fault, but stop checking: everything after
        // the first bad link is untrusted anyway.
        if first_bad.is_some() {
            continue;
        }
        let seq: i64 = row.get(0)?;
        if seq != expected {
            first_bad = Some((
                expected,
                AuditFault::Gap {
                    expected,
                    found: seq,
                },
            ));
            continue;
        }
        let (prev_hex, hash_hex): (String, String) = (row.get(6)?, row.get(7)?);
        let (Some(stored_prev), Some(stored_hash)) =
            (decode_hash(&prev_hex), decode_hash(&hash_hex))
        else {
            first_bad = Some((seq, AuditFault::MalformedHash));
            continue;
        };
        if stored_prev != prev {
            first_bad = Some((seq, AuditFault::ChainBreak));
            continue;
        }
        let actor: String = row.get(2)?;
        let action: String = row.get(3)?;
        let subject: String = row.get(4)?;
        let detail: String = row.get(5)?;
        let computed = audit_hash(seq, row.get(1)?, &actor, &action, &subject, &detail, &prev);
        if computed != stored_hash {
            first_bad = Some((seq, AuditFault::HashMismatch));
            continue;
        }
        prev = computed;
        expected += 1;
    }
    if first_bad.is_none() {
        let last_seq = expected - 1;
        first_bad = match read_head(r.conn())? {
            None if last_seq == 0 => None,
            None => Some((1, AuditFault::MissingHead)),
            Some((head_seq, _)) if head_seq > last_seq => Some((
                last_seq + 1,
                AuditFault::TruncatedTail { head_seq, last_seq },
            )),
            Some((head_seq, _)) if head_seq < last_seq => {
                Some((head_seq + 1, AuditFault::BeyondHead { head_seq, last_seq }))
            }
            Some((_, head_hash)) if decode_hash(&head_hash) != Some(prev) => {
                Some((last_seq, AuditFault::HeadMismatch))
            }
            Some(_) => None,
        };
    }
    Ok(AuditReport { records, first_bad })
}

impl Database {
    /// Appends one audit record through the writer (see [`append_audit`]).
    /// To audit a change atomically, call [`append_audit`] inside the same
    /// [`Database::write`] closure instead.
    pub fn append_audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> PendingWrite<i64> {
        let (actor, action, subject) = (actor.to_string(), action.to_string(), subject.to_string());
        self.write(move |tx| append_audit(tx, &actor, &action, &subject, &detail))
    }

    /// Verifies the whole audit chain (see [`verify_audit_chain`]).
    pub fn verify_audit_chain(&self) -> Result<AuditReport> {
        self.read(verify_audit_chain)
    }

    /// Reads audit records after a sequence number (see [`audit_after`]).
    pub fn audit_after(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>> {
        self.read(|r| audit_after(r, after, limit))
    }

    /// The head checkpoint (see [`audit_head`]).
    pub fn audit_head(&self) -> Result<Option<(i64, String)>> {
        self.read(audit_head)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::DbOptions;

    /// A database with five audit records, and a raw connection to tamper
    /// with it. The append-only triggers are dropped first, as an attacker
    /// with write access to the file could.
    fn chain() -> (tempfile::TempDir, Database, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("audit.db"), DbOptions::default()).unwrap();
        for i in 1..=5 {
            let seq = db
                .append_audit(
                    "alice",
                    "cert.revoke",
                    &format!("cert-{i}"),
                    json!({ "why": i }),
                )
                .wait()
                .unwrap();
            assert_eq!(seq, i);
        }
        let raw = db.raw_connection_for_tests();
        raw.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
            .unwrap();
        (dir, db, raw)
    }

    #[test]
    fn two_hosts_appending_at_once_keep_one_intact_chain() {
        // Two handles on one database: on PostgreSQL, two hosts.
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = crate::db::two_handles_for_tests(&dir);
        let appended: Vec<i64> = std::thread::scope(|s| {
            let hosts: Vec<_> = [&a, &b]
                .into_iter()
                .enumerate()
                .map(|(h, db)| {
                    s.spawn(move || {
                        // Queued together, so each host commits them in groups.
                        let pending: Vec<_> = (0..60)
                            .map(|i| {
                                db.write(move |tx| {
                                    append_audit(
                                        tx,
                                        &format!("host{h}"),
                                        "x",
                                        &i.to_string(),
                                        &json!({}),
                                    )
                                })
                            })
                            .collect();
                        pending
                            .into_iter()
                            .map(|p| p.wait().unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hosts.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut seqs = appended.clone();
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=120).collect::<Vec<_>>(),
            "every append got its own number"
        );
        let report = a.verify_audit_chain().unwrap();
        assert_eq!(
            report,
            AuditReport {
                records: 120,
                first_bad: None
            }
        );
    }

    #[test]
    fn intact_chain_verifies() {
        let (_d, db, _raw) = chain();
        let report = db.verify_audit_chain().unwrap();
        assert_eq!(
            report,
            AuditReport {
                records: 5,
                first_bad: None
            }
        );
        let records = db.audit_after(0, 10).unwrap();
        assert_eq!(records[0].prev_hash, hex::encode(GENESIS));
        for pair in records.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
        }
        assert_eq!(db.audit_head().unwrap(), Some((5, records[4].hash.clone())));
        assert_eq!(records[2].detail, json!({ "why": 3 }));
    }

    #[test]
    fn empty_log_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("a.db"), DbOptions::default()).unwrap();
        assert!(db.verify_audit_chain().unwrap().is_intact());
    }

    #[test]
    fn hash_encoding_is_stable() {
        // Pins the documented encoding: changing it would orphan every
        // existing log, so it must be a deliberate, versioned change.
        let h = audit_hash(
            1,
            1_700_000_000_000,
            "alice",
            "cert.revoke",
            "c-1",
            "{}",
            &GENESIS,
        );
        let mut m = Vec::new();
        m.extend_from_slice(b"divoc-audit-v1\n");
        m.extend_from_slice(&1i64.to_be_bytes());
        m.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        for f in ["alice", "cert.revoke", "c-1", "{}"] {
            m.extend_from_slice(&(f.len() as u64).to_be_bytes());
            m.extend_from_slice(f.as_bytes());
        }
        m.extend_from_slice(&[0u8; 32]);
        let expected: [u8; 32] = Sha256::digest(&m).into();
        assert_eq!(h, expected);
        // Length prefixes keep field boundaries: moving a byte between
        // fields changes the hash.
        assert_ne!(
            h,
            audit_hash(
                1,
                1_700_000_000_000,
                "alic",
                "ecert.revoke",
                "c-1",
                "{}",
                &GENESIS
            )
        );
    }

    #[test]
    fn triggers_block_accidental_edits() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("a.db"), DbOptions::default()).unwrap();
        db.append_audit("a", "b", "c", json!(null)).wait().unwrap();
        let raw = db.raw_connection_for_tests();
        assert!(raw.execute("UPDATE audit SET actor = 'x'", []).is_err());
        assert!(raw.execute("DELETE FROM audit", []).is_err());
    }

    #[test]
    fn detects_modified_record() {
        let (_d, db, raw) = chain();
        raw.execute("UPDATE audit SET detail = '{\"why\":99}' WHERE seq = 3", [])
            .unwrap();
        let report = db.verify_audit_chain().unwrap();
        assert_eq!(report.records, 5);
        assert_eq!(report.first_bad, Some((3, AuditFault::HashMismatch)));
    }

    #[test]
    fn detects_modified_record_with_recomputed_hash() {
        let (_d, db, raw) = chain();
        // The forger fixes record 3's own hash; record 4's link then breaks.
        let r3 = &db.audit_after(2, 1).unwrap()[0];
        let forged = audit_hash(
            3,
            r3.at_ms,
            "mallory",
            &r3.action,
            &r3.subject,
            "{\"why\":3}",
            &decode_hash(&r3.prev_hash).unwrap(),
        );
        raw.execute(
            "UPDATE audit SET actor = 'mallory', hash = ?1 WHERE seq = 3",
            [hex::encode(forged)],
        )
        .unwrap();
        let report = db.verify_audit_chain().unwrap();
        assert_eq!(report.first_bad, Some((4, AuditFault::ChainBreak)));
    }

    #[test]
    fn detects_deleted_record() {
        let (_d, db, raw) = chain();
        raw.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
        let report = db.verify_audit_chain().unwrap();
        assert_eq!(report.records, 4);
        assert_eq!(
            report.first_bad,
            Some((
                2,
                AuditFault::Gap {
                    expected: 2,
                    found: 3
                }
            ))
        );
    }

    #[test]
    fn detects_deleted_and_renumbered_record() {
        let (_d, db, raw) = chain();
        // Close the gap by renumbering: the link from the old record 3 (now
        // 2) still points at the deleted record.
        raw.execute_batch(
            "DELETE FROM audit WHERE seq = 2;
             UPDATE audit SET seq = seq - 1 WHERE seq > 2;",
        )
        .unwrap();
        let report = db.verify_audit_chain().unwrap();
        assert_eq!(report.first_bad, Some((2, AuditFault::ChainBreak)));
    }

    #[test]
    fn detects_truncated_tail() {
        let (_d, db, raw) = chain();
        raw.execute("DELETE FROM audit WHERE seq >= 4", []).unwrap();
        let report = db.verify_audit_chain().unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(
            report.first_bad,
            Some((
                4,
                AuditFault::TruncatedTail {
                    head_seq: 5,
                    last_seq: 3
                }
            ))
        );
        // New appends continue after the head, so the hole stays visible.
        assert_eq!(db.append_audit("a", "b", "c", json!({})).wait().unwrap(), 6);
        assert!(matches!(
            db.verify_audit_chain().unwrap().first_bad,
            Some((
                4,
                AuditFault::Gap {
                    expected: 4,
                    found: 6
                }
            ))
        ));
    }

    #[test]
    fn detects_tampered_head() {
        let (_d, db, raw) = chain();
        raw.execute("UPDATE audit_head SET hash = ?1", [hex::encode([7u8; 32])])
            .unwrap();
        assert_eq!(
            db.verify_audit_chain().unwrap().first_bad,
            Some((5, AuditFault::HeadMismatch))
        );
        raw.execute("DELETE FROM audit_head", []).unwrap();
        assert_eq!(
            db.verify_audit_chain().unwrap().first_bad,
            Some((1, AuditFault::MissingHead))
        );
    }

    #[test]
    fn audit_rolls_back_with_its_change() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("a.db"), DbOptions::default()).unwrap();
        let r = db
            .write(|tx| {
                append_audit(tx, "a", "b", "c", &json!({}))?;
                Err::<(), _>(StorageError::Rejected("no".into()))
            })
            .wait();
        assert!(r.is_err());
        assert_eq!(db.audit_head().unwrap(), None);
        assert_eq!(db.append_audit("a", "b", "c", json!({})).wait().unwrap(), 1);
        assert!(db.verify_audit_chain().unwrap().is_intact());
    }

    #[test]
    fn failed_closures_inside_groups_leave_the_chain_and_its_head_right() {
        // The head is kept in memory through a group and written once: a
        // closure that fails after appending must take its advance with it.
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("a.db"), DbOptions::default()).unwrap();
        let pending: Vec<_> = (0..60)
            .map(|i| {
                db.write(move |tx| {
                    append_audit(tx, "a", "b", &i.to_string(), &json!({}))?;
                    append_audit(tx, "a", "b2", &i.to_string(), &json!({}))?;
                    if i % 3 == 1 {
                        return Err(StorageError::Rejected("no".into()));
                    }
                    Ok(())
                })
            })
            .collect();
        let ok = pending.into_iter().filter_map(|p| p.wait().ok()).count();
        assert_eq!(ok, 40);
        let records = db.audit_after(0, 1000).unwrap();
        assert_eq!(records.len(), 80);
        assert!(records
            .iter()
            .enumerate()
            .all(|(i, r)| r.seq == i as i64 + 1));
        assert!(records
            .iter()
            .all(|r| r.subject.parse::<i64>().unwrap() % 3 != 1));
        let last = records.last().unwrap();
        assert_eq!(db.audit_head().unwrap(), Some((80, last.hash.clone())));
        assert!(db.verify_audit_chain().unwrap().is_intact());
        assert_eq!(
            db.append_audit("a", "b", "c", json!({})).wait().unwrap(),
            81
        );
    }
}
