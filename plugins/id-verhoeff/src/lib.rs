//! Identity provider for numeric national ids protected by a Verhoeff check
//! digit (as Aadhaar numbers are), with an optional one-time-password step.
//!
//! Configuration (all optional):
//! - `identity_types`: id types handled (default `["national-id"]`)
//! - `length`: number of digits (default 12)
//! - `otp`: ask for a one-time password after the number validates (default false)
//! - `otp_url`: where to POST `{"id-type", "normalized-id", "code"}` for delivery
//!   (required when `otp` is true; the operator's SMS gateway)
//! - `otp_ttl_seconds` (default 300), `otp_max_attempts` (default 3)

use divoc_sdk::identity::{Challenge, Claim, Guest, Verification, VerifiedIdentity};
use divoc_sdk::{clock, config, http, kv, random, Error};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Config {
    identity_types: Vec<String>,
    length: usize,
    otp: bool,
    otp_url: Option<String>,
    otp_ttl_seconds: u64,
    otp_max_attempts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            identity_types: vec!["national-id".into()],
            length: 12,
            otp: false,
            otp_url: None,
            otp_ttl_seconds: 300,
            otp_max_attempts: 3,
        }
    }
}

/// What is kept in kv between the two steps. Only a hash of the code.
#[derive(Debug, Serialize, Deserialize)]
struct PendingOtp {
    id_type: String,
    normalized_id: String,
    code_sha256: String,
    expires_at: u64,
    attempts: u32,
}

// Verhoeff tables: the dihedral group D5 multiplication table, the position
// permutation, and the inverse table.
const D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];
const INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// `true` when the last digit of `digits` is the Verhoeff check digit of the rest.
pub fn verhoeff_valid(digits: &[u8]) -> bool {
    let mut c = 0u8;
    for (i, &d) in digits.iter().rev().enumerate() {
        c = D[c as usize][P[i % 8][d as usize] as usize];
    }
    c == 0
}

/// The Verhoeff check digit for `digits`.
pub fn verhoeff_check_digit(digits: &[u8]) -> u8 {
    let mut c = 0u8;
    for (i, &d) in digits.iter().rev().enumerate() {
        c = D[c as usize][P[(i + 1) % 8][d as usize] as usize];
    }
    INV[c as usize]
}

/// Strips spaces and hyphens and checks length, digits and check digit.
/// `Err` carries a reason that is safe to show to the user.
pub fn normalize(value: &str, length: usize) -> Result<String, String> {
    let n: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if n.is_empty() {
        return Err("the number is empty".into());
    }
    if !n.chars().all(|c| c.is_ascii_digit()) {
        return Err("the number may contain only digits, spaces and hyphens".into());
    }
    if n.len() != length {
        return Err(format!(
            "the number must have {length} digits, not {}",
            n.len()
        ));
    }
    let digits: Vec<u8> = n.bytes().map(|b| b - b'0').collect();
    if !verhoeff_valid(&digits) {
        return Err("the number's check digit is wrong; please check for typing mistakes".into());
    }
    Ok(n)
}

