//! JSON Canonicalization Scheme ([RFC 8785]).
//!
//! The canonical form is written straight from a `serde_json::Value` into
//! one buffer (this is on the path of every certificate issued and
//! verified, twice each):
//!
//! - strings (§3.2.2.2) are escaped exactly as `serde_json` writes them:
//!   `\"`, `\\`, `\b \f \n \r \t`, other controls as `\u00xx` (lower-case
//!   hex), everything else literal — which is what RFC 8785 requires;
//! - object members (§3.2.3) are ordered by the UTF-16 code units of their
//!   names. `serde_json`'s map is ordered by UTF-8 bytes, which agrees
//!   except where a name has a character above U+FFFF facing one in
//!   U+E000–U+FFFF; such objects are re-sorted;
//! - integers inside ±2^53 are written in decimal, as ECMAScript prints
//!   those doubles; other numbers (fractions, exponents) go through the
//!   `serde_json_canonicalizer` crate's ECMAScript number formatting
//!   (§3.2.2.3, `ryu-js`).
//!
//! `serde_json` keeps integers as `i64`/`u64`, whereas RFC 8785 §3.2.2.3
//! requires every number to be an IEEE 754 double. Integers outside ±2^53
//! would silently change value when a verifier in another language parses
//! them, so they are rejected instead (I-JSON, RFC 7493 §2.2), unless the
//! integer is exactly the canonical form of its double (what this writer
//! prints for a large double, e.g. `10000000000000000000` for 1e19: found
//! by the `jcs` fuzz target, whose property is that canonical text stays
//! canonical when read back). Put other such values in strings.
//!
//! The RFC's own examples (§3.2.2.3 / Appendix B numbers, §3.2.3 sorting,
//! §3.2.4 whole-document example) are kept as data under
//! `tests/vectors/jcs/` and checked by the unit tests below, which also
//! compare this writer with `serde_json_canonicalizer` on assorted
//! documents.
//!
//! [RFC 8785]: https://www.rfc-editor.org/rfc/rfc8785

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};
use thiserror::Error;

/// Largest integer magnitude an IEEE 754 double represents exactly (2^53).
const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// Why a value could not be canonicalized.
#[derive(Debug, Error)]
pub enum JcsError {
    /// An integer cannot be represented exactly as an IEEE 754 double.
    #[error("integer {0} is outside the IEEE 754 exact range (±2^53); encode it as a string")]
    UnsafeInteger(String),
    /// The canonicalizer itself failed.
    #[error("JSON canonicalization failed: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Canonicalize `value` per RFC 8785 and return the canonical UTF-8 text.
pub fn canonicalize(value: &Value) -> Result<String, JcsError> {
    let mut out = Vec::with_capacity(1024);
    canonicalize_into(value, &mut out)?;
    Ok(utf8(out))
}

/// Canonicalize `value` per RFC 8785 and return the canonical UTF-8 bytes.
pub fn canonicalize_to_vec(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::with_capacity(1024);
    canonicalize_into(value, &mut out)?;
    Ok(out)
}

/// Appends the RFC 8785 form of `value` to `out`.
pub fn canonicalize_into(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    write_value(value, out)
}

/// Appends the RFC 8785 form of the object `map` to `out`, leaving out the
/// member named `skip` and, when `replace` is given, writing its value in
/// place of the member of that name (added if absent).
///
/// This is "the document without its proof, with the proof's `@context`"
/// (Data Integrity §4.3 step 2 and eddsa-jcs-2022 §3.3.2), without
/// copying the document.
pub fn canonicalize_object_into(
    map: &Map<String, Value>,
    skip: Option<&str>,
    replace: Option<(&str, &Value)>,
    out: &mut Vec<u8>,
) -> Result<(), JcsError> {
    let mut members: Vec<(&str, &Value)> = map
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .filter(|(k, _)| replace.is_none_or(|(r, _)| r != k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    if let Some(r) = replace {
        members.push(r);
    }
    members.sort_unstable_by(|a, b| utf16_cmp(a.0, b.0));
    write_members(&members, out)
}

/// Writes `s` as a JSON string the way RFC 8785 §3.2.2.2 wants it (the
/// escaping every value and member name here gets), for code that writes
/// canonical JSON from a fixed template instead of a `Value`.
pub fn write_string(s: &str, out: &mut Vec<u8>) -> Result<(), JcsError> {
    serde_json::to_writer(&mut *out, s)?;
    Ok(())
}

/// Only valid UTF-8 is ever written (string contents come from `&str`,
/// the rest is ASCII), so this never replaces anything.
fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => serde_json::to_writer(&mut *out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out)?,
    }
    Ok(())
}

fn write_number(n: &Number, out: &mut Vec<u8>) -> Result<(), JcsError> {
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return write_large_integer(n, u as f64, out);
        }
        serde_json::to_writer(&mut *out, &u)?;
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return write_large_integer(n, i as f64, out);
        }
        serde_json::to_writer(&mut *out, &i)?;
    } else {
        serde_json_canonicalizer::to_writer(n, out)?;
    }
    Ok(())
}

