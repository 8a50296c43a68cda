//! Distribution channel `webhook`: POSTs each message as JSON to the
//! operator's endpoint, which does the actual sending, and signs every
//! request so that the endpoint can tell it came from this server.
//!
//! Each POST carries
//!
//! - `X-Divoc-Timestamp: <unix seconds>` (the host's clock), and
//! - `X-Divoc-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
//!   (HMAC per RFC 2104 with SHA-256, FIPS 180-4), over the exact body bytes
//!   sent; the timestamp inside the MAC lets the receiver refuse replays of an
//!   old request (README.md shows how a receiver verifies);
//! - `Idempotency-Key: <message id>`: the same on every retry of a message,
//!   so the receiver can drop duplicates (delivery is at least once).
//!
//! Retrying is the host's job: 2xx → delivered; 5xx, 408, 429 and network
//! errors → retryable; other 4xx, a refused origin, a message without
//! contacts and a configuration without a usable secret → permanent.
//!
//! Configuration (README.md): `url` and `secret` (required),
//! `include_attachments` (default false: attachment names and media types
//! only, no bytes), `timeout_ms` (default 3000), `authorization` (optional
//! `Authorization` header value). Neither `secret` nor `authorization` is
//! ever logged or shown by `Debug`; this plugin logs nothing at all.

use core::fmt;

use base64::Engine as _;
use divoc_sdk::distribution::{ChannelInfo, DeliveryFailure, DeliveryReceipt, Guest, Message};
use divoc_sdk::http::{Method, Request};
use divoc_sdk::{clock, config, ContactKind, Error};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use sha2::Sha256;

/// Shortest accepted secret: RFC 2104 §3 discourages keys shorter than the
/// hash's output, 32 bytes for SHA-256.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Deserialize)]
pub struct Config {
    pub url: String,
    /// The HMAC key shared with the receiver.
    pub secret: Secret,
    #[serde(default, alias = "include-attachments")]
    pub include_attachments: bool,
    #[serde(default = "default_timeout", alias = "timeout-ms")]
    pub timeout_ms: u32,
    #[serde(default)]
    pub authorization: Option<Secret>,
}

fn default_timeout() -> u32 {
    3000
}

/// A credential from the configuration. Its `Debug` does not show it, and a
/// value of the wrong type is refused without echoing it (serde's own
/// message would quote it).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A value of digits only arrives as a number through the environment
        // (`DIVOC_PLUGINS__CONFIG__NOTIFY_WEBHOOK__SECRET`).
        match Value::deserialize(d)? {
            Value::String(s) if !s.is_empty() => Ok(Secret(s)),
            Value::Number(n) => Ok(Secret(n.to_string())),
            _ => Err(serde::de::Error::custom("must be a non-empty string")),
        }
    }
}

impl Config {
    /// Refuses settings the plugin cannot sign with.
    pub fn validate(&self) -> Result<(), Error> {
        if self.secret.expose().len() < MIN_SECRET_BYTES {
            return Err(Error::internal(format!(
                "invalid notify-webhook configuration: `secret` must be at least {MIN_SECRET_BYTES} bytes (RFC 2104 §3); e.g. 64 hex digits from `openssl rand -hex 32`"
            )));
        }
        Ok(())
    }
}

/// `v1=` and the lower-case hex HMAC-SHA256 of `"<timestamp>.<body>"` under
/// `secret` (RFC 2104). `v1` names the scheme so that a receiver can accept
/// a later one beside it during a change.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> Result<String, Error> {
    let timestamp = timestamp.to_string();
    let tag = hmac_sha256_hex(secret, &[timestamp.as_bytes(), b".", body])?;
    Ok(format!("v1={tag}"))
}

