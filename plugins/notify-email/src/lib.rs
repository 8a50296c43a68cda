//! Distribution channel `email`: sends each message as an e-mail through the
//! host's SMTP relay (the `mail` capability, contract 1.2).
//!
//! For each message the plugin
//!
//! 1. takes the message's e-mail contacts (the host passes `mailto:`
//!    contacts without their scheme) and checks each address (see
//!    [`address`]); no e-mail contact, or none valid → permanent failure,
//!    before anything is sent;
//! 2. picks the subject, text and optional HTML of the message's template in
//!    its language (the `language` or `lang` variable when the host sends
//!    one, its primary subtag, `default_language`, then the built-in English
//!    of [`defaults`]) and fills their `{variable}` placeholders (see
//!    [`template`]; HTML values escaped); an unknown template → permanent
//!    failure naming it;
//! 3. hands the e-mail to the host with the message's attachments as they
//!    are (the certificate's QR code and PDF) and the message id as the
//!    idempotency key: the host derives the `Message-ID` from it, so a retry
//!    carries the same id and a receiver can drop the duplicate.
//!
//! The host answers: accepted → delivered, the `Message-ID` is the channel
//! reference; `unavailable` (relay unreachable, 4xx, no relay configured) →
//! retryable, the host retries with back-off; `invalid-input` and `rejected`
//! (5xx) → permanent.
//!
//! Nothing is logged (the manifest does not even ask for `log`): addresses,
//! names and sign-in codes stay out of the server log. Errors name
//! templates, languages and lengths; a relay's error text is passed on with
//! every address in it cut to its domain.
//!
//! Configuration: see README.md.

pub mod address;
pub mod defaults;
pub mod template;

use core::fmt;
use std::collections::BTreeMap;

use divoc_sdk::distribution::{ChannelInfo, DeliveryFailure, DeliveryReceipt, Guest, Message};
use divoc_sdk::mail::{Email, MailAttachment};
use divoc_sdk::{config, ContactKind, Error};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use address::AddressError;
use template::{Escape, Part, Source, TemplateError};

/// The plugin's configuration section; every key is optional. Names are
/// snake_case as in the README; the kebab-case alias is what the
/// environment gives (`DIVOC_PLUGINS__CONFIG__NOTIFY_EMAIL__DEFAULT_LANGUAGE`
/// becomes `default-language`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Used when the message has no language or its template lacks it.
    #[serde(default = "default_language", alias = "default-language")]
    pub default_language: String,
    /// `templates.<template>.<language>` = texts; each replaces the built-in
    /// texts of its template and language whole.
    #[serde(default)]
    pub templates: BTreeMap<String, BTreeMap<String, Texts>>,
}

fn default_language() -> String {
    defaults::LANGUAGE.into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_language: default_language(),
            templates: BTreeMap::new(),
        }
    }
}

/// One template's texts in one language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Texts {
    pub subject: String,
    pub text: String,
    /// An HTML alternative of the text; values are HTML-escaped in it.
    #[serde(default)]
    pub html: Option<String>,
}

/// The texts chosen for a message, from the configuration or the built-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen<'a> {
    pub language: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
}

/// The texts of `template` in `language` (exactly, then its primary subtag,
/// `hi-IN` → `hi`, per BCP 47 / RFC 5646 §2.1), else in the default
/// language, else in the built-in English. Languages compare
/// case-insensitively (RFC 5646 §2.1.1); the configuration wins over the
/// built-in texts of the same language.
pub fn select<'a>(
    cfg: &'a Config,
    template: &str,
    language: Option<&str>,
) -> Result<Chosen<'a>, TemplateError> {
    let configured = cfg.templates.get(template);
    let builtin = defaults::builtin(template);
    if configured.is_none() && builtin.is_none() {
        return Err(TemplateError::Unknown {
            template: template.to_owned(),
        });
    }
    let find = |wanted: &str| -> Option<Chosen<'a>> {
        let own = configured.and_then(|texts| {
            texts
                .iter()
                .find(|(lang, _)| lang.eq_ignore_ascii_case(wanted))
        });
        if let Some((lang, t)) = own {
            return Some(Chosen {
                language: lang,
                subject: &t.subject,
                text: &t.text,
                html: t.html.as_deref(),
            });
        }
        builtin
            .filter(|_| wanted.eq_ignore_ascii_case(defaults::LANGUAGE))
            .map(|b| Chosen {
                language: defaults::LANGUAGE,
                subject: b.subject,
                text: b.text,
                html: b.html,
            })
    };
    let wanted = language.map(str::trim).filter(|l| !l.is_empty());
    wanted
        .and_then(|l| find(l).or_else(|| l.split_once('-').and_then(|(primary, _)| find(primary))))
        .or_else(|| find(&cfg.default_language))
        .or_else(|| find(defaults::LANGUAGE))
        .ok_or_else(|| TemplateError::NoLanguage {
            template: template.to_owned(),
            language: wanted.unwrap_or(&cfg.default_language).to_owned(),
            default: cfg.default_language.clone(),
        })
}

