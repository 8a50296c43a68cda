//! Check-digit schemes used by national ID numbers.
//!
//! Each scheme has two functions: the check character of a payload, and
//! whether a full number (payload followed by its check character) is valid.
//! The tests use the schemes' published examples.

use serde::Deserialize;

/// The check-digit scheme of the number, as configured (`checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Checksum {
    /// Verhoeff's dihedral-group scheme (e.g. India's Aadhaar).
    #[serde(rename = "verhoeff")]
    Verhoeff,
    /// Luhn, ISO/IEC 7812-1 Annex B (e.g. South Africa, Israel, Canada SIN).
    #[serde(rename = "luhn")]
    Luhn,
    /// ISO/IEC 7064 MOD 11-2, check character `0`-`9` or `X` (e.g. China's
    /// resident identity card, ISNI/ORCID).
    #[serde(rename = "iso7064-mod11-2")]
    Iso7064Mod11_2,
    /// No check character.
    #[serde(rename = "none")]
    None,
}

impl Checksum {
    /// Whether the scheme works on decimal digits only (the ISO 7064 check
    /// character may additionally be `X`, which [`Checksum::valid`] handles).
    pub fn needs_digits(self) -> bool {
        !matches!(self, Checksum::None)
    }

    /// Whether `number` (payload + check character, ASCII) is valid under
    /// the scheme. `None` accepts everything.
    pub fn valid(self, number: &str) -> bool {
        match self {
            Checksum::None => true,
            Checksum::Verhoeff => digits(number).is_some_and(|d| verhoeff_valid(&d)),
            Checksum::Luhn => digits(number).is_some_and(|d| luhn_valid(&d)),
            Checksum::Iso7064Mod11_2 => mod11_2_valid(number),
        }
    }

    /// What the check character is called in messages to the user.
    pub fn check_noun(self) -> &'static str {
        match self {
            Checksum::Iso7064Mod11_2 => "check character",
            _ => "check digit",
        }
    }
}

/// The decimal digits of `s`, or `None` when it has anything else (or is empty).
fn digits(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() {
        return None;
    }
    s.bytes()
        .map(|b| b.is_ascii_digit().then(|| b - b'0'))
        .collect()
}

// Verhoeff (1969): the multiplication table of the dihedral group D5, the
// position permutation table (powers of (1 5 8 9 4 2 7 0)(3 6)) and the
// inverse table.
const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];
const VERHOEFF_INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// The Verhoeff check digit of `payload` (digits 0-9).
pub fn verhoeff_check_digit(payload: &[u8]) -> u8 {
    let mut c = 0u8;
    for (i, &d) in payload.iter().rev().enumerate() {
        // Position 0 is the (missing) check digit, so the payload starts at 1.
        c = VERHOEFF_D[usize::from(c)][usize::from(VERHOEFF_P[(i + 1) % 8][usize::from(d % 10)])];
    }
    VERHOEFF_INV[usize::from(c)]
}

/// Whether the last digit of `number` is the Verhoeff check digit of the rest.
pub fn verhoeff_valid(number: &[u8]) -> bool {
    let mut c = 0u8;
    for (i, &d) in number.iter().rev().enumerate() {
        c = VERHOEFF_D[usize::from(c)][usize::from(VERHOEFF_P[i % 8][usize::from(d % 10)])];
    }
    number.len() >= 2 && c == 0
}

/// The Luhn sum (ISO/IEC 7812-1 Annex B): from the right, every second digit
/// starting with the first (`double_first`) or the second is doubled, and a
/// doubled digit above 9 contributes its digit sum (d * 2 - 9).
fn luhn_sum(digits: &[u8], double_first: bool) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d % 10);
            if (i % 2 == 0) == double_first {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum()
}

/// The Luhn check digit of `payload`: the digit that makes the sum a
/// multiple of 10 once it is appended (so the payload's last digit is doubled).
pub fn luhn_check_digit(payload: &[u8]) -> u8 {
    let rem = luhn_sum(payload, true) % 10;
    // `rem` < 10, so the result fits in u8.
    ((10 - rem) % 10) as u8
}

/// Whether `number` (check digit last) passes Luhn.
pub fn luhn_valid(number: &[u8]) -> bool {
    number.len() >= 2 && luhn_sum(number, false).is_multiple_of(10)
}

