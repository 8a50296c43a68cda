//! Step 1: requests, validation, the DIVOC mapping, the credential and its
//! signature.

use divoc_certificates::credential::{build_credential, sign, CredentialConfig, CredentialParams};
use divoc_certificates::legacy::{legacy_field, CertifyRequest};
use divoc_certificates::verify::{verify_credential, NoStatus, StatusVerdict, TrustStore};
use divoc_certificates::{CertError, IssueRequest};
use divoc_crypto::data_integrity::CRYPTOSUITE;
use serde_json::Value;

use divoc_time::Zone;

use crate::common::*;

/// 2026-12-01T00:00:00Z: the cases' dates are in the past of it.
const NOW: i64 = 1_796_083_200_000;

fn request(case: &str) -> IssueRequest {
    IssueRequest::from_json(case_json(case, "request.json")).unwrap()
}

fn field_errors(result: Result<(), CertError>) -> Vec<String> {
    match result {
        Err(CertError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// Parse + validate the native way, as the HTTP layer will.
fn check_native(value: Value) -> Result<(), CertError> {
    let req = IssueRequest::from_json(value)?;
    req.validate_at(NOW, &Zone::utc())
        .map_err(CertError::Validation)
}

fn check_divoc(value: Value) -> Result<(), CertError> {
    let req = CertifyRequest::from_json(value)?.into_issue_request("covid-19")?;
    req.validate_at(NOW, &Zone::utc()).map_err(|errors| {
        CertError::Validation(
            errors
                .into_iter()
                .map(|mut e| {
                    e.field = legacy_field(&e.field);
                    e
                })
                .collect(),
        )
    })
}

#[test]
fn valid_cases_validate() {
    for case in cases("valid-") {
        request(&case)
            .validate_at(NOW, &Zone::utc())
            .unwrap_or_else(|e| panic!("{case}: {e:?}"));
    }
}

#[test]
fn every_bad_case_names_its_fields() {
    let bad = cases("bad-");
    assert!(bad.len() >= 10);
    for case in bad {
        let mut expected = expected_fields(&case);
        let mut got = if case.starts_with("bad-divoc-") {
            field_errors(check_divoc(case_json(&case, "payload.json")))
        } else {
            field_errors(check_native(case_json(&case, "request.json")))
        };
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "case {case}");
    }
}

#[test]
fn validation_messages_do_not_echo_values() {
    let mut v = case_json("valid-one-dose", "request.json");
    v["recipient"]["dob"] = "SECRET-DOB".into();
    v["vaccination"]["dose"] = "SECRET-DOSE".into();
    let e = check_native(v.clone()).unwrap_err().to_string();
    assert!(!e.contains("SECRET"), "{e}");
    v["vaccination"]["dose"] = 1.into();
    let e = check_native(v).unwrap_err().to_string();
    assert!(!e.contains("SECRET"), "{e}");
}

#[test]
fn divoc_payload_maps_to_native_request() {
    let got = CertifyRequest::from_json(case_json("divoc-certify", "payload.json"))
        .unwrap()
        .into_issue_request("covid-19")
        .unwrap();
    let expected =
        IssueRequest::from_json(case_json("divoc-certify", "expected-request.json")).unwrap();
    assert_eq!(got, expected);
    got.validate_at(NOW, &Zone::utc()).unwrap();
}

fn params<'a>(id: &'a str, issuer: &'a str) -> CredentialParams<'a> {
    CredentialParams {
        certificate_id: id,
        issuer,
        issued_at_ms: 1_700_000_000_000,
        status_index: 131_072 + 94_567,
    }
}

#[test]
fn credential_has_the_vc2_shape() {
    let cfg = CredentialConfig::new("https://certs.example.org/");
    let vc = build_credential(&request("valid-one-dose"), &params("ABC", DID), &cfg);
    assert_eq!(
        vc["@context"],
        serde_json::json!([
            "https://www.w3.org/ns/credentials/v2",
            "https://divoc.dev/credentials/vaccination/v1"
        ])
    );
    assert_eq!(
        vc["type"],
        serde_json::json!(["VerifiableCredential", "VaccinationCertificate"])
    );
    assert_eq!(vc["id"], "https://certs.example.org/v1/certificates/ABC");
    assert_eq!(vc["issuer"], DID);
    assert_eq!(vc["validFrom"], "2021-03-02T00:00:00Z");
    assert_eq!(vc["validUntil"], "2030-03-02T23:59:59Z");
    let s = &vc["credentialSubject"];
    assert_eq!(s["birthDate"], "1994-11-30");
    assert_eq!(s["identity"]["scheme"], "in.gov.uidai.aadhaar");
    assert_eq!(s["vaccination"]["booster"], false);
    assert_eq!(s["vaccination"]["date"], "2021-03-02T09:21:18Z");
    assert_eq!(
        s["vaccination"]["facility"]["id"],
        "urn:divoc:facility:FAC-0042"
    );
    // Contacts are for distribution, not for the credential.
    assert!(!vc.to_string().contains("9880414888"));
    // Bitstring Status List entries: one per purpose, index as a string.
    let st = vc["credentialStatus"].as_array().unwrap();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0]["type"], "BitstringStatusListEntry");
    assert_eq!(st[0]["statusPurpose"], "revocation");
    assert_eq!(st[0]["statusListIndex"], "94567");
    assert_eq!(
        st[0]["statusListCredential"],
        "https://certs.example.org/v1/status/revocation-1"
    );
    assert_eq!(
        st[0]["id"],
        "https://certs.example.org/v1/status/revocation-1#94567"
    );
    assert_eq!(st[1]["statusPurpose"], "suspension");
    assert_eq!(
        st[1]["statusListCredential"],
        "https://certs.example.org/v1/status/suspension-1"
    );
    assert!(vc.get("evidence").is_none());
}

