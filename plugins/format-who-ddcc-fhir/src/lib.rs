//! Certificate format `who-ddcc-fhir`: the WHO DDCC:VS core data set as a
//! FHIR R4 document Bundle, signed in `Bundle.signature`.
//!
//! The document follows the WHO DDCC implementation guide
//! (<http://smart.who.int/ddcc>): profiles `DDCCDocument` (Bundle of type
//! `document`), `DDCCComposition` (type LOINC 82593-5, subject → Patient,
//! attester/author → Organization, one vaccination section whose focus is the
//! Immunization), `DDCCPatient`, `DDCCOrganization` and `DDCCImmunization`
//! (extensions `DDCCEventBrand`, `DDCCVaccineMarketAuthorization`,
//! `DDCCCountryOfEvent`, `DDCCVaccineValidFrom`; protocolApplied with
//! doseNumberPositiveInt, seriesDosesPositiveInt, targetDisease and the
//! issuing authority), following the IG's `CoreDataSetVSLibrary` structure map
//! for where each core data set element goes.
//!
//! `Bundle.signature` (FHIR R4 §2.24 "Signature"): type
//! `urn:iso-astm:E1762-95:2013#1.2.840.10065.1.12.1.1` (author's signature),
//! `sigFormat` `application/jose`, `data` = base64 of a JWS in compact
//! serialization with a detached payload (RFC 7515 Appendix F):
//! `BASE64URL(header) ".." BASE64URL(signature)`, header
//! `{"alg":"ES256","kid":<host key id>}`, where the signed payload is the
//! RFC 8785 (JCS) canonical JSON of the Bundle without its `signature`
//! member. The signature is made and checked by the host's signer (ES256,
//! RFC 7518 §3.4: 64-byte `r || s`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ddcc_core::{Coding, Config, MapError, Mapped};
use divoc_sdk::format::{ArtifactData, ArtifactKind, Credential, Decoded, FormatInfo, Guest};
use divoc_sdk::signer::{self, KeyAlgorithm};
use divoc_sdk::Error;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Media type of the artifact (FHIR R4 §3.1.0.1.6 "Mime Type").
pub const MEDIA_TYPE: &str = "application/fhir+json";
/// Largest artifact accepted by `decode`.
pub const MAX_TEXT: usize = 256 * 1024;
/// IG canonical base of the DDCC extensions.
const SD: &str = "http://smart.who.int/ddcc/StructureDefinition/";
const LOINC: &str = "http://loinc.org";
/// ASTM E1762-95 signature type code system (FHIR R4 `signature-type`).
const SIGNATURE_TYPE_SYSTEM: &str = "urn:iso-astm:E1762-95:2013";
const AUTHOR_SIGNATURE: &str = "1.2.840.10065.1.12.1.1";
const JOSE: &str = "application/jose";

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_input(message)
}

fn from_map_error(e: MapError) -> Error {
    match e {
        MapError::InvalidInput(m) => Error::invalid_input(m),
        MapError::Config(m) => Error::internal(m),
    }
}

