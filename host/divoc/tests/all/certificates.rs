//! End to end through HTTP: issue a certificate, fetch it and its QR, verify
//! it online, check its proof with nothing but the published JWKS, revoke it
//! and see verification report it revoked; bad input is a 4xx naming the field.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support;
use support::Server;

const ADMIN: &str = "cert-test-admin-token-0123";

fn start(tmp: &std::path::Path) -> Server {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    support::start(&repo.join("config/divoc.toml"), tmp, ADMIN)
}

fn send(method: &str, url: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
    let req = ureq::request(method, url).set("Authorization", &format!("Bearer {ADMIN}"));
    let result = match body {
        Some(b) => req.send_string(&b.to_string()),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = response.status();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    (status, bytes)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn issue_render_verify_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let base = &server.base;
    let cases = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certificates/tests/cases");
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(cases.join("valid-one-dose/request.json")).unwrap(),
    )
    .unwrap();

    let (status, body) = send("POST", &format!("{base}/v1/certificates"), Some(&request));
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let id = json_of(&body)["id"].as_str().unwrap().to_string();
    // Idempotent: the same item again is the same certificate.
    let (status, body) = send("POST", &format!("{base}/v1/certificates"), Some(&request));
    assert_eq!(status, 200);
    assert_eq!(json_of(&body)["id"], id.as_str());

    let (status, body) = send("GET", &format!("{base}/v1/certificates/{id}"), None);
    assert_eq!(status, 200);
    let credential = json_of(&body);
    assert_eq!(credential["proof"]["cryptosuite"], "eddsa-jcs-2022");

    let (status, png) = send("GET", &format!("{base}/v1/certificates/{id}/qr.png"), None);
    assert_eq!(status, 200);
    assert_eq!(&png[1..4], b"PNG");
    let (status, svg) = send("GET", &format!("{base}/v1/certificates/{id}/qr.svg"), None);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&svg).contains("<svg"));
    let (status, pdf) = send(
        "GET",
        &format!("{base}/v1/certificates/{id}/certificate.pdf?lang=hi"),
        None,
    );
    assert_eq!(status, 200);
    assert!(pdf.starts_with(b"%PDF-"));
    let (_, qr) = send("GET", &format!("{base}/v1/certificates/{id}/qr.txt"), None);
    let qr = String::from_utf8(qr).unwrap();

    // An independent check with only the published JWKS.
    let (status, jwks) = send("GET", &format!("{base}/.well-known/jwks.json"), None);
    assert_eq!(status, 200);
    let jwks = json_of(&jwks);
    let resolve = |vm: &str| -> Option<[u8; 32]> {
        jwks["keys"]
            .as_array()?
            .iter()
            .find(|k| k["kid"] == vm)
            .and_then(|k| {
                let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(k["x"].as_str()?)
                    .ok()?;
                x.try_into().ok()
            })
    };
    divoc_crypto::data_integrity::verify_proof(&credential, resolve).unwrap();

    let (status, body) = send(
        "POST",
        &format!("{base}/v1/verify"),
        Some(&json!({ "qr": qr })),
    );
    assert_eq!(status, 200);
    let verdict = json_of(&body);
    assert_eq!(verdict["valid"], true, "{verdict}");

    // Offline: a trust file and nothing else. Without status lists the
    // answer is "signature valid, status unknown": not valid (revocation
    // cannot be excluded), exit code 3, and not "forged" either.
    let data = tmp.path().join("data");
    let trust = tmp.path().join("trust.json");
    let cli = |args: &[&str]| {
        let o =
            crate::support::on_test_backend(&mut Command::new(env!("CARGO_BIN_EXE_divoc")), &data)
                .args(args)
                .output()
                .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
        )
    };
    let (code, _) = cli(&[
        "keys",
        "export",
        "--data-dir",
        data.to_str().unwrap(),
        "--trust-file",
        trust.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0));
    let (code, out) = cli(&["verify", &qr, "--trust-file", trust.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{out}");
    let offline: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(offline["valid"], false, "{offline}");
    assert_eq!(offline["checks"]["signature"]["ok"], true, "{offline}");
    assert_eq!(offline["checks"]["status"], "unknown", "{offline}");

    // With the published status lists cached, before any revocation: valid.
    let cache = tmp.path().join("status");
    let fetch_lists = || {
        std::fs::create_dir_all(&cache).unwrap();
        for entry in credential["credentialStatus"].as_array().unwrap() {
            let url = entry["statusListCredential"].as_str().unwrap();
            let list = url.rsplit('/').next().unwrap();
            let (status, body) = send("GET", &format!("{base}/v1/status/{list}"), None);
            assert_eq!(status, 200);
            std::fs::write(cache.join(format!("{list}.json")), body).unwrap();
        }
    };
    fetch_lists();
    let verify_cached = || {
        cli(&[
            "verify",
            &qr,
            "--trust-file",
            trust.to_str().unwrap(),
            "--status-cache",
            cache.to_str().unwrap(),
        ])
    };
    let (code, out) = verify_cached();
    assert_eq!(code, Some(0), "{out}");
    let offline: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(offline["checks"]["status"], "valid", "{offline}");

    let (status, _) = send(
        "POST",
        &format!("{base}/v1/certificates/{id}/revoke"),
        Some(&json!({"reason": "issued in error"})),
    );
    assert_eq!(status, 200);
    let (_, body) = send(
        "POST",
        &format!("{base}/v1/verify"),
        Some(&json!({ "credential": credential })),
    );
    let verdict = json_of(&body);
    assert_eq!(verdict["valid"], false, "{verdict}");
    assert_eq!(verdict["checks"]["status"], "revoked", "{verdict}");
    assert_eq!(verdict["checks"]["signature"]["ok"], true, "{verdict}");

    // Offline again, with the lists fetched after the revocation: revoked,
    // exit code 1.
    fetch_lists();
    let (code, out) = verify_cached();
    assert_eq!(code, Some(1), "{out}");
    let offline: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(offline["checks"]["status"], "revoked", "{offline}");

    // Every action above is in the hash-chained audit log, intact.
    let (code, out) = cli(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("intact"), "{out}");

    // Someone with write access to the file drops the append-only trigger
    // and rewrites a record: `divoc audit verify` names it and fails.
    drop(server);
    let db = crate::support::open_db(&data);
    db.execute_batch_for_tests(if crate::support::on_postgres() {
        "ALTER TABLE audit DISABLE TRIGGER audit_no_update;
         UPDATE audit SET actor = 'someone-else' WHERE seq = 2;"
    } else {
        "DROP TRIGGER audit_no_update;
         UPDATE audit SET actor = 'someone-else' WHERE seq = 2;"
    })
    .unwrap();
    drop(db);
    let (code, out) = cli(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("BROKEN at record 2"), "{out}");
}

#[test]
fn bad_input_is_a_4xx_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let base = &server.base;
    let cases = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certificates/tests/cases");
    let mut request: Value = serde_json::from_str(
        &std::fs::read_to_string(cases.join("valid-one-dose/request.json")).unwrap(),
    )
    .unwrap();
    request["vaccination"]["dose"] = json!(0);
    let (status, body) = send("POST", &format!("{base}/v1/certificates"), Some(&request));
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["error"]["field"], "vaccination.dose");

    let (status, body) = send("POST", &format!("{base}/v1/certificates"), None);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["error"]["field"], "body");
    let (status, body) = send(
        "POST",
        &format!("{base}/v1/verify"),
        Some(&json!({"nope": 1})),
    );
    assert_eq!(status, 400);
    assert_eq!(json_of(&body)["error"]["field"], "qr");

    // Every bad case of the certificate module's case directories, over
    // HTTP: native requests one by one and in a batch, DIVOC payloads
    // through `certify`; each answer names exactly the case's fields.
    let mut cases_seen = 0;
    for entry in std::fs::read_dir(&cases).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("bad-") {
            continue;
        }
        cases_seen += 1;
        let mut expected: Vec<String> = std::fs::read_to_string(dir.join("expected-fields.txt"))
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        expected.sort();
        let fields = |error: &Value| -> Vec<String> {
            let mut got: Vec<String> = error["details"]["fields"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: {error}"))
                .iter()
                .map(|f| f["field"].as_str().unwrap().to_owned())
                .collect();
            got.sort();
            got
        };
        if name.starts_with("bad-divoc-") {
            let payload: Value =
                serde_json::from_slice(&std::fs::read(dir.join("payload.json")).unwrap()).unwrap();
            let (status, body) = send(
                "POST",
                &format!("{base}/divoc/api/v1/certify"),
                Some(&json!([payload])),
            );
            // DIVOC refuses the whole request and stores nothing; the
            // body names the item and its fields.
            assert_eq!(status, 422, "{name}");
            let error = &json_of(&body)["error"];
            assert!(
                error["field"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("[0].")),
                "{name}: {error}"
            );
            let item = json!({"details": &error["details"]["items"][0]});
            assert_eq!(fields(&item), expected, "{name}");
        } else {
            let request: Value =
                serde_json::from_slice(&std::fs::read(dir.join("request.json")).unwrap()).unwrap();
            let (status, body) = send("POST", &format!("{base}/v1/certificates"), Some(&request));
            assert_eq!(status, 422, "{name}: {}", String::from_utf8_lossy(&body));
            assert_eq!(fields(&json_of(&body)["error"]), expected, "{name}");
            let (status, body) = send(
                "POST",
                &format!("{base}/v1/certificates/batch"),
                Some(&json!([request])),
            );
            assert_eq!(status, 200, "{name}");
            let item = &json_of(&body)["results"][0];
            assert_eq!(fields(&item["error"]), expected, "{name}: {item}");
        }
    }
    assert!(cases_seen >= 10, "{cases_seen} cases");
    // Batches are bounded.
    for batch in [
        json!([]),
        json!(vec![request.clone(); 1001]),
        json!({"a": 1}),
    ] {
        let (status, body) = send(
            "POST",
            &format!("{base}/v1/certificates/batch"),
            Some(&batch),
        );
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        assert_eq!(json_of(&body)["error"]["field"], "body");
    }

    // Nothing of any of it was stored: no certificate, no audit record.
    let db = crate::support::open_db(&tmp.path().join("data"));
    for table in ["certificates", "audit", "outbox"] {
        let n = db
            .query_json_for_tests(&format!("SELECT COUNT(*) FROM {table}"))
            .unwrap();
        assert_eq!(n[0][0], 0, "{table}");
    }
}