/// Lower-case hex HMAC-SHA256 (RFC 2104, FIPS 180-4) of the concatenated
/// `parts`.
pub fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> Result<String, Error> {
    // HMAC takes keys of any length (RFC 2104 §2: longer ones are hashed),
    // so this cannot fail; the error is mapped rather than unwrapped.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| Error::internal(format!("HMAC key refused: {e}")))?;
    for part in parts {
        mac.update(part);
    }
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(2 * tag.len());
    for b in tag {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Standard base64 with padding (RFC 4648 §4), for attachment bytes.
pub fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn kind(k: ContactKind) -> &'static str {
    match k {
        ContactKind::Phone => "phone",
        ContactKind::Email => "email",
        ContactKind::Other => "other",
    }
}

/// The JSON body sent to the webhook.
pub fn body(m: &Message, include_attachments: bool) -> Value {
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| {
            let mut v = json!({ "name": a.name, "media-type": a.media_type, "size": a.data.len() });
            if include_attachments {
                v["data-base64"] = Value::String(base64(&a.data));
            }
            v
        })
        .collect();
    json!({
        "message-id": m.id,
        "template": m.template,
        "recipient-name": m.recipient_name,
        "contacts": m.contacts.iter().map(|c| json!({ "kind": kind(c.kind), "value": c.value })).collect::<Vec<_>>(),
        "certificate-ids": m.certificate_ids,
        "variables": m.variables.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "attachments": attachments,
    })
}

/// How an HTTP status ends a delivery attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retry,
    GiveUp,
}

/// 2xx delivered; 408 (timeout), 429 (rate limit, RFC 6585 §4) and 5xx
/// retried by the host; the rest refused for good.
pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry,
        _ => Outcome::GiveUp,
    }
}

fn deliver(cfg: &Config, m: &Message) -> Result<DeliveryReceipt, DeliveryFailure> {
    // The receiver sends to the contacts; with none there is nothing to do,
    // now or later.
    let Some(first) = m.contacts.first() else {
        return Err(DeliveryFailure::Permanent(Error::invalid_input(
            "the message has no contact",
        )));
    };
    cfg.validate().map_err(DeliveryFailure::Permanent)?;
    // Serialized once: the signature covers exactly the bytes sent.
    let bytes = serde_json::to_vec(&body(m, cfg.include_attachments)).map_err(|e| {
        DeliveryFailure::Permanent(Error::internal(format!("cannot serialize body: {e}")))
    })?;
    let timestamp = clock::unix_seconds();
    let signature = signature(cfg.secret.expose().as_bytes(), timestamp, &bytes)
        .map_err(DeliveryFailure::Permanent)?;
    let mut req = Request::new(Method::Post, cfg.url.clone())
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", m.id.clone())
        .header("X-Divoc-Timestamp", timestamp.to_string())
        .header("X-Divoc-Signature", signature)
        .timeout_ms(cfg.timeout_ms);
    req.body = Some(bytes);
    if let Some(auth) = &cfg.authorization {
        req = req.header("Authorization", auth.expose().to_owned());
    }
    let resp = match req.send() {
        Ok(r) => r,
        Err(e @ Error::Unavailable(_)) => return Err(DeliveryFailure::Retryable(e)),
        Err(e) => return Err(DeliveryFailure::Permanent(e)),
    };
    let reason = || format!("webhook answered HTTP {}", resp.status);
    match classify(resp.status) {
        Outcome::Delivered => Ok(DeliveryReceipt {
            channel_reference: resp
                .header("x-message-id")
                .map(str::to_string)
                .unwrap_or_else(|| format!("http-{}", resp.status)),
            delivered_to: first.value.clone(),
        }),
        Outcome::Retry => Err(DeliveryFailure::Retryable(Error::unavailable(reason()))),
        Outcome::GiveUp => Err(DeliveryFailure::Permanent(Error::rejected(reason()))),
    }
}

struct Plugin;

impl Guest for Plugin {
    fn info() -> ChannelInfo {
        ChannelInfo {
            id: "webhook".into(),
            contact_kinds: vec![ContactKind::Phone, ContactKind::Email, ContactKind::Other],
        }
    }

    fn deliver(message: Message) -> Result<DeliveryReceipt, DeliveryFailure> {
        let cfg: Config = config::load().map_err(DeliveryFailure::Permanent)?;
        deliver(&cfg, &message)
    }
}

