//! The issuer's keys as hosts sharing one database keep them: public facts
//! and, for active keys, the private half sealed by the host
//! (`divoc_crypto::keys::shared`; this module never sees a key in clear).
//! A change is announced on [`KEYS_CHANNEL`] when it commits, and every
//! host loads the keys again.

use crate::db::{notify, Reader, Tx};
use crate::error::Result;
use crate::sql::{params, Row};

/// The `LISTEN`/`NOTIFY` channel of key changes.
pub const KEYS_CHANNEL: &str = "divoc_keys";

/// One stored key.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerKeyRow {
    /// `<did>#<multikey>`.
    pub key_id: String,
    /// The purpose it serves.
    pub purpose: String,
    /// Multikey form of the public key.
    pub public_key: String,
    /// Signs (else verifies only).
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once retired.
    pub retired_at: Option<String>,
    /// The sealed private half, while active.
    pub sealed: Option<Vec<u8>>,
}

impl std::fmt::Debug for IssuerKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeyRow")
            .field("key_id", &self.key_id)
            .field("purpose", &self.purpose)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "key_id, purpose, public_key, active, created_at, retired_at, sealed";

fn row(r: &Row<'_>) -> crate::sql::SqlResult<IssuerKeyRow> {
    Ok(IssuerKeyRow {
        key_id: r.get(0)?,
        purpose: r.get(1)?,
        public_key: r.get(2)?,
        active: r.get::<i64>(3)? == 1,
        created_at: r.get(4)?,
        retired_at: r.get(5)?,
        sealed: r.get(6)?,
    })
}

/// Every stored key, in the order they were stored (times are to the
/// second, and two rotations can fall in one).
pub fn all(r: &Reader<'_>) -> Result<Vec<IssuerKeyRow>> {
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM issuer_keys ORDER BY seq, key_id"
    ))?;
    let mut rows = stmt.query(())?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(row(&r)?);
    }
    Ok(out)
}

fn insert(tx: &Tx<'_>, k: &IssuerKeyRow) -> Result<usize> {
    Ok(tx
        .conn()
        .prepare_cached(&format!(
            "INSERT INTO issuer_keys ({COLUMNS}, seq)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, COALESCE(MAX(seq), 0) + 1 FROM issuer_keys WHERE true
             ON CONFLICT DO NOTHING"
        ))?
        .execute(params![
            k.key_id,
            k.purpose,
            k.public_key,
            i64::from(k.active),
            k.created_at,
            k.retired_at,
            k.sealed
        ])?)
}

/// Puts the first host's keys into an empty table; `false` (and nothing
/// written) if another host's keys are there already: those are the keys.
pub fn seed(tx: &Tx<'_>, keys: &[IssuerKeyRow]) -> Result<bool> {
    let present: i64 = tx
        .conn()
        .prepare_cached("SELECT COUNT(*) FROM issuer_keys")?
        .query_row((), |r| r.get(0))?;
    if present > 0 {
        return Ok(false);
    }
    for k in keys {
        if insert(tx, k)? == 0 {
            // Another host seeded in between (its transaction committed
            // first): give the table to it.
            return Err(crate::StorageError::Rejected(
                "issuer keys were stored by another host at the same time".into(),
            ));
        }
    }
    notify(tx, KEYS_CHANNEL, "seeded")?;
    Ok(true)
}

/// Makes `new` the active key of its purpose if `retiring` still is:
/// `retiring` keeps its row (it verifies) and loses its sealed half.
/// `false`, with nothing written, if another host rotated first.
pub fn rotate(tx: &Tx<'_>, retiring: &str, new: &IssuerKeyRow) -> Result<bool> {
    let retired = tx
        .conn()
        .prepare_cached(
            "UPDATE issuer_keys SET active = 0, retired_at = ?2, sealed = NULL
             WHERE key_id = ?1 AND active = 1 AND purpose = ?3",
        )?
        .execute(params![retiring, new.created_at, new.purpose])?;
    if retired == 0 {
        return Ok(false);
    }
    if insert(tx, new)? == 0 {
        return Err(crate::StorageError::Rejected(format!(
            "key {} is stored already",
            new.key_id
        )));
    }
    notify(tx, KEYS_CHANNEL, &new.key_id)?;
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(id: &str, purpose: &str, active: bool) -> IssuerKeyRow {
        IssuerKeyRow {
            key_id: id.into(),
            purpose: purpose.into(),
            public_key: format!("z{id}"),
            active,
            created_at: format!("2026-12-07T00:00:0{}Z", id.len()),
            retired_at: None,
            sealed: active.then(|| vec![7; 60]),
        }
    }

    #[test]
    fn the_first_host_seeds_and_one_rotation_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = crate::db::two_handles_for_tests(&dir);
        let first = vec![key("k1", "certificate", true)];
        assert!(a.write(move |tx| seed(tx, &first)).wait().unwrap());
        // The second host finds the first one's keys.
        let other = vec![key("k9", "certificate", true)];
        assert!(!b.write(move |tx| seed(tx, &other)).wait().unwrap());
        assert_eq!(b.read(all).unwrap(), vec![key("k1", "certificate", true)]);

        // Two hosts rotate the same key: one wins, the other finds it gone.
        let (a_new, b_new) = (
            key("k22", "certificate", true),
            key("k333", "certificate", true),
        );
        let n = a_new.clone();
        assert!(a.write(move |tx| rotate(tx, "k1", &n)).wait().unwrap());
        assert!(!b.write(move |tx| rotate(tx, "k1", &b_new)).wait().unwrap());
        let keys = b.read(all).unwrap();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(!keys[0].active && keys[0].sealed.is_none() && keys[0].retired_at.is_some());
        assert_eq!(keys[1], a_new);
        // Only one active key per purpose, whatever a caller tries.
        let third = key("k4444", "certificate", true);
        assert_eq!(b.write(move |tx| insert(tx, &third)).wait().unwrap(), 0);
        assert_eq!(a.read(all).unwrap().len(), 2);
    }

    #[test]
    fn keys_list_in_the_order_they_were_stored_within_one_second() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = crate::db::two_handles_for_tests(&dir);
        // Same second, ids in reverse order, the active key in the middle
        // of the id order: only the stored order tells them apart.
        let at = |mut k: IssuerKeyRow| {
            k.created_at = "2026-12-07T00:00:00Z".into();
            k
        };
        let first = vec![at(key("kz", "certificate", true))];
        assert!(a.write(move |tx| seed(tx, &first)).wait().unwrap());
        let next = at(key("ka", "certificate", true));
        assert!(a.write(move |tx| rotate(tx, "kz", &next)).wait().unwrap());
        let last = at(key("km", "certificate", true));
        assert!(a.write(move |tx| rotate(tx, "ka", &last)).wait().unwrap());
        let keys = a.read(all).unwrap();
        let order: Vec<(&str, bool)> = keys.iter().map(|k| (k.key_id.as_str(), k.active)).collect();
        assert_eq!(order, [("kz", false), ("ka", false), ("km", true)]);
    }
}
