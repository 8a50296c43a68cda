//! The distribution channels a ministry deploys, through the real plugin
//! runtime against a loopback endpoint:
//!
//! - `notify-sms`: the gateway receives E.164 numbers and the template
//!   rendered in the message's language; its 5xx is retryable, its 4xx
//!   permanent; a number that cannot be made valid fails permanently
//!   without any request;
//! - `notify-webhook`: every request is signed; the test recomputes the
//!   HMAC-SHA256 (RFC 2104) from the body and timestamp it received, and
//!   checks the idempotency key stays the same across retries.

use std::time::{SystemTime, UNIX_EPOCH};

use divoc_runtime::types::distribution::Message;
use divoc_runtime::types::{Contact, ContactKind};
use divoc_runtime::{Delivery, GuestErrorKind, Runtime};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::loopback::{self, Server};
use crate::support;

const SMS_KEY: &str = "sms-test-api-key";
const WEBHOOK_SECRET: &str = "webhook-test-secret-0123456789abcdef";

fn message(id: &str, template: &str, phone: &str, variables: &[(&str, &str)]) -> Message {
    Message {
        id: id.into(),
        template: template.into(),
        recipient_name: "Asha Verma".into(),
        contacts: vec![Contact {
            kind: ContactKind::Phone,
            value: phone.into(),
        }],
        certificate_ids: Vec::new(),
        attachments: Vec::new(),
        variables: variables
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    }
}

/// notify-sms for India (+91, ten digits), sending to `origin`.
fn sms_runtime(tmp: &std::path::Path, origin: &str) -> Runtime {
    loopback::http_plugin_runtime(
        tmp,
        "notify-sms",
        "https://sms-gateway.example.org",
        origin,
        json!({
            "url": format!("{origin}/v1/messages"),
            "api_key": SMS_KEY,
            "sender": "DIVOC",
            "country_calling_code": "91",
            "national_number_length": 10,
            "default_language": "en",
            "timeout_ms": 2000,
            "templates": {
                "otp": {
                    "en": "{code} is your sign-in code. It expires in {minutes} minutes.",
                    "hi": "{code} आपका साइन-इन कोड है। यह {minutes} मिनट में समाप्त हो जाएगा।",
                },
                "dose-reminder": {
                    "en": "{recipient-name}, dose {dose} of {programme} is due from {earliest} at {facility}.",
                },
            },
        }),
    )
}

#[test]
fn the_sms_gateway_gets_e164_numbers_and_the_rendered_text() {
    let _load = support::shared();
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = sms_runtime(tmp.path(), &server.origin());
    let channel = runtime.distribution_channel("notify-sms").unwrap();
    let info = channel.channel_info().unwrap();
    assert_eq!(info.contact_kinds, vec![ContactKind::Phone]);

    // Hindi, chosen by the message; a number written with the trunk prefix.
    server.answer_json(202, json!({ "id": "gw-0001", "status": "queued" }));
    let otp = message(
        "divoc-outbox-1",
        "otp",
        "098765 43210",
        &[("code", "482913"), ("minutes", "5"), ("lang", "hi")],
    );
    match channel.deliver(&otp).unwrap() {
        Delivery::Delivered(r) => {
            assert_eq!(r.channel_reference, "gw-0001");
            assert_eq!(r.delivered_to, "+919876543210");
        }
        other => panic!("expected delivered, got {other:?}"),
    }
    let seen = server.next();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(seen.header("idempotency-key"), Some("divoc-outbox-1"));
    assert_eq!(seen.header("x-api-key"), Some(SMS_KEY));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.json(),
        json!({
            "to": "+919876543210",
            "from": "DIVOC",
            "text": "482913 आपका साइन-इन कोड है। यह 5 मिनट में समाप्त हो जाएगा।",
            "reference": "divoc-outbox-1",
        })
    );

    // English by default; the international form with separators; no id in
    // the answer, so the status is the reference.
    let reminder = message(
        "divoc-outbox-2",
        "dose-reminder",
        "+91 (98765) 43-210",
        &[
            ("dose", "2"),
            ("programme", "C19"),
            ("earliest", "2026-01-05"),
            ("facility", "PHC Ward 4"),
        ],
    );
    match channel.deliver(&reminder).unwrap() {
        Delivery::Delivered(r) => assert_eq!(r.channel_reference, "http-200"),
        other => panic!("expected delivered, got {other:?}"),
    }
    let seen = server.next();
    let body = seen.json();
    assert_eq!(body["to"], "+919876543210");
    assert_eq!(
        body["text"],
        "Asha Verma, dose 2 of C19 is due from 2026-01-05 at PHC Ward 4."
    );
    assert_eq!(seen.header("idempotency-key"), Some("divoc-outbox-2"));
}

