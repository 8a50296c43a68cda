//! Other certificate formats, made and read by certificate-format plugins:
//! EU DCC, SMART Health Cards, WHO DDCC and whatever a country adds.
//!
//! The host's own credential stays the source of truth. A format artifact is
//! made on demand from the stored, signed credential ([`Formats::artifact`]);
//! an artifact presented for verification is handed to the plugin that
//! declares its prefix ([`Formats::verify_text`]), and its verdict is built
//! like our own credentials' one: the signature must hold with one of this
//! issuer's keys **and** the certificate it names must be known here and in
//! force **and** the artifact must not be past its own expiry. Anything else
//! is not valid (fails closed).
//!
//! Revocation in each format's own terms ([`Formats::withdrawn`]) comes from
//! the same records: the EU DCC revocation list carries the hashes of the
//! UVCIs of withdrawn certificates (DCC revocation, hash type UCI and
//! COUNTRYCODEUCI), a SMART Health Card issuer's revocation list the `rid`s
//! of withdrawn certificates (SMART Health Cards Framework, "Revocation").

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use divoc_crypto::ids::{validate_certificate_id, CertificateId};
use divoc_storage::certificates::WithdrawnRow;

use crate::certificate::Status;
use crate::error::CertError;
use crate::service::CertificateService;
use crate::verify::{self, Checks, SignatureCheck, StatusVerdict, Verdict};

/// What kind of artifact a format makes (the WIT `artifact-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// Text for a QR code.
    QrText,
    /// A JSON document.
    Json,
    /// Opaque bytes.
    Binary,
}

/// A loaded certificate-format plugin, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FormatDescriptor {
    /// The format id, e.g. `eu-dcc` (the path segment of its routes).
    pub id: String,
    /// The plugin that makes it.
    pub plugin: String,
    /// Media type of the artifact.
    pub media_type: String,
    /// QR text, JSON or bytes.
    pub kind: ArtifactKind,
    /// Text prefixes that route a presented artifact to this plugin.
    pub prefixes: Vec<String>,
}

/// An artifact: text or bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// QR text or a JSON document.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// What a plugin read from an artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The plugin's claims object (with `certificateId`, `expiresAt`).
    pub claims: Value,
    /// The key that signed it.
    pub key_id: String,
    /// Whether the signature verified with one of the host's keys.
    pub signature_valid: bool,
}

/// Why a format plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// No loaded plugin makes this format.
    #[error("no certificate format `{0}` is loaded")]
    UnknownFormat(String),
    /// The plugin refused the input (not its format, or malformed).
    #[error("{0}")]
    Invalid(String),
    /// The plugin is unavailable (faulted, disabled, timed out).
    #[error("format plugin unavailable: {0}")]
    Unavailable(String),
}

/// The certificate-format plugins, as the binary wires them (through the
/// plugin runtime: the version serving at the time of each call answers).
pub trait FormatPlugins: Send + Sync {
    /// Every loaded format, in plugin name order.
    fn formats(&self) -> Vec<FormatDescriptor>;
    /// Makes the artifact of `format` from a signed credential.
    fn encode(
        &self,
        format: &FormatDescriptor,
        certificate_id: &str,
        credential_json: &str,
        signing_purpose: &str,
    ) -> Result<Artifact, FormatError>;
    /// Reads an artifact of `format`.
    fn decode(
        &self,
        format: &FormatDescriptor,
        artifact: &Artifact,
    ) -> Result<Decoded, FormatError>;
}

/// Settings of the formats the host publishes revocation for.
#[derive(Debug, Clone, Default)]
pub struct FormatSettings {
    /// The country code (ISO 3166-1 alpha-2) in the UVCIs the EU DCC plugin
    /// writes, i.e. its `country` setting; the revocation hashes are of
    /// `URN:UVCI:01:<country>:<id body>#<check>`.
    pub eu_dcc_country: Option<String>,
    /// The key purpose format plugins sign with.
    pub signing_purpose: String,
}

