//! The vaccination certificate as a W3C Verifiable Credential 2.0
//! (<https://www.w3.org/TR/vc-data-model-2.0/>), and its signing.
//!
//! Layout (see `contexts/vaccination-v1.jsonld` for the vocabulary):
//!
//! - `@context`: VC 2.0 base context, then ours (§4.3 Contexts).
//! - `id`: the certificate's URL, `{base}/v1/certificates/{id}` (§4.4).
//! - `type`: `VerifiableCredential`, `VaccinationCertificate` (§4.5).
//! - `issuer`: the keyring's DID (§4.7); `validFrom`/`validUntil` (§4.9).
//! - `credentialSubject`: the recipient, with the `vaccination` event
//!   nested (§4.8); `booster: true` when dose > total doses.
//! - `credentialStatus`: two `BitstringStatusListEntry` objects, one for
//!   `revocation` and one for `suspension` (Bitstring Status List v1.0 §2.1).
//! - `evidence`: links for feedback and information, when configured (§5.6).
//! - `proof`: Data Integrity, `eddsa-jcs-2022`.

use serde_json::{json, Map, Value};

use divoc_crypto::data_integrity::{add_proof, create_proof, ProofOptions};
use divoc_crypto::keys::{Keyring, DEFAULT_PURPOSE};

use crate::error::CertError;
use crate::request::{Address, IssueRequest};
use crate::status_list::{StatusPurpose, LIST_SIZE};

/// VC Data Model 2.0 base context.
pub const CREDENTIALS_V2: &str = "https://www.w3.org/ns/credentials/v2";
/// Our vaccination vocabulary's stable URL.
pub const VACCINATION_CONTEXT_URL: &str = "https://divoc.dev/credentials/vaccination/v1";
/// The vocabulary document, vendored: verifiers and tools get it from here,
/// never from the network.
pub const VACCINATION_CONTEXT: &str = include_str!("../contexts/vaccination-v1.jsonld");
/// The credential type after `VerifiableCredential`.
pub const CREDENTIAL_TYPE: &str = "VaccinationCertificate";

/// Where the issuer publishes things; used for ids and links in credentials.
#[derive(Debug, Clone)]
pub struct CredentialConfig {
    /// Public base URL of this host, without a trailing slash, e.g.
    /// `https://divoc.example.org`.
    pub base_url: String,
    /// Feedback link; `{id}` is replaced by the certificate id.
    pub feedback_url: Option<String>,
    /// Information link (e.g. the program's page).
    pub info_url: Option<String>,
}

impl CredentialConfig {
    /// Config with only a base URL.
    pub fn new(base_url: impl Into<String>) -> Self {
        let mut base_url = base_url.into();
        while base_url.ends_with('/') {
            base_url.pop();
        }
        CredentialConfig {
            base_url,
            feedback_url: None,
            info_url: None,
        }
    }

    /// The credential `id` for a certificate id.
    pub fn credential_url(&self, certificate_id: &str) -> String {
        format!("{}/v1/certificates/{certificate_id}", self.base_url)
    }

    /// The URL of a status list credential.
    pub fn status_list_url(&self, list_id: &str) -> String {
        format!("{}/v1/status/{list_id}", self.base_url)
    }
}

/// Certificate-specific inputs to [`build_credential`].
#[derive(Debug, Clone)]
pub struct CredentialParams<'a> {
    /// The certificate id.
    pub certificate_id: &'a str,
    /// Issuer DID.
    pub issuer: &'a str,
    /// Issuance time, ms since the epoch.
    pub issued_at_ms: i64,
    /// Global status index (list number × [`LIST_SIZE`] + slot).
    pub status_index: u64,
}

