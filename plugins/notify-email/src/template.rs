//! Message texts: a subject, a plain text and an optional HTML alternative
//! per template name and language, with `{variable}` placeholders filled from
//! the message's variables.
//!
//! A placeholder is `{name}` with a name of ASCII letters, digits, `-` and
//! `_` (the host's variables are kebab-case: `certificate-url`,
//! `daily-rate`); `{{` and `}}` stand for literal braces. A placeholder the
//! message does not carry is an error rather than an e-mail with `{code}` in
//! it: the template and the host disagree, and the operator has to look.
//!
//! In the HTML alternative every value is escaped (`<`, `>`, `&`, `"`, `'`):
//! a recipient's name or a facility's name is data, not markup, and must not
//! be able to add a link or a script to the message.
//!
//! Errors name templates, languages, parts and placeholders (all from the
//! operator's configuration or the host's template names), never values.

use core::fmt;

/// Which part of the message a text is: errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Subject,
    Text,
    Html,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        })
    }
}

/// Why no text could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// Neither the configuration nor the built-in texts have this template.
    Unknown { template: String },
    /// The template has neither the message's language, nor the default,
    /// nor English.
    NoLanguage {
        template: String,
        language: String,
        default: String,
    },
    /// The text uses a variable the message does not carry.
    MissingVariable {
        template: String,
        part: Part,
        variable: String,
    },
    /// A `{` without its `}`, a lone `}`, or a bad placeholder name.
    Syntax {
        template: String,
        language: String,
        part: Part,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unknown { template } => write!(
                f,
                "no e-mail template `{template}`: add [plugins.config.notify-email.templates.{template}.<language>]"
            ),
            TemplateError::NoLanguage {
                template,
                language,
                default,
            } => write!(
                f,
                "e-mail template `{template}` has no text in `{language}`, in the default language `{default}` nor in `en`"
            ),
            TemplateError::MissingVariable {
                template,
                part,
                variable,
            } => write!(
                f,
                "e-mail template `{template}` ({part}) uses `{{{variable}}}`, which the message does not carry"
            ),
            TemplateError::Syntax {
                template,
                language,
                part,
            } => write!(
                f,
                "e-mail template `{template}` ({language}, {part}) has an unclosed `{{`, a lone `}}` or a bad placeholder name (write `{{{{` and `}}}}` for braces)"
            ),
        }
    }
}

/// How values are written into a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are (subject and plain text).
    None,
    /// HTML-escaped (the HTML alternative).
    Html,
}

/// Appends `value` to `out` escaped for HTML text and attribute values.
pub fn push_html(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Where a text comes from, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub template: &'a str,
    pub language: &'a str,
    pub part: Part,
}

/// `text` with each `{name}` replaced by `value(name)`, escaped as asked.
pub fn render<'v>(
    source: Source<'_>,
    text: &str,
    escape: Escape,
    value: impl Fn(&str) -> Option<&'v str>,
) -> Result<String, TemplateError> {
    let syntax = || TemplateError::Syntax {
        template: source.template.to_owned(),
        language: source.language.to_owned(),
        part: source.part,
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
                template: source.template.to_owned(),
                part: source.part,
                variable: name.to_owned(),
            })?;
            match escape {
                Escape::None => out.push_str(v),
                Escape::Html => push_html(&mut out, v),
            }
            rest = &after[end + 1..];
        } else {
            // A lone `}`.
            return Err(syntax());
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A subject line: control characters (line breaks from a multi-line value)
/// become spaces and runs of white space one space, so a value cannot end
/// the header early; at most [`MAX_SUBJECT`] characters.
pub fn one_line(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut space = false;
    for c in subject.chars() {
        if c.is_control() || c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        if out.chars().count() >= MAX_SUBJECT {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

/// Longest subject kept: RFC 5322 §2.1.1 asks for lines of at most 78
/// characters; a subject is folded by the relay's library, but one longer
/// than this is a template mistake or a runaway value.
pub const MAX_SUBJECT: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<&'static str> {
        match name {
            "code" => Some("482913"),
            "minutes" => Some("5"),
            "name" => Some("<b>Asha & \"Ravi\"</b>"),
            "certificate-url" => Some("https://x/c/1"),
            _ => None,
        }
    }

    fn src(part: Part) -> Source<'static> {
        Source {
            template: "otp",
            language: "en",
            part,
        }
    }

    #[test]
    fn renders_placeholders_and_literal_braces() {
        assert_eq!(
            render(
                src(Part::Text),
                "{code} ({minutes} min): {certificate-url}",
                Escape::None,
                vars
            )
            .unwrap(),
            "482913 (5 min): https://x/c/1"
        );
        assert_eq!(
            render(
                src(Part::Text),
                "{{code}} is {code}; {{}}",
                Escape::None,
                vars
            )
            .unwrap(),
            "{code} is 482913; {}"
        );
        assert_eq!(render(src(Part::Text), "", Escape::None, vars).unwrap(), "");
    }

    #[test]
    fn html_values_are_escaped_but_the_template_is_not() {
        assert_eq!(
            render(src(Part::Html), "<p>Dear {name}</p>", Escape::Html, vars).unwrap(),
            "<p>Dear &lt;b&gt;Asha &amp; &quot;Ravi&quot;&lt;/b&gt;</p>"
        );
        assert_eq!(
            render(src(Part::Text), "Dear {name}", Escape::None, vars).unwrap(),
            "Dear <b>Asha & \"Ravi\"</b>"
        );
    }

    #[test]
    fn a_missing_variable_or_bad_syntax_is_an_error_without_values() {
        assert_eq!(
            render(
                src(Part::Subject),
                "code {code}, at {facility}",
                Escape::None,
                vars
            ),
            Err(TemplateError::MissingVariable {
                template: "otp".into(),
                part: Part::Subject,
                variable: "facility".into()
            })
        );
        for bad in ["{code", "code}", "{}", "{co de}", "{code{minutes}}"] {
            let e = render(src(Part::Html), bad, Escape::Html, vars).unwrap_err();
            assert!(matches!(e, TemplateError::Syntax { .. }), "{bad:?}: {e:?}");
            assert!(!e.to_string().contains("482913"));
            assert!(e.to_string().contains("html"), "{e}");
        }
    }

    #[test]
    fn subjects_are_one_short_line() {
        assert_eq!(
            one_line("  Your code\r\nBcc: x@y \t now "),
            "Your code Bcc: x@y now"
        );
        assert_eq!(one_line("a\u{0}b"), "a b");
        let long = "x".repeat(500);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MAX_SUBJECT + 1);
        assert!(cut.ends_with('…'));
    }
}