#[test]
fn sms_gateway_answers_map_to_retryable_and_permanent() {
    let _load = support::shared();
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = sms_runtime(tmp.path(), &server.origin());
    let channel = runtime.distribution_channel("notify-sms").unwrap();
    let otp = message(
        "divoc-outbox-3",
        "otp",
        "9876543210",
        &[("code", "1"), ("minutes", "5")],
    );

    server.answer([503, 429, 400]);
    match channel.deliver(&otp).unwrap() {
        Delivery::Retryable(e) => {
            assert_eq!(e.kind, GuestErrorKind::Unavailable);
            assert!(e.message.contains("503"), "{e:?}");
        }
        other => panic!("expected retryable, got {other:?}"),
    }
    assert!(matches!(
        channel.deliver(&otp).unwrap(),
        Delivery::Retryable(_)
    ));
    match channel.deliver(&otp).unwrap() {
        Delivery::Permanent(e) => {
            assert_eq!(e.kind, GuestErrorKind::Rejected);
            assert!(e.message.contains("400"), "{e:?}");
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    // Every attempt carried the same idempotency key.
    for _ in 0..3 {
        assert_eq!(
            server.next().header("idempotency-key"),
            Some("divoc-outbox-3")
        );
    }
}

#[test]
fn an_unreachable_sms_gateway_is_retryable() {
    let _load = support::shared();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = sms_runtime(tmp.path(), &format!("http://127.0.0.1:{port}"));
    let channel = runtime.distribution_channel("notify-sms").unwrap();
    let otp = message(
        "m-net",
        "otp",
        "9876543210",
        &[("code", "1"), ("minutes", "5")],
    );
    match channel.deliver(&otp).unwrap() {
        Delivery::Retryable(e) => assert_eq!(e.kind, GuestErrorKind::Unavailable, "{e:?}"),
        other => panic!("expected retryable, got {other:?}"),
    }
}

#[test]
fn a_bad_number_or_template_fails_permanently_without_a_request() {
    let _load = support::shared();
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = sms_runtime(tmp.path(), &server.origin());
    let channel = runtime.distribution_channel("notify-sms").unwrap();

    for number in ["12345", "+91 98765 4321", "98765-4321x0", "0044 12"] {
        let m = message("m-bad", "otp", number, &[("code", "1"), ("minutes", "5")]);
        match channel.deliver(&m).unwrap() {
            Delivery::Permanent(e) => {
                assert_eq!(e.kind, GuestErrorKind::InvalidInput, "{number}: {e:?}");
                // The error is kept and logged: it must not carry the number.
                let digits: String = number.chars().filter(char::is_ascii_digit).collect();
                assert!(!e.message.contains(&digits[..5]), "{e:?}");
            }
            other => panic!("{number}: expected permanent, got {other:?}"),
        }
    }
    let unknown = message("m-tpl", "aefi-serious", "9876543210", &[("report", "r-1")]);
    match channel.deliver(&unknown).unwrap() {
        Delivery::Permanent(e) => assert!(e.message.contains("`aefi-serious`"), "{e:?}"),
        other => panic!("expected permanent, got {other:?}"),
    }
    assert!(server.quiet_for(300), "a request reached the gateway");
}

/// notify-webhook posting to `origin`, signing with [`WEBHOOK_SECRET`].
fn webhook_runtime(tmp: &std::path::Path, origin: &str, secret: &str) -> Runtime {
    loopback::http_plugin_runtime(
        tmp,
        "notify-webhook",
        "https://notify.example.org",
        origin,
        json!({ "url": format!("{origin}/hook"), "timeout_ms": 2000, "secret": secret }),
    )
}

/// Verifies a request as a receiver would (README.md of notify-webhook):
/// recompute HMAC-SHA256(secret, "<timestamp>.<body>") and compare in
/// constant time; refuse a timestamp more than 5 minutes from now.
fn verify(seen: &loopback::Seen, secret: &str) -> Result<(), String> {
    let ts = seen.header("x-divoc-timestamp").ok_or("no timestamp")?;
    let sig = seen.header("x-divoc-signature").ok_or("no signature")?;
    let ts_secs: u64 = ts.parse().map_err(|_| "timestamp is not a number")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(ts_secs) > 300 {
        return Err(format!("timestamp {ts_secs} is {now}±300 s away"));
    }
    let tag = hex::decode(sig.strip_prefix("v1=").ok_or("no v1= scheme")?)
        .map_err(|_| "signature is not hex")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&seen.body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&tag)
        .map_err(|_| "signature mismatch".to_string())
}

#[test]
fn webhook_requests_are_signed_and_keyed_by_message() {
    let _load = support::shared();
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = webhook_runtime(tmp.path(), &server.origin(), WEBHOOK_SECRET);
    let channel = runtime.distribution_channel("notify-webhook").unwrap();
    let m = message(
        "divoc-outbox-9",
        "otp",
        "+919876543210",
        &[("code", "482913"), ("minutes", "5")],
    );

    server.answer([503]);
    assert!(matches!(
        channel.deliver(&m).unwrap(),
        Delivery::Retryable(_)
    ));
    match channel.deliver(&m).unwrap() {
        Delivery::Delivered(r) => assert_eq!(r.channel_reference, "msg-200"),
        other => panic!("expected delivered, got {other:?}"),
    }
    for attempt in 0..2 {
        let seen = server.next();
        assert_eq!(
            seen.header("idempotency-key"),
            Some("divoc-outbox-9"),
            "attempt {attempt}"
        );
        verify(&seen, WEBHOOK_SECRET).unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        // Another key does not verify, nor does a changed body.
        assert!(verify(&seen, "another-secret-0123456789abcdef0123").is_err());
        let mut tampered = seen;
        tampered.body.push(b' ');
        assert!(verify(&tampered, WEBHOOK_SECRET).is_err());
        assert_eq!(tampered.json()["message-id"], "divoc-outbox-9");
    }
}

#[test]
fn a_webhook_without_a_usable_secret_sends_nothing() {
    let _load = support::shared();
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = webhook_runtime(tmp.path(), &server.origin(), "too-short");
    let channel = runtime.distribution_channel("notify-webhook").unwrap();
    let m = message("m-1", "otp", "+919876543210", &[("code", "1")]);
    match channel.deliver(&m).unwrap() {
        Delivery::Permanent(e) => {
            assert_eq!(e.kind, GuestErrorKind::Internal, "{e:?}");
            assert!(e.message.contains("secret"), "{e:?}");
            assert!(!e.message.contains("too-short"), "{e:?}");
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    assert!(server.quiet_for(300), "an unsigned request went out");
}

// ---- notify-webhook-c: the same adapter in C (plugins/c/notify-webhook-c),
// built by scripts/setup.sh into target/c-plugins. The same checks as for
// the Rust plugin, and the same bytes on the wire.

const C_WEBHOOK: &str = "notify-webhook-c";

fn webhook_config(origin: &str, secret: &str) -> serde_json::Value {
    json!({ "url": format!("{origin}/hook"), "timeout_ms": 2000, "secret": secret })
}

/// notify-webhook-c posting to `origin` with `config`.
fn c_webhook_runtime(tmp: &std::path::Path, origin: &str, config: serde_json::Value) -> Runtime {
    loopback::http_plugin_runtime_from(
        &support::c_plugin_dir(C_WEBHOOK),
        tmp,
        C_WEBHOOK,
        "https://notify.example.org",
        origin,
        config,
    )
}

#[test]
fn c_webhook_requests_are_signed_and_keyed_by_message() {
    let _load = support::shared();
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = c_webhook_runtime(
        tmp.path(),
        &server.origin(),
        webhook_config(&server.origin(), WEBHOOK_SECRET),
    );
    let channel = runtime.distribution_channel(C_WEBHOOK).unwrap();
    let info = channel.channel_info().unwrap();
    assert_eq!(info.id, "webhook");
    assert_eq!(info.contact_kinds.len(), 3);
    let m = message(
        "divoc-outbox-9",
        "otp",
        "+919876543210",
        &[("code", "482913"), ("minutes", "5")],
    );

    server.answer([503]);
    match channel.deliver(&m).unwrap() {
        Delivery::Retryable(e) => {
            assert_eq!(e.kind, GuestErrorKind::Unavailable, "{e:?}");
            assert!(e.message.contains("503"), "{e:?}");
        }
        other => panic!("expected retryable, got {other:?}"),
    }
    match channel.deliver(&m).unwrap() {
        Delivery::Delivered(r) => {
            assert_eq!(r.channel_reference, "msg-200");
            assert_eq!(r.delivered_to, "+919876543210");
        }
        other => panic!("expected delivered, got {other:?}"),
    }
    for attempt in 0..2 {
        let seen = server.next();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path, "/hook");
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(seen.header("authorization"), None);
        assert_eq!(
            seen.header("idempotency-key"),
            Some("divoc-outbox-9"),
            "attempt {attempt}"
        );
        // Recomputed with the `hmac` crate, as a receiver would.
        verify(&seen, WEBHOOK_SECRET).unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        assert!(verify(&seen, "another-secret-0123456789abcdef0123").is_err());
        let mut tampered = seen;
        tampered.body.push(b' ');
        assert!(verify(&tampered, WEBHOOK_SECRET).is_err());
        let body = tampered.json();
        assert_eq!(body["message-id"], "divoc-outbox-9");
        assert_eq!(body["contacts"][0]["value"], "+919876543210");
        assert_eq!(body["variables"]["code"], "482913");
    }
}

#[test]
fn c_webhook_answers_map_to_retryable_and_permanent() {
    let _load = support::shared();
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let runtime = c_webhook_runtime(
        tmp.path(),
        &server.origin(),
        webhook_config(&server.origin(), WEBHOOK_SECRET),
    );
    let channel = runtime.distribution_channel(C_WEBHOOK).unwrap();
    let m = message("divoc-outbox-5", "otp", "+919876543210", &[("code", "1")]);

    server.answer([429, 408, 500, 400, 404, 204]);
    for status in [429, 408, 500] {
        match channel.deliver(&m).unwrap() {
            Delivery::Retryable(e) => {
                assert_eq!(e.kind, GuestErrorKind::Unavailable, "{status}: {e:?}");
                assert!(e.message.contains(&status.to_string()), "{e:?}");
            }
            other => panic!("{status}: expected retryable, got {other:?}"),
        }
    }
    for status in [400, 404] {
        match channel.deliver(&m).unwrap() {
            Delivery::Permanent(e) => {
                assert_eq!(e.kind, GuestErrorKind::Rejected, "{status}: {e:?}");
                assert_eq!(e.message, format!("webhook answered HTTP {status}"));
            }
            other => panic!("{status}: expected permanent, got {other:?}"),
        }
    }
    match channel.deliver(&m).unwrap() {
        Delivery::Delivered(r) => assert_eq!(r.channel_reference, "msg-204"),
        other => panic!("expected delivered, got {other:?}"),
    }
    // Six attempts, each signed, all with the same key.
    for attempt in 0..6 {
        let seen = server.next();
        assert_eq!(seen.header("idempotency-key"), Some("divoc-outbox-5"));
        verify(&seen, WEBHOOK_SECRET).unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
    }
}

#[test]
fn an_unreachable_c_webhook_is_retryable() {
    let _load = support::shared();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("http://127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let runtime = c_webhook_runtime(tmp.path(), &origin, webhook_config(&origin, WEBHOOK_SECRET));
    let channel = runtime.distribution_channel(C_WEBHOOK).unwrap();
    let m = message("m-net", "otp", "+919876543210", &[("code", "1")]);
    match channel.deliver(&m).unwrap() {
        Delivery::Retryable(e) => assert_eq!(e.kind, GuestErrorKind::Unavailable, "{e:?}"),
        other => panic!("expected retryable, got {other:?}"),
    }
}

#[test]
fn a_c_webhook_without_a_usable_configuration_sends_nothing() {
    let _load = support::shared();
    let server = Server::start();
    let origin = server.origin();
    let configs = [
        // Too short (RFC 2104 §3).
        (webhook_config(&origin, "too-short"), "at least 32 bytes"),
        (
            json!({ "url": format!("{origin}/hook") }),
            "missing field `secret`",
        ),
        (
            json!({ "url": format!("{origin}/hook"), "secret": ["too-short-in-a-list"] }),
            "`secret` must be a non-empty string",
        ),
        (json!({ "secret": WEBHOOK_SECRET }), "missing field `url`"),
    ];
    for (config, expected) in configs {
        let tmp = tempfile::tempdir().unwrap();
        let runtime = c_webhook_runtime(tmp.path(), &origin, config);
        let channel = runtime.distribution_channel(C_WEBHOOK).unwrap();
        let m = message("m-1", "otp", "+919876543210", &[("code", "1")]);
        match channel.deliver(&m).unwrap() {
            Delivery::Permanent(e) => {
                assert_eq!(e.kind, GuestErrorKind::Internal, "{e:?}");
                assert!(e.message.contains(expected), "{e:?}");
                // The secret is never quoted back.
                assert!(!e.message.contains("too-short"), "{e:?}");
                assert!(!e.message.contains(WEBHOOK_SECRET), "{e:?}");
            }
            other => panic!("expected permanent, got {other:?}"),
        }
        // A message without contacts fails before the configuration is read.
        let mut none = m.clone();
        none.contacts.clear();
        match channel.deliver(&none).unwrap() {
            Delivery::Permanent(e) => assert_eq!(e.kind, GuestErrorKind::InvalidInput, "{e:?}"),
            other => panic!("expected permanent, got {other:?}"),
        }
    }
    assert!(server.quiet_for(300), "an unsigned request went out");
}

#[test]
fn the_c_and_rust_webhooks_send_the_same_bytes() {
    let _load = support::shared();
    let server = Server::start();
    let origin = server.origin();
    let config = json!({
        "url": format!("{origin}/hook"),
        "secret": WEBHOOK_SECRET,
        "include_attachments": true,
        "timeout_ms": 2000,
        "authorization": "Bearer t0ken",
    });
    let (tmp_c, tmp_rust) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let c = c_webhook_runtime(tmp_c.path(), &origin, config.clone());
    let rust = loopback::http_plugin_runtime(
        tmp_rust.path(),
        "notify-webhook",
        "https://notify.example.org",
        &origin,
        config,
    );
    // Everything JSON escaping and key order can get wrong: quotes,
    // backslashes, control characters, non-ASCII, a repeated and unsorted
    // variable name, attachment bytes of every value.
    let m = Message {
        id: "divoc-outbox-42".into(),
        template: "certificate-issued\u{1}".into(),
        recipient_name: "Åsa \"Q\" \\ O'Neil\n\t\u{7f}\u{2028} 🙂".into(),
        contacts: vec![
            Contact {
                kind: ContactKind::Phone,
                value: "+91 98765 43210".into(),
            },
            Contact {
                kind: ContactKind::Email,
                value: "asa@example.org".into(),
            },
            Contact {
                kind: ContactKind::Other,
                value: "</script>".into(),
            },
        ],
        certificate_ids: vec!["c-1".into(), "c-\u{0}2".into()],
        attachments: vec![
            divoc_runtime::types::distribution::Attachment {
                name: "certificate.pdf".into(),
                media_type: "application/pdf".into(),
                data: (0..=255).collect(),
            },
            divoc_runtime::types::distribution::Attachment {
                name: "empty".into(),
                media_type: "text/plain".into(),
                data: Vec::new(),
            },
        ],
        variables: vec![
            ("code".into(), "482913".into()),
            ("Zeta".into(), "upper case sorts first".into()),
            ("code".into(), "the last one wins".into()),
            ("é".into(), "\u{8}\u{c}\r".into()),
        ],
    };
    for (name, runtime) in [(C_WEBHOOK, &c), ("notify-webhook", &rust)] {
        match runtime
            .distribution_channel(name)
            .unwrap()
            .deliver(&m)
            .unwrap()
        {
            Delivery::Delivered(r) => assert_eq!(r.delivered_to, "+91 98765 43210"),
            other => panic!("{name}: expected delivered, got {other:?}"),
        }
    }
    let (from_c, from_rust) = (server.next(), server.next());
    assert_eq!(
        String::from_utf8_lossy(&from_c.body),
        String::from_utf8_lossy(&from_rust.body)
    );
    assert_eq!(from_c.body, from_rust.body);
    for seen in [&from_c, &from_rust] {
        verify(seen, WEBHOOK_SECRET).unwrap();
        assert_eq!(seen.header("authorization"), Some("Bearer t0ken"));
        assert_eq!(seen.header("idempotency-key"), Some("divoc-outbox-42"));
    }
    let names = |s: &loopback::Seen| {
        let mut n: Vec<String> = s.headers.iter().map(|(k, _)| k.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&from_c), names(&from_rust));
    let body = from_c.json();
    assert_eq!(body["variables"]["code"], "the last one wins");
    assert_eq!(body["attachments"][0]["size"], 256);
}
