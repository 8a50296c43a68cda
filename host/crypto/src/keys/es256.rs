//! ES256 (ECDSA P-256 with SHA-256) keys, for the certificate formats whose
//! standards require them: EU DCC (COSE alg -7, a document-signer certificate
//! whose SHA-256 prefix is the `kid`) and SMART Health Cards (JWS `ES256`, the
//! JWK thumbprint as `kid`).
//!
//! Kept beside the Ed25519 keyring, in its own directory (`<keys>/es256`,
//! mode `0700`) with the same discipline: one active key per purpose, PKCS#8
//! PEM files (`<kid>.pem`, mode `0600`) for active keys only, metadata in
//! `keyring.json` written atomically after the key it names, rotation retiring
//! the old key (public half and certificate kept so old artifacts verify,
//! private half zeroized and deleted).
//!
//! Each key gets a self-signed X.509 v3 certificate at creation (the EU DCC
//! "document signer certificate"; a country submits it to its national
//! backend for signing by its CSCA, and may then name the signed certificate
//! with [`Es256Keyring::set_certificate`]).
//!
//! Hosts sharing one database share these keys the way they share the
//! Ed25519 ones ([`super::shared`]): the store keeps each key's public
//! half and certificate, and an active key's private half sealed with the
//! store key ([`Es256Keyring::to_shared`], [`Es256Keyring::load_shared`]).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use parking_lot::RwLock;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::{Decode, Encode};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

use zeroize::Zeroizing;

use super::shared::{sealing, StoreKey};
use super::{ensure_private_dir, read_optional, write_atomic, KeyError, KeyStatus};
use crate::data_integrity;

/// The sub-directory of the keyring directory that holds ES256 keys.
pub const DIR: &str = "es256";
const METADATA_FILE: &str = "keyring.json";
const METADATA_FORMAT: u32 = 1;
/// How long a generated document-signer certificate is valid. EU DCC
/// document signers are typically valid for up to two years.
const CERTIFICATE_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);

/// Who the document-signer certificates name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Es256Config {
    /// Purposes that get an ES256 key. Default `["certificate"]`.
    #[serde(default = "default_purposes")]
    pub purposes: Vec<String>,
    /// Subject common name of generated certificates.
    #[serde(default = "default_common_name")]
    pub common_name: String,
    /// Subject country (ISO 3166-1 alpha-2) of generated certificates.
    #[serde(default = "default_country")]
    pub country: String,
}

impl Default for Es256Config {
    fn default() -> Self {
        Es256Config {
            purposes: default_purposes(),
            common_name: default_common_name(),
            country: default_country(),
        }
    }
}

fn default_purposes() -> Vec<String> {
    vec![super::DEFAULT_PURPOSE.to_owned()]
}
fn default_common_name() -> String {
    "DIVOC-rs document signer".to_owned()
}
fn default_country() -> String {
    "XX".to_owned()
}

/// Public facts about one ES256 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Es256KeyInfo {
    /// JWK thumbprint (RFC 7638), base64url.
    pub kid: String,
    /// The purpose the key serves.
    pub purpose: String,
    /// Uncompressed SEC1 point (65 bytes).
    pub public_key: Vec<u8>,
    /// DER X.509 certificate.
    pub certificate: Vec<u8>,
    /// Whether the key signs.
    pub active: bool,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Retirement time, RFC 3339.
    pub retired_at: Option<String>,
}

impl Es256KeyInfo {
    /// The EU DCC key identifier: the first 8 bytes of SHA-256 over the DER
    /// certificate (eHealth Network, Electronic Health Certificates technical
    /// specification v1.0.5, §3.3.1).
    pub fn dcc_kid(&self) -> [u8; 8] {
        dcc_kid(&self.certificate)
    }

    /// The certificate as PEM.
    pub fn certificate_pem(&self) -> String {
        let body = STANDARD.encode(&self.certificate);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// The public key as a JWK (RFC 7517/7518 §6.2) with `kid`, `use` and `alg`,
    /// as SMART Health Card verifiers fetch it from `/.well-known/jwks.json`.
    pub fn jwk(&self) -> serde_json::Value {
        let (x, y) = xy(&self.public_key);
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.certificate)],
        })
    }
}

/// The EU DCC `kid` of a DER certificate: SHA-256, first 8 bytes.
pub fn dcc_kid(certificate_der: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(certificate_der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&digest[..8]);
    kid
}

