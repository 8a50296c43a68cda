//! Certificate format `who-ddcc`: the WHO DDCC:VS core data set as an HCERT
//! QR payload (`HC1:` text).
//!
//! Encoding (WHO "Digital documentation of COVID-19 certificates: vaccination
//! status — technical specifications" (2021), §"HCERT" / WHO SMART Trust,
//! "Electronic Health Certificate Specification" (`hcert_spec`) §3–4):
//!
//! 1. the core data set (crate `ddcc-core`, logical model
//!    `DDCCCoreDataSet.VS` of the DDCC IG) as a CBOR map with text keys;
//! 2. a CWT (RFC 8392) claims set `{1: iss, 6: iat, 4: exp, -260: {2: core}}`
//!    (hcert_spec §3.3; the `-260` sub-claim is configurable, see README);
//! 3. COSE_Sign1 (RFC 9052 §4.2), tagged 18, protected header
//!    `{1: -7 (ES256), 4: kid}` with `kid` = the first 8 bytes of SHA-256 of
//!    the document signer certificate's DER (hcert_spec §3.3.3), signed by the
//!    host's active ES256 key of the credential's signing purpose;
//! 4. ZLIB (RFC 1950, hcert_spec §4.2.1), Base45 (RFC 9285, §4.2.2), the
//!    context identifier `HC1:`.
//!
//! Decoding reverses it, refuses (invalid input) an HCERT without the DDCC:VS
//! sub-claim — so that an EU DCC (sub-claim 1), which shares the `HC1:`
//! prefix, is left to the EU DCC plugin — and verifies the signature with
//! every host ES256 key whose certificate has the artifact's `kid`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ciborium::Value as Cbor;
use coset::TaggedCborSerializable;
use coset::{iana, CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder};
use ddcc_core::{CoreDataSet, MapError, Mapped};
use divoc_sdk::format::{ArtifactData, ArtifactKind, Credential, Decoded, FormatInfo, Guest};
use divoc_sdk::signer::{self, KeyAlgorithm};
use divoc_sdk::Error;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Context identifier (hcert_spec §4.2.2).
pub const PREFIX: &str = "HC1:";
/// Largest artifact text accepted by `decode`.
pub const MAX_TEXT: usize = 64 * 1024;
/// Largest decompressed COSE message accepted by `decode`.
pub const MAX_COSE: usize = 256 * 1024;
/// CWT claim keys (RFC 8392 §3.1.1, §3.1.4, §3.1.6; hcert_spec §3.3.7).
const ISS: i64 = 1;
const EXP: i64 = 4;
const IAT: i64 = 6;
const HCERT: i64 = -260;
/// The `hcert` sub-claim carrying the DDCC:VS core data set by default: 2,
/// as the DDCC implementation guide's CWT logical model assigns it
/// (`HCert`: 1 EU DCC, 2 DDCC:VS, 3 DDCC:TR; input/fsh/cwt.fsh). WHO's later
/// SMART Trust model proposes 3, and -6 there is the proposed DVC: a
/// deployment that must follow either sets `hcert_claim_key`.
pub const DEFAULT_CLAIM_KEY: i64 = 2;
/// The EU DCC v1 sub-claim, which this plugin must never write or claim.
const EU_DCC_CLAIM_KEY: i64 = 1;

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_input(message)
}

fn from_map_error(e: MapError) -> Error {
    match e {
        MapError::InvalidInput(m) => Error::invalid_input(m),
        MapError::Config(m) => Error::internal(m),
    }
}

/// This plugin's configuration: the shared DDCC settings plus the HCERT
/// sub-claim key.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub core: ddcc_core::Config,
    pub claim_key: i64,
}

#[derive(Deserialize)]
struct Own {
    #[serde(default = "default_claim_key")]
    hcert_claim_key: i64,
}

fn default_claim_key() -> i64 {
    DEFAULT_CLAIM_KEY
}

impl Settings {
    /// Parses the configuration section (a JSON object).
    pub fn parse(json: &str) -> Result<Settings, Error> {
        let core = ddcc_core::Config::parse(json).map_err(from_map_error)?;
        let own: Own = serde_json::from_str(json)
            .map_err(|e| Error::internal(format!("invalid plugin configuration: {e}")))?;
        if own.hcert_claim_key == EU_DCC_CLAIM_KEY {
            return Err(Error::internal(
                "invalid plugin configuration: `hcert_claim_key` 1 is the EU DCC's",
            ));
        }
        Ok(Settings {
            core,
            claim_key: own.hcert_claim_key,
        })
    }

