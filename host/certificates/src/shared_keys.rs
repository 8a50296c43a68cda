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

use std::path::Path;
use std::sync::Arc;

use divoc_crypto::keys::shared::{SharedKey, StoreKey};
use divoc_crypto::keys::{KeyError, Keyring, PublicKeyInfo, Rotation};
use divoc_storage::issuer_keys::{self, IssuerKeyRow, KEYS_CHANNEL};
use divoc_storage::sql::Dialect;
use divoc_storage::Database;

use crate::error::CertError;

/// The keyring of a host on a shared database, and how to rotate it.
#[derive(Clone)]
pub struct SharedKeys {
    db: Database,
    keyring: Keyring,
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
        purpose: k.purpose,
        public_key: k.public_key_multibase,
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

impl SharedKeys {
    /// On PostgreSQL, makes `keyring` (opened on `keys_dir`) the database's
    /// keys, seeding an empty table with this host's, and keeps it so. On
    /// SQLite `None`: one host keeps its keys in its directory.
    pub fn open(
        db: &Database,
        keyring: &Keyring,
        keys_dir: &Path,
    ) -> Result<Option<SharedKeys>, CertError> {
        if db.dialect() != Dialect::Postgres {
            return Ok(None);
        }
        let store = Arc::new(StoreKey::open_or_create(keys_dir).map_err(key_error)?);
        let shared = SharedKeys {
            db: db.clone(),
            keyring: keyring.clone(),
            store,
        };
        let mine: Vec<IssuerKeyRow> = keyring
            .to_shared(&shared.store)
            .map_err(key_error)?
            .into_iter()
            .map(to_row)
            .collect();
        let seeded = db.write(move |tx| issuer_keys::seed(tx, &mine)).wait();
        match seeded {
            Ok(true) => tracing::info!("issuer keys: this host's keys are the database's now"),
            Ok(false) => {}
            // Another host seeded at the same moment: its keys are the ones.
            Err(divoc_storage::StorageError::Rejected(_)) => {}
            Err(e) => return Err(e.into()),
        }
        shared.reload()?;
        let weak = Arc::downgrade(&shared.store);
        let (db, ring) = (db.clone(), keyring.clone());
        db.clone().on_change(
            KEYS_CHANNEL,
            Arc::new(move |_| {
                // Called on the database's I/O thread, which a read needs:
                // reload from a thread of its own.
                let Some(store) = weak.upgrade() else { return };
                let again = SharedKeys {
                    db: db.clone(),
                    keyring: ring.clone(),
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

    /// Loads the database's keys into the keyring.
    pub fn reload(&self) -> Result<(), CertError> {
        let rows = self.db.read(issuer_keys::all)?;
        let keys: Vec<SharedKey> = rows.into_iter().map(from_row).collect();
        self.keyring
            .load_shared(&keys, &self.store)
            .map_err(key_error)
    }

    /// Replaces the active key of `purpose` with a fresh one on every host:
    /// committed to the database (the old key retired there, its sealed
    /// half erased), then loaded here; the other hosts load it when told.
    /// A rotation another host committed first wins: this one reloads and
    /// tries again on the key that now signs.
    pub fn rotate(&self, purpose: &str) -> Result<Rotation, CertError> {
        for _ in 0..3 {
            let retiring: PublicKeyInfo = self.keyring.active(purpose).map_err(|e| match e {
                KeyError::NoActiveKey(_) => CertError::field(
                    "purpose",
                    format!("this issuer has no key for purpose {purpose:?}"),
                ),
                e => key_error(e),
            })?;
            let new = self
                .keyring
                .new_shared_key(purpose, &self.store)
                .map_err(key_error)?;
            let row = to_row(new);
            let new_id = row.key_id.clone();
            let old_id = retiring.key_id.clone();
            let done = self
                .db
                .write(move |tx| issuer_keys::rotate(tx, &old_id, &row))
                .wait()?;
            self.reload()?;
            if done {
                let new = self.keyring.find(&new_id).ok_or_else(|| {
                    CertError::Internal(format!("rotated key {new_id} not loaded"))
                })?;
                let retired = self
                    .keyring
                    .find(&retiring.key_id)
                    .ok_or_else(|| CertError::Internal("retired key not loaded".into()))?;
                return Ok(Rotation { new, retired });
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
            assert!(SharedKeys::open(&db, &ring, &dir.path().join("k"))
                .unwrap()
                .is_none());
            assert!(!ring.is_shared());
            return;
        };
        let issuer = IssuerConfig::new("did:web:divoc.example.org");
        let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
        let a_ring = Keyring::open_or_create(&a_dir, &issuer).unwrap();
        let open = || Database::open_postgres(&url, divoc_storage::DbOptions::default()).unwrap();
        let (a_db, b_db) = (open(), open());
        let a = SharedKeys::open(&a_db, &a_ring, &a_dir).unwrap().unwrap();
        // The second host has a copy of the first one's keys directory.
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&b_dir)
            .unwrap();
        for f in std::fs::read_dir(&a_dir).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, b_dir.join(f.file_name().unwrap())).unwrap();
        }
        let b_ring = Keyring::open_or_create(&b_dir, &issuer).unwrap();
        let b = SharedKeys::open(&b_db, &b_ring, &b_dir).unwrap().unwrap();
        let first = a_ring.active("certificate").unwrap();
        assert_eq!(b_ring.active("certificate").unwrap(), first);

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
        // The database holds no private key of a retired key.
        let rows = a_db.read(issuer_keys::all).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().filter(|r| r.active).count(), 1);
        assert!(rows.iter().all(|r| r.active == r.sealed.is_some()));
        // A host with another store key cannot load them, and says why.
        let c_dir = dir.path().join("c");
        let c_ring = Keyring::open_or_create(&c_dir, &issuer).unwrap();
        let err = SharedKeys::open(&open(), &c_ring, &c_dir).unwrap_err();
        assert!(err.to_string().contains("store-key"), "{err}");
    }
}
