//! Distribution channel `sms`: sends each message as a text message through
//! the operator's HTTP SMS gateway.
//!
//! For each message the plugin
//!
//! 1. takes the message's phone contacts and makes the first one that can be
//!    an E.164 number (`+91…`, see [`phone`]) the recipient; none → permanent
//!    failure, before any request;
//! 2. picks the text of the message's template in its language (the
//!    `language` or `lang` variable when the host sends one, else
//!    `default_language`) and fills its `{variable}` placeholders (see
//!    [`template`]); an unknown template → permanent failure naming it;
//! 3. POSTs `{"to", "from", "text", "reference"}` as JSON to `url`, with the
//!    API key in its header and `Idempotency-Key: <message id>` so that a
//!    gateway which honours it sends a retried message once.
//!
//! 2xx → delivered (the channel reference is the gateway's `id`); 5xx, 408,
//! 429 and network errors → retryable (the host retries with back-off); any
//! other status and a refused origin → permanent.
//!
//! Nothing is logged (the manifest does not even ask for `log`): the phone
//! number, the text (a sign-in code) and the API key stay out of the server
//! log. Errors name templates, languages and lengths, never numbers or values.
//!
//! Configuration: see README.md.

pub mod phone;
pub mod template;

use core::fmt;

use divoc_sdk::distribution::{ChannelInfo, DeliveryFailure, DeliveryReceipt, Guest, Message};
use divoc_sdk::http::{Method, Request, Response};
use divoc_sdk::{config, ContactKind, Error};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use phone::{Country, NumberError};
use template::Templates;

/// The plugin's configuration section. Names are snake_case as in the README;
/// the kebab-case aliases are what `DIVOC_PLUGINS__CONFIG__NOTIFY_SMS__API_KEY`
/// and friends become (the host's environment mapping turns `_` into `-`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The gateway's send endpoint.
    pub url: String,
    #[serde(alias = "api-key")]
    pub api_key: Secret,
    /// The header that carries the key (default `X-Api-Key`).
    #[serde(default = "default_api_key_header", alias = "api-key-header")]
    pub api_key_header: String,
    /// Sender id or number, as the gateway registered it.
    pub sender: String,
    /// E.164 country code, e.g. `"91"` (a number is accepted too).
    #[serde(alias = "country-calling-code", deserialize_with = "string_or_number")]
    pub country_calling_code: String,
    /// Digits of a national significant number, e.g. 10.
    #[serde(alias = "national-number-length")]
    pub national_number_length: usize,
    /// Whether numbers written with another country code are sent to.
    #[serde(default = "yes", alias = "other-countries")]
    pub other_countries: bool,
    #[serde(default = "default_language", alias = "default-language")]
    pub default_language: String,
    /// `templates.<template>.<language>` = text.
    pub templates: Templates,
    #[serde(default = "default_timeout", alias = "timeout-ms")]
    pub timeout_ms: u32,
}

fn default_api_key_header() -> String {
    "X-Api-Key".into()
}

fn default_language() -> String {
    "en".into()
}

fn default_timeout() -> u32 {
    3000
}

fn yes() -> bool {
    true
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
        // A key of digits only arrives as a number through the environment.
        match Value::deserialize(d)? {
            Value::String(s) if !s.is_empty() => Ok(Secret(s)),
            Value::Number(n) => Ok(Secret(n.to_string())),
            _ => Err(serde::de::Error::custom("must be a non-empty string")),
        }
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(serde::de::Error::custom("must be a string of digits")),
    }
}

/// Why a message was not sent. Every variant is permanent: retrying the same
/// message with the same configuration cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The message has no phone contact at all.
    NoPhone,
    /// No phone contact could be made an E.164 number; the first reason.
    BadNumber(NumberError),
    /// The country settings are unusable.
    Country(phone::CountryError),
    Template(template::TemplateError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoPhone => f.write_str("the message has no phone contact"),
            Refusal::BadNumber(e) => write!(f, "no phone contact is a valid number: {e}"),
            Refusal::Country(e) => write!(f, "invalid notify-sms configuration: {e}"),
            Refusal::Template(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        match r {
            Refusal::NoPhone | Refusal::BadNumber(_) => Error::invalid_input(r.to_string()),
            Refusal::Country(_) | Refusal::Template(_) => Error::internal(r.to_string()),
        }
    }
}

/// The JSON the gateway receives.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Sms<'a> {
    pub to: String,
    pub from: &'a str,
    pub text: String,
    /// The message id, for the gateway's delivery reports.
    pub reference: &'a str,
}

