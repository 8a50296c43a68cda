//! API tokens made over the API: their digests, roles and scopes. What a
//! token may do is `divoc-api`'s; this module keeps the rows.

use crate::sql::{params, Optional, Row};

use crate::db::{Reader, Tx};
use crate::error::Result;

/// One stored token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Its id (public, for listing and revoking).
    pub id: String,
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
    /// A label for logs and audit records.
    pub name: String,
    /// The role's name.
    pub role: String,
    /// Facilities, contacts and rates, as JSON.
    pub scope: String,
    /// When it was made, ms since the Unix epoch.
    pub created_ms: i64,
    /// Who made it.
    pub created_by: String,
    /// When it stops working, if it does.
    pub expires_ms: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<i64>,
}

const COLUMNS: &str =
    "id, digest, name, role, scope, created_ms, created_by, expires_ms, revoked_ms";

fn row(r: &Row<'_>) -> crate::sql::SqlResult<TokenRow> {
    let digest: Vec<u8> = r.get(1)?;
    Ok(TokenRow {
        id: r.get(0)?,
        digest: <[u8; 32]>::try_from(digest.as_slice()).unwrap_or([0; 32]),
        name: r.get(2)?,
        role: r.get(3)?,
        scope: r.get(4)?,
        created_ms: r.get(5)?,
        created_by: r.get(6)?,
        expires_ms: r.get(7)?,
        revoked_ms: r.get(8)?,
    })
}

/// Stores a new token. `false` if its id or digest is taken (the caller
/// made them at random: try again).
pub fn insert(tx: &Tx<'_>, t: &TokenRow) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(&format!(
            "INSERT INTO api_tokens ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT DO NOTHING"
        ))?
        .execute(params![
            t.id,
            t.digest.as_slice(),
            t.name,
            t.role,
            t.scope,
            t.created_ms,
            t.created_by,
            t.expires_ms,
            t.revoked_ms
        ])?;
    Ok(n == 1)
}

/// The token with this digest, whatever its state.
pub fn by_digest(r: &Reader<'_>, digest: &[u8; 32]) -> Result<Option<TokenRow>> {
    Ok(r.conn()
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE digest = ?1"
        ))?
        .query_row(params![digest.as_slice()], row)
        .optional()?)
}

/// The token with this id.
pub fn get(r: &Reader<'_>, id: &str) -> Result<Option<TokenRow>> {
    Ok(r.conn()
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1"))?
        .query_row(params![id], row)
        .optional()?)
}

/// Up to `limit` tokens after the id `after`, in id order.
pub fn list(r: &Reader<'_>, after: Option<&str>, limit: usize) -> Result<Vec<TokenRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after.unwrap_or(""), limit], row)?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// Ids of the live (not revoked, not expired at `now_ms`) tokens scoped to
/// a facility, up to `limit`.
pub fn live_for_facility(
    r: &Reader<'_>,
    facility: &str,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<String>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = r.conn().prepare_cached(match r.conn().dialect() {
        crate::sql::Dialect::Sqlite => {
            "SELECT id FROM api_tokens
              WHERE revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?2)
                AND EXISTS (SELECT 1 FROM json_each(scope, '$.facilities') WHERE value = ?1)
              ORDER BY id LIMIT ?3"
        }
        crate::sql::Dialect::Postgres => {
            "SELECT id FROM api_tokens
              WHERE revoked_ms IS NULL AND (expires_ms IS NULL OR expires_ms > ?2)
                AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(
                                CASE jsonb_typeof(scope::jsonb -> 'facilities')
                                WHEN 'array' THEN scope::jsonb -> 'facilities' END) AS f(value)
                            WHERE value = ?1)
              ORDER BY id LIMIT ?3"
        }
    })?;
    let rows = stmt.query_map(params![facility, now_ms, limit], |row| row.get(0))?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// Marks a token revoked at `now_ms`; `false` if there is no such token
/// or it was revoked already.
pub fn revoke(tx: &Tx<'_>, id: &str, now_ms: i64) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
        )?
        .execute(params![id, now_ms])?;
    Ok(n == 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Database, DbOptions};

    fn token(id: &str, digest: u8) -> TokenRow {
        TokenRow {
            id: id.into(),
            digest: [digest; 32],
            name: format!("staff-{id}"),
            role: "facility".into(),
            scope: "{\"facilities\":[\"F1\"]}".into(),
            created_ms: 5,
            created_by: "admin".into(),
            expires_ms: Some(99),
            revoked_ms: None,
        }
    }

    #[test]
    fn tokens_are_found_by_digest_listed_and_revoked_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        assert!(db.write(|tx| insert(tx, &token("a", 1))).wait().unwrap());
        assert!(db.write(|tx| insert(tx, &token("b", 2))).wait().unwrap());
        // A taken digest or id is refused, not overwritten.
        assert!(!db.write(|tx| insert(tx, &token("c", 1))).wait().unwrap());
        assert!(!db.write(|tx| insert(tx, &token("a", 3))).wait().unwrap());
        let found = db.read(|r| by_digest(r, &[2; 32])).unwrap().unwrap();
        assert_eq!(found, token("b", 2));
        assert!(db.read(|r| by_digest(r, &[3; 32])).unwrap().is_none());
        let ids: Vec<String> = db
            .read(|r| list(r, None, 10))
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(db.read(|r| list(r, Some("a"), 10)).unwrap().len(), 1);
        let scoped = db.read(|r| live_for_facility(r, "F1", 10, 10)).unwrap();
        assert_eq!(scoped, ["a", "b"]);
        assert!(
            db.read(|r| live_for_facility(r, "F1", 100, 10))
                .unwrap()
                .is_empty(),
            "expired"
        );
        assert!(db
            .read(|r| live_for_facility(r, "F9", 10, 10))
            .unwrap()
            .is_empty());
        assert!(db.write(|tx| revoke(tx, "a", 50)).wait().unwrap());
        assert!(!db.write(|tx| revoke(tx, "a", 60)).wait().unwrap());
        assert_eq!(
            db.read(|r| get(r, "a")).unwrap().unwrap().revoked_ms,
            Some(50)
        );
    }
}
