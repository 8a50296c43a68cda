//! Signing with host-held keys (`divoc:plugin/signer`).

pub use crate::bindings::divoc::plugin::signer::{
    active_key, public_keys, sign, verify, Algorithm, PublicKey,
};
use crate::Error;

/// Signs `data` with the active Ed25519 key of `purpose`; returns the key id
/// and the signature.
pub fn sign_with_active(purpose: &str, data: &[u8]) -> Result<(String, Vec<u8>), Error> {
    let key = active_key(purpose)?;
    let signature = sign(&key.key_id, key.algorithm, data)?;
    Ok((key.key_id, signature))
}

/// Verifies an Ed25519 signature by one of the host's keys.
pub fn verify_ed25519(key_id: &str, data: &[u8], signature: &[u8]) -> Result<bool, Error> {
    verify(key_id, Algorithm::Ed25519, data, signature)
}
