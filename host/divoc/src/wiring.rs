//! Adapters that back plugin capabilities with the real storage and keys.
//! The runtime defines the traits; this binary is the only place that knows
//! both sides.

use divoc_crypto::keys::Keyring;
use divoc_runtime::{HostKey, KvBackend, KvError, SignerBackend};
use divoc_storage::{Database, StorageError};

/// Plugin kv in the host's SQLite database, through the group-commit writer:
/// a `set` returns once it is committed.
pub struct StorageKv(pub Database);

fn backend(e: StorageError) -> KvError {
    match e {
        StorageError::QuotaExceeded {
            quota, would_use, ..
        } => KvError::QuotaExceeded { quota, would_use },
        other => KvError::Backend(other.to_string()),
    }
}

impl KvBackend for StorageKv {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.kv_get(plugin, key).map_err(backend)
    }

    fn set(&self, plugin: &str, key: &str, value: &[u8], quota_bytes: u64) -> Result<(), KvError> {
        self.0
            .kv_set(plugin, key, value, quota_bytes)
            .wait()
            .map_err(backend)
    }

    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        self.0
            .kv_delete(plugin, key)
            .wait()
            .map(|_| ())
            .map_err(backend)
    }

    fn list(&self, plugin: &str, prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        self.0
            .kv_list(plugin, prefix, limit as usize)
            .map_err(backend)
    }
}

/// Signing through the issuer keyring; private keys stay inside it.
pub struct KeyringSigner(pub Keyring);

impl SignerBackend for KeyringSigner {
    fn keys(&self) -> Vec<HostKey> {
        self.0
            .public_keys()
            .into_iter()
            .map(|k| HostKey {
                key_id: k.key_id,
                purpose: k.purpose,
                public_key: k.public_key.to_vec(),
                active: k.active,
            })
            .collect()
    }

    fn sign(&self, key_id: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        self.0
            .sign(key_id, data)
            .map(|s| s.to_vec())
            .map_err(|e| e.to_string())
    }

    fn verify(&self, key_id: &str, data: &[u8], signature: &[u8]) -> Result<bool, String> {
        self.0
            .verify(key_id, data, signature)
            .map_err(|e| e.to_string())
    }
}

/// Programmes' eligibility policies, asked through the plugin runtime: the
/// version serving at the time of each request decides (hot swap).
pub struct RuntimePolicies(pub divoc_runtime::Runtime);

impl divoc_rollout::PolicyPlugins for RuntimePolicies {
    fn evaluate(
        &self,
        name: &str,
        q: &divoc_rollout::EligibilityQuery,
    ) -> Result<divoc_rollout::Decision, String> {
        use divoc_runtime::types::eligibility::{Decision, PreviousDose, Query};
        use divoc_runtime::types::{Identity, Recipient};
        let plugin = self.0.rollout_policy(name).map_err(|e| e.to_string())?;
        let query = Query {
            recipient: Recipient {
                name: q.name.clone(),
                dob: Some(q.dob.clone()),
                age: None,
                gender: Some(q.gender.clone()),
                nationality: q.nationality.clone(),
                identity: Identity {
                    id_type: "national-id".into(),
                    value: q.identity.clone().unwrap_or_default(),
                },
                contacts: Vec::new(),
                address: None,
            },
            program: q.programme.clone(),
            vaccine: q.vaccine.clone(),
            dose: q.dose,
            date: q.date.to_string(),
            previous_doses: q
                .previous_doses
                .iter()
                .map(|(vaccine, dose, date)| PreviousDose {
                    vaccine: vaccine.clone(),
                    dose: *dose,
                    date: date.to_string(),
                })
                .collect(),
        };
        match plugin.evaluate(&query).map_err(|e| e.to_string())? {
            Decision::Allow => Ok(divoc_rollout::Decision::Allow),
            Decision::Deny(reasons) => Ok(divoc_rollout::Decision::Deny(reasons)),
        }
    }
}