fn xy(sec1: &[u8]) -> (&[u8], &[u8]) {
    // 0x04 || x (32) || y (32); anything else was refused on load.
    let body = sec1.get(1..).unwrap_or_default();
    body.split_at(body.len().min(32))
}

/// The JWK thumbprint of a P-256 public key (RFC 7638 §3.2: the required
/// members `crv`, `kty`, `x`, `y` in lexicographic order, no whitespace).
pub fn jwk_thumbprint(public_sec1: &[u8]) -> String {
    let (x, y) = xy(public_sec1);
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    kid: String,
    purpose: String,
    /// base64 SEC1 uncompressed point.
    public_key: String,
    /// base64 DER certificate.
    certificate: String,
    file: String,
    created_at: String,
    status: KeyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Metadata {
    format: u32,
    keys: Vec<Record>,
}

struct Entry {
    record: Record,
    public: Vec<u8>,
    certificate: Vec<u8>,
    /// Present exactly for active keys. `SigningKey` zeroizes on drop.
    secret: Option<SigningKey>,
}

impl Entry {
    fn info(&self) -> Es256KeyInfo {
        Es256KeyInfo {
            kid: self.record.kid.clone(),
            purpose: self.record.purpose.clone(),
            public_key: self.public.clone(),
            certificate: self.certificate.clone(),
            active: self.record.status == KeyStatus::Active,
            created_at: self.record.created_at.clone(),
            retired_at: self.record.retired_at.clone(),
        }
    }
}

struct Inner {
    dir: PathBuf,
    config: Es256Config,
    entries: RwLock<Vec<Entry>>,
    /// Set once the keys come from a shared store ([`Es256Keyring::load_shared`]).
    shared: AtomicBool,
}

/// What an ES256 rotation did.
#[derive(Debug, Clone)]
pub struct Es256Rotation {
    /// The key that signs from now on.
    pub new: Es256KeyInfo,
    /// The key it replaced (verifies only).
    pub retired: Es256KeyInfo,
}

/// One ES256 key as the shared store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedEs256Key {
    /// JWK thumbprint (RFC 7638), base64url.
    pub kid: String,
    /// The purpose the key serves.
    pub purpose: String,
    /// Uncompressed SEC1 point (65 bytes).
    pub public_key: Vec<u8>,
    /// DER X.509 certificate.
    pub certificate: Vec<u8>,
    /// Whether the key signs (else it verifies only).
    pub active: bool,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Retirement time, RFC 3339, for retired keys.
    pub retired_at: Option<String>,
    /// The private scalar sealed with the [`StoreKey`], for active keys only.
    pub sealed: Option<Vec<u8>>,
}

impl fmt::Debug for SharedEs256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedEs256Key")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("active", &self.active)
            .field("sealed", &self.sealed.as_ref().map(|_| "<sealed>"))
            .finish()
    }
}

/// The host's ES256 keys. Cheap to clone and share across threads.
#[derive(Clone)]
pub struct Es256Keyring {
    inner: Arc<Inner>,
}

impl fmt::Debug for Es256Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<String> = self
            .inner
            .entries
            .read()
            .iter()
            .map(|e| e.record.kid.clone())
            .collect();
        f.debug_struct("Es256Keyring")
            .field("dir", &self.inner.dir)
            .field("keys", &kids)
            .finish()
    }
}

