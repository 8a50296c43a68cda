//! End to end through HTTP, with the real example plugins and the shipped
//! configuration: the identity plugin (`id-verhoeff`) checks national ids
//! and the credential carries the normalised number; the paid program
//! (`demo-paid`) needs a voucher that the payment plugin (`pay-voucher`)
//! authorises once per dose and captures once the certificate is stored; a
//! configured check whose plugin is missing is a 503. Whatever is refused leaves nothing in the database.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support;
use support::Server;

const ADMIN: &str = "pipeline-test-admin-token-0123";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn start(tmp: &Path) -> Server {
    let plugins = repo().join("target/plugins");
    for p in ["id-verhoeff", "pay-voucher"] {
        assert!(
            plugins.join(p).join("plugin.toml").is_file(),
            "example plugins are not built in {}; run scripts/setup.sh",
            plugins.display()
        );
    }
    let port = support::free_port();
    let mut cmd = support::serve_command(
        &repo().join("config/divoc.toml"),
        &tmp.join("data"),
        &plugins,
        port,
        ADMIN,
    );
    // An operator override through the environment: passports are to be
    // checked by a plugin that is not deployed.
    cmd.env(
        "DIVOC_CERTIFICATES__IDENTITY_PROVIDERS__PASSPORT",
        "id-missing",
    )
    .env("DIVOC_PLUGINS__WATCH", "false");
    support::spawn(&mut cmd, port)
}

fn send(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
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
    let text = response.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn sample(code: &str) -> Value {
    let path = repo().join("host/certificates/tests/cases/valid-one-dose/request.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["pre_enrollment_code"] = json!(code);
    v
}

fn national_id(code: &str, number: &str) -> Value {
    let mut v = sample(code);
    v["recipient"]["identity"] = json!({"type": "national-id", "value": number});
    v
}

fn paid(code: &str, payment: Option<Value>) -> Value {
    let mut v = sample(code);
    v["vaccination"]["program"] = json!("demo-paid");
    if let Some(p) = payment {
        v["payment"] = p;
    }
    v
}

fn certificates_of(db: &divoc_storage::Database, code: &str) -> usize {
    db.read(|r| divoc_storage::certificates::by_recipient_ref(r, code))
        .unwrap()
        .len()
}

#[test]
fn identity_and_payment_plugins_gate_issuance() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let issue = format!("{}/v1/certificates", server.base);

    // Identity: a wrong Verhoeff check digit is refused, naming the field.
    let (status, body) = send(
        "POST",
        &issue,
        Some(&national_id("PEC-ID-1", "234123412347")),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "recipient.identity.value", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("check digit"),
        "{body}"
    );
    // The number is not echoed back.
    assert!(!body.to_string().contains("234123412347"));

    // A valid number, typed with spaces: issued (201, not a conflict with
    // the refused attempt: that stored nothing), with the canonical number.
    let (status, body) = send(
        "POST",
        &issue,
        Some(&national_id("PEC-ID-1", "2341 2341 2346")),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let (_, credential) = send("GET", &format!("{issue}/{id}"), None);
    assert_eq!(
        credential["credentialSubject"]["identity"],
        json!({"scheme": "national-id", "value": "234123412346"})
    );
    // Written without spaces it is the same recipient: a re-send.
    let (status, body) = send(
        "POST",
        &issue,
        Some(&national_id("PEC-ID-1", "234123412346")),
    );
    assert_eq!((status, body["id"].as_str()), (200, Some(id.as_str())));

    // Identity types no plugin handles are not checked.
    let (status, _) = send("POST", &issue, Some(&sample("PEC-AADHAAR")));
    assert_eq!(status, 201);

    // A type configured for a plugin that is not loaded: 503, never issued
    // unchecked.
    let mut passport = sample("PEC-PASSPORT");
    passport["recipient"]["identity"] = json!({"type": "passport", "value": "Z1234567"});
    let (status, body) = send("POST", &issue, Some(&passport));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");

    // Payment: required by the program, missing.
    let (status, body) = send("POST", &issue, Some(&paid("PEC-PAY-1", None)));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "payment", "{body}");
    // A mode the program does not take, and an unknown voucher.
    let cash = json!({"mode": "cash", "reference": "4111"});
    let (status, body) = send("POST", &issue, Some(&paid("PEC-PAY-1", Some(cash))));
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("payment.mode"))
    );
    let nope = json!({"mode": "voucher", "reference": "NOPE"});
    let (status, body) = send("POST", &issue, Some(&paid("PEC-PAY-1", Some(nope))));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "payment.reference", "{body}");

    // The shipped voucher covers exactly one certificate of the program.
    let voucher = json!({"mode": "voucher", "reference": "DEMO-100"});
    let first = paid("PEC-PAY-1", Some(voucher.clone()));
    let (status, body) = send("POST", &issue, Some(&first));
    assert_eq!(status, 201, "{body}");
    let paid_id = body["id"].as_str().unwrap().to_string();
    // A re-send is answered from the store and not charged again (the
    // voucher is used up, so a second charge would be refused).
    let (status, body) = send("POST", &issue, Some(&first));
    assert_eq!((status, body["id"].as_str()), (200, Some(paid_id.as_str())));
    let (status, body) = send("POST", &issue, Some(&paid("PEC-PAY-2", Some(voucher))));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "payment.reference", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("left"),
        "{body}"
    );

    // The authorisation is captured after the certificate is stored: the
    // capture worker takes the outbox row and the provider captures it.
    let data = tmp.path().join("data");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: Vec<(String, String)> = crate::support::query(
            &data,
            "SELECT target, status FROM outbox WHERE kind = 'payment.capture'",
        )
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
        assert_eq!(rows.len(), 1, "one capture per paid certificate: {rows:?}");
        assert_eq!(rows[0].0, "pay-voucher");
        if rows[0].1 == "done" {
            break;
        }
        assert_eq!(rows[0].1, "pending", "capture failed: {rows:?}");
        assert!(Instant::now() < deadline, "the payment was not captured");
        std::thread::sleep(Duration::from_millis(100));
    }

    server.stop();
    let db = crate::support::open_db(&tmp.path().join("data"));
    // Refused requests stored nothing.
    assert_eq!(certificates_of(&db, "PEC-ID-1"), 1);
    assert_eq!(certificates_of(&db, "PEC-PASSPORT"), 0);
    assert_eq!(certificates_of(&db, "PEC-PAY-1"), 1);
    assert_eq!(certificates_of(&db, "PEC-PAY-2"), 0);
    // The receipt is audited with the certificate, without the voucher code.
    let audit = db.audit_after(0, 100).unwrap();
    let payments: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "certificate.payment")
        .collect();
    assert_eq!(payments.len(), 1, "{audit:?}");
    assert_eq!(payments[0].subject, paid_id);
    let receipt = &payments[0].detail["receipt"];
    assert_eq!(receipt["provider"], "pay-voucher");
    assert_eq!(receipt["amount_minor_units"], 10_000);
    assert_eq!(receipt["currency"], "INR");
    let captured: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "certificate.payment.captured")
        .collect();
    assert_eq!(captured.len(), 1, "{audit:?}");
    assert_eq!(captured[0].subject, paid_id);
    assert_eq!(captured[0].detail["receipt"]["status"], "captured");
    assert_eq!(captured[0].detail["receipt"]["amount_minor_units"], 10_000);
    assert_eq!(
        captured[0].detail["receipt"]["provider_reference"],
        receipt["provider_reference"]
    );
    assert!(!format!("{audit:?}").contains("DEMO-100"));
    assert!(db.verify_audit_chain().unwrap().is_intact());
}
