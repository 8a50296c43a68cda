//! JSON Canonicalization Scheme ([RFC 8785]).
//!
//! The heavy lifting (ECMAScript number serialization, RFC 8785 §3.2.2.3;
//! UTF-16 code-unit key ordering, §3.2.3; minimal string escaping, §3.2.2.2)
//! is done by the `serde_json_canonicalizer` crate. This module adds the one
//! guard that crate cannot apply: `serde_json` keeps integers as `i64`/`u64`,
//! whereas RFC 8785 §3.2.2.3 requires every number to be an IEEE 754 double.
//! Integers outside ±2^53 would silently change value when a verifier in
//! another language parses them, so they are rejected instead (I-JSON,
//! RFC 7493 §2.2). Put such values in strings.
//!
//! The RFC's own examples (§3.2.2.3 / Appendix B numbers, §3.2.3 sorting,
//! §3.2.4 whole-document example) are kept as data under
//! `tests/vectors/jcs/` and checked by the unit tests below.
//!
//! [RFC 8785]: https://www.rfc-editor.org/rfc/rfc8785

use serde_json::Value;
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
    check_numbers(value)?;
    Ok(serde_json_canonicalizer::to_string(value)?)
}

/// Canonicalize `value` per RFC 8785 and return the canonical UTF-8 bytes.
pub fn canonicalize_to_vec(value: &Value) -> Result<Vec<u8>, JcsError> {
    canonicalize(value).map(String::into_bytes)
}

fn check_numbers(value: &Value) -> Result<(), JcsError> {
    match value {
        Value::Number(n) => {
            let unsafe_int = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u > MAX_SAFE_INTEGER,
                (None, Some(i)) => i.unsigned_abs() > MAX_SAFE_INTEGER,
                (None, None) => false,
            };
            if unsafe_int {
                return Err(JcsError::UnsafeInteger(n.to_string()));
            }
            Ok(())
        }
        Value::Array(items) => items.iter().try_for_each(check_numbers),
        Value::Object(map) => map.values().try_for_each(check_numbers),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
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

    #[test]
    fn integers_inside_the_safe_range_are_plain() {
        let value = serde_json::json!([0, -1, 9007199254740992u64, -9007199254740992i64]);
        assert_eq!(
            canonicalize(&value).unwrap(),
            "[0,-1,9007199254740992,-9007199254740992]"
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
