//! The vaccination credential written straight as canonical JSON.
//!
//! Its shape is fixed (see [`crate::credential`] for the layout), so its
//! RFC 8785 (JCS) form can be written member by member in canonical order
//! from the request's fields, escaping included, without building a
//! `serde_json::Value` and canonicalizing it: that was most of the ~100 µs
//! of JSON work per certificate and most of its allocations
//! (docs/PERFORMANCE.md, § Footprint and growth). The signed credential is
//! the same text with the canonical `proof` member spliced in before
//! `type` (member names are ASCII, so JCS's UTF-16 order is byte order).
//!
//! [`build_credential`](crate::credential::build_credential) stays the
//! definition: the tests below check the template against it byte for
//! byte, on every test case and on random inputs, and the signed text
//! against `serde_json` of the generically signed credential.
//!
//! Member order, by RFC 8785 §3.2.3 (all names ASCII):
//! `@context` `credentialStatus` `credentialSubject` `evidence` `id`
//! `issuer` `proof` `type` `validFrom` `validUntil`; in the subject
//! `address` `age` `birthDate` `gender` `identity` `name` `nationality`
//! `type` `vaccination`; in the vaccination `batch` `booster` `date` `dose`
//! `effectiveStart` `effectiveUntil` `facility` `manufacturer` `program`
//! `totalDoses` `type` `vaccinator` `vaccine`.

use std::sync::OnceLock;

use divoc_crypto::data_integrity::{proof_for_canonical, ProofOptions};
use divoc_crypto::jcs;
use divoc_crypto::keys::{Keyring, DEFAULT_PURPOSE};
use serde_json::{json, Value};

use crate::credential::{
    vaccination_date, validity, CredentialConfig, CredentialParams, CREDENTIALS_V2,
    CREDENTIAL_TYPE, VACCINATION_CONTEXT_URL,
};
use crate::error::CertError;
use crate::request::{Address, IssueRequest};
use crate::status_list::{StatusPurpose, LIST_SIZE};

/// An unsigned credential in canonical form.
#[derive(Debug, Clone)]
pub struct CanonicalCredential {
    /// RFC 8785 JSON of the unsigned credential.
    text: String,
    /// Where the top-level `type` member starts: `proof` goes before it.
    proof_at: usize,
}

impl CanonicalCredential {
    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Appends canonical JSON: members in the order the caller writes them.
struct Writer {
    out: Vec<u8>,
    /// Whether the object or array being written has a member yet.
    first: Vec<bool>,
}

impl Writer {
    fn open(&mut self, bracket: u8) {
        self.out.push(bracket);
        self.first.push(true);
    }

    fn close(&mut self, bracket: u8) {
        self.out.push(bracket);
        self.first.pop();
    }

    fn comma(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.out.push(b',');
            }
            *first = false;
        }
    }

    /// `"name":` (names are ASCII literals without escapes).
    fn key(&mut self, name: &str) {
        self.comma();
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn string(&mut self, s: &str) -> Result<(), CertError> {
        jcs::write_string(s, &mut self.out)
            .map_err(|e| CertError::Internal(format!("canonical credential: {e}")))
    }

    fn member(&mut self, name: &str, value: &str) -> Result<(), CertError> {
        self.key(name);
        self.string(value)
    }

    /// An array element that is a string.
    fn element(&mut self, value: &str) -> Result<(), CertError> {
        self.comma();
        self.string(value)
    }

    fn number(&mut self, name: &str, n: u32) {
        self.key(name);
        // Integers below 2^53 are written as their decimal digits.
        self.out.extend_from_slice(n.to_string().as_bytes());
    }

    fn boolean(&mut self, name: &str, b: bool) {
        self.key(name);
        self.out
            .extend_from_slice(if b { b"true" } else { b"false" });
    }

    /// An address object, or nothing when every part is empty (as
    /// `credential::address`).
    fn address(&mut self, a: &Address) -> Result<(), CertError> {
        let parts = [
            ("addressLine1", &a.line1),
            ("addressLine2", &a.line2),
            ("country", &a.country),
            ("district", &a.district),
            ("postalCode", &a.pincode),
            ("state", &a.state),
        ];
        if parts.iter().all(|(_, v)| v.is_empty()) {
            return Ok(());
        }
        self.key("address");
        self.open(b'{');
        for (name, value) in parts {
            if !value.is_empty() {
                self.member(name, value)?;
            }
        }
        self.close(b'}');
        Ok(())
    }
}

