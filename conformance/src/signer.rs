//! A throw-away Ed25519 signer for conformance runs.
//!
//! `HostServices::isolated()` has no keys, so a certificate-format plugin
//! could never show that what it encodes decodes with a valid signature. The
//! suite instead holds one fresh key per requested purpose, generated for the
//! run and never written anywhere: the run stays isolated from production
//! keys, and the encode/decode round trip can be checked.

use std::collections::BTreeMap;

use divoc_runtime::{HostKey, SignerBackend};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};

/// One active key per purpose, alive for one run.
pub struct EphemeralSigner {
    keys: BTreeMap<String, (String, SigningKey)>,
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
        let keys = purposes
            .into_iter()
            .map(|purpose| {
                let key_id = format!("did:example:divoc-conformance#{purpose}");
                (key_id, (purpose.clone(), SigningKey::generate(&mut rng)))
            })
            .collect();
        EphemeralSigner { keys }
    }
}

impl SignerBackend for EphemeralSigner {
    fn keys(&self) -> Vec<HostKey> {
        self.keys
            .iter()
            .map(|(key_id, (purpose, key))| HostKey {
                key_id: key_id.clone(),
                purpose: purpose.clone(),
                public_key: key.verifying_key().to_bytes().to_vec(),
                active: true,
            })
            .collect()
    }

    fn sign(&self, key_id: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        let (_, key) = self
            .keys
            .get(key_id)
            .ok_or_else(|| format!("no key `{key_id}`"))?;
        Ok(key.sign(data).to_bytes().to_vec())
    }

    fn verify(&self, key_id: &str, data: &[u8], signature: &[u8]) -> Result<bool, String> {
        let (_, key) = self
            .keys
            .get(key_id)
            .ok_or_else(|| format!("no key `{key_id}`"))?;
        // A signature of the wrong length is simply not valid, not an error.
        let Ok(signature) = Signature::from_slice(signature) else {
            return Ok(false);
        };
        Ok(key.verifying_key().verify(data, &signature).is_ok())
    }
}