impl Es256Keyring {
    /// Opens `<keys_dir>/es256`, creating it and a key (with its certificate)
    /// for every configured purpose that has no active key.
    pub fn open_or_create(keys_dir: &Path, config: &Es256Config) -> Result<Self, KeyError> {
        if config.country.len() != 2 || !config.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(KeyError::InvalidConfig(format!(
                "es256 country {:?} is not an ISO 3166-1 alpha-2 code",
                config.country
            )));
        }
        ensure_private_dir(keys_dir)?;
        let dir = keys_dir.join(DIR);
        ensure_private_dir(&dir)?;
        let metadata_path = dir.join(METADATA_FILE);
        let records = match read_optional(&metadata_path)? {
            None => Vec::new(),
            Some(bytes) => {
                let meta: Metadata = serde_json::from_slice(&bytes)
                    .map_err(|e| corrupt(&metadata_path, e.to_string()))?;
                if meta.format != METADATA_FORMAT {
                    return Err(corrupt(
                        &metadata_path,
                        format!("unsupported format {}", meta.format),
                    ));
                }
                meta.keys
            }
        };
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            entries.push(load(&dir, record, &metadata_path)?);
        }
        let mut changed = false;
        for purpose in &config.purposes {
            if purpose.is_empty() {
                return Err(KeyError::InvalidConfig("empty es256 key purpose".into()));
            }
            if !entries
                .iter()
                .any(|e| e.record.purpose == *purpose && e.record.status == KeyStatus::Active)
            {
                entries.push(install(&dir, purpose, config)?);
                changed = true;
            }
        }
        if changed {
            write_metadata(&dir, &entries)?;
        }
        Ok(Es256Keyring {
            inner: Arc::new(Inner {
                dir,
                config: config.clone(),
                entries: RwLock::new(entries),
                shared: AtomicBool::new(false),
            }),
        })
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> Vec<Es256KeyInfo> {
        self.inner.entries.read().iter().map(Entry::info).collect()
    }

    /// The active key of `purpose`.
    pub fn active(&self, purpose: &str) -> Result<Es256KeyInfo, KeyError> {
        self.inner
            .entries
            .read()
            .iter()
            .find(|e| e.record.purpose == purpose && e.record.status == KeyStatus::Active)
            .map(Entry::info)
            .ok_or_else(|| KeyError::NoActiveKey(purpose.to_owned()))
    }

    /// The key `kid`, active or retired.
    pub fn find(&self, kid: &str) -> Option<Es256KeyInfo> {
        self.inner
            .entries
            .read()
            .iter()
            .find(|e| e.record.kid == kid)
            .map(Entry::info)
    }

    /// ES256 signature of `msg` (SHA-256 inside) as the 64-byte `r || s`
    /// that JWS (RFC 7518 §3.4) and COSE (RFC 9053 §2.1) carry. Deterministic
    /// nonces (RFC 6979).
    pub fn sign(&self, kid: &str, msg: &[u8]) -> Result<[u8; 64], KeyError> {
        let entries = self.inner.entries.read();
        let entry = entries
            .iter()
            .find(|e| e.record.kid == kid)
            .ok_or_else(|| KeyError::UnknownKey(kid.to_owned()))?;
        let key = entry
            .secret
            .as_ref()
            .ok_or_else(|| KeyError::Retired(kid.to_owned()))?;
        let signature: Signature = key.sign(msg);
        Ok(signature.to_bytes().into())
    }

    /// Whether `sig` (64-byte `r || s`) is a valid ES256 signature of `msg`
    /// by `kid`. `Ok(false)` for a malformed or wrong signature.
    pub fn verify(&self, kid: &str, msg: &[u8], sig: &[u8]) -> Result<bool, KeyError> {
        // Under the read lock, like `sign`: no copy of the key's facts
        // (its certificate among them) per verification.
        let entries = self.inner.entries.read();
        let entry = entries
            .iter()
            .find(|e| e.record.kid == kid)
            .ok_or_else(|| KeyError::UnknownKey(kid.to_owned()))?;
        Ok(verify_es256(&entry.public, msg, sig))
    }

    /// Replaces the active key of `purpose` with a fresh one (and certificate);
    /// the old key is retired and keeps verifying. Refused once the keys
    /// come from a shared store: they rotate through it.
    pub fn rotate(&self, purpose: &str) -> Result<Es256Rotation, KeyError> {
        if self.is_shared() {
            return Err(KeyError::Shared);
        }
        let dir = &self.inner.dir;
        let mut entries = self.inner.entries.write();
        let old = entries
            .iter()
            .position(|e| e.record.purpose == purpose && e.record.status == KeyStatus::Active)
            .ok_or_else(|| KeyError::NoActiveKey(purpose.to_owned()))?;
        let new_entry = install(dir, purpose, &self.inner.config)?;
        let now = data_integrity::now_date_time_stamp();
        let mut records: Vec<Record> = entries.iter().map(|e| e.record.clone()).collect();
        if let Some(r) = records.get_mut(old) {
            r.status = KeyStatus::Retired;
            r.retired_at = Some(now.clone());
        }
        records.push(new_entry.record.clone());
        write_records(dir, &records)?;
        let retired = entries.get_mut(old).map(|e| {
            e.record.status = KeyStatus::Retired;
            e.record.retired_at = Some(now);
            e.secret = None;
            // Best effort, as for Ed25519 keys: the key no longer signs.
            let _ = fs::remove_file(dir.join(&e.record.file));
            e.info()
        });
        let new = new_entry.info();
        entries.push(new_entry);
        let retired = retired.ok_or_else(|| KeyError::NoActiveKey(purpose.to_owned()))?;
        Ok(Es256Rotation { new, retired })
    }

    /// Replaces the certificate of `kid` (e.g. with the one the country's
    /// CSCA signed for it). The certificate must be for this key. Refused
    /// once the keys come from a shared store.
    pub fn set_certificate(&self, kid: &str, der: &[u8]) -> Result<(), KeyError> {
        if self.is_shared() {
            return Err(KeyError::Shared);
        }
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| KeyError::InvalidConfig(format!("not a DER certificate: {e}")))?;
        let spki_key = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let mut entries = self.inner.entries.write();
        let entry = entries
            .iter_mut()
            .find(|e| e.record.kid == kid)
            .ok_or_else(|| KeyError::UnknownKey(kid.to_owned()))?;
        if spki_key != entry.public {
            return Err(KeyError::KeyMismatch {
                key_id: kid.to_owned(),
            });
        }
        entry.certificate = der.to_vec();
        entry.record.certificate = STANDARD.encode(der);
        let records: Vec<Record> = entries.iter().map(|e| e.record.clone()).collect();
        write_records(&self.inner.dir, &records)
    }

    /// This keyring's keys as the shared store keeps them (active ones
    /// sealed): what a host puts into a store holding no ES256 key yet.
    pub fn to_shared(&self, store: &StoreKey) -> Result<Vec<SharedEs256Key>, KeyError> {
        let entries = self.inner.entries.read();
        entries
            .iter()
            .map(|e| {
                let sealed = match &e.secret {
                    Some(key) => Some(store.seal(&e.record.kid, &scalar(key))?),
                    None => None,
                };
                let info = e.info();
                Ok(SharedEs256Key {
                    kid: info.kid,
                    purpose: info.purpose,
                    public_key: info.public_key,
                    certificate: info.certificate,
                    active: info.active,
                    created_at: info.created_at,
                    retired_at: info.retired_at,
                    sealed,
                })
            })
            .collect()
    }

    /// A fresh key for `purpose`, with its self-signed certificate, sealed
    /// for the store; not in the keyring until the store has it and
    /// [`Es256Keyring::load_shared`] reads it back.
    pub fn new_shared_key(
        &self,
        purpose: &str,
        store: &StoreKey,
    ) -> Result<SharedEs256Key, KeyError> {
        let key = SigningKey::random(&mut OsRng);
        let public = sec1(key.verifying_key());
        let kid = jwk_thumbprint(&public);
        let certificate = self_signed_certificate(&key, &self.inner.config)?;
        let sealed = store.seal(&kid, &scalar(&key))?;
        Ok(SharedEs256Key {
            kid,
            purpose: purpose.to_owned(),
            public_key: public,
            certificate,
            active: true,
            created_at: data_integrity::now_date_time_stamp(),
            retired_at: None,
            sealed: Some(sealed),
        })
    }

    /// Makes the store's keys this keyring's keys, checked first: each kid
    /// is its public key's thumbprint, each certificate is for its key, one
    /// active key per purpose, and every active key's sealed half opens
    /// with `store` to that public key. Nothing changes if a check fails.
    /// The directory is rewritten to match (PEMs of active keys, then the
    /// metadata, then retired keys' PEMs deleted), and from now on
    /// [`Es256Keyring::rotate`] refuses.
    pub fn load_shared(&self, keys: &[SharedEs256Key], store: &StoreKey) -> Result<(), KeyError> {
        let dir = &self.inner.dir;
        let from_store = dir.join("<shared store>");
        let mut loaded: Vec<Entry> = Vec::with_capacity(keys.len());
        for k in keys {
            if VerifyingKey::from_sec1_bytes(&k.public_key).is_err()
                || jwk_thumbprint(&k.public_key) != k.kid
            {
                return Err(corrupt(
                    &from_store,
                    format!("{}: the public key does not match its kid", k.kid),
                ));
            }
            if certificate_key(&k.certificate).as_deref() != Some(k.public_key.as_slice()) {
                return Err(corrupt(
                    &from_store,
                    format!("{}: the certificate is not this key's", k.kid),
                ));
            }
            let duplicate = loaded.iter().any(|e| {
                e.record.kid == k.kid
                    || (k.active
                        && e.record.purpose == k.purpose
                        && e.record.status == KeyStatus::Active)
            });
            if duplicate {
                return Err(corrupt(
                    &from_store,
                    format!(
                        "duplicate kid or second active key for purpose {:?}",
                        k.purpose
                    ),
                ));
            }
            let secret = match (k.active, &k.sealed) {
                (true, Some(sealed)) => {
                    let bytes = store.open(&k.kid, sealed)?;
                    let key = SigningKey::from_slice(bytes.as_slice())
                        .map_err(|_| sealing(&k.kid, "not a P-256 private key"))?;
                    if sec1(key.verifying_key()) != k.public_key {
                        return Err(KeyError::KeyMismatch {
                            key_id: k.kid.clone(),
                        });
                    }
                    Some(key)
                }
                (true, None) => {
                    return Err(corrupt(
                        &from_store,
                        format!("active key {} has no private half", k.kid),
                    ))
                }
                (false, _) => None,
            };
            loaded.push(Entry {
                record: Record {
                    kid: k.kid.clone(),
                    purpose: k.purpose.clone(),
                    public_key: STANDARD.encode(&k.public_key),
                    certificate: STANDARD.encode(&k.certificate),
                    file: format!("{}.pem", k.kid),
                    created_at: k.created_at.clone(),
                    status: if k.active {
                        KeyStatus::Active
                    } else {
                        KeyStatus::Retired
                    },
                    retired_at: k.retired_at.clone(),
                },
                public: k.public_key.clone(),
                certificate: k.certificate.clone(),
                secret,
            });
        }

        let mut entries = self.inner.entries.write();
        // The directory mirrors the store: active keys' PEMs, then the
        // metadata naming them, then retired keys' PEMs go.
        for e in &loaded {
            if let Some(key) = &e.secret {
                let pem =
                    key.to_pkcs8_pem(LineEnding::LF)
                        .map_err(|err| KeyError::InvalidKeyFile {
                            path: dir.join(&e.record.file),
                            reason: err.to_string(),
                        })?;
                write_atomic(dir, &e.record.file, pem.as_bytes())?;
            }
        }
        write_metadata(dir, &loaded)?;
        for e in loaded.iter().filter(|e| e.secret.is_none()) {
            // Best effort: the key no longer signs anywhere.
            let _ = fs::remove_file(dir.join(&e.record.file));
        }
        *entries = loaded;
        self.inner.shared.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the keys come from a shared store ([`Es256Keyring::load_shared`]).
    pub fn is_shared(&self) -> bool {
        self.inner.shared.load(Ordering::SeqCst)
    }
}

