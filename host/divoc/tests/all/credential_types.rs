//! A credential type defined only in config (`covid-test` in
//! `config/divoc.toml`): issued over HTTP, idempotent by its reference
//! field, bad input refused by field with nothing stored, verified, found
//! by contact + date of birth, revoked.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::support;

const ADMIN: &str = "types-test-admin-token-0123";

fn start(tmp: &std::path::Path) -> support::Server {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    support::start(&repo.join("config/divoc.toml"), tmp, ADMIN)
}

fn send(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    support::send_json(method, url, Some(ADMIN), body)
}

#[test]
fn a_config_defined_type_is_issued_verified_and_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let base = server.base.as_str();

    let (s, body) = send("GET", &format!("{base}/v1/credentials"), None);
    assert_eq!(s, 200);
    assert_eq!(body["types"], json!(["vaccination", "covid-test"]));

    let url = format!("{base}/v1/credentials/covid-test");
    let request = json!({
        "sampleId": "S-2026-0001", "name": "Asha Rao", "dob": "1990-02-28",
        "mobile": "tel:9876543210", "testType": "RT-PCR", "result": "negative",
        "sampledAt": "2026-11-26T08:30:00Z", "laboratory": "District Lab 4",
    });
    let (s, issued) = send("POST", &url, Some(&request));
    assert_eq!(s, 201, "{issued}");
    let id = issued["id"].as_str().unwrap().to_owned();
    // Re-sending is idempotent; the same reference with other values is a
    // conflict pointing at the correction path.
    let (s, again) = send("POST", &url, Some(&request));
    assert_eq!((s, again["id"].as_str()), (200, Some(id.as_str())));
    let mut changed = request.clone();
    changed["result"] = json!("positive");
    let (s, body) = send("POST", &url, Some(&changed));
    assert_eq!(s, 409, "{body}");

    // Bad input: every bad field named, nothing stored.
    let bad = json!({"sampleId": "S-2", "dob": "1990-02-30", "testType": "PCR",
                     "result": "negative", "sampledAt": "yesterday", "colour": "red"});
    let (s, body) = send("POST", &url, Some(&bad));
    assert_eq!(s, 422, "{body}");
    let fields: Vec<&str> = body["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["colour", "dob", "name", "sampledAt", "testType"]
    );
    let (s, found) = send(
        "POST",
        &format!("{base}/v1/certificates/lookup"),
        Some(&json!({"preEnrollmentCode": "S-2"})),
    );
    assert_eq!(s, 200);
    assert_eq!(found["certificates"], json!([]));
    let (s, _) = send(
        "POST",
        &format!("{base}/v1/credentials/no-such-type"),
        Some(&request),
    );
    assert_eq!(s, 404);

    // The credential: the operator's type and mapping, our envelope.
    let (s, vc) = send("GET", &format!("{base}/v1/certificates/{id}"), None);
    assert_eq!(s, 200);
    assert_eq!(
        vc["type"],
        json!(["VerifiableCredential", "TestResultCredential"])
    );
    assert_eq!(vc["credentialSubject"]["test"]["result"], "negative");
    assert_eq!(vc["credentialSubject"]["test"]["sampleId"], "S-2026-0001");
    assert_eq!(vc["proof"]["cryptosuite"], "eddsa-jcs-2022");
    assert!(vc["validUntil"].is_string());

    let (s, verdict) = send(
        "POST",
        &format!("{base}/v1/verify"),
        Some(&json!({"credential": vc})),
    );
    assert_eq!(
        (s, verdict["valid"].as_bool()),
        (200, Some(true)),
        "{verdict}"
    );
    contexts_are_served_for_vendoring(base, &vc);

    let (s, found) = send(
        "POST",
        &format!("{base}/v1/certificates/lookup"),
        Some(&json!({"contact": "tel:9876543210", "dob": "1990-02-28"})),
    );
    assert_eq!(s, 200);
    assert_eq!(found["certificates"][0]["id"], id.as_str());

    let (s, _) = send(
        "POST",
        &format!("{base}/v1/certificates/{id}/revoke"),
        Some(&json!({"reason": "sample mix-up"})),
    );
    assert_eq!(s, 200);
    let (_, verdict) = send(
        "POST",
        &format!("{base}/v1/verify"),
        Some(&json!({"credential": vc})),
    );
    assert_eq!(verdict["valid"], false);
    assert_eq!(verdict["checks"]["status"], "revoked");
}

/// Every context the credential names is in `GET /v1/contexts` (no token)
/// with the SHA-256 of what is served; the served bytes hash to it, and
/// the `ETag` answers a revalidation with 304.
fn contexts_are_served_for_vendoring(base: &str, vc: &Value) {
    use sha2::Digest;
    let (s, index) = support::send_json("GET", &format!("{base}/v1/contexts"), None, None);
    assert_eq!(s, 200, "{index}");
    let index = index["contexts"].as_array().unwrap().clone();
    let names: Vec<&str> = index.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["vaccination-v1", "covid-test"]);
    for url in vc["@context"].as_array().unwrap() {
        let entry = index
            .iter()
            .find(|c| &c["url"] == url)
            .unwrap_or_else(|| panic!("{url} is not in the index"));
        let Some(name) = entry["name"].as_str() else {
            // The W3C base context: pinned by the hash of the vendored copy.
            assert_eq!(
                entry["sha256"],
                "59955ced6697d61e03f2b2556febe5308ab16842846f5b586d7f1f7adec92734"
            );
            continue;
        };
        assert!(entry["served"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/contexts/{name}")));
        let response = ureq::get(&format!("{base}/v1/contexts/{name}"))
            .call()
            .unwrap();
        assert_eq!(response.header("content-type"), Some("application/ld+json"));
        let etag = response.header("etag").unwrap().to_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), entry["sha256"]);
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(doc["@context"].is_object(), "{name}: {doc}");
        let again = ureq::get(&format!("{base}/v1/contexts/{name}"))
            .set("If-None-Match", &etag)
            .call()
            .unwrap();
        assert_eq!(again.status(), 304);
    }
    let (s, body) = support::send_json("GET", &format!("{base}/v1/contexts/nope"), None, None);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}
