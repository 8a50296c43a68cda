//! Message texts: one per template name and language, with `{variable}`
//! placeholders filled from the message's variables.
//!
//! A placeholder is `{name}` with a name of ASCII letters, digits, `-` and
//! `_` (the host's variables are kebab-case: `certificate-url`,
//! `daily-rate`); `{{` and `}}` stand for literal braces. A placeholder the
//! message does not carry is an error rather than an SMS with `{code}` in it:
//! the template and the host disagree, and the operator has to look.
//!
//! Errors name templates, languages and placeholders (all from the
//! operator's configuration), never variable values.

use std::collections::BTreeMap;

use core::fmt;

/// `templates.<name>.<language>` from the configuration.
pub type Templates = BTreeMap<String, BTreeMap<String, String>>;

/// Why no text could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The configuration has no texts for this template.
    Unknown { template: String },
    /// The template has neither the message's language nor the default.
    NoLanguage {
        template: String,
        language: String,
        default: String,
    },
    /// The text uses a variable the message does not carry.
    MissingVariable { template: String, variable: String },
    /// A `{` without its `}`, a lone `}`, or a bad placeholder name.
    Syntax { template: String, language: String },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unknown { template } => write!(
                f,
                "no SMS template `{template}`: add [plugins.config.notify-sms.templates.{template}]"
            ),
            TemplateError::NoLanguage {
                template,
                language,
                default,
            } => write!(
                f,
                "SMS template `{template}` has no text in `{language}` nor in the default language `{default}`"
            ),
            TemplateError::MissingVariable { template, variable } => write!(
                f,
                "SMS template `{template}` uses `{{{variable}}}`, which the message does not carry"
            ),
            TemplateError::Syntax { template, language } => write!(
                f,
                "SMS template `{template}` ({language}) has an unclosed `{{`, a lone `}}` or a bad placeholder name (write `{{{{` and `}}}}` for braces)"
            ),
        }
    }
}

/// The language and text to use: the message's language (exactly, then its
/// primary subtag, `hi-IN` → `hi`, per BCP 47 / RFC 5646 §2.1), else the
/// default. Languages compare case-insensitively (RFC 5646 §2.1.1).
pub fn select<'a>(
    templates: &'a Templates,
    template: &str,
    language: Option<&str>,
    default: &str,
) -> Result<(&'a str, &'a str), TemplateError> {
    let texts = templates
        .get(template)
        .ok_or_else(|| TemplateError::Unknown {
            template: template.to_owned(),
        })?;
    let find = |wanted: &str| {
        texts
            .iter()
            .find(|(lang, _)| lang.eq_ignore_ascii_case(wanted))
            .map(|(lang, text)| (lang.as_str(), text.as_str()))
    };
    let wanted = language.map(str::trim).filter(|l| !l.is_empty());
    wanted
        .and_then(|l| find(l).or_else(|| l.split_once('-').and_then(|(primary, _)| find(primary))))
        .or_else(|| find(default))
        .ok_or_else(|| TemplateError::NoLanguage {
            template: template.to_owned(),
            language: wanted.unwrap_or(default).to_owned(),
            default: default.to_owned(),
        })
}

/// `text` with each `{name}` replaced by `value(name)`.
pub fn render<'v>(
    template: &str,
    language: &str,
    text: &str,
    value: impl Fn(&str) -> Option<&'v str>,
) -> Result<String, TemplateError> {
    let syntax = || TemplateError::Syntax {
        template: template.to_owned(),
        language: language.to_owned(),
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{') {
            let end = after.find('}').ok_or_else(syntax)?;
            let name = &after[..end];
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(syntax());
            }
            let v = value(name).ok_or_else(|| TemplateError::MissingVariable {
                template: template.to_owned(),
                variable: name.to_owned(),
            })?;
            out.push_str(v);
            rest = &after[end + 1..];
        } else {
            // A lone `}`.
            return Err(syntax());
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        let mut t = Templates::new();
        t.insert(
            "otp".into(),
            [
                ("en".to_owned(), "Your code is {code}".to_owned()),
                ("hi".to_owned(), "आपका कोड {code} है".to_owned()),
            ]
            .into_iter()
            .collect(),
        );
        t
    }

    fn vars(name: &str) -> Option<&'static str> {
        match name {
            "code" => Some("482913"),
            "minutes" => Some("5"),
            "certificate-url" => Some("https://x/c/1"),
            _ => None,
        }
    }

    #[test]
    fn selects_the_language_then_its_primary_subtag_then_the_default() {
        let t = templates();
        assert_eq!(select(&t, "otp", Some("hi"), "en").unwrap().0, "hi");
        assert_eq!(select(&t, "otp", Some("HI-in"), "en").unwrap().0, "hi");
        assert_eq!(select(&t, "otp", Some("ta"), "en").unwrap().0, "en");
        assert_eq!(select(&t, "otp", None, "en").unwrap().0, "en");
        assert_eq!(select(&t, "otp", Some(" "), "hi").unwrap().0, "hi");
        assert_eq!(
            select(&t, "otp", Some("ta"), "mr"),
            Err(TemplateError::NoLanguage {
                template: "otp".into(),
                language: "ta".into(),
                default: "mr".into()
            })
        );
    }

    #[test]
    fn an_unknown_template_is_named() {
        let e = select(&templates(), "dose-reminder", None, "en").unwrap_err();
        assert_eq!(
            e,
            TemplateError::Unknown {
                template: "dose-reminder".into()
            }
        );
        assert!(e.to_string().contains("`dose-reminder`"), "{e}");
    }

    #[test]
    fn renders_placeholders_in_any_script() {
        let t = templates();
        let (lang, text) = select(&t, "otp", Some("hi"), "en").unwrap();
        assert_eq!(
            render("otp", lang, text, vars).unwrap(),
            "आपका कोड 482913 है"
        );
        assert_eq!(
            render("x", "en", "{code} ({minutes} min): {certificate-url}", vars).unwrap(),
            "482913 (5 min): https://x/c/1"
        );
        assert_eq!(
            render("x", "en", "no placeholders", vars).unwrap(),
            "no placeholders"
        );
        assert_eq!(render("x", "en", "", vars).unwrap(), "");
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(
            render("x", "en", "{{code}} is {code}; {{}}", vars).unwrap(),
            "{code} is 482913; {}"
        );
    }

    #[test]
    fn a_missing_variable_or_bad_syntax_is_an_error_without_values() {
        assert_eq!(
            render("otp", "en", "code {code}, at {facility}", vars),
            Err(TemplateError::MissingVariable {
                template: "otp".into(),
                variable: "facility".into()
            })
        );
        for bad in ["{code", "code}", "{}", "{co de}", "{code{minutes}}"] {
            let e = render("otp", "en", bad, vars).unwrap_err();
            assert!(matches!(e, TemplateError::Syntax { .. }), "{bad:?}: {e:?}");
            assert!(!e.to_string().contains("482913"));
        }
    }
}
