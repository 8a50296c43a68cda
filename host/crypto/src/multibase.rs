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
///
/// 64 bytes (an Ed25519 signature, i.e. every `proofValue`) go through
/// `five8`, which converts in 64-bit limbs instead of byte by byte:
/// base58 of a signature was ~3 % of issuing a certificate.
pub fn encode_base58btc(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(1 + bytes.len() * 138 / 100 + 1);
    out.push(BASE58BTC_PREFIX);
    if let Ok(sixty_four) = <&[u8; 64]>::try_from(bytes) {
        let mut buf = [0u8; five8::BASE58_ENCODED_64_MAX_LEN];
        let len = usize::from(five8::encode_64(sixty_four, &mut buf));
        // The alphabet is ASCII, so this never fails.
        if let Ok(text) = std::str::from_utf8(&buf[..len]) {
            out.push_str(text);
            return out;
        }
        out.truncate(1);
    }
    out.push_str(&bs58::encode(bytes).into_string());
    out
}

/// Decode a base58btc multibase string (`z…`) to bytes.
pub fn decode_base58btc(value: &str) -> Result<Vec<u8>, MultibaseError> {
    let payload = value
        .strip_prefix(BASE58BTC_PREFIX)
        .ok_or(MultibaseError::UnsupportedBase)?;
    // A 64-byte value (a signature) decodes through `five8`; anything it
    // refuses (another length, a bad symbol) is decoded by `bs58`, which
    // gives the general answer.
    let mut sixty_four = [0u8; 64];
    if five8::decode_64(payload, &mut sixty_four).is_ok() {
        return Ok(sixty_four.to_vec());
    }
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
    fn sixty_four_bytes_encode_and_decode_as_bs58_does() {
        use rand::RngCore;
        let mut rng = rand::rngs::OsRng;
        for zeros in [0usize, 0, 0, 1, 2, 5, 63, 64] {
            for _ in 0..50 {
                let mut bytes = [0u8; 64];
                rng.fill_bytes(&mut bytes[zeros.min(64)..]);
                let expected = format!("z{}", bs58::encode(&bytes).into_string());
                assert_eq!(encode_base58btc(&bytes), expected);
                assert_eq!(decode_base58btc(&expected).unwrap(), bytes.to_vec());
            }
        }
        // Other lengths and bad symbols still decode (or fail) as bs58 says.
        for len in [0usize, 1, 32, 63, 65, 100] {
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            let text = encode_base58btc(&bytes);
            assert_eq!(decode_base58btc(&text).unwrap(), bytes);
        }
        // An extra leading `1` is one more zero byte: 65 bytes, not 64.
        let mut bytes = [0xffu8; 64];
        bytes[0] = 0x7f;
        let padded = format!("z1{}", bs58::encode(&bytes).into_string());
        let mut expected = vec![0u8];
        expected.extend_from_slice(&bytes);
        assert_eq!(decode_base58btc(&padded).unwrap(), expected);
        assert_eq!(
            decode_base58btc(&format!("z{}0", "2".repeat(86))),
            Err(MultibaseError::InvalidBase58)
        );
    }

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