/// A stable `urn:uuid:` for each resource of a certificate's document: a
/// UUIDv8 (RFC 9562 §5.8) from SHA-256 of the certificate id and resource
/// type, so the same credential always gives the same document.
fn full_url(certificate_id: &str, resource: &str) -> String {
    let digest = Sha256::digest(format!("who-ddcc-fhir|{certificate_id}|{resource}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    format!("urn:uuid:{}", uuid::Uuid::new_v8(bytes).hyphenated())
}

fn id_of(url: &str) -> &str {
    url.strip_prefix("urn:uuid:").unwrap_or(url)
}

fn coding(c: &Coding) -> Value {
    let mut v = json!({ "code": c.code });
    if let Some(system) = &c.system {
        v["system"] = json!(system);
    }
    v
}

/// The unsigned FHIR document Bundle for a mapped credential.
pub fn bundle(mapped: &Mapped, config: &Config) -> Result<Value, Error> {
    let core = &mapped.core;
    let cert = &core.certificate;
    let v = &core.vaccination;
    let hcid = &cert.hcid.value;
    let timestamp = ddcc_core::rfc3339(mapped.issued_at)
        .ok_or_else(|| invalid("the issuance time is out of range"))?;
    let identifier = json!({ "system": config.identifier_system(), "value": hcid });
    let [composition_url, patient_url, organization_url, immunization_url] =
        ["Composition", "Patient", "Organization", "Immunization"].map(|r| full_url(hcid, r));
    let issuer_id = cert
        .issuer
        .identifier
        .as_ref()
        .map(|i| i.value.clone())
        .unwrap_or_default();

    // DDCCComposition.
    let mut composition = json!({
        "resourceType": "Composition",
        "id": id_of(&composition_url),
        "identifier": identifier,
        "status": "final",
        "type": { "coding": [{
            "system": LOINC, "code": "82593-5", "display": "Immunization summary report"
        }] },
        "category": [{ "coding": [{
            "system": "http://smart.who.int/ddcc/CodeSystem/DDCCCompositionCategoryCodeSystem",
            "code": "ddcc-vs"
        }] }],
        "subject": { "reference": patient_url },
        "date": timestamp,
        "author": [{ "reference": organization_url }],
        "title": "Digital Documentation of COVID-19 Certificate (DDCC)",
        "attester": [{ "mode": "official", "party": { "reference": organization_url } }],
        "section": [{
            "title": "Vaccination",
            "code": { "coding": [{
                "system": LOINC, "code": "11369-6", "display": "History of Immunization Narrative"
            }] },
            "author": [{ "reference": organization_url }],
            "focus": { "reference": immunization_url },
            "entry": [{ "reference": immunization_url }]
        }]
    });
    if let Some(period) = &cert.period {
        composition["event"] = json!([{ "period": period }]);
    }

    // DDCCPatient.
    let mut patient = json!({
        "resourceType": "Patient",
        "id": id_of(&patient_url),
        "name": [{ "use": "official", "text": core.name }],
    });
    if let Some(identifier) = &core.identifier {
        patient["identifier"] = json!([identifier]);
    }
    if let Some(sex) = &core.sex {
        patient["gender"] = json!(sex);
    }
    if let Some(birth_date) = &core.birth_date {
        patient["birthDate"] = json!(birth_date);
    }

    // DDCCOrganization (the certificate issuer).
    let organization = json!({
        "resourceType": "Organization",
        "id": id_of(&organization_url),
        "identifier": [{ "value": issuer_id }],
        "name": cert.issuer.display.clone().unwrap_or_else(|| issuer_id.clone()),
    });

    // DDCCImmunization.
    let mut extension = vec![json!({
        "url": format!("{SD}DDCCEventBrand"), "valueCoding": coding(&v.brand)
    })];
    if let Some(maholder) = &v.maholder {
        extension.push(json!({
            "url": format!("{SD}DDCCVaccineMarketAuthorization"), "valueCoding": coding(maholder)
        }));
    }
    extension.push(json!({
        "url": format!("{SD}DDCCCountryOfEvent"), "valueCode": v.country.code
    }));
    if let Some(valid_from) = &v.valid_from {
        extension.push(json!({
            "url": format!("{SD}DDCCVaccineValidFrom"), "valueDate": valid_from
        }));
    }
    let mut protocol = json!({
        "authority": { "reference": organization_url },
        "doseNumberPositiveInt": v.dose,
    });
    if let Some(disease) = &v.disease {
        protocol["targetDisease"] = json!([{ "coding": [coding(disease)] }]);
    }
    if let Some(total) = v.total_doses {
        protocol["seriesDosesPositiveInt"] = json!(total);
    }
    let mut immunization = json!({
        "resourceType": "Immunization",
        "id": id_of(&immunization_url),
        "extension": extension,
        "status": "completed",
        "vaccineCode": { "coding": [coding(&v.vaccine)] },
        "patient": { "reference": patient_url },
        "occurrenceDateTime": v.date,
        "lotNumber": v.lot,
        "protocolApplied": [protocol],
    });
    if let Some(centre) = &v.centre {
        immunization["location"] = json!({ "display": centre });
    }
    if let Some(m) = &v.manufacturer {
        // The IG map writes a coded manufacturer as an identifier; a name
        // without a code system is a display.
        immunization["manufacturer"] = match &m.system {
            Some(system) => json!({ "identifier": { "system": system, "value": m.code } }),
            None => json!({ "display": m.code }),
        };
    }

    Ok(json!({
        "resourceType": "Bundle",
        "id": id_of(&full_url(hcid, "Bundle")),
        "identifier": identifier,
        "type": "document",
        "timestamp": timestamp,
        "entry": [
            { "fullUrl": composition_url, "resource": composition },
            { "fullUrl": patient_url, "resource": patient },
            { "fullUrl": organization_url, "resource": organization },
            { "fullUrl": immunization_url, "resource": immunization },
        ]
    }))
}

/// The JWS protected header, as sent.
pub fn jws_header(kid: &str) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(&json!({ "alg": "ES256", "kid": kid }))
        .map_err(|e| Error::internal(e.to_string()))
}

/// `BASE64URL(header) "." BASE64URL(JCS(bundle without signature))`
/// (RFC 7515 §5.1 step 5, with the payload of RFC 7515 Appendix F).
pub fn signing_input(header: &[u8], unsigned: &Value) -> Result<String, Error> {
    let payload = serde_json_canonicalizer::to_vec(unsigned)
        .map_err(|e| invalid(format!("the Bundle cannot be canonicalized: {e}")))?;
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    ))
}

