//! Certificate format `eu-dcc`: the EU Digital COVID Certificate.
//!
//! `encode` maps the host's vaccination credential to a DCC (EU DCC JSON
//! schema 1.3.0, [`dcc`]), puts it in a CWT, signs that as a COSE_Sign1
//! with the host's active ES256 key for the credential's signing purpose,
//! and returns the `HC1:` QR text ([`hcert`], eHealth Network *Electronic
//! Health Certificates* v1.0.5). `decode` reverses it and verifies the
//! signature with the host key whose document-signer certificate hashes to
//! the `kid`.

pub mod dcc;
pub mod hcert;
pub mod icao;
pub mod uvci;

use divoc_sdk::format::{ArtifactData, ArtifactKind, Credential, Decoded, FormatInfo, Guest};
use divoc_sdk::signer::{self, KeyAlgorithm};
use divoc_sdk::Error;

struct Plugin;

impl Guest for Plugin {
    fn info() -> FormatInfo {
        FormatInfo {
            id: "eu-dcc".into(),
            // The artifact is the `HC1:` text (base45, an ASCII subset);
            // no media type is registered for it.
            media_type: "text/plain".into(),
            kind: ArtifactKind::QrText,
        }
    }

    fn encode(credential: Credential) -> Result<ArtifactData, Error> {
        let config: dcc::Config = divoc_sdk::config::load()?;
        let now = || i64::try_from(divoc_sdk::clock::unix_seconds()).unwrap_or(i64::MAX);
        let certificate = dcc::build(&credential.json, &credential.id, &config, now)?;
        let payload = hcert::claims(
            &certificate.country,
            certificate.issued_at,
            certificate.expires_at,
            &certificate.dcc,
        )?;
        // The kid goes into the protected header, which is signed: take the
        // key first, then sign with that same key.
        let key = signer::active_key_for(&credential.signing_purpose, KeyAlgorithm::Es256)?;
        let certificate_der = key.certificate.as_deref().ok_or_else(|| {
            Error::internal("the active ES256 key has no document-signer certificate")
        })?;
        let cose = hcert::sign1(hcert::kid(certificate_der), payload, |to_be_signed| {
            signer::sign_with(&key.key_id, KeyAlgorithm::Es256, to_be_signed)
        })?;
        Ok(ArtifactData::Text(hcert::to_text(&cose)))
    }

    fn decode(artifact: ArtifactData) -> Result<Decoded, Error> {
        let text = match artifact {
            ArtifactData::Text(t) => t,
            ArtifactData::Bytes(b) => String::from_utf8(b)
                .map_err(|_| Error::invalid_input("not an EU DCC: the artifact is not UTF-8"))?,
        };
        let hcert = hcert::parse(&hcert::from_text(&text)?)?;
        let claims_json = serde_json::to_string(&hcert::claims_json(&hcert))
            .map_err(|e| Error::internal(e.to_string()))?;
        let (key_id, signature_valid) = verify(&hcert)?;
        Ok(Decoded {
            claims_json,
            key_id,
            signature_valid,
        })
    }
}

/// The host key whose certificate's SHA-256 prefix is the `kid` and
/// whether it verifies the signature; for a key the host does not hold,
/// the base64 `kid` and `false`.
fn verify(hcert: &hcert::Hcert) -> Result<(String, bool), Error> {
    use base64::Engine;
    let named = base64::engine::general_purpose::STANDARD.encode(&hcert.kid);
    if hcert.kid.is_empty() {
        return Ok((named, false));
    }
    let candidates = signer::key_infos().into_iter().filter(|k| {
        matches!(k.algorithm, KeyAlgorithm::Es256)
            && k.certificate
                .as_deref()
                .is_some_and(|c| hcert::kid(c) == hcert.kid)
    });
    let mut first = None;
    for key in candidates {
        if hcert.es256 && hcert.signature.len() == hcert::ES256_SIGNATURE_LEN {
            match signer::verify_with(
                &key.key_id,
                KeyAlgorithm::Es256,
                &hcert.to_be_signed,
                &hcert.signature,
            ) {
                Ok(true) => return Ok((key.key_id, true)),
                Ok(false) | Err(Error::Rejected(_) | Error::InvalidInput(_)) => {}
                Err(e) => return Err(e),
            }
        }
        first.get_or_insert(key.key_id);
    }
    Ok((first.unwrap_or(named), false))
}

divoc_sdk::export_certificate_format!(Plugin);
