//! Multibase and Multikey helpers.
//!
//! Only the one encoding DIVOC needs is supported: base58btc, whose Multibase
//! prefix is the character `z` ([Multibase draft][multibase], §2 and the
//! registry in Appendix D.1). Ed25519 public keys are wrapped as a *Multikey*:
//! the two-byte multicodec header `0xed 0x01` (the unsigned varint of code
//! `0xed`, "ed25519-pub") followed by the 32 raw key bytes, then multibase
//! encoded ([Controlled Identifiers v1.0 §2.2.2 Multikey][cid-multikey]). Every
//! such key therefore starts with `z6Mk`.
//!
//! [multibase]: https://datatracker.ietf.org/doc/html/draft-multiformats-multibase
//! [cid-multikey]: https://www.w3.org/TR/cid-1.0/#Multikey

use thiserror::Error;

/// Multibase prefix character for base58btc.
pub const BASE58BTC_PREFIX: char = 'z';

/// Multicodec header for an Ed25519 public key (`ed25519-pub`, code 0xed, varint-encoded).
pub const ED25519_PUB_HEADER: [u8; 2] = [0xed, 0x01];

/// Multicodec header for an Ed25519 secret key (`ed25519-priv`, code 0x1300, varint-encoded).
///
/// Used only to read the W3C test-vector secret key; DIVOC stores its own keys
/// as PKCS#8 PEM.
pub const ED25519_PRIV_HEADER: [u8; 2] = [0x80, 0x26];

/// Why a multibase or Multikey string was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MultibaseError {
    /// The string does not start with the base58btc prefix `z`.
    #[error("multibase value must use base58btc (prefix 'z')")]
    UnsupportedBase,
    /// The payload contains characters outside the base58btc alphabet.
    #[error("invalid base58btc payload")]
    InvalidBase58,
    /// The decoded bytes do not carry the expected multicodec header.
    #[error("unexpected multicodec header")]
    WrongCodec,
    /// The decoded key material has the wrong length.
    #[error("expected {expected} bytes of key material, found {found}")]
    WrongLength {
        /// Length the codec requires.
        expected: usize,
        /// Length actually found.
        found: usize,
    },
}

/// Encode bytes as a base58btc multibase string (`z…`).
pub fn encode_base58btc(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(1 + bytes.len() * 138 / 100 + 1);
    out.push(BASE58BTC_PREFIX);
    out.push_str(&bs58::encode(bytes).into_string());
    out
}

/// Decode a base58btc multibase string (`z…`) to bytes.
pub fn decode_base58btc(value: &str) -> Result<Vec<u8>, MultibaseError> {
    let payload = value
        .strip_prefix(BASE58BTC_PREFIX)
        .ok_or(MultibaseError::UnsupportedBase)?;
    bs58::decode(payload)
        .into_vec()
        .map_err(|_| MultibaseError::InvalidBase58)
}

/// Encode an Ed25519 public key in Multikey form (`z6Mk…`).
pub fn ed25519_public_key_to_multikey(public_key: &[u8; 32]) -> String {
    let mut buf = [0u8; 34];
    buf[..2].copy_from_slice(&ED25519_PUB_HEADER);
    buf[2..].copy_from_slice(public_key);
    encode_base58btc(&buf)
}

/// Decode a Multikey-encoded Ed25519 public key (`z6Mk…`) to its 32 raw bytes.
pub fn ed25519_public_key_from_multikey(value: &str) -> Result<[u8; 32], MultibaseError> {
    decode_with_header(value, ED25519_PUB_HEADER)
}

/// Decode a Multikey-encoded Ed25519 secret key (`z3u2…`) to its 32-byte seed.
///
/// The caller owns the returned secret and must zeroize it.
pub fn ed25519_secret_key_from_multikey(value: &str) -> Result<[u8; 32], MultibaseError> {
    decode_with_header(value, ED25519_PRIV_HEADER)
}

fn decode_with_header(value: &str, header: [u8; 2]) -> Result<[u8; 32], MultibaseError> {
    let mut bytes = zeroize::Zeroizing::new(decode_base58btc(value)?);
    let body = bytes
        .strip_prefix(&header)
        .ok_or(MultibaseError::WrongCodec)?;
    let key: [u8; 32] = body.try_into().map_err(|_| MultibaseError::WrongLength {
        expected: 32,
        found: body.len(),
    })?;
    zeroize::Zeroize::zeroize(&mut *bytes);
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests panic on failure by design.
mod tests {
    use super::*;

    // Public key from the W3C vc-di-eddsa test vectors (keyPair.json).
    const SPEC_PUBLIC: &str = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2";

    #[test]
    fn multikey_round_trip() {
        let key = ed25519_public_key_from_multikey(SPEC_PUBLIC).unwrap();
        assert_eq!(ed25519_public_key_to_multikey(&key), SPEC_PUBLIC);
    }

    #[test]
    fn rejects_other_bases_and_codecs() {
        assert_eq!(
            ed25519_public_key_from_multikey("uAAAA"),
            Err(MultibaseError::UnsupportedBase)
        );
        assert_eq!(
            decode_base58btc("z0OIl"),
            Err(MultibaseError::InvalidBase58)
        );
        // A valid base58btc value without the ed25519-pub header.
        let other = encode_base58btc(&[0x12, 0x00, 1, 2, 3]);
        assert_eq!(
            ed25519_public_key_from_multikey(&other),
            Err(MultibaseError::WrongCodec)
        );
        let short = encode_base58btc(&[0xed, 0x01, 1, 2, 3]);
        assert_eq!(
            ed25519_public_key_from_multikey(&short),
            Err(MultibaseError::WrongLength {
                expected: 32,
                found: 3
            })
        );
    }

    #[test]
    fn every_ed25519_multikey_starts_with_z6mk() {
        for fill in [0u8, 0x7f, 0xff] {
            assert!(ed25519_public_key_to_multikey(&[fill; 32]).starts_with("z6Mk"));
        }
    }
}
