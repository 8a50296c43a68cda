//! Verification: signature, validity period and status, each reported
//! separately so a verifier app can show why.
//!
//! Offline without a status list the answer is "signature valid, revocation
//! status unknown" with `valid: true` — never "invalid": DIVOC's online-only
//! check made genuine certificates look forged without a network.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use divoc_crypto::data_integrity::{verify_proof, ASSERTION_METHOD};
use divoc_crypto::multibase;

use crate::credential::certificate_id_of;
use crate::dates;
use crate::status_list::{Bitstring, StatusPurpose};

/// What to verify.
#[derive(Debug, Clone)]
pub enum VerifyInput {
    /// A signed credential as JSON.
    Json(Value),
    /// The text content of a QR code (any supported prefix).
    QrText(String),
}

/// The status part of a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatusVerdict {
    /// Neither revoked nor suspended, and inside its validity period.
    Valid,
    /// Revoked (or superseded by a correction).
    Revoked,
    /// Suspended at the time of the check.
    Suspended,
    /// Past `validUntil`.
    Expired,
    /// Before `validFrom`.
    NotYetValid,
    /// No status information was available (offline).
    Unknown,
}

/// The signature check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    /// Whether the proof verified with a trusted key of the issuer.
    pub ok: bool,
    /// The verification method that signed.
    pub key_id: Option<String>,
    /// The credential's issuer.
    pub issuer: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// All checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checks {
    /// Signature.
    pub signature: SignatureCheck,
    /// Status and validity period.
    pub status: StatusVerdict,
}

/// What the credential claims, for display. Personal data, so only for the
/// verifier's screen, never for logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClaimsSummary {
    /// Certificate id.
    pub certificate_id: Option<String>,
    /// Recipient name.
    pub name: Option<String>,
    /// Date of birth.
    pub birth_date: Option<String>,
    /// Program.
    pub program: Option<String>,
    /// Vaccine.
    pub vaccine: Option<String>,
    /// Dose number.
    pub dose: Option<u64>,
    /// Doses in the series.
    pub total_doses: Option<u64>,
    /// Whether the dose is a booster.
    pub booster: Option<bool>,
    /// Vaccination date-time.
    pub date: Option<String>,
    /// `validFrom`.
    pub valid_from: Option<String>,
    /// `validUntil`.
    pub valid_until: Option<String>,
}

/// The answer to "is this certificate genuine and in force?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Signature ok and status valid or unknown.
    pub valid: bool,
    /// One line for people, e.g. "signature valid, revocation status unknown".
    pub message: String,
    /// Each check.
    pub checks: Checks,
    /// The claims (absent when the input could not be parsed).
    pub claims: Option<ClaimsSummary>,
}

/// One `credentialStatus` entry of a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry<'a> {
    /// The certificate id, when the credential is one of ours.
    pub certificate_id: Option<&'a str>,
    /// `statusPurpose`.
    pub purpose: StatusPurpose,
    /// `statusListCredential`.
    pub list_url: &'a str,
    /// `statusListIndex`.
    pub index: u64,
}