/// The canonical form of what [`build_credential`] builds for the same
/// inputs.
///
/// [`build_credential`]: crate::credential::build_credential
pub fn canonical_credential(
    req: &IssueRequest,
    p: &CredentialParams<'_>,
    cfg: &CredentialConfig,
) -> Result<CanonicalCredential, CertError> {
    let r = &req.recipient;
    let x = &req.vaccination;
    let mut w = Writer {
        out: Vec::with_capacity(2560),
        first: Vec::with_capacity(8),
    };
    w.open(b'{');
    w.key("@context");
    w.open(b'[');
    w.element(CREDENTIALS_V2)?;
    w.element(VACCINATION_CONTEXT_URL)?;
    w.close(b']');

    // Bitstring Status List v1.0 §2.1, as `credential::status_entry`.
    w.key("credentialStatus");
    w.open(b'[');
    let slot = (p.status_index % LIST_SIZE).to_string();
    for purpose in [StatusPurpose::Revocation, StatusPurpose::Suspension] {
        let list = cfg.status_list_url(&purpose.list_id(p.status_index / LIST_SIZE));
        w.comma();
        w.open(b'{');
        w.member("id", &format!("{list}#{slot}"))?;
        w.member("statusListCredential", &list)?;
        w.member("statusListIndex", &slot)?;
        w.member("statusPurpose", purpose.as_str())?;
        w.member("type", "BitstringStatusListEntry")?;
        w.close(b'}');
    }
    w.close(b']');

    w.key("credentialSubject");
    w.open(b'{');
    w.address(&r.address)?;
    if let Some(age) = r.age {
        w.number("age", age);
    }
    if let Some(dob) = &r.dob {
        w.member("birthDate", dob)?;
    }
    w.member("gender", &r.gender)?;
    w.key("identity");
    w.open(b'{');
    w.member("scheme", &r.identity.kind)?;
    w.member("value", &r.identity.value)?;
    w.close(b'}');
    w.member("name", &r.name)?;
    w.member("nationality", &r.nationality)?;
    w.member("type", "VaccinationRecipient")?;
    w.key("vaccination");
    w.open(b'{');
    if !x.batch.trim().is_empty() {
        w.member("batch", &x.batch)?;
    }
    w.boolean("booster", x.is_booster());
    w.member("date", &vaccination_date(x))?;
    w.number("dose", x.dose);
    if let Some(s) = &x.effective_start {
        w.member("effectiveStart", s)?;
    }
    if let Some(u) = &x.effective_until {
        w.member("effectiveUntil", u)?;
    }
    w.key("facility");
    w.open(b'{');
    w.address(&req.facility.address)?;
    if let Some(id) = &req.facility.id {
        w.member("id", &format!("urn:divoc:facility:{id}"))?;
    }
    w.member("name", &req.facility.name)?;
    w.close(b'}');
    w.member("manufacturer", &x.manufacturer)?;
    w.member("program", &x.program)?;
    w.number("totalDoses", x.total_doses);
    w.member("type", "VaccinationEvent")?;
    w.key("vaccinator");
    w.open(b'{');
    w.member("name", &req.vaccinator.name)?;
    w.close(b'}');
    w.member("vaccine", &x.vaccine)?;
    w.close(b'}'); // vaccination
    w.close(b'}'); // credentialSubject

    if cfg.feedback_url.is_some() || cfg.info_url.is_some() {
        w.key("evidence");
        w.open(b'[');
        w.comma();
        w.open(b'{');
        if let Some(f) = &cfg.feedback_url {
            w.member("feedbackUrl", &f.replace("{id}", p.certificate_id))?;
        }
        if let Some(i) = &cfg.info_url {
            w.member("infoUrl", i)?;
        }
        w.key("type");
        w.open(b'[');
        w.element("VaccinationInformation")?;
        w.close(b']');
        w.close(b'}');
        w.close(b']');
    }
    w.member("id", &cfg.credential_url(p.certificate_id))?;
    w.member("issuer", p.issuer)?;
    // The member separator before `type` is written with it; `proof` goes
    // before that comma.
    let proof_at = w.out.len();
    w.key("type");
    w.open(b'[');
    w.element("VerifiableCredential")?;
    w.element(CREDENTIAL_TYPE)?;
    w.close(b']');
    let (valid_from, valid_until) = validity(x, p.issued_at_ms);
    w.member("validFrom", &valid_from)?;
    if let Some(u) = &valid_until {
        w.member("validUntil", u)?;
    }
    w.close(b'}');
    let text = String::from_utf8(w.out)
        .map_err(|e| CertError::Internal(format!("canonical credential: {e}")))?;
    Ok(CanonicalCredential { text, proof_at })
}