    fn load() -> Result<Settings, Error> {
        Settings::parse(&divoc_sdk::config::json())
    }
}

/// The HCERT `kid`: the first 8 bytes of SHA-256 over the DSC's DER
/// (hcert_spec §3.3.3).
pub fn kid_for(certificate_der: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(certificate_der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&digest[..8]);
    kid
}

/// The CWT claims set (RFC 8392) carrying the core data set.
pub fn cwt_claims(mapped: &Mapped, claim_key: i64) -> Result<Vec<u8>, Error> {
    let core = Cbor::serialized(&mapped.core)
        .map_err(|e| Error::internal(format!("cannot encode the core data set: {e}")))?;
    let claims = Cbor::Map(vec![
        (Cbor::from(ISS), Cbor::Text(mapped.issuer_country.clone())),
        (Cbor::from(IAT), Cbor::from(mapped.issued_at)),
        (Cbor::from(EXP), Cbor::from(mapped.expires_at)),
        (
            Cbor::from(HCERT),
            Cbor::Map(vec![(Cbor::from(claim_key), core)]),
        ),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&claims, &mut out)
        .map_err(|e| Error::internal(format!("cannot encode the CWT: {e}")))?;
    Ok(out)
}

/// Signs the claims into a tagged COSE_Sign1 and packs it as `HC1:` text.
/// `sign` receives the Sig_structure (RFC 9052 §4.4) and returns the 64-byte
/// `r || s` ES256 signature.
pub fn pack(
    claims: Vec<u8>,
    certificate_der: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, Error>,
) -> Result<String, Error> {
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(kid_for(certificate_der).to_vec())
        .build();
    let cose = CoseSign1Builder::new()
        .protected(protected)
        .payload(claims)
        .try_create_signature(&[], sign)?
        .build();
    let bytes = cose
        .to_tagged_vec()
        .map_err(|e| Error::internal(format!("cannot encode COSE_Sign1: {e}")))?;
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(&bytes, 9);
    let text = format!("{PREFIX}{}", base45::encode(compressed));
    if text.len() > MAX_TEXT {
        return Err(invalid("the certificate is too large for an HC1: QR code"));
    }
    Ok(text)
}

/// An `HC1:` artifact read and checked for structure (not yet for its
/// signature).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The `kid` from the protected (else unprotected) header.
    pub kid: Vec<u8>,
    /// Whether the protected `alg` is ES256 (-7).
    pub es256: bool,
    /// The Sig_structure the signature covers.
    pub to_be_signed: Vec<u8>,
    pub signature: Vec<u8>,
    pub iss: Option<String>,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
    /// The core data set, as JSON.
    pub ddcc: Value,
    /// `certificate.hcid.value`: the host's certificate id.
    pub certificate_id: String,
}

fn int(v: &Cbor) -> Option<i64> {
    v.as_integer().and_then(|i| i64::try_from(i).ok())
}

