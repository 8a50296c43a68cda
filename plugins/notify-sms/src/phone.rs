//! Phone contacts to E.164 numbers, for one configured country.
//!
//! ITU-T Recommendation E.164 ("The international public telecommunication
//! numbering plan") writes a number as a country code (1 to 3 digits, never
//! starting with 0) followed by the national significant number, at most 15
//! digits in all (E.164 §6). SMS gateways want it with a leading `+` and
//! nothing else ("+919876543210").
//!
//! People and registration desks write numbers many ways; [`Country::normalize`]
//! accepts, for a country with calling code `CC` and `N`-digit national
//! numbers:
//!
//! | written as | example (India, 91 / 10) |
//! |---|---|
//! | `+CC` and the national number | `+91 98765-43210` |
//! | the same with the trunk `(0)` some write after the code | `+44 (0)7700 900123` |
//! | `00CC…` (the international prefix ITU-T recommends) | `0091 98765 43210` |
//! | the trunk prefix `0` and the national number | `098765 43210` |
//! | the bare national number | `9876543210` |
//! | `CC` and the national number without `+` | `919876543210` |
//!
//! Spaces and the visual separators of RFC 3966 §3 (`-`, `.`, `(`, `)`) are
//! ignored; any other character refuses the number. A number of the configured
//! country must have exactly `N` national digits, not starting with 0. A number
//! written internationally with another country code is checked against
//! E.164's bounds only (7 to 15 digits) — its own plan is unknown here — and
//! only when the operator allows other countries.
//!
//! A national significant number may not start with 0 in either country this
//! plugin was written for (India, the UK); a country whose numbers do (Italy's
//! fixed lines) has variable-length numbers, which this normaliser does not
//! cover anyway.
//!
//! Errors never quote the number: they end up in the outbox and the log.

use core::fmt;

/// E.164 §6: at most 15 digits, country code included.
pub const MAX_DIGITS: usize = 15;

/// The shortest international numbers in use (e.g. Saint Helena's +290 and
/// four digits) have 7 digits, country code included.
pub const MIN_DIGITS: usize = 7;

/// The configured country: its calling code and national number length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    code: String,
    national_len: usize,
}

/// Why the country settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountryError {
    /// Not 1 to 3 digits, or starting with 0 (E.164 country codes never do).
    Code,
    /// The national number length leaves no room in E.164's 15 digits, or is
    /// shorter than any number plan uses.
    NationalLength {
        code_len: usize,
        national_len: usize,
    },
}

impl fmt::Display for CountryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CountryError::Code => f.write_str(
                "`country_calling_code` must be an E.164 country code: 1 to 3 digits, not starting with 0 (e.g. \"91\")",
            ),
            CountryError::NationalLength { code_len, national_len } => write!(
                f,
                "`national_number_length` = {national_len} does not fit E.164 with a {code_len}-digit country code (at most {MAX_DIGITS} digits in all, at least {MIN_DIGITS})"
            ),
        }
    }
}

/// Why a contact cannot be made an E.164 number. Carries lengths, never
/// digits of the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// No digits at all.
    Empty,
    /// A character other than digits, one leading `+` and separators.
    InvalidCharacter,
    /// A number of the configured country with the wrong number of national
    /// digits (counted after the country code and trunk prefix, if any).
    WrongLength { expected: usize, found: usize },
    /// A national number starting with 0 after the prefixes were removed.
    LeadingZero,
    /// Another country's number outside E.164's 7 to 15 digits.
    OutOfRange { digits: usize },
    /// Another country's number while the operator allows only its own.
    OtherCountry,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberError::Empty => f.write_str("the phone number has no digits"),
            NumberError::InvalidCharacter => f.write_str(
                "the phone number has characters other than digits, a leading + and separators",
            ),
            NumberError::WrongLength { expected, found } => write!(
                f,
                "the phone number has {found} national digits; this country's have {expected}"
            ),
            NumberError::LeadingZero => {
                f.write_str("the national number starts with 0 after the trunk prefix")
            }
            NumberError::OutOfRange { digits } => write!(
                f,
                "the international number has {digits} digits; E.164 allows {MIN_DIGITS} to {MAX_DIGITS}"
            ),
            NumberError::OtherCountry => {
                f.write_str("the phone number is another country's, and other countries are not allowed")
            }
        }
    }
}