/// The credential's `@context`, as the proof carries it.
fn context() -> &'static Value {
    static CONTEXT: OnceLock<Value> = OnceLock::new();
    CONTEXT.get_or_init(|| json!([CREDENTIALS_V2, VACCINATION_CONTEXT_URL]))
}

/// Signs with the keyring's active `certificate` key (eddsa-jcs-2022, Data
/// Integrity EdDSA Cryptosuites v1.0 §3.3.1) and returns the signed
/// credential's JSON text, as it is stored and served.
pub fn sign_canonical(c: CanonicalCredential, keyring: &Keyring) -> Result<String, CertError> {
    // Key chosen and used under one keyring lock, as `credential::sign`.
    keyring
        .with_active_signer(DEFAULT_PURPOSE, |key, signer| {
            sign_with(c, &ProofOptions::assertion(&key.key_id), signer)
        })
        .map_err(|e| CertError::Internal(format!("no signing key: {e}")))?
}

fn sign_with<S>(
    c: CanonicalCredential,
    options: &ProofOptions,
    signer: &S,
) -> Result<String, CertError>
where
    S: divoc_crypto::data_integrity::Signer + ?Sized,
{
    let proof = proof_for_canonical(c.text.as_bytes(), Some(context()), options, signer)
        .map_err(|e| CertError::Internal(format!("signing failed: {e}")))?;
    let proof = jcs::canonicalize(&Value::Object(proof))
        .map_err(|e| CertError::Internal(format!("canonical proof: {e}")))?;
    let (head, tail) = c.text.split_at(c.proof_at);
    let mut out = String::with_capacity(c.text.len() + proof.len() + 10);
    out.push_str(head);
    out.push_str(",\"proof\":");
    out.push_str(&proof);
    out.push_str(tail);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use divoc_crypto::data_integrity::{create_proof, verify_proof};
    use divoc_crypto::keys::IssuerConfig;

    use super::*;
    use crate::credential::build_credential;
    use crate::synthetic;

    fn params(id: &str, i: u64) -> CredentialParams<'_> {
        CredentialParams {
            certificate_id: id,
            issuer: "did:web:certs.example.org",
            issued_at_ms: 1_700_000_000_000 + i as i64 * 7_919,
            status_index: i * 104_729 % 600_000,
        }
    }

    fn configs() -> Vec<CredentialConfig> {
        let plain = CredentialConfig::new("https://certs.example.org/");
        let mut both = CredentialConfig::new("https://e.example");
        both.feedback_url = Some("https://e.example/fb?c={id}&x=\"{id}\"".into());
        both.info_url = Some("https://e.example/info/é".into());
        let mut info = CredentialConfig::new("http://localhost:8080");
        info.info_url = Some("https://info.example".into());
        vec![plain, both, info]
    }

    fn assert_same(req: &IssueRequest, i: u64) {
        let id = format!("01M977HW91TKK4S14KR19QPX{i:03}");
        for cfg in configs() {
            let p = params(&id, i);
            let generic = jcs::canonicalize(&build_credential(req, &p, &cfg)).unwrap();
            let template = canonical_credential(req, &p, &cfg).unwrap();
            assert_eq!(template.as_str(), generic, "request {req:?}");
        }
    }

    fn cases() -> Vec<IssueRequest> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path().join("request.json");
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            // Bad-input cases too: whatever parses is written the same.
            if let Ok(req) = IssueRequest::from_json(serde_json::from_str(&text).unwrap()) {
                out.push(req);
            }
        }
        assert!(out.len() >= 10, "{} cases", out.len());
        out
    }

    #[test]
    fn every_test_case_is_written_as_the_generic_path_writes_it() {
        for (i, req) in cases().iter().enumerate() {
            assert_same(req, i as u64);
        }
    }

    /// Characters JCS escapes or orders specially, in every free-text field.
    fn nasty(i: u64) -> String {
        const POOL: &[&str] = &[
            "a", "Z", "\"", "\\", "/", "\u{0}", "\u{1}", "\u{8}", "\t", "\n", "\u{b}", "\u{c}",
            "\r", "\u{1f}", " ", "\u{7f}", "é", "€", "😀", "\u{2028}", "\u{fffd}", "{id}", "ü̈",
        ];
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..(i % 9))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                POOL[(x % POOL.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn random_requests_are_written_as_the_generic_path_writes_them() {
        for i in 0..3000u64 {
            let mut req =
                IssueRequest::from_json(synthetic::issue_request(42, i, "PROP-")).unwrap();
            let n = |k: u64| nasty(i * 31 + k);
            match i % 4 {
                0 => {
                    req.recipient.name = n(1);
                    req.recipient.gender = n(2);
                    req.recipient.identity.value = n(3);
                    req.recipient.address.line1 = n(4);
                    req.recipient.address.country = n(5);
                    req.facility.name = n(6);
                    req.facility.id = Some(n(7));
                    req.vaccinator.name = n(8);
                    req.vaccination.batch = n(9);
                    req.vaccination.manufacturer = n(10);
                }
                1 => {
                    req.recipient.dob = None;
                    req.recipient.age = Some((i % 120) as u32);
                    req.recipient.address = Address::default();
                    req.facility.address = Address::default();
                    req.facility.id = None;
                    req.vaccination.batch = "  ".into();
                    req.vaccination.effective_start = None;
                    req.vaccination.effective_until = None;
                }
                2 => {
                    req.vaccination.date = n(11);
                    req.vaccination.effective_start = Some(n(12));
                    req.vaccination.effective_until = Some("2030-02-30".into());
                    req.vaccination.dose = u32::MAX;
                    req.vaccination.total_doses = 0;
                    req.recipient.nationality = n(13);
                    req.vaccination.program = n(14);
                    req.vaccination.vaccine = n(15);
                }
                _ => {}
            }
            assert_same(&req, i);
        }
    }

    #[test]
    fn the_signed_text_is_what_the_generic_path_stores_and_it_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        let keyring = Keyring::open_or_create(
            &tmp.path().join("keys"),
            &IssuerConfig::new("did:web:certs.example.org"),
        )
        .unwrap();
        let key = keyring.active(DEFAULT_PURPOSE).unwrap();
        let options = ProofOptions::assertion(&key.key_id);
        let signer = |vm: &str, data: &[u8]| keyring.sign(vm, data);
        for (i, req) in cases().iter().enumerate() {
            let cfg = &configs()[i % 3];
            let id = format!("01M977HW91TKK4S14KR19QPX{i:03}");
            let p = params(&id, i as u64);
            let generic = create_proof(&build_credential(req, &p, cfg), &options, &signer).unwrap();
            let text = sign_with(
                canonical_credential(req, &p, cfg).unwrap(),
                &options,
                &signer,
            )
            .unwrap();
            assert_eq!(text, serde_json::to_string(&generic).unwrap());
            let parsed: Value = serde_json::from_str(&text).unwrap();
            verify_proof(&parsed, |k| keyring.resolve_public_key(k)).unwrap();
        }
    }
}
