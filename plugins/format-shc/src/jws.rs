//! The compact JWS of a SMART Health Card (SMART Health Cards Framework,
//! "Health Cards are encoded as Compact Serialization JSON Web Signatures"
//! and "Health Cards are Compact"; RFC 7515 §7.1).
//!
//! Header `{"zip":"DEF","alg":"ES256","kid":<JWK thumbprint>}`; payload: the
//! minified JSON claims compressed with raw DEFLATE (RFC 1951, no zlib or gzip
//! header); signature: ES256 (RFC 7518 §3.4), the 64-byte `r || s`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use divoc_sdk::Error;
use serde::Serialize;
use serde_json::Value;

/// Largest inflated payload accepted on decode.
pub const MAX_INFLATED: usize = 256 * 1024;
/// DEFLATE level (miniz: 0-10). 9 is the best standard level.
const LEVEL: u8 = 9;

/// The protected header, in the member order of the spec's examples.
#[derive(Debug, Serialize)]
struct Header<'a> {
    zip: &'a str,
    alg: &'a str,
    kid: &'a str,
}

/// base64url without padding (RFC 7515 §2).
pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// `BASE64URL(header) . BASE64URL(DEFLATE(payload))`: the JWS signing input.
pub fn signing_input(kid: &str, payload_json: &[u8]) -> Result<String, Error> {
    let header = serde_json::to_vec(&Header {
        zip: "DEF",
        alg: "ES256",
        kid,
    })
    .map_err(|e| Error::internal(e.to_string()))?;
    let compressed = miniz_oxide::deflate::compress_to_vec(payload_json, LEVEL);
    Ok(format!("{}.{}", b64(&header), b64(&compressed)))
}

/// A parsed, inflated SMART Health Card JWS (not yet verified).
#[derive(Debug)]
pub struct Parsed {
    pub kid: String,
    /// `header.payload` exactly as received: what the signature covers.
    pub signing_input: String,
    /// The inflated payload.
    pub claims: Value,
    pub signature: Vec<u8>,
}

fn b64_decode(part: &str, what: &str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Error::invalid_input(format!("the JWS {what} is not base64url")))
}

/// Splits, checks and inflates a compact JWS.
pub fn parse(jws: &str) -> Result<Parsed, Error> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::invalid_input(
            "a compact JWS has three dot-separated parts",
        ));
    };
    let header: Value = serde_json::from_slice(&b64_decode(h, "header")?)
        .map_err(|_| Error::invalid_input("the JWS header is not JSON"))?;
    let member = |name: &str| header.get(name).and_then(Value::as_str);
    // "header includes alg: ES256" / "header includes zip: DEF".
    if member("alg") != Some("ES256") {
        return Err(Error::invalid_input(
            "a SMART Health Card is signed with ES256 (header alg)",
        ));
    }
    if member("zip") != Some("DEF") {
        return Err(Error::invalid_input(
            "a SMART Health Card payload is DEFLATE-compressed (header zip DEF)",
        ));
    }
    let kid = member("kid")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::invalid_input("the JWS header has no kid"))?
        .to_owned();
    let compressed = b64_decode(p, "payload")?;
    let inflated = miniz_oxide::inflate::decompress_to_vec_with_limit(&compressed, MAX_INFLATED)
        .map_err(|e| match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => Error::invalid_input(format!(
                "the inflated payload exceeds {} KiB",
                MAX_INFLATED / 1024
            )),
            _ => Error::invalid_input("the JWS payload is not raw DEFLATE data"),
        })?;
    let claims: Value = serde_json::from_slice(&inflated)
        .map_err(|_| Error::invalid_input("the inflated JWS payload is not JSON"))?;
    if !claims.is_object() {
        return Err(Error::invalid_input("the JWS payload is not a JSON object"));
    }
    let signature = b64_decode(s, "signature")?;
    Ok(Parsed {
        kid,
        signing_input: format!("{h}.{p}"),
        claims,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_input_has_the_spec_header_and_raw_deflate() {
        let input = signing_input("kid-1", br#"{"iss":"x"}"#).unwrap();
        let (h, p) = input.split_once('.').unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(h).unwrap(),
            br#"{"zip":"DEF","alg":"ES256","kid":"kid-1"}"#
        );
        let raw = URL_SAFE_NO_PAD.decode(p).unwrap();
        // Raw DEFLATE: no zlib header (0x78 ..), inflates without one.
        assert_eq!(
            miniz_oxide::inflate::decompress_to_vec(&raw).unwrap(),
            br#"{"iss":"x"}"#
        );
        let parsed = parse(&format!("{input}.{}", b64(&[7; 64]))).unwrap();
        assert_eq!(parsed.kid, "kid-1");
        assert_eq!(parsed.signing_input, input);
        assert_eq!(parsed.claims["iss"], "x");
        assert_eq!(parsed.signature, vec![7; 64]);
    }

    fn jws_with(header: &str, payload: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(payload),
            b64(&[0; 64])
        )
    }

    #[test]
    fn refuses_wrong_headers_and_payloads() {
        let good = miniz_oxide::deflate::compress_to_vec(b"{}", 9);
        assert!(parse(&jws_with(r#"{"zip":"DEF","alg":"ES256","kid":"k"}"#, &good)).is_ok());
        for header in [
            r#"{"zip":"DEF","alg":"HS256","kid":"k"}"#,
            r#"{"alg":"ES256","kid":"k"}"#,
            r#"{"zip":"DEF","alg":"ES256"}"#,
            r#"{"zip":"DEF","alg":"ES256","kid":""}"#,
            "not json",
        ] {
            assert!(parse(&jws_with(header, &good)).is_err(), "{header}");
        }
        let h = r#"{"zip":"DEF","alg":"ES256","kid":"k"}"#;
        // zlib-wrapped, not raw.
        let zlib = miniz_oxide::deflate::compress_to_vec_zlib(b"{}", 9);
        assert!(parse(&jws_with(h, &zlib)).is_err());
        assert!(parse(&jws_with(h, b"garbage")).is_err());
        let array = miniz_oxide::deflate::compress_to_vec(b"[]", 9);
        assert!(parse(&jws_with(h, &array)).is_err());
        assert!(parse("a.b").is_err());
        assert!(parse("a.b.c.d").is_err());
        assert!(parse("a+.b.c").is_err());
    }

    #[test]
    fn refuses_a_deflate_bomb() {
        let big = vec![b' '; MAX_INFLATED + 1];
        let bomb = miniz_oxide::deflate::compress_to_vec(&big, 9);
        assert!(bomb.len() < 2048);
        let h = r#"{"zip":"DEF","alg":"ES256","kid":"k"}"#;
        let err = parse(&jws_with(h, &bomb)).unwrap_err();
        assert!(err.message().contains("exceeds"), "{err:?}");
    }
}