/// Suspend, reinstate and correct over HTTP, and status lists that
/// verifiers can cache and revalidate.
#[test]
fn status_changes_and_cacheable_status_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let base = &server.base;
    let cases = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certificates/tests/cases");
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(cases.join("valid-one-dose/request.json")).unwrap(),
    )
    .unwrap();
    let (status, body) = send("POST", &format!("{base}/v1/certificates"), Some(&request));
    assert_eq!(status, 201);
    let id = json_of(&body)["id"].as_str().unwrap().to_owned();
    let cert = format!("{base}/v1/certificates/{id}");
    let verdict = || {
        let (_, credential) = send("GET", &cert, None);
        let (status, body) = send(
            "POST",
            &format!("{base}/v1/verify"),
            Some(&json!({"credential": json_of(&credential)})),
        );
        assert_eq!(status, 200);
        json_of(&body)["checks"]["status"].clone()
    };
    assert_eq!(verdict(), "valid");

    // The suspension list, fetched and revalidated.
    let list_url = format!("{base}/v1/status/suspension-0");
    let fetch = |etag: Option<&str>| {
        let mut req = ureq::get(&list_url);
        if let Some(tag) = etag {
            req = req.set("If-None-Match", tag);
        }
        let response = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        (
            response.status(),
            response.header("etag").map(str::to_owned),
            response.header("cache-control").map(str::to_owned),
        )
    };
    let (status, etag, cache) = fetch(None);
    assert_eq!(status, 200);
    assert_eq!(cache.as_deref(), Some("public, max-age=300"));
    let etag = etag.unwrap();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert_eq!(fetch(Some(&etag)).0, 304);
    assert_eq!(fetch(Some("\"something-else\", *")).0, 304);

    // Suspended: the verdict says so and the list's bits (and ETag) change.
    let (status, body) = send(
        "POST",
        &format!("{cert}/suspend"),
        Some(&json!({"until": 1})),
    );
    assert_eq!(
        (status, json_of(&body)["error"]["field"].clone()),
        (400, json!("until"))
    );
    let (status, body) = send(
        "POST",
        &format!("{cert}/suspend"),
        Some(&json!({"until": "2099-01-01"})),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(verdict(), "suspended");
    assert_eq!(fetch(Some(&etag)).0, 200);
    let (_, suspended_etag, _) = fetch(None);
    assert_ne!(suspended_etag.as_deref(), Some(etag.as_str()));
    // Reinstated: valid again, and the first ETag matches again.
    let (status, _) = send("POST", &format!("{cert}/reinstate"), None);
    assert_eq!(status, 200);
    assert_eq!(verdict(), "valid");
    assert_eq!(fetch(Some(&etag)).0, 304);

    // Correction: a new version, the old one superseded; both in history.
    let mut fixed = request.clone();
    fixed["vaccination"]["batch"] = json!("MB3428BX-FIXED");
    let (status, body) = send("PUT", &cert, Some(&fixed));
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let new_id = json_of(&body)["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(verdict(), "revoked");
    let (_, history) = send(
        "GET",
        &format!("{base}/v1/certificates/{new_id}/history"),
        None,
    );
    let history = json_of(&history);
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    // Correcting the superseded version again is refused.
    let (status, _) = send("PUT", &cert, Some(&fixed));
    assert_eq!(status, 409);
}

#[test]
fn divoc_certify_accepts_divoc_payloads_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let base = &server.base;
    let cases = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certificates/tests/cases");
    let item: Value = serde_json::from_str(
        &std::fs::read_to_string(cases.join("divoc-certify/payload.json")).unwrap(),
    )
    .unwrap();
    let mut bad = item.clone();
    bad["vaccination"]["dose"] = json!("one");
    // One bad item: DIVOC refuses the whole request, naming the item.
    let (status, body) = send(
        "POST",
        &format!("{base}/divoc/api/v1/certify"),
        Some(&json!([item, bad])),
    );
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    let error = &json_of(&body)["error"];
    assert_eq!(error["field"], "[1].vaccination.dose", "{error}");
    // Nothing was stored: the good item alone is issued now, not found as
    // an earlier one.
    let (status, body) = send(
        "POST",
        &format!("{base}/divoc/api/v1/certify"),
        Some(&json!([item])),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let results = json_of(&body);
    assert_eq!(results[0]["preEnrollmentCode"], "12346", "{results}");
    assert_eq!(results[0]["status"], "created", "{results}");
    let id = results[0]["certificateId"].as_str().unwrap();
    let (status, _) = send("GET", &format!("{base}/v1/certificates/{id}"), None);
    assert_eq!(status, 200);
}

/// `POST /v1/verify/batch`: verdicts in order, the same as one by one; a
/// revoked credential reads revoked; a bad item fails alone; the batch is
/// bounded; no token is needed, as for `/v1/verify`.
#[test]
fn verify_batch_answers_each_item_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let base = &server.base;
    let cases = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certificates/tests/cases");
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(cases.join("valid-one-dose/request.json")).unwrap(),
    )
    .unwrap();
    let mut second = request.clone();
    second["pre_enrollment_code"] = json!("PEC-BATCH-VERIFY-2");
    let (status, body) = send(
        "POST",
        &format!("{base}/v1/certificates/batch"),
        Some(&json!([request, second])),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let results = json_of(&body)["results"].clone();
    let ids: Vec<String> = (0..2)
        .map(|i| results[i]["id"].as_str().unwrap().to_owned())
        .collect();
    let (_, qr) = send(
        "GET",
        &format!("{base}/v1/certificates/{}/qr.txt", ids[0]),
        None,
    );
    let qr = String::from_utf8(qr).unwrap();
    let (_, credential) = send("GET", &format!("{base}/v1/certificates/{}", ids[1]), None);
    let credential = json_of(&credential);
    let (status, _) = send(
        "POST",
        &format!("{base}/v1/certificates/{}/revoke", ids[1]),
        Some(&json!({"reason": "issued in error"})),
    );
    assert_eq!(status, 200);

    let items = json!([
        { "qr": qr },
        { "credential": credential },
        { "nope": 1 },
        { "qr": "DIVOC1:NOT-BASE45~" },
    ]);
    // Without a token: the route is public.
    let resp = ureq::post(&format!("{base}/v1/verify/batch"))
        .set("Content-Type", "application/json")
        .send_string(&items.to_string())
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{body}");
    assert_eq!(results[0]["valid"], true, "{body}");
    assert_eq!(results[0]["checks"]["status"], "valid", "{body}");
    assert_eq!(results[1]["valid"], false, "{body}");
    assert_eq!(results[1]["checks"]["status"], "revoked", "{body}");
    assert_eq!(results[1]["checks"]["signature"]["ok"], true, "{body}");
    assert_eq!(results[2]["error"]["field"], "qr", "{body}");
    assert_eq!(results[2]["error"]["status"], 400, "{body}");
    assert!(
        results[3]["error"]["status"].as_u64().unwrap() >= 400,
        "{body}"
    );
    // Each verdict is what /v1/verify says for the same input.
    for (i, item) in items.as_array().unwrap().iter().take(2).enumerate() {
        let (status, one) = send("POST", &format!("{base}/v1/verify"), Some(item));
        assert_eq!(status, 200);
        assert_eq!(json_of(&one), results[i], "item {i}");
    }

    // Not an array, empty, too many: 400 naming the body.
    for bad in [
        json!({"qr": qr}),
        json!([]),
        json!(vec![json!({"qr": qr}); 201]),
    ] {
        let (status, body) = send("POST", &format!("{base}/v1/verify/batch"), Some(&bad));
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    }
}

