//! The machine-readable zone of a passport: ICAO Doc 9303, Part 4 (TD3, two
//! lines of 44 characters) with the check digits of Part 3 §4.9.

use std::fmt;

use crate::date::{self, Date};

/// Characters per TD3 line (ICAO 9303 Part 4 §4.2.2).
pub const LINE: usize = 44;

/// A field protected by its own check digit, named in reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    DocumentNumber,
    DateOfBirth,
    DateOfExpiry,
    OptionalData,
    Composite,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::DocumentNumber => "document number",
            Field::DateOfBirth => "date of birth",
            Field::DateOfExpiry => "expiry date",
            Field::OptionalData => "personal number (optional data)",
            Field::Composite => "whole second line (composite)",
        }
    }
}

/// Why a text is not a valid passport MRZ. `Display` is a reason safe to
/// show to the user: it names fields, never their contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MrzError {
    /// Not two lines of 44 characters (or one of 88).
    Shape,
    /// A character outside `A`-`Z`, `0`-`9` and `<` (the MRZ character set of ICAO 9303 Part 3).
    Charset,
    /// The first character is not `P` (the document is not a passport).
    NotPassport,
    /// A check digit does not match its field (Part 3 §4.9).
    CheckDigit(Field),
    /// A field's content is impossible (e.g. digits in the name, a 31 April).
    BadField(&'static str),
}

impl fmt::Display for MrzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MrzError::Shape => f.write_str(
                "this is not a passport's machine-readable zone: expected two lines of 44 \
                 characters (or both lines as one text of 88)",
            ),
            MrzError::Charset => f.write_str(
                "the machine-readable zone may contain only the letters A-Z, digits and '<'",
            ),
            MrzError::NotPassport => f.write_str(
                "this is not a passport's machine-readable zone: the first line must start with 'P'",
            ),
            MrzError::CheckDigit(field) => write!(
                f,
                "the check digit of the {} is wrong; please check the machine-readable zone for reading or typing mistakes",
                field.name()
            ),
            MrzError::BadField(what) => write!(f, "the machine-readable zone's {what} is not valid"),
        }
    }
}

/// The value of an MRZ character in check-digit arithmetic (Part 3 §4.9):
/// digits are themselves, `A`-`Z` are 10-35, the filler `<` is 0.
fn char_value(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A'..=b'Z' => u32::from(c - b'A') + 10,
        _ => 0,
    }
}

/// The check digit of `data` (Part 3 §4.9): each character's value times the
/// repeating weights 7, 3, 1, summed, modulo 10.
pub fn check_digit(data: &[u8]) -> u8 {
    const WEIGHTS: [u32; 3] = [7, 3, 1];
    let sum: u32 = data
        .iter()
        .zip(WEIGHTS.iter().cycle())
        .map(|(&c, &w)| char_value(c) * w)
        .sum();
    // sum % 10 < 10, so it fits in u8.
    (sum % 10) as u8
}

fn check(data: &[u8], digit: u8, field: Field) -> Result<(), MrzError> {
    if digit.is_ascii_digit() && digit - b'0' == check_digit(data) {
        Ok(())
    } else {
        Err(MrzError::CheckDigit(field))
    }
}

/// The two lines of a TD3 MRZ: trimmed, spaces and tabs removed, upper-cased,
/// given as two lines or one of 88 characters.
pub fn split_lines(text: &str) -> Result<[Vec<u8>; 2], MrzError> {
    // Two lines plus generous white space; anything longer is not an MRZ,
    // and is not copied.
    if text.len() > 4 * LINE {
        return Err(MrzError::Shape);
    }
    let lines: Vec<Vec<u8>> = text
        .lines()
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_whitespace())
                .flat_map(char::to_uppercase)
                .collect::<String>()
                .into_bytes()
        })
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [one] if one.len() == 2 * LINE => Ok([one[..LINE].to_vec(), one[LINE..].to_vec()]),
        [a, b] if a.len() == LINE && b.len() == LINE => Ok([a.clone(), b.clone()]),
        _ => {
            // A wrong shape made of foreign characters is reported as such.
            if lines.iter().flatten().any(|&c| !valid_char(c)) {
                Err(MrzError::Charset)
            } else {
                Err(MrzError::Shape)
            }
        }
    }
}

fn valid_char(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'<'
}

/// Sex as printed in the MRZ: `F`, `M`, or unspecified (`<`, or `X`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Female,
    Male,
    Unspecified,
}

impl Sex {
    pub fn code(self) -> &'static str {
        match self {
            Sex::Female => "F",
            Sex::Male => "M",
            Sex::Unspecified => "X",
        }
    }
}

/// A date of birth whose month and day may be unknown (`<<`, ICAO 9303 Part 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthDate {
    pub yy: u32,
    pub month: Option<u32>,
    pub day: Option<u32>,
}

