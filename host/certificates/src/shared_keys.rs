//! The issuer's keys shared by every host of one PostgreSQL database, so a
//! rotation on any host signs on all of them (docs/SCALE.md, § Issuer keys).
//!
//! The database keeps each key's public facts and an active key's private
//! half sealed with the store key (`divoc_crypto::keys::shared`), which
//! every host holds in its keys directory (copied from the first host, as
//! the person key is). The first host to start puts its keys into the empty
//! table; every host then loads the table's keys, and loads them again when
//! a host announces a change (`LISTEN`/`NOTIFY`) or its listening
//! connection comes back after a break (a change may have been missed).
//!
//! Between a rotation's commit and another host's reload (milliseconds),
//! that host may still sign with the key just retired: such a credential
//! verifies, as every credential of a retired key does.
//!
//! Both algorithms are shared so: the Ed25519 keys that sign credentials,
//! and the ES256 keys (with their document-signer certificates) that sign
//! EU DCC and SMART Health Card artifacts. [`rotate_ed25519`] and
//! [`rotate_es256`] rotate through the database when hosts share one, and
//! in the keys directory when one host is alone.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use divoc_crypto::keys::es256::{Es256Keyring, Es256Rotation, SharedEs256Key};
use divoc_crypto::keys::shared::{SharedKey, StoreKey};
use divoc_crypto::keys::{KeyError, Keyring, Rotation};
use divoc_storage::issuer_keys::{self, IssuerKeyRow, KeyAlgorithm, KEYS_CHANNEL};
use divoc_storage::sql::Dialect;
use divoc_storage::Database;

use crate::error::CertError;

/// The keyring of a host on a shared database, and how to rotate it.
#[derive(Clone)]
pub struct SharedKeys {
    db: Database,
    keyring: Keyring,
    es256: Es256Keyring,
    store: Arc<StoreKey>,
}

impl std::fmt::Debug for SharedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeys")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

fn key_error(e: KeyError) -> CertError {
    CertError::Internal(format!("issuer keys: {e}"))
}

fn to_row(k: SharedKey) -> IssuerKeyRow {
    IssuerKeyRow {
        key_id: k.key_id,
        algorithm: KeyAlgorithm::Ed25519,
        purpose: k.purpose,
        public_key: k.public_key_multibase,
        certificate: None,
        active: k.active,
        created_at: k.created_at,
        retired_at: k.retired_at,
        sealed: k.sealed,
    }
}

fn from_row(r: IssuerKeyRow) -> SharedKey {
    SharedKey {
        key_id: r.key_id,
        purpose: r.purpose,
        public_key_multibase: r.public_key,
        active: r.active,
        created_at: r.created_at,
        retired_at: r.retired_at,
        sealed: r.sealed,
    }
}

fn es256_to_row(k: SharedEs256Key) -> IssuerKeyRow {
    IssuerKeyRow {
        key_id: k.kid,
        algorithm: KeyAlgorithm::Es256,
        purpose: k.purpose,
        public_key: STANDARD.encode(&k.public_key),
        certificate: Some(k.certificate),
        active: k.active,
        created_at: k.created_at,
        retired_at: k.retired_at,
        sealed: k.sealed,
    }
}

fn es256_from_row(r: IssuerKeyRow) -> Result<SharedEs256Key, CertError> {
    let public_key = STANDARD.decode(&r.public_key).map_err(|e| {
        CertError::Internal(format!(
            "issuer keys: ES256 key {}: public key: {e}",
            r.key_id
        ))
    })?;
    let certificate = r.certificate.ok_or_else(|| {
        CertError::Internal(format!(
            "issuer keys: ES256 key {} has no certificate",
            r.key_id
        ))
    })?;
    Ok(SharedEs256Key {
        kid: r.key_id,
        purpose: r.purpose,
        public_key,
        certificate,
        active: r.active,
        created_at: r.created_at,
        retired_at: r.retired_at,
        sealed: r.sealed,
    })
}

fn active_error(e: KeyError, algorithm: &str, purpose: &str) -> CertError {
    match e {
        KeyError::NoActiveKey(_) => no_key(algorithm, purpose),
        e => key_error(e),
    }
}

fn not_loaded(key_id: &str) -> CertError {
    CertError::Internal(format!("rotated key {key_id} not loaded"))
}

fn no_key(algorithm: &str, purpose: &str) -> CertError {
    CertError::field(
        "purpose",
        format!("this issuer has no {algorithm} key for purpose {purpose:?}"),
    )
}

