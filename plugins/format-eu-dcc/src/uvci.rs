//! The UVCI (Unique Vaccination Certificate/assertion Identifier) that goes
//! into the DCC's `ci` field, and the host certificate id inside it.
//!
//! eHealth Network, *Guidelines on verifiable vaccination certificates –
//! basic interoperability elements*, Annex 2: `URN:UVCI:01:<CC>:<opaque>#<check>`
//! with the option "with checksum". The check character is Luhn mod N over
//! the alphabet `A-Z 0-9 / :` (N = 38, code points in that order), computed
//! over the whole identifier before `#` (EU DCC schema FAQ, "UVCI
//! checksum"; the published example `URN:UVCI:01:NL:187/37512422923#Z`).
//!
//! The opaque part is the host certificate id's 26-symbol Crockford base32
//! body (the host's 27th symbol is a Crockford check symbol that may be one
//! of `* ~ $ =`, which a UVCI does not allow).

use divoc_sdk::Error;

/// Code points 0..38 of the Luhn mod N alphabet, in order.
const ALPHABET: &[u8; 38] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:";
/// Annex 2 schema version 01, the only one defined.
const PREFIX: &str = "URN:UVCI:01:";
/// `ci` is at most 80 characters in the EU DCC JSON schema 1.3.
pub const MAX_LEN: usize = 80;
/// Crockford base32 symbols of a certificate id body.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a certificate id body (128 bits).
pub const BODY_LEN: usize = 26;

fn code_point(c: u8) -> Option<usize> {
    ALPHABET.iter().position(|&a| a == c)
}

/// The Luhn mod N check character of `input` (Annex 2): from the rightmost
/// character, code points are weighted 2, 1, 2, …; each product's base-N
/// digits are added up; the check character brings the sum to a multiple
/// of N. `None` when `input` has a character outside the alphabet.
pub fn check_character(input: &str) -> Option<char> {
    let n = ALPHABET.len();
    let mut sum = 0;
    for (i, c) in input.bytes().rev().enumerate() {
        let weight = if i % 2 == 0 { 2 } else { 1 };
        let product = weight * code_point(c)?;
        sum += product / n + product % n;
    }
    Some(char::from(ALPHABET[(n - sum % n) % n]))
}

/// Whether `input` followed by its check character is valid: the Luhn mod N
/// sum over all of it (weights 1, 2, 1, … from the right) is a multiple of N.
pub fn is_valid_with_check(input_and_check: &str) -> bool {
    let n = ALPHABET.len();
    let mut sum = 0;
    for (i, c) in input_and_check.bytes().rev().enumerate() {
        let Some(point) = code_point(c) else {
            return false;
        };
        let weight = if i % 2 == 0 { 1 } else { 2 };
        let product = weight * point;
        sum += product / n + product % n;
    }
    !input_and_check.is_empty() && sum % n == 0
}

/// The UVCI for `country` (ISO 3166-1 alpha-2, upper case) and `opaque`.
pub fn uvci(country: &str, opaque: &str) -> Result<String, Error> {
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::internal(format!(
            "the UVCI country must be two capital letters, got {}",
            divoc_sdk::quote(country)
        )));
    }
    let body = format!("{PREFIX}{country}:{opaque}");
    let check = check_character(&body).ok_or_else(|| {
        Error::invalid_input("the UVCI opaque part may only use A-Z, 0-9, '/' and ':'")
    })?;
    let uvci = format!("{body}#{check}");
    if uvci.len() > MAX_LEN {
        return Err(Error::invalid_input(format!(
            "the UVCI would be {} characters; the DCC schema allows {MAX_LEN}",
            uvci.len()
        )));
    }
    Ok(uvci)
}

/// The opaque part of a `ci` value, when it is a well-formed Annex 2 UVCI
/// whose check character (if present) matches. The `URN:UVCI:` prefix is
/// optional in `ci` (DCC schema 1.3, `certificate_id`).
pub fn opaque_part(ci: &str) -> Option<&str> {
    if ci.len() > MAX_LEN {
        return None;
    }
    let bare = ci.strip_prefix("URN:UVCI:").unwrap_or(ci);
    let (body, check) = match bare.split_once('#') {
        Some((body, check)) => (body, Some(check)),
        None => (bare, None),
    };
    let rest = body.strip_prefix("01:")?;
    let (country, opaque) = rest.split_once(':')?;
    if country.len() != 2
        || !country.bytes().all(|b| b.is_ascii_uppercase())
        || opaque.is_empty()
        || !opaque.bytes().all(|b| code_point(b).is_some())
    {
        return None;
    }
    // The checksum covers the identifier with its `URN:UVCI:` prefix.
    if let Some(check) = check {
        if check.len() != 1 || !is_valid_with_check(&format!("URN:UVCI:{body}{check}")) {
            return None;
        }
    }
    Some(opaque)
}

