//! Side effects and ratings end to end: the form in Hindi, a report filed
//! by the certificate's holder with its QR as proof, a refused one that
//! stores nothing, a serious one that alerts pharmacovigilance through the
//! outbox, one rating per certificate, and the monitoring list, its CSV and
//! the per-batch rate in the statistics.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::{self, Server};

const ADMIN: &str = "feedback-test-admin-token-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start(tmp: &Path) -> Server {
    let form = repo().join("config/feedback/aefi-form.json");
    let config = support::shipped_config(tmp, |text| {
        // The form named in the configuration, not the built-in one.
        let text = text.replace(
            "# form = \"feedback/aefi-form.json\"",
            &format!("form = {:?}", form.display().to_string()),
        );
        assert!(
            text.contains("\nform = "),
            "the form is named in the config"
        );
        text
    });
    let port = support::free_port();
    let mut cmd = support::serve_command(
        &config,
        &tmp.join("data"),
        &tmp.join("plugins"),
        port,
        ADMIN,
    );
    cmd.env(
        "DIVOC_FEEDBACK__ALERT_CONTACTS",
        "[\"mailto:aefi@health.example\"]",
    );
    support::spawn(&mut cmd, port)
}

fn send(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    support::send_json(method, &format!("{}{path}", server.base), token, body)
}