/// Why a message was not sent. Every variant is permanent: retrying the same
/// message with the same configuration cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The message has no e-mail contact at all.
    NoEmail,
    /// No e-mail contact is a valid address; the first reason.
    BadAddress(AddressError),
    /// The message has no id to derive the `Message-ID` from.
    NoId,
    Template(TemplateError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoEmail => f.write_str("the message has no e-mail contact"),
            Refusal::BadAddress(e) => write!(f, "no e-mail contact is a valid address: {e}"),
            Refusal::NoId => f.write_str("the message has no id (the e-mail's idempotency key)"),
            Refusal::Template(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        match r {
            Refusal::NoEmail | Refusal::BadAddress(_) | Refusal::NoId => {
                Error::invalid_input(r.to_string())
            }
            // The operator's templates and the host disagree.
            Refusal::Template(_) => Error::internal(r.to_string()),
        }
    }
}

/// At most this many recipients per e-mail, as the contract says.
pub const MAX_RECIPIENTS: usize = 50;

/// Longest idempotency key the host takes.
pub const MAX_KEY: usize = 200;

/// Media type of an attachment that came without one.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The addresses the message goes to: every valid address of its e-mail
/// contacts, duplicates (compared case-insensitively) once, at most
/// [`MAX_RECIPIENTS`]. Contacts of other kinds are ignored.
pub fn recipients(m: &Message) -> Result<Vec<String>, Refusal> {
    let mut any = false;
    let mut first_error = None;
    let mut out: Vec<String> = Vec::new();
    for contact in m.contacts.iter().filter(|c| c.kind == ContactKind::Email) {
        any = true;
        for found in address::from_contact(&contact.value) {
            match found {
                Ok(a) => {
                    if out.len() < MAX_RECIPIENTS && !out.iter().any(|o| o.eq_ignore_ascii_case(&a))
                    {
                        out.push(a);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if !any {
        return Err(Refusal::NoEmail);
    }
    if out.is_empty() {
        return Err(Refusal::BadAddress(
            first_error.unwrap_or(AddressError::Empty),
        ));
    }
    Ok(out)
}

/// The idempotency key for a message id: the id itself, or, when it is
/// longer than the host takes, `sha256-` and its digest (still the same on
/// every retry).
pub fn idempotency_key(id: &str) -> Result<String, Refusal> {
    let id = id.trim();
    if id.is_empty() {
        return Err(Refusal::NoId);
    }
    if id.len() <= MAX_KEY {
        return Ok(id.to_owned());
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256-{hex}"))
}

/// The message's language, when the host sends one.
fn language(m: &Message) -> Option<&str> {
    ["language", "lang"]
        .iter()
        .find_map(|k| m.variables.iter().find(|(name, _)| name.as_str() == *k))
        .map(|(_, v)| v.as_str())
}

/// The e-mail for a message, or why there is none. Takes the message so
/// that its attachments (a PDF) move into the e-mail instead of being
/// copied.
pub fn compose(cfg: &Config, m: Message) -> Result<Email, Refusal> {
    let to = recipients(&m)?;
    let idempotency_key = idempotency_key(&m.id)?;
    let chosen = select(cfg, &m.template, language(&m)).map_err(Refusal::Template)?;
    let value = |name: &str| {
        m.variables
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .or_else(|| (name == "recipient-name").then_some(m.recipient_name.as_str()))
    };
    let source = |part| Source {
        template: &m.template,
        language: chosen.language,
        part,
    };
    let subject = template::render(source(Part::Subject), chosen.subject, Escape::None, value)
        .map_err(Refusal::Template)?;
    let text = template::render(source(Part::Text), chosen.text, Escape::None, value)
        .map_err(Refusal::Template)?;
    let html = chosen
        .html
        .map(|h| template::render(source(Part::Html), h, Escape::Html, value))
        .transpose()
        .map_err(Refusal::Template)?;
    let attachments = m
        .attachments
        .into_iter()
        .map(|a| MailAttachment {
            name: a.name,
            media_type: if a.media_type.trim().is_empty() {
                OCTET_STREAM.to_owned()
            } else {
                a.media_type
            },
            data: a.data,
        })
        .collect();
    Ok(Email {
        to,
        subject: template::one_line(&subject),
        text,
        html,
        attachments,
        idempotency_key,
    })
}

/// Longest error text passed on: the host keeps 500 characters per outbox
/// row.
const MAX_ERROR: usize = 300;

fn cut(text: String) -> String {
    match text.char_indices().nth(MAX_ERROR) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// How the host's answer to a send ends the delivery: `unavailable` is
/// retried, everything else is final. The relay's text is kept (it says
/// why) with its addresses cut to their domains.
pub fn failure(e: Error) -> DeliveryFailure {
    let say = |what: &str, m: &str| cut(format!("{what}: {}", address::redact(m)));
    match e {
        Error::Unavailable(m) => {
            DeliveryFailure::Retryable(Error::Unavailable(say("mail relay unavailable", &m)))
        }
        Error::InvalidInput(m) => {
            DeliveryFailure::Permanent(Error::InvalidInput(say("the e-mail is malformed", &m)))
        }
        Error::Rejected(m) => DeliveryFailure::Permanent(Error::Rejected(say(
            "the mail relay refused the e-mail",
            &m,
        ))),
        Error::Internal(m) => {
            DeliveryFailure::Permanent(Error::Internal(say("the e-mail was not sent", &m)))
        }
    }
}

fn deliver(cfg: &Config, message: Message) -> Result<DeliveryReceipt, DeliveryFailure> {
    let email = compose(cfg, message).map_err(|r| DeliveryFailure::Permanent(r.into()))?;
    match divoc_sdk::mail::send(&email) {
        Ok(message_id) => Ok(DeliveryReceipt {
            channel_reference: message_id,
            // The host masks it before showing it.
            delivered_to: email.to.into_iter().next().unwrap_or_default(),
        }),
        Err(e) => Err(failure(e)),
    }
}

struct Plugin;

impl Guest for Plugin {
    fn info() -> ChannelInfo {
        ChannelInfo {
            id: "email".into(),
            contact_kinds: vec![ContactKind::Email],
        }
    }

    fn deliver(message: Message) -> Result<DeliveryReceipt, DeliveryFailure> {
        // A message without an e-mail contact fails the same with any
        // configuration; say so before looking at it.
        if !message
            .contacts
            .iter()
            .any(|c| c.kind == ContactKind::Email)
        {
            return Err(DeliveryFailure::Permanent(Refusal::NoEmail.into()));
        }
        let cfg: Config = config::load().map_err(DeliveryFailure::Permanent)?;
        deliver(&cfg, message)
    }
}

divoc_sdk::export_distribution_channel!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use divoc_sdk::distribution::Attachment;
    use divoc_sdk::Contact;

    const CONFIG: &str = r#"{
        "default_language": "en",
        "templates": {
            "otp": {
                "hi": {
                    "subject": "आपका DIVOC साइन-इन कोड",
                    "text": "{code} आपका साइन-इन कोड है। यह {minutes} मिनट में समाप्त हो जाएगा।"
                }
            },
            "certificate-issued": {
                "EN": {
                    "subject": "Certificate for {recipient-name}",
                    "text": "See {certificate-url}"
                }
            },
            "welcome": {
                "fr": { "subject": "Bienvenue", "text": "Bonjour {recipient-name}" }
            }
        }
    }"#;

    fn cfg() -> Config {
        config::parse(CONFIG).unwrap()
    }

    fn email(value: &str) -> Contact {
        Contact {
            kind: ContactKind::Email,
            value: value.into(),
        }
    }

    fn message(template: &str, contacts: Vec<Contact>, vars: &[(&str, &str)]) -> Message {
        Message {
            id: "divoc-outbox-7".into(),
            template: template.into(),
            recipient_name: "Asha <Rao>".into(),
            contacts,
            certificate_ids: vec!["cert-1".into()],
            attachments: Vec::new(),
            variables: vars
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn certificate_vars() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "certificate-url",
                "https://divoc.example/v1/certificates/c-1",
            ),
            ("qr-url", "https://divoc.example/v1/certificates/c-1/qr.png"),
            ("qr-text", "{\"name\": \"Asha\"}"),
            ("program", "covid-19"),
            ("dose", "2"),
        ]
    }

    #[test]
    fn composes_the_certificate_email_from_the_builtin_texts() {
        let mut m = message(
            "certificate-issued",
            vec![
                Contact {
                    kind: ContactKind::Phone,
                    value: "+919876543210".into(),
                },
                email("asha@example.org"),
                email("mailto:ASHA@example.org"),
                email("ravi@example.org"),
            ],
            &certificate_vars(),
        );
        m.attachments = vec![
            Attachment {
                name: "certificate-qr.png".into(),
                media_type: "image/png".into(),
                data: b"\x89PNG".to_vec(),
            },
            Attachment {
                name: "certificate.pdf".into(),
                media_type: "application/pdf".into(),
                data: b"%PDF-1.7".to_vec(),
            },
            Attachment {
                name: "notes".into(),
                media_type: " ".into(),
                data: Vec::new(),
            },
        ];
        let e = compose(&Config::default(), m).unwrap();
        assert_eq!(e.to, ["asha@example.org", "ravi@example.org"]);
        assert_eq!(e.subject, "Your covid-19 vaccination certificate (dose 2)");
        assert!(e.text.starts_with("Dear Asha <Rao>,\n"), "{}", e.text);
        assert!(
            e.text
                .contains("View or download it: https://divoc.example/v1/certificates/c-1\n"),
            "{}",
            e.text
        );
        let html = e.html.unwrap();
        assert!(html.contains("<p>Dear Asha &lt;Rao&gt;,</p>"), "{html}");
        assert!(
            html.contains("<a href=\"https://divoc.example/v1/certificates/c-1\">"),
            "{html}"
        );
        assert_eq!(e.idempotency_key, "divoc-outbox-7");
        let files: Vec<(&str, &str, usize)> = e
            .attachments
            .iter()
            .map(|a| (a.name.as_str(), a.media_type.as_str(), a.data.len()))
            .collect();
        assert_eq!(
            files,
            [
                ("certificate-qr.png", "image/png", 4),
                ("certificate.pdf", "application/pdf", 8),
                ("notes", OCTET_STREAM, 0)
            ]
        );
    }

    #[test]
    fn every_host_template_has_builtin_english_that_renders() {
        for (template, names) in host_sends() {
            let mut vars: Vec<(&str, &str)> = names.iter().map(|n| (*n, "Zq9")).collect();
            vars.push(("lang", "ta"));
            let m = message(template, vec![email("a@example.org")], &vars);
            let e =
                compose(&Config::default(), m).unwrap_or_else(|err| panic!("{template}: {err}"));
            // The sign-in code stays out of the subject (lock screens show
            // subjects); every other subject says what the message is about.
            assert_eq!(
                template != "otp",
                e.subject.contains("Zq9"),
                "{template}: {}",
                e.subject
            );
            assert!(e.text.contains("Zq9"), "{template}: {}", e.text);
            assert!(
                !e.text.contains('{') && !e.subject.contains('{'),
                "{template}"
            );
        }
        assert_eq!(defaults::BUILTIN.len(), host_sends().len());
    }

    #[test]
    fn the_code_is_not_in_the_otp_subject() {
        let m = message(
            "otp",
            vec![email("a@example.org")],
            &[("code", "482913"), ("minutes", "5")],
        );
        let e = compose(&Config::default(), m).unwrap();
        assert!(!e.subject.contains("482913"), "{}", e.subject);
        assert!(
            e.text.starts_with("482913 is your DIVOC sign-in code."),
            "{}",
            e.text
        );
        assert_eq!(e.html, None);
    }

    #[test]
    fn languages_fall_back_to_the_default_then_builtin_english() {
        let cfg = cfg();
        let otp = |lang: &str| {
            let m = message(
                "otp",
                vec![email("a@example.org")],
                &[("code", "1"), ("minutes", "5"), ("lang", lang)],
            );
            compose(&cfg, m).unwrap()
        };
        assert!(otp("hi").text.starts_with("1 आपका"));
        assert!(otp("HI-in").text.starts_with("1 आपका"));
        assert!(otp("ta").text.starts_with("1 is your DIVOC"));
        assert!(otp(" ").text.starts_with("1 is your DIVOC"));

        // A configured language replaces the built-in one whole (no HTML
        // here), matched case-insensitively.
        let m = message(
            "certificate-issued",
            vec![email("a@example.org")],
            &certificate_vars(),
        );
        let e = compose(&cfg, m).unwrap();
        assert_eq!(e.subject, "Certificate for Asha <Rao>");
        assert_eq!(e.html, None);

        // A default language the template lacks: English still.
        let hindi_first = Config {
            default_language: "hi".into(),
            ..cfg.clone()
        };
        let m = message(
            "dose-reminder",
            vec![email("a@example.org")],
            &[
                ("enrolment", "E-1"),
                ("programme", "C19"),
                ("dose", "2"),
                ("earliest", "2026-01-02"),
                ("latest", ""),
                ("facility", "PHC Rampur"),
            ],
        );
        assert_eq!(
            compose(&hindi_first, m).unwrap().subject,
            "Dose 2 of C19 is due from 2026-01-02"
        );
        // A template only configured in French, asked in English.
        let m = message("welcome", vec![email("a@example.org")], &[]);
        assert_eq!(
            compose(&cfg, m).err(),
            Some(Refusal::Template(TemplateError::NoLanguage {
                template: "welcome".into(),
                language: "en".into(),
                default: "en".into()
            }))
        );
        let m = message(
            "welcome",
            vec![email("a@example.org")],
            &[("language", "fr-CA")],
        );
        assert_eq!(compose(&cfg, m).unwrap().text, "Bonjour Asha <Rao>");
    }

    #[test]
    fn refusals_are_typed_and_carry_no_address() {
        let cfg = Config::default();
        let vars = [("code", "1"), ("minutes", "5")];
        let phone_only = vec![Contact {
            kind: ContactKind::Phone,
            value: "+919876543210".into(),
        }];
        assert_eq!(
            compose(&cfg, message("otp", phone_only, &vars)).err(),
            Some(Refusal::NoEmail)
        );
        assert_eq!(
            compose(&cfg, message("otp", Vec::new(), &vars)).err(),
            Some(Refusal::NoEmail)
        );
        let r = compose(
            &cfg,
            message("otp", vec![email("asha.example.org"), email("b@@x")], &vars),
        )
        .unwrap_err();
        assert_eq!(r, Refusal::BadAddress(AddressError::NotOneAt));
        assert!(!r.to_string().contains("asha"), "{r}");
        assert!(matches!(Error::from(r), Error::InvalidInput(_)));

        // One bad address among good ones is skipped.
        let e = compose(
            &cfg,
            message("otp", vec![email("nope"), email("a@example.org")], &vars),
        )
        .unwrap();
        assert_eq!(e.to, ["a@example.org"]);

        let r = compose(
            &cfg,
            message("no-such", vec![email("a@example.org")], &vars),
        )
        .unwrap_err();
        assert!(r.to_string().contains("`no-such`"), "{r}");
        assert!(matches!(Error::from(r), Error::Internal(_)));

        let r = compose(
            &cfg,
            message("otp", vec![email("a@example.org")], &[("code", "1")]),
        )
        .unwrap_err();
        assert!(r.to_string().contains("`{minutes}`"), "{r}");
        assert!(!r.to_string().contains("a@example.org"), "{r}");
    }

    #[test]
    fn the_idempotency_key_is_the_message_id_within_the_hosts_bound() {
        assert_eq!(
            idempotency_key(" divoc-outbox-9 ").unwrap(),
            "divoc-outbox-9"
        );
        assert_eq!(idempotency_key(""), Err(Refusal::NoId));
        let long = "i".repeat(5000);
        let key = idempotency_key(&long).unwrap();
        assert!(key.starts_with("sha256-") && key.len() == 71, "{key}");
        assert_eq!(key, idempotency_key(&long).unwrap());
        assert_ne!(key, idempotency_key(&"i".repeat(5001)).unwrap());
    }

    #[test]
    fn recipients_are_bounded_and_deduplicated() {
        let many: Vec<Contact> = (0..80)
            .map(|i| email(&format!("p{i}@example.org")))
            .collect();
        let m = message("otp", many, &[]);
        assert_eq!(recipients(&m).unwrap().len(), MAX_RECIPIENTS);
        let m = message("otp", vec![email("a@example.org,A@EXAMPLE.ORG")], &[]);
        assert_eq!(recipients(&m).unwrap(), ["a@example.org"]);
    }

    #[test]
    fn a_multi_line_value_cannot_add_headers_through_the_subject() {
        let m = message(
            "facility-programme-updated",
            vec![email("a@example.org")],
            &[
                ("facility", "FAC-1\r\nBcc: everyone@example.org"),
                ("programme", "C19"),
                ("status", "active"),
                ("daily-rate", ""),
            ],
        );
        let e = compose(&Config::default(), m).unwrap();
        assert_eq!(
            e.subject,
            "FAC-1 Bcc: everyone@example.org: programme C19 is now active"
        );
        assert!(!e.subject.contains('\n'));
    }

    #[test]
    fn host_errors_map_to_retryable_or_permanent_without_addresses() {
        let f = failure(Error::unavailable("Connection refused (os error 111)"));
        assert!(
            matches!(&f, DeliveryFailure::Retryable(Error::Unavailable(m)) if m.contains("Connection refused")),
            "{f:?}"
        );
        let f = failure(Error::rejected(
            "permanent error (550): 5.1.1 <asha@example.org>: Recipient address rejected",
        ));
        match &f {
            DeliveryFailure::Permanent(Error::Rejected(m)) => {
                assert!(!m.contains("asha"), "{m}");
                assert!(m.contains("<…@example.org>"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            failure(Error::invalid_input("to[0]: invalid address")),
            DeliveryFailure::Permanent(Error::InvalidInput(_))
        ));
        assert!(matches!(
            failure(Error::internal("x")),
            DeliveryFailure::Permanent(Error::Internal(_))
        ));
        match failure(Error::unavailable("x".repeat(2000))) {
            DeliveryFailure::Retryable(e) => assert!(e.message().chars().count() <= MAX_ERROR + 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_is_checked() {
        let c: Config = config::parse("{}").unwrap();
        assert_eq!(c, Config::default());
        let c: Config = config::parse(r#"{"default-language": "hi"}"#).unwrap();
        assert_eq!(c.default_language, "hi");
        // Typos fail loudly instead of being ignored.
        assert!(config::parse::<Config>(r#"{"default_langauge": "hi"}"#).is_err());
        assert!(config::parse::<Config>(
            r#"{"templates": {"otp": {"en": {"subject": "s", "txt": "t"}}}}"#
        )
        .is_err());
        assert!(
            config::parse::<Config>(r#"{"templates": {"otp": {"en": {"subject": "s"}}}}"#).is_err()
        );
    }

    /// What the host sends, per template (host/certificates/src/distribution.rs,
    /// host/rollout/src/{otp,vaccination,activation}.rs,
    /// host/feedback/src/service.rs).
    fn host_sends() -> [(&'static str, &'static [&'static str]); 5] {
        [
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
        ]
    }

    /// The configuration README.md documents (and the operator copies): it
    /// parses, and every template the host sends renders in every language
    /// it configures, subject, text and HTML.
    #[test]
    fn the_readme_configuration_renders_every_host_template() {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").unwrap() + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let doc: toml::Table = readme[start..end].parse().unwrap();
        assert_eq!(
            doc["plugins"]["grants"]["notify-email"]["mail-sender"].as_str(),
            Some("certificates@health.example")
        );
        assert!(doc["mail"]["smtp-url"]
            .as_str()
            .unwrap()
            .starts_with("smtp"));
        let section = doc["plugins"]["config"]["notify-email"].clone();
        let json = serde_json::to_string(&section).unwrap();
        let cfg: Config = config::parse(&json).unwrap();
        assert!(!cfg.templates.is_empty());
        for (template, names) in host_sends() {
            let mut languages: Vec<String> = cfg
                .templates
                .get(template)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default();
            languages.push("en".into());
            for lang in languages {
                let mut vars: Vec<(&str, &str)> = names.iter().map(|n| (*n, "V")).collect();
                vars.push(("lang", &lang));
                let m = message(template, vec![email("a@example.org")], &vars);
                let e = compose(&cfg, m).unwrap_or_else(|err| panic!("{template}/{lang}: {err}"));
                for part in [&e.subject, &e.text].into_iter().chain(e.html.as_ref()) {
                    assert!(!part.contains('{'), "{template}/{lang}: {part}");
                }
                assert!(e.text.contains('V'), "{template}/{lang}: {}", e.text);
            }
        }
    }
}
