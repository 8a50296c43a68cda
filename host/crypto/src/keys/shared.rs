//! Issuer keys shared by many hosts through a store they all use (the
//! database), so that a key rotated on one host signs on every host.
//!
//! The store holds each key's public facts and, while the key is active,
//! its private half *sealed*: ChaCha20-Poly1305 ([RFC 8439]) under the
//! *store key*, 32 random bytes in `<keys dir>/store-key` (mode `0600`). The
//! store key is the one secret every host must hold, and a deployment
//! mounts it with the rest of the first host's keys directory. The key id
//! is the associated data, so a sealed half copied to another key's row
//! does not open. A retired key's sealed half is erased from the store, as
//! its PEM file is erased from a keys directory.
//!
//! A keyring that has loaded the store's keys ([`Keyring::load_shared`])
//! mirrors them into its directory (so the directory stays a consistent
//! keyring) and refuses [`Keyring::rotate`]: a rotation makes a key with
//! [`Keyring::new_shared_key`], commits it to the store, and every host
//! loads the store again.
//!
//! [RFC 8439]: https://www.rfc-editor.org/rfc/rfc8439

use std::fmt;
use std::path::Path;

use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use zeroize::Zeroizing;

use super::{
    check_one_active_per_purpose, check_private_mode, ensure_private_dir, install_key, io_error,
    key_id_for, read_optional, remove_retired_pem, write_atomic, write_records, Entry, KeyError,
    KeyRecord, KeySource, KeyStatus, Keyring, SecretKey,
};
use crate::{data_integrity, multibase};

/// The store key's file in a keys directory.
pub const STORE_KEY_FILE: &str = "store-key";

/// Seals and opens private keys for the shared store. `Debug` never shows
/// the key.
///
/// It seals both algorithms' private halves: an Ed25519 seed and a P-256
/// scalar ([`super::es256`]) are each 32 bytes.
pub struct StoreKey(LessSafeKey);

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

impl StoreKey {
    /// The store key in `dir` (a keys directory), made on first use.
    pub fn open_or_create(dir: &Path) -> Result<StoreKey, KeyError> {
        ensure_private_dir(dir)?;
        let path = dir.join(STORE_KEY_FILE);
        let bytes = match read_optional(&path)? {
            Some(bytes) => {
                let meta = std::fs::metadata(&path).map_err(io_error(&path))?;
                check_private_mode(&path, &meta)?;
                Zeroizing::new(bytes)
            }
            None => {
                let mut fresh = Zeroizing::new(vec![0u8; 32]);
                OsRng.fill_bytes(&mut fresh);
                write_atomic(dir, STORE_KEY_FILE, &fresh)?;
                fresh
            }
        };
        Self::from_bytes(&bytes).ok_or_else(|| KeyError::InvalidKeyFile {
            path,
            reason: "a store key is 32 bytes".into(),
        })
    }

    fn from_bytes(bytes: &[u8]) -> Option<StoreKey> {
        if bytes.len() != 32 {
            return None;
        }
        UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .ok()
            .map(|k| StoreKey(LessSafeKey::new(k)))
    }

    /// `nonce ‖ ciphertext ‖ tag` of `secret`, bound to `key_id`. Nonces
    /// are random: a store seals one key per rotation, far below the
    /// 2^32 messages a random 96-bit nonce allows per key.
    pub(in crate::keys) fn seal(
        &self,
        key_id: &str,
        secret: &[u8; 32],
    ) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut sealed = Vec::with_capacity(NONCE_LEN + 32 + 16);
        sealed.extend_from_slice(&nonce);
        let mut body = secret.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(key_id.as_bytes()),
                &mut body,
            )
            .map_err(|_| sealing(key_id, "sealing failed"))?;
        sealed.extend_from_slice(&body);
        body.iter_mut().for_each(|b| *b = 0);
        Ok(sealed)
    }

    pub(in crate::keys) fn open(
        &self,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let (nonce, body) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| sealing(key_id, "too short"))?;
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| sealing(key_id, "bad nonce"))?;
        let mut body = Zeroizing::new(body.to_vec());
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(key_id.as_bytes()), &mut body)
            .map_err(|_| {
                sealing(
                    key_id,
                    "it does not open with this host's store key (every host needs the same \
                     keys/store-key: copy the first host's keys directory)",
                )
            })?;
        let secret: [u8; 32] = plain
            .try_into()
            .map_err(|_| sealing(key_id, "not a 32-byte private key"))?;
        Ok(Zeroizing::new(secret))
    }
}

pub(in crate::keys) fn sealing(key_id: &str, reason: &str) -> KeyError {
    KeyError::Sealed {
        key_id: key_id.to_owned(),
        reason: reason.to_owned(),
    }
}