fn qr_text(server: &Server, id: &str) -> String {
    ureq::get(&format!("{}/v1/certificates/{id}/qr.txt", server.base))
        .set("Authorization", &format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

#[test]
fn reports_ratings_alerts_and_the_monitoring_view() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let path = repo().join("host/certificates/tests/cases/valid-one-dose/request.json");
    let req: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (status, body) = send(&server, "POST", "/v1/certificates", Some(ADMIN), Some(&req));
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();

    // The form, in Hindi.
    let (status, form) = send(&server, "GET", "/v1/feedback/form?lang=hi", None, None);
    assert_eq!(status, 200, "{form}");
    assert_eq!(form["lang"], "hi");
    assert_eq!(
        form["schema"]["properties"]["symptoms"]["x-labels"]["fever"],
        "बुखार"
    );

    let mild = json!({"symptoms": ["fever", "headache"], "onsetDate": "2021-03-03", "medicalCare": "none"});
    let feedback = format!("/v1/certificates/{id}/feedback");
    // Without a token, the QR is the proof; without either, 401.
    let (status, _) = send(
        &server,
        "POST",
        &feedback,
        None,
        Some(&json!({"answers": mild})),
    );
    assert_eq!(status, 401);
    let (status, body) = send(
        &server,
        "POST",
        &feedback,
        None,
        Some(&json!({"answers": mild, "qr": "not the certificate"})),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (403, Some("qr")),
        "{body}"
    );
    let qr = qr_text(&server, &id);
    let (status, report) = send(
        &server,
        "POST",
        &feedback,
        None,
        Some(&json!({"answers": mild, "qr": qr})),
    );
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["severity"], "mild");
    assert_eq!(report["filedBy"], "holder");
    assert_eq!(report["batch"], "MB3428BX");

    // Bad answers name the field, and nothing is stored.
    let (status, body) = send(
        &server,
        "POST",
        &feedback,
        Some(ADMIN),
        Some(
            &json!({"answers": {"symptoms": ["flu"], "onsetDate": "2021-03-03", "medicalCare": "none"}}),
        ),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "answers/symptoms/0", "{body}");
    let (status, body) = send(
        &server,
        "POST",
        &feedback,
        Some(ADMIN),
        Some(
            &json!({"answers": {"symptoms": ["fever"], "onsetDate": "2021-02-01", "medicalCare": "none"}}),
        ),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("answers/onsetDate")),
        "{body}"
    );

    // A serious one: an event and an alert in the outbox.
    let serious = json!({"symptoms": ["breathing"], "onsetDate": "2021-03-02",
                         "medicalCare": "hospitalised", "description": "admitted for two days"});
    let (status, report) = send(
        &server,
        "POST",
        &feedback,
        Some(ADMIN),
        Some(&json!({"answers": serious})),
    );
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["severity"], "serious");
    let (status, outbox) = send(
        &server,
        "GET",
        "/v1/outbox?template=aefi-serious",
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200, "{outbox}");
    let alert = &outbox["items"][0];
    assert_eq!(alert["subject"], report["id"], "{outbox}");
    assert_eq!(alert["contacts"][0], "mailto:a…@health.example");

    // Ratings: once per certificate.
    let rating = format!("/v1/certificates/{id}/rating");
    let (status, body) = send(
        &server,
        "POST",
        &rating,
        None,
        Some(&json!({"facility": 6, "qr": qr})),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("facility")),
        "{body}"
    );
    let (status, body) = send(
        &server,
        "POST",
        &rating,
        None,
        Some(&json!({"facility": 4, "vaccinator": 5, "comment": "quick and kind", "qr": qr})),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _) = send(
        &server,
        "POST",
        &rating,
        None,
        Some(&json!({"facility": 1, "qr": qr})),
    );
    assert_eq!(status, 409);

    // The monitoring view.
    let (status, token) = send(
        &server,
        "POST",
        "/v1/tokens",
        Some(ADMIN),
        Some(&json!({"name": "pv-desk", "role": "monitoring"})),
    );
    assert_eq!(status, 201, "{token}");
    let monitor = token["token"].as_str().unwrap();
    let (status, page) = send(
        &server,
        "GET",
        "/v1/feedback/reports?batch=MB3428BX&severity=serious",
        Some(monitor),
        None,
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["answers"]["medicalCare"], "hospitalised");
    let (status, _) = send(
        &server,
        "GET",
        "/v1/feedback/reports?severity=grave",
        Some(monitor),
        None,
    );
    assert_eq!(status, 422);
    let csv = ureq::get(&format!(
        "{}/v1/feedback/reports.csv?batch=MB3428BX",
        server.base
    ))
    .set("Authorization", &format!("Bearer {monitor}"))
    .call()
    .unwrap()
    .into_string()
    .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("id,filedAt,certificateId"));
    assert!(lines[2].contains("hospitalised") && lines[2].contains("breathing"));
    let stats = support::stats_until(&server.base, "/v1/stats", Some(monitor), |s| {
        s["ratings"]["facility"]["FAC-0042"].is_object()
    });
    let batch = &stats["aefiByBatch"]["MB3428BX"];
    assert_eq!(
        (
            batch["doses"].as_i64(),
            batch["reports"].as_i64(),
            batch["serious"].as_i64()
        ),
        (Some(1), Some(2), Some(1)),
        "{stats}"
    );
    assert_eq!(batch["per1000"], 2000.0);
    assert_eq!(
        stats["ratings"]["facility"]["FAC-0042"]["average"], 4.0,
        "{stats}"
    );
    assert_eq!(
        stats["metrics"]["feedback.reports"]["severity"]["serious"],
        1
    );
    // A verifier cannot read reports.
    let (status, token) = send(
        &server,
        "POST",
        "/v1/tokens",
        Some(ADMIN),
        Some(&json!({"name": "gate", "role": "verifier"})),
    );
    assert_eq!(status, 201);
    let verifier = token["token"].as_str().unwrap();
    let (status, _) = send(&server, "GET", "/v1/feedback/reports", Some(verifier), None);
    assert_eq!(status, 403);
    let (status, _) = send(
        &server,
        "POST",
        &feedback,
        Some(verifier),
        Some(&json!({"answers": mild})),
    );
    assert_eq!(status, 403);
    // No personal data in any event this test produced.
    crate::support::assert_no_personal_data(
        &tmp.path().join("data"),
        &["admitted for two days", "quick and kind"],
    );
}