/// Signs `unsigned` and returns the Bundle with its `signature`. `sign`
/// receives the JWS signing input and returns the 64-byte ES256 signature.
pub fn sign_bundle(
    mut unsigned: Value,
    kid: &str,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, Error>,
) -> Result<Value, Error> {
    let header = jws_header(kid)?;
    let input = signing_input(&header, &unsigned)?;
    let signature = sign(input.as_bytes())?;
    let detached = format!(
        "{}..{}",
        URL_SAFE_NO_PAD.encode(&header),
        URL_SAFE_NO_PAD.encode(&signature)
    );
    let when = unsigned.get("timestamp").cloned().unwrap_or(Value::Null);
    let issuer = unsigned
        .pointer("/entry/2/resource/identifier/0")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let Some(object) = unsigned.as_object_mut() else {
        return Err(Error::internal("the Bundle is not an object"));
    };
    object.insert(
        "signature".into(),
        json!({
            "type": [{
                "system": SIGNATURE_TYPE_SYSTEM,
                "code": AUTHOR_SIGNATURE,
                "display": "Author's Signature"
            }],
            "when": when,
            "who": { "identifier": issuer },
            "sigFormat": JOSE,
            "data": STANDARD.encode(detached),
        }),
    );
    Ok(unsigned)
}

/// A Bundle read and checked for shape (not yet for its signature).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The Bundle without `signature` (what was signed).
    pub unsigned: Value,
    /// The JWS header's `alg` is ES256.
    pub es256: bool,
    pub kid: String,
    pub signing_input: String,
    pub signature: Vec<u8>,
    pub certificate_id: String,
    pub expires_at: Option<i64>,
}

fn bad_signature(what: &str) -> Error {
    invalid(format!("Bundle.signature is malformed: {what}"))
}

/// Reads a signed DDCC document Bundle.
pub fn parse(text: &str) -> Result<Parsed, Error> {
    if text.len() > MAX_TEXT {
        return Err(invalid("the artifact is too large for a DDCC document"));
    }
    let mut bundle: Map<String, Value> =
        serde_json::from_str(text.trim()).map_err(|_| invalid("not a FHIR JSON Bundle"))?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle")
        || bundle.get("type").and_then(Value::as_str) != Some("document")
    {
        return Err(invalid("not a FHIR document Bundle"));
    }
    let signature = bundle
        .remove("signature")
        .ok_or_else(|| invalid("the DDCC document is not signed (no Bundle.signature)"))?;
    let unsigned = Value::Object(bundle);
    // FHIR R4 §3.3.1 (document): the first entry is the Composition.
    let composition = unsigned
        .pointer("/entry/0/resource")
        .filter(|c| c.get("resourceType").and_then(Value::as_str) == Some("Composition"))
        .ok_or_else(|| invalid("the document's first entry is not a Composition"))?;
    let is_ddcc = composition
        .pointer("/type/coding")
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings.iter().any(|c| {
                c.get("system").and_then(Value::as_str) == Some(LOINC)
                    && c.get("code").and_then(Value::as_str) == Some("82593-5")
            })
        });
    if !is_ddcc {
        return Err(invalid("the Composition is not a DDCC (LOINC 82593-5)"));
    }
    let certificate_id = unsigned
        .pointer("/identifier/value")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("the Bundle has no identifier naming its certificate"))?
        .to_owned();
    let expires_at = composition
        .pointer("/event/0/period/end")
        .and_then(Value::as_str)
        .and_then(ddcc_core::epoch_seconds);

    if signature.get("sigFormat").and_then(Value::as_str) != Some(JOSE) {
        return Err(bad_signature("sigFormat is not application/jose"));
    }
    let data = signature
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_signature("no data"))?;
    let jws = STANDARD
        .decode(data)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad_signature("data is not base64 of a JWS"))?;
    let mut parts = jws.split('.');
    let (Some(h), Some(""), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_signature("data is not a detached-payload compact JWS"));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| bad_signature("the JWS header is not base64url"))?;
    let header: Value = serde_json::from_slice(&header_bytes)
        .map_err(|_| bad_signature("the JWS header is not JSON"))?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_signature("the JWS header has no kid"))?
        .to_owned();
    let es256 = header.get("alg").and_then(Value::as_str) == Some("ES256");
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad_signature("the JWS signature is not base64url"))?;
    let signing_input = format!(
        "{h}.{}",
        URL_SAFE_NO_PAD.encode(
            serde_json_canonicalizer::to_vec(&unsigned)
                .map_err(|e| invalid(format!("the Bundle cannot be canonicalized: {e}")))?
        )
    );
    Ok(Parsed {
        unsigned,
        es256,
        kid,
        signing_input,
        signature,
        certificate_id,
        expires_at,
    })
}

