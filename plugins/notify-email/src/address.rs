//! E-mail contacts to addresses the relay accepts.
//!
//! The host passes a `mailto:` contact with its scheme removed
//! (`mailto:asha@example.org` → `asha@example.org`). A contact may still
//! carry what RFC 6068 allows in a `mailto:` URI: several addresses separated
//! by `,`, header fields after `?` (dropped: the plugin sets the subject and
//! body itself) and percent-encoded characters (decoded). A leading
//! `mailto:` is removed too, for contacts that reach the plugin unstripped.
//!
//! Each address must be a plain RFC 5321 mailbox `local@domain`: no display
//! name, no quoted local part, no comments, no white space or control
//! characters, a local part of at most 64 octets and an address of at most
//! 254 (RFC 5321 §4.5.3.1; 254 is the 256-octet path less its angle
//! brackets, RFC 3696 errata 1690). Quoted local parts are legal but no
//! registration desk writes them; refusing them keeps `"a@b"@c` from being
//! read as two addresses.
//!
//! Errors never quote the address: they end up in the outbox and the log.

use core::fmt;

/// RFC 5321 §4.5.3.1.1.
pub const MAX_LOCAL: usize = 64;

/// RFC 5321 §4.5.3.1.3 (256-octet path, less `<` and `>`).
pub const MAX_ADDRESS: usize = 254;

/// Why a contact is not a usable address. Carries lengths, never
/// characters of the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    Empty,
    /// No `@`, or more than one.
    NotOneAt,
    /// Nothing before or after the `@`.
    EmptyPart,
    /// White space, a control character or one of `<>()[]\,;:"`.
    InvalidCharacter,
    /// A local part starting or ending with `.`, or with `..`.
    Dots,
    /// A domain with an empty label, or a label starting or ending with `-`.
    Domain,
    TooLong {
        octets: usize,
    },
    LocalTooLong {
        octets: usize,
    },
    /// A `%` not followed by two hex digits, or percent-encoded bytes that
    /// are not UTF-8.
    Encoding,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::Empty => f.write_str("the e-mail address is empty"),
            AddressError::NotOneAt => f.write_str("the e-mail address does not have exactly one @"),
            AddressError::EmptyPart => {
                f.write_str("the e-mail address has nothing before or after its @")
            }
            AddressError::InvalidCharacter => f.write_str(
                "the e-mail address has white space, a control character or one of <>()[]\\,;:\"",
            ),
            AddressError::Dots => f.write_str(
                "the e-mail address's local part starts or ends with a dot, or has two in a row",
            ),
            AddressError::Domain => f.write_str(
                "the e-mail address's domain has an empty label or one starting or ending with -",
            ),
            AddressError::TooLong { octets } => write!(
                f,
                "the e-mail address has {octets} octets; RFC 5321 allows {MAX_ADDRESS}"
            ),
            AddressError::LocalTooLong { octets } => write!(
                f,
                "the e-mail address's local part has {octets} octets; RFC 5321 allows {MAX_LOCAL}"
            ),
            AddressError::Encoding => {
                f.write_str("the e-mail contact has a malformed percent-encoding")
            }
        }
    }
}

/// The addresses in one contact, each checked (see the module
/// documentation).
pub fn from_contact(contact: &str) -> Vec<Result<String, AddressError>> {
    let value = contact.trim();
    let value = match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mailto:") => &value[7..],
        _ => value,
    };
    // RFC 6068 §2: `mailto:` addresses `?` hfields.
    let addresses = value.split_once('?').map_or(value, |(to, _)| to);
    addresses
        .split(',')
        .map(|a| percent_decode(a.trim()).and_then(|a| check(a.trim()).map(str::to_owned)))
        .collect()
}

/// `%XX` sequences decoded (RFC 3986 §2.1), the result UTF-8.
fn percent_decode(text: &str) -> Result<String, AddressError> {
    if !text.contains('%') {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(AddressError::Encoding)?;
            let hex = core::str::from_utf8(hex).map_err(|_| AddressError::Encoding)?;
            let b = u8::from_str_radix(hex, 16).map_err(|_| AddressError::Encoding)?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| AddressError::Encoding)
}

/// `address` if it is a plain `local@domain` mailbox.
pub fn check(address: &str) -> Result<&str, AddressError> {
    if address.is_empty() {
        return Err(AddressError::Empty);
    }
    if address.len() > MAX_ADDRESS {
        return Err(AddressError::TooLong {
            octets: address.len(),
        });
    }
    if address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c))
    {
        return Err(AddressError::InvalidCharacter);
    }
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AddressError::NotOneAt);
    };
    if local.is_empty() || domain.is_empty() {
        return Err(AddressError::EmptyPart);
    }
    if local.len() > MAX_LOCAL {
        return Err(AddressError::LocalTooLong {
            octets: local.len(),
        });
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::Dots);
    }
    // A trailing dot (the DNS root) is legal in DNS but not in an address.
    if domain
        .split('.')
        .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'))
    {
        return Err(AddressError::Domain);
    }
    Ok(address)
}