/// The 32-byte private scalar of `key`, as the store seals it.
fn scalar(key: &SigningKey) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(key.to_bytes().into())
}

/// The public key (SEC1) a DER certificate names, if it parses.
fn certificate_key(der: &[u8]) -> Option<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec(),
    )
}

/// A key held only in memory (with its certificate), for isolated runs such
/// as the conformance suite: never written anywhere.
pub struct EphemeralEs256Key {
    key: SigningKey,
    info: Es256KeyInfo,
}

impl fmt::Debug for EphemeralEs256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralEs256Key")
            .field("kid", &self.info.kid)
            .finish_non_exhaustive()
    }
}

impl EphemeralEs256Key {
    /// A fresh key for `purpose`, with a self-signed certificate.
    pub fn generate(purpose: &str, config: &Es256Config) -> Result<Self, KeyError> {
        let key = SigningKey::random(&mut OsRng);
        let public = sec1(key.verifying_key());
        let certificate = self_signed_certificate(&key, config)?;
        let info = Es256KeyInfo {
            kid: jwk_thumbprint(&public),
            purpose: purpose.to_owned(),
            public_key: public,
            certificate,
            active: true,
            created_at: data_integrity::now_date_time_stamp(),
            retired_at: None,
        };
        Ok(EphemeralEs256Key { key, info })
    }

