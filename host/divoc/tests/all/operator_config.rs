//! What an operator sets in the config file reaches issued certificates:
//! an operator-provided issuer key (`[[issuer.key-files]]`) signs them and
//! is published, the feedback and information links are in them, and the
//! correction limit holds. The proof is checked by a verifier written here
//! from the vc-di-eddsa specification with other crates than the host's,
//! keyed only from the published DID document (and, separately, the JWKS).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support;

const ADMIN: &str = "operator-config-admin-token-0123";

fn send(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    support::send_json(method, url, Some(ADMIN), body)
}

/// The raw Ed25519 key in a `Multikey` `publicKeyMultibase`: base58btc
/// (`z`) of the multicodec prefix `0xed 0x01` and the 32 key bytes.
fn multikey_bytes(multibase: &str) -> [u8; 32] {
    let raw = bs58::decode(multibase.strip_prefix('z').unwrap())
        .into_vec()
        .unwrap();
    assert_eq!(raw[..2], [0xed, 0x01]);
    raw[2..].try_into().unwrap()
}

/// vc-di-eddsa §3.3.2 (Verify Proof) for `eddsa-jcs-2022`, from the
/// specification: the proof options are the proof without `proofValue`;
/// the unsecured document is the credential without `proof` (with the
/// proof's `@context`, which must then be the document's); both are
/// canonicalized by RFC 8785 (here `serde_jcs`), hashed with SHA-256, and
/// the signature over hash(proof config) ‖ hash(document) is checked.
fn independent_verify(credential: &Value, public_key: &[u8; 32]) -> bool {
    let mut document = credential.as_object().unwrap().clone();
    let mut options = document
        .remove("proof")
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(options["type"], "DataIntegrityProof");
    assert_eq!(options["cryptosuite"], "eddsa-jcs-2022");
    let proof_value = options.remove("proofValue").unwrap();
    if let Some(context) = options.get("@context") {
        assert_eq!(Some(context), document.get("@context"));
        document.insert("@context".into(), context.clone());
    }
    let config_hash = Sha256::digest(serde_jcs::to_vec(&options).unwrap());
    let document_hash = Sha256::digest(serde_jcs::to_vec(&document).unwrap());
    let hash_data = [config_hash.as_slice(), document_hash.as_slice()].concat();
    let signature = bs58::decode(proof_value.as_str().unwrap().strip_prefix('z').unwrap())
        .into_vec()
        .unwrap();
    let Ok(signature) = Signature::from_slice(&signature) else {
        return false;
    };
    VerifyingKey::from_bytes(public_key)
        .unwrap()
        .verify_strict(&hash_data, &signature)
        .is_ok()
}

