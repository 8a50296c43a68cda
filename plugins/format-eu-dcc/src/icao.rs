//! Names for the DCC `nam` object (EU DCC JSON schema 1.3, `person_name`):
//! `fn`/`gn` as written, `fnt`/`gnt` in the machine-readable form of ICAO
//! Doc 9303 Part 3 (upper case `A-Z`, `<` as the separator), at most 80
//! characters each.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Longest `fn`, `gn`, `fnt` and `gnt` the schema allows.
pub const MAX_LEN: usize = 80;

/// Doc 9303 Part 3 §6 (transliteration of multinational Latin-based
/// characters): the letters whose recommended transliteration is not just
/// the letter without its diacritic. Upper case only: input is upper-cased
/// first (`ß` becomes `SS` that way).
fn special(c: char) -> Option<&'static str> {
    Some(match c {
        'Ä' | 'Æ' => "AE",
        'Å' => "AA",
        'Ö' | 'Ø' | 'Œ' => "OE",
        'Ü' => "UE",
        'Ð' | 'Đ' => "D",
        'Þ' => "TH",
        'Ĳ' => "IJ",
        'Ł' => "L",
        'Ħ' => "H",
        'Ŋ' => "N",
        'ẞ' => "SS",
        _ => return None,
    })
}

/// The ICAO 9303 machine-readable form of a name: upper case; the letters
/// above transliterated, other diacritics stripped (Unicode canonical
/// decomposition, combining marks dropped); apostrophes omitted (Doc 9303
/// Part 3 §4.6); every other character (spaces, hyphens, letters of other
/// scripts) a `<` filler, runs of fillers collapsed and none at either end;
/// cut to 80 characters.
pub fn transliterate(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_LEN));
    let push = |c: char, out: &mut String| {
        if c == '<' && (out.is_empty() || out.ends_with('<')) {
            return;
        }
        out.push(c);
    };
    for upper in name.chars().flat_map(char::to_uppercase) {
        if let Some(s) = special(upper) {
            s.chars().for_each(|c| push(c, &mut out));
            continue;
        }
        for c in core::iter::once(upper).nfd() {
            match c {
                'A'..='Z' => push(c, &mut out),
                _ if is_combining_mark(c) => {}
                '\'' | '\u{2019}' | '\u{02BC}' => {}
                _ => push('<', &mut out),
            }
        }
        if out.len() > MAX_LEN {
            break;
        }
    }
    out.truncate(MAX_LEN);
    while out.ends_with('<') {
        out.pop();
    }
    out
}

/// A name cut to at most 80 characters (on a character boundary), trimmed.
pub fn limit(name: &str) -> String {
    let name = name.trim();
    match name.char_indices().nth(MAX_LEN) {
        Some((cut, _)) => name[..cut].trim_end().to_owned(),
        None => name.to_owned(),
    }
}

/// `(family, given)`: the last word is the family name, the words before it
/// the given names; a single word is a family name only.
pub fn split(name: &str) -> (String, Option<String>) {
    let words: Vec<&str> = name.split_whitespace().collect();
    match words.split_last() {
        None => (String::new(), None),
        Some((last, [])) => ((*last).to_owned(), None),
        Some((last, given)) => ((*last).to_owned(), Some(given.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specification_examples() {
        // eHealth Network / DCC test data: "Musterfrau-Gößinger",
        // "Matti Kari Yrjänä".
        assert_eq!(
            transliterate("Musterfrau-Gößinger"),
            "MUSTERFRAU<GOESSINGER"
        );
        assert_eq!(transliterate("Matti Kari Yrjänä"), "MATTI<KARI<YRJAENAE");
        assert_eq!(transliterate("Di Caprio"), "DI<CAPRIO");
    }

    #[test]
    fn diacritics_and_punctuation() {
        assert_eq!(transliterate("Sánchez Núñez"), "SANCHEZ<NUNEZ");
        assert_eq!(transliterate("Øster Åberg"), "OESTER<AABERG");
        assert_eq!(transliterate("D'Souza"), "DSOUZA");
        assert_eq!(transliterate("Þór Łukasz"), "THOR<LUKASZ");
        assert_eq!(transliterate("  Bhaya   Mitra  "), "BHAYA<MITRA");
        assert_eq!(transliterate("Mitra, Jr."), "MITRA<JR");
        // Other scripts are not transliterated: fillers only, then nothing.
        assert_eq!(transliterate("भया"), "");
        assert_eq!(transliterate("Ravi भया Kumar"), "RAVI<KUMAR");
        assert_eq!(transliterate(""), "");
        assert_eq!(transliterate("\u{0}\u{202e}\u{fe0f}"), "");
    }

    #[test]
    fn pattern_and_length() {
        let long = "Abcdefghij ".repeat(20);
        let t = transliterate(&long);
        assert!(t.len() <= MAX_LEN);
        assert!(t.bytes().all(|b| b.is_ascii_uppercase() || b == b'<'));
        assert!(!t.ends_with('<') && !t.starts_with('<'));
        assert_eq!(limit(&"é".repeat(100)).chars().count(), MAX_LEN);
        assert_eq!(limit("  Mitra "), "Mitra");
    }

    #[test]
    fn splitting() {
        assert_eq!(split("Bhaya Mitra"), ("Mitra".into(), Some("Bhaya".into())));
        assert_eq!(
            split("Matti  Kari Yrjänä Testaaja"),
            ("Testaaja".into(), Some("Matti Kari Yrjänä".into()))
        );
        assert_eq!(split("Madonna"), ("Madonna".into(), None));
        assert_eq!(split("   "), (String::new(), None));
    }
}
