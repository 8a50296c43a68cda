//! Verification: signature, validity period and status, each reported
//! separately so a verifier app can show why.
//!
//! Verification fails closed: `valid` is true only when the signature
//! verifies with a key of the issuer **and** the status is known to be
//! good (neither revoked nor suspended) **and** the validity period holds.
//! When the status cannot be established — offline without status lists,
//! a list missing, a credential the issuer's records do not hold — the
//! verdict is its own, `status: unknown` with `valid: false`, and says why;
//! it is never reported as valid. (Nor as forged: the signature check is
//! reported on its own, which DIVOC's online-only check did not do.) A
//! status source that fails outright (a database read error) is not a
//! verdict at all: [`verify_credential`] returns [`StatusUnavailable`].

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use divoc_crypto::data_integrity::{verify_proof, ASSERTION_METHOD};
use divoc_crypto::multibase;

use crate::credential::certificate_id_of;
use crate::status_list::{Bitstring, StatusPurpose, LIST_SIZE};

/// What to verify.
#[derive(Debug, Clone)]
pub enum VerifyInput {
    /// A signed credential as JSON.
    Json(Value),
    /// The text content of a QR code (any supported prefix).
    QrText(String),
}

/// The status part of a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    /// The status could not be established (offline without status
    /// lists, or a credential the issuer's records do not hold): not valid.
    Unknown,
}

/// The signature check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Checks {
    /// Signature.
    pub signature: SignatureCheck,
    /// Status and validity period.
    pub status: StatusVerdict,
}

/// What the credential claims, for display. Personal data, so only for the
/// verifier's screen, never for logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    /// Signature ok, status known to be good, inside the validity period.
    pub valid: bool,
    /// One line for people, e.g. "signature valid, certificate revoked".
    pub message: String,
    /// Each check.
    pub checks: Checks,
    /// The claims (absent when the input could not be parsed).
    pub claims: Option<ClaimsSummary>,
    /// The format the artifact was in, when it was not our own credential
    /// (`eu-dcc`, `shc`, …); absent for our W3C credential and its QR forms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// One `credentialStatus` entry of a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry<'a> {
    /// `statusPurpose`.
    pub purpose: StatusPurpose,
    /// `statusListCredential`.
    pub list_url: &'a str,
    /// `statusListIndex`.
    pub index: u64,
}

impl StatusEntry<'_> {
    /// The global status index this entry names (list number × list size +
    /// index), from the list's own id (`…/revocation-3`): what the issuer's
    /// record holds, whatever host name the list URL was written with.
    pub fn global_index(&self) -> Option<u64> {
        let list_id = self.list_url.rsplit('/').next()?;
        let (purpose, n) = StatusPurpose::parse_list_id(list_id)?;
        if purpose != self.purpose || self.index >= LIST_SIZE {
            return None;
        }
        n.checked_mul(LIST_SIZE)?.checked_add(self.index)
    }
}

/// What a status source knows of one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownStatus {
    /// Known to be neither revoked nor suspended.
    Good,
    /// Revoked.
    Revoked,
    /// Suspended.
    Suspended,
    /// Cannot be established; why, for people.
    Unknown(String),
}

/// A status source failed (e.g. a database read): no verdict can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the certificate's status could not be read: {0}")]
pub struct StatusUnavailable(pub String);