    /// Its public facts.
    pub fn info(&self) -> &Es256KeyInfo {
        &self.info
    }

    /// ES256 `r || s` signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let signature: Signature = self.key.sign(msg);
        signature.to_bytes().into()
    }
}

/// Verifies an ES256 `r || s` signature with a SEC1 public key.
///
/// An uncompressed point (what the keyring, trust files and JWKs hold) is
/// verified by `ring`, whose P-256 is assembly: 38 µs a verification on
/// the 2-core reference machine against 197 µs for the `p256` crate, and
/// verification is most of what verifying an EU DCC, SMART Health Card or
/// WHO DDCC artifact costs (`divoc bench formats`, docs/PERFORMANCE.md). A
/// compressed point, which `ring` does not read, goes through `p256`. Both
/// accept exactly the valid signatures: `r` and `s` in `[1, n − 1]`, a high
/// `s` included.
pub fn verify_es256(public_sec1: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    if public_sec1.len() == 65 && public_sec1.first() == Some(&0x04) {
        return ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            public_sec1,
        )
        .verify(msg, sig)
        .is_ok();
    }
    let (Ok(key), Ok(signature)) = (
        VerifyingKey::from_sec1_bytes(public_sec1),
        Signature::from_slice(sig),
    ) else {
        return false;
    };
    key.verify(msg, &signature).is_ok()
}

