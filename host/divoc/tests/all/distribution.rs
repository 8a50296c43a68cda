//! End to end: issued certificates are delivered from the outbox through
//! the real `notify-webhook` plugin to a real HTTP endpoint on loopback
//! (granted to the plugin explicitly: loopback is refused otherwise).
//! A failing endpoint is retried with back-off until it recovers, or until
//! the attempts run out; `GET /v1/certificates/{id}/distribution` reports
//! each state; logs carry no personal data; SIGTERM stops the worker with
//! the server.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support;
use support::{deploy_webhook_plugin, repo, Server, Webhook};

const ADMIN: &str = "distribution-test-admin-0123";
const FACILITY_42: &str = "facility-42-token-0123456789";
const FACILITY_9: &str = "facility-9-token-0123456789";
/// Contacts containing this are answered 500 forever.
const BROKEN: &str = "always-fail@example.org";
/// notify-webhook's HMAC key, given through the environment.
const WEBHOOK_SECRET: &str = "distribution-test-webhook-secret-0123456789";

fn start(tmp: &Path, hook_port: u16) -> Server {
    let origin = format!("http://127.0.0.1:{hook_port}");
    let plugins = tmp.join("plugins");
    deploy_webhook_plugin(&plugins, &origin);
    let port = support::free_port();
    let digest = |t: &str| hex::encode(divoc_api::auth::token_digest(t));
    let config = format!(
        r#"
[server]
public-url = "http://127.0.0.1:{port}"

[plugins]
watch = false

[plugins.grants.notify-webhook]
http-origins = ["{origin}"]

[plugins.config.notify-webhook]
url = "{origin}/hook"
timeout_ms = 2000

[certificates.distribution]
channels = ["notify-webhook"]
max-attempts = 3
base-delay-ms = 300
max-delay-ms = 5000
poll-interval-ms = 50
lease-ms = 30000

[[auth.tokens]]
name = "hospital-42"
role = "facility"
token-sha256 = "{f42}"
facilities = ["FAC-0042"]

[[auth.tokens]]
name = "hospital-9"
role = "facility"
token-sha256 = "{f9}"
facilities = ["FAC-0009"]
"#,
        f42 = digest(FACILITY_42),
        f9 = digest(FACILITY_9),
    );
    let config_path = tmp.join("divoc.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = support::serve_command(&config_path, &tmp.join("data"), &plugins, port, ADMIN);
    cmd.arg("--log-format")
        .arg("json")
        .env(
            "DIVOC_CERTIFICATES__PDF__TEMPLATES",
            repo().join("config/templates/pdf"),
        )
        .env_remove("DIVOC_LOG")
        // The webhook's signing secret through the environment, as a
        // deployment keeps it out of the config file.
        .env(
            "DIVOC_PLUGINS__CONFIG__NOTIFY_WEBHOOK__SECRET",
            WEBHOOK_SECRET,
        )
        .stderr(std::fs::File::create(server_log(tmp)).unwrap());
    support::spawn(&mut cmd, port)
}

/// Where [`start`] puts the server's (JSON) log.
fn server_log(tmp: &Path) -> PathBuf {
    tmp.join("server.log")
}

fn send(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let mut req = ureq::request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
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
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn issue(server: &Server, code: &str, contacts: &[&str]) -> String {
    let path = repo().join("host/certificates/tests/cases/valid-one-dose/request.json");
    let mut req: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    req["pre_enrollment_code"] = json!(code);
    req["recipient"]["contacts"] = json!(contacts);
    let (status, body) = send(
        "POST",
        &format!("{}/v1/certificates", server.base),
        Some(ADMIN),
        Some(&req),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

fn deliveries(server: &Server, id: &str) -> Vec<Value> {
    let (status, body) = send(
        "GET",
        &format!("{}/v1/certificates/{id}/distribution", server.base),
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["certificate_id"], id);
    body["deliveries"].as_array().unwrap().clone()
}

/// Polls the status route until the single delivery is no longer pending;
/// returns it and every distinct pending state seen on the way.
fn settle(server: &Server, id: &str) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending = Vec::new();
    loop {
        let d = deliveries(server, id);
        assert_eq!(d.len(), 1, "{d:?}");
        let entry = d[0].clone();
        if entry["status"] != "pending" {
            return (entry, pending);
        }
        if !pending.contains(&entry) {
            pending.push(entry);
        }
        assert!(Instant::now() < deadline, "delivery of {id} never settled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn certificates_are_delivered_retried_and_reported() {
    let webhook = Webhook {
        broken: Some(BROKEN),
        ..Webhook::default()
    };
    let hook_port = webhook.start();
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), hook_port);

    // 1. Delivered on the first attempt, with what a channel needs.
    let a = issue(
        &server,
        "PEC-DIST-A",
        &["tel:9880414888", "mailto:bhaya@example.org"],
    );
    let (done, _) = settle(&server, &a);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["channel"], "notify-webhook");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["last_error"], Value::Null);
    assert_eq!(done["next_attempt_at_ms"], Value::Null);
    let hits = webhook.hits_for(&a);
    assert_eq!(hits.len(), 1);
    assert!(hits[0].signed, "{:?}", hits[0]);
    let body = &hits[0].body;
    assert_eq!(body["template"], "certificate-issued");
    assert_eq!(body["recipient-name"], "Bhaya Mitra");
    assert_eq!(
        body["contacts"],
        json!([
            {"kind": "phone", "value": "9880414888"},
            {"kind": "email", "value": "bhaya@example.org"}
        ])
    );
    let url = format!("{}/v1/certificates/{a}", server.base);
    assert_eq!(body["variables"]["certificate-url"], url.as_str());
    assert_eq!(body["variables"]["qr-url"], format!("{url}/qr.png"));
    assert!(body["variables"]["qr-text"]
        .as_str()
        .is_some_and(|t| t.len() > 100));
    assert_eq!(body["attachments"][0]["name"], "certificate-qr.png");
    assert!(body["attachments"][0]["size"].as_u64().unwrap() > 100);
    assert_eq!(
        hits[0].idempotency_key,
        body["message-id"].as_str().unwrap()
    );

    // 2. The endpoint fails twice, then recovers: retried with growing
    // back-off (base 300 ms, equal jitter: ≥150 ms, then ≥300 ms), under
    // the same message id, and reported as pending with the error between.
    webhook.fail_next.store(2, Ordering::SeqCst);
    let b = issue(&server, "PEC-DIST-B", &["tel:9880414889"]);
    let (done, pending) = settle(&server, &b);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["attempts"], 3);
    assert_eq!(done["last_error"], Value::Null);
    let hits = webhook.hits_for(&b);
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        vec![500, 500, 200]
    );
    assert!(hits
        .iter()
        .all(|h| h.idempotency_key == hits[0].idempotency_key));
    let gap1 = hits[1].at - hits[0].at;
    let gap2 = hits[2].at - hits[1].at;
    assert!(gap1 >= Duration::from_millis(150), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(300), "{gap2:?}");
    let waiting = pending
        .iter()
        .find(|p| p["last_error"].is_string())
        .unwrap_or_else(|| panic!("no retry state seen: {pending:?}"));
    assert!(
        waiting["last_error"].as_str().unwrap().contains("500"),
        "{waiting}"
    );
    assert!(waiting["next_attempt_at_ms"].is_i64(), "{waiting}");

    // 3. An endpoint that never recovers: failed after max-attempts.
    let c = issue(&server, "PEC-DIST-C", &[&format!("mailto:{BROKEN}")]);
    let (failed, _) = settle(&server, &c);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["next_attempt_at_ms"], Value::Null);
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("gave up after 3 attempts") && error.contains("500"),
        "{error}"
    );
    assert_eq!(webhook.hits_for(&c).len(), 3);

    // 4. Who may read the status: the issuing facility, not another one
    // (which cannot even tell the certificate exists), not anonymous.
    let route = format!("{}/v1/certificates/{a}/distribution", server.base);
    assert_eq!(send("GET", &route, Some(FACILITY_42), None).0, 200);
    assert_eq!(send("GET", &route, Some(FACILITY_9), None).0, 404);
    assert_eq!(send("GET", &route, None, None).0, 401);
    let unknown = format!("{}/v1/certificates/nope/distribution", server.base);
    assert_eq!(send("GET", &unknown, Some(ADMIN), None).0, 404);

    // 5. SIGTERM stops the server and its worker.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(server_log(tmp.path())).unwrap();
    assert!(log.contains("distribution worker stopped"), "{log}");
    // 6. No personal data in the log.
    for personal in [
        "Bhaya",
        "9880414888",
        "9880414889",
        "bhaya@example.org",
        BROKEN,
        "PEC-DIST",
        WEBHOOK_SECRET,
    ] {
        assert!(!log.contains(personal), "{personal} in the log:\n{log}");
    }
}

