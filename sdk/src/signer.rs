//! Signing with host-held keys (`divoc:plugin/signer`).
//!
//! 1.0 functions (`active_key`, `public_keys`, `sign`, `verify`) see Ed25519
//! keys only; the 1.2 functions (`active_key_for`, `key_infos`, `sign_with`,
//! `verify_with`) see every algorithm the host keeps keys for, including the
//! ES256 keys and document-signer certificates EU DCC and SMART Health Cards
//! need.

pub use crate::bindings::divoc::plugin::signer::{
    active_key, active_key_for, key_infos, public_keys, sign, sign_with, verify, verify_with,
    Algorithm, KeyAlgorithm, KeyInfo, PublicKey,
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

/// Signs `data` with the active ES256 key of `purpose`: the key (with its
/// certificate) and the 64-byte `r || s` signature.
pub fn sign_es256(purpose: &str, data: &[u8]) -> Result<(KeyInfo, Vec<u8>), Error> {
    let key = active_key_for(purpose, KeyAlgorithm::Es256)?;
    let signature = sign_with(&key.key_id, KeyAlgorithm::Es256, data)?;
    Ok((key, signature))
}
