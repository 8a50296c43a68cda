//! One-time sign-in codes, kept as keyed hashes only. What a code is for
//! and how it is sent are `host/rollout`'s.

use crate::sql::{params, Optional};

use crate::db::Tx;
use crate::error::Result;

/// How a code check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Right: the code is used up.
    Right,
    /// Wrong; this many tries are left.
    Wrong {
        /// Tries left.
        left: i64,
    },
    /// Wrong, and that was the last try: the code is gone.
    Spent,
    /// No code, or it expired (and is gone).
    Missing,
}

/// Keeps a new code for `contact`, replacing an earlier one, unless one was
/// sent less than `cooldown_ms` ago (`false`, nothing changed).
pub fn put(
    tx: &Tx<'_>,
    contact: &str,
    code: &str,
    now_ms: i64,
    ttl_ms: i64,
    cooldown_ms: i64,
) -> Result<bool> {
    let changed = tx
        .conn()
        .prepare_cached(
            "INSERT INTO otp_codes (contact, code, expires_ms, attempts, sent_ms)
             VALUES (?1, ?2, ?3, 0, ?4)
             ON CONFLICT (contact) DO UPDATE
                SET code = excluded.code, expires_ms = excluded.expires_ms, attempts = 0,
                    sent_ms = excluded.sent_ms
              WHERE otp_codes.sent_ms <= ?5",
        )?
        .execute(params![
            contact,
            code,
            now_ms + ttl_ms,
            now_ms,
            now_ms - cooldown_ms
        ])?;
    Ok(changed == 1)
}

/// Checks `code` for `contact`: a right code is used up; a wrong one
/// counts, and the `max_attempts`-th wrong one removes the code.
pub fn check(
    tx: &Tx<'_>,
    contact: &str,
    code: &str,
    now_ms: i64,
    max_attempts: i64,
) -> Result<Check> {
    let conn = tx.conn();
    let found: Option<(String, i64, i64)> = conn
        .prepare_cached("SELECT code, expires_ms, attempts FROM otp_codes WHERE contact = ?1")?
        .query_row(params![contact], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let delete = || -> Result<()> {
        conn.prepare_cached("DELETE FROM otp_codes WHERE contact = ?1")?
            .execute(params![contact])?;
        Ok(())
    };
    let Some((kept, expires_ms, attempts)) = found else {
        return Ok(Check::Missing);
    };
    // An expired or spent code stays (as nothing that can match) until the
    // next is sent: its send time keeps the wait between codes, so wrong
    // tries cannot be turned into fresh codes at once.
    if expires_ms <= now_ms || kept.is_empty() {
        return Ok(Check::Missing);
    }
    // Both are hashes of equal length: comparing them leaks nothing of
    // the code.
    if kept == code {
        delete()?;
        return Ok(Check::Right);
    }
    let attempts = attempts + 1;
    if attempts >= max_attempts {
        conn.prepare_cached("UPDATE otp_codes SET code = '', attempts = ?2 WHERE contact = ?1")?
            .execute(params![contact, attempts])?;
        return Ok(Check::Spent);
    }
    conn.prepare_cached("UPDATE otp_codes SET attempts = ?2 WHERE contact = ?1")?
        .execute(params![contact, attempts])?;
    Ok(Check::Wrong {
        left: max_attempts - attempts,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Database, DbOptions};

    #[test]
    fn a_code_is_used_once_expires_and_allows_few_tries() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let put = |code: &'static str, now| {
            db.write(move |tx| put(tx, "c", code, now, 300_000, 30_000))
                .wait()
                .unwrap()
        };
        let check = |code: &'static str, now| {
            db.write(move |tx| check(tx, "c", code, now, 3))
                .wait()
                .unwrap()
        };
        assert!(put("h1", 0));
        assert!(!put("h2", 10_000), "too soon for another");
        assert_eq!(check("bad", 1), Check::Wrong { left: 2 });
        assert_eq!(check("h1", 2), Check::Right);
        assert_eq!(check("h1", 3), Check::Missing, "used up");
        assert!(put("h3", 40_000));
        assert_eq!(check("h3", 400_000), Check::Missing, "expired");
        assert!(put("h4", 500_000));
        assert_eq!(check("x", 500_001), Check::Wrong { left: 2 });
        assert_eq!(check("x", 500_002), Check::Wrong { left: 1 });
        assert_eq!(check("x", 500_003), Check::Spent);
        assert_eq!(
            check("h4", 500_004),
            Check::Missing,
            "gone after the last try"
        );
        assert!(!put("h5", 510_000), "spent: still the wait for a new one");
        assert!(put("h5", 530_000));
    }
}