fn sha256_hex(challenge_id: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(challenge_id.as_bytes());
    h.update(b":");
    h.update(code.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Masks all but the last two digits, e.g. `**********46`.
pub fn mask(id: &str) -> String {
    let keep = id.len().saturating_sub(2);
    id.char_indices()
        .map(|(i, c)| if i < keep { '*' } else { c })
        .collect()
}

/// Compares without an early exit, so timing does not reveal a prefix match.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn verified(id_type: String, normalized_id: String) -> Verification {
    Verification::Verified(VerifiedIdentity {
        id_type,
        normalized_id,
        attributes: Vec::new(),
    })
}

fn start_otp(cfg: &Config, id_type: String, normalized_id: String) -> Result<Verification, Error> {
    let url = cfg.otp_url.as_deref().ok_or_else(|| {
        Error::internal("`otp = true` needs `otp_url` in the plugin configuration")
    })?;
    let challenge_id = random::hex(16);
    let code = random::digits(6);
    let pending = PendingOtp {
        id_type: id_type.clone(),
        normalized_id: normalized_id.clone(),
        code_sha256: sha256_hex(&challenge_id, &code),
        expires_at: clock::unix_seconds().saturating_add(cfg.otp_ttl_seconds),
        attempts: 0,
    };
    kv::set_json(&format!("otp/{challenge_id}"), &pending)?;
    let body =
        serde_json::json!({ "id-type": id_type, "normalized-id": normalized_id, "code": code });
    let resp = http::post_json(url, &body)?;
    if !resp.is_success() {
        divoc_sdk::warn!("OTP delivery answered HTTP {}", resp.status);
        return Err(Error::unavailable(format!(
            "OTP delivery failed with HTTP {}",
            resp.status
        )));
    }
    divoc_sdk::log::debug("OTP challenge issued");
    Ok(Verification::Challenge(Challenge {
        prompt: format!(
            "Enter the code sent to the phone registered for {}",
            mask(&normalized_id)
        ),
        challenge_id,
    }))
}

fn finish_otp(
    cfg: &Config,
    normalized_id: String,
    challenge_id: &str,
    response: &str,
) -> Result<Verification, Error> {
    let key = format!("otp/{challenge_id}");
    let Some(mut pending) = kv::get_json::<PendingOtp>(&key)? else {
        return Ok(Verification::Rejected(
            "the code has expired or was already used; request a new one".into(),
        ));
    };
    if clock::unix_seconds() > pending.expires_at {
        kv::delete(&key)?;
        return Ok(Verification::Rejected(
            "the code has expired; request a new one".into(),
        ));
    }
    if pending.normalized_id != normalized_id {
        return Ok(Verification::Rejected(
            "the code was issued for another number".into(),
        ));
    }
    let expected = pending.code_sha256.clone();
    if constant_time_eq(
        sha256_hex(challenge_id, response.trim()).as_bytes(),
        expected.as_bytes(),
    ) {
        kv::delete(&key)?;
        return Ok(verified(pending.id_type, pending.normalized_id));
    }
    pending.attempts += 1;
    if pending.attempts >= cfg.otp_max_attempts {
        kv::delete(&key)?;
        return Ok(Verification::Rejected(
            "too many wrong codes; request a new one".into(),
        ));
    }
    kv::set_json(&key, &pending)?;
    Ok(Verification::Rejected("the code is wrong".into()))
}

struct Plugin;

impl Guest for Plugin {
    fn identity_types() -> Vec<String> {
        config::load::<Config>()
            .map(|c| c.identity_types)
            .unwrap_or_else(|_| Config::default().identity_types)
    }

    fn verify(claim: Claim) -> Result<Verification, Error> {
        let cfg: Config = config::load()?;
        if !cfg.identity_types.contains(&claim.id_type) {
            return Err(Error::invalid_input(format!(
                "unsupported identity type {}",
                divoc_sdk::quote(&claim.id_type)
            )));
        }
        let normalized = match normalize(&claim.value, cfg.length) {
            Ok(n) => n,
            Err(reason) => return Ok(Verification::Rejected(reason)),
        };
        if !cfg.otp {
            return Ok(verified(claim.id_type, normalized));
        }
        match (
            claim.challenge_id.as_deref(),
            claim.challenge_response.as_deref(),
        ) {
            (Some(id), Some(response)) => finish_otp(&cfg, normalized, id, response),
            _ => start_otp(&cfg, claim.id_type, normalized),
        }
    }
}

divoc_sdk::export_identity_provider!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_verhoeff_vectors() {
        // 236 has check digit 3 (the classic example).
        assert_eq!(verhoeff_check_digit(&[2, 3, 6]), 3);
        assert!(verhoeff_valid(&[2, 3, 6, 3]));
        assert!(!verhoeff_valid(&[2, 3, 6, 4]));
        assert_eq!(verhoeff_check_digit(&[1, 2, 3, 4, 5]), 1);
    }

    #[test]
    fn normalizes_and_validates() {
        let base = [2u8, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4];
        let check = verhoeff_check_digit(&base);
        let raw = format!("2341 2341-234{check}");
        assert_eq!(normalize(&raw, 12), Ok(format!("23412341234{check}")));
    }

    #[test]
    fn rejects_with_reasons() {
        assert!(normalize("", 12).unwrap_err().contains("empty"));
        assert!(normalize("12ab", 12).unwrap_err().contains("only digits"));
        assert!(normalize("1234", 12).unwrap_err().contains("12 digits"));
        let base = [2u8, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4];
        let wrong = (verhoeff_check_digit(&base) + 1) % 10;
        assert!(normalize(&format!("23412341234{wrong}"), 12)
            .unwrap_err()
            .contains("check digit"));
    }

    #[test]
    fn detects_every_single_digit_error() {
        let base = [9u8, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1];
        let mut full = base.to_vec();
        full.push(verhoeff_check_digit(&base));
        assert!(verhoeff_valid(&full));
        for i in 0..full.len() {
            for d in 0..10u8 {
                if d != full[i] {
                    let mut m = full.clone();
                    m[i] = d;
                    assert!(!verhoeff_valid(&m));
                }
            }
        }
    }

    #[test]
    fn masks_and_hashes() {
        assert_eq!(mask("123456789012"), "**********12");
        assert_ne!(sha256_hex("a", "123456"), sha256_hex("b", "123456"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
    }

    #[test]
    fn config_defaults() {
        let c: Config = config::parse("{}").unwrap();
        assert_eq!(c.length, 12);
        assert!(!c.otp);
        let c: Config = config::parse(r#"{"otp": true, "identity_types": ["aadhaar"]}"#).unwrap();
        assert!(c.otp);
        assert_eq!(c.identity_types, vec!["aadhaar".to_string()]);
    }
}