/// The formats module: artifacts, verification and revocation lists.
#[derive(Clone)]
pub struct Formats {
    certificates: CertificateService,
    plugins: Arc<dyn FormatPlugins>,
    settings: FormatSettings,
}

impl std::fmt::Debug for Formats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Formats").finish_non_exhaustive()
    }
}

impl Formats {
    /// Formats over `certificates`, made by `plugins`.
    pub fn new(
        certificates: CertificateService,
        plugins: Arc<dyn FormatPlugins>,
        settings: FormatSettings,
    ) -> Formats {
        Formats {
            certificates,
            plugins,
            settings,
        }
    }

    /// Every loaded format.
    pub fn list(&self) -> Vec<FormatDescriptor> {
        self.plugins.formats()
    }

    fn find(&self, format: &str) -> Result<FormatDescriptor, CertError> {
        self.plugins
            .formats()
            .into_iter()
            .find(|f| f.id == format)
            .ok_or_else(|| CertError::NotFound(format!("certificate format {format}")))
    }

    /// The artifact of `format` for certificate `id` (made from its stored,
    /// signed credential), with its descriptor.
    pub fn artifact(
        &self,
        id: &str,
        format: &str,
    ) -> Result<(FormatDescriptor, Artifact), CertError> {
        let descriptor = self.find(format)?;
        let certificate = self.certificates.get(id)?;
        let json = serde_json::to_string(&certificate.credential)
            .map_err(|e| CertError::Internal(e.to_string()))?;
        let artifact = self
            .plugins
            .encode(
                &descriptor,
                &certificate.id,
                &json,
                &self.settings.signing_purpose,
            )
            .map_err(|e| match e {
                FormatError::UnknownFormat(m) => CertError::NotFound(m),
                FormatError::Invalid(m) => CertError::field(
                    "format",
                    format!("this certificate cannot be expressed as {format}: {m}"),
                ),
                FormatError::Unavailable(m) => CertError::Unavailable(m),
            })?;
        Ok((descriptor, artifact))
    }

    /// The formats whose prefix `text` starts with, in plugin name order.
    /// Our own QR form is never another format's: it is answered without
    /// asking the plugins, so verifying our QR costs nothing more.
    pub fn claimants(&self, text: &str) -> Vec<FormatDescriptor> {
        let text = text.trim_start();
        if text.starts_with(crate::qr::PREFIX) {
            return Vec::new();
        }
        self.plugins
            .formats()
            .into_iter()
            .filter(|f| {
                f.prefixes
                    .iter()
                    .any(|p| !p.is_empty() && text.starts_with(p.as_str()))
            })
            .collect()
    }

    /// Verifies an artifact of another format, or `Ok(None)` when no loaded
    /// format claims its prefix (the caller then tries our own QR forms).
    /// Each claiming plugin is asked in turn until one reads it.
    pub fn verify_text(&self, text: &str) -> Result<Option<Verdict>, CertError> {
        let claimants = self.claimants(text);
        if claimants.is_empty() {
            return Ok(None);
        }
        let artifact = Artifact::Text(text.trim().to_owned());
        let mut refusals = Vec::new();
        for format in &claimants {
            match self.plugins.decode(format, &artifact) {
                Ok(decoded) => return self.verdict(format, decoded).map(Some),
                Err(FormatError::Invalid(m)) => refusals.push(format!("{}: {m}", format.id)),
                Err(FormatError::UnknownFormat(_)) => {}
                Err(FormatError::Unavailable(m)) => return Err(CertError::Unavailable(m)),
            }
        }
        Err(CertError::field(
            "qr",
            format!("not a readable certificate ({})", refusals.join("; ")),
        ))
    }