/// The message's language, when the host sends one.
fn language(m: &Message) -> Option<&str> {
    ["language", "lang"]
        .iter()
        .find_map(|k| m.variables.iter().find(|(name, _)| name.as_str() == *k))
        .map(|(_, v)| v.as_str())
}

/// The SMS for a message: recipient and text, or why there is none.
pub fn compose<'a>(cfg: &'a Config, m: &'a Message) -> Result<Sms<'a>, Refusal> {
    let phones: Vec<&str> = m
        .contacts
        .iter()
        .filter(|c| c.kind == ContactKind::Phone)
        .map(|c| c.value.as_str())
        .collect();
    if phones.is_empty() {
        return Err(Refusal::NoPhone);
    }
    let country = Country::new(&cfg.country_calling_code, cfg.national_number_length)
        .map_err(Refusal::Country)?;
    let (lang, text) = template::select(
        &cfg.templates,
        &m.template,
        language(m),
        &cfg.default_language,
    )
    .map_err(Refusal::Template)?;
    let text = template::render(&m.template, lang, text, |name| {
        m.variables
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .or_else(|| (name == "recipient-name").then_some(m.recipient_name.as_str()))
    })
    .map_err(Refusal::Template)?;
    let mut first_error = None;
    for raw in phones {
        match country.normalize(raw, cfg.other_countries) {
            Ok(to) => {
                return Ok(Sms {
                    to,
                    from: &cfg.sender,
                    text,
                    reference: &m.id,
                })
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(Refusal::BadNumber(
        first_error.unwrap_or(NumberError::Empty),
    ))
}

/// How an HTTP status ends a delivery attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retry,
    GiveUp,
}

/// 2xx delivered; 408 (timeout), 429 (rate limit, RFC 6585 §4) and 5xx
/// retried; the rest refused for good.
pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry,
        _ => Outcome::GiveUp,
    }
}

/// The gateway's id for the message: `id` of its JSON answer (a string or a
/// number), else the status.
pub fn reference(resp: &Response) -> String {
    let id = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|v| match v.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        });
    id.unwrap_or_else(|| format!("http-{}", resp.status))
}

fn deliver(cfg: &Config, m: &Message) -> Result<DeliveryReceipt, DeliveryFailure> {
    let sms = compose(cfg, m).map_err(|r| DeliveryFailure::Permanent(r.into()))?;
    let req = Request::new(Method::Post, cfg.url.clone())
        .header("Idempotency-Key", m.id.clone())
        .header(cfg.api_key_header.clone(), cfg.api_key.expose().to_owned())
        .header("Accept", "application/json")
        .timeout_ms(cfg.timeout_ms)
        .json(&sms)
        .map_err(DeliveryFailure::Permanent)?;
    let resp = match req.send() {
        Ok(r) => r,
        Err(e @ Error::Unavailable(_)) => return Err(DeliveryFailure::Retryable(e)),
        Err(e) => return Err(DeliveryFailure::Permanent(e)),
    };
    // The status only: a gateway's error body may echo the number or text.
    let reason = || format!("SMS gateway answered HTTP {}", resp.status);
    match classify(resp.status) {
        Outcome::Delivered => Ok(DeliveryReceipt {
            channel_reference: reference(&resp),
            delivered_to: sms.to,
        }),
        Outcome::Retry => Err(DeliveryFailure::Retryable(Error::unavailable(reason()))),
        Outcome::GiveUp => Err(DeliveryFailure::Permanent(Error::rejected(reason()))),
    }
}

struct Plugin;

impl Guest for Plugin {
    fn info() -> ChannelInfo {
        ChannelInfo {
            id: "sms".into(),
            contact_kinds: vec![ContactKind::Phone],
        }
    }

    fn deliver(message: Message) -> Result<DeliveryReceipt, DeliveryFailure> {
        // A message without a phone contact fails the same with any
        // configuration; say so before looking at it.
        if !message
            .contacts
            .iter()
            .any(|c| c.kind == ContactKind::Phone)
        {
            return Err(DeliveryFailure::Permanent(Refusal::NoPhone.into()));
        }
        let cfg: Config = config::load().map_err(DeliveryFailure::Permanent)?;
        deliver(&cfg, &message)
    }
}

