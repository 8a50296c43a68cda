//! DIVOC's routes and the recipient-facing reads, end to end through the
//! real server: certify, HEAD by code, QR by code (ours and DIVOC's zip
//! form), verify from a QR *image*, lookups by code and by contact + date
//! of birth with recipient and facility scoping, DIVOC corrections,
//! DIVOC revocation by code and the `certificate/revoked` check, and the
//! CSV import over HTTP and through `divoc import certificates`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support;
use support::Server;

const ADMIN: &str = "compat-test-admin-token-0123";
const RECIPIENT: &str = "compat-test-recipient-token-0123";
const FACILITY: &str = "compat-test-facility-token-0123";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The repository's config plus a recipient token (one phone number) and a
/// facility token (FAC-1).
fn config(tmp: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("config/divoc.toml")).unwrap();
    text.push_str(&format!(
        r#"
[[auth.tokens]]
name = "recipient-1"
role = "recipient"
token = "{RECIPIENT}"
contacts = ["tel:9880414888"]

[[auth.tokens]]
name = "facility-1"
role = "facility"
token = "{FACILITY}"
facilities = ["FAC-1"]
"#
    ));
    let path = tmp.join("divoc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(tmp: &Path) -> Server {
    let port = support::free_port();
    let mut cmd = support::serve_command(
        &config(tmp),
        &tmp.join("data"),
        &tmp.join("plugins"),
        port,
        ADMIN,
    );
    cmd.env(
        "DIVOC_CERTIFICATES__PDF__TEMPLATES",
        repo().join("config/templates/pdf"),
    );
    support::spawn(&mut cmd, port)
}

fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: Option<&[u8]>,
) -> (u16, Vec<u8>) {
    let mut req = ureq::request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req.set("Content-Type", content_type).send_bytes(b),
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

fn send(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string().into_bytes());
    let (status, bytes) = request(method, url, token, "application/json", body.as_deref());
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, v)
}

fn divoc_item(code: &str, dose: u32, batch: &str) -> Value {
    let cases = repo().join("host/certificates/tests/cases");
    let mut item: Value = serde_json::from_str(
        &std::fs::read_to_string(cases.join("divoc-certify/payload.json")).unwrap(),
    )
    .unwrap();
    item["preEnrollmentCode"] = json!(code);
    item["vaccination"]["dose"] = json!(dose);
    item["vaccination"]["batch"] = json!(batch);
    // The fixture's validity ended in 2025; these must verify as valid.
    item["vaccination"]["effectiveUntil"] = json!("2099-12-31");
    item
}