/// The `claims-json` of a parsed document.
pub fn claims_json(p: &Parsed) -> Value {
    let mut claims = json!({
        "certificateId": p.certificate_id,
        "fhirBundle": p.unsigned,
    });
    if let Some(exp) = p.expires_at {
        claims["expiresAt"] = json!(exp);
    }
    claims
}

fn verify(p: &Parsed) -> Result<bool, Error> {
    if !p.es256 {
        return Ok(false);
    }
    let known = signer::key_infos()
        .into_iter()
        .any(|k| k.key_id == p.kid && matches!(k.algorithm, KeyAlgorithm::Es256));
    if !known {
        return Ok(false);
    }
    match signer::verify_with(
        &p.kid,
        KeyAlgorithm::Es256,
        p.signing_input.as_bytes(),
        &p.signature,
    ) {
        Ok(valid) => Ok(valid),
        Err(Error::Rejected(_) | Error::InvalidInput(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn load_config() -> Result<Config, Error> {
    Config::parse(&divoc_sdk::config::json()).map_err(from_map_error)
}

struct Plugin;

impl Guest for Plugin {
    fn info() -> FormatInfo {
        FormatInfo {
            id: "who-ddcc-fhir".into(),
            media_type: MEDIA_TYPE.into(),
            kind: ArtifactKind::Json,
        }
    }

    fn encode(credential: Credential) -> Result<ArtifactData, Error> {
        let config = load_config()?;
        let mapped = ddcc_core::map_credential(&credential.json, &credential.id, &config)
            .map_err(from_map_error)?;
        let unsigned = bundle(&mapped, &config)?;
        let key = signer::active_key_for(&credential.signing_purpose, KeyAlgorithm::Es256)?;
        let signed = sign_bundle(unsigned, &key.key_id, |input| {
            signer::sign_with(&key.key_id, KeyAlgorithm::Es256, input)
        })?;
        let text = signed.to_string();
        if text.len() > MAX_TEXT {
            return Err(invalid("the certificate is too large for a DDCC document"));
        }
        Ok(ArtifactData::Text(text))
    }

    fn decode(artifact: ArtifactData) -> Result<Decoded, Error> {
        let text = match artifact {
            ArtifactData::Text(t) => t,
            ArtifactData::Bytes(b) => {
                if b.len() > MAX_TEXT {
                    return Err(invalid("the artifact is too large for a DDCC document"));
                }
                String::from_utf8(b).map_err(|_| invalid("the artifact is not UTF-8 text"))?
            }
        };
        let parsed = parse(&text)?;
        let signature_valid = verify(&parsed)?;
        Ok(Decoded {
            claims_json: claims_json(&parsed).to_string(),
            key_id: parsed.kid,
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

    fn key() -> SigningKey {
        SigningKey::from_slice(&[9u8; 32]).unwrap()
    }

    fn signed() -> Value {
        let config = Config::default();
        let mapped = ddcc_core::map_credential(VACCINATION, ID, &config).unwrap();
        let unsigned = bundle(&mapped, &config).unwrap();
        sign_bundle(unsigned, "kid-1", |input| {
            let sig: Signature = key().sign(input);
            Ok(sig.to_bytes().to_vec())
        })
        .unwrap()
    }

    fn check(p: &Parsed) -> bool {
        let sig = Signature::from_slice(&p.signature).unwrap();
        VerifyingKey::from(&key())
            .verify(p.signing_input.as_bytes(), &sig)
            .is_ok()
    }

    #[test]
    fn document_shape() {
        let b = signed();
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "document");
        assert_eq!(b["identifier"]["value"], ID);
        let kinds: Vec<_> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["resourceType"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["Composition", "Patient", "Organization", "Immunization"]
        );
        let comp = &b["entry"][0]["resource"];
        assert_eq!(comp["type"]["coding"][0]["code"], "82593-5");
        assert_eq!(comp["subject"]["reference"], b["entry"][1]["fullUrl"]);
        assert_eq!(
            comp["section"][0]["focus"]["reference"],
            b["entry"][3]["fullUrl"]
        );
        let imm = &b["entry"][3]["resource"];
        assert_eq!(imm["lotNumber"], "MB3428BX");
        assert_eq!(imm["occurrenceDateTime"], "2021-05-02T10:21:18Z");
        assert_eq!(imm["vaccineCode"]["coding"][0]["code"], "XM9QW8");
        assert_eq!(imm["protocolApplied"][0]["doseNumberPositiveInt"], 2);
        assert_eq!(imm["protocolApplied"][0]["seriesDosesPositiveInt"], 2);
        assert_eq!(
            imm["protocolApplied"][0]["targetDisease"][0]["coding"][0]["code"],
            "RA01"
        );
        let urls: Vec<_> = imm["extension"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["url"].as_str().unwrap().rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            urls,
            [
                "DDCCEventBrand",
                "DDCCCountryOfEvent",
                "DDCCVaccineValidFrom"
            ]
        );
        assert_eq!(imm["extension"][1]["valueCode"], "IND");
        let pat = &b["entry"][1]["resource"];
        assert_eq!(pat["name"][0]["text"], "Bhaya Mitra");
        assert!(pat.get("identifier").is_none());
        let sig = &b["signature"];
        assert_eq!(sig["type"][0]["code"], "1.2.840.10065.1.12.1.1");
        assert_eq!(sig["sigFormat"], "application/jose");
        assert_eq!(
            sig["who"]["identifier"]["value"],
            "did:web:localhost%3A8080"
        );
        // Stable across encodes.
        assert_eq!(b["entry"][0]["fullUrl"], signed()["entry"][0]["fullUrl"]);
    }

    #[test]
    fn round_trip_and_tamper() {
        let text = signed().to_string();
        let p = parse(&text).unwrap();
        assert!(p.es256);
        assert_eq!(p.kid, "kid-1");
        assert!(check(&p));
        assert_eq!(p.certificate_id, ID);
        assert_eq!(p.expires_at, Some(1_651_486_878));
        let claims = claims_json(&p);
        assert_eq!(claims["certificateId"], ID);
        assert_eq!(claims["expiresAt"], 1_651_486_878);
        assert!(claims["fhirBundle"].get("signature").is_none());

        // Re-serialized differently (pretty, reordered): still verifies.
        let pretty = serde_json::to_string_pretty(&signed()).unwrap();
        assert!(check(&parse(&pretty).unwrap()));

        let tampered = text.replace("MB3428BX", "MB3428BY");
        assert!(!check(&parse(&tampered).unwrap()));
    }

    #[test]
    fn garbage_is_invalid_input() {
        let mut no_sig = signed();
        no_sig.as_object_mut().unwrap().remove("signature");
        let mut bad_data = signed();
        bad_data["signature"]["data"] = json!("%%%");
        let mut attached = signed();
        attached["signature"]["data"] = json!(STANDARD.encode("e30.e30.AA"));
        let mut not_ddcc = signed();
        not_ddcc["entry"][0]["resource"]["type"]["coding"][0]["code"] = json!("1-8");
        for bad in [
            "this is not a certificate \u{0} ~~~ %%%".to_owned(),
            "{}".to_owned(),
            r#"{"resourceType":"Bundle","type":"collection"}"#.to_owned(),
            no_sig.to_string(),
            bad_data.to_string(),
            attached.to_string(),
            not_ddcc.to_string(),
            "x".repeat(MAX_TEXT + 1),
        ] {
            assert!(
                matches!(parse(&bad), Err(Error::InvalidInput(_))),
                "{}",
                &bad[..bad.len().min(60)]
            );
        }
    }

    #[test]
    fn identifier_when_configured() {
        let config = Config::parse(r#"{"include_identifier":true,"issuer_name":"MoHFW"}"#).unwrap();
        let mapped = ddcc_core::map_credential(VACCINATION, ID, &config).unwrap();
        let b = bundle(&mapped, &config).unwrap();
        assert_eq!(
            b["entry"][1]["resource"]["identifier"][0]["value"],
            "234234333412"
        );
        assert_eq!(b["entry"][2]["resource"]["name"], "MoHFW");
    }
}