/// An integer beyond ±2^53 is written only when it is already the
/// canonical form of the double nearest it: then a verifier that reads it
/// as a double (§3.2.2.3) reads the same value, and nothing is lost. Such
/// integers are what this writer prints for large doubles (1e19 is written
/// `10000000000000000000`), so its output stays canonical when read back.
/// Any other is refused: the signature would cover a different number.
fn write_large_integer(n: &Number, nearest: f64, out: &mut Vec<u8>) -> Result<(), JcsError> {
    let unsafe_integer = || JcsError::UnsafeInteger(n.to_string());
    let double = Number::from_f64(nearest).ok_or_else(unsafe_integer)?;
    let mut canonical = Vec::with_capacity(24);
    serde_json_canonicalizer::to_writer(&double, &mut canonical)?;
    if canonical != n.to_string().as_bytes() {
        return Err(unsafe_integer());
    }
    out.extend_from_slice(&canonical);
    Ok(())
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), JcsError> {
    let mut members: Vec<(&str, &Value)> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let sorted = members
        .windows(2)
        .all(|w| utf16_cmp(w[0].0, w[1].0) == Ordering::Less);
    if !sorted {
        members.sort_unstable_by(|a, b| utf16_cmp(a.0, b.0));
    }
    write_members(&members, out)
}