/// The trust bug an operator hit: issue, restart with another
/// `server.public-url` (moving to a real domain), revoke, verify the QR.
/// The verdict must be "revoked", one by one and in a batch.
#[test]
fn a_revocation_after_a_public_url_change_verifies_as_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = repo.join("config/divoc.toml");
    let server = start(tmp.path());
    let base = server.base.clone();
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo.join("host/certificates/tests/cases/valid-one-dose/request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (status, body) = send("POST", &format!("{base}/v1/certificates"), Some(&request));
    assert_eq!(status, 201);
    let id = json_of(&body)["id"].as_str().unwrap().to_string();
    let (_, qr) = send("GET", &format!("{base}/v1/certificates/{id}/qr.txt"), None);
    let qr = String::from_utf8(qr).unwrap();
    server.stop();

    let port = support::free_port();
    let mut cmd = support::serve_command(
        &config,
        &tmp.path().join("data"),
        &tmp.path().join("plugins"),
        port,
        ADMIN,
    );
    cmd.env(
        "DIVOC_SERVER__PUBLIC_URL",
        "https://vaccination.gov.example",
    );
    let server = support::spawn(&mut cmd, port);
    let base = server.base.clone();
    let (status, _) = send(
        "POST",
        &format!("{base}/v1/certificates/{id}/revoke"),
        Some(&json!({"reason": "issued in error"})),
    );
    assert_eq!(status, 200);
    let (status, body) = send(
        "POST",
        &format!("{base}/v1/verify"),
        Some(&json!({"qr": qr})),
    );
    assert_eq!(status, 200);
    let verdict = json_of(&body);
    assert_eq!(verdict["valid"], false, "{verdict}");
    assert_eq!(verdict["checks"]["status"], "revoked", "{verdict}");
    let (status, body) = send(
        "POST",
        &format!("{base}/v1/verify/batch"),
        Some(&json!([{"qr": qr}, {"qr": qr}])),
    );
    assert_eq!(status, 200);
    for v in json_of(&body)["results"].as_array().unwrap() {
        assert_eq!(v["valid"], false, "{v}");
        assert_eq!(v["checks"]["status"], "revoked", "{v}");
    }
}