impl Country {
    /// A country from its calling code (`"91"`, `"+91"` also accepted) and
    /// national significant number length.
    pub fn new(code: &str, national_len: usize) -> Result<Country, CountryError> {
        let code = code.trim();
        let code = code.strip_prefix('+').unwrap_or(code);
        if code.is_empty()
            || code.len() > 3
            || !code.bytes().all(|b| b.is_ascii_digit())
            || code.starts_with('0')
        {
            return Err(CountryError::Code);
        }
        let total = code.len() + national_len;
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&total) || national_len < 4 {
            return Err(CountryError::NationalLength {
                code_len: code.len(),
                national_len,
            });
        }
        Ok(Country {
            code: code.to_owned(),
            national_len,
        })
    }

    /// The number in E.164 form (`+` and digits), or why it cannot be.
    /// See the module documentation for what is accepted.
    pub fn normalize(&self, raw: &str, other_countries: bool) -> Result<String, NumberError> {
        let (plus, digits) = digits(raw)?;
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        let international = if plus {
            Some(digits.as_str())
        } else {
            digits.strip_prefix("00")
        };
        if let Some(intl) = international {
            // E.164 country codes are prefix-free (no code is the start of
            // another), so a number that starts with ours is ours.
            if let Some(national) = intl.strip_prefix(self.code.as_str()) {
                // "+44 (0)20 …": the trunk prefix written in parentheses.
                let national = match national.strip_prefix('0') {
                    Some(rest) if rest.len() == self.national_len => rest,
                    _ => national,
                };
                return self.national(national);
            }
            if !other_countries {
                return Err(NumberError::OtherCountry);
            }
            if intl.starts_with('0') {
                return Err(NumberError::LeadingZero);
            }
            if !(MIN_DIGITS..=MAX_DIGITS).contains(&intl.len()) {
                return Err(NumberError::OutOfRange { digits: intl.len() });
            }
            return Ok(format!("+{intl}"));
        }
        // The trunk prefix: what follows it is the national number.
        if let Some(national) = digits.strip_prefix('0') {
            return self.national(national);
        }
        if digits.len() == self.code.len() + self.national_len {
            if let Some(national) = digits.strip_prefix(self.code.as_str()) {
                return self.national(national);
            }
        }
        // A bare national number, or a wrong one: the length check says which.
        self.national(&digits)
    }

    fn national(&self, national: &str) -> Result<String, NumberError> {
        if national.len() != self.national_len {
            return Err(NumberError::WrongLength {
                expected: self.national_len,
                found: national.len(),
            });
        }
        if national.starts_with('0') {
            return Err(NumberError::LeadingZero);
        }
        Ok(format!("+{}{national}", self.code))
    }
}