/// Builds the unsigned credential for a validated request.
pub fn build_credential(
    req: &IssueRequest,
    p: &CredentialParams<'_>,
    cfg: &CredentialConfig,
) -> Value {
    let r = &req.recipient;
    let mut subject = Map::new();
    subject.insert("type".into(), "VaccinationRecipient".into());
    subject.insert("name".into(), r.name.clone().into());
    if let Some(dob) = &r.dob {
        subject.insert("birthDate".into(), dob.clone().into());
    }
    if let Some(age) = r.age {
        subject.insert("age".into(), age.into());
    }
    subject.insert("gender".into(), r.gender.clone().into());
    subject.insert("nationality".into(), r.nationality.clone().into());
    subject.insert(
        "identity".into(),
        json!({ "scheme": r.identity.kind, "value": r.identity.value }),
    );
    if let Some(a) = address(&r.address) {
        subject.insert("address".into(), a);
    }

    let x = &req.vaccination;
    let mut vaccination = Map::new();
    vaccination.insert("type".into(), "VaccinationEvent".into());
    vaccination.insert("program".into(), x.program.clone().into());
    vaccination.insert("vaccine".into(), x.vaccine.clone().into());
    vaccination.insert("manufacturer".into(), x.manufacturer.clone().into());
    // Optional, as in DIVOC's schema and WHO DDCC's core data set.
    if !x.batch.trim().is_empty() {
        vaccination.insert("batch".into(), x.batch.clone().into());
    }
    vaccination.insert("date".into(), vaccination_date(x).into());
    vaccination.insert("dose".into(), x.dose.into());
    vaccination.insert("totalDoses".into(), x.total_doses.into());
    // Explicit rather than left for verifiers to infer from dose > totalDoses.
    vaccination.insert("booster".into(), x.is_booster().into());
    if let Some(s) = &x.effective_start {
        vaccination.insert("effectiveStart".into(), s.clone().into());
    }
    if let Some(u) = &x.effective_until {
        vaccination.insert("effectiveUntil".into(), u.clone().into());
    }
    let mut facility = Map::new();
    if let Some(id) = &req.facility.id {
        facility.insert("id".into(), format!("urn:divoc:facility:{id}").into());
    }
    facility.insert("name".into(), req.facility.name.clone().into());
    if let Some(a) = address(&req.facility.address) {
        facility.insert("address".into(), a);
    }
    vaccination.insert("facility".into(), Value::Object(facility));
    vaccination.insert("vaccinator".into(), json!({ "name": req.vaccinator.name }));
    subject.insert("vaccination".into(), Value::Object(vaccination));

    let (valid_from, valid_until) = validity(x, p.issued_at_ms);

    let mut vc = Map::new();
    vc.insert(
        "@context".into(),
        json!([CREDENTIALS_V2, VACCINATION_CONTEXT_URL]),
    );
    vc.insert("id".into(), cfg.credential_url(p.certificate_id).into());
    vc.insert(
        "type".into(),
        json!(["VerifiableCredential", CREDENTIAL_TYPE]),
    );
    vc.insert("issuer".into(), p.issuer.into());
    vc.insert("validFrom".into(), valid_from.into());
    if let Some(u) = valid_until {
        vc.insert("validUntil".into(), u.into());
    }
    vc.insert("credentialSubject".into(), Value::Object(subject));
    vc.insert(
        "credentialStatus".into(),
        status_entries(cfg, p.status_index),
    );
    if cfg.feedback_url.is_some() || cfg.info_url.is_some() {
        let mut ev = Map::new();
        ev.insert("type".into(), json!(["VaccinationInformation"]));
        if let Some(f) = &cfg.feedback_url {
            ev.insert(
                "feedbackUrl".into(),
                f.replace("{id}", p.certificate_id).into(),
            );
        }
        if let Some(i) = &cfg.info_url {
            ev.insert("infoUrl".into(), i.clone().into());
        }
        vc.insert("evidence".into(), json!([Value::Object(ev)]));
    }
    Value::Object(vc)
}

/// The vaccination's `date`: the service has normalised it to UTC (any
/// offset, or local time in the deployment's zone); written as a
/// dateTimeStamp with the instant's milliseconds, so verifiers compare like
/// with like.
pub(crate) fn vaccination_date(x: &crate::request::Vaccination) -> String {
    divoc_time::parse_instant(&x.date, &divoc_time::Zone::utc())
        .map(divoc_time::format_millis)
        .unwrap_or_else(|| x.date.clone())
}

/// `validFrom` and `validUntil` (VC 2.0 §4.9): validFrom is when the
/// credential starts to hold; the protection window of the vaccine, when
/// given, bounds it.
pub(crate) fn validity(
    x: &crate::request::Vaccination,
    issued_at_ms: i64,
) -> (String, Option<String>) {
    let valid_from = x
        .effective_start
        .as_deref()
        .and_then(divoc_time::parse_date)
        .map(|d| d.start_ms())
        .unwrap_or(issued_at_ms);
    let valid_until = x
        .effective_until
        .as_deref()
        .and_then(divoc_time::parse_date)
        // Inclusive last day: valid until the end of that day.
        .map(|d| d.start_ms() + divoc_time::DAY_MS - 1000);
    (
        divoc_time::format_seconds(valid_from),
        valid_until.map(divoc_time::format_seconds),
    )
}

