//! The `http` capability against a real loopback server: an explicit
//! loopback grant reaches it, a granted name that resolves to a loopback
//! address does not.

use std::time::Duration;

use divoc_runtime::types::distribution::Message;
use divoc_runtime::types::{Contact, ContactKind};
use divoc_runtime::{Delivery, GuestErrorKind, Runtime};

use crate::loopback::{self, Server};
use crate::support;

fn message(id: &str) -> Message {
    Message {
        id: id.into(),
        template: "certificate-issued".into(),
        recipient_name: "Test Recipient".into(),
        contacts: vec![Contact {
            kind: ContactKind::Phone,
            value: "+911234567890".into(),
        }],
        certificate_ids: vec!["c-1".into()],
        attachments: Vec::new(),
        variables: vec![("url".into(), "https://example.org/c-1".into())],
    }
}

/// notify-webhook, with its manifest listing `origin` instead of the
/// public example origin, granted `origin`, configured to POST to `url`.
fn webhook_runtime(tmp: &std::path::Path, origin: &str, url: &str) -> Runtime {
    loopback::http_plugin_runtime(
        tmp,
        "notify-webhook",
        "https://notify.example.org",
        origin,
        serde_json::json!({
            "url": url,
            "timeout_ms": 2000,
            "secret": "http-test-secret-0123456789abcdef",
        }),
    )
}

#[test]
fn an_explicit_loopback_grant_reaches_a_loopback_server() {
    let _load = support::shared();
    let server = Server::start();
    let origin = format!("http://127.0.0.1:{}", server.addr.port());
    let tmp = tempfile::tempdir().unwrap();
    let runtime = webhook_runtime(tmp.path(), &origin, &format!("{origin}/hook"));
    let channel = runtime.distribution_channel("notify-webhook").unwrap();

    match channel.deliver(&message("m-1")).unwrap() {
        Delivery::Delivered(r) => {
            assert_eq!(r.channel_reference, "msg-200");
            assert_eq!(r.delivered_to, "+911234567890");
        }
        other => panic!("expected delivered, got {other:?}"),
    }
    let seen = server.seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/hook")
    );
    assert!(seen
        .headers
        .contains(&("idempotency-key".to_string(), "m-1".to_string())));
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body["message-id"], "m-1");
    assert_eq!(body["certificate-ids"][0], "c-1");

    // The server's answers map onto the delivery outcome.
    server.answer([503, 400]);
    assert!(matches!(
        channel.deliver(&message("m-2")).unwrap(),
        Delivery::Retryable(_)
    ));
    match channel.deliver(&message("m-3")).unwrap() {
        Delivery::Permanent(e) => assert_eq!(e.kind, GuestErrorKind::Rejected),
        other => panic!("expected permanent, got {other:?}"),
    }
}

/// A name other than `localhost` that /etc/hosts maps to a loopback
/// address, e.g. the machine's own host name.
fn loopback_alias() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let ip: std::net::IpAddr = words.next()?.parse().ok()?;
            ip.is_loopback().then_some(words)
        })
        .flatten()
        .map(str::to_ascii_lowercase)
        .find(|name| {
            name != "localhost"
                && !name.starts_with("localhost.")
                && !name.starts_with("ip6-")
                && url::Url::parse(&format!("http://{name}/")).is_ok()
        })
}

#[test]
fn a_granted_name_that_resolves_to_loopback_is_refused() {
    let _load = support::shared();
    let Some(alias) = loopback_alias() else {
        // The resolver's decision is also unit-tested in
        // src/capabilities/http.rs; this end-to-end check needs an alias.
        println!("skipped: /etc/hosts maps no name other than localhost to loopback");
        return;
    };
    let server = Server::start();
    let origin = format!("http://{alias}:{}", server.addr.port());
    let tmp = tempfile::tempdir().unwrap();
    let runtime = webhook_runtime(tmp.path(), &origin, &format!("{origin}/hook"));
    let channel = runtime.distribution_channel("notify-webhook").unwrap();
    match channel.deliver(&message("m-1")).unwrap() {
        Delivery::Permanent(e) => {
            assert_eq!(e.kind, GuestErrorKind::Rejected, "{e:?}");
            assert!(e.message.contains("local address"), "{e:?}");
            assert!(e.message.contains("notify-webhook"), "{e:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Nothing reached the server.
    assert!(server
        .seen
        .recv_timeout(Duration::from_millis(300))
        .is_err());
    println!("refused {origin} (resolves to loopback)");
}