/// Whether the text had a leading `+`, and its digits; separators dropped.
fn digits(raw: &str) -> Result<(bool, String), NumberError> {
    let mut plus = false;
    let mut digits = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '0'..='9' => digits.push(c),
            // Only before the first digit, and once.
            '+' if !plus && digits.is_empty() => plus = true,
            // RFC 3966 §3 visual separators, and white space (the no-break
            // space too: numbers pasted from documents carry it).
            '-' | '.' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            _ => return Err(NumberError::InvalidCharacter),
        }
    }
    Ok((plus, digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn india() -> Country {
        Country::new("91", 10).unwrap()
    }

    fn uk() -> Country {
        Country::new("44", 10).unwrap()
    }

    #[test]
    fn india_forms_all_become_one_e164_number() {
        let want = Ok("+919876543210".to_owned());
        for written in [
            "+919876543210",
            "+91 98765 43210",
            "+91-98765-43210",
            "(+91) 98765.43210",
            "+91 (0)98765 43210",
            "0091 98765 43210",
            "009198765 43210",
            "098765 43210",
            "9876543210",
            "98765\u{a0}43210",
            "919876543210",
            " 98765 43210 ",
        ] {
            assert_eq!(india().normalize(written, false), want, "{written:?}");
        }
    }

    #[test]
    fn uk_forms_all_become_one_e164_number() {
        let want = Ok("+447700900123".to_owned());
        for written in [
            "+44 7700 900123",
            "+44 (0)7700 900123",
            "0044 7700 900123",
            "07700 900123",
            "(07700) 900-123",
            "7700900123",
            "447700900123",
        ] {
            assert_eq!(uk().normalize(written, false), want, "{written:?}");
        }
    }

    #[test]
    fn wrong_lengths_are_refused_with_the_count_only() {
        assert_eq!(
            india().normalize("98765 4321", false),
            Err(NumberError::WrongLength {
                expected: 10,
                found: 9
            })
        );
        assert_eq!(
            india().normalize("+91 98765 432101", false),
            Err(NumberError::WrongLength {
                expected: 10,
                found: 11
            })
        );
        // Ten digits, but the first is the trunk prefix.
        assert_eq!(
            uk().normalize("0770 090012", false),
            Err(NumberError::WrongLength {
                expected: 10,
                found: 9
            })
        );
        let e = india().normalize("12345", false).unwrap_err().to_string();
        assert!(!e.contains("12345"), "{e}");
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(india().normalize("", false), Err(NumberError::Empty));
        assert_eq!(india().normalize(" - ", false), Err(NumberError::Empty));
        assert_eq!(
            india().normalize("98765x43210", false),
            Err(NumberError::InvalidCharacter)
        );
        assert_eq!(
            india().normalize("9876543210;ext=1", false),
            Err(NumberError::InvalidCharacter)
        );
        // A second plus, or one after digits.
        assert_eq!(
            india().normalize("++919876543210", false),
            Err(NumberError::InvalidCharacter)
        );
        assert_eq!(
            india().normalize("91+9876543210", false),
            Err(NumberError::InvalidCharacter)
        );
        // The trunk prefix twice leaves a national number starting with 0.
        assert_eq!(
            india().normalize("+91 0 0987654321", false),
            Err(NumberError::LeadingZero)
        );
        assert_eq!(
            india().normalize("+91 0987654321", false),
            Err(NumberError::LeadingZero)
        );
    }

    #[test]
    fn other_countries_only_when_allowed_and_within_e164_bounds() {
        assert_eq!(
            india().normalize("+44 7700 900123", false),
            Err(NumberError::OtherCountry)
        );
        assert_eq!(
            india().normalize("+44 7700 900123", true),
            Ok("+447700900123".to_owned())
        );
        assert_eq!(
            india().normalize("0044 7700 900123", true),
            Ok("+447700900123".to_owned())
        );
        assert_eq!(
            india().normalize("+1 234 567 890 123 456", true),
            Err(NumberError::OutOfRange { digits: 16 })
        );
        assert_eq!(
            india().normalize("+290 123", true),
            Err(NumberError::OutOfRange { digits: 6 })
        );
        assert_eq!(
            india().normalize("+0 123 4567 890", true),
            Err(NumberError::LeadingZero)
        );
        // A bare number is always taken as this country's.
        assert_eq!(
            india().normalize("447700900123", true),
            Err(NumberError::WrongLength {
                expected: 10,
                found: 12
            })
        );
    }

    #[test]
    fn country_settings_are_checked() {
        assert_eq!(Country::new("+91", 10), Ok(india()));
        assert_eq!(Country::new("", 10), Err(CountryError::Code));
        assert_eq!(Country::new("091", 10), Err(CountryError::Code));
        assert_eq!(Country::new("9123", 10), Err(CountryError::Code));
        assert_eq!(Country::new("9a", 10), Err(CountryError::Code));
        assert!(matches!(
            Country::new("91", 14),
            Err(CountryError::NationalLength { .. })
        ));
        assert!(matches!(
            Country::new("1", 3),
            Err(CountryError::NationalLength { .. })
        ));
        // NANP: one-digit code, ten-digit numbers; its trunk prefix is the
        // code itself.
        let nanp = Country::new("1", 10).unwrap();
        assert_eq!(
            nanp.normalize("1 (202) 555-0143", false),
            Ok("+12025550143".to_owned())
        );
        assert_eq!(
            nanp.normalize("(202) 555-0143", false),
            Ok("+12025550143".to_owned())
        );
    }
}