impl BirthDate {
    /// ISO 8601 with the century chosen by [`date::birth_year`]; reduced
    /// precision (`YYYY-MM`, `YYYY`) when the day or month is unknown.
    pub fn iso(&self, today: Date) -> String {
        let year = date::birth_year(self.yy, self.month, self.day, today);
        match (self.month, self.day) {
            (Some(m), Some(d)) => Date {
                year,
                month: m,
                day: d,
            }
            .to_string(),
            (Some(m), None) => format!("{year:04}-{m:02}"),
            _ => format!("{year:04}"),
        }
    }
}

/// A TD3 MRZ whose check digits and fields are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passport {
    /// Three-letter code of the issuing state or organisation, fillers removed.
    pub issuing_state: String,
    pub surname: String,
    pub given_names: String,
    pub document_number: String,
    pub nationality: String,
    pub birth: BirthDate,
    pub sex: Sex,
    /// Two-digit year, month, day.
    pub expiry: (u32, u32, u32),
}

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

/// A three-letter state code (Part 3 §5): letters, padded with `<`.
fn state_code(b: &[u8], what: &'static str) -> Result<String, MrzError> {
    let code = String::from_utf8_lossy(b).trim_end_matches('<').to_string();
    if code.is_empty() || !code.bytes().all(|c| c.is_ascii_uppercase()) {
        return Err(MrzError::BadField(what));
    }
    Ok(code)
}