/// One issuer key as the shared store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKey {
    /// `<did>#<multikey>`.
    pub key_id: String,
    /// The purpose the key serves.
    pub purpose: String,
    /// Multikey form of the public key (`z6Mk…`).
    pub public_key_multibase: String,
    /// Whether the key signs (else it verifies only).
    pub active: bool,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Retirement time, RFC 3339, for retired keys.
    pub retired_at: Option<String>,
    /// The private key sealed with the [`StoreKey`], for active keys only.
    pub sealed: Option<Vec<u8>>,
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKey")
            .field("key_id", &self.key_id)
            .field("purpose", &self.purpose)
            .field("active", &self.active)
            .field("sealed", &self.sealed.as_ref().map(|_| "<sealed>"))
            .finish()
    }
}

impl Keyring {
    /// This keyring's keys as the store keeps them (active ones sealed):
    /// what the first host puts into an empty store.
    pub fn to_shared(&self, store: &StoreKey) -> Result<Vec<SharedKey>, KeyError> {
        let entries = self.inner.entries.read();
        entries
            .iter()
            .map(|e| {
                let sealed = match &e.secret {
                    Some(secret) => Some(store.seal(&e.record.key_id, secret.0.as_bytes())?),
                    None => None,
                };
                Ok(SharedKey {
                    key_id: e.record.key_id.clone(),
                    purpose: e.record.purpose.clone(),
                    public_key_multibase: e.record.public_key_multibase.clone(),
                    active: e.record.status == KeyStatus::Active,
                    created_at: e.record.created_at.clone(),
                    retired_at: e.record.retired_at.clone(),
                    sealed,
                })
            })
            .collect()
    }

    /// A fresh key for `purpose`, sealed for the store; not in the keyring
    /// until the store has it and [`Keyring::load_shared`] reads it back.
    pub fn new_shared_key(&self, purpose: &str, store: &StoreKey) -> Result<SharedKey, KeyError> {
        let key = SigningKey::generate(&mut OsRng);
        let public = key.verifying_key().to_bytes();
        let key_id = key_id_for(&self.inner.did, &public);
        let sealed = store.seal(&key_id, key.as_bytes())?;
        Ok(SharedKey {
            key_id,
            purpose: purpose.to_owned(),
            public_key_multibase: multibase::ed25519_public_key_to_multikey(&public),
            active: true,
            created_at: data_integrity::now_date_time_stamp(),
            retired_at: None,
            sealed: Some(sealed),
        })
    }