/// Rotates the Ed25519 key of `purpose`: through the database, on every
/// host, when hosts share one (`shared`), else in this host's keys
/// directory. An unknown purpose is a `purpose` field error.
pub fn rotate_ed25519(
    shared: Option<&SharedKeys>,
    keyring: &Keyring,
    purpose: &str,
) -> Result<Rotation, CertError> {
    match shared {
        Some(shared) => shared.rotate(purpose),
        None => keyring
            .rotate_reporting(purpose)
            .map_err(|e| active_error(e, "Ed25519", purpose)),
    }
}

/// [`rotate_ed25519`] for the ES256 key of `purpose` (a new key and a new
/// self-signed document-signer certificate).
pub fn rotate_es256(
    shared: Option<&SharedKeys>,
    es256: &Es256Keyring,
    purpose: &str,
) -> Result<Es256Rotation, CertError> {
    match shared {
        Some(shared) => shared.rotate_es256(purpose),
        None => es256
            .rotate(purpose)
            .map_err(|e| active_error(e, "ES256", purpose)),
    }
}

impl SharedKeys {
    /// On PostgreSQL, makes `keyring` and `es256` (opened on `keys_dir`)
    /// the database's keys, seeding the table with this host's keys of an
    /// algorithm it has none of, and keeps them so. On SQLite `None`: one
    /// host keeps its keys in its directory.
    pub fn open(
        db: &Database,
        keyring: &Keyring,
        es256: &Es256Keyring,
        keys_dir: &Path,
    ) -> Result<Option<SharedKeys>, CertError> {
        if db.dialect() != Dialect::Postgres {
            return Ok(None);
        }
        let store = Arc::new(StoreKey::open_or_create(keys_dir).map_err(key_error)?);
        let shared = SharedKeys {
            db: db.clone(),
            keyring: keyring.clone(),
            es256: es256.clone(),
            store,
        };
        let mine: Vec<IssuerKeyRow> = keyring
            .to_shared(&shared.store)
            .map_err(key_error)?
            .into_iter()
            .map(to_row)
            .collect();
        let mine_es256: Vec<IssuerKeyRow> = es256
            .to_shared(&shared.store)
            .map_err(key_error)?
            .into_iter()
            .map(es256_to_row)
            .collect();
        let seeded = db
            .write(move |tx| {
                let ed = issuer_keys::seed(tx, KeyAlgorithm::Ed25519, &mine)?;
                let es = issuer_keys::seed(tx, KeyAlgorithm::Es256, &mine_es256)?;
                Ok((ed, es))
            })
            .wait();
        match seeded {
            Ok((ed, es)) => {
                for (seeded, which) in [(ed, "Ed25519"), (es, "ES256")] {
                    if seeded {
                        tracing::info!(
                            "issuer keys: this host's {which} keys are the database's now"
                        );
                    }
                }
            }
            // Another host seeded at the same moment: its keys are the ones.
            Err(divoc_storage::StorageError::Rejected(_)) => {}
            Err(e) => return Err(e.into()),
        }
        shared.reload()?;
        let weak = Arc::downgrade(&shared.store);
        let (db, ring, es256) = (db.clone(), keyring.clone(), es256.clone());
        db.clone().on_change(
            KEYS_CHANNEL,
            Arc::new(move |_| {
                // Called on the database's I/O thread, which a read needs:
                // reload from a thread of its own.
                let Some(store) = weak.upgrade() else { return };
                let again = SharedKeys {
                    db: db.clone(),
                    keyring: ring.clone(),
                    es256: es256.clone(),
                    store,
                };
                let spawned = std::thread::Builder::new()
                    .name("divoc-keys-reload".into())
                    .spawn(move || {
                        if let Err(e) = again.reload() {
                            tracing::error!("issuer keys: reloading after a change failed: {e}");
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!("issuer keys: cannot start a reload: {e}");
                }
            }),
        );
        Ok(Some(shared))
    }

    /// Loads the database's keys into the keyrings (each checks all of
    /// its keys before it changes).
    pub fn reload(&self) -> Result<(), CertError> {
        let rows = self.db.read(issuer_keys::all)?;
        let (ed, es): (Vec<IssuerKeyRow>, Vec<IssuerKeyRow>) = rows
            .into_iter()
            .partition(|r| r.algorithm == KeyAlgorithm::Ed25519);
        let keys: Vec<SharedKey> = ed.into_iter().map(from_row).collect();
        self.keyring
            .load_shared(&keys, &self.store)
            .map_err(key_error)?;
        let keys = es
            .into_iter()
            .map(es256_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.es256
            .load_shared(&keys, &self.store)
            .map_err(key_error)
    }

    /// Replaces the active key of `purpose` with a fresh one on every host:
    /// committed to the database (the old key retired there, its sealed
    /// half erased), then loaded here; the other hosts load it when told.
    /// A rotation another host committed first wins: this one reloads and
    /// tries again on the key that now signs.
    pub fn rotate(&self, purpose: &str) -> Result<Rotation, CertError> {
        let (new, retired) = self.rotate_stored(|| {
            let active = self
                .keyring
                .active(purpose)
                .map_err(|e| active_error(e, "Ed25519", purpose))?;
            let new = self
                .keyring
                .new_shared_key(purpose, &self.store)
                .map_err(key_error)?;
            Ok((active.key_id, to_row(new)))
        })?;
        let loaded = |id: &str| self.keyring.find(id).ok_or_else(|| not_loaded(id));
        Ok(Rotation {
            new: loaded(&new)?,
            retired: loaded(&retired)?,
        })
    }

    /// [`SharedKeys::rotate`] for the ES256 key of `purpose`.
    pub fn rotate_es256(&self, purpose: &str) -> Result<Es256Rotation, CertError> {
        let (new, retired) = self.rotate_stored(|| {
            let active = self
                .es256
                .active(purpose)
                .map_err(|e| active_error(e, "ES256", purpose))?;
            let new = self
                .es256
                .new_shared_key(purpose, &self.store)
                .map_err(key_error)?;
            Ok((active.kid, es256_to_row(new)))
        })?;
        let loaded = |kid: &str| self.es256.find(kid).ok_or_else(|| not_loaded(kid));
        Ok(Es256Rotation {
            new: loaded(&new)?,
            retired: loaded(&retired)?,
        })
    }

    /// A rotation's turns at the database: `next` names the key that signs
    /// now and makes its successor's row; the ids (new, retired) once one
    /// commits. A turn another host's rotation beat reloads and tries again.
    fn rotate_stored(
        &self,
        next: impl Fn() -> Result<(String, IssuerKeyRow), CertError>,
    ) -> Result<(String, String), CertError> {
        for _ in 0..3 {
            let (old_id, row) = next()?;
            let new_id = row.key_id.clone();
            let retiring = old_id.clone();
            let done = self
                .db
                .write(move |tx| issuer_keys::rotate(tx, &retiring, &row))
                .wait()?;
            self.reload()?;
            if done {
                return Ok((new_id, old_id));
            }
        }
        Err(CertError::Unavailable(
            "other hosts kept rotating this key; try again".into(),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use divoc_crypto::keys::IssuerConfig;

    fn es256(dir: &Path) -> Es256Keyring {
        Es256Keyring::open_or_create(dir, &divoc_crypto::keys::es256::Es256Config::default())
            .unwrap()
    }

    #[test]
    fn hosts_share_the_first_hosts_keys_and_see_each_others_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let Some(url) = divoc_storage::pg::test_database_url() else {
            // One host alone: the keys stay in its directory.
            let db = Database::open_test(
                &dir.path().join("one.db"),
                divoc_storage::DbOptions::default(),
            )
            .unwrap();
            let ring =
                Keyring::open_or_create(&dir.path().join("k"), &IssuerConfig::new("did:web:x"))
                    .unwrap();
            let es = es256(&dir.path().join("k"));
            assert!(SharedKeys::open(&db, &ring, &es, &dir.path().join("k"))
                .unwrap()
                .is_none());
            assert!(!ring.is_shared() && !es.is_shared());
            // Rotations stay in the keys directory, and say which purpose
            // is unknown.
            let first = es.active("certificate").unwrap();
            let rotation = rotate_es256(None, &es, "certificate").unwrap();
            assert_eq!(rotation.retired.kid, first.kid);
            let first = ring.active("certificate").unwrap();
            let rotation = rotate_ed25519(None, &ring, "certificate").unwrap();
            assert_eq!(rotation.retired.key_id, first.key_id);
            for err in [
                rotate_ed25519(None, &ring, "nope").unwrap_err(),
                rotate_es256(None, &es, "nope").unwrap_err(),
            ] {
                assert!(matches!(&err, CertError::Validation(_)), "{err}");
                assert!(err.to_string().contains("\"nope\""), "{err}");
            }
            return;
        };
        let issuer = IssuerConfig::new("did:web:divoc.example.org");
        let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
        let a_ring = Keyring::open_or_create(&a_dir, &issuer).unwrap();
        let a_es = es256(&a_dir);
        let open = || Database::open_postgres(&url, divoc_storage::DbOptions::default()).unwrap();
        let (a_db, b_db) = (open(), open());
        let a = SharedKeys::open(&a_db, &a_ring, &a_es, &a_dir)
            .unwrap()
            .unwrap();
        // The second host has a copy of the first one's store key (its
        // own keys, made when it first started, give way to the store's).
        let b_ring = Keyring::open_or_create(&b_dir, &issuer).unwrap();
        let b_es = es256(&b_dir);
        std::fs::copy(
            a_dir.join(divoc_crypto::keys::shared::STORE_KEY_FILE),
            b_dir.join(divoc_crypto::keys::shared::STORE_KEY_FILE),
        )
        .unwrap();
        assert_ne!(
            b_es.active("certificate").unwrap(),
            a_es.active("certificate").unwrap()
        );
        let b = SharedKeys::open(&b_db, &b_ring, &b_es, &b_dir)
            .unwrap()
            .unwrap();
        let first = a_ring.active("certificate").unwrap();
        assert_eq!(b_ring.active("certificate").unwrap(), first);
        let first_es = a_es.active("certificate").unwrap();
        assert_eq!(b_es.active("certificate").unwrap(), first_es);

        let rotation = b.rotate("certificate").unwrap();
        assert_eq!(rotation.retired.key_id, first.key_id);
        // Host a is told, and loads the new key without being asked.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while a_ring.active("certificate").unwrap().key_id != rotation.new.key_id {
            assert!(
                std::time::Instant::now() < deadline,
                "host a never saw the rotation"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sig = a_ring.sign(&rotation.new.key_id, b"m").unwrap();
        assert!(b_ring.verify(&rotation.new.key_id, b"m", &sig).unwrap());
        assert!(a_ring.sign(&first.key_id, b"m").is_err());
        assert!(matches!(
            a_ring.rotate("certificate"),
            Err(KeyError::Shared)
        ));
        // A rotation from a stale view (host a rotating the key b already
        // retired) is retried on the key that signs now.
        let again = a.rotate("certificate").unwrap();
        assert_eq!(again.retired.key_id, rotation.new.key_id);

        // The ES256 key the same way: rotated on b, signing on a, and the
        // local rotation refused on a shared keyring.
        let rotation = rotate_es256(Some(&b), &b_es, "certificate").unwrap();
        assert_eq!(rotation.retired.kid, first_es.kid);
        assert!(!rotation.retired.active);
        while a_es.active("certificate").unwrap().kid != rotation.new.kid {
            assert!(
                std::time::Instant::now() < deadline,
                "host a never saw the ES256 rotation"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sig = a_es.sign(&rotation.new.kid, b"m").unwrap();
        assert!(divoc_crypto::keys::es256::verify_es256(
            &rotation.new.public_key,
            b"m",
            &sig
        ));
        assert_eq!(
            a_es.find(&rotation.new.kid).unwrap().certificate,
            rotation.new.certificate
        );
        assert!(a_es.sign(&first_es.kid, b"m").is_err());
        assert!(matches!(a_es.rotate("certificate"), Err(KeyError::Shared)));
        // The Ed25519 key did not move.
        assert_eq!(
            a_ring.active("certificate").unwrap().key_id,
            again.new.key_id
        );
        let err = rotate_es256(Some(&a), &a_es, "nope").unwrap_err();
        assert!(matches!(err, CertError::Validation(_)), "{err}");

        // The database holds no private key of a retired key.
        let rows = a_db.read(issuer_keys::all).unwrap();
        assert_eq!(rows.len(), 5);
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::Es256] {
            let active = rows.iter().filter(|r| r.active && r.algorithm == algorithm);
            assert_eq!(active.count(), 1);
        }
        assert!(rows.iter().all(|r| r.active == r.sealed.is_some()));
        assert!(rows
            .iter()
            .all(|r| (r.algorithm == KeyAlgorithm::Es256) == r.certificate.is_some()));
        // A restarted host opens what the store holds.
        let b_again = es256(&b_dir);
        assert_eq!(b_again.keys(), b_es.keys());
        // A host with another store key cannot load them, and says why.
        let c_dir = dir.path().join("c");
        let c_ring = Keyring::open_or_create(&c_dir, &issuer).unwrap();
        let err = SharedKeys::open(&open(), &c_ring, &es256(&c_dir), &c_dir).unwrap_err();
        assert!(err.to_string().contains("store-key"), "{err}");
    }
}
