//! The payment providers a ministry deploys, through the real plugin
//! runtime:
//!
//! - `pay-gateway` against a loopback gateway that implements the API in
//!   `plugins/pay-gateway/README.md` (idempotent by `Idempotency-Key`):
//!   authorize, a decline with its reason, a gateway slower than
//!   `timeout_ms` and a 503 (both `unavailable`), capture twice (one
//!   capture request reaches the gateway), refund, and the API key on
//!   every request;
//! - `pay-government` over the real SQLite kv: the same reference twice is
//!   one record and one receipt, an unfunded programme is refused by name.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use divoc_runtime::types::payment::{Charge, PaymentStatus, Receipt};
use divoc_runtime::types::Money;
use divoc_runtime::{Grant, GuestErrorKind, PluginError, Runtime};
use serde_json::{json, Value};

use crate::support;

const API_KEY: &str = "gw-test-key-5f2c";
/// The plugin's time-out in these tests; the gateway's slow answer takes
/// three times as long.
const TIMEOUT_MS: u64 = 400;
/// Both plugins request this quota in their manifests.
const KV_QUOTA: u64 = 256 << 20;

/// One request as the gateway saw it; header names lower-cased.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback card/UPI gateway: `POST /gw/payments` authorizes (the same
/// `Idempotency-Key` gets the same payment), `.../{id}/capture` and
/// `.../{id}/refund` settle. The charge description steers it:
/// `decline` → 402 with a reason, `slow` → an answer after 3 × the
/// plugin's time-out, `down` → 503. Each connection is served on its own
/// thread, so a slow answer does not hold up the next request.
struct Gateway {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

#[derive(Default)]
struct Ledger {
    /// Idempotency-Key → payment id.
    by_key: HashMap<String, String>,
    /// Capture and refund keys already answered.
    settled: HashMap<String, Value>,
}

impl Gateway {
    fn start() -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let log = seen.clone();
        // The thread ends with the test process; the listener outlives the test.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (log, ledger) = (log.clone(), ledger.clone());
                std::thread::spawn(move || serve(stream, &log, &ledger));
            }
        });
        Gateway { addr, seen }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, log: &Mutex<Vec<Seen>>, ledger: &Mutex<Ledger>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let seen = Seen {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    log.lock().unwrap().push(seen.clone());
    let (status, answer, delay) = answer(&seen, &mut ledger.lock().unwrap());
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
    let text = answer.to_string();
    let response = format!(
        "HTTP/1.1 {status} Test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    // The plugin may have given up on a slow answer already.
    let _ = stream.write_all(response.as_bytes());
}

/// The gateway's answer to one request, and how long to wait before it.
fn answer(seen: &Seen, ledger: &mut Ledger) -> (u16, Value, Option<Duration>) {
    if seen.header("x-api-key") != Some(API_KEY) {
        return (401, json!({ "reason": "bad api key" }), None);
    }
    let Some(key) = seen.header("idempotency-key").map(str::to_string) else {
        return (
            400,
            json!({ "reason": "Idempotency-Key is required" }),
            None,
        );
    };
    let parts: Vec<&str> = seen.path.trim_start_matches('/').split('/').collect();
    match (seen.method.as_str(), parts.as_slice()) {
        ("POST", ["gw", "payments"]) => {
            match seen.body["description"].as_str().unwrap_or_default() {
                "decline" => {
                    return (
                        402,
                        json!({ "status": "declined", "reason": "insufficient funds" }),
                        None,
                    )
                }
                "down" => return (503, json!({ "reason": "maintenance" }), None),
                _ => {}
            }
            let next = format!("pay_{}", ledger.by_key.len() + 1);
            let id = ledger.by_key.entry(key).or_insert(next).clone();
            let delay =
                (seen.body["description"] == "slow").then(|| Duration::from_millis(3 * TIMEOUT_MS));
            let answer = json!({ "id": id, "status": "authorized", "amount": seen.body["amount"] });
            (201, answer, delay)
        }
        ("POST", ["gw", "payments", id, op @ ("capture" | "refund")]) => {
            let status = if *op == "capture" {
                "captured"
            } else {
                "refunded"
            };
            let answer = ledger
                .settled
                .entry(key)
                .or_insert_with(
                    || json!({ "id": id, "status": status, "amount": seen.body["amount"] }),
                )
                .clone();
            (200, answer, None)
        }
        _ => (404, json!({ "reason": "no such endpoint" }), None),
    }
}

fn inr(n: i64) -> Money {
    Money {
        currency: "INR".into(),
        minor_units: n,
    }
}

fn charge(reference: &str, mode: &str, description: &str) -> Charge {
    Charge {
        reference: reference.into(),
        mode: mode.into(),
        amount: inr(25_000),
        program: "C19".into(),
        description: description.into(),
    }
}

/// A receipt as JSON, to compare two of them.
fn json_of(r: &Receipt) -> Value {
    serde_json::to_value(r).unwrap()
}

fn kind(e: &PluginError) -> GuestErrorKind {
    e.guest_error()
        .unwrap_or_else(|| panic!("expected a guest error, got {e:?}"))
        .kind
}

/// pay-gateway, its manifest naming the loopback gateway, granted exactly
/// that origin and kv, over the real SQLite kv under `tmp`.
fn gateway_runtime(tmp: &std::path::Path, origin: &str) -> Runtime {
    let plugins = tmp.join("plugins");
    support::copy_plugin(
        &support::plugin_dir("pay-gateway"),
        &plugins.join("pay-gateway"),
        |m| support::replace(m, "https://pay.example.org", origin),
    );
    let mut settings = support::settings();
    settings.grants.insert(
        "pay-gateway".into(),
        Grant {
            http_origins: vec![origin.to_string()],
            kv_quota_bytes: Some(KV_QUOTA),
            ..Grant::default()
        },
    );
    settings.config.insert(
        "pay-gateway".into(),
        json!({
            "url": format!("{origin}/gw"),
            "api_key": API_KEY,
            "timeout_ms": TIMEOUT_MS,
        }),
    );
    let (services, _, _) = support::real_services(tmp);
    let runtime = Runtime::new(settings, services).unwrap();
    let report = runtime.reload_dir(&plugins);
    assert_eq!(report.loaded, vec!["pay-gateway@0.1.0"], "{report:?}");
    runtime
}

#[test]
fn pay_gateway_authorizes_captures_once_and_refunds_through_a_loopback_gateway() {
    let _load = support::shared();
    let gateway = Gateway::start();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = gateway_runtime(tmp.path(), &gateway.origin());
    let p = runtime.payment_provider("pay-gateway").unwrap();
    assert_eq!(p.modes().unwrap(), vec!["card", "upi"]);

    // Authorize: the documented request, the gateway's id as the reference.
    let ok = charge("divoc-0001", "upi", "asha@upi");
    let r = p.authorize(&ok).unwrap();
    assert_eq!(r.provider_reference, "pay_1");
    assert_eq!(r.status, PaymentStatus::Authorized);
    assert_eq!(
        (r.amount.currency.as_str(), r.amount.minor_units),
        ("INR", 25_000)
    );
    assert_eq!(r.mode, "upi");
    let first = &gateway.requests()[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/gw/payments")
    );
    assert_eq!(first.header("idempotency-key"), Some("divoc-0001"));
    assert_eq!(
        first.body,
        json!({
            "reference": "divoc-0001",
            "amount": { "currency": "INR", "minor_units": 25_000 },
            "mode": "upi",
            "description": "asha@upi",
        })
    );
    // The same reference again: the same receipt, answered from kv.
    assert_eq!(json_of(&p.authorize(&ok).unwrap()), json_of(&r));
    assert_eq!(gateway.requests().len(), 1);

    // A decline is a refusal whose reason reaches the host.
    let e = p
        .authorize(&charge("divoc-0002", "card", "decline"))
        .unwrap_err();
    assert_eq!(kind(&e), GuestErrorKind::Rejected);
    assert_eq!(e.guest_error().unwrap().message, "insufficient funds");

    // Slower than timeout_ms, and a 503: both retryable.
    let e = p
        .authorize(&charge("divoc-0003", "card", "slow"))
        .unwrap_err();
    assert_eq!(kind(&e), GuestErrorKind::Unavailable, "{e:?}");
    // It did reach the gateway: the time-out, not a refusal, ended it.
    assert!(gateway
        .requests()
        .iter()
        .any(|s| s.header("idempotency-key") == Some("divoc-0003")));
    let e = p
        .authorize(&charge("divoc-0004", "card", "down"))
        .unwrap_err();
    assert_eq!(kind(&e), GuestErrorKind::Unavailable, "{e:?}");
    assert!(e.guest_error().unwrap().message.contains("503"), "{e:?}");

    // Invalid amounts and modes never reach the gateway.
    let before = gateway.requests().len();
    let mut negative = charge("divoc-0005", "card", "x");
    negative.amount.minor_units = -1;
    assert_eq!(
        kind(&p.authorize(&negative).unwrap_err()),
        GuestErrorKind::InvalidInput
    );
    let e = p.authorize(&charge("divoc-0006", "cash", "x")).unwrap_err();
    assert_eq!(kind(&e), GuestErrorKind::InvalidInput);
    assert_eq!(gateway.requests().len(), before);

    // Capture twice: one capture request reaches the gateway.
    let c1 = p.capture("pay_1", &inr(25_000)).unwrap();
    let c2 = p.capture("pay_1", &inr(25_000)).unwrap();
    assert_eq!(c1.status, PaymentStatus::Captured);
    assert_eq!(json_of(&c1), json_of(&c2));
    let captures: Vec<Seen> = gateway
        .requests()
        .into_iter()
        .filter(|s| s.path == "/gw/payments/pay_1/capture")
        .collect();
    assert_eq!(captures.len(), 1, "{captures:?}");
    assert_eq!(captures[0].header("idempotency-key"), Some("capture:pay_1"));
    assert_eq!(
        captures[0].body,
        json!({ "amount": { "currency": "INR", "minor_units": 25_000 } })
    );

    // Refund.
    let rf = p.refund("pay_1", &inr(25_000), "dose not given").unwrap();
    assert_eq!(rf.status, PaymentStatus::Refunded);
    let refund = gateway.requests().pop().unwrap();
    assert_eq!(refund.path, "/gw/payments/pay_1/refund");
    assert_eq!(refund.header("idempotency-key"), Some("refund:pay_1"));
    assert_eq!(refund.body["reason"], "dose not given");

    // Unknown references are refused without a request.
    let before = gateway.requests().len();
    let e = p.capture("pay_404", &inr(1)).unwrap_err();
    assert_eq!(kind(&e), GuestErrorKind::InvalidInput);
    assert_eq!(gateway.requests().len(), before);

    // The API key went with every request that reached the gateway.
    let all = gateway.requests();
    assert!(all.len() >= 6, "{all:?}");
    for s in &all {
        assert_eq!(
            s.header("x-api-key"),
            Some(API_KEY),
            "{} {}",
            s.method,
            s.path
        );
    }
}

#[test]
fn pay_gateway_with_a_gateway_that_is_down_is_unavailable() {
    let _load = support::shared();
    // A port that was bound and released: connections are refused.
    let origin = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let tmp = tempfile::tempdir().unwrap();
    let runtime = gateway_runtime(tmp.path(), &origin);
    let p = runtime.payment_provider("pay-gateway").unwrap();
    let e = p.authorize(&charge("divoc-0001", "card", "x")).unwrap_err();
    assert_eq!(kind(&e), GuestErrorKind::Unavailable, "{e:?}");
    // The error (which the host logs) does not carry the key.
    assert!(!e.to_string().contains(API_KEY), "{e}");
}

#[test]
fn pay_government_keeps_one_record_per_reference_in_sqlite() {
    let _load = support::shared();
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    support::copy_plugin(
        &support::plugin_dir("pay-government"),
        &plugins.join("pay-government"),
        |m| m,
    );
    let mut settings = support::settings();
    settings.grants.insert(
        "pay-government".into(),
        Grant {
            kv_quota_bytes: Some(KV_QUOTA),
            ..Grant::default()
        },
    );
    settings.config.insert(
        "pay-government".into(),
        json!({ "funder": "Ministry of Health", "programs": ["C19"] }),
    );
    let (services, kv, _) = support::real_services(tmp.path());
    let runtime = Runtime::new(settings, services).unwrap();
    let report = runtime.reload_dir(&plugins);
    assert_eq!(report.loaded, vec!["pay-government@0.1.0"], "{report:?}");
    let p = runtime.payment_provider("pay-government").unwrap();
    assert_eq!(p.modes().unwrap(), vec!["government"]);

    let c = charge("divoc-0001", "government", "scheme card 42");
    let r1 = p.authorize(&c).unwrap();
    let r2 = p.authorize(&c).unwrap();
    assert_eq!(json_of(&r1), json_of(&r2));
    assert_eq!(r1.provider_reference, "ministry-of-health:divoc-0001");
    assert_eq!(r1.status, PaymentStatus::Authorized);
    assert_eq!(r1.amount.minor_units, 25_000);
    assert_eq!(kv.db.kv_list("pay-government", "", 10).unwrap().len(), 1);
    let stored = kv
        .db
        .kv_get("pay-government", "charge/divoc-0001")
        .unwrap()
        .unwrap();
    let stored: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored["funder"], "Ministry of Health");
    assert_eq!(stored["status"], "authorized");
    // The description (possibly a scheme card number) is not recorded.
    assert!(!stored.to_string().contains("scheme card"), "{stored}");

    let mut travel = charge("divoc-0002", "government", "");
    travel.program = "Travel".into();
    let e = p.authorize(&travel).unwrap_err();
    assert_eq!(kind(&e), GuestErrorKind::Rejected);
    assert!(e.guest_error().unwrap().message.contains("Travel"), "{e:?}");
    assert_eq!(kv.db.kv_list("pay-government", "", 10).unwrap().len(), 1);

    let c1 = p.capture(&r1.provider_reference, &inr(25_000)).unwrap();
    assert_eq!(c1.status, PaymentStatus::Captured);
    assert_eq!(
        json_of(&p.capture(&r1.provider_reference, &inr(25_000)).unwrap()),
        json_of(&c1)
    );
    let rf = p
        .refund(&r1.provider_reference, &inr(25_000), "cancelled")
        .unwrap();
    assert_eq!(rf.status, PaymentStatus::Refunded);
    let e = p
        .capture("ministry-of-health:divoc-0404", &inr(1))
        .unwrap_err();
    assert_eq!(kind(&e), GuestErrorKind::InvalidInput);
}