/// Reads an `HC1:` artifact: prefix, Base45, ZLIB, COSE_Sign1, CWT, and the
/// DDCC:VS sub-claim `claim_key`.
pub fn parse(text: &str, claim_key: i64) -> Result<Parsed, Error> {
    let text = text.trim();
    if text.len() > MAX_TEXT {
        return Err(invalid("the artifact is too large for an HC1: QR code"));
    }
    let body = text
        .strip_prefix(PREFIX)
        .ok_or_else(|| invalid("not an HC1: artifact"))?;
    let compressed =
        base45::decode(body).map_err(|_| invalid("the HC1: payload is not valid Base45"))?;
    // hcert_spec §4.2.1: the CWT SHALL be ZLIB-compressed. A ZLIB stream
    // starts with CMF 0x78 (deflate, 32 KiB window).
    let cose_bytes = if compressed.first() == Some(&0x78) {
        miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&compressed, MAX_COSE)
            .map_err(|_| invalid("the HC1: payload is not valid ZLIB or is too large"))?
    } else {
        return Err(invalid("the HC1: payload is not ZLIB-compressed"));
    };
    // Tag 18 (COSE_Sign1) is what this plugin writes; untagged messages are
    // accepted too, as HCERT verifiers do.
    let cose = CoseSign1::from_tagged_slice(&cose_bytes)
        .or_else(|_| CoseSign1::from_slice(&cose_bytes))
        .map_err(|_| invalid("the HC1: payload is not a COSE_Sign1 message"))?;
    let es256 = matches!(
        cose.protected.header.alg,
        Some(coset::RegisteredLabelWithPrivate::Assigned(
            iana::Algorithm::ES256
        ))
    );
    // hcert_spec §3.3.3: kid in the protected header, else the unprotected.
    let kid = if cose.protected.header.key_id.is_empty() {
        cose.unprotected.key_id.clone()
    } else {
        cose.protected.header.key_id.clone()
    };
    let payload = cose
        .payload
        .as_deref()
        .ok_or_else(|| invalid("the COSE_Sign1 message has no payload"))?;
    let claims: Cbor = ciborium::from_reader(payload)
        .map_err(|_| invalid("the COSE payload is not a CBOR claims set"))?;
    let claims = claims
        .as_map()
        .ok_or_else(|| invalid("the CWT claims set is not a map"))?;
    let claim = |key: i64| {
        claims
            .iter()
            .find(|(k, _)| int(k) == Some(key))
            .map(|(_, v)| v)
    };
    let hcert = claim(HCERT)
        .and_then(Cbor::as_map)
        .ok_or_else(|| invalid("not an HCERT: no -260 claim"))?;
    let core = hcert
        .iter()
        .find(|(k, _)| int(k) == Some(claim_key))
        .map(|(_, v)| v)
        .ok_or_else(|| {
            invalid(format!(
                "not a WHO DDCC:VS: the HCERT has no {claim_key} sub-claim (an EU DCC or another health certificate)"
            ))
        })?;
    let ddcc: Value = core
        .deserialized()
        .map_err(|_| invalid("the DDCC:VS claim is not a JSON-compatible map"))?;
    let typed: CoreDataSet = serde_json::from_value(ddcc.clone())
        .map_err(|e| invalid(format!("the DDCC:VS claim is malformed: {e}")))?;
    typed.validate().map_err(from_map_error)?;
    let to_be_signed = cose.tbs_data(&[]);
    Ok(Parsed {
        kid,
        es256,
        to_be_signed,
        signature: cose.signature.clone(),
        iss: claim(ISS).and_then(Cbor::as_text).map(str::to_owned),
        iat: claim(IAT).and_then(int),
        exp: claim(EXP).and_then(int),
        ddcc,
        certificate_id: typed.certificate.hcid.value,
    })
}

/// The `claims-json` of a parsed artifact.
pub fn claims_json(p: &Parsed) -> Value {
    let mut claims = json!({
        "certificateId": p.certificate_id,
        "cwt": { "iss": p.iss, "iat": p.iat, "exp": p.exp },
        "ddcc": p.ddcc,
    });
    if let Some(exp) = p.exp {
        claims["expiresAt"] = json!(exp);
    }
    claims
}

