//! Distribution channel `webhook`: POSTs each message as JSON to the
//! operator's endpoint, which does the actual sending.
//!
//! Configuration: `url` (required), `include_attachments` (default false:
//! attachment names and media types only, no bytes), `timeout_ms` (default
//! 3000), `authorization` (optional `Authorization` header value).
//!
//! 2xx → delivered; 5xx, 408, 429 and network errors → retryable; other 4xx
//! and refused origins → permanent.

use divoc_sdk::distribution::{ChannelInfo, DeliveryFailure, DeliveryReceipt, Guest, Message};
use divoc_sdk::http::{Method, Request};
use divoc_sdk::{config, ContactKind, Error};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
pub struct Config {
    pub url: String,
    #[serde(default)]
    pub include_attachments: bool,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    #[serde(default)]
    pub authorization: Option<String>,
}

fn default_timeout() -> u32 {
    3000
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, for attachment bytes.
pub fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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

pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry,
        _ => Outcome::GiveUp,
    }
}

fn deliver(cfg: &Config, m: &Message) -> Result<DeliveryReceipt, DeliveryFailure> {
    let mut req = Request::new(Method::Post, cfg.url.clone())
        .header("idempotency-key", m.id.clone())
        .timeout_ms(cfg.timeout_ms)
        .json(&body(m, cfg.include_attachments))
        .map_err(DeliveryFailure::Permanent)?;
    if let Some(auth) = &cfg.authorization {
        req = req.header("authorization", auth.clone());
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
            delivered_to: m
                .contacts
                .first()
                .map(|c| c.value.clone())
                .unwrap_or_else(|| "webhook".to_string()),
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
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn config_needs_url() {
        assert!(config::parse::<Config>("{}").is_err());
        let c: Config = config::parse(r#"{"url": "https://notify.example.org/hook"}"#).unwrap();
        assert_eq!(c.timeout_ms, 3000);
        assert!(!c.include_attachments);
    }
}