/// The `credentialStatus` of a credential: one revocation and one
/// suspension entry at the same index of their lists.
pub fn status_entries(cfg: &CredentialConfig, status_index: u64) -> Value {
    json!([
        status_entry(cfg, StatusPurpose::Revocation, status_index),
        status_entry(cfg, StatusPurpose::Suspension, status_index),
    ])
}

/// A `BitstringStatusListEntry` (Bitstring Status List v1.0 §2.1): the index
/// is a string of decimal digits, and the entry's `id` is unique per purpose.
fn status_entry(cfg: &CredentialConfig, purpose: StatusPurpose, status_index: u64) -> Value {
    let list = cfg.status_list_url(&purpose.list_id(status_index / LIST_SIZE));
    let slot = status_index % LIST_SIZE;
    json!({
        "id": format!("{list}#{slot}"),
        "type": "BitstringStatusListEntry",
        "statusPurpose": purpose.as_str(),
        "statusListIndex": slot.to_string(),
        "statusListCredential": list,
    })
}

fn address(a: &Address) -> Option<Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("addressLine1", &a.line1),
        ("addressLine2", &a.line2),
        ("district", &a.district),
        ("state", &a.state),
        ("postalCode", &a.pincode),
        ("country", &a.country),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), v.clone().into());
        }
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// Signs a credential with the keyring's active `certificate` key
/// (eddsa-jcs-2022, Data Integrity EdDSA Cryptosuites v1.0 §3.3.1).
pub fn sign(credential: &Value, keyring: &Keyring) -> Result<Value, CertError> {
    // The key is chosen and used under one keyring lock, so a rotation in
    // between cannot leave a request holding a just-retired key id.
    keyring
        .with_active_signer(DEFAULT_PURPOSE, |key, signer| {
            create_proof(credential, &ProofOptions::assertion(&key.key_id), signer)
        })
        .map_err(|e| CertError::Internal(format!("no signing key: {e}")))?
        .map_err(|e| CertError::Internal(format!("signing failed: {e}")))
}

/// [`sign`] for a freshly built credential: the proof is added to it
/// rather than to a copy of it.
pub fn sign_owned(credential: Value, keyring: &Keyring) -> Result<Value, CertError> {
    keyring
        .with_active_signer(DEFAULT_PURPOSE, |key, signer| {
            add_proof(credential, &ProofOptions::assertion(&key.key_id), signer)
        })
        .map_err(|e| CertError::Internal(format!("no signing key: {e}")))?
        .map_err(|e| CertError::Internal(format!("signing failed: {e}")))
}

/// The certificate id of one of our credentials: the last path segment of
/// its `id` URL.
pub fn certificate_id_of(credential: &Value) -> Option<&str> {
    credential
        .get("id")?
        .as_str()?
        .rsplit_once("/v1/certificates/")
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use divoc_crypto::data_integrity::verify_proof;
    use divoc_crypto::keys::IssuerConfig;

    use super::*;

    #[test]
    fn signing_in_place_gives_the_same_credential() {
        let tmp = tempfile::tempdir().unwrap();
        let keyring = Keyring::open_or_create(
            &tmp.path().join("keys"),
            &IssuerConfig::new("did:web:localhost%3A8080"),
        )
        .unwrap();
        let unsigned = json!({
            "@context": [CREDENTIALS_V2, VACCINATION_CONTEXT_URL],
            "type": ["VerifiableCredential", CREDENTIAL_TYPE],
            "issuer": keyring.did(),
            "credentialSubject": {"name": "x"},
        });
        let copied = sign(&unsigned, &keyring).unwrap();
        let in_place = sign_owned(unsigned, &keyring).unwrap();
        // Ed25519 is deterministic; only `created` can differ (a second
        // boundary between the two calls).
        let strip = |mut v: Value| {
            v["proof"].as_object_mut().unwrap().remove("created");
            v["proof"].as_object_mut().unwrap().remove("proofValue");
            v
        };
        assert_eq!(strip(in_place.clone()), strip(copied));
        verify_proof(&in_place, |k| keyring.resolve_public_key(k)).unwrap();
    }
}
