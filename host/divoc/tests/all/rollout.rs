//! The rollout registry over HTTP, as a controller and a facility use it:
//! records from `tests/cases/rollout/registry.json` created by a
//! controller token, read back with filters and pages, changed safely with
//! `If-Match`, refused field by field with nothing stored, and a facility
//! token that sees only its own facility and its vaccinators.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support;

const ADMIN: &str = "rollout-test-admin-token-0123";
const CONTROLLER: &str = "rollout-test-controller-token-0123";
const FACILITY: &str = "rollout-test-facility-1-token-0123";
const MONITORING: &str = "rollout-test-monitoring-token-0123";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(tmp: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("config/divoc.toml")).unwrap();
    for (name, role, token, facilities) in [
        ("controller-1", "controller", CONTROLLER, "[]"),
        ("fac-1-staff", "facility", FACILITY, "[\"FAC-1\"]"),
        ("monitor-1", "monitoring", MONITORING, "[]"),
    ] {
        text.push_str(&format!(
            "\n[[auth.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken = \"{token}\"\nfacilities = {facilities}\n"
        ));
    }
    // A small upload limit, so the 413 case needs only a few MB.
    let text = text.replace("upload-limit-mib = 1024", "upload-limit-mib = 1");
    let templates = repo().join("config/templates/pdf");
    let text = text.replace(
        "templates = \"templates/pdf\"",
        &format!("templates = {:?}", templates.display().to_string()),
    );
    let path = tmp.join("divoc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn send(method: &str, url: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    support::send_json(method, url, Some(token), body)
}