fn write_members(members: &[(&str, &Value)], out: &mut Vec<u8>) -> Result<(), JcsError> {
    out.push(b'{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k)?;
        out.push(b':');
        write_value(v, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// RFC 8785 §3.2.3: member names compare as arrays of UTF-16 code units.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests panic on failure by design.
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct NumberVector {
        ieee754: String,
        expected: String,
    }

    #[derive(Deserialize)]
    struct DocumentVector {
        name: String,
        input: String,
        expected: String,
    }

    #[derive(Deserialize)]
    struct NumberFile {
        vectors: Vec<NumberVector>,
    }

    fn number_vectors() -> Vec<NumberVector> {
        let file: NumberFile = serde_json::from_str(include_str!(
            "../tests/vectors/jcs/rfc8785-appendix-b-numbers.json"
        ))
        .unwrap();
        file.vectors
    }

    #[derive(Deserialize)]
    struct DocumentFile {
        vectors: Vec<DocumentVector>,
    }

    fn document_vectors() -> Vec<DocumentVector> {
        let file: DocumentFile =
            serde_json::from_str(include_str!("../tests/vectors/jcs/rfc8785-documents.json"))
                .unwrap();
        file.vectors
    }

    #[test]
    fn rfc8785_appendix_b_numbers() {
        let vectors = number_vectors();
        assert_eq!(vectors.len(), 24);
        for v in vectors {
            let bits = u64::from_str_radix(&v.ieee754, 16).unwrap();
            let value = Value::from(f64::from_bits(bits));
            assert_eq!(canonicalize(&value).unwrap(), v.expected, "{}", v.ieee754);
        }
    }

    #[test]
    fn rfc8785_documents() {
        for v in document_vectors() {
            let value: Value = serde_json::from_str(&v.input).unwrap();
            assert_eq!(canonicalize(&value).unwrap(), v.expected, "{}", v.name);
        }
    }

    #[test]
    fn non_finite_numbers_cannot_reach_the_canonicalizer() {
        // serde_json has no NaN/Infinity, which RFC 8785 §3.2.2.3 forbids anyway.
        assert!(serde_json::Number::from_f64(f64::NAN).is_none());
        assert!(serde_json::Number::from_f64(f64::INFINITY).is_none());
    }

    /// The crate this writer replaced on the hot path agrees with it on
    /// documents with every kind of value, escapes and non-BMP names.
    #[test]
    fn agrees_with_serde_json_canonicalizer() {
        let docs = [
            serde_json::json!({
                "z": 1, "a": [1, -2, 3.5, 1e21, 1e-7, 0.1, -0.0, 9007199254740992u64],
                "\u{1F600}": "emoji", "\u{FB33}": "dalet", "\u{E000}": "private",
                "é": "\u{0}\u{1f}\u{7f}\"\\/\u{2028}\n\t\r\u{8}\u{c}",
                "nested": {"b": null, "a": [true, false, {}, []], "": ""},
            }),
            serde_json::from_str(include_str!(
                "../tests/vectors/eddsa-jcs-2022/signed-credential.json"
            ))
            .unwrap(),
            serde_json::json!([]),
            serde_json::json!("x"),
            serde_json::json!(-9007199254740992i64),
        ];
        for doc in docs {
            assert_eq!(
                canonicalize(&doc).unwrap(),
                serde_json_canonicalizer::to_string(&doc).unwrap(),
                "{doc}"
            );
        }
    }

    #[test]
    fn object_without_a_member_and_with_a_replacement() {
        let doc = serde_json::json!({"@context": ["a", "b"], "proof": {"x": 1}, "z": 0, "b": 2});
        let mut out = Vec::new();
        let ctx = serde_json::json!(["a"]);
        canonicalize_object_into(
            doc.as_object().unwrap(),
            Some("proof"),
            Some(("@context", &ctx)),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, br#"{"@context":["a"],"b":2,"z":0}"#);
        out.clear();
        let bare = serde_json::json!({"k": 1});
        canonicalize_object_into(
            bare.as_object().unwrap(),
            Some("proof"),
            Some(("@context", &ctx)),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, br#"{"@context":["a"],"k":1}"#);
    }

    #[test]
    fn integers_inside_the_safe_range_are_plain() {
        let value = serde_json::json!([0, -1, 9007199254740992u64, -9007199254740992i64]);
        assert_eq!(
            canonicalize(&value).unwrap(),
            "[0,-1,9007199254740992,-9007199254740992]"
        );
    }

    #[test]
    fn a_large_integer_that_is_its_doubles_canonical_form_is_kept() {
        // What the writer prints for large doubles reads back as integers
        // beyond 2^53; they must canonicalize to themselves (the `jcs`
        // fuzz target's crash, fuzz/cases/jcs/).
        let double: Value = serde_json::from_str("[1e19, 1000000000533.0877021308e4]").unwrap();
        let text = canonicalize(&double).unwrap();
        assert_eq!(text, "[10000000000000000000,10000000005330878]");
        let integers: Value = serde_json::from_str(&text).unwrap();
        assert!(integers[0].is_u64());
        assert_eq!(canonicalize(&integers).unwrap(), text);
        assert_eq!(
            canonicalize(&serde_json::json!(-10000000000000000000.0f64)).unwrap(),
            "-10000000000000000000"
        );
    }

    #[test]
    fn integers_outside_the_safe_range_are_rejected() {
        for value in [
            serde_json::json!({"a": [9007199254740993u64]}),
            serde_json::json!(-9007199254740993i64),
            serde_json::json!(u64::MAX),
        ] {
            assert!(matches!(
                canonicalize(&value),
                Err(JcsError::UnsafeInteger(_))
            ));
        }
    }
}