    /// Makes the store's keys this keyring's keys, checked first: every id
    /// is this DID's and matches its public key, one active key per
    /// purpose, every active key's sealed half opens with `store` to that
    /// public key. Nothing changes if a check fails. The keys directory is
    /// rewritten to match (PEMs of active keys, metadata; retired keys'
    /// PEMs deleted), and from now on [`Keyring::rotate`] refuses.
    pub fn load_shared(&self, keys: &[SharedKey], store: &StoreKey) -> Result<(), KeyError> {
        let dir = &self.inner.dir;
        let did = &self.inner.did;
        let corrupt = |reason: String| KeyError::CorruptMetadata {
            path: dir.join("<shared store>"),
            reason,
        };
        let mut loaded = Vec::with_capacity(keys.len());
        for k in keys {
            let public = multibase::ed25519_public_key_from_multikey(&k.public_key_multibase)
                .map_err(|e| corrupt(format!("{}: {e}", k.key_id)))?;
            if k.key_id != key_id_for(did, &public) {
                return Err(corrupt(format!(
                    "key id {} is not {did}'s key for its public key",
                    k.key_id
                )));
            }
            let secret = match (k.active, &k.sealed) {
                (true, Some(sealed)) => {
                    let bytes = store.open(&k.key_id, sealed)?;
                    let key = SigningKey::from_bytes(&bytes);
                    if key.verifying_key().to_bytes() != public {
                        return Err(KeyError::KeyMismatch {
                            key_id: k.key_id.clone(),
                        });
                    }
                    Some(SecretKey(key))
                }
                (true, None) => {
                    return Err(corrupt(format!(
                        "active key {} has no private half",
                        k.key_id
                    )))
                }
                (false, _) => None,
            };
            loaded.push(Entry {
                record: KeyRecord {
                    key_id: k.key_id.clone(),
                    purpose: k.purpose.clone(),
                    public_key_multibase: k.public_key_multibase.clone(),
                    file: format!("{}.pem", k.public_key_multibase),
                    created_at: k.created_at.clone(),
                    status: if k.active {
                        KeyStatus::Active
                    } else {
                        KeyStatus::Retired
                    },
                    retired_at: k.retired_at.clone(),
                    source: KeySource::Generated,
                },
                public,
                secret,
            });
        }
        check_one_active_per_purpose(&loaded, &dir.join("<shared store>"))?;

        let mut entries = self.inner.entries.write();
        // The directory mirrors the store: active keys' PEMs first, then
        // the metadata naming them, then retired keys' PEMs go.
        for e in &mut loaded {
            if let Some(secret) = e.secret.take() {
                let installed =
                    install_key(dir, did, &e.record.purpose, secret.0, KeySource::Generated)?;
                e.secret = installed.secret;
            }
        }
        let records: Vec<KeyRecord> = loaded.iter().map(|e| e.record.clone()).collect();
        write_records(dir, did, &records)?;
        for e in loaded.iter().filter(|e| e.secret.is_none()) {
            remove_retired_pem(dir, &e.record);
        }
        *entries = loaded;
        self.inner
            .shared
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Whether the keys come from a shared store ([`Keyring::load_shared`]).
    pub fn is_shared(&self) -> bool {
        self.inner.shared.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keys::IssuerConfig;

    fn keyring(dir: &Path) -> Keyring {
        Keyring::open_or_create(dir, &IssuerConfig::new("did:web:divoc.example.org")).unwrap()
    }

    #[test]
    fn a_rotation_through_the_store_signs_on_every_host() {
        let tmp = tempfile::tempdir().unwrap();
        let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
        let a = keyring(&a_dir);
        let store = StoreKey::open_or_create(&a_dir).unwrap();
        // Host b has the first host's keys directory (its store key).
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&b_dir)
            .unwrap();
        std::fs::copy(a_dir.join(STORE_KEY_FILE), b_dir.join(STORE_KEY_FILE)).unwrap();
        let b = keyring(&b_dir);
        let b_store = StoreKey::open_or_create(&b_dir).unwrap();
        assert_ne!(
            a.active("certificate").unwrap(),
            b.active("certificate").unwrap()
        );

        let mut shared = a.to_shared(&store).unwrap();
        a.load_shared(&shared, &store).unwrap();
        b.load_shared(&shared, &b_store).unwrap();
        let first = a.active("certificate").unwrap();
        assert_eq!(b.active("certificate").unwrap(), first);

        // Rotate on b: the store retires the old key and erases its half.
        let new = b.new_shared_key("certificate", &b_store).unwrap();
        for k in &mut shared {
            k.active = false;
            k.retired_at = Some(new.created_at.clone());
            k.sealed = None;
        }
        shared.push(new.clone());
        b.load_shared(&shared, &b_store).unwrap();
        a.load_shared(&shared, &store).unwrap();
        for ring in [&a, &b] {
            let active = ring.active("certificate").unwrap();
            assert_eq!(active.key_id, new.key_id);
            let sig = ring.sign(&new.key_id, b"msg").unwrap();
            assert!(ring.verify(&new.key_id, b"msg", &sig).unwrap());
            assert!(matches!(
                ring.sign(&first.key_id, b"msg"),
                Err(KeyError::Retired(_))
            ));
            assert!(ring.find(&first.key_id).is_some(), "retired keys verify");
            assert!(matches!(ring.rotate("certificate"), Err(KeyError::Shared)));
        }
        // The directories mirror the store: a restart opens the same keys,
        // and the retired key's PEM is gone.
        for (dir, ring) in [(&a_dir, &a), (&b_dir, &b)] {
            let again = keyring(dir);
            assert_eq!(again.public_keys(), ring.public_keys());
            assert!(!dir.join(format!("{}.pem", first.multibase)).exists());
        }
    }

    #[test]
    fn a_sealed_key_opens_only_with_the_store_key_and_its_own_id() {
        let tmp = tempfile::tempdir().unwrap();
        let a = keyring(&tmp.path().join("a"));
        let store = StoreKey::open_or_create(&tmp.path().join("a")).unwrap();
        let other = StoreKey::open_or_create(&tmp.path().join("other")).unwrap();
        let shared = a.to_shared(&store).unwrap();
        let before = a.public_keys();
        // Another host's store key: refused, and nothing changes.
        let err = a.load_shared(&shared, &other).unwrap_err();
        assert!(matches!(err, KeyError::Sealed { .. }), "{err}");
        assert!(err.to_string().contains("store-key"), "{err}");
        assert_eq!(a.public_keys(), before);
        assert!(!a.is_shared());
        // A sealed half moved to another key's row does not open.
        let stranger = a.new_shared_key("other", &store).unwrap();
        let mut moved = shared.clone();
        moved.push(SharedKey {
            sealed: shared[0].sealed.clone(),
            ..stranger
        });
        assert!(matches!(
            a.load_shared(&moved, &store),
            Err(KeyError::Sealed { .. })
        ));
        // Two active keys for one purpose: refused.
        let mut two = shared.clone();
        two.push(a.new_shared_key("certificate", &store).unwrap());
        assert!(a.load_shared(&two, &store).is_err());
        // A store key file others can read is refused.
        let path = tmp.path().join("a").join(STORE_KEY_FILE);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert!(matches!(
            StoreKey::open_or_create(&tmp.path().join("a")),
            Err(KeyError::InsecurePermissions { .. })
        ));
    }
}