#[test]
fn divoc_routes_lookups_and_qr_images() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let base = server.base.as_str();
    let admin = Some(ADMIN);

    // DIVOC certify: two doses of one pre-enrolment code.
    let items = json!([divoc_item("P-100", 1, "B-1"), divoc_item("P-100", 2, "B-2")]);
    let (status, body) = send(
        "POST",
        &format!("{base}/divoc/api/v1/certify"),
        admin,
        Some(&items),
    );
    assert_eq!(status, 200, "{body}");
    let dose1 = body[0]["certificateId"].as_str().unwrap().to_owned();
    let dose2 = body[1]["certificateId"].as_str().unwrap().to_owned();

    // HEAD by code.
    let (s, _) = request(
        "HEAD",
        &format!("{base}/cert/api/certificate/P-100"),
        admin,
        "",
        None,
    );
    assert_eq!(s, 200);
    let (s, _) = request(
        "HEAD",
        &format!("{base}/cert/api/certificate/P-404"),
        admin,
        "",
        None,
    );
    assert_eq!(s, 404);

    // QR by code: the latest dose by default, a chosen dose, DIVOC's zip.
    let code_url = format!("{base}/divoc/api/v1/certificates/P-100");
    let (s, txt) = request("GET", &format!("{code_url}/qr.txt"), admin, "", None);
    assert_eq!(s, 200);
    let qr_text = String::from_utf8(txt).unwrap();
    let (_, own) = request(
        "GET",
        &format!("{base}/v1/certificates/{dose2}/qr.txt"),
        admin,
        "",
        None,
    );
    assert_eq!(
        qr_text.as_bytes(),
        own.as_slice(),
        "default is the latest dose"
    );
    let (s, png) = request("GET", &format!("{code_url}/qr.png?dose=1"), admin, "", None);
    assert_eq!(s, 200);
    let (s, zip) = request("GET", &format!("{code_url}/qr.zip?dose=1"), admin, "", None);
    assert_eq!(s, 200);
    assert_eq!(&zip[..4], b"PK\x03\x04");
    let (s, legacy_png) = request(
        "GET",
        &format!("{base}/v1/certificates/{dose1}/qr.png?form=legacy"),
        admin,
        "",
        None,
    );
    assert_eq!(s, 200);
    let (s, body) = send("GET", &format!("{code_url}/qr.png?dose=7"), admin, None);
    assert_eq!((s, body["error"]["field"].as_str()), (404, Some("dose")));
    let (s, body) = send("GET", &format!("{code_url}/qr.png?form=nope"), admin, None);
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("form")));

    // PDF by code (DIVOC's route and ours), in English and Hindi; the
    // language from `?lang=` or Accept-Language; an unknown one is a 400.
    for url in [
        format!("{base}/cert/api/certificatePDF/P-100"),
        format!("{code_url}/certificate.pdf?lang=hi"),
        format!("{base}/v1/certificates/{dose1}/certificate.pdf?lang=en"),
    ] {
        let (s, pdf) = request("GET", &url, admin, "", None);
        assert_eq!(s, 200, "{url}");
        assert!(pdf.starts_with(b"%PDF-"), "{url}");
    }
    let (s, body) = send(
        "GET",
        &format!("{code_url}/certificate.pdf?lang=xx"),
        admin,
        None,
    );
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("lang")));
    let with_header = ureq::get(&format!("{code_url}/certificate.pdf"))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .set("Accept-Language", "hi-IN,hi;q=0.9,en;q=0.8")
        .call()
        .unwrap();
    assert_eq!(with_header.content_type(), "application/pdf");

    // Verify from a QR image: as the body, and base64 in JSON (DIVOC's zip
    // form too). Verification is public.
    let (s, bytes) = request(
        "POST",
        &format!("{base}/v1/verify"),
        None,
        "image/png",
        Some(&png),
    );
    assert_eq!(s, 200);
    let verdict: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&legacy_png);
    let (s, verdict) = send(
        "POST",
        &format!("{base}/v1/verify"),
        None,
        Some(&json!({"qr_image": b64})),
    );
    assert_eq!(
        (s, verdict["valid"].as_bool()),
        (200, Some(true)),
        "{verdict}"
    );
    let (s, body) = request(
        "POST",
        &format!("{base}/v1/verify"),
        None,
        "image/png",
        Some(b"not a png"),
    );
    assert_eq!(s, 422);
    assert!(String::from_utf8_lossy(&body).contains("qr_image"));

    // Lookups: by code (issuer), by contact + dob (recipient: own only).
    let lookup = format!("{base}/v1/certificates/lookup");
    let (s, body) = send(
        "POST",
        &lookup,
        admin,
        Some(&json!({"preEnrollmentCode": "P-100"})),
    );
    assert_eq!(s, 200);
    assert_eq!(body["certificates"].as_array().unwrap().len(), 2);
    let mine = json!({"contact": "tel:98804 14888", "dob": "1994-11-30"});
    let (s, body) = send("POST", &lookup, Some(RECIPIENT), Some(&mine));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["certificates"].as_array().unwrap().len(), 2);
    let (s, body) = send(
        "POST",
        &lookup,
        Some(RECIPIENT),
        Some(&json!({"contact": "tel:111", "dob": "1994-11-30"})),
    );
    assert_eq!((s, body["error"]["field"].as_str()), (403, Some("contact")));
    let (s, body) = send(
        "POST",
        &lookup,
        Some(RECIPIENT),
        Some(&json!({"preEnrollmentCode": "P-100"})),
    );
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (403, Some("preEnrollmentCode"))
    );
    let (s, body) = send(
        "POST",
        &lookup,
        admin,
        Some(&json!({"contact": "tel:9880414888"})),
    );
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("dob")));
    // Wrong dob: nothing (the lookup key is contact + dob).
    let (s, body) = send(
        "POST",
        &lookup,
        admin,
        Some(&json!({"contact": "tel:9880414888", "dob": "1994-11-29"})),
    );
    assert_eq!(s, 200);
    assert_eq!(body["certificates"].as_array().unwrap().len(), 0);
    // The recipient reads their own certificate, and not someone else's.
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/certificates/{dose1}"),
        Some(RECIPIENT),
        None,
    );
    assert_eq!(s, 200);
    let mut other = divoc_item("P-200", 1, "B-9");
    other["recipient"]["contact"] = json!(["tel:5550001"]);
    let (s, body) = send(
        "POST",
        &format!("{base}/divoc/api/v1/certify"),
        admin,
        Some(&json!([other])),
    );
    assert_eq!(s, 200);
    let others = body[0]["certificateId"].as_str().unwrap().to_owned();
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/certificates/{others}"),
        Some(RECIPIENT),
        None,
    );
    assert_eq!(s, 404);
    // A facility sees only what it issued: P-100 came from no facility id.
    let (s, body) = send(
        "POST",
        &lookup,
        Some(FACILITY),
        Some(&json!({"preEnrollmentCode": "P-100"})),
    );
    assert_eq!(s, 200);
    assert_eq!(body["certificates"].as_array().unwrap().len(), 0);

    // DIVOC correction: a request naming a dose never issued is a 412 and
    // corrects nothing (DIVOC's precondition); then dose 2 with another
    // batch → a new version; the old one is revoked as superseded.
    let fix = json!([
        divoc_item("P-100", 2, "B-2-FIXED"),
        divoc_item("P-100", 3, "B-3")
    ]);
    let (s, body) = send(
        "PUT",
        &format!("{base}/divoc/api/v1/certificate"),
        admin,
        Some(&fix),
    );
    assert_eq!(s, 412, "{body}");
    assert_eq!(body["error"]["field"], "[1].preEnrollmentCode");
    let (_, history) = send(
        "GET",
        &format!("{base}/v1/certificates/{dose2}/history"),
        admin,
        None,
    );
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        1,
        "{history}"
    );
    let (s, body) = send(
        "PUT",
        &format!("{base}/divoc/api/v1/certificate"),
        admin,
        Some(&json!([divoc_item("P-100", 2, "B-2-FIXED")])),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body[0]["status"], "corrected");
    let corrected = body[0]["certificateId"].as_str().unwrap().to_owned();
    assert_ne!(corrected, dose2);
    let (_, history) = send(
        "GET",
        &format!("{base}/v1/certificates/{corrected}/history"),
        admin,
        None,
    );
    assert_eq!(history["versions"][0]["revoked_reason"], "superseded");

    // DIVOC revocation check: 404 while valid; DELETE by code and dose; 200.
    let (_, cred1) = send(
        "GET",
        &format!("{base}/v1/certificates/{dose1}"),
        admin,
        None,
    );
    let revoked_url = format!("{base}/divoc/api/v1/certificate/revoked");
    let (s, _) = send("POST", &revoked_url, None, Some(&cred1));
    assert_eq!(s, 404);
    let (s, body) = send("DELETE", &format!("{code_url}?doses=x"), admin, None);
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("doses")));
    // DIVOC's rules: the doses are named (or `allDoses=true`), consecutive,
    // and include the latest; dose 1 alone would leave dose 2 standing on
    // a revoked dose.
    let (s, body) = send("DELETE", &code_url, admin, None);
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("doses")));
    let (s, body) = send("DELETE", &format!("{code_url}?doses=1"), admin, None);
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (400, Some("doses")),
        "{body}"
    );
    let (s, _) = send(
        "DELETE",
        &format!("{base}/divoc/api/v1/certificates/P-404?allDoses=true"),
        admin,
        None,
    );
    assert_eq!(s, 404);
    let (s, body) = send("DELETE", &format!("{code_url}?doses=2"), admin, None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["revoked"].as_array().unwrap().len(), 1);
    assert_eq!(body["revoked"][0]["certificateId"], corrected.as_str());
    let (s, body) = send("DELETE", &format!("{code_url}?allDoses=true"), admin, None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["revoked"].as_array().unwrap().len(), 1);
    assert_eq!(body["revoked"][0]["certificateId"], dose1.as_str());
    let (s, body) = send("POST", &revoked_url, None, Some(&cred1));
    assert_eq!((s, body["revoked"].as_bool()), (200, Some(true)));
    let (s, _) = send(
        "POST",
        &format!("{base}/cert/api/certificate/revoked"),
        None,
        Some(&cred1),
    );
    assert_eq!(s, 200);
    // The corrected dose 2 was revoked by name.
    let (_, cred2) = send(
        "GET",
        &format!("{base}/v1/certificates/{corrected}"),
        admin,
        None,
    );
    let (s, _) = send("POST", &revoked_url, None, Some(&cred2));
    assert_eq!(s, 200);
    let (_, verdict) = send(
        "POST",
        &format!("{base}/v1/verify"),
        None,
        Some(&json!({"credential": cred1})),
    );
    assert_eq!(verdict["valid"], false);

    // A facility token on DIVOC's routes: DIVOC's payload names no facility
    // id, so the token's own facility is recorded; it then reads and
    // corrects what it issued, and nothing issued elsewhere.
    let certify = format!("{base}/divoc/api/v1/certify");
    let (s, body) = send(
        "POST",
        &certify,
        Some(FACILITY),
        Some(&json!([divoc_item("F-100", 1, "B-F1")])),
    );
    assert_eq!(s, 200, "{body}");
    let own = body[0]["certificateId"].as_str().unwrap().to_owned();
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/certificates/{own}"),
        Some(FACILITY),
        None,
    );
    assert_eq!(s, 200);
    let (s, body) = send(
        "POST",
        &format!("{certify}?facility=FAC-2"),
        Some(FACILITY),
        Some(&json!([divoc_item("F-101", 1, "B-F1")])),
    );
    assert_eq!(s, 403, "{body}");
    let fix = format!("{base}/divoc/api/v1/certificate");
    let (s, body) = send(
        "PUT",
        &fix,
        Some(FACILITY),
        Some(&json!([
            divoc_item("F-100", 1, "B-F1-FIXED"),
            divoc_item("P-100", 2, "B-2-BY-FAC")
        ])),
    );
    // P-100 is another facility's: not visible, so not correctable (412),
    // and nothing of the request is applied.
    assert_eq!(s, 412, "{body}");
    assert_eq!(body["error"]["field"], "[1].preEnrollmentCode", "{body}");
    let (s, body) = send(
        "PUT",
        &fix,
        Some(FACILITY),
        Some(&json!([divoc_item("F-100", 1, "B-F1-FIXED")])),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body[0]["status"], "corrected", "{body}");
    let fixed = body[0]["certificateId"].as_str().unwrap().to_owned();
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/certificates/{fixed}"),
        Some(FACILITY),
        None,
    );
    assert_eq!(s, 200);
    // An admin's DIVOC correction keeps the facility the dose was issued for.
    let (s, body) = send(
        "PUT",
        &fix,
        admin,
        Some(&json!([divoc_item("F-100", 1, "B-F1-FIXED-2")])),
    );
    assert_eq!(s, 200, "{body}");
    let again = body[0]["certificateId"].as_str().unwrap().to_owned();
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/certificates/{again}"),
        Some(FACILITY),
        None,
    );
    assert_eq!(s, 200);
    // Another pre-enrolment code's certificates stay invisible to it.
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/certificates/{corrected}"),
        Some(FACILITY),
        None,
    );
    assert_eq!(s, 404);
}