/// Where status comes from: the database (online), verified status lists
/// (offline with a cache), or nothing.
pub trait StatusSource {
    /// `Some(true)` if the bit for this entry is set, `None` if unknown.
    fn is_set(&self, entry: &StatusEntry<'_>) -> Option<bool>;
}

/// No status information: offline without a status cache.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStatus;

impl StatusSource for NoStatus {
    fn is_set(&self, _: &StatusEntry<'_>) -> Option<bool> {
        None
    }
}

/// Status list credentials a verifier has fetched or cached, each checked
/// against the issuer's keys before use.
#[derive(Debug, Clone, Default)]
pub struct StatusLists {
    lists: HashMap<String, (StatusPurpose, Bitstring)>,
}

impl StatusLists {
    /// Adds a signed `BitstringStatusListCredential` after verifying its
    /// proof with `resolve_key`. Returns whether it was accepted.
    pub fn add(&mut self, list: &Value, resolve_key: &dyn Fn(&str) -> Option<[u8; 32]>) -> bool {
        let issuer = list.get("issuer").and_then(Value::as_str).unwrap_or("");
        let Ok(proof) = verify_proof(list, |k| key_of_issuer(issuer, k, resolve_key)) else {
            return false;
        };
        if proof.proof_purpose != ASSERTION_METHOD {
            return false;
        }
        let subject = list.get("credentialSubject");
        let field = |k: &str| subject.and_then(|s| s.get(k)).and_then(Value::as_str);
        let purpose = match field("statusPurpose") {
            Some("revocation") => StatusPurpose::Revocation,
            Some("suspension") => StatusPurpose::Suspension,
            _ => return false,
        };
        let (Some(url), Some(bits)) = (
            list.get("id").and_then(Value::as_str),
            field("encodedList").and_then(Bitstring::decode),
        ) else {
            return false;
        };
        self.lists.insert(url.to_owned(), (purpose, bits));
        true
    }
}

impl StatusSource for StatusLists {
    fn is_set(&self, entry: &StatusEntry<'_>) -> Option<bool> {
        let (purpose, bits) = self.lists.get(entry.list_url)?;
        (*purpose == entry.purpose).then(|| bits.get(entry.index))?
    }
}

/// Public keys an offline verifier trusts, from a trust file written by
/// `divoc keys export --trust-file` ([`divoc_crypto::keys::trust_file`]).
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: HashMap<String, [u8; 32]>,
}

impl TrustStore {
    /// Reads every key (active and retired) of a trust file.
    pub fn from_trust_file(trust: &Value) -> Option<TrustStore> {
        let mut keys = HashMap::new();
        for k in trust.get("keys")?.as_array()? {
            let id = k.get("id")?.as_str()?;
            let mb = k.get("publicKeyMultibase")?.as_str()?;
            let pk = multibase::ed25519_public_key_from_multikey(mb).ok()?;
            keys.insert(id.to_owned(), pk);
        }
        Some(TrustStore { keys })
    }

    /// The public key for a verification method id.
    pub fn resolve(&self, key_id: &str) -> Option<[u8; 32]> {
        self.keys.get(key_id).copied()
    }
}

/// Only keys controlled by the credential's own issuer count: a trusted key
/// of issuer A must not vouch for a credential claiming issuer B.
fn key_of_issuer(
    issuer: &str,
    key_id: &str,
    resolve_key: &dyn Fn(&str) -> Option<[u8; 32]>,
) -> Option<[u8; 32]> {
    let (did, _) = key_id.split_once('#')?;
    if did != issuer {
        return None;
    }
    resolve_key(key_id)
}

/// The `credentialStatus` entries of a credential (object or array).
pub fn status_entries(credential: &Value) -> Vec<StatusEntry<'_>> {
    let certificate_id = certificate_id_of(credential);
    let entries: Vec<&Value> = match credential.get("credentialStatus") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    entries
        .into_iter()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("BitstringStatusListEntry"))
        .filter_map(|e| {
            let purpose = match e.get("statusPurpose")?.as_str()? {
                "revocation" => StatusPurpose::Revocation,
                "suspension" => StatusPurpose::Suspension,
                _ => return None,
            };
            Some(StatusEntry {
                certificate_id,
                purpose,
                list_url: e.get("statusListCredential")?.as_str()?,
                index: e.get("statusListIndex")?.as_str()?.parse().ok()?,
            })
        })
        .collect()
}

