//! What the runtime needs from the rest of the host, as narrow traits.
//!
//! The runtime never writes SQL and never touches private keys: plugin
//! key/value storage is provided by the storage layer through [`KvBackend`],
//! and signing by the key module through [`SignerBackend`]. The binary wires
//! the real implementations in; [`MemoryKv`] serves tools that must not touch
//! the production database (the conformance runner, `divoc plugin check`).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Plugin-private key/value storage. Implementations must make `set` and
/// `delete` durable before returning.
pub trait KvBackend: Send + Sync + 'static {
    /// The value stored under `key` for `plugin`, if any.
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Stores the value unless the plugin's total (keys + values) would exceed
    /// `quota_bytes`, in which case nothing is stored.
    fn set(&self, plugin: &str, key: &str, value: &[u8], quota_bytes: u64) -> Result<(), KvError>;
    /// Removes `key` for `plugin`; removing a missing key is not an error.
    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError>;
    /// Keys starting with `prefix` (exact bytes), in byte order.
    fn list(&self, plugin: &str, prefix: &str, limit: u32) -> Result<Vec<String>, KvError>;
}

/// Why a [`KvBackend`] operation failed. Plugins see `QuotaExceeded` as
/// `rejected` and `Backend` as `unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// A `set` would take the plugin past its quota; nothing was stored.
    #[error("kv quota of {quota} bytes exceeded (would use {would_use})")]
    QuotaExceeded {
        /// The plugin's quota, in bytes of keys and values.
        quota: u64,
        /// Bytes the plugin would have used after the write.
        would_use: u64,
    },
    /// The storage itself failed; holds its error message.
    #[error("kv storage failed: {0}")]
    Backend(String),
}

/// The signature algorithm of a host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA P-256 with SHA-256 (RFC 7518 §3.4).
    Es256,
}

/// A public key held by the host, as shown to plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// Ed25519: the verification method id (`did:web:example.org#z6Mk…`);
    /// ES256: the JWK thumbprint (RFC 7638).
    pub key_id: String,
    /// What the key signs for, e.g. `certificate`; plugins are granted purposes.
    pub purpose: String,
    /// The key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// Ed25519: 32 raw bytes; ES256: the uncompressed SEC1 point.
    pub public_key: Vec<u8>,
    /// Whether this is the key that currently signs for its purpose; rotated-out
    /// keys stay listed so that old signatures verify.
    pub active: bool,
    /// The key's X.509 certificate (DER), if the host holds one.
    pub certificate: Option<Vec<u8>>,
}

/// Signing with host-held keys. Private key bytes never leave the
/// implementation; the runtime checks the plugin's granted purposes first.
pub trait SignerBackend: Send + Sync + 'static {
    /// Every key, active and rotated-out, of every algorithm.
    fn keys(&self) -> Vec<HostKey>;
    /// Signature of `data` with `key_id` (must be an active key), in the
    /// key's algorithm: Ed25519 64 bytes, ES256 64-byte `r || s`.
    fn sign(&self, key_id: &str, data: &[u8]) -> Result<Vec<u8>, String>;
    /// Whether `signature` is a valid signature of `data` by `key_id`
    /// (active or rotated-out); `Ok(false)` for a bad signature, `Err` for an
    /// unknown key or a backend failure.
    fn verify(&self, key_id: &str, data: &[u8], signature: &[u8]) -> Result<bool, String>;
}

/// An e-mail a plugin asked the host to send (the `mail` capability).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// The sender address granted to the plugin.
    pub from: String,
    /// Recipients' addresses.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// Optional HTML alternative.
    pub html: Option<String>,
    /// `(file name, media type, bytes)`.
    pub attachments: Vec<(String, String, Vec<u8>)>,
    /// The `Message-ID` to use (derived from the plugin's idempotency key).
    pub message_id: String,
}

/// Why a mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The message or an address is malformed.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The relay refused it for good (5xx).
    #[error("refused by the mail relay: {0}")]
    Refused(String),
    /// The relay could not be reached or refused for now (4xx).
    #[error("mail relay unavailable: {0}")]
    Unavailable(String),
}