/// The first `keep` characters of the local part, the rest hidden:
/// `a…@example.org`. For error messages that must tell addresses apart
/// without naming them.
pub fn mask(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}…@{domain}")
        }
        None => "…".to_owned(),
    }
}

/// `text` with the local part of everything that looks like an address
/// replaced by `…`: a relay's error ("550 5.1.1 <asha@example.org>: unknown
/// user") goes into the outbox and the server log, the address must not.
pub fn redact(text: &str) -> String {
    let separator = |c: char| c.is_whitespace() || "<>()[]\"',;:".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let start = rest[..at]
            .char_indices()
            .rev()
            .find(|(_, c)| separator(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        out.push_str(&rest[..start]);
        if start < at {
            out.push('…');
        }
        out.push('@');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(contact: &str) -> Vec<String> {
        from_contact(contact)
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{contact:?}: {e}")))
            .collect()
    }

    #[test]
    fn plain_addresses_pass() {
        assert_eq!(ok("asha@example.org"), ["asha@example.org"]);
        assert_eq!(
            ok("  Asha.Rao+c19@mail.example.co.in "),
            ["Asha.Rao+c19@mail.example.co.in"]
        );
        assert_eq!(ok("asha@xn--p1ai.example"), ["asha@xn--p1ai.example"]);
        // Internationalised addresses (RFC 6531) are the relay's to judge.
        assert_eq!(ok("आशा@उदाहरण.भारत"), ["आशा@उदाहरण.भारत"]);
    }

    #[test]
    fn mailto_uris_are_unpacked() {
        assert_eq!(ok("mailto:asha@example.org"), ["asha@example.org"]);
        assert_eq!(
            ok("MAILTO:asha@example.org?subject=hi&body=x"),
            ["asha@example.org"]
        );
        assert_eq!(
            ok("a@example.org,b@example.org"),
            ["a@example.org", "b@example.org"]
        );
        assert_eq!(ok("asha%2Bc19@example.org"), ["asha+c19@example.org"]);
        assert_eq!(
            from_contact("asha%4@example.org"),
            vec![Err(AddressError::Encoding)]
        );
        assert_eq!(
            from_contact("asha%ff@example.org"),
            vec![Err(AddressError::Encoding)]
        );
    }

    #[test]
    fn malformed_addresses_are_refused_without_quoting_them() {
        let cases = [
            ("", AddressError::Empty),
            ("asha", AddressError::NotOneAt),
            ("a@b@example.org", AddressError::NotOneAt),
            ("@example.org", AddressError::EmptyPart),
            ("asha@", AddressError::EmptyPart),
            ("asha rao@example.org", AddressError::InvalidCharacter),
            ("Asha <asha@example.org>", AddressError::InvalidCharacter),
            (
                "asha@example.org\r\nBcc: x@y.org",
                AddressError::InvalidCharacter,
            ),
            ("\"a@b\"@example.org", AddressError::InvalidCharacter),
            (".asha@example.org", AddressError::Dots),
            ("asha..rao@example.org", AddressError::Dots),
            ("asha@example..org", AddressError::Domain),
            ("asha@-example.org", AddressError::Domain),
            ("asha@example.org.", AddressError::Domain),
        ];
        for (address, want) in cases {
            assert_eq!(check(address), Err(want), "{address:?}");
            if address.len() > 3 {
                assert!(!want.to_string().contains(address), "{want}");
            }
        }
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert_eq!(
            check(&long_local),
            Err(AddressError::LocalTooLong { octets: 65 })
        );
        let long = format!("asha@{}.org", "d".repeat(250));
        assert_eq!(check(&long), Err(AddressError::TooLong { octets: 259 }));
    }

    #[test]
    fn relay_errors_lose_their_addresses() {
        assert_eq!(
            redact("permanent error (550): 5.1.1 <asha@example.org>: Recipient address rejected"),
            "permanent error (550): 5.1.1 <…@example.org>: Recipient address rejected"
        );
        assert_eq!(
            redact("to asha.rao@example.org, b@x"),
            "to …@example.org, …@x"
        );
        assert_eq!(redact("no addresses here"), "no addresses here");
        assert_eq!(redact("@ alone"), "@ alone");
        assert_eq!(redact("आशा@उदाहरण.भारत"), "…@उदाहरण.भारत");
        assert_eq!(mask("asha@example.org"), "a…@example.org");
    }
}