/// A status that cannot be read is a 503, never a verdict: single and
/// batch verification against a database whose certificates table is gone.
#[test]
fn a_failing_status_read_is_a_503() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let server = start(tmp.path());
    let base = server.base.clone();
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo.join("host/certificates/tests/cases/valid-one-dose/request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (_, body) = send("POST", &format!("{base}/v1/certificates"), Some(&request));
    let id = json_of(&body)["id"].as_str().unwrap().to_string();
    let (_, qr) = send("GET", &format!("{base}/v1/certificates/{id}/qr.txt"), None);
    let qr = String::from_utf8(qr).unwrap();
    crate::support::open_db(&tmp.path().join("data"))
        .execute_batch_for_tests("ALTER TABLE certificates RENAME TO certificates_gone")
        .unwrap();
    let (status, body) = send(
        "POST",
        &format!("{base}/v1/verify"),
        Some(&json!({"qr": qr})),
    );
    let answer = json_of(&body);
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable");
    assert!(answer.get("valid").is_none());
    let (status, body) = send(
        "POST",
        &format!("{base}/v1/verify/batch"),
        Some(&json!([{"qr": qr}])),
    );
    assert_eq!(status, 200);
    let item = &json_of(&body)["results"][0];
    assert_eq!(item["error"]["status"], 503, "{item}");
    assert!(item.get("valid").is_none(), "{item}");
}