const CSV_HEADER: &str = "preEnrollmentCode,recipientName,recipientMobileNumber,recipientDOB,recipientGender,recipientNationality,recipientIdentity,vaccinationBatch,vaccinationDate,vaccinationDose,vaccinationTotalDoses,vaccinationManufacturer,vaccinationName,vaccinatorName,facilityName,facilityAddressLine1,facilityDistrict,facilityState,facilityPincode";

fn csv_row(code: &str, dob: &str) -> String {
    format!(
        "{code},Asha Rao,9876543210,{dob},Female,IN,did:in.gov.uidai.aadhaar:2342343334,B-7,2021-05-01T10:00:00Z,1,2,Serum Institute,COVISHIELD,Dr. Rao,PHC Anekal,Main Road,Bengaluru,Karnataka,560001\n"
    )
}

#[test]
fn csv_import_over_http_and_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let base = server.base.as_str();
    let import = format!("{base}/v1/certificates/import");

    // A bad header: 422 naming the column, nothing issued.
    let bad = format!(
        "{CSV_HEADER},vaccinationBtach\n{}",
        csv_row("C-1", "1985-03-12").trim_end().to_owned() + ",x\n"
    );
    let (s, body) = request(
        "POST",
        &import,
        Some(ADMIN),
        "text/csv",
        Some(bad.as_bytes()),
    );
    assert_eq!(s, 422, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["field"], "vaccinationBtach");
    let (_, found) = send(
        "POST",
        &format!("{base}/v1/certificates/lookup"),
        Some(ADMIN),
        Some(&json!({"preEnrollmentCode": "C-1"})),
    );
    assert_eq!(found["certificates"].as_array().unwrap().len(), 0);

    // Two good rows and a bad one: per-row answers by line, errors by column.
    let csv = format!(
        "{CSV_HEADER}\n{}{}{}",
        csv_row("C-1", "12-Mar-1985"),
        csv_row("C-2", "31-02-1985"),
        csv_row("C-3", "1990-07-01")
    );
    let (s, body) = request(
        "POST",
        &import,
        Some(ADMIN),
        "text/csv",
        Some(csv.as_bytes()),
    );
    assert_eq!(s, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["summary"],
        json!({"rows": 3, "created": 2, "existing": 0, "failed": 1})
    );
    assert_eq!(body["results"][0]["line"], 2);
    assert_eq!(body["results"][0]["status"], "created");
    assert_eq!(body["results"][1]["line"], 3);
    assert_eq!(body["results"][1]["error"]["field"], "recipientDOB");
    let c1 = body["results"][0]["certificateId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The facility token may not issue for other facilities.
    let (s, body) = request(
        "POST",
        &format!("{import}?facility=FAC-2"),
        Some(FACILITY),
        "text/csv",
        Some(csv.as_bytes()),
    );
    assert_eq!(s, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["summary"]["failed"], 3);
    assert_eq!(body["results"][0]["error"]["field"], "facilityId");
    // Its own upload (DIVOC's CSV has no facility id column) is issued for
    // its facility, and it reads what it issued.
    let own = format!("{CSV_HEADER}\n{}", csv_row("F-1", "1970-01-02"));
    let (s, body) = request(
        "POST",
        &import,
        Some(FACILITY),
        "text/csv",
        Some(own.as_bytes()),
    );
    assert_eq!(s, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["results"][0]["status"], "created", "{body}");
    let f1 = body["results"][0]["certificateId"].as_str().unwrap();
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/certificates/{f1}"),
        Some(FACILITY),
        None,
    );
    assert_eq!(s, 200);

    // The CLI: the same file again (already issued: "existing") plus a new
    // row, with a report; exit code 1 because one row fails.
    let file = tmp.path().join("upload.csv");
    std::fs::write(&file, format!("{csv}{}", csv_row("C-4", "1970-01-01"))).unwrap();
    let report = tmp.path().join("report.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_divoc"))
        .args(["import", "certificates"])
        .arg(&file)
        .args([
            "--url",
            base,
            "--token",
            ADMIN,
            "--chunk-rows",
            "2",
            "--report",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("4 rows: 1 created, 2 already issued, 1 failed"),
        "{stdout}"
    );
    assert!(stderr.contains("line 3:"), "{stderr}");
    assert!(!stderr.contains("Asha"), "no personal data in the output");
    let report = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "line,status,certificateId,field,message");
    assert_eq!(lines.len(), 5);
    assert!(
        lines[1].starts_with(&format!("2,existing,{c1}")),
        "{report}"
    );
    assert!(lines[2].starts_with("3,failed,,recipientDOB"), "{report}");
    assert!(lines[4].starts_with("5,created,"), "{report}");
}