/// Verifies a credential: proof with a key of its issuer (active or
/// retired, as `resolve_key` answers), then validity period, then status.
pub fn verify_credential(
    credential: &Value,
    resolve_key: &dyn Fn(&str) -> Option<[u8; 32]>,
    status: &dyn StatusSource,
    now_ms: i64,
) -> Verdict {
    let issuer = credential
        .get("issuer")
        .and_then(|i| i.as_str().or_else(|| i.get("id").and_then(Value::as_str)))
        .map(str::to_owned);
    let claims = Some(summary(credential));
    // Any verifiable credential of this issuer: vaccination certificates
    // and the operator-defined types (crate::types) alike.
    let is_vc = credential
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t == "VerifiableCredential"));

    let sig = match (&issuer, is_vc) {
        (None, _) => Err("credential has no issuer".to_owned()),
        (_, false) => Err("not a VerifiableCredential".to_owned()),
        (Some(iss), true) => verify_proof(credential, |k| key_of_issuer(iss, k, resolve_key))
            .map_err(|e| e.to_string())
            .and_then(|p| {
                if p.proof_purpose == ASSERTION_METHOD {
                    Ok(p)
                } else {
                    Err(format!(
                        "proof purpose {} is not assertionMethod",
                        p.proof_purpose
                    ))
                }
            }),
    };
    let signature = match &sig {
        Ok(p) => SignatureCheck {
            ok: true,
            key_id: Some(p.verification_method.clone()),
            issuer: issuer.clone(),
            error: None,
        },
        Err(e) => SignatureCheck {
            ok: false,
            key_id: credential
                .pointer("/proof/verificationMethod")
                .and_then(Value::as_str)
                .map(str::to_owned),
            issuer: issuer.clone(),
            error: Some(e.clone()),
        },
    };
    if !signature.ok {
        return Verdict {
            valid: false,
            message: format!(
                "signature invalid: {}",
                signature.error.as_deref().unwrap_or("")
            ),
            checks: Checks {
                signature,
                status: StatusVerdict::Unknown,
            },
            claims,
        };
    }

    let status = status_verdict(credential, status, now_ms);
    let (valid, message) = match status {
        StatusVerdict::Valid => (true, "valid".to_owned()),
        StatusVerdict::Unknown => (
            true,
            "signature valid, revocation status unknown".to_owned(),
        ),
        StatusVerdict::Revoked => (false, "signature valid, certificate revoked".to_owned()),
        StatusVerdict::Suspended => (false, "signature valid, certificate suspended".to_owned()),
        StatusVerdict::Expired => (false, "signature valid, certificate expired".to_owned()),
        StatusVerdict::NotYetValid => (
            false,
            "signature valid, certificate not yet valid".to_owned(),
        ),
    };
    Verdict {
        valid,
        message,
        checks: Checks { signature, status },
        claims,
    }
}

fn status_verdict(credential: &Value, source: &dyn StatusSource, now_ms: i64) -> StatusVerdict {
    let time = |k: &str| {
        credential
            .get(k)
            .and_then(Value::as_str)
            .and_then(dates::parse_instant)
    };
    let entries = status_entries(credential);
    let bit = |p: StatusPurpose| {
        let found: Vec<Option<bool>> = entries
            .iter()
            .filter(|e| e.purpose == p)
            .map(|e| source.is_set(e))
            .collect();
        if found.contains(&Some(true)) {
            Some(true)
        } else if !found.is_empty() && found.iter().all(Option::is_some) {
            Some(false)
        } else {
            None
        }
    };
    let revoked = bit(StatusPurpose::Revocation);
    let suspended = bit(StatusPurpose::Suspension);
    if revoked == Some(true) {
        StatusVerdict::Revoked
    } else if suspended == Some(true) {
        StatusVerdict::Suspended
    } else if time("validUntil").is_some_and(|u| u < now_ms) {
        StatusVerdict::Expired
    } else if time("validFrom").is_some_and(|f| f > now_ms) {
        StatusVerdict::NotYetValid
    } else if revoked == Some(false) && suspended != Some(true) {
        StatusVerdict::Valid
    } else {
        StatusVerdict::Unknown
    }
}

fn summary(c: &Value) -> ClaimsSummary {
    // Plain lookups rather than JSON pointers: `Value::pointer` allocates
    // a string per path segment, and this runs once per verification.
    let subject = c.get("credentialSubject");
    let vaccination = subject.and_then(|s| s.get("vaccination"));
    let s = |v: Option<&Value>, k: &str| v?.get(k)?.as_str().map(str::to_owned);
    let n = |k: &str| vaccination?.get(k)?.as_u64();
    ClaimsSummary {
        certificate_id: certificate_id_of(c).map(str::to_owned),
        name: s(subject, "name"),
        birth_date: s(subject, "birthDate"),
        program: s(vaccination, "program"),
        vaccine: s(vaccination, "vaccine"),
        dose: n("dose"),
        total_doses: n("totalDoses"),
        booster: vaccination
            .and_then(|v| v.get("booster"))
            .and_then(Value::as_bool),
        date: s(vaccination, "date"),
        valid_from: s(Some(c), "validFrom"),
        valid_until: s(Some(c), "validUntil"),
    }
}
