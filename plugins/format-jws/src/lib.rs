//! Certificate format `jws-compact`: the host-signed credential JSON as the
//! payload of a compact JWS (RFC 7515) with an EdDSA (Ed25519) signature made
//! by the host's `signer` with the active key of the credential's signing
//! purpose. Header: `{"alg":"EdDSA","kid":"<key id>"}`.

use divoc_sdk::format::{ArtifactData, ArtifactKind, Credential, Decoded, FormatInfo, Guest};
use divoc_sdk::signer::{self, Algorithm};
use divoc_sdk::Error;
use serde::{Deserialize, Serialize};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (RFC 7515 §2).
pub fn b64url_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Decodes base64url without padding; `None` on any invalid character or length.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero (canonical encoding).
    (acc == 0).then_some(out)
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub alg: String,
    pub kid: String,
}

/// `BASE64URL(header) . BASE64URL(payload)`.
pub fn signing_input(kid: &str, payload: &[u8]) -> Result<String, Error> {
    let header = serde_json::to_vec(&Header {
        alg: "EdDSA".into(),
        kid: kid.into(),
    })
    .map_err(|e| Error::internal(e.to_string()))?;
    Ok(format!(
        "{}.{}",
        b64url_encode(&header),
        b64url_encode(payload)
    ))
}

/// A parsed compact JWS.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub header: Header,
    pub signing_input: String,
    pub payload: String,
    pub signature: Vec<u8>,
}

pub fn parse(jws: &str) -> Result<Parsed, Error> {
    let jws = jws.trim();
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::invalid_input(
            "a compact JWS has three dot-separated parts",
        ));
    };
    let bad = |what: &str| Error::invalid_input(format!("the JWS {what} is not valid base64url"));
    let header: Header = serde_json::from_slice(&b64url_decode(h).ok_or_else(|| bad("header"))?)
        .map_err(|e| Error::invalid_input(format!("the JWS header is invalid: {e}")))?;
    if header.alg != "EdDSA" {
        return Err(Error::invalid_input(format!(
            "unsupported JWS algorithm {}",
            divoc_sdk::quote(&header.alg)
        )));
    }
    let payload = String::from_utf8(b64url_decode(p).ok_or_else(|| bad("payload"))?)
        .map_err(|_| Error::invalid_input("the JWS payload is not UTF-8"))?;
    serde_json::from_str::<serde_json::Value>(&payload)
        .map_err(|e| Error::invalid_input(format!("the JWS payload is not JSON: {e}")))?;
    let signature = b64url_decode(s).ok_or_else(|| bad("signature"))?;
    Ok(Parsed {
        header,
        signing_input: format!("{h}.{p}"),
        payload,
        signature,
    })
}

struct Plugin;

impl Guest for Plugin {
    fn info() -> FormatInfo {
        FormatInfo {
            id: "jws-compact".into(),
            media_type: "application/jose".into(),
            kind: ArtifactKind::QrText,
        }
    }

    fn encode(credential: Credential) -> Result<ArtifactData, Error> {
        serde_json::from_str::<serde_json::Value>(&credential.json)?;
        let key = signer::active_key(&credential.signing_purpose)?;
        if !matches!(key.algorithm, Algorithm::Ed25519) {
            return Err(Error::internal("the active key is not Ed25519"));
        }
        let input = signing_input(&key.key_id, credential.json.as_bytes())?;
        let signature = signer::sign(&key.key_id, Algorithm::Ed25519, input.as_bytes())?;
        Ok(ArtifactData::Text(format!(
            "{input}.{}",
            b64url_encode(&signature)
        )))
    }

    fn decode(artifact: ArtifactData) -> Result<Decoded, Error> {
        let text = match artifact {
            ArtifactData::Text(t) => t,
            ArtifactData::Bytes(b) => String::from_utf8(b)
                .map_err(|_| Error::invalid_input("the artifact is not UTF-8"))?,
        };
        let jws = parse(&text)?;
        let valid = match signer::verify(
            &jws.header.kid,
            Algorithm::Ed25519,
            jws.signing_input.as_bytes(),
            &jws.signature,
        ) {
            Ok(valid) => valid,
            // An unknown key or malformed signature: the artifact does not verify.
            Err(Error::Rejected(_) | Error::InvalidInput(_)) => false,
            Err(e) => return Err(e),
        };
        Ok(Decoded {
            claims_json: jws.payload,
            key_id: jws.header.kid,
            signature_valid: valid,
        })
    }
}

divoc_sdk::export_certificate_format!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_vectors() {
        // RFC 4648 §10, in the url alphabet, without padding.
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64url_encode(raw.as_bytes()), enc);
            assert_eq!(b64url_decode(enc).unwrap(), raw.as_bytes());
        }
        assert_eq!(b64url_encode(&[0xfb, 0xff]), "-_8");
        assert!(b64url_decode("Zh").is_none());
        assert!(b64url_decode("Z+8").is_none());
    }

    #[test]
    fn signing_input_matches_rfc_shape() {
        let input = signing_input("did:web:example.org#key-1", br#"{"a":1}"#).unwrap();
        let (h, p) = input.split_once('.').unwrap();
        assert_eq!(
            String::from_utf8(b64url_decode(h).unwrap()).unwrap(),
            r#"{"alg":"EdDSA","kid":"did:web:example.org#key-1"}"#
        );
        assert_eq!(b64url_decode(p).unwrap(), br#"{"a":1}"#);
    }

    #[test]
    fn parses_and_rejects() {
        let input = signing_input("k1", br#"{"a":1}"#).unwrap();
        let jws = format!("{input}.{}", b64url_encode(&[1, 2, 3]));
        let parsed = parse(&jws).unwrap();
        assert_eq!(parsed.header.kid, "k1");
        assert_eq!(parsed.payload, r#"{"a":1}"#);
        assert_eq!(parsed.signature, vec![1, 2, 3]);
        assert_eq!(parsed.signing_input, input);
        assert!(parse("a.b").is_err());
        assert!(parse(&format!("{jws}.x")).is_err());
        let other = format!(
            "{}.{}.",
            b64url_encode(br#"{"alg":"HS256","kid":"k"}"#),
            b64url_encode(b"{}")
        );
        assert!(parse(&other).is_err());
    }
}
