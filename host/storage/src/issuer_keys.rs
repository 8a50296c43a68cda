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

/// A stored key's algorithm: each has its own keys, one active per purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// The credentials' keys: `public_key` is a Multikey.
    Ed25519,
    /// EU DCC and SMART Health Card keys: `public_key` is the base64 SEC1
    /// point, and the row holds the document-signer certificate.
    Es256,
}

impl KeyAlgorithm {
    /// The name stored in the `algorithm` column.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Es256 => "es256",
        }
    }

    fn parse(s: &str) -> crate::sql::SqlResult<KeyAlgorithm> {
        match s {
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            "es256" => Ok(KeyAlgorithm::Es256),
            other => Err(crate::sql::SqlError::Column {
                index: 7,
                message: format!("unknown key algorithm {other:?}"),
            }),
        }
    }
}

/// One stored key.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerKeyRow {
    /// Ed25519: `<did>#<multikey>`; ES256: the JWK thumbprint.
    pub key_id: String,
    /// Which keys it is one of.
    pub algorithm: KeyAlgorithm,
    /// The purpose it serves.
    pub purpose: String,
    /// The public key ([`KeyAlgorithm`] says in which form).
    pub public_key: String,
    /// ES256: the DER document-signer certificate.
    pub certificate: Option<Vec<u8>>,
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
            .field("algorithm", &self.algorithm)
            .field("purpose", &self.purpose)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str =
    "key_id, purpose, public_key, active, created_at, retired_at, sealed, algorithm, certificate";

fn row(r: &Row<'_>) -> crate::sql::SqlResult<IssuerKeyRow> {
    Ok(IssuerKeyRow {
        key_id: r.get(0)?,
        purpose: r.get(1)?,
        public_key: r.get(2)?,
        active: r.get::<i64>(3)? == 1,
        created_at: r.get(4)?,
        retired_at: r.get(5)?,
        sealed: r.get(6)?,
        algorithm: KeyAlgorithm::parse(&r.get::<String>(7)?)?,
        certificate: r.get(8)?,
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
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, COALESCE(MAX(seq), 0) + 1
               FROM issuer_keys WHERE true
             ON CONFLICT DO NOTHING"
        ))?
        .execute(params![
            k.key_id,
            k.purpose,
            k.public_key,
            i64::from(k.active),
            k.created_at,
            k.retired_at,
            k.sealed,
            k.algorithm.as_str(),
            k.certificate
        ])?)
}

/// Puts the first host's keys of `algorithm` into a table that has none of
/// that algorithm; `false` (and nothing written) if another host's keys
/// are there already: those are the keys. (A database shared before ES256
/// keys were gets the first ES256 keys a host brings.)
pub fn seed(tx: &Tx<'_>, algorithm: KeyAlgorithm, keys: &[IssuerKeyRow]) -> Result<bool> {
    if let Some(k) = keys.iter().find(|k| k.algorithm != algorithm) {
        return Err(crate::StorageError::Rejected(format!(
            "key {} is not an {} key",
            k.key_id,
            algorithm.as_str()
        )));
    }
    let present: i64 = tx
        .conn()
        .prepare_cached("SELECT COUNT(*) FROM issuer_keys WHERE algorithm = ?1")?
        .query_row(params![algorithm.as_str()], |r| r.get(0))?;
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
             WHERE key_id = ?1 AND active = 1 AND purpose = ?3 AND algorithm = ?4",
        )?
        .execute(params![
            retiring,
            new.created_at,
            new.purpose,
            new.algorithm.as_str()
        ])?;
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
            algorithm: KeyAlgorithm::Ed25519,
            purpose: purpose.into(),
            public_key: format!("z{id}"),
            certificate: None,
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
        assert!(a
            .write(move |tx| seed(tx, KeyAlgorithm::Ed25519, &first))
            .wait()
            .unwrap());
        // The second host finds the first one's keys.
        let other = vec![key("k9", "certificate", true)];
        assert!(!b
            .write(move |tx| seed(tx, KeyAlgorithm::Ed25519, &other))
            .wait()
            .unwrap());
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
        assert!(a
            .write(move |tx| seed(tx, KeyAlgorithm::Ed25519, &first))
            .wait()
            .unwrap());
        let next = at(key("ka", "certificate", true));
        assert!(a.write(move |tx| rotate(tx, "kz", &next)).wait().unwrap());
        let last = at(key("km", "certificate", true));
        assert!(a.write(move |tx| rotate(tx, "ka", &last)).wait().unwrap());
        let keys = a.read(all).unwrap();
        let order: Vec<(&str, bool)> = keys.iter().map(|k| (k.key_id.as_str(), k.active)).collect();
        assert_eq!(order, [("kz", false), ("ka", false), ("km", true)]);
    }

    #[test]
    fn es256_keys_are_seeded_and_rotated_beside_the_ed25519_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = crate::db::two_handles_for_tests(&dir);
        let es = |id: &str, active: bool| IssuerKeyRow {
            algorithm: KeyAlgorithm::Es256,
            certificate: Some(vec![0x30, 3, 1, 2, 3]),
            ..key(id, "certificate", active)
        };
        let ed = vec![key("k1", "certificate", true)];
        assert!(a
            .write(move |tx| seed(tx, KeyAlgorithm::Ed25519, &ed))
            .wait()
            .unwrap());
        // A database shared before ES256 keys were: the first host that
        // brings some seeds them; a second host's are not stored.
        let first = vec![es("e1", true)];
        assert!(b
            .write(move |tx| seed(tx, KeyAlgorithm::Es256, &first))
            .wait()
            .unwrap());
        let other = vec![es("e9", true)];
        assert!(!a
            .write(move |tx| seed(tx, KeyAlgorithm::Es256, &other))
            .wait()
            .unwrap());
        // Keys of the wrong algorithm are refused.
        let wrong = vec![key("k7", "certificate", true)];
        assert!(a
            .write(move |tx| seed(tx, KeyAlgorithm::Es256, &wrong))
            .wait()
            .is_err());
        assert_eq!(
            a.read(all).unwrap(),
            vec![key("k1", "certificate", true), es("e1", true)]
        );

        // An ES256 rotation leaves the Ed25519 key of the same purpose be,
        // and cannot retire a key of the other algorithm.
        let new = es("e22", true);
        assert!(a.write(move |tx| rotate(tx, "e1", &new)).wait().unwrap());
        let across = es("e333", true);
        assert!(!a.write(move |tx| rotate(tx, "k1", &across)).wait().unwrap());
        let keys = b.read(all).unwrap();
        let state: Vec<(&str, KeyAlgorithm, bool, bool)> = keys
            .iter()
            .map(|k| {
                (
                    k.key_id.as_str(),
                    k.algorithm,
                    k.active,
                    k.certificate.is_some(),
                )
            })
            .collect();
        assert_eq!(
            state,
            [
                ("k1", KeyAlgorithm::Ed25519, true, false),
                ("e1", KeyAlgorithm::Es256, false, true),
                ("e22", KeyAlgorithm::Es256, true, true),
            ]
        );
    }
}