/// The ISO/IEC 7064 MOD 11-2 check character of a digit payload: the pure
/// system with modulus 11 and radix 2 (ISO/IEC 7064:2003 §5.2.1), computed by
/// the recursive method (§7.1): p = ((p + digit) * 2) mod 11 over the
/// payload, then the check value is (12 - p) mod 11, written `X` for 10.
/// `None` when the payload has anything but digits.
pub fn mod11_2_check_char(payload: &str) -> Option<char> {
    let mut p = 0u32;
    for b in payload.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        p = ((p + u32::from(b - b'0')) * 2) % 11;
    }
    let check = (12 - p) % 11;
    Some(if check == 10 {
        'X'
    } else {
        // `check` < 10 here.
        char::from(b'0' + check as u8)
    })
}

/// Whether the last character of `number` is the MOD 11-2 check character of
/// the digits before it (an upper-case `X` stands for 10).
pub fn mod11_2_valid(number: &str) -> bool {
    let Some(last) = number.chars().last() else {
        return false;
    };
    let payload = &number[..number.len() - last.len_utf8()];
    !payload.is_empty() && mod11_2_check_char(payload) == Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn verhoeff_published_examples() {
        // Verhoeff's classic example: 236 → 3; Wikipedia's 12345 → 1.
        assert_eq!(verhoeff_check_digit(&ds("236")), 3);
        assert!(verhoeff_valid(&ds("2363")));
        assert!(!verhoeff_valid(&ds("2364")));
        assert_eq!(verhoeff_check_digit(&ds("12345")), 1);
        assert!(Checksum::Verhoeff.valid("123451"));
        assert!(!Checksum::Verhoeff.valid("12345X"));
    }

    #[test]
    fn luhn_published_examples() {
        // ISO/IEC 7812 / Wikipedia: 7992739871 → 3.
        assert_eq!(luhn_check_digit(&ds("7992739871")), 3);
        assert!(luhn_valid(&ds("79927398713")));
        for wrong in 0..10u8 {
            if wrong != 3 {
                let mut n = ds("7992739871");
                n.push(wrong);
                assert!(!luhn_valid(&n), "{wrong}");
            }
        }
        // A Visa test card number.
        assert!(Checksum::Luhn.valid("4111111111111111"));
        assert!(!Checksum::Luhn.valid("4111111111111112"));
    }

    #[test]
    fn mod11_2_published_examples() {
        // ISO/IEC 7064 MOD 11-2: 079 → X; ISNI/ORCID 0000-0002-1825-0097 and
        // 0000-0002-1694-233X (the check character of ORCID iDs).
        assert_eq!(mod11_2_check_char("079"), Some('X'));
        assert!(mod11_2_valid("079X"));
        assert!(!mod11_2_valid("0790"));
        assert_eq!(mod11_2_check_char("000000021825009"), Some('7'));
        assert!(Checksum::Iso7064Mod11_2.valid("0000000218250097"));
        assert!(Checksum::Iso7064Mod11_2.valid("000000021694233X"));
        assert!(!Checksum::Iso7064Mod11_2.valid("0000000216942330"));
        // China's resident identity card (GB 11643-1999) specimen number.
        assert!(Checksum::Iso7064Mod11_2.valid("11010519491231002X"));
        assert_eq!(mod11_2_check_char("07A"), None);
        assert!(!mod11_2_valid("X"));
        assert!(!mod11_2_valid(""));
    }

    #[test]
    fn each_scheme_catches_every_single_substitution() {
        let payload = "9876543210123";
        let full = |c: char| format!("{payload}{c}");
        let v = char::from(b'0' + verhoeff_check_digit(&ds(payload)));
        let l = char::from(b'0' + luhn_check_digit(&ds(payload)));
        let m = mod11_2_check_char(payload).unwrap();
        for (scheme, number) in [
            (Checksum::Verhoeff, full(v)),
            (Checksum::Luhn, full(l)),
            (Checksum::Iso7064Mod11_2, full(m)),
        ] {
            assert!(scheme.valid(&number), "{scheme:?}");
            let bytes = number.as_bytes();
            for i in 0..bytes.len() {
                for d in b'0'..=b'9' {
                    if d != bytes[i] {
                        let mut m = bytes.to_vec();
                        m[i] = d;
                        let m = String::from_utf8(m).unwrap();
                        assert!(!scheme.valid(&m), "{scheme:?} {m}");
                    }
                }
            }
        }
        assert!(Checksum::None.valid("anything"));
    }

    #[test]
    fn config_names() {
        let parse = |s: &str| serde_json::from_str::<Checksum>(&format!("\"{s}\""));
        assert_eq!(parse("verhoeff").unwrap(), Checksum::Verhoeff);
        assert_eq!(parse("luhn").unwrap(), Checksum::Luhn);
        assert_eq!(parse("iso7064-mod11-2").unwrap(), Checksum::Iso7064Mod11_2);
        assert_eq!(parse("none").unwrap(), Checksum::None);
        assert!(parse("crc32").is_err());
    }
}