/// DIVOC's certify route, for a programme the registry knows: its policy
/// decides and a second dose waits for its interval, as for a vaccination
/// recorded through the rollout; a programme it does not know is as before.
#[test]
fn certify_keeps_the_registry_rules_for_its_programmes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let base = server.base.as_str();
    for (path, body) in [
        (
            "/v1/vaccines",
            json!({"code": "COVAX", "name": "CoVax", "manufacturer": "COVPharma",
                   "mode": "injection", "doses": 2, "intervals": [{"minDays": 28}]}),
        ),
        (
            "/v1/programmes",
            json!({"code": "C19C", "name": "COVID-19", "startDate": "2020-01-01",
                   "vaccines": ["COVAX"], "eligibility": {"rule": {"minAge": 18}}}),
        ),
    ] {
        let (s, answer) = send("POST", &format!("{base}{path}"), Some(ADMIN), Some(&body));
        assert_eq!(s, 201, "{answer}");
    }
    let certify = |item: Value| {
        send(
            "POST",
            &format!("{base}/divoc/api/v1/certify"),
            Some(ADMIN),
            Some(&json!([item])),
        )
    };
    let item = |code: &str, dose: u32, date: &str| {
        let mut i = divoc_item(code, dose, "B-1");
        i["programId"] = json!("C19C");
        i["vaccination"]["date"] = json!(date);
        i
    };
    let (s, body) = certify(item("CC-1", 1, "2020-12-02T10:00:00Z"));
    assert_eq!(s, 200, "{body}");
    let mut child = item("CC-2", 1, "2020-12-02T10:00:00Z");
    child["recipient"]["dob"] = json!("2010-01-01");
    let (s, body) = certify(child);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (422, Some("ineligible")),
        "{body}"
    );
    let (s, body) = certify(item("CC-1", 2, "2020-12-10T10:00:00Z"));
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["field"], "[0].vaccination.date", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2020-12-30"),
        "{body}"
    );
    let mut unknown = item("CC-4", 1, "2020-12-02T10:00:00Z");
    unknown["vaccination"]["name"] = json!("Other Vax");
    let (s, body) = certify(unknown);
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["field"], "[0].vaccination.name", "{body}");
    let (s, body) = certify(item("CC-1", 2, "2021-01-05T10:00:00Z"));
    assert_eq!(s, 200, "{body}");
    // Not the registry's programme: as before (the child is certified).
    let mut other = divoc_item("CC-3", 1, "B-1");
    other["recipient"]["dob"] = json!("2010-01-01");
    let (s, body) = certify(other);
    assert_eq!(s, 200, "{body}");
    server.stop();
}
