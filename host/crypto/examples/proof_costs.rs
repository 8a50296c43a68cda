//! What one certificate costs the signer, step by step: canonicalization
//! (this crate's writer and the `serde_json_canonicalizer` crate it
//! replaced on the hot path), SHA-256, Ed25519, whole `eddsa-jcs-2022`
//! proofs, and the JSON work around them. Single thread, µs per operation.
//!
//! Run: `cargo run --release -p divoc-crypto --example proof_costs`
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use divoc_crypto::data_integrity::{create_proof, verify_proof, ProofOptions};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A credential shaped like the certificate module's (same members and
/// sizes; see host/certificates/src/credential.rs).
fn credential() -> Value {
    let list = "http://localhost:8080/v1/status/revocation-0";
    json!({
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://divoc.dev/credentials/vaccination/v1"],
        "id": "http://localhost:8080/v1/certificates/7QX4M2K9TBH3W8RZ5N1V",
        "type": ["VerifiableCredential", "VaccinationCertificate"],
        "issuer": "did:web:localhost%3A8080",
        "validFrom": "2021-03-02T00:00:00Z",
        "validUntil": "2030-03-02T23:59:59Z",
        "credentialSubject": {
            "type": "VaccinationRecipient", "name": "Bhaya Mitra", "birthDate": "1994-11-30",
            "gender": "Male", "nationality": "IN",
            "identity": {"scheme": "in.gov.uidai.aadhaar", "value": "2342343334"},
            "address": {"addressLine1": "no. 23, some lane, some road", "addressLine2": "some nagar",
                        "district": "Bengaluru South", "state": "Karnataka", "postalCode": "560033"},
            "vaccination": {
                "type": "VaccinationEvent", "program": "covid-19", "vaccine": "CoVax",
                "manufacturer": "COVPharma", "batch": "MB3428BX", "date": "2021-03-02T09:21:18Z",
                "dose": 1, "totalDoses": 2, "booster": false,
                "effectiveStart": "2021-03-02", "effectiveUntil": "2030-03-02",
                "facility": {"id": "urn:divoc:facility:FAC-0042", "name": "ABC Medical Center",
                             "address": {"addressLine1": "4th cross", "district": "Bengaluru South",
                                         "state": "Karnataka", "postalCode": "560034"}},
                "vaccinator": {"name": "Sooraj Singh"}
            }
        },
        "credentialStatus": [
            {"id": format!("{list}#1234"), "type": "BitstringStatusListEntry", "statusPurpose": "revocation",
             "statusListIndex": "1234", "statusListCredential": list},
            {"id": "http://localhost:8080/v1/status/suspension-0#1234", "type": "BitstringStatusListEntry",
             "statusPurpose": "suspension", "statusListIndex": "1234",
             "statusListCredential": "http://localhost:8080/v1/status/suspension-0"}
        ]
    })
}

/// Runs `f` repeatedly for about 300 ms; µs per call.
fn time(label: &str, mut f: impl FnMut()) -> f64 {
    for _ in 0..200 {
        f();
    }
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_millis(300) {
        for _ in 0..50 {
            f();
        }
        n += 50;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{label:<58} {us:>8.2} µs");
    us
}

fn main() {
    let doc = credential();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = key.verifying_key().to_bytes();
    let signer =
        |_: &str, m: &[u8]| -> Result<[u8; 64], std::io::Error> { Ok(key.sign(m).to_bytes()) };
    let options = ProofOptions::assertion("did:web:localhost%3A8080#z6MkKey");
    let signed = create_proof(&doc, &options, &signer).unwrap();
    let canonical = divoc_crypto::jcs::canonicalize(&doc).unwrap();
    let signed_text = serde_json::to_string(&signed).unwrap();
    println!(
        "credential: {} bytes canonical, {} bytes signed",
        canonical.len(),
        signed_text.len()
    );

    time("JCS, serde_json_canonicalizer (replaced)", || {
        black_box(serde_json_canonicalizer::to_vec(black_box(&doc)).unwrap());
    });
    time("JCS, divoc_crypto::jcs", || {
        black_box(divoc_crypto::jcs::canonicalize_to_vec(black_box(&doc)).unwrap());
    });
    time("SHA-256 of the canonical document", || {
        black_box(Sha256::digest(black_box(canonical.as_bytes())));
    });
    time("Ed25519 sign (64 bytes)", || {
        black_box(key.sign(black_box(&[1u8; 64])));
    });
    let sig = key.sign(&[1u8; 64]);
    time("Ed25519 verify_strict (64 bytes)", || {
        black_box(key.verifying_key().verify_strict(&[1u8; 64], &sig).is_ok());
    });
    time("create_proof (eddsa-jcs-2022, whole)", || {
        black_box(create_proof(black_box(&doc), &options, &signer).unwrap());
    });
    time("verify_proof (eddsa-jcs-2022, whole)", || {
        black_box(verify_proof(black_box(&signed), |_| Some(public)).unwrap());
    });
    time("serde_json::to_string(signed credential)", || {
        black_box(serde_json::to_string(black_box(&signed)).unwrap());
    });
    time("serde_json::from_str(signed credential) -> Value", || {
        black_box(serde_json::from_str::<Value>(black_box(&signed_text)).unwrap());
    });
    time("Value::clone(signed credential)", || {
        black_box(black_box(&signed).clone());
    });
}