#[test]
fn booster_and_links_are_explicit() {
    let mut cfg = CredentialConfig::new("https://certs.example.org");
    cfg.feedback_url = Some("https://certs.example.org/feedback/{id}".into());
    cfg.info_url = Some("https://example.org/covid-19".into());
    let vc = build_credential(&request("valid-booster"), &params("XYZ", DID), &cfg);
    let v = &vc["credentialSubject"]["vaccination"];
    assert_eq!(v["booster"], true);
    assert_eq!(v["dose"], 3);
    assert_eq!(v["totalDoses"], 2);
    assert_eq!(vc["credentialSubject"]["age"], 61);
    assert_eq!(
        vc["evidence"][0]["feedbackUrl"],
        "https://certs.example.org/feedback/XYZ"
    );
    assert_eq!(vc["evidence"][0]["infoUrl"], "https://example.org/covid-19");
    // Issued at, since there is no effective_start; no validUntil.
    assert_eq!(vc["validFrom"], "2023-11-14T22:13:20Z");
    assert!(vc.get("validUntil").is_none());
}

#[test]
fn signed_credential_verifies_also_after_key_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keyring(tmp.path());
    let cfg = CredentialConfig::new("https://certs.example.org");
    let vc = build_credential(&request("valid-one-dose"), &params("ABC", keys.did()), &cfg);
    let signed = sign(&vc, &keys).unwrap();
    assert_eq!(signed["proof"]["cryptosuite"], CRYPTOSUITE);
    let old_key = keys.active("certificate").unwrap().key_id;
    assert_eq!(signed["proof"]["verificationMethod"], old_key.as_str());

    let now = 1_700_000_000_000;
    let resolve = |k: &str| keys.resolve_public_key(k);
    let verdict = verify_credential(&signed, &resolve, &NoStatus, now).unwrap();
    // Offline without status lists: the signature holds, but revocation
    // cannot be excluded, so it is not valid (and not forged either).
    assert!(!verdict.valid, "{verdict:?}");
    assert!(verdict.checks.signature.ok);
    assert_eq!(verdict.checks.status, StatusVerdict::Unknown);
    assert!(
        verdict
            .message
            .starts_with("signature valid, but the certificate's status is unknown"),
        "{}",
        verdict.message
    );

    // Rotate: the old key is retired but still verifies what it signed.
    keys.rotate("certificate").unwrap();
    let verdict = verify_credential(&signed, &resolve, &NoStatus, now).unwrap();
    assert!(verdict.checks.signature.ok);
    assert_eq!(
        verdict.checks.signature.key_id.as_deref(),
        Some(old_key.as_str())
    );

    // An offline verifier with only the exported trust file agrees.
    let trust = TrustStore::from_trust_file(&divoc_crypto::keys::trust_file(&keys)).unwrap();
    let verdict = verify_credential(&signed, &|k| trust.resolve(k), &NoStatus, now).unwrap();
    assert!(verdict.checks.signature.ok);

    // Tampering with any claim breaks the signature.
    let mut forged = signed.clone();
    forged["credentialSubject"]["vaccination"]["dose"] = 2.into();
    let verdict = verify_credential(&forged, &resolve, &NoStatus, now).unwrap();
    assert!(!verdict.valid);
    assert!(!verdict.checks.signature.ok);

    // A trusted key cannot vouch for a credential claiming another issuer.
    let mut other = signed.clone();
    other["issuer"] = "did:web:evil.example".into();
    assert!(
        !verify_credential(&other, &resolve, &NoStatus, now)
            .unwrap()
            .checks
            .signature
            .ok
    );

    // Outside the validity window: expired, with a valid signature.
    let verdict = verify_credential(&signed, &resolve, &NoStatus, 2_000_000_000_000).unwrap();
    assert_eq!(verdict.checks.status, StatusVerdict::Expired);
    assert!(!verdict.valid && verdict.checks.signature.ok);
    let verdict = verify_credential(&signed, &resolve, &NoStatus, 1_000_000_000_000).unwrap();
    assert_eq!(verdict.checks.status, StatusVerdict::NotYetValid);
}