fn corrupt(path: &Path, reason: String) -> KeyError {
    KeyError::CorruptMetadata {
        path: path.to_owned(),
        reason,
    }
}

fn load(dir: &Path, record: Record, metadata_path: &Path) -> Result<Entry, KeyError> {
    let public = STANDARD
        .decode(&record.public_key)
        .map_err(|e| corrupt(metadata_path, format!("{}: public key: {e}", record.kid)))?;
    let certificate = STANDARD
        .decode(&record.certificate)
        .map_err(|e| corrupt(metadata_path, format!("{}: certificate: {e}", record.kid)))?;
    if VerifyingKey::from_sec1_bytes(&public).is_err() || jwk_thumbprint(&public) != record.kid {
        return Err(corrupt(
            metadata_path,
            format!("{}: the public key does not match its kid", record.kid),
        ));
    }
    let secret = if record.status == KeyStatus::Active {
        let path = dir.join(&record.file);
        let pem = fs::read_to_string(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::InvalidKeyFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if sec1(key.verifying_key()) != public {
            return Err(KeyError::KeyMismatch {
                key_id: record.kid.clone(),
            });
        }
        Some(key)
    } else {
        None
    };
    Ok(Entry {
        record,
        public,
        certificate,
        secret,
    })
}

fn sec1(key: &VerifyingKey) -> Vec<u8> {
    key.to_encoded_point(false).as_bytes().to_vec()
}

fn install(dir: &Path, purpose: &str, config: &Es256Config) -> Result<Entry, KeyError> {
    let key = SigningKey::random(&mut OsRng);
    let public = sec1(key.verifying_key());
    let kid = jwk_thumbprint(&public);
    let certificate = self_signed_certificate(&key, config)?;
    let file = format!("{kid}.pem");
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::InvalidKeyFile {
            path: dir.join(&file),
            reason: e.to_string(),
        })?;
    write_atomic(dir, &file, pem.as_bytes())?;
    Ok(Entry {
        record: Record {
            kid,
            purpose: purpose.to_owned(),
            public_key: STANDARD.encode(&public),
            certificate: STANDARD.encode(&certificate),
            file,
            created_at: data_integrity::now_date_time_stamp(),
            status: KeyStatus::Active,
            retired_at: None,
        },
        public,
        certificate,
        secret: Some(key),
    })
}

/// A self-signed X.509 v3 certificate (RFC 5280) for `key`: subject
/// `CN=<common-name>,C=<country>`, random 16-byte serial, not a CA.
fn self_signed_certificate(key: &SigningKey, config: &Es256Config) -> Result<Vec<u8>, KeyError> {
    let fail = |what: &str, e: &dyn fmt::Display| {
        KeyError::InvalidConfig(format!("document-signer certificate: {what}: {e}"))
    };
    // RFC 4514 string; commas and the like in the configured name are escaped.
    let escape = |s: &str| {
        s.chars()
            .flat_map(|c| {
                let needs = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=');
                needs.then_some('\\').into_iter().chain(std::iter::once(c))
            })
            .collect::<String>()
    };
    let subject = Name::from_str(&format!(
        "CN={},C={}",
        escape(&config.common_name),
        config.country
    ))
    .map_err(|e| fail("subject", &e))?;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // positive INTEGER
    serial[0] |= 0x01; // and never with a leading zero byte
    let serial = SerialNumber::new(&serial).map_err(|e| fail("serial", &e))?;
    let validity = Validity::from_now(CERTIFICATE_VALIDITY).map_err(|e| fail("validity", &e))?;
    let spki_der = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| fail("public key", &e))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
        .map_err(|e| fail("public key", &e))?;
    // The Leaf profile: basicConstraints CA=false, key usage
    // digitalSignature (and nonRepudiation), subject and authority key ids.
    let builder = CertificateBuilder::new(
        Profile::Leaf {
            issuer: subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        serial,
        validity,
        subject,
        spki,
        key,
    )
    .map_err(|e| fail("builder", &e))?;
    let cert = builder
        .build::<DerSignature>()
        .map_err(|e| fail("signing", &e))?;
    cert.to_der().map_err(|e| fail("encoding", &e))
}