#[test]
fn operator_key_links_and_correction_limit_reach_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    // The operator's key, made outside DIVOC (here: from fixed bytes, at
    // test time; no private key is kept in the repository).
    let key = SigningKey::from_bytes(&[7; 32]);
    std::fs::create_dir_all(tmp.path().join("etc/keys")).unwrap();
    std::fs::write(
        tmp.path().join("etc/keys/issuer.pem"),
        key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    // Paths in a config file are relative to it.
    let config = tmp.path().join("etc/divoc.toml");
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/templates/pdf");
    std::fs::write(
        &config,
        format!(
            r#"
[issuer]
did = "did:web:localhost%3A8080"

[[issuer.key-files]]
path = "keys/issuer.pem"

[certificates]
max-corrections = 0
feedback-url = "https://feedback.example.org/report?certificate={{id}}"
info-url = "https://example.org/covid-19"

[certificates.pdf]
templates = {templates:?}
"#
        ),
    )
    .unwrap();
    let server = support::start(&config, tmp.path(), ADMIN);
    let base = server.base.as_str();

    // The DID document publishes the operator's key as the active one.
    let (s, did) = send("GET", &format!("{base}/.well-known/did.json"), None);
    assert_eq!(s, 200);
    let ours = key.verifying_key().to_bytes();
    let method = did["verificationMethod"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| multikey_bytes(m["publicKeyMultibase"].as_str().unwrap()) == ours)
        .expect("the operator's key is published")
        .clone();
    let key_id = method["id"].as_str().unwrap().to_owned();
    assert_eq!(method["divocKeyStatus"], "active");
    assert!(did["assertionMethod"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == key_id.as_str()));

    let cases = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certificates/tests/cases");
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(cases.join("valid-one-dose/request.json")).unwrap(),
    )
    .unwrap();
    let (s, issued) = send("POST", &format!("{base}/v1/certificates"), Some(&request));
    assert_eq!(s, 201, "{issued}");
    let id = issued["id"].as_str().unwrap().to_owned();
    let (s, credential) = send("GET", &format!("{base}/v1/certificates/{id}"), None);
    assert_eq!(s, 200);

    // Signed by the operator's key; checked independently with the key
    // from the DID document, and with the key from the JWKS.
    assert_eq!(credential["proof"]["verificationMethod"], key_id.as_str());
    let from_did = multikey_bytes(method["publicKeyMultibase"].as_str().unwrap());
    assert!(independent_verify(&credential, &from_did));
    let (s, jwks) = send("GET", &format!("{base}/.well-known/jwks.json"), None);
    assert_eq!(s, 200);
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == key_id.as_str())
        .unwrap();
    assert_eq!(
        (&jwk["kty"], &jwk["crv"]),
        (&json!("OKP"), &json!("Ed25519"))
    );
    let from_jwks: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert!(independent_verify(&credential, &from_jwks));
    // A changed claim no longer verifies.
    let mut tampered = credential.clone();
    tampered["credentialSubject"]["name"] = json!("Someone Else");
    assert!(!independent_verify(&tampered, &from_did));

    // The configured links, with this certificate's id.
    let evidence = &credential["evidence"][0];
    assert_eq!(
        evidence["feedbackUrl"],
        format!("https://feedback.example.org/report?certificate={id}").as_str()
    );
    assert_eq!(evidence["infoUrl"], "https://example.org/covid-19");

    // max-corrections = 0: a correction is refused and nothing changes.
    let mut corrected = request.clone();
    corrected["recipient"]["name"] = json!("Bhaya Mitra K");
    let (s, body) = send(
        "PUT",
        &format!("{base}/v1/certificates/{id}"),
        Some(&corrected),
    );
    assert_eq!(s, 409, "{body}");
    let (s, history) = send("GET", &format!("{base}/v1/certificates/{id}/history"), None);
    assert_eq!(s, 200);
    assert_eq!(
        history["versions"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );

    // One server per data dir; the CLI does not rotate keys under it.
    let divoc = |args: &[&str]| {
        crate::support::on_test_backend(
            &mut Command::new(env!("CARGO_BIN_EXE_divoc")),
            &tmp.path().join("data"),
        )
        .arg("--config")
        .arg(&config)
        .args(args)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("DIVOC_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap()
    };
    let out = divoc(&["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a divoc server is running"));
    let out = divoc(&["keys", "rotate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("POST /v1/keys/rotate"));
    // Listing beside a running server reads the keyring, changing nothing.
    let out = divoc(&["keys", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    let mut lines = listed.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{key_id}\tcertificate\tactive\ted25519").as_str())
    );
    // Then the generated ES256 key (EU DCC, SMART Health Cards), with the
    // EU DCC kid of its document-signer certificate.
    let es256: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(es256[1..4], ["certificate", "active", "es256"], "{listed}");
    assert!(es256[4].starts_with("dcc-kid="), "{listed}");
    assert_eq!(lines.next(), None, "{listed}");

    // Rotation through the server: the new key signs at once and is
    // published; the operator's key is retired and still verifies.
    let rotate = format!("{base}/v1/keys/rotate");
    let (s, body) = send("POST", &rotate, Some(&json!({"purpose": "nope"})));
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (400, Some("purpose")),
        "{body}"
    );
    let (s, rotated) = send("POST", &rotate, None);
    assert_eq!(s, 200, "{rotated}");
    assert_eq!(rotated["retired_key_id"], key_id.as_str());
    let new_key_id = rotated["key_id"].as_str().unwrap().to_owned();
    assert_ne!(new_key_id, key_id);
    let (_, did) = send("GET", &format!("{base}/.well-known/did.json"), None);
    let published = |id: &str| {
        did["verificationMethod"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
    };
    let new_method = published(&new_key_id).expect("the new key is published");
    assert!(
        published(&key_id).is_some(),
        "the retired key stays published"
    );
    let mut second = request.clone();
    second["pre_enrollment_code"] = json!("PEC-ROTATED");
    let (s, issued) = send("POST", &format!("{base}/v1/certificates"), Some(&second));
    assert_eq!(s, 201, "{issued}");
    let (_, newer) = send(
        "GET",
        &format!("{base}/v1/certificates/{}", issued["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(newer["proof"]["verificationMethod"], new_key_id.as_str());
    let new_key = multikey_bytes(new_method["publicKeyMultibase"].as_str().unwrap());
    assert!(independent_verify(&newer, &new_key));
    let (s, verdict) = send(
        "POST",
        &format!("{base}/v1/verify"),
        Some(&json!({"credential": credential})),
    );
    assert_eq!(s, 200);
    assert_eq!(verdict["valid"], true, "{verdict}");

    // Stopped, the CLI may rotate; both rotations are in the audit chain.
    drop(server);
    let out = divoc(&["keys", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The operator's key (no key was generated: it was there on first
    // run), the one rotated in through the server, the CLI's: one active.
    let out = divoc(&["keys", "list"]);
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split('\t').collect())
        .filter(|r: &Vec<&str>| r[3] == "ed25519")
        .collect();
    assert_eq!(rows.len(), 3, "{listed}");
    let statuses: Vec<&str> = rows.iter().map(|r| r[2]).collect();
    assert_eq!(statuses, ["retired", "retired", "active"], "{listed}");
    assert_eq!(rows[0][0], key_id);
    assert_eq!(rows[1][0], new_key_id);
    assert!(rows.iter().all(|r| r[1] == "certificate"));
    let out = divoc(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotations = crate::support::query(
        &tmp.path().join("data"),
        "SELECT COUNT(*) FROM audit WHERE action = 'keys.rotated'",
    )[0][0]
        .as_i64()
        .unwrap();
    assert_eq!(rotations, 2);
}

#[test]
fn bad_operator_settings_stop_the_server_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("divoc.toml");
    for (text, expect) in [
        (
            "[certificates]\nfeedback-url = \"javascript:alert(1)\"\n",
            "certificates.feedback-url",
        ),
        (
            "[[issuer.key-files]]\npath = \"missing.pem\"\n",
            "missing.pem",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = crate::support::on_test_backend(
            &mut Command::new(env!("CARGO_BIN_EXE_divoc")),
            &tmp.path().join("data"),
        )
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--plugins")
        .arg(tmp.path().join("plugins"))
        .env("DIVOC_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{expect}: {stderr}");
    }
}
