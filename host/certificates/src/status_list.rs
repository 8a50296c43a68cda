//! W3C Bitstring Status List v1.0 (<https://www.w3.org/TR/vc-bitstring-status-list/>).
//!
//! Each certificate gets one global status index; `index / LIST_SIZE` picks
//! the list and `index % LIST_SIZE` the bit. Every list exists twice, once
//! per status purpose (`revocation-N`, `suspension-N`), because a status
//! list credential has exactly one `statusPurpose` (§2.2).
//!
//! Slots are handed out in a scrambled order ([`slot_for_sequence`]) rather
//! than 0, 1, 2…, following the spec's privacy advice (§6.4 "Group
//! Privacy"/§7 "Index allocation") that indexes should not reveal issuance
//! order.

use std::io::{Read, Write};

use base64::Engine;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::{json, Value};

use crate::error::CertError;

/// Bits per list: the spec's minimum of 16 KiB (§2.2, "at least 131,072"),
/// which is also the herd-privacy size it recommends.
pub const LIST_SIZE: u64 = 131_072;
/// `LIST_SIZE - 1`; LIST_SIZE is a power of two.
const MASK: u64 = LIST_SIZE - 1;

/// Why a status bit is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusPurpose {
    /// Permanently invalid (includes superseded by a correction).
    Revocation,
    /// Temporarily invalid.
    Suspension,
}

impl StatusPurpose {
    /// The `statusPurpose` value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusPurpose::Revocation => "revocation",
            StatusPurpose::Suspension => "suspension",
        }
    }

    /// The list id used in URLs, e.g. `revocation-0`.
    pub fn list_id(self, list: u64) -> String {
        format!("{}-{list}", self.as_str())
    }

    /// Parses a list id back into purpose and list number.
    pub fn parse_list_id(list_id: &str) -> Option<(StatusPurpose, u64)> {
        let (purpose, n) = list_id.rsplit_once('-')?;
        let purpose = match purpose {
            "revocation" => StatusPurpose::Revocation,
            "suspension" => StatusPurpose::Suspension,
            _ => return None,
        };
        if n.is_empty()
            || !n.bytes().all(|b| b.is_ascii_digit())
            || (n.len() > 1 && n.starts_with('0'))
        {
            return None;
        }
        Some((purpose, n.parse().ok()?))
    }
}

/// A bijection on `0..LIST_SIZE` (odd multiply, xor-shift, odd multiply,
/// all invertible modulo 2^17): the `n`-th certificate of a list gets slot
/// `slot_for_sequence(n)`. Not secret, only unordered.
pub fn slot_for_sequence(n: u64) -> u64 {
    let mut x = (n & MASK).wrapping_mul(0x9E3B) & MASK;
    x ^= x >> 9;
    x = x.wrapping_mul(0x6A5D) & MASK;
    x ^= x >> 7;
    x
}

/// The inverse of [`slot_for_sequence`], as a lookup table (built once at
/// start-up to recover the allocator position from stored slots).
pub fn sequence_table() -> Vec<u32> {
    let mut table = vec![0u32; LIST_SIZE as usize];
    for n in 0..LIST_SIZE {
        if let Some(e) = table.get_mut(slot_for_sequence(n) as usize) {
            *e = u32::try_from(n).unwrap_or(0);
        }
    }
    table
}

/// A list's bits, index 0 being the most significant bit of byte 0 (§3.2
/// "Bitstring Generation Algorithm": "the left-most bit is index 0").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitstring(Vec<u8>);

impl Default for Bitstring {
    fn default() -> Self {
        Bitstring(vec![0; (LIST_SIZE / 8) as usize])
    }
}

impl Bitstring {
    /// Sets bit `index`; indexes outside the list are ignored.
    pub fn set(&mut self, index: u64) {
        if let Some(b) = self.0.get_mut((index / 8) as usize) {
            *b |= 0x80 >> (index % 8);
        }
    }