divoc_sdk::export_distribution_channel!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use divoc_sdk::Contact;

    const CONFIG: &str = r#"{
        "url": "https://sms-gateway.example.org/v1/messages",
        "api_key": "k-123",
        "sender": "DIVOC",
        "country_calling_code": "91",
        "national_number_length": 10,
        "default_language": "en",
        "templates": {
            "otp": {
                "en": "{code} is your sign-in code. It expires in {minutes} minutes.",
                "hi": "{code} आपका साइन-इन कोड है। यह {minutes} मिनट में समाप्त हो जाएगा।"
            },
            "certificate-issued": {
                "en": "Dear {recipient-name}, your dose {dose} certificate: {certificate-url}"
            }
        }
    }"#;

    fn cfg() -> Config {
        config::parse(CONFIG).unwrap()
    }

    fn message(template: &str, phones: &[&str], vars: &[(&str, &str)]) -> Message {
        Message {
            id: "divoc-outbox-7".into(),
            template: template.into(),
            recipient_name: "Asha".into(),
            contacts: phones
                .iter()
                .map(|p| Contact {
                    kind: ContactKind::Phone,
                    value: (*p).into(),
                })
                .collect(),
            certificate_ids: Vec::new(),
            attachments: Vec::new(),
            variables: vars
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn composes_the_sms_in_the_messages_language() {
        let cfg = cfg();
        let m = message(
            "otp",
            &["98765 43210"],
            &[("code", "482913"), ("minutes", "5"), ("lang", "hi")],
        );
        let sms = compose(&cfg, &m).unwrap();
        assert_eq!(
            sms,
            Sms {
                to: "+919876543210".into(),
                from: "DIVOC",
                text: "482913 आपका साइन-इन कोड है। यह 5 मिनट में समाप्त हो जाएगा।".into(),
                reference: "divoc-outbox-7",
            }
        );
        let json = serde_json::to_value(&sms).unwrap();
        assert_eq!(json["to"], "+919876543210");
        assert_eq!(json["reference"], "divoc-outbox-7");

        // No language variable: the default.
        let m = message(
            "otp",
            &["+91 98765 43210"],
            &[("code", "1"), ("minutes", "5")],
        );
        assert_eq!(
            compose(&cfg, &m).unwrap().text,
            "1 is your sign-in code. It expires in 5 minutes."
        );
        // `language` wins over `lang`; an unknown language falls back.
        let m = message(
            "otp",
            &["9876543210"],
            &[
                ("code", "1"),
                ("minutes", "5"),
                ("language", "ta"),
                ("lang", "hi"),
            ],
        );
        assert!(compose(&cfg, &m).unwrap().text.starts_with("1 is your"));
    }

    #[test]
    fn the_recipient_name_is_a_variable() {
        let m = message(
            "certificate-issued",
            &["9876543210"],
            &[("dose", "2"), ("certificate-url", "https://x/c/1")],
        );
        assert_eq!(
            compose(&cfg(), &m).unwrap().text,
            "Dear Asha, your dose 2 certificate: https://x/c/1"
        );
    }

    #[test]
    fn the_first_number_that_normalizes_is_used() {
        let m = message(
            "otp",
            &["12345", "+91 (0)98765 43210"],
            &[("code", "1"), ("minutes", "5")],
        );
        assert_eq!(compose(&cfg(), &m).unwrap().to, "+919876543210");
    }

    #[test]
    fn refusals_are_typed_and_carry_no_number() {
        let cfg = cfg();
        let vars = [("code", "1"), ("minutes", "5")];
        assert_eq!(
            compose(&cfg, &message("otp", &[], &vars)),
            Err(Refusal::NoPhone)
        );
        let r = compose(&cfg, &message("otp", &["98765 4321"], &vars)).unwrap_err();
        assert_eq!(
            r,
            Refusal::BadNumber(NumberError::WrongLength {
                expected: 10,
                found: 9
            })
        );
        assert!(!r.to_string().contains("98765"), "{r}");
        assert!(matches!(Error::from(r), Error::InvalidInput(_)));

        let r = compose(&cfg, &message("dose-reminder", &["9876543210"], &vars)).unwrap_err();
        assert!(r.to_string().contains("`dose-reminder`"), "{r}");
        assert!(matches!(Error::from(r), Error::Internal(_)));
    }

    #[test]
    fn config_is_checked_and_hides_the_key() {
        let c = cfg();
        assert_eq!(c.api_key_header, "X-Api-Key");
        assert!(c.other_countries);
        assert_eq!(c.timeout_ms, 3000);
        assert!(!format!("{c:?}").contains("k-123"));
        // Kebab-case keys, as the environment gives them, and a numeric
        // code and key.
        let env: Config = config::parse(
            r#"{"url": "u", "api-key": 12345, "sender": "S", "country-calling-code": 44,
                "national-number-length": 10, "templates": {}}"#,
        )
        .unwrap();
        assert_eq!(env.api_key.expose(), "12345");
        assert_eq!(env.country_calling_code, "44");
        // A wrong key type is refused without echoing it.
        let e = config::parse::<Config>(
            r#"{"url": "u", "api_key": ["s3cret"], "sender": "S", "country_calling_code": "91",
                "national_number_length": 10, "templates": {}}"#,
        )
        .unwrap_err();
        assert!(!e.message().contains("s3cret"), "{e:?}");
        assert!(config::parse::<Config>(r#"{"url": "u"}"#).is_err());
        // A typo is an error, not a silently ignored setting.
        assert!(config::parse::<Config>(
            r#"{"url": "u", "api_key": "k", "sender": "S", "country_calling_code": "91",
                "national_number_length": 10, "templates": {}, "sendr": "x"}"#
        )
        .is_err());

        let mut bad = cfg();
        bad.country_calling_code = "091".into();
        let m = message("otp", &["9876543210"], &[("code", "1"), ("minutes", "5")]);
        assert!(matches!(compose(&bad, &m), Err(Refusal::Country(_))));
    }

    /// The configuration README.md documents (and the operator copies), with
    /// a key filled in: it parses, and every template the host sends renders
    /// in every language with the variables the host puts in it
    /// (host/certificates/src/distribution.rs, host/rollout/src/{otp,
    /// vaccination,activation}.rs, host/feedback/src/service.rs).
    #[test]
    fn the_readme_configuration_renders_every_host_template() {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").unwrap() + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let doc: toml::Table = readme[start..end].parse().unwrap();
        let mut section = doc["plugins"]["config"]["notify-sms"].clone();
        section
            .as_table_mut()
            .unwrap()
            .insert("api_key".into(), "k".into());
        let json = serde_json::to_string(&section).unwrap();
        let cfg: Config = config::parse(&json).unwrap();
        let host_sends: [(&str, &[&str]); 5] = [
            (
                "certificate-issued",
                &["certificate-url", "qr-url", "qr-text", "program", "dose"],
            ),
            ("otp", &["code", "minutes"]),
            (
                "dose-reminder",
                &[
                    "enrolment",
                    "programme",
                    "dose",
                    "earliest",
                    "latest",
                    "facility",
                ],
            ),
            (
                "aefi-serious",
                &[
                    "report",
                    "severity",
                    "programme",
                    "vaccine",
                    "batch",
                    "facility",
                    "district",
                    "dose",
                ],
            ),
            (
                "facility-programme-updated",
                &["facility", "programme", "status", "daily-rate"],
            ),
        ];
        for (template, names) in host_sends {
            let languages: Vec<String> = cfg.templates[template].keys().cloned().collect();
            for lang in languages {
                let mut vars: Vec<(&str, &str)> = names.iter().map(|n| (*n, "V")).collect();
                vars.push(("lang", &lang));
                let m = message(template, &["9876543210"], &vars);
                let sms = compose(&cfg, &m).unwrap_or_else(|e| panic!("{template}/{lang}: {e}"));
                assert!(sms.text.contains('V'), "{template}/{lang}: {}", sms.text);
                assert!(!sms.text.contains('{'), "{template}/{lang}: {}", sms.text);
            }
        }
    }

    #[test]
    fn classifies_statuses_and_reads_the_gateway_id() {
        assert_eq!(classify(200), Outcome::Delivered);
        assert_eq!(classify(202), Outcome::Delivered);
        assert_eq!(classify(408), Outcome::Retry);
        assert_eq!(classify(429), Outcome::Retry);
        assert_eq!(classify(503), Outcome::Retry);
        assert_eq!(classify(400), Outcome::GiveUp);
        assert_eq!(classify(401), Outcome::GiveUp);
        assert_eq!(classify(301), Outcome::GiveUp);
        let resp = |body: &str| Response {
            status: 201,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(reference(&resp(r#"{"id": "sms-9"}"#)), "sms-9");
        assert_eq!(reference(&resp(r#"{"id": 42}"#)), "42");
        assert_eq!(reference(&resp("")), "http-201");
        assert_eq!(reference(&resp(r#"{"id": ""}"#)), "http-201");
    }
}