/// A controller activates a facility for a programme: the facility's
/// notice goes out through the same channel plugin, from the outbox, with
/// the programme, status and rate, and no certificate.
#[test]
fn a_facility_is_told_of_its_activation() {
    let webhook = Webhook::default();
    let hook_port = webhook.start();
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), hook_port);
    let base = server.base.as_str();
    for (path, body) in [
        (
            "/v1/vaccines",
            json!({"code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection", "doses": 1}),
        ),
        (
            "/v1/programmes",
            json!({"code": "C19", "name": "COVID-19", "startDate": "2021-01-16", "vaccines": ["COVAX"]}),
        ),
        (
            "/v1/facilities",
            json!({"code": "FAC-0042", "name": "PHC Forty-Two", "category": "government",
            "type": "fixed", "contact": "+91 80 4242 4242", "email": "phc42@example.org",
            "address": {"line1": "42 Main Rd", "district": "North", "state": "KA", "country": "IN"}}),
        ),
    ] {
        let (s, answer) = send("POST", &format!("{base}{path}"), Some(ADMIN), Some(&body));
        assert_eq!(s, 201, "{path}: {answer}");
    }
    let (s, report) = send(
        "POST",
        &format!("{base}/v1/programmes/C19/facilities"),
        Some(ADMIN),
        Some(&json!({"status": "active", "dailyRate": 250, "filter": {"district": "North"}})),
    );
    assert_eq!((s, report["changed"].as_u64()), (200, Some(1)), "{report}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let hit = loop {
        let found = webhook
            .hits
            .lock()
            .unwrap()
            .iter()
            .find(|h| h.body["template"] == "facility-programme-updated")
            .cloned();
        if let Some(hit) = found {
            break hit;
        }
        assert!(Instant::now() < deadline, "no notice reached the webhook");
        std::thread::sleep(Duration::from_millis(50));
    };
    let body = &hit.body;
    assert_eq!(body["recipient-name"], "PHC Forty-Two");
    assert_eq!(body["certificate-ids"], json!([]));
    let variables = body["variables"].to_string();
    for expected in ["C19", "250", "active", "FAC-0042"] {
        assert!(variables.contains(expected), "{expected} in {variables}");
    }
    assert!(
        body["contacts"].to_string().contains("phc42@example.org"),
        "{body}"
    );
    server.stop();
}