/// Delivery of plugins' e-mail to an SMTP relay.
pub trait MailBackend: Send + Sync + 'static {
    /// Sends `mail`; `Ok` once the relay accepted it.
    fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;
}

/// The services plugin capabilities are backed by.
#[derive(Clone)]
pub struct HostServices {
    /// Backs the `kv` capability.
    pub kv: Arc<dyn KvBackend>,
    /// Backs the `signer` capability.
    pub signer: Arc<dyn SignerBackend>,
    /// Backs the `mail` capability.
    pub mail: Arc<dyn MailBackend>,
}

impl std::fmt::Debug for HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostServices").finish_non_exhaustive()
    }
}

impl HostServices {
    /// In-memory kv and no keys: for tools that run plugins in isolation.
    pub fn isolated() -> HostServices {
        HostServices {
            kv: Arc::new(MemoryKv::default()),
            signer: Arc::new(NoKeys),
            mail: Arc::new(NoMail),
        }
    }
}

/// An in-process, non-durable [`KvBackend`] for isolated runs.
#[derive(Debug, Default)]
pub struct MemoryKv {
    data: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl KvBackend for MemoryKv {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .data
            .lock()
            .get(&(plugin.to_string(), key.to_string()))
            .cloned())
    }

    fn set(&self, plugin: &str, key: &str, value: &[u8], quota_bytes: u64) -> Result<(), KvError> {
        let mut data = self.data.lock();
        let used: u64 = data
            .iter()
            .filter(|((p, k), _)| p == plugin && k != key)
            .map(|((_, k), v)| (k.len() + v.len()) as u64)
            .sum();
        let would_use = used + (key.len() + value.len()) as u64;
        if would_use > quota_bytes {
            return Err(KvError::QuotaExceeded {
                quota: quota_bytes,
                would_use,
            });
        }
        data.insert((plugin.to_string(), key.to_string()), value.to_vec());
        Ok(())
    }

    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        self.data
            .lock()
            .remove(&(plugin.to_string(), key.to_string()));
        Ok(())
    }

    fn list(&self, plugin: &str, prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        Ok(self
            .data
            .lock()
            .keys()
            .filter(|(p, k)| p == plugin && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .take(limit as usize)
            .collect())
    }
}

/// No mail relay configured: every send is `unavailable`.
#[derive(Debug)]
pub struct NoMail;

impl MailBackend for NoMail {
    fn send(&self, _mail: &OutgoingMail) -> Result<(), MailError> {
        Err(MailError::Unavailable(
            "no mail relay is configured ([mail] smtp-url)".into(),
        ))
    }
}

/// A signer with no keys, for isolated runs.
#[derive(Debug)]
pub struct NoKeys;

impl SignerBackend for NoKeys {
    fn keys(&self) -> Vec<HostKey> {
        Vec::new()
    }
    fn sign(&self, key_id: &str, _data: &[u8]) -> Result<Vec<u8>, String> {
        Err(format!("no key `{key_id}`"))
    }
    fn verify(&self, key_id: &str, _data: &[u8], _signature: &[u8]) -> Result<bool, String> {
        Err(format!("no key `{key_id}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_kv_enforces_quota_and_prefixes() {
        let kv = MemoryKv::default();
        kv.set("a", "k1", b"12345", 20).unwrap();
        kv.set("a", "k2", b"12345", 20).unwrap();
        assert!(matches!(
            kv.set("a", "k3", b"123456789", 20),
            Err(KvError::QuotaExceeded { quota: 20, .. })
        ));
        assert_eq!(kv.get("a", "k3").unwrap(), None);
        // Overwriting a key counts its new size only.
        kv.set("a", "k1", b"1234567", 20).unwrap();
        kv.set("b", "k1", b"x", 20).unwrap();
        assert_eq!(kv.list("a", "k", 10).unwrap(), vec!["k1", "k2"]);
        assert_eq!(kv.list("a", "k", 1).unwrap(), vec!["k1"]);
        kv.delete("a", "k1").unwrap();
        assert_eq!(kv.get("a", "k1").unwrap(), None);
    }
}
