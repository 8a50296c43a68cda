//! Normalising and validating a national ID number, and masking it.

use std::fmt;

use crate::checksum::Checksum;

/// Which characters a number may contain (after normalisation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alphabet {
    /// `0`-`9`.
    Digits,
    /// `0`-`9` and `A`-`Z`.
    Alphanumeric,
    /// Exactly these characters (upper-cased when configured).
    Custom(Vec<char>),
}

impl Alphabet {
    /// `"digits"`, `"alphanumeric"`, or the allowed characters themselves.
    pub fn from_config(text: &str) -> Alphabet {
        match text {
            "digits" => Alphabet::Digits,
            "alphanumeric" => Alphabet::Alphanumeric,
            other => {
                let mut chars: Vec<char> = other.chars().flat_map(char::to_uppercase).collect();
                chars.sort_unstable();
                chars.dedup();
                Alphabet::Custom(chars)
            }
        }
    }

    fn allows(&self, c: char) -> bool {
        match self {
            Alphabet::Digits => c.is_ascii_digit(),
            Alphabet::Alphanumeric => c.is_ascii_digit() || c.is_ascii_uppercase(),
            Alphabet::Custom(chars) => chars.binary_search(&c).is_ok(),
        }
    }

    /// Whether every allowed character is a decimal digit.
    pub fn digits_only(&self) -> bool {
        match self {
            Alphabet::Digits => true,
            Alphabet::Alphanumeric => false,
            Alphabet::Custom(chars) => chars.iter().all(char::is_ascii_digit),
        }
    }

    /// What a character is called in messages ("digits", "characters").
    fn unit(&self) -> &'static str {
        if self.digits_only() {
            "digits"
        } else {
            "characters"
        }
    }
}

/// The rules a number is checked against (from the validated configuration).
#[derive(Debug, Clone)]
pub struct Rules {
    pub min_length: usize,
    pub max_length: usize,
    pub alphabet: Alphabet,
    pub checksum: Checksum,
    /// Characters removed before checking, besides whitespace.
    pub separators: Vec<char>,
}

/// Why a number is not valid. `Display` gives a reason that is safe to show
/// to the user: it never repeats the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    Empty,
    /// A character outside the alphabet (or an `X` not in last place).
    Character {
        digits_only: bool,
        separators: bool,
    },
    TooShort {
        min: usize,
        max: usize,
        found: usize,
        unit: &'static str,
    },
    TooLong {
        min: usize,
        max: usize,
        unit: &'static str,
    },
    CheckDigit {
        noun: &'static str,
    },
}

fn expected(min: usize, max: usize, unit: &str) -> String {
    if min == max {
        format!("{min} {unit}")
    } else {
        format!("{min} to {max} {unit}")
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Empty => f.write_str("the number is empty"),
            Invalid::Character {
                digits_only,
                separators,
            } => {
                let what = if *digits_only {
                    "digits"
                } else {
                    "the letters and digits of an ID number"
                };
                let ignored = if *separators {
                    "spaces and hyphens are ignored"
                } else {
                    "spaces are ignored"
                };
                write!(f, "the number may contain only {what} ({ignored})")
            }
            Invalid::TooShort {
                min,
                max,
                found,
                unit,
            } => write!(
                f,
                "the number must have {}, not {found}",
                expected(*min, *max, unit)
            ),
            Invalid::TooLong { min, max, unit } => write!(
                f,
                "the number has too many {unit}: it must have {}",
                expected(*min, *max, unit)
            ),
            Invalid::CheckDigit { noun } => write!(
                f,
                "the number's {noun} is wrong; please check for typing mistakes"
            ),
        }
    }
}

/// Normalises `value` (whitespace and separators removed, upper case) and
/// checks it against `rules`: alphabet, length, check character.
///
/// Stops reading once the number is longer than allowed, so a huge input
/// costs no more memory than a maximal number.
pub fn normalize(value: &str, rules: &Rules) -> Result<String, Invalid> {
    let mut n = String::with_capacity(rules.max_length.min(64));
    let mut count = 0usize;
    let unit = rules.alphabet.unit();
    for c in value.chars() {
        if c.is_whitespace() || rules.separators.contains(&c) {
            continue;
        }
        for u in c.to_uppercase() {
            count += 1;
            if count > rules.max_length {
                return Err(Invalid::TooLong {
                    min: rules.min_length,
                    max: rules.max_length,
                    unit,
                });
            }
            n.push(u);
        }
    }
    if n.is_empty() {
        return Err(Invalid::Empty);
    }
    let bad_char = Invalid::Character {
        digits_only: rules.alphabet.digits_only(),
        separators: rules.separators.contains(&'-'),
    };
    let last = n.chars().count() - 1;
    for (i, c) in n.chars().enumerate() {
        // ISO/IEC 7064 MOD 11-2 writes the check value 10 as `X`, so an `X`
        // is allowed in the check position whatever the alphabet.
        let check_x = i == last && c == 'X' && rules.checksum == Checksum::Iso7064Mod11_2;
        if !rules.alphabet.allows(c) && !check_x {
            return Err(bad_char);
        }
        if rules.checksum.needs_digits() && !c.is_ascii_digit() && !check_x {
            return Err(bad_char);
        }
    }
    if count < rules.min_length {
        return Err(Invalid::TooShort {
            min: rules.min_length,
            max: rules.max_length,
            found: count,
            unit,
        });
    }
    if !rules.checksum.valid(&n) {
        return Err(Invalid::CheckDigit {
            noun: rules.checksum.check_noun(),
        });
    }
    Ok(n)
}