divoc_sdk::export_distribution_channel!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use divoc_sdk::distribution::Attachment;
    use divoc_sdk::Contact;

    fn message() -> Message {
        Message {
            id: "m-1".into(),
            template: "certificate-issued".into(),
            recipient_name: "A".into(),
            contacts: vec![Contact {
                kind: ContactKind::Phone,
                value: "+911234".into(),
            }],
            certificate_ids: vec!["c-1".into()],
            attachments: vec![Attachment {
                name: "cert.pdf".into(),
                media_type: "application/pdf".into(),
                data: b"PDF".to_vec(),
            }],
            variables: vec![("url".into(), "https://x".into())],
        }
    }

    #[test]
    fn body_omits_attachment_bytes_by_default() {
        let b = body(&message(), false);
        assert_eq!(b["message-id"], "m-1");
        assert_eq!(b["certificate-ids"][0], "c-1");
        assert_eq!(b["variables"]["url"], "https://x");
        assert_eq!(b["attachments"][0]["size"], 3);
        assert!(b["attachments"][0].get("data-base64").is_none());
        let b = body(&message(), true);
        assert_eq!(b["attachments"][0]["data-base64"], "UERG");
    }

    #[test]
    fn classifies_statuses() {
        assert_eq!(classify(200), Outcome::Delivered);
        assert_eq!(classify(204), Outcome::Delivered);
        assert_eq!(classify(503), Outcome::Retry);
        assert_eq!(classify(429), Outcome::Retry);
        assert_eq!(classify(400), Outcome::GiveUp);
        assert_eq!(classify(404), Outcome::GiveUp);
    }

    #[test]
    fn base64_vectors() {
        // RFC 4648 §10.
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn a_message_without_contacts_fails_permanently_before_anything_else() {
        let c: Config = config::parse(r#"{"url": "u", "secret": "short"}"#).unwrap();
        let mut m = message();
        m.contacts.clear();
        match deliver(&c, &m) {
            Err(DeliveryFailure::Permanent(Error::InvalidInput(e))) => {
                assert!(e.contains("no contact"))
            }
            other => panic!("expected a permanent failure, got {other:?}"),
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 §4.3, test case 2 (a key shorter than the block size).
        assert_eq!(
            hmac_sha256_hex(b"Jefe", &[b"what do ya ", b"want for nothing?"]).unwrap(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block size is hashed first.
        assert_eq!(
            hmac_sha256_hex(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )
            .unwrap(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signature_covers_timestamp_and_body() {
        let secret = b"whsec-0123456789abcdef0123456789abcdef";
        let body = br#"{"message-id":"m-1"}"#;
        // Computed independently, as a receiver would (README.md):
        // hmac.new(secret, b"1700000000." + body, hashlib.sha256).hexdigest()
        assert_eq!(
            signature(secret, 1_700_000_000, body).unwrap(),
            "v1=3f05b092af29c692408ec75675fe424a3db97eabedfbea7ec79056609f592b4c"
        );
        assert_ne!(
            signature(secret, 1_700_000_001, body).unwrap(),
            signature(secret, 1_700_000_000, body).unwrap()
        );
        assert_ne!(
            signature(secret, 1_700_000_000, br#"{"message-id":"m-2"}"#).unwrap(),
            signature(secret, 1_700_000_000, body).unwrap()
        );
    }

    #[test]
    fn config_needs_url_and_a_long_enough_secret() {
        assert!(config::parse::<Config>("{}").is_err());
        assert!(config::parse::<Config>(r#"{"url": "https://notify.example.org/hook"}"#).is_err());
        let c: Config = config::parse(
            r#"{"url": "https://notify.example.org/hook", "secret": "0123456789abcdef0123456789abcdef"}"#,
        )
        .unwrap();
        assert_eq!(c.timeout_ms, 3000);
        assert!(!c.include_attachments);
        assert!(c.validate().is_ok());
        // Neither credential shows in Debug (which error paths might print).
        let c: Config =
            config::parse(r#"{"url": "u", "secret": "s3cret", "authorization": "Bearer t0ken"}"#)
                .unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("t0ken"),
            "{debug}"
        );
        let e = c.validate().unwrap_err();
        assert!(e.message().contains("at least 32 bytes"), "{e:?}");
        assert!(!e.message().contains("s3cret"), "{e:?}");
        // A wrong type is refused without echoing the value; a number (from
        // the environment) is taken as its digits.
        let e = config::parse::<Config>(r#"{"url": "u", "secret": ["s3cret"]}"#).unwrap_err();
        assert!(!e.message().contains("s3cret"), "{e:?}");
        let c: Config = config::parse(r#"{"url": "u", "secret": 12345}"#).unwrap();
        assert_eq!(c.secret.expose(), "12345");
    }
}