fn codes(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_controller_builds_the_registry_and_a_facility_sees_only_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let server = support::start(&config(tmp.path()), tmp.path(), ADMIN);
    let base = server.base.as_str();
    let registry: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("host/divoc/tests/cases/rollout/registry.json"))
            .unwrap(),
    )
    .unwrap();

    // A programme naming a vaccine that does not exist yet is refused by
    // field, and nothing is stored.
    let programme = &registry["programmes"][0];
    let (s, body) = send(
        "POST",
        &format!("{base}/v1/programmes"),
        CONTROLLER,
        Some(programme),
    );
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (422, Some("vaccines[0]")),
        "{body}"
    );
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/programmes/C19"),
        CONTROLLER,
        None,
    );
    assert_eq!(s, 404);

    for (kind, path) in [
        ("vaccines", "/v1/vaccines"),
        ("programmes", "/v1/programmes"),
        ("facilities", "/v1/facilities"),
        ("vaccinators", "/v1/vaccinators"),
    ] {
        for record in registry[kind].as_array().unwrap() {
            let (s, body) = send("POST", &format!("{base}{path}"), CONTROLLER, Some(record));
            assert_eq!(s, 201, "{kind}: {body}");
            assert_eq!(body["version"], 1);
            assert_eq!(body["code"], record["code"]);
        }
    }
    // A taken code is a conflict; a facility token may not create.
    let (s, body) = send(
        "POST",
        &format!("{base}/v1/vaccines"),
        CONTROLLER,
        Some(&registry["vaccines"][0]),
    );
    assert_eq!((s, body["error"]["code"].as_str()), (409, Some("conflict")));
    let (s, _) = send(
        "POST",
        &format!("{base}/v1/vaccines"),
        FACILITY,
        Some(&registry["vaccines"][0]),
    );
    assert_eq!(s, 403);

    // Bad input: each field named; unknown fields refused.
    let mut bad = registry["facilities"][2].clone();
    bad["code"] = json!("FAC-9");
    bad["address"]["country"] = json!("India");
    bad["email"] = json!("not-an-address");
    let (s, body) = send(
        "POST",
        &format!("{base}/v1/facilities"),
        CONTROLLER,
        Some(&bad),
    );
    assert_eq!(s, 422, "{body}");
    let fields: Vec<&str> = body["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["address.country", "email"]);
    let mut unknown = registry["vaccines"][0].clone();
    unknown["code"] = json!("V2");
    unknown["colour"] = json!("red");
    let (s, body) = send(
        "POST",
        &format!("{base}/v1/vaccines"),
        CONTROLLER,
        Some(&unknown),
    );
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (422, Some("colour")),
        "{body}"
    );
    let (s, body) = send("POST", &format!("{base}/v1/vaccines"), CONTROLLER, None);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/facilities/FAC-9"),
        CONTROLLER,
        None,
    );
    assert_eq!(s, 404);

    // Filters and pages.
    let (s, page) = send(
        "GET",
        &format!("{base}/v1/facilities?district=Bengaluru%20Urban"),
        MONITORING,
        None,
    );
    assert_eq!(s, 200, "{page}");
    assert_eq!(codes(&page), ["FAC-1", "FAC-2"]);
    let (_, page) = send(
        "GET",
        &format!("{base}/v1/facilities?programme=C19&limit=1"),
        CONTROLLER,
        None,
    );
    assert_eq!(codes(&page), ["FAC-1"]);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, page) = send(
        "GET",
        &format!("{base}/v1/facilities?programme=C19&limit=1&cursor={cursor}"),
        CONTROLLER,
        None,
    );
    assert_eq!(
        (codes(&page), page["next_cursor"].as_str()),
        (vec!["FAC-2".to_owned()], None)
    );
    let (s, body) = send(
        "GET",
        &format!("{base}/v1/facilities?cursor=FAC-1"),
        CONTROLLER,
        None,
    );
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (400, Some("cursor")),
        "{body}"
    );
    let (_, page) = send(
        "GET",
        &format!("{base}/v1/facilities?type=both"),
        CONTROLLER,
        None,
    );
    assert_eq!(codes(&page), ["FAC-2"]);
    let (s, body) = send(
        "GET",
        &format!("{base}/v1/facilities?type=private"),
        CONTROLLER,
        None,
    );
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("type")));
    let (s, body) = send(
        "GET",
        &format!("{base}/v1/vaccines?district=x"),
        CONTROLLER,
        None,
    );
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (400, Some("district"))
    );
    let (s, body) = send(
        "GET",
        &format!("{base}/v1/facilities?limit=0"),
        CONTROLLER,
        None,
    );
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("limit")));

    // Safe updates: the version is the ETag; a stale If-Match is a 412.
    let mut fac2 = registry["facilities"][1].clone();
    fac2["programmes"][0]["status"] = json!("active");
    fac2["programmes"][0]["dailyRate"] = json!(100);
    let stale = ureq::put(&format!("{base}/v1/facilities/FAC-2"))
        .set("Authorization", &format!("Bearer {CONTROLLER}"))
        .set("If-Match", "\"7\"")
        .send_string(&fac2.to_string());
    assert!(matches!(stale, Err(ureq::Error::Status(412, _))));
    let fresh = ureq::put(&format!("{base}/v1/facilities/FAC-2"))
        .set("Authorization", &format!("Bearer {CONTROLLER}"))
        .set("If-Match", "\"1\"")
        .send_string(&fac2.to_string())
        .unwrap();
    assert_eq!(fresh.header("etag"), Some("\"2\""));
    let (_, history) = send(
        "GET",
        &format!("{base}/v1/facilities/FAC-2/history"),
        CONTROLLER,
        None,
    );
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["record"]["programmes"][0]["status"], "inactive");
    assert_eq!(versions[1]["actor"], "controller-1");

    // The facility token: its own facility and its vaccinators, nothing else.
    let (_, page) = send("GET", &format!("{base}/v1/facilities"), FACILITY, None);
    assert_eq!(codes(&page), ["FAC-1"]);
    let (_, page) = send(
        "GET",
        &format!("{base}/v1/facilities?district=Mysuru"),
        FACILITY,
        None,
    );
    assert!(codes(&page).is_empty());
    for path in [
        "/v1/facilities/FAC-3",
        "/v1/facilities/FAC-3/history",
        "/v1/vaccinators/VAC-2",
    ] {
        let (s, body) = send("GET", &format!("{base}{path}"), FACILITY, None);
        assert_eq!(s, 404, "{path}: {body}");
        assert!(
            !body.to_string().contains("Mysuru") && !body.to_string().contains("Ravi"),
            "{body}"
        );
    }
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/facilities/FAC-1"),
        FACILITY,
        None,
    );
    assert_eq!(s, 200);
    let (_, page) = send("GET", &format!("{base}/v1/vaccinators"), FACILITY, None);
    assert_eq!(codes(&page), ["VAC-1"]);
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/vaccinators?facility=FAC-3"),
        FACILITY,
        None,
    );
    assert_eq!(s, 403);
    let (s, _) = send(
        "PUT",
        &format!("{base}/v1/facilities/FAC-1"),
        FACILITY,
        Some(&registry["facilities"][0]),
    );
    assert_eq!(s, 403);

    staff_tokens(base);

    // What others refer to is not deleted; the rest is.
    let (s, body) = send(
        "DELETE",
        &format!("{base}/v1/facilities/FAC-3"),
        CONTROLLER,
        None,
    );
    assert_eq!(s, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("VAC-2"));
    let (s, _) = send(
        "DELETE",
        &format!("{base}/v1/vaccinators/VAC-2"),
        CONTROLLER,
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = send(
        "DELETE",
        &format!("{base}/v1/facilities/FAC-3"),
        CONTROLLER,
        None,
    );
    assert_eq!(s, 204);
    // A facility that issued certificates is never deleted: deactivate it.
    let mut request: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("host/certificates/tests/cases/valid-one-dose/request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    request["facility"]["id"] = json!("FAC-2");
    let (s, body) = send(
        "POST",
        &format!("{base}/v1/certificates"),
        ADMIN,
        Some(&request),
    );
    assert_eq!(s, 201, "{body}");
    let (s, body) = send(
        "DELETE",
        &format!("{base}/v1/facilities/FAC-2"),
        CONTROLLER,
        None,
    );
    assert_eq!(s, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("issued certificates"),
        "{body}"
    );

    // Every change is in the audit chain.
    let out = crate::support::on_test_backend(
        &mut std::process::Command::new(env!("CARGO_BIN_EXE_divoc")),
        &tmp.path().join("data"),
    )
    .args(["audit", "verify", "--data-dir"])
    .arg(tmp.path().join("data"))
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop();
    // No personal data in any event this test produced.
    crate::support::assert_no_personal_data(
        &tmp.path().join("data"),
        &[
            "Someone Else",
            "1970-01-01",
            "9000000000",
            "ID-SOMEONE-ELSE",
        ],
    );
}

/// A controller makes a facility-staff token over the API: its secret is
/// shown once, it reads only its facility, it is listed without a secret,
/// and once revoked it is refused.
fn staff_tokens(base: &str) {
    let url = format!("{base}/v1/tokens");
    let new = json!({"name": "fac-1-nurse", "role": "facility", "facilities": ["FAC-1"],
                     "dailyRates": {"C19": 50}, "expiresAt": "2099-01-01T00:00:00+05:30"});
    let (s, made) = send("POST", &url, CONTROLLER, Some(&new));
    assert_eq!(s, 201, "{made}");
    let secret = made["token"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(made["expiresAt"], "2098-12-31T18:30:00Z");
    let (s, page) = send("GET", &format!("{base}/v1/facilities"), &secret, None);
    assert_eq!((s, codes(&page)), (200, vec!["FAC-1".to_owned()]));
    let (s, _) = send("GET", &format!("{base}/v1/facilities/FAC-3"), &secret, None);
    assert_eq!(s, 404);

    // Listed and read without the secret.
    let (_, list) = send("GET", &url, CONTROLLER, None);
    assert!(!list.to_string().contains(&secret));
    let listed = list["items"].as_array().unwrap();
    assert!(listed
        .iter()
        .any(|t| t["id"] == id.as_str() && t["status"] == "active"));
    let (s, one) = send("GET", &format!("{url}/{id}"), ADMIN, None);
    assert_eq!((s, one["dailyRates"]["C19"].as_u64()), (200, Some(50)));
    assert!(one.get("token").is_none());

    // What a controller may not make, and what does not exist.
    for (body, status, field) in [
        (json!({"name": "x", "role": "admin"}), 403, "role"),
        (
            json!({"name": "x", "role": "facility", "facilities": ["FAC-404"]}),
            422,
            "facilities[0]",
        ),
        (json!({"name": "x", "role": "facility"}), 422, "facilities"),
        (
            json!({"name": "x", "role": "facility", "facilities": ["FAC-1"], "dailyRates": {"HPV": 5}}),
            422,
            "dailyRates.HPV",
        ),
        (
            json!({"name": "x", "role": "facility", "facilities": ["FAC-1"], "expiresAt": "2020-01-01T00:00:00Z"}),
            422,
            "expiresAt",
        ),
        (json!({"name": "x", "role": "wizard"}), 422, "role"),
        (
            json!({"name": "x", "role": "facility", "facilities": ["FAC-1"], "scope": 1}),
            422,
            "scope",
        ),
    ] {
        let (s, e) = send("POST", &url, CONTROLLER, Some(&body));
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (status, Some(field)),
            "{body}: {e}"
        );
    }
    // An admin may make any role, and a controller does not see it.
    let (s, made) = send(
        "POST",
        &url,
        ADMIN,
        Some(&json!({"name": "monitor-2", "role": "monitoring"})),
    );
    assert_eq!(s, 201, "{made}");
    let monitor_id = made["id"].as_str().unwrap();
    let (s, _) = send("GET", &format!("{url}/{monitor_id}"), CONTROLLER, None);
    assert_eq!(s, 404);
    let (s, _) = send("GET", &url, FACILITY, None);
    assert_eq!(s, 403);

    let (s, _) = send("DELETE", &format!("{url}/{id}"), CONTROLLER, None);
    assert_eq!(s, 204);
    let (s, _) = send("GET", &format!("{base}/v1/facilities"), &secret, None);
    assert_eq!(s, 401);
    let (_, one) = send("GET", &format!("{url}/{id}"), CONTROLLER, None);
    assert_eq!(one["status"], "revoked");
}

/// The README's walk: DIVOC's facility and vaccinator CSVs uploaded (one
/// bad row each, given back in errors.csv), the facilities of one district
/// activated for the programme at 100 a day, and a staff token that reads
/// only its facility.
#[test]
fn divoc_csvs_go_in_and_a_district_is_activated() {
    let tmp = tempfile::tempdir().unwrap();
    let server = support::start(&config(tmp.path()), tmp.path(), ADMIN);
    let base = server.base.as_str();
    let registry: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("host/divoc/tests/cases/rollout/registry.json"))
            .unwrap(),
    )
    .unwrap();
    for (kind, record) in [
        ("vaccines", &registry["vaccines"][0]),
        ("programmes", &registry["programmes"][0]),
    ] {
        let (s, body) = send(
            "POST",
            &format!("{base}/v1/{kind}"),
            CONTROLLER,
            Some(record),
        );
        assert_eq!(s, 201, "{body}");
    }
    let post_csv = |kind: &str, query: &str, file: &str| -> (u16, Value) {
        let bytes = std::fs::read(repo().join("host/rollout/testdata").join(file)).unwrap();
        let r = ureq::post(&format!("{base}/v1/uploads/{kind}{query}"))
            .set("Authorization", &format!("Bearer {CONTROLLER}"))
            .set("Content-Type", "text/csv")
            .send_bytes(&bytes);
        let r = match r {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = r.status();
        (
            status,
            serde_json::from_str(&r.into_string().unwrap()).unwrap(),
        )
    };
    let (s, body) = post_csv("facilities", "", "divoc-facilities.csv");
    assert_eq!(
        (s, body["error"]["field"].as_str()),
        (422, Some("country")),
        "{body}"
    );
    let (s, facilities) = post_csv("facilities", "?country=IN", "divoc-facilities.csv");
    assert_eq!(s, 201, "{facilities}");
    assert_eq!(
        (
            facilities["created"].as_i64(),
            facilities["failed"].as_i64()
        ),
        (Some(4), Some(1))
    );
    let (s, vaccinators) = post_csv("vaccinators", "", "divoc-vaccinators.csv");
    assert_eq!(s, 201, "{vaccinators}");
    assert_eq!(
        (
            vaccinators["created"].as_i64(),
            vaccinators["failed"].as_i64()
        ),
        (Some(2), Some(1))
    );
    let (s, _) = post_csv("clinics", "", "divoc-vaccinators.csv");
    assert_eq!(s, 404);

    for (report, bad) in [(&facilities, "BAD001"), (&vaccinators, "A3")] {
        let id = report["id"].as_str().unwrap();
        let errors = ureq::get(&format!("{base}/v1/uploads/{id}/errors.csv"))
            .set("Authorization", &format!("Bearer {CONTROLLER}"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let (s, body) = send(
            "GET",
            &format!("{base}/v1/uploads/upl_nope/errors.csv"),
            CONTROLLER,
            None,
        );
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
        // The refused rows are the file's own data: not for monitoring.
        let (s, _) = send(
            "GET",
            &format!("{base}/v1/uploads/{id}/errors.csv"),
            MONITORING,
            None,
        );
        assert_eq!(s, 403);
        let lines: Vec<&str> = errors.lines().collect();
        assert_eq!(lines.len(), 2, "{errors}");
        assert!(
            lines[0].ends_with(",row,errors") && lines[1].starts_with(bad),
            "{errors}"
        );
        let (s, one) = send("GET", &format!("{base}/v1/uploads/{id}"), MONITORING, None);
        assert_eq!((s, one["sha256"].as_str().map(str::len)), (200, Some(64)));
    }
    // Streamed: a file over the upload limit is cut at the limit (413),
    // and the rows read before it are stored, the upload left unfinished.
    let mut big =
        String::from("code,name,nationalIdentifier,mobileNumber,email,status,facilityIds\n");
    for i in 0..40_000 {
        big.push_str(&format!(
            "BIG{i:06},Vaccinator {i},NID{i:08},98{i:08},v{i}@example.org,Active,PUN001\n"
        ));
    }
    assert!(big.len() > 2 << 20);
    let r = ureq::post(&format!("{base}/v1/uploads/vaccinators"))
        .set("Authorization", &format!("Bearer {CONTROLLER}"))
        .set("Content-Type", "text/csv")
        .set("Transfer-Encoding", "chunked")
        .send(std::io::Cursor::new(big.into_bytes()));
    let (status, answer) = match r {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            (status, r.into_string().unwrap())
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let (_, history) = send(
        "GET",
        &format!("{base}/v1/uploads?kind=vaccinators"),
        CONTROLLER,
        None,
    );
    let cut = &history["items"][0];
    assert!(
        cut["finishedAt"].is_null() && cut["created"].as_i64().unwrap() > 0,
        "{cut}"
    );

    let (_, history) = send(
        "GET",
        &format!("{base}/v1/uploads?kind=facilities"),
        CONTROLLER,
        None,
    );
    assert_eq!(history["items"].as_array().unwrap().len(), 1);

    // Activate Bengaluru Urban for C19 at 100 a day.
    let activation =
        json!({"status": "active", "dailyRate": 100, "filter": {"district": "Bengaluru Urban"}});
    let (s, report) = send(
        "POST",
        &format!("{base}/v1/programmes/C19/facilities"),
        CONTROLLER,
        Some(&activation),
    );
    assert_eq!(s, 200, "{report}");
    assert_eq!(report, json!({"matched": 2, "changed": 2}));
    let (s, _) = send(
        "POST",
        &format!("{base}/v1/programmes/C19/facilities"),
        FACILITY,
        Some(&activation),
    );
    assert_eq!(s, 403);
    let (_, page) = send(
        "GET",
        &format!("{base}/v1/facilities?programme=C19"),
        CONTROLLER,
        None,
    );
    assert_eq!(codes(&page), ["BLR311", "BLR312"]);
    assert_eq!(page["items"][0]["programmes"][0]["dailyRate"], 100);

    // DIVOC's pre-enrolment file for C19: codes for the people, the bad
    // row named, nothing duplicated when sent again.
    let (s, enrolled) = post_csv("enrolments", "?programme=C19", "divoc-enrolments.csv");
    assert_eq!(s, 201, "{enrolled}");
    assert_eq!(
        (enrolled["created"].as_i64(), enrolled["failed"].as_i64()),
        (Some(2), Some(1))
    );
    // Sent again with the CLI, as an operator would: streamed, nothing new,
    // the refused row saved beside it, exit code 1.
    let errors_csv = tmp.path().join("enrolment-errors.csv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_divoc"))
        .args(["import", "enrolments"])
        .arg(repo().join("host/rollout/testdata/divoc-enrolments.csv"))
        .args([
            "--programme",
            "C19",
            "--url",
            base,
            "--token",
            CONTROLLER,
            "--errors",
        ])
        .arg(&errors_csv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 rows: 0 created, 0 updated, 2 unchanged, 1 refused"),
        "{stdout}"
    );
    let refused = std::fs::read_to_string(&errors_csv).unwrap();
    assert!(
        refused.contains("gender: must be Male, Female or Other"),
        "{refused}"
    );
    let (s, page) = send(
        "GET",
        &format!("{base}/v1/enrolments?programme=C19"),
        CONTROLLER,
        None,
    );
    assert_eq!(s, 200, "{page}");
    let enrolment_codes = codes(&page);
    assert_eq!(enrolment_codes.len(), 2);
    assert!(enrolment_codes
        .iter()
        .all(|c| c.len() == 11 && c.bytes().all(|b| b.is_ascii_digit())));
    let (s, _) = send("GET", &format!("{base}/v1/enrolments"), MONITORING, None);
    assert_eq!(s, 403, "monitoring does not read personal data");
    // One more by the API; the same person again is a duplicate naming the code.
    let person = json!({"programme": "C19", "name": "Meena K", "dob": "1958-11-30", "gender": "Female",
                        "phone": "+919812300000", "facility": "BLR311",
                        "address": {"line1": "3 Park St", "district": "Bengaluru Urban", "state": "Karnataka"}});
    let (s, meena) = send(
        "POST",
        &format!("{base}/v1/enrolments"),
        CONTROLLER,
        Some(&person),
    );
    assert_eq!(s, 201, "{meena}");
    let (s, dup) = send(
        "POST",
        &format!("{base}/v1/enrolments"),
        CONTROLLER,
        Some(&person),
    );
    assert_eq!((s, dup["error"]["code"].as_str()), (409, Some("duplicate")));
    assert_eq!(dup["error"]["details"]["existing"], meena["code"]);

    // A staff token for BLR311 reads only BLR311 and its vaccinator.
    let (s, made) = send(
        "POST",
        &format!("{base}/v1/tokens"),
        CONTROLLER,
        Some(&json!({"name": "blr311-staff", "role": "facility", "facilities": ["BLR311"]})),
    );
    assert_eq!(s, 201, "{made}");
    let staff = made["token"].as_str().unwrap();
    let (_, page) = send("GET", &format!("{base}/v1/facilities"), staff, None);
    assert_eq!(codes(&page), ["BLR311"]);
    let (_, page) = send("GET", &format!("{base}/v1/vaccinators"), staff, None);
    assert_eq!(codes(&page), ["A1"]);
    // A facility named by a live token is not deleted under it.
    let (s, body) = send(
        "DELETE",
        &format!("{base}/v1/facilities/BLR311"),
        CONTROLLER,
        None,
    );
    assert_eq!(s, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("live API tokens"),
        "{body}"
    );
    // A1 also works at DEL010: not this facility's to know.
    assert_eq!(page["items"][0]["facilities"], json!(["BLR311"]));
    let (s, _) = send("GET", &format!("{base}/v1/facilities/DEL010"), staff, None);
    assert_eq!(s, 404);
    // ... and the people enrolled at it, no one else.
    let (_, page) = send("GET", &format!("{base}/v1/enrolments"), staff, None);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["code"], meena["code"]);
    let (s, _) = send(
        "GET",
        &format!("{base}/v1/enrolments/{}", enrolment_codes[0]),
        staff,
        None,
    );
    assert_eq!(s, 404);
    // Staff register a walk-in: at their own facility, not another.
    let walk_in = json!({"programme": "C19", "name": "Walk In", "dob": "1975-05-05", "gender": "Male",
                         "address": {"line1": "5 Lane", "district": "Bengaluru Urban", "state": "Karnataka"}});
    let (s, walked) = send(
        "POST",
        &format!("{base}/v1/enrolments"),
        staff,
        Some(&walk_in),
    );
    assert_eq!(
        (s, walked["facility"].as_str()),
        (201, Some("BLR311")),
        "{walked}"
    );
    let mut elsewhere = walk_in.clone();
    elsewhere["name"] = json!("Walk In Elsewhere");
    elsewhere["facility"] = json!("DEL010");
    let (s, _) = send(
        "POST",
        &format!("{base}/v1/enrolments"),
        staff,
        Some(&elsewhere),
    );
    assert_eq!(s, 403);
    server.stop();
    // No personal data in any event this test produced.
    crate::support::assert_no_personal_data(
        &tmp.path().join("data"),
        &[
            "Meena K",
            "1958-11-30",
            "9812300000",
            "Walk In",
            "1975-05-05",
        ],
    );
}