fn write_metadata(dir: &Path, entries: &[Entry]) -> Result<(), KeyError> {
    let records: Vec<Record> = entries.iter().map(|e| e.record.clone()).collect();
    write_records(dir, &records)
}

fn write_records(dir: &Path, records: &[Record]) -> Result<(), KeyError> {
    let meta = Metadata {
        format: METADATA_FORMAT,
        keys: records.to_vec(),
    };
    let mut json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| corrupt(&dir.join(METADATA_FILE), e.to_string()))?;
    json.push(b'\n');
    write_atomic(dir, METADATA_FILE, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example_shape() {
        // RFC 7638 §3.1 uses an RSA key; for EC the member order is crv, kty,
        // x, y. Check the computation against an independent encoding.
        let key = SigningKey::random(&mut OsRng);
        let public = sec1(key.verifying_key());
        let x = URL_SAFE_NO_PAD.encode(&public[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&public[33..65]);
        let json = serde_json::json!({"crv": "P-256", "kty": "EC", "x": x, "y": y});
        // serde_json's map keeps keys sorted (no preserve_order): the
        // canonical form of RFC 7638.
        let canonical = serde_json::to_string(&json).unwrap();
        assert_eq!(
            jwk_thumbprint(&public),
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        );
    }

    /// `ring` (uncompressed points) and `p256` (compressed ones) give the
    /// same answers: good, tampered, truncated, zero, high-`s`.
    #[test]
    fn both_verifiers_agree() {
        let key = SigningKey::random(&mut OsRng);
        let uncompressed = sec1(key.verifying_key());
        let compressed = key
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .to_vec();
        assert_eq!((uncompressed.len(), compressed.len()), (65, 33));
        let msg = b"a COSE Sig_structure or a JWS signing input";
        let good: Signature = key.sign(msg);
        let (r, s) = good.split_scalars();
        let high_s = Signature::from_scalars(r, -s).unwrap();
        let good = good.to_bytes().to_vec();
        let mut tampered = good.clone();
        tampered[10] ^= 1;
        let mut zero_r = good.clone();
        zero_r[..32].fill(0);
        let high_s = high_s.to_bytes().to_vec();
        for (sig, m, expected) in [
            (&good, &msg[..], true),
            (&good, &b"another message"[..], false),
            (&tampered, &msg[..], false),
            (&zero_r, &msg[..], false),
            (&good[..63].to_vec(), &msg[..], false),
            (&high_s, &msg[..], true),
        ] {
            assert_eq!(verify_es256(&uncompressed, m, sig), expected);
            assert_eq!(verify_es256(&compressed, m, sig), expected);
        }
        assert!(!verify_es256(&uncompressed[..64], msg, &good));
        let mut off_curve = uncompressed.clone();
        off_curve[64] ^= 1;
        assert!(!verify_es256(&off_curve, msg, &good));
    }

    #[test]
    fn keys_persist_sign_verify_and_rotate() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Es256Config {
            country: "IN".into(),
            ..Es256Config::default()
        };
        let ring = Es256Keyring::open_or_create(&tmp.path().join("keys"), &config).unwrap();
        let key = ring.active("certificate").unwrap();
        assert_eq!(key.public_key.len(), 65);
        let sig = ring.sign(&key.kid, b"hello").unwrap();
        assert!(ring.verify(&key.kid, b"hello", &sig).unwrap());
        assert!(!ring.verify(&key.kid, b"hellO", &sig).unwrap());
        assert!(!ring.verify(&key.kid, b"hello", &sig[..63]).unwrap());

        // The certificate is for this key, self-signed, and parses.
        let cert = x509_cert::Certificate::from_der(&key.certificate).unwrap();
        assert_eq!(
            cert.tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
            key.public_key.as_slice()
        );
        assert_eq!(cert.tbs_certificate.issuer, cert.tbs_certificate.subject);
        assert!(cert.tbs_certificate.subject.to_string().contains("C=IN"));
        assert!(key
            .certificate_pem()
            .starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(key.dcc_kid(), dcc_kid(&key.certificate));

        // Reopening finds the same key; rotation retires it.
        let again = Es256Keyring::open_or_create(&tmp.path().join("keys"), &config).unwrap();
        assert_eq!(again.active("certificate").unwrap().kid, key.kid);
        let rotation = again.rotate("certificate").unwrap();
        let new = rotation.new;
        assert_eq!(rotation.retired.kid, key.kid);
        assert!(!rotation.retired.active);
        assert_ne!(new.kid, key.kid);
        assert!(matches!(
            again.sign(&key.kid, b"x"),
            Err(KeyError::Retired(_))
        ));
        assert!(again.verify(&key.kid, b"hello", &sig).unwrap());
        let reopened = Es256Keyring::open_or_create(&tmp.path().join("keys"), &config).unwrap();
        assert_eq!(reopened.active("certificate").unwrap().kid, new.kid);
        assert_eq!(reopened.keys().len(), 2);
        assert!(!tmp
            .path()
            .join("keys")
            .join(DIR)
            .join(format!("{}.pem", key.kid))
            .exists());
    }

    #[test]
    fn refuses_a_bad_country() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Es256Config {
            country: "India".into(),
            ..Es256Config::default()
        };
        assert!(matches!(
            Es256Keyring::open_or_create(&tmp.path().join("keys"), &config),
            Err(KeyError::InvalidConfig(_))
        ));
    }

    /// Two hosts with one store key: the first host's keys go into the
    /// store, the second loads them, a rotation made for the store signs on
    /// both, and a retired key's private half is gone from both
    /// directories.
    #[test]
    fn keys_shared_through_a_store_rotate_on_every_host() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Es256Config::default();
        let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
        let a = Es256Keyring::open_or_create(&a_dir, &config).unwrap();
        let store = StoreKey::open_or_create(&a_dir).unwrap();
        let b = Es256Keyring::open_or_create(&b_dir, &config).unwrap();
        fs::copy(
            a_dir.join(super::super::shared::STORE_KEY_FILE),
            b_dir.join(super::super::shared::STORE_KEY_FILE),
        )
        .unwrap();
        let b_store = StoreKey::open_or_create(&b_dir).unwrap();
        let mut shared = a.to_shared(&store).unwrap();
        assert!(shared.iter().all(|k| k.sealed.is_some()));
        assert!(!format!("{shared:?}").contains(&format!("{:?}", shared[0].sealed)));
        b.load_shared(&shared, &b_store).unwrap();
        a.load_shared(&shared, &store).unwrap();
        let first = a.active("certificate").unwrap();
        assert_eq!(b.active("certificate").unwrap(), first);
        assert!(matches!(a.rotate("certificate"), Err(KeyError::Shared)));
        assert!(matches!(
            a.set_certificate(&first.kid, &first.certificate),
            Err(KeyError::Shared)
        ));

        // Host b rotates: the store retires the old key and erases its half.
        let new = b.new_shared_key("certificate", &b_store).unwrap();
        for k in &mut shared {
            k.active = false;
            k.retired_at = Some(new.created_at.clone());
            k.sealed = None;
        }
        shared.push(new.clone());
        for (ring, store, dir) in [(&a, &store, &a_dir), (&b, &b_store, &b_dir)] {
            ring.load_shared(&shared, store).unwrap();
            assert_eq!(ring.active("certificate").unwrap().kid, new.kid);
            let sig = ring.sign(&new.kid, b"m").unwrap();
            assert!(verify_es256(&new.public_key, b"m", &sig));
            assert!(matches!(
                ring.sign(&first.kid, b"m"),
                Err(KeyError::Retired(_))
            ));
            assert!(ring.find(&first.kid).is_some(), "retired keys verify");
            // The directory mirrors the store: a restart opens the same keys.
            let again = Es256Keyring::open_or_create(dir, &config).unwrap();
            assert_eq!(again.keys(), ring.keys());
            assert!(!dir.join(DIR).join(format!("{}.pem", first.kid)).exists());
        }

        // What the store holds is checked before anything changes.
        let before = a.keys();
        let other = StoreKey::open_or_create(&tmp.path().join("other")).unwrap();
        assert!(matches!(
            a.load_shared(&shared, &other),
            Err(KeyError::Sealed { .. })
        ));
        let mut foreign_certificate = shared.clone();
        foreign_certificate.last_mut().unwrap().certificate = first.certificate.clone();
        assert!(matches!(
            a.load_shared(&foreign_certificate, &store),
            Err(KeyError::CorruptMetadata { .. })
        ));
        let mut two_active = shared.clone();
        two_active.push(a.new_shared_key("certificate", &store).unwrap());
        assert!(a.load_shared(&two_active, &store).is_err());
        let mut moved = shared.clone();
        let stranger = a.new_shared_key("other", &store).unwrap();
        moved.push(SharedEs256Key {
            sealed: shared.last().unwrap().sealed.clone(),
            ..stranger
        });
        assert!(matches!(
            a.load_shared(&moved, &store),
            Err(KeyError::Sealed { .. })
        ));
        assert_eq!(a.keys(), before);
    }
}