    /// Reads bit `index`; `None` outside the list.
    pub fn get(&self, index: u64) -> Option<bool> {
        let b = self.0.get(usize::try_from(index / 8).ok()?)?;
        Some(b & (0x80 >> (index % 8)) != 0)
    }

    /// `encodedList`: GZIP, then multibase base64url without padding
    /// (prefix `u`) (§3.2 step 3-4).
    pub fn encode(&self) -> Result<String, CertError> {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&self.0)
            .map_err(|e| CertError::Internal(format!("gzip: {e}")))?;
        let bytes = gz
            .finish()
            .map_err(|e| CertError::Internal(format!("gzip: {e}")))?;
        Ok(format!(
            "u{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// Decodes an `encodedList` (§3.3 "Bitstring Expansion Algorithm").
    /// Refuses lists shorter than the minimum or that inflate beyond 16 MiB
    /// (a gzip bomb from a hostile status server).
    pub fn decode(encoded: &str) -> Option<Bitstring> {
        let b64 = encoded.strip_prefix('u')?;
        let gz = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()?;
        let mut out = Vec::new();
        GzDecoder::new(gz.as_slice())
            .take(16 << 20)
            .read_to_end(&mut out)
            .ok()?;
        (out.len() as u64 >= LIST_SIZE / 8).then_some(Bitstring(out))
    }
}

/// Builds the unsigned `BitstringStatusListCredential` (§2.2).
///
/// `ttl_ms` tells verifiers how long they may cache it.
pub fn status_list_credential(
    url: &str,
    issuer: &str,
    purpose: StatusPurpose,
    bits: &Bitstring,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<Value, CertError> {
    Ok(json!({
        "@context": [crate::credential::CREDENTIALS_V2],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": divoc_time::format_seconds(now_ms),
        "credentialSubject": {
            "id": format!("{url}#list"),
            "type": "BitstringStatusList",
            "statusPurpose": purpose.as_str(),
            "encodedList": bits.encode()?,
            "ttl": ttl_ms,
        },
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slot_permutation_is_a_bijection() {
        let table = sequence_table();
        let mut seen = vec![false; LIST_SIZE as usize];
        for n in 0..LIST_SIZE {
            let s = slot_for_sequence(n);
            assert!(!seen[s as usize], "slot {s} used twice");
            seen[s as usize] = true;
            assert_eq!(u64::from(table[s as usize]), n);
        }
        // Not the identity: the first few slots are scattered.
        assert_ne!(slot_for_sequence(1), 1);
    }

    #[test]
    fn bitstring_round_trips_msb_first() {
        let mut b = Bitstring::default();
        b.set(0);
        b.set(94567);
        assert_eq!(b.0[0], 0x80);
        let enc = b.encode().unwrap();
        assert!(enc.starts_with("uH4sI"), "gzip magic in base64url: {enc}");
        let d = Bitstring::decode(&enc).unwrap();
        assert_eq!(d.get(0), Some(true));
        assert_eq!(d.get(1), Some(false));
        assert_eq!(d.get(94567), Some(true));
        assert_eq!(d.get(LIST_SIZE), None);
    }

    #[test]
    fn decodes_the_spec_example_list() {
        // Bitstring Status List v1.0, Example 2 (an empty 16 KiB list).
        let spec = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA";
        let d = Bitstring::decode(spec).unwrap();
        assert_eq!(d.0.len(), 16384);
        assert!(d.0.iter().all(|b| *b == 0));
    }

    #[test]
    fn list_ids_parse() {
        assert_eq!(
            StatusPurpose::parse_list_id("revocation-0"),
            Some((StatusPurpose::Revocation, 0))
        );
        assert_eq!(
            StatusPurpose::parse_list_id("suspension-12"),
            Some((StatusPurpose::Suspension, 12))
        );
        assert_eq!(StatusPurpose::parse_list_id("revocation-01"), None);
        assert_eq!(StatusPurpose::parse_list_id("other-1"), None);
    }
}