/// DIVOC integrators send local times: with an offset (IST, +08:00,
/// −05:00) or, as DIVOC's own clients did, without a zone (read in the
/// deployment's `locale.time-zone`). The credential carries the same
/// instant in UTC.
#[test]
fn divoc_date_times_with_offsets_and_without_a_zone() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let port = support::free_port();
    let mut cmd = support::serve_command(
        &repo.join("config/divoc.toml"),
        &tmp.path().join("data"),
        &tmp.path().join("plugins"),
        port,
        ADMIN,
    );
    cmd.env("DIVOC_LOCALE__TIME_ZONE", "Asia/Kolkata");
    let server = support::spawn(&mut cmd, port);
    let base = server.base.clone();
    let item: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo.join("host/certificates/tests/cases/divoc-certify/payload.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let cases = [
        (
            "TZ-IST",
            "2021-03-02T14:51:18+05:30",
            "2021-03-02T09:21:18Z",
        ),
        ("TZ-PH", "2021-06-11T10:00:00+08:00", "2021-06-11T02:00:00Z"),
        ("TZ-JM", "2021-08-20T23:30:00-05:00", "2021-08-21T04:30:00Z"),
        (
            "TZ-LOCAL",
            "2020-03-24T19:21:19.646",
            "2020-03-24T13:51:19.646Z",
        ),
        (
            "TZ-UTC",
            "2020-12-02T19:21:18.646Z",
            "2020-12-02T19:21:18.646Z",
        ),
    ];
    let items: Vec<Value> = cases
        .iter()
        .map(|(code, date, _)| {
            let mut i = item.clone();
            i["preEnrollmentCode"] = json!(code);
            i["vaccination"]["date"] = json!(date);
            i
        })
        .collect();
    let (status, body) = send(
        "POST",
        &format!("{base}/divoc/api/v1/certify"),
        Some(&Value::Array(items)),
    );
    let results = json_of(&body);
    assert_eq!(status, 200, "{results}");
    for (i, (code, _, utc)) in cases.iter().enumerate() {
        let id = results[i]["certificateId"].as_str().unwrap();
        let (_, body) = send("GET", &format!("{base}/v1/certificates/{id}"), None);
        let vc = json_of(&body);
        assert_eq!(
            vc["credentialSubject"]["vaccination"]["date"], *utc,
            "{code}: {vc}"
        );
    }
    // The same instant sent with another offset is the same certificate.
    let mut again = item.clone();
    again["preEnrollmentCode"] = json!("TZ-IST");
    again["vaccination"]["date"] = json!("2021-03-02T09:21:18Z");
    let (status, body) = send(
        "POST",
        &format!("{base}/divoc/api/v1/certify"),
        Some(&json!([again])),
    );
    let answer = json_of(&body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer[0]["status"], "existing", "{answer}");
    assert_eq!(answer[0]["certificateId"], results[0]["certificateId"]);
}
