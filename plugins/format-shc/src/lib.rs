//! Certificate format `shc`: the host's vaccination credential as a SMART
//! Health Card (SMART Health Cards Framework v1.x, <https://spec.smarthealth.cards>;
//! FHIR R4; SMART Health Cards Vaccination & Testing IG), for a QR code.
//!
//! `encode` maps the credential onto a minimised FHIR bundle (Patient +
//! Immunization, [`payload`]), wraps it in JWT claims (`iss`, `nbf`, `exp`,
//! `jti`, `vc` with `rid`), compresses them with raw DEFLATE, signs the
//! compact JWS with the host's active ES256 key for the credential's signing
//! purpose ([`jws`]) and writes the `shc:/` numeric QR text ([`qr`]).
//!
//! `decode` accepts that QR text (one line, or `shc:/C/N/…` chunks), a bare
//! compact JWS, or a `.smart-health-card` file (`{"verifiableCredential":[jws]}`
//! with one card), checks the header (`alg` ES256, `zip` DEF), inflates the
//! payload (bounded) and verifies the signature with the host key named by
//! `kid`. A card signed by a key the host does not hold decodes with
//! `signature-valid: false`.

pub mod config;
pub mod jws;
pub mod payload;
pub mod qr;

use divoc_sdk::format::{ArtifactData, ArtifactKind, Credential, Decoded, FormatInfo, Guest};
use divoc_sdk::signer::{self, KeyAlgorithm};
use divoc_sdk::Error;
use serde_json::Value;

use crate::config::Config;

/// Largest artifact text accepted on decode.
pub const MAX_TEXT: usize = 64 * 1024;

/// The compact JWS in an artifact's text (QR text, bare JWS or a
/// `.smart-health-card` file holding exactly one card).
pub fn jws_of(text: &str) -> Result<String, Error> {
    if text.len() > MAX_TEXT {
        return Err(Error::invalid_input(format!(
            "the artifact exceeds {} KiB",
            MAX_TEXT / 1024
        )));
    }
    let text = text.trim();
    if qr::is_qr_text(text) {
        return qr::decode(text);
    }
    if text.starts_with('{') {
        // "via File Download": {"verifiableCredential": ["<JWS>", ...]}.
        let file: Value = serde_json::from_str(text)
            .map_err(|_| Error::invalid_input("the artifact is not a SMART Health Card"))?;
        return match file.get("verifiableCredential").and_then(Value::as_array) {
            Some(cards) if cards.len() == 1 => cards[0]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::invalid_input("verifiableCredential[0] is not a string")),
            Some(_) => Err(Error::invalid_input(
                "a .smart-health-card file must hold exactly one card to decode",
            )),
            None => Err(Error::invalid_input(
                "the artifact is not a SMART Health Card",
            )),
        };
    }
    let is_jws_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !text.is_empty() && text.bytes().all(is_jws_char) {
        return Ok(text.to_owned());
    }
    Err(Error::invalid_input(
        "the artifact is not a SMART Health Card (shc:/ text or a compact JWS)",
    ))
}

struct Plugin;

impl Guest for Plugin {
    fn info() -> FormatInfo {
        FormatInfo {
            id: "shc".into(),
            media_type: "application/smart-health-card".into(),
            kind: ArtifactKind::QrText,
        }
    }

    fn encode(credential: Credential) -> Result<ArtifactData, Error> {
        let source: Value = serde_json::from_str(&credential.json)?;
        let config: Config = divoc_sdk::config::load()?;
        let payload = payload::build(
            &source,
            &credential.id,
            &config,
            divoc_sdk::clock::unix_seconds,
        )?;
        // "payload is minified": serde_json writes no whitespace.
        let payload = serde_json::to_vec(&payload).map_err(|e| Error::internal(e.to_string()))?;
        // The header names the key, so the key is fetched before signing
        // (what `signer::sign_es256` does in one call, split in two).
        let key = signer::active_key_for(&credential.signing_purpose, KeyAlgorithm::Es256)?;
        let input = jws::signing_input(&key.key_id, &payload)?;
        let signature = signer::sign_with(&key.key_id, KeyAlgorithm::Es256, input.as_bytes())?;
        if signature.len() != 64 {
            return Err(Error::internal("the host's ES256 signature is not r || s"));
        }
        let jws = format!("{input}.{}", jws::b64(&signature));
        Ok(ArtifactData::Text(qr::encode(&jws)?))
    }

    fn decode(artifact: ArtifactData) -> Result<Decoded, Error> {
        let text = match artifact {
            ArtifactData::Text(t) => t,
            ArtifactData::Bytes(b) => {
                if b.len() > MAX_TEXT {
                    return Err(Error::invalid_input("the artifact is too large"));
                }
                String::from_utf8(b)
                    .map_err(|_| Error::invalid_input("the artifact is not UTF-8 text"))?
            }
        };
        let parsed = jws::parse(&jws_of(&text)?)?;
        let claims = payload::claims(&parsed.claims)?;
        let known = signer::key_infos()
            .into_iter()
            .any(|k| k.key_id == parsed.kid && matches!(k.algorithm, KeyAlgorithm::Es256));
        let valid = known
            && match signer::verify_with(
                &parsed.kid,
                KeyAlgorithm::Es256,
                parsed.signing_input.as_bytes(),
                &parsed.signature,
            ) {
                Ok(valid) => valid,
                // An unknown key or malformed signature: the card does not verify.
                Err(Error::Rejected(_) | Error::InvalidInput(_)) => false,
                Err(e) => return Err(e),
            };
        Ok(Decoded {
            claims_json: claims.to_string(),
            key_id: parsed.kid,
            signature_valid: valid,
        })
    }
}

divoc_sdk::export_certificate_format!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_jws_in_every_accepted_form() {
        let jws = "eyJhbGciOiJFUzI1NiJ9.e30.c2ln";
        assert_eq!(jws_of(jws).unwrap(), jws);
        assert_eq!(jws_of(&format!("  {jws}\n")).unwrap(), jws);
        assert_eq!(jws_of(&qr::encode(jws).unwrap()).unwrap(), jws);
        let file = format!(r#"{{"verifiableCredential":["{jws}"]}}"#);
        assert_eq!(jws_of(&file).unwrap(), jws);
        let two = format!(r#"{{"verifiableCredential":["{jws}","{jws}"]}}"#);
        assert!(jws_of(&two).is_err());
        assert!(jws_of(r#"{"x":1}"#).is_err());
        assert!(jws_of("this is not a certificate \u{0} ~~~ %%%").is_err());
        assert!(jws_of("").is_err());
        assert!(jws_of(&"1".repeat(MAX_TEXT + 1)).is_err());
    }
}