/// Words of a name component: `<` separates them (Part 3 §4.6).
fn words(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .split('<')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses and checks a TD3 MRZ (ICAO 9303 Part 4 §4.2.2):
///
/// line 1: `P`, type, issuing state (3), name (39: primary `<<` secondary);
/// line 2: document number (9) + check, nationality (3), date of birth
/// YYMMDD + check, sex, date of expiry YYMMDD + check, optional data (14) +
/// check, composite check over positions 1-10, 14-20 and 22-43.
pub fn parse(text: &str) -> Result<Passport, MrzError> {
    let [l1, l2] = split_lines(text)?;
    if !l1.iter().chain(l2.iter()).all(|&c| valid_char(c)) {
        return Err(MrzError::Charset);
    }
    if l1[0] != b'P' {
        return Err(MrzError::NotPassport);
    }

    // Check digits first: a misread character is the likeliest mistake, and
    // its reason is the most useful one.
    check(&l2[0..9], l2[9], Field::DocumentNumber)?;
    check(&l2[13..19], l2[19], Field::DateOfBirth)?;
    check(&l2[21..27], l2[27], Field::DateOfExpiry)?;
    // An unused optional-data field may carry `<` (or 0) as its check
    // digit (ICAO 9303 Part 4, TD3 line 2, position 43).
    let optional = &l2[28..42];
    let unused = optional.iter().all(|&c| c == b'<') && matches!(l2[42], b'<' | b'0');
    if !unused {
        check(optional, l2[42], Field::OptionalData)?;
    }
    let composite: Vec<u8> = [&l2[0..10], &l2[13..20], &l2[21..43]].concat();
    check(&composite, l2[43], Field::Composite)?;

    if !l1[1].is_ascii_uppercase() && l1[1] != b'<' {
        return Err(MrzError::BadField("document type"));
    }
    let issuing_state = state_code(&l1[2..5], "issuing state")?;
    let name = &l1[5..];
    if name.iter().any(u8::is_ascii_digit) {
        return Err(MrzError::BadField("name"));
    }
    let (primary, secondary) = match name.windows(2).position(|w| w == b"<<") {
        Some(i) => (&name[..i], &name[i + 2..]),
        None => (name, &name[name.len()..]),
    };
    let (surname, given_names) = (words(primary), words(secondary));
    if surname.is_empty() && given_names.is_empty() {
        return Err(MrzError::BadField("name"));
    }

    let document_number = String::from_utf8_lossy(&l2[0..9])
        .trim_end_matches('<')
        .to_string();
    if document_number.is_empty() || document_number.contains('<') {
        return Err(MrzError::BadField("document number"));
    }
    let nationality = state_code(&l2[10..13], "nationality")?;

    // Date of birth: the year is always known; an unknown month or day is
    // written `<<` (ICAO 9303 Part 3). Validity is checked against a leap year
    // (2000) where the century is still open: 29 February is then allowed,
    // and the final date is checked again by the caller with its century.
    let dob = &l2[13..19];
    let yy = two_digits(&dob[0..2]).ok_or(MrzError::BadField("date of birth"))?;
    let (month, day) = match (&dob[2..4], &dob[4..6]) {
        (b"<<", b"<<") => (None, None),
        (m, b"<<") => (two_digits(m), None),
        (m, d) => (two_digits(m), two_digits(d)),
    };
    if (month.is_none() && (dob[2] != b'<' || day.is_some()))
        || (day.is_none() && dob[4] != b'<')
        || !month.is_none_or(|m| (1..=12).contains(&m))
        || day.is_some_and(|d| Date::new(2000, month.unwrap_or(1), d).is_none())
    {
        return Err(MrzError::BadField("date of birth"));
    }

    let sex = match l2[20] {
        b'F' => Sex::Female,
        b'M' => Sex::Male,
        b'<' | b'X' => Sex::Unspecified,
        _ => return Err(MrzError::BadField("sex")),
    };

    let exp = &l2[21..27];
    let expiry = match (
        two_digits(&exp[0..2]),
        two_digits(&exp[2..4]),
        two_digits(&exp[4..6]),
    ) {
        (Some(y), Some(m), Some(d)) if Date::new(2000, m, d).is_some() => (y, m, d),
        _ => return Err(MrzError::BadField("expiry date")),
    };

    Ok(Passport {
        issuing_state,
        surname,
        given_names,
        document_number,
        nationality,
        birth: BirthDate { yy, month, day },
        sex,
        expiry,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The specimen of ICAO Doc 9303 Part 4 (the TD3 specimen data page).
    pub const SPECIMEN_1: &str = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<";
    pub const SPECIMEN_2: &str = "L898902C36UTO7408122F1204159ZE184226B<<<<<10";

    /// Line 2 with `expiry` (YYMMDD) and every check digit recomputed.
    pub fn line2_with_expiry(expiry: &str) -> String {
        let mut l2 = SPECIMEN_2.as_bytes().to_vec();
        l2[21..27].copy_from_slice(expiry.as_bytes());
        l2[27] = b'0' + check_digit(&l2[21..27]);
        let composite: Vec<u8> = [&l2[0..10], &l2[13..20], &l2[21..43]].concat();
        l2[43] = b'0' + check_digit(&composite);
        String::from_utf8(l2).unwrap()
    }

    #[test]
    fn specimen_check_digits() {
        // Part 3 §4.9's worked example: the date 520727 has check digit 3.
        assert_eq!(check_digit(b"520727"), 3);
        let l2 = SPECIMEN_2.as_bytes();
        assert_eq!(check_digit(b"L898902C3"), 6);
        assert_eq!(check_digit(b"740812"), 2);
        assert_eq!(check_digit(b"120415"), 9);
        assert_eq!(check_digit(b"ZE184226B<<<<<"), 1);
        let composite = [&l2[0..10], &l2[13..20], &l2[21..43]].concat();
        assert_eq!(check_digit(&composite), 0);
    }

    #[test]
    fn parses_the_specimen() {
        let p = parse(&format!("{SPECIMEN_1}\n{SPECIMEN_2}")).unwrap();
        assert_eq!(p.issuing_state, "UTO");
        assert_eq!(p.surname, "ERIKSSON");
        assert_eq!(p.given_names, "ANNA MARIA");
        assert_eq!(p.document_number, "L898902C3");
        assert_eq!(p.nationality, "UTO");
        assert_eq!(
            p.birth,
            BirthDate {
                yy: 74,
                month: Some(8),
                day: Some(12)
            }
        );
        assert_eq!(p.sex, Sex::Female);
        assert_eq!(p.expiry, (12, 4, 15));
        // One line of 88, CRLF, lower case and stray spaces are accepted too.
        assert_eq!(parse(&format!("{SPECIMEN_1}{SPECIMEN_2}")).unwrap(), p);
        assert_eq!(
            parse(&format!(
                "  {}\r\n{} \n",
                SPECIMEN_1.to_lowercase(),
                SPECIMEN_2
            ))
            .unwrap(),
            p
        );
        assert_eq!(parse(&format!("{SPECIMEN_1}\n\n{SPECIMEN_2}")).unwrap(), p);
    }

    #[test]
    fn every_altered_check_digit_is_caught_by_name() {
        for (pos, field) in [
            (9, Field::DocumentNumber),
            (19, Field::DateOfBirth),
            (27, Field::DateOfExpiry),
            (42, Field::OptionalData),
            (43, Field::Composite),
        ] {
            let mut l2 = SPECIMEN_2.as_bytes().to_vec();
            l2[pos] = if l2[pos] == b'9' { b'8' } else { l2[pos] + 1 };
            let l2 = String::from_utf8(l2).unwrap();
            assert_eq!(
                parse(&format!("{SPECIMEN_1}\n{l2}")),
                Err(MrzError::CheckDigit(field)),
                "{pos}"
            );
        }
        // A changed data character is caught by its field's digit.
        let l2 = SPECIMEN_2.replacen("7408122", "7408132", 1);
        assert_eq!(
            parse(&format!("{SPECIMEN_1}\n{l2}")),
            Err(MrzError::CheckDigit(Field::DateOfBirth))
        );
    }

    #[test]
    fn unused_optional_data_may_have_a_filler_check_digit() {
        let mut l2 = SPECIMEN_2.as_bytes().to_vec();
        l2[28..43].copy_from_slice(b"<<<<<<<<<<<<<<<");
        let composite: Vec<u8> = [&l2[0..10], &l2[13..20], &l2[21..43]].concat();
        l2[43] = b'0' + check_digit(&composite);
        let l2 = String::from_utf8(l2).unwrap();
        assert!(parse(&format!("{SPECIMEN_1}\n{l2}")).is_ok());
    }

    #[test]
    fn shapes_and_characters() {
        for text in [
            "",
            "   ",
            "234123412346",
            SPECIMEN_1,
            &format!("{SPECIMEN_1}\n{SPECIMEN_2}X"),
        ] {
            assert_eq!(parse(text), Err(MrzError::Shape), "{text}");
        }
        assert_eq!(parse(&"1234567890".repeat(30)), Err(MrzError::Shape));
        assert_eq!(
            parse(&format!("{SPECIMEN_1}\n{}", SPECIMEN_2.replace('<', "#"))),
            Err(MrzError::Charset)
        );
        assert_eq!(
            parse(&format!("I{}\n{SPECIMEN_2}", &SPECIMEN_1[1..])),
            Err(MrzError::NotPassport)
        );
        assert_eq!(
            parse(&format!(
                "{}\n{SPECIMEN_2}",
                SPECIMEN_1.replace("ANNA", "ANN4")
            )),
            Err(MrzError::BadField("name"))
        );
        // Reasons never repeat the document's contents.
        for e in [
            MrzError::Shape,
            MrzError::Charset,
            MrzError::NotPassport,
            MrzError::CheckDigit(Field::DocumentNumber),
            MrzError::BadField("name"),
        ] {
            let reason = e.to_string();
            assert!(
                !reason.contains("L898902C3") && !reason.contains("ERIKSSON"),
                "{reason}"
            );
        }
    }

    #[test]
    fn impossible_dates_are_refused() {
        let mut l2 = line2_with_expiry("120431").into_bytes();
        // The expiry check digit is right, but there is no 31 April.
        assert_eq!(
            parse(&format!(
                "{SPECIMEN_1}\n{}",
                String::from_utf8(l2.clone()).unwrap()
            )),
            Err(MrzError::BadField("expiry date"))
        );
        // Unknown day of birth.
        l2 = SPECIMEN_2.as_bytes().to_vec();
        l2[17..19].copy_from_slice(b"<<");
        l2[19] = b'0' + check_digit(&l2[13..19]);
        let composite: Vec<u8> = [&l2[0..10], &l2[13..20], &l2[21..43]].concat();
        l2[43] = b'0' + check_digit(&composite);
        let p = parse(&format!("{SPECIMEN_1}\n{}", String::from_utf8(l2).unwrap())).unwrap();
        assert_eq!(p.birth.day, None);
        let today = Date::new(2026, 1, 1).unwrap();
        assert_eq!(p.birth.iso(today), "1974-08");
        // An unknown month with a known day is not a date.
        let mut l2 = SPECIMEN_2.as_bytes().to_vec();
        l2[15..17].copy_from_slice(b"<<");
        l2[19] = b'0' + check_digit(&l2[13..19]);
        let composite: Vec<u8> = [&l2[0..10], &l2[13..20], &l2[21..43]].concat();
        l2[43] = b'0' + check_digit(&composite);
        assert_eq!(
            parse(&format!("{SPECIMEN_1}\n{}", String::from_utf8(l2).unwrap())),
            Err(MrzError::BadField("date of birth"))
        );
    }

    #[test]
    fn single_name_and_padded_states() {
        let l1 = "P<D<<MUSTERMANN<<<<<<<<<<<<<<<<<<<<<<<<<<<<<";
        assert_eq!(l1.len(), 44);
        let mut l2 = SPECIMEN_2.as_bytes().to_vec();
        l2[10..13].copy_from_slice(b"D<<");
        let composite: Vec<u8> = [&l2[0..10], &l2[13..20], &l2[21..43]].concat();
        l2[43] = b'0' + check_digit(&composite);
        let p = parse(&format!("{l1}\n{}", String::from_utf8(l2).unwrap())).unwrap();
        assert_eq!(p.issuing_state, "D");
        assert_eq!(p.nationality, "D");
        assert_eq!(p.surname, "MUSTERMANN");
        assert_eq!(p.given_names, "");
    }
}