/// Masks all but the last `keep` characters of a normalised number with `*`,
/// e.g. `********2346`. At most half the number is ever shown, so a short
/// number is not given away by its mask.
pub fn mask(id: &str, keep: usize) -> String {
    let len = id.chars().count();
    let keep = keep.min(len / 2);
    id.chars()
        .enumerate()
        .map(|(i, c)| if i + keep < len { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(min: usize, max: usize, alphabet: &str, checksum: Checksum) -> Rules {
        Rules {
            min_length: min,
            max_length: max,
            alphabet: Alphabet::from_config(alphabet),
            checksum,
            separators: vec!['-'],
        }
    }

    #[test]
    fn strips_separators_and_upper_cases() {
        let r = rules(6, 12, "alphanumeric", Checksum::None);
        assert_eq!(normalize(" ab-12 cd\t34 ", &r), Ok("AB12CD34".into()));
        let r = rules(12, 12, "digits", Checksum::Verhoeff);
        assert_eq!(
            normalize("2341-2341 2346", &r),
            Ok("234123412346".into()),
            "the conformance cases' number is Verhoeff-valid"
        );
    }

    #[test]
    fn rejects_with_specific_safe_reasons() {
        let r = rules(12, 12, "digits", Checksum::Verhoeff);
        assert_eq!(normalize("", &r), Err(Invalid::Empty));
        assert_eq!(normalize("  - ", &r), Err(Invalid::Empty));
        let e = normalize("23412341234a", &r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the number may contain only digits (spaces and hyphens are ignored)"
        );
        let e = normalize("2341234", &r).unwrap_err();
        assert_eq!(e.to_string(), "the number must have 12 digits, not 7");
        let e = normalize("2341234123461", &r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the number has too many digits: it must have 12 digits"
        );
        let e = normalize("234123412347", &r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the number's check digit is wrong; please check for typing mistakes"
        );
        let r = rules(6, 10, "alphanumeric", Checksum::None);
        let e = normalize("AB1", &r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the number must have 6 to 10 characters, not 3"
        );
        let e = normalize("AB1#23", &r).unwrap_err();
        assert!(e.to_string().contains("letters and digits"), "{e}");
    }

    #[test]
    fn a_huge_input_stops_early() {
        let r = rules(12, 12, "digits", Checksum::Verhoeff);
        let huge = "1234567890".repeat(100_000);
        assert!(matches!(normalize(&huge, &r), Err(Invalid::TooLong { .. })));
    }

    #[test]
    fn iso7064_allows_x_only_in_the_check_position() {
        let r = rules(18, 18, "digits", Checksum::Iso7064Mod11_2);
        assert_eq!(
            normalize("110105 19491231 002x", &r),
            Ok("11010519491231002X".into())
        );
        assert!(matches!(
            normalize("11010519491231X02X", &r),
            Err(Invalid::Character { .. })
        ));
        assert!(matches!(
            normalize("110105194912310021", &r),
            Err(Invalid::CheckDigit {
                noun: "check character"
            })
        ));
    }

    #[test]
    fn luhn_numbers() {
        let r = rules(11, 11, "digits", Checksum::Luhn);
        assert_eq!(normalize("7992 7398 713", &r), Ok("79927398713".into()));
        assert!(normalize("79927398714", &r).is_err());
    }

    #[test]
    fn custom_alphabets() {
        let r = rules(4, 8, "0123456789abcdef", Checksum::None);
        assert_eq!(normalize("dead-beef", &r), Ok("DEADBEEF".into()));
        assert!(normalize("DEADBEEG", &r).is_err());
        assert!(Alphabet::from_config("0123").digits_only());
        assert!(!Alphabet::from_config("0123A").digits_only());
    }

    #[test]
    fn masks_keep_at_most_half() {
        assert_eq!(mask("234123412346", 4), "********2346");
        assert_eq!(mask("123456", 4), "***456");
        assert_eq!(mask("1", 4), "*");
        assert_eq!(mask("234123412346", 0), "************");
    }
}