/// A recipient signs in by phone: the code reaches them through the
/// channel plugin (the webhook here), the code buys a recipient token, and
/// with it they enrol themself and their family (the programme's rule
/// refuses a child), book a slot for one of them, and see it; a wrong code
/// and someone else's enrolment are refused.
#[test]
fn a_recipient_signs_in_with_a_code_and_books_for_the_family() {
    let webhook = Webhook::default();
    let hook_port = webhook.start();
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path(), hook_port);
    let base = server.base.as_str();
    let tomorrow = {
        let now = divoc_time::Clock::now_ms(&divoc_time::SystemClock);
        divoc_time::Date::from_ms(now)
            .add_days(1)
            .unwrap()
            .to_string()
    };
    for (path, body) in [
        (
            "/v1/vaccines",
            json!({"code": "COVAX", "name": "CoVax", "manufacturer": "M", "mode": "injection", "doses": 1}),
        ),
        (
            "/v1/programmes",
            json!({"code": "C19", "name": "COVID-19", "startDate": "2021-01-16", "vaccines": ["COVAX"],
                   "eligibility": {"rule": {"minAge": 12}}}),
        ),
        (
            "/v1/facilities",
            json!({"code": "FAC-0042", "name": "PHC Forty-Two", "category": "government",
            "type": "fixed", "address": {"line1": "42 Main Rd", "district": "North", "state": "KA", "country": "IN"},
            "programmes": [{"programme": "C19", "slots": [{
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "startTime": "08:00", "endTime": "18:00", "minutes": 60, "capacity": 5}]}]}),
        ),
    ] {
        let (s, answer) = send("POST", &format!("{base}{path}"), Some(ADMIN), Some(&body));
        assert_eq!(s, 201, "{path}: {answer}");
    }
    // Someone else, pre-enrolled under another number.
    let (s, other) = send(
        "POST",
        &format!("{base}/v1/enrolments"),
        Some(ADMIN),
        Some(
            &json!({"programme": "C19", "name": "Someone Else", "dob": "1970-01-01",
                     "gender": "Male", "phone": "9000000000", "identity": "ID-SOMEONE-ELSE",
                     "address": {"line1": "1 Road", "district": "North", "state": "KA"}}),
        ),
    );
    assert_eq!(s, 201, "{other}");

    let phone = "+91 98450 12345";
    let (s, sent) = send(
        "POST",
        &format!("{base}/v1/recipients/otp"),
        None,
        Some(&json!({"phone": phone})),
    );
    assert_eq!(s, 202, "{sent}");
    let (s, again) = send(
        "POST",
        &format!("{base}/v1/recipients/otp"),
        None,
        Some(&json!({"phone": phone})),
    );
    assert_eq!(
        (s, again["error"]["code"].as_str()),
        (429, Some("too_soon"))
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        let found = webhook
            .hits
            .lock()
            .unwrap()
            .iter()
            .find(|h| h.body["template"] == "otp")
            .map(|h| h.body.clone());
        if let Some(body) = found {
            assert!(
                body["contacts"].to_string().contains("9845012345"),
                "{body}"
            );
            break body["variables"]["code"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no code reached the webhook");
        std::thread::sleep(Duration::from_millis(50));
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (s, refused) = send(
        "POST",
        &format!("{base}/v1/recipients/token"),
        None,
        Some(&json!({"phone": phone, "code": wrong})),
    );
    assert_eq!((s, refused["error"]["field"].as_str()), (422, Some("code")));
    let (s, signed_in) = send(
        "POST",
        &format!("{base}/v1/recipients/token"),
        None,
        Some(&json!({"phone": phone, "code": code})),
    );
    assert_eq!(s, 201, "{signed_in}");
    let token = signed_in["token"].as_str().unwrap().to_owned();

    let person = |name: &str, dob: &str| {
        json!({"programme": "C19", "name": name, "dob": dob, "gender": "Female",
               "address": {"line1": "12 Lake Rd", "district": "North", "state": "KA"}})
    };
    let enrol = |body: &Value| {
        send(
            "POST",
            &format!("{base}/v1/recipients/enrolments"),
            Some(&token),
            Some(body),
        )
    };
    let (s, me) = enrol(&person("Asha", "1985-03-01"));
    assert_eq!(s, 201, "{me}");
    let (s, child) = enrol(&person("Tara", "2020-06-01"));
    assert_eq!(
        (s, child["error"]["code"].as_str()),
        (422, Some("ineligible")),
        "{child}"
    );
    let mut foreign = person("Other", "1990-01-01");
    foreign["phone"] = json!("9111111111");
    let (s, _) = enrol(&foreign);
    assert_eq!(s, 403, "only under the number signed in with");
    // Someone else's identity number: refused, without naming their code.
    let mut theirs = person("Someone Else", "1970-01-01");
    theirs["identity"] = json!("ID-SOMEONE-ELSE");
    let (s, dup) = enrol(&theirs);
    assert_eq!(s, 409, "{dup}");
    assert!(
        !dup.to_string().contains(other["code"].as_str().unwrap()),
        "{dup}"
    );

    let book = |enrolment: &str| {
        send(
            "POST",
            &format!("{base}/v1/appointments"),
            Some(&token),
            Some(&json!({"enrolment": enrolment, "facility": "FAC-0042",
                         "date": tomorrow, "time": "10:00"})),
        )
    };
    let (s, booked) = book(me["code"].as_str().unwrap());
    assert_eq!(s, 201, "{booked}");
    let (s, _) = book(other["code"].as_str().unwrap());
    assert_eq!(s, 403, "not someone else's enrolment");
    let (s, mine) = send(
        "GET",
        &format!("{base}/v1/recipients/me"),
        Some(&token),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(mine["enrolments"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["appointments"][0]["id"], booked["id"]);
    // The code is spent: it buys nothing twice.
    let (s, _) = send(
        "POST",
        &format!("{base}/v1/recipients/token"),
        None,
        Some(&json!({"phone": phone, "code": code})),
    );
    assert_eq!(s, 422);
    server.stop();
    // No personal data in any event this test produced.
    crate::support::assert_no_personal_data(
        &tmp.path().join("data"),
        &["Asha", "1985-03-01", "Tara", "2020-06-01", "Someone Else"],
    );
}
