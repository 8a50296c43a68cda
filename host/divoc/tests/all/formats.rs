//! Other certificate formats end to end, as the README walks them: a
//! certificate is issued, fetched as EU DCC, SMART Health Card and WHO DDCC
//! (HCERT and FHIR document), each verified through `/v1/verify` (as text
//! and as a QR image), each decoded by an independent decoder written from
//! its specification (`tests/decoders/*.py`: Python `cbor2` + `cryptography`,
//! never the plugins' code), then revoked: every format reports it revoked,
//! and the EU DCC and SMART Health Card revocation lists carry it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{self, Server};

const ADMIN: &str = "formats-test-admin-token-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python the decoders run with: `DECODERS_PYTHON`, else the venv
/// `scripts/test.sh` makes (`target/pyenv`, with cbor2 and cryptography).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("DECODERS_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo().join("target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "no {} — run scripts/test.sh (it makes the venv with cbor2 and cryptography) \
         or set DECODERS_PYTHON",
        venv.display()
    );
    venv
}

/// Runs `decoders/<script>` with `args`, the artifact on stdin; its JSON.
fn decode_independently(script: &str, args: &[&Path], artifact: &str) -> Result<Value, String> {
    let mut child = Command::new(python())
        .arg(repo().join("host/divoc/tests/decoders").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(artifact.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn start(tmp: &Path) -> Server {
    let config = support::shipped_config(tmp, |text| text);
    let port = support::free_port();
    let mut cmd = support::serve_command(
        &config,
        &tmp.join("data"),
        &repo().join("target/plugins"),
        port,
        ADMIN,
    );
    // The plugins are read where `scripts/setup.sh` built them; watching
    // that directory is not this test's business.
    cmd.env("DIVOC_PLUGINS__WATCH", "false");
    support::spawn(&mut cmd, port)
}

fn get_text(server: &Server, path: &str) -> (u16, String, String) {
    let r = match ureq::get(&format!("{}{path}", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = r.status();
    let content_type = r.content_type().to_owned();
    (status, content_type, r.into_string().unwrap())
}

fn get_bytes(server: &Server, path: &str) -> Vec<u8> {
    let r = ureq::get(&format!("{}{path}", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut bytes).unwrap();
    bytes
}

fn verify(server: &Server, body: &Value) -> Value {
    let (status, verdict) = support::send_json(
        "POST",
        &format!("{}/v1/verify", server.base),
        None,
        Some(body),
    );
    assert_eq!(status, 200, "{verdict}");
    verdict
}

fn verify_image(server: &Server, png: &[u8]) -> Value {
    let r = ureq::post(&format!("{}/v1/verify", server.base))
        .set("Content-Type", "image/png")
        .send_bytes(png)
        .unwrap();
    serde_json::from_str(&r.into_string().unwrap()).unwrap()
}

#[test]
fn each_format_is_fetched_verified_decoded_independently_and_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("host/certificates/tests/cases/valid-one-dose/request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (status, issued) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&request),
    );
    assert_eq!(status, 201, "{issued}");
    let id = issued["id"].as_str().unwrap().to_owned();

    // What the certificate can be fetched as.
    let (status, _, listing) = get_text(&server, &format!("/v1/certificates/{id}/formats"));
    assert_eq!(status, 200, "{listing}");
    let listing: Value = serde_json::from_str(&listing).unwrap();
    let ids: Vec<&str> = listing["formats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    for want in ["eu-dcc", "shc", "who-ddcc", "who-ddcc-fhir"] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    // The same role rule as the certificate: no token, no artifact.
    let (status, _) = support::send_json(
        "GET",
        &format!("{}/v1/certificates/{id}/formats/eu-dcc", server.base),
        None,
        None,
    );
    assert_eq!(status, 401);
    let (status, _, _) = get_text(&server, &format!("/v1/certificates/{id}/formats/no-such"));
    assert_eq!(status, 404);

    // The issuer's public material, as verifiers fetch it: the JWKS (SMART
    // Health Cards) and, from its x5c, the document-signer certificate
    // (EU DCC, WHO DDCC).
    let (status, _, jwks_text) = get_text(&server, "/.well-known/jwks.json");
    assert_eq!(status, 200);
    let jwks: Value = serde_json::from_str(&jwks_text).unwrap();
    let ec = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == "EC")
        .expect("an ES256 key in jwks.json")
        .clone();
    let jwks_path = tmp.path().join("jwks.json");
    std::fs::write(&jwks_path, &jwks_text).unwrap();
    let dsc_der = base64::engine::general_purpose::STANDARD
        .decode(ec["x5c"][0].as_str().unwrap())
        .unwrap();
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in base64::engine::general_purpose::STANDARD
        .encode(&dsc_der)
        .as_bytes()
        .chunks(64)
    {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let dsc_path = tmp.path().join("dsc.pem");
    std::fs::write(&dsc_path, pem).unwrap();

    // Each QR format: fetched, verified as text and as an image, decoded
    // independently.
    let mut artifacts = std::collections::BTreeMap::new();
    for (format, prefix) in [("eu-dcc", "HC1:"), ("shc", "shc:/"), ("who-ddcc", "HC1:")] {
        let (status, content_type, text) =
            get_text(&server, &format!("/v1/certificates/{id}/formats/{format}"));
        assert_eq!(status, 200, "{format}: {text}");
        assert!(
            content_type.starts_with("text/plain"),
            "{format}: {content_type}"
        );
        assert!(text.starts_with(prefix), "{format}: {text}");

        let verdict = verify(&server, &json!({ "qr": text }));
        assert_eq!(verdict["valid"], true, "{format}: {verdict}");
        assert_eq!(verdict["format"], format, "{verdict}");
        assert_eq!(verdict["checks"]["status"], "valid", "{verdict}");
        assert_eq!(
            verdict["claims"]["certificate_id"],
            id.as_str(),
            "{verdict}"
        );

        let png = get_bytes(
            &server,
            &format!("/v1/certificates/{id}/formats/{format}/qr.png"),
        );
        assert!(png.starts_with(b"\x89PNG"), "{format}");
        let verdict = verify_image(&server, &png);
        assert_eq!(
            verdict["valid"], true,
            "{format} from its QR image: {verdict}"
        );
        assert_eq!(verdict["format"], format, "{verdict}");
        artifacts.insert(format, text);
    }

    let dcc = decode_independently("eu_dcc.py", &[&dsc_path], &artifacts["eu-dcc"])
        .unwrap_or_else(|e| panic!("EU DCC refused by the independent decoder: {e}"));
    let uvci = dcc["dcc"]["v"][0]["ci"].as_str().unwrap().to_owned();
    assert!(uvci.starts_with("URN:UVCI:01:IN:"), "{uvci}");
    assert!(uvci.contains(&id[..26]), "{uvci} names {id}");
    assert_eq!(dcc["dcc"]["nam"]["fnt"], "MITRA", "{dcc}");
    assert_eq!(dcc["dcc"]["dob"], "1994-11-30", "{dcc}");
    assert_eq!(dcc["dcc"]["v"][0]["dn"], 1, "{dcc}");
    assert_eq!(dcc["dcc"]["v"][0]["sd"], 2, "{dcc}");

    let shc = decode_independently("shc.py", &[&jwks_path], &artifacts["shc"])
        .unwrap_or_else(|e| panic!("SMART Health Card refused by the independent decoder: {e}"));
    let rid = shc["vc"]["rid"].as_str().unwrap().to_owned();
    assert_eq!(shc["iss"], "http://localhost:8080", "{shc}");
    let bundle = &shc["vc"]["credentialSubject"]["fhirBundle"];
    assert_eq!(bundle["entry"][0]["resource"]["birthDate"], "1994-11-30");

    let ddcc = decode_independently("who_ddcc.py", &[&dsc_path], &artifacts["who-ddcc"])
        .unwrap_or_else(|e| panic!("WHO DDCC refused by the independent decoder: {e}"));
    assert!(ddcc.to_string().contains(&id[..26]), "{ddcc} names {id}");

    // The WHO DDCC FHIR document: JSON, verified by naming its format.
    let (status, content_type, document) = get_text(
        &server,
        &format!("/v1/certificates/{id}/formats/who-ddcc-fhir"),
    );
    assert_eq!(status, 200, "{document}");
    assert!(
        content_type.starts_with("application/fhir+json"),
        "{content_type}"
    );
    let document: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["resourceType"], "Bundle");
    assert_eq!(document["type"], "document");
    let verdict = verify(
        &server,
        &json!({ "format": "who-ddcc-fhir", "artifact": document }),
    );
    assert_eq!(verdict["valid"], true, "{verdict}");
    decode_independently("who_ddcc_fhir.py", &[&jwks_path], &document.to_string())
        .unwrap_or_else(|e| panic!("WHO DDCC FHIR refused by the independent decoder: {e}"));

    // A forged artifact: one character changed in the signed part.
    let mut forged = artifacts["eu-dcc"].clone().into_bytes();
    let at = forged.len() / 2;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let (status, verdict) = support::send_json(
        "POST",
        &format!("{}/v1/verify", server.base),
        None,
        Some(&json!({ "qr": String::from_utf8(forged).unwrap() })),
    );
    assert!(
        status == 422 || verdict["valid"] == false,
        "a forged EU DCC is never valid: {status} {verdict}"
    );
    assert_ne!(verdict["valid"], true);

    // The ES256 key rotated: new artifacts carry the new key, the ones made
    // before still verify with the retired key (published beside it).
    let (status, rotated) = support::send_json(
        "POST",
        &format!("{}/v1/keys/rotate", server.base),
        Some(ADMIN),
        Some(&json!({ "algorithm": "es256" })),
    );
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["retired_key_id"], ec["kid"], "{rotated}");
    let (_, _, fresh) = get_text(&server, &format!("/v1/certificates/{id}/formats/shc"));
    let verdict = verify(&server, &json!({ "qr": fresh }));
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["checks"]["signature"]["key_id"], rotated["key_id"]);
    for (format, text) in &artifacts {
        let verdict = verify(&server, &json!({ "qr": text }));
        assert_eq!(verdict["valid"], true, "{format} after rotation: {verdict}");
    }
    let (_, _, jwks_after) = get_text(&server, "/.well-known/jwks.json");
    assert!(jwks_after.contains(rotated["key_id"].as_str().unwrap()));
    assert!(jwks_after.contains(ec["kid"].as_str().unwrap()));

    // Revoked: every format says so, and the revocation lists carry it.
    let (status, body) = support::send_json(
        "POST",
        &format!("{}/v1/certificates/{id}/revoke", server.base),
        Some(ADMIN),
        Some(&json!({ "reason": "issued in error" })),
    );
    assert_eq!(status, 200, "{body}");
    for (format, text) in &artifacts {
        let verdict = verify(&server, &json!({ "qr": text }));
        assert_eq!(verdict["valid"], false, "{format}: {verdict}");
        assert_eq!(
            verdict["checks"]["status"], "revoked",
            "{format}: {verdict}"
        );
    }
    let verdict = verify(
        &server,
        &json!({ "format": "who-ddcc-fhir", "artifact": document }),
    );
    assert_eq!(verdict["checks"]["status"], "revoked", "{verdict}");

    let (status, _, list) = get_text(&server, "/v1/formats/eu-dcc/revocations");
    assert_eq!(status, 200, "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    let uci_hash =
        base64::engine::general_purpose::STANDARD.encode(&Sha256::digest(uvci.as_bytes())[..16]);
    assert!(
        list["hashTypes"]["UCI"]
            .as_array()
            .unwrap()
            .contains(&json!(uci_hash)),
        "{list} carries the UCI hash of {uvci}"
    );

    let kid = ec["kid"].as_str().unwrap();
    let (status, _, crl) = get_text(&server, &format!("/.well-known/crl/{kid}.json"));
    assert_eq!(status, 200, "{crl}");
    let crl: Value = serde_json::from_str(&crl).unwrap();
    assert_eq!(crl["method"], "rid");
    assert!(
        crl["rids"].as_array().unwrap().contains(&json!(rid)),
        "{crl} has {rid}"
    );
    assert!(crl["ctr"].as_i64().unwrap() > 0);
    // The key names the list's version (SMART Health Cards, "Revocation").
    let (_, _, jwks_now) = get_text(&server, "/.well-known/jwks.json");
    let jwks_now: Value = serde_json::from_str(&jwks_now).unwrap();
    let key = jwks_now["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap();
    assert!(key["crlVersion"].as_i64().unwrap() >= crl["ctr"].as_i64().unwrap());
    server.stop();
}

/// The second example configuration (config/examples/jamaica.toml: EU DCC,
/// SMS, passports) serves as it is: its adapters are ready, the others are
/// refused for want of a grant, and a certificate comes out as a Jamaican
/// EU DCC that verifies.
#[test]
fn the_example_country_config_serves_its_adapters() {
    let tmp = tempfile::tempdir().unwrap();
    let config = repo().join("config/examples/jamaica.toml");
    let port = support::free_port();
    let mut cmd = support::serve_command(
        &config,
        &tmp.path().join("data"),
        &repo().join("target/plugins"),
        port,
        ADMIN,
    );
    cmd.env("DIVOC_PLUGINS__WATCH", "false");
    let server = support::spawn(&mut cmd, port);
    let (status, plugins) = support::send_json(
        "GET",
        &format!("{}/v1/plugins", server.base),
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200, "{plugins}");
    let state = |name: &str| {
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["state"].as_str().unwrap_or_default().to_owned())
    };
    for name in ["format-eu-dcc", "id-passport", "id-national", "notify-sms"] {
        assert_eq!(state(name).as_deref(), Some("ready"), "{name}: {plugins}");
    }
    assert_ne!(state("format-shc").as_deref(), Some("ready"), "{plugins}");

    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("host/certificates/tests/cases/valid-one-dose/request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (status, issued) = support::send_json(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&request),
    );
    assert_eq!(status, 201, "{issued}");
    let id = issued["id"].as_str().unwrap();
    let (status, _, dcc) = get_text(&server, &format!("/v1/certificates/{id}/formats/eu-dcc"));
    assert_eq!(status, 200, "{dcc}");
    let verdict = verify(&server, &json!({ "qr": dcc }));
    assert_eq!(verdict["valid"], true, "{verdict}");
    let (_, _, list) = get_text(&server, "/v1/formats/eu-dcc/revocations");
    assert!(list.contains("\"country\":\"JM\""), "{list}");
    server.stop();
}
