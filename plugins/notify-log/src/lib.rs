//! Distribution channel `log`: a sink that writes each message to the
//! server's log instead of sending it. The shipped configuration routes
//! through it so that a fresh install can be tried end to end (a sign-in
//! code, a certificate link, a dose reminder appear in the log); a
//! deployment replaces it with a channel that reaches people (e.g.
//! `notify-webhook` in front of an SMS gateway).
//!
//! Personal data stays out of the log: the recipient's name is never
//! written, contacts are masked to their last characters, and only the
//! variables named in `variables` are written (by default the ones that
//! carry no personal data: codes, links, dates, doses).
//!
//! Configuration: `variables` (list of names; default [`DEFAULT_VARIABLES`]).

use divoc_sdk::distribution::{ChannelInfo, DeliveryFailure, DeliveryReceipt, Guest, Message};
use divoc_sdk::{config, log, Contact, ContactKind};
use serde::Deserialize;

/// Variables written unless configured otherwise. `qr-text` is absent on
/// purpose: it encodes the whole credential, name and date of birth
/// included.
pub const DEFAULT_VARIABLES: &[&str] = &[
    "code",
    "minutes",
    "certificate-url",
    "qr-url",
    "program",
    "programme",
    "dose",
    "earliest",
    "latest",
    "enrolment",
    "daily-rate",
    "severity",
    "report",
];

#[derive(Debug, Deserialize)]
pub struct Config {
    #[serde(default = "default_variables")]
    pub variables: Vec<String>,
}

fn default_variables() -> Vec<String> {
    DEFAULT_VARIABLES.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            variables: default_variables(),
        }
    }
}

/// A contact with all but its last characters hidden: `+91******3210`,
/// `r…@example.org`.
pub fn mask(contact: &Contact) -> String {
    let value = contact.value.as_str();
    match contact.kind {
        ContactKind::Email => match value.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}…@{domain}")
            }
            None => "…".to_owned(),
        },
        _ => {
            let chars: Vec<char> = value.chars().collect();
            let keep = if chars.len() > 6 { 4 } else { 0 };
            let hidden = chars.len() - keep;
            let mut out: String = chars
                .iter()
                .take(hidden)
                .map(|c| if *c == '+' { '+' } else { '*' })
                .collect();
            out.extend(&chars[hidden..]);
            out
        }
    }
}

/// At most the first `n` characters of `s`.
pub fn prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The log line for one message to one contact.
pub fn line(cfg: &Config, m: &Message, to: &Contact) -> String {
    let mut out = format!("{} to {} [{}]", m.template, mask(to), m.id);
    for (k, v) in &m.variables {
        if cfg.variables.iter().any(|w| w == k) {
            out.push_str(&format!(" {k}={v}"));
        }
    }
    for id in &m.certificate_ids {
        out.push_str(&format!(" certificate={id}"));
    }
    out
}

struct Plugin;

impl Guest for Plugin {
    fn info() -> ChannelInfo {
        ChannelInfo {
            id: "log".into(),
            contact_kinds: vec![ContactKind::Phone, ContactKind::Email, ContactKind::Other],
        }
    }

    fn deliver(message: Message) -> Result<DeliveryReceipt, DeliveryFailure> {
        let cfg: Config = config::load().map_err(DeliveryFailure::Permanent)?;
        let Some(first) = message.contacts.first() else {
            return Err(DeliveryFailure::Permanent(divoc_sdk::Error::rejected(
                "the message has no contact",
            )));
        };
        for to in &message.contacts {
            log::info(&line(&cfg, &message, to));
        }
        // The receipt is short whatever the message: the host bounds a
        // plugin's output, and a receipt only needs to be recognisable.
        Ok(DeliveryReceipt {
            channel_reference: format!("log:{}", prefix(&message.id, 64)),
            delivered_to: prefix(&first.value, 64).to_owned(),
        })
    }
}

divoc_sdk::export_distribution_channel!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            id: "divoc-outbox-7".into(),
            template: "otp".into(),
            recipient_name: "Ravi Kumar".into(),
            contacts: vec![Contact {
                kind: ContactKind::Phone,
                value: "+919876543210".into(),
            }],
            certificate_ids: vec![],
            attachments: vec![],
            variables: vec![
                ("code".into(), "123456".into()),
                ("qr-text".into(), "{\"name\": \"Ravi Kumar\"}".into()),
            ],
        }
    }

    #[test]
    fn writes_the_code_but_no_personal_data() {
        let m = message();
        let l = line(&Config::default(), &m, &m.contacts[0]);
        assert_eq!(l, "otp to +********3210 [divoc-outbox-7] code=123456");
        assert!(!l.contains("Ravi"));
    }

    #[test]
    fn receipts_stay_short() {
        assert_eq!(prefix("abcdef", 3), "abc");
        assert_eq!(prefix("ab", 3), "ab");
        assert_eq!(prefix("éèê", 2), "éè");
    }

    #[test]
    fn masks_contacts() {
        let email = Contact {
            kind: ContactKind::Email,
            value: "ravi@example.org".into(),
        };
        assert_eq!(mask(&email), "r…@example.org");
        let short = Contact {
            kind: ContactKind::Phone,
            value: "12345".into(),
        };
        assert_eq!(mask(&short), "*****");
    }

    #[test]
    fn config_names_the_variables() {
        let c: Config = config::parse(r#"{"variables": ["qr-text"]}"#).unwrap();
        let m = message();
        assert!(line(&c, &m, &m.contacts[0]).contains("qr-text="));
        let c: Config = config::parse("{}").unwrap();
        assert!(c.variables.iter().any(|v| v == "code"));
    }
}
