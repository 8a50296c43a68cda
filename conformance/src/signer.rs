//! A throw-away signer for conformance runs.
//!
//! `HostServices::isolated()` has no keys, so a certificate-format plugin
//! could never show that what it encodes decodes with a valid signature. The
//! suite instead holds fresh keys per requested purpose — one Ed25519 key and
//! one ES256 key with a self-signed certificate — generated for the run and
//! never written anywhere: the run stays isolated from production keys, and
//! the encode/decode round trip can be checked in either algorithm.

use std::collections::BTreeMap;

use divoc_crypto::keys::es256::{verify_es256, EphemeralEs256Key, Es256Config};
use divoc_runtime::{HostKey, KeyAlgorithm, SignerBackend};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};

enum Key {
    Ed25519(SigningKey),
    Es256(EphemeralEs256Key),
}

/// Active keys per purpose, alive for one run.
pub struct EphemeralSigner {
    /// key id → (purpose, key)
    keys: BTreeMap<String, (String, Key)>,
}

impl std::fmt::Debug for EphemeralSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralSigner")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl EphemeralSigner {
    pub fn new<'a>(purposes: impl IntoIterator<Item = &'a String>) -> EphemeralSigner {
        let mut rng = rand::rngs::OsRng;
        let config = Es256Config {
            common_name: "DIVOC-rs conformance".into(),
            ..Es256Config::default()
        };
        let mut keys = BTreeMap::new();
        for purpose in purposes {
            let key_id = format!("did:example:divoc-conformance#{purpose}");
            keys.insert(
                key_id,
                (
                    purpose.clone(),
                    Key::Ed25519(SigningKey::generate(&mut rng)),
                ),
            );
            // Generating a P-256 key and certificate in memory cannot fail
            // for a valid configuration; a run without it would only lack
            // the ES256 key, which the format cases then report.
            if let Ok(key) = EphemeralEs256Key::generate(purpose, &config) {
                keys.insert(key.info().kid.clone(), (purpose.clone(), Key::Es256(key)));
            }
        }
        EphemeralSigner { keys }
    }
}

impl SignerBackend for EphemeralSigner {
    fn keys(&self) -> Vec<HostKey> {
        self.keys
            .iter()
            .map(|(key_id, (purpose, key))| match key {
                Key::Ed25519(key) => HostKey {
                    key_id: key_id.clone(),
                    purpose: purpose.clone(),
                    algorithm: KeyAlgorithm::Ed25519,
                    public_key: key.verifying_key().to_bytes().to_vec(),
                    active: true,
                    certificate: None,
                },
                Key::Es256(key) => HostKey {
                    key_id: key_id.clone(),
                    purpose: purpose.clone(),
                    algorithm: KeyAlgorithm::Es256,
                    public_key: key.info().public_key.clone(),
                    active: true,
                    certificate: Some(key.info().certificate.clone()),
                },
            })
            .collect()
    }

    fn sign(&self, key_id: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        let (_, key) = self
            .keys
            .get(key_id)
            .ok_or_else(|| format!("no key `{key_id}`"))?;
        Ok(match key {
            Key::Ed25519(key) => key.sign(data).to_bytes().to_vec(),
            Key::Es256(key) => key.sign(data).to_vec(),
        })
    }

    fn verify(&self, key_id: &str, data: &[u8], signature: &[u8]) -> Result<bool, String> {
        let (_, key) = self
            .keys
            .get(key_id)
            .ok_or_else(|| format!("no key `{key_id}`"))?;
        Ok(match key {
            // A signature of the wrong length is simply not valid, not an error.
            Key::Ed25519(key) => Signature::from_slice(signature)
                .is_ok_and(|s| key.verifying_key().verify(data, &s).is_ok()),
            Key::Es256(key) => verify_es256(&key.info().public_key, data, signature),
        })
    }
}