/// Verifies with every host ES256 key whose DSC has the artifact's `kid`
/// (hcert_spec §3.3.3: kids may collide, check all). Returns the key id
/// (the host's, or the artifact's kid in base64 when no host key matches)
/// and whether the signature holds.
fn verify(p: &Parsed) -> Result<(String, bool), Error> {
    let named = STANDARD.encode(&p.kid);
    if !p.es256 {
        return Ok((named, false));
    }
    let mut matched = None;
    for key in signer::key_infos() {
        if !matches!(key.algorithm, KeyAlgorithm::Es256) {
            continue;
        }
        let Some(certificate) = &key.certificate else {
            continue;
        };
        if kid_for(certificate)[..] != p.kid[..] {
            continue;
        }
        match signer::verify_with(
            &key.key_id,
            KeyAlgorithm::Es256,
            &p.to_be_signed,
            &p.signature,
        ) {
            Ok(true) => return Ok((key.key_id, true)),
            Ok(false) | Err(Error::Rejected(_) | Error::InvalidInput(_)) => {
                matched.get_or_insert(key.key_id);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((matched.unwrap_or(named), false))
}

fn artifact_text(artifact: ArtifactData) -> Result<String, Error> {
    match artifact {
        ArtifactData::Text(t) => Ok(t),
        ArtifactData::Bytes(b) => {
            if b.len() > MAX_TEXT {
                return Err(invalid("the artifact is too large for an HC1: QR code"));
            }
            String::from_utf8(b).map_err(|_| invalid("the artifact is not UTF-8 text"))
        }
    }
}

struct Plugin;

impl Guest for Plugin {
    fn info() -> FormatInfo {
        FormatInfo {
            id: "who-ddcc".into(),
            // The QR text itself (hcert_spec §4.2.2).
            media_type: "text/plain; charset=us-ascii".into(),
            kind: ArtifactKind::QrText,
        }
    }

    fn encode(credential: Credential) -> Result<ArtifactData, Error> {
        let settings = Settings::load()?;
        let mapped = ddcc_core::map_credential(&credential.json, &credential.id, &settings.core)
            .map_err(from_map_error)?;
        let claims = cwt_claims(&mapped, settings.claim_key)?;
        let key = signer::active_key_for(&credential.signing_purpose, KeyAlgorithm::Es256)?;
        let certificate = key.certificate.as_deref().ok_or_else(|| {
            Error::internal("the active ES256 key has no document signer certificate")
        })?;
        let text = pack(claims, certificate, |tbs| {
            signer::sign_with(&key.key_id, KeyAlgorithm::Es256, tbs)
        })?;
        Ok(ArtifactData::Text(text))
    }

    fn decode(artifact: ArtifactData) -> Result<Decoded, Error> {
        let settings = Settings::load()?;
        let parsed = parse(&artifact_text(artifact)?, settings.claim_key)?;
        let (key_id, signature_valid) = verify(&parsed)?;
        Ok(Decoded {
            claims_json: claims_json(&parsed).to_string(),
            key_id,
            signature_valid,
        })
    }
}

divoc_sdk::export_certificate_format!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

    const VACCINATION: &str =
        include_str!("../../../conformance/fixtures/credentials/vaccination.json");
    const ID: &str = "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0";
    const CERT: &[u8] = b"a stand-in DER certificate";

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn artifact(claim_key: i64) -> String {
        let mapped =
            ddcc_core::map_credential(VACCINATION, ID, &ddcc_core::Config::default()).unwrap();
        let claims = cwt_claims(&mapped, claim_key).unwrap();
        pack(claims, CERT, |tbs| {
            let sig: Signature = key().sign(tbs);
            Ok(sig.to_bytes().to_vec())
        })
        .unwrap()
    }

    fn check(p: &Parsed) -> bool {
        let vk = VerifyingKey::from(&key());
        let sig = Signature::from_slice(&p.signature).unwrap();
        vk.verify(&p.to_be_signed, &sig).is_ok()
    }

    #[test]
    fn round_trip() {
        let text = artifact(DEFAULT_CLAIM_KEY);
        assert!(text.starts_with("HC1:"));
        let p = parse(&text, DEFAULT_CLAIM_KEY).unwrap();
        assert!(p.es256);
        assert_eq!(p.kid, kid_for(CERT).to_vec());
        assert!(check(&p));
        assert_eq!(p.certificate_id, ID);
        assert_eq!(p.iss.as_deref(), Some("IN"));
        assert_eq!(p.iat, Some(1_619_950_878));
        assert_eq!(p.exp, Some(1_651_486_878));
        assert_eq!(p.ddcc["name"], "Bhaya Mitra");
        assert_eq!(p.ddcc["vaccination"]["lot"], "MB3428BX");
        let claims = claims_json(&p);
        assert_eq!(claims["certificateId"], ID);
        assert_eq!(claims["expiresAt"], 1_651_486_878);
        assert_eq!(claims["ddcc"]["certificate"]["hcid"]["value"], ID);
    }

    #[test]
    fn wire_format_is_tagged_cose_with_es256_and_kid() {
        let text = artifact(DEFAULT_CLAIM_KEY);
        let z = base45::decode(&text[4..]).unwrap();
        let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&z).unwrap();
        // Tag 18 (0xD2), then a 4-element array (0x84).
        assert_eq!(&raw[..2], &[0xD2, 0x84]);
        let value: Cbor = ciborium::from_reader(&raw[..]).unwrap();
        let Cbor::Tag(18, inner) = value else {
            panic!()
        };
        let arr = inner.as_array().unwrap();
        let protected: Cbor = ciborium::from_reader(arr[0].as_bytes().unwrap().as_slice()).unwrap();
        let protected = protected.as_map().unwrap();
        assert_eq!(protected[0], (Cbor::from(1), Cbor::from(-7)));
        assert_eq!(protected[1].0, Cbor::from(4));
        assert_eq!(protected[1].1.as_bytes().unwrap(), &kid_for(CERT).to_vec());
        let claims: Cbor = ciborium::from_reader(arr[2].as_bytes().unwrap().as_slice()).unwrap();
        let hcert = &claims.as_map().unwrap()[3];
        assert_eq!(hcert.0, Cbor::from(-260));
        assert_eq!(hcert.1.as_map().unwrap()[0].0, Cbor::from(2));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let text = artifact(DEFAULT_CLAIM_KEY);
        let z = base45::decode(&text[4..]).unwrap();
        let mut raw = miniz_oxide::inflate::decompress_to_vec_zlib(&z).unwrap();
        let at = raw.windows(8).position(|w| w == b"MB3428BX").unwrap();
        raw[at] = b'X';
        let tampered = format!(
            "HC1:{}",
            base45::encode(miniz_oxide::deflate::compress_to_vec_zlib(&raw, 9))
        );
        let p = parse(&tampered, DEFAULT_CLAIM_KEY).unwrap();
        assert!(!check(&p));
    }

    #[test]
    fn eu_dcc_shaped_hcert_is_invalid_input() {
        // An HCERT with only the EU DCC sub-claim 1 (and so no DDCC:VS).
        let text = artifact(1);
        match parse(&text, DEFAULT_CLAIM_KEY) {
            Err(Error::InvalidInput(m)) => assert!(m.contains("EU DCC")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_invalid_input() {
        let long = format!("HC1:{}", "A".repeat(MAX_TEXT));
        for bad in [
            "",
            "this is not a certificate \u{0} ~~~ %%%",
            "HC1:",
            "HC1:%%%%",
            "HC1:6BFOXN",
            "shc:/0123",
            long.as_str(),
        ] {
            assert!(
                matches!(parse(bad, DEFAULT_CLAIM_KEY), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
        // Valid Base45 + ZLIB of something that is not COSE.
        let junk = format!(
            "HC1:{}",
            base45::encode(miniz_oxide::deflate::compress_to_vec_zlib(b"hello", 9))
        );
        assert!(matches!(
            parse(&junk, DEFAULT_CLAIM_KEY),
            Err(Error::InvalidInput(_))
        ));
        // A ZLIB bomb beyond the limit.
        let bomb = format!(
            "HC1:{}",
            base45::encode(miniz_oxide::deflate::compress_to_vec_zlib(
                &vec![0u8; MAX_COSE + 1],
                9
            ))
        );
        assert!(matches!(
            parse(&bomb, DEFAULT_CLAIM_KEY),
            Err(Error::InvalidInput(_))
        ));
        assert!(artifact_text(ArtifactData::Bytes(vec![0, 255, 1])).is_err());
    }

    #[test]
    fn readme_example_config_parses() {
        // The README's India example, as the host hands it over (JSON).
        let s = Settings::parse(
            r#"{"country":"IN","country_alpha3":"IND","issuer_id":"in.gov.mohfw",
                "issuer_name":"Ministry of Health and Family Welfare, Government of India",
                "include_identifier":false,"validity_days":365,"hcert_claim_key":-6,
                "identifier_system":"urn:divoc:certificate-id",
                "disease":{"system":"http://id.who.int/icd11/mms","code":"RA01"},
                "vaccines":{
                  "Covishield":{"vaccine":{"system":"http://id.who.int/icd11/mms","code":"XM9QW8"},
                                "brand":{"system":"http://id.who.int/icd11/mms","code":"XM97T2"},
                                "maholder":{"system":"https://spor.ema.europa.eu/v1/organisations","code":"ORG-100001981"}},
                  "Covaxin":{"vaccine":{"system":"http://id.who.int/icd11/mms","code":"XM1NL1"},
                             "brand":{"system":"http://id.who.int/icd11/mms","code":"XM1G90"}}}}"#,
        )
        .unwrap();
        let mapped = ddcc_core::map_credential(VACCINATION, ID, &s.core).unwrap();
        let v = &mapped.core.vaccination;
        assert_eq!(v.maholder.as_ref().unwrap().code, "ORG-100001981");
        assert_eq!(mapped.issuer_country, "IN");
        assert_eq!(
            mapped
                .core
                .certificate
                .issuer
                .identifier
                .as_ref()
                .unwrap()
                .value,
            "in.gov.mohfw"
        );
    }

    #[test]
    fn settings() {
        let s = Settings::parse("{}").unwrap();
        assert_eq!(s.claim_key, 2);
        assert_eq!(
            Settings::parse(r#"{"hcert_claim_key":3}"#)
                .unwrap()
                .claim_key,
            3
        );
        assert!(matches!(
            Settings::parse(r#"{"hcert_claim_key":1}"#),
            Err(Error::Internal(_))
        ));
        assert!(Settings::parse(r#"{"country":"India"}"#).is_err());
        // Another sub-claim key round-trips when configured on both sides.
        let text = artifact(3);
        assert!(parse(&text, 3).is_ok());
        assert!(parse(&text, 2).is_err());
    }
}