    /// Verifies an artifact of a named format (for artifacts that are not
    /// scanned, such as a WHO DDCC FHIR document).
    pub fn verify_artifact(&self, format: &str, artifact: Artifact) -> Result<Verdict, CertError> {
        let descriptor = self.find(format)?;
        match self.plugins.decode(&descriptor, &artifact) {
            Ok(decoded) => self.verdict(&descriptor, decoded),
            Err(FormatError::Invalid(m)) => Err(CertError::field(
                "artifact",
                format!("not a readable {format} artifact: {m}"),
            )),
            Err(FormatError::UnknownFormat(m)) => Err(CertError::NotFound(m)),
            Err(FormatError::Unavailable(m)) => Err(CertError::Unavailable(m)),
        }
    }

    /// A verdict for what a plugin decoded, in the shape of our own.
    fn verdict(&self, format: &FormatDescriptor, decoded: Decoded) -> Result<Verdict, CertError> {
        let issuer = Some(format!("{} ({})", self.certificates.issuer(), format.id));
        let signature = SignatureCheck {
            ok: decoded.signature_valid,
            key_id: Some(decoded.key_id.clone()),
            issuer,
            error: (!decoded.signature_valid)
                .then(|| "the signature does not verify with this issuer's keys".to_owned()),
        };
        let mut summary = verify::ClaimsSummary::default();
        if !signature.ok {
            return Ok(Verdict {
                valid: false,
                message: format!("{}: signature invalid", format.id),
                checks: Checks {
                    signature,
                    status: StatusVerdict::Unknown,
                },
                claims: None,
                format: Some(format.id.clone()),
            });
        }
        let named = decoded
            .claims
            .get("certificateId")
            .and_then(Value::as_str)
            .and_then(host_certificate_id);
        let now = self.certificates.now_ms();
        let (status, why) = match &named {
            None => (
                StatusVerdict::Unknown,
                "the artifact names no certificate of this service".to_owned(),
            ),
            Some(id) => match self.certificates.get(id.as_str()) {
                Err(CertError::NotFound(_)) => (
                    StatusVerdict::Unknown,
                    "this service holds no record of the certificate".to_owned(),
                ),
                Err(e) => return Err(e),
                Ok(c) => {
                    summary = verify::summary(&c.credential);
                    let expired = decoded
                        .claims
                        .get("expiresAt")
                        .and_then(Value::as_i64)
                        .is_some_and(|exp| exp.saturating_mul(1000) <= now);
                    match c.status {
                        Status::Revoked => (StatusVerdict::Revoked, String::new()),
                        Status::Suspended => (StatusVerdict::Suspended, String::new()),
                        Status::Valid if expired => (StatusVerdict::Expired, String::new()),
                        Status::Valid => (StatusVerdict::Valid, String::new()),
                    }
                }
            },
        };
        let message = match status {
            StatusVerdict::Valid => "valid".to_owned(),
            StatusVerdict::Unknown => {
                format!("signature valid, but the certificate's status is unknown: {why}")
            }
            StatusVerdict::Revoked => "signature valid, certificate revoked".to_owned(),
            StatusVerdict::Suspended => "signature valid, certificate suspended".to_owned(),
            StatusVerdict::Expired => "signature valid, certificate expired".to_owned(),
            StatusVerdict::NotYetValid => "signature valid, certificate not yet valid".to_owned(),
        };
        Ok(Verdict {
            valid: status == StatusVerdict::Valid,
            message: format!("{}: {message}", format.id),
            checks: Checks { signature, status },
            claims: named.is_some().then_some(summary),
            format: Some(format.id.clone()),
        })
    }

    /// Every withdrawn certificate (revoked, superseded or suspended).
    pub fn withdrawn(&self) -> Result<Vec<WithdrawnRow>, CertError> {
        self.certificates.withdrawn()
    }