/// The 26-symbol body of a host certificate id (27 Crockford symbols, or
/// already just the body), upper case, for the UVCI's opaque part.
pub fn certificate_body(id: &str) -> Result<String, Error> {
    let symbols: String = id
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let body = match symbols.len() {
        BODY_LEN | 27 => symbols.get(..BODY_LEN),
        _ => None,
    };
    match body {
        Some(body) if body.bytes().all(|b| CROCKFORD.contains(&b)) => Ok(body.to_owned()),
        _ => Err(Error::invalid_input(
            "the credential id is not a host certificate id (26 Crockford base32 symbols and a check symbol)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_examples() {
        // EU DCC schema FAQ "UVCI checksum" and the schema's `ci` example.
        assert_eq!(check_character("URN:UVCI:01:NL:187/37512422923"), Some('Z'));
        assert_eq!(
            check_character("URN:UVCI:01:AT:10807843F94AEE0EE5093FBC254BD813"),
            Some('B')
        );
        assert!(is_valid_with_check("URN:UVCI:01:NL:187/37512422923Z"));
        assert!(!is_valid_with_check("URN:UVCI:01:NL:187/37512422923Y"));
    }

    #[test]
    fn agrees_with_the_host() {
        // Computed with the host's `divoc_crypto::ids::Uvci::new` (and
        // `CertificateId::to_uvci` for the first one).
        for (country, opaque, expected) in [
            (
                "IN",
                "01F4Q8ZJ6M3T9V2K7XBC5RWD8N",
                "URN:UVCI:01:IN:01F4Q8ZJ6M3T9V2K7XBC5RWD8N#:",
            ),
            (
                "IN",
                "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0",
                "URN:UVCI:01:IN:01F4Q8ZJ6M3T9V2K7XBC5RWD8N0#D",
            ),
            (
                "XX",
                "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0",
                "URN:UVCI:01:XX:01F4Q8ZJ6M3T9V2K7XBC5RWD8N0#F",
            ),
            (
                "DE",
                "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
                "URN:UVCI:01:DE:7ZZZZZZZZZZZZZZZZZZZZZZZZZ#N",
            ),
            (
                "NL",
                "00000000000000000000000000",
                "URN:UVCI:01:NL:00000000000000000000000000#5",
            ),
            (
                "IN",
                "01HZX3Q4R5S6T7V8W9XAYBZC0D",
                "URN:UVCI:01:IN:01HZX3Q4R5S6T7V8W9XAYBZC0D#/",
            ),
        ] {
            assert_eq!(uvci(country, opaque).unwrap(), expected);
            assert_eq!(opaque_part(expected), Some(opaque));
        }
    }

    #[test]
    fn every_single_substitution_is_caught() {
        let body = "URN:UVCI:01:IN:01F4Q8ZJ6M3T9V2K7XBC5RWD8N";
        let check = check_character(body).unwrap();
        for i in 15..body.len() {
            for &sym in ALPHABET {
                let mut changed = body.as_bytes().to_vec();
                if changed[i] == sym {
                    continue;
                }
                changed[i] = sym;
                let changed = String::from_utf8(changed).unwrap();
                assert!(!is_valid_with_check(&format!("{changed}{check}")));
            }
        }
    }

    #[test]
    fn opaque_part_rules() {
        let ci = "URN:UVCI:01:NL:187/37512422923#Z";
        assert_eq!(opaque_part(ci), Some("187/37512422923"));
        // Prefix optional; the checksum still covers it.
        assert_eq!(
            opaque_part("01:NL:187/37512422923#Z"),
            Some("187/37512422923")
        );
        // No check character at all.
        assert_eq!(
            opaque_part("URN:UVCI:01:NL:187/37512422923"),
            Some("187/37512422923")
        );
        assert_eq!(opaque_part("URN:UVCI:01:NL:187/37512422923#Y"), None);
        assert_eq!(opaque_part("URN:UVCI:01:NL:187/37512422923#ZZ"), None);
        assert_eq!(opaque_part("URN:UVCI:02:NL:1#A"), None);
        assert_eq!(opaque_part("URN:UVCI:01:nl:1"), None);
        assert_eq!(opaque_part("URN:UVCI:01:NL:"), None);
        assert_eq!(opaque_part("URN:UVCI:01:NL:a b"), None);
        assert_eq!(opaque_part(""), None);
        assert_eq!(opaque_part(&"A".repeat(200)), None);
    }

    #[test]
    fn uvci_limits() {
        assert!(uvci("in", "1").is_err());
        assert!(uvci("IND", "1").is_err());
        assert!(uvci("IN", "a").is_err());
        assert!(uvci("IN", "A#").is_err());
        assert!(uvci("IN", &"A".repeat(70)).is_err());
    }

    #[test]
    fn certificate_bodies() {
        assert_eq!(
            certificate_body("01F4Q8ZJ6M3T9V2K7XBC5RWD8N0").unwrap(),
            "01F4Q8ZJ6M3T9V2K7XBC5RWD8N"
        );
        assert_eq!(
            certificate_body("01f4q8zj6m3t9v2k7xbc5rwd8n").unwrap(),
            "01F4Q8ZJ6M3T9V2K7XBC5RWD8N"
        );
        assert_eq!(
            certificate_body("01F4Q-8ZJ6M-3T9V2-K7XBC-5RWD8-N$").unwrap(),
            "01F4Q8ZJ6M3T9V2K7XBC5RWD8N"
        );
        assert!(certificate_body("conformance-1").is_err());
        assert!(certificate_body("01F4Q8ZJ6M3T9V2K7XBC5RWD8U0").is_err());
        assert!(certificate_body("").is_err());
        assert!(certificate_body("é".repeat(27).as_str()).is_err());
    }
}