/// Where status comes from: the issuer's records (online), verified status
/// lists (offline with a cache), or nothing.
pub trait StatusSource {
    /// The status of `credential`, whose `credentialStatus` entries (of the
    /// purposes we know) are `entries`.
    fn status(
        &self,
        credential: &Value,
        entries: &[StatusEntry<'_>],
    ) -> Result<KnownStatus, StatusUnavailable>;
}

/// No status information: offline without a status cache.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStatus;

impl StatusSource for NoStatus {
    fn status(&self, _: &Value, _: &[StatusEntry<'_>]) -> Result<KnownStatus, StatusUnavailable> {
        Ok(KnownStatus::Unknown(
            "no status lists: revocation cannot be known offline without them".into(),
        ))
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
    /// Positive evidence decides (a set revocation bit is "revoked" even if
    /// the suspension list is missing); "good" needs every entry's list, and
    /// at least a revocation entry.
    fn status(
        &self,
        _: &Value,
        entries: &[StatusEntry<'_>],
    ) -> Result<KnownStatus, StatusUnavailable> {
        let (mut revoked, mut suspended, mut missing) = (false, false, None);
        for e in entries {
            let bit = self
                .lists
                .get(e.list_url)
                .filter(|(purpose, _)| *purpose == e.purpose)
                .and_then(|(_, bits)| bits.get(e.index));
            match (bit, e.purpose) {
                (Some(true), StatusPurpose::Revocation) => revoked = true,
                (Some(true), StatusPurpose::Suspension) => suspended = true,
                (Some(false), _) => {}
                (None, _) => missing = missing.or(Some(e.list_url)),
            }
        }
        Ok(if revoked {
            KnownStatus::Revoked
        } else if suspended {
            KnownStatus::Suspended
        } else if let Some(url) = missing {
            KnownStatus::Unknown(format!("no status list for {url}"))
        } else if !entries
            .iter()
            .any(|e| e.purpose == StatusPurpose::Revocation)
        {
            KnownStatus::Unknown("the credential has no revocation status entry".into())
        } else {
            KnownStatus::Good
        })
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

/// The `credentialStatus` entries of a credential (object or array) of
/// type `BitstringStatusListEntry` with a purpose we know.
pub fn status_entries(credential: &Value) -> Vec<StatusEntry<'_>> {
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
                purpose,
                list_url: e.get("statusListCredential")?.as_str()?,
                index: e.get("statusListIndex")?.as_str()?.parse().ok()?,
            })
        })
        .collect()
}

/// Verifies a credential: proof with a key of its issuer (active or
/// retired, as `resolve_key` answers), then status, then validity period.
/// `Err` only when the status source failed; a credential that cannot be
/// proven good is a verdict with `valid: false`.
pub fn verify_credential(
    credential: &Value,
    resolve_key: &dyn Fn(&str) -> Option<[u8; 32]>,
    status: &dyn StatusSource,
    now_ms: i64,
) -> Result<Verdict, StatusUnavailable> {
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
        return Ok(Verdict {
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
            format: None,
        });
    }

    let entries = status_entries(credential);
    let known = status.status(credential, &entries)?;
    let (status, why) = status_verdict(credential, known, now_ms);
    let (valid, message) = match status {
        StatusVerdict::Valid => (true, "valid".to_owned()),
        StatusVerdict::Unknown => (
            false,
            format!(
                "signature valid, but the certificate's status is unknown: {}",
                why.unwrap_or_default()
            ),
        ),
        StatusVerdict::Revoked => (false, "signature valid, certificate revoked".to_owned()),
        StatusVerdict::Suspended => (false, "signature valid, certificate suspended".to_owned()),
        StatusVerdict::Expired => (false, "signature valid, certificate expired".to_owned()),
        StatusVerdict::NotYetValid => (
            false,
            "signature valid, certificate not yet valid".to_owned(),
        ),
    };
    Ok(Verdict {
        valid,
        message,
        checks: Checks { signature, status },
        claims,
        format: None,
    })
}

/// Revoked and suspended come first (they hold whatever the dates say),
/// then the validity period, then "valid" only for a status known good.
fn status_verdict(
    credential: &Value,
    known: KnownStatus,
    now_ms: i64,
) -> (StatusVerdict, Option<String>) {
    // `validFrom`/`validUntil` are dateTimeStamps (always with an offset).
    let time = |k: &str| {
        credential
            .get(k)
            .and_then(Value::as_str)
            .and_then(|t| divoc_time::parse_instant(t, &divoc_time::Zone::utc()))
    };
    match known {
        KnownStatus::Revoked => (StatusVerdict::Revoked, None),
        KnownStatus::Suspended => (StatusVerdict::Suspended, None),
        _ if time("validUntil").is_some_and(|u| u < now_ms) => (StatusVerdict::Expired, None),
        _ if time("validFrom").is_some_and(|f| f > now_ms) => (StatusVerdict::NotYetValid, None),
        KnownStatus::Good => (StatusVerdict::Valid, None),
        KnownStatus::Unknown(why) => (StatusVerdict::Unknown, Some(why)),
    }
}

/// What a credential claims, for display.
pub fn summary(c: &Value) -> ClaimsSummary {
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