    /// The EU DCC revocation entries: for each withdrawn certificate the
    /// UCI hash (SHA-256 of the UVCI, first 128 bits, base64) and the
    /// COUNTRYCODEUCI hash (of country code + UVCI), per the EU DCC
    /// revocation specification ("Hash types"). `None` when no EU DCC
    /// country is configured (the UVCIs cannot be known).
    pub fn eu_dcc_revocations(&self) -> Result<Option<Value>, CertError> {
        let Some(country) = self.settings.eu_dcc_country.clone() else {
            return Ok(None);
        };
        let rows = self.withdrawn()?;
        let mut uci = Vec::with_capacity(rows.len());
        let mut country_uci = Vec::with_capacity(rows.len());
        for row in &rows {
            let Ok(id) = validate_certificate_id(&row.id) else {
                continue;
            };
            let Ok(uvci) = id.to_uvci(&country) else {
                continue;
            };
            let uvci = uvci.to_string();
            uci.push(STANDARD.encode(&Sha256::digest(uvci.as_bytes())[..16]));
            country_uci.push(
                STANDARD.encode(&Sha256::digest(format!("{country}{uvci}").as_bytes())[..16]),
            );
        }
        Ok(Some(serde_json::json!({
            "country": country,
            "hashTypes": {
                "UCI": uci,
                "COUNTRYCODEUCI": country_uci,
            },
        })))
    }

    /// The SMART Health Card revocation list for key `kid`: the `rid` of
    /// every withdrawn certificate (`method: "rid"`), `ctr` the issuer's
    /// event sequence (it grows with every change).
    pub fn shc_revocations(&self, kid: &str) -> Result<Value, CertError> {
        let rows = self.withdrawn()?;
        let rids: Vec<String> = rows.iter().filter_map(|r| shc_rid(&r.id)).collect();
        let ctr = self.certificates.event_head()?;
        Ok(serde_json::json!({
            "kid": kid,
            "method": "rid",
            "ctr": ctr,
            "rids": rids,
        }))
    }
}

/// The SMART Health Card `rid` of a certificate: base64url (no padding) of
/// the first 8 bytes of SHA-256 over its 26-symbol id body, as the
/// format-shc plugin writes it (11 characters, within the spec's 24).
pub fn shc_rid(certificate_id: &str) -> Option<String> {
    let id = validate_certificate_id(certificate_id).ok()?;
    let body = id.as_str().get(..26)?;
    Some(URL_SAFE_NO_PAD.encode(&Sha256::digest(body.as_bytes())[..8]))
}

/// A host certificate id from what an artifact names: the full id, or its
/// 26-symbol body (UVCIs carry the body, since the check symbol may be
/// outside their alphabet).
pub fn host_certificate_id(named: &str) -> Option<String> {
    if let Ok(id) = validate_certificate_id(named) {
        return Some(id.to_string());
    }
    body_to_id(named).map(|id| id.to_string())
}

fn body_to_id(body: &str) -> Option<CertificateId> {
    const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if body.len() != 26 {
        return None;
    }
    let mut value: u128 = 0;
    for c in body.bytes() {
        let v = CROCKFORD
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())?;
        value = value.checked_mul(32)?.checked_add(v as u128)?;
    }
    Some(CertificateId::from_u128(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uvci_body_names_the_full_id() {
        let id = divoc_crypto::ids::generate_certificate_id();
        let full = id.to_string();
        assert_eq!(host_certificate_id(&full).as_deref(), Some(full.as_str()));
        assert_eq!(
            host_certificate_id(&full[..26]).as_deref(),
            Some(full.as_str())
        );
        assert_eq!(host_certificate_id("not-an-id"), None);
        assert_eq!(host_certificate_id(""), None);
    }

    #[test]
    fn shc_rids_are_short_and_stable() {
        let id = "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0";
        let rid = shc_rid(id).unwrap();
        assert_eq!(rid.len(), 11);
        assert_eq!(shc_rid(id).unwrap(), rid);
        let expected = URL_SAFE_NO_PAD.encode(&Sha256::digest(b"01F4Q8ZJ6M3T9V2K7XBC5RWD8N")[..8]);
        assert_eq!(rid, expected);
    }
}
