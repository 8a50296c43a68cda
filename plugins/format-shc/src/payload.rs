//! The JWS payload: JWT claims around a minimised FHIR R4 bundle
//! (SMART Health Cards Framework, "Health Cards are encoded as Compact
//! Serialization JSON Web Signatures" and "Payload content minified for QR
//! codes"; SMART Health Cards Vaccination & Testing IG, Patient and
//! Immunization DM profiles).

use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::{Config, NameOrder, CVX_SYSTEM};
use crate::jws::b64;
use divoc_sdk::Error;

/// The credential types: `#health-card` SHALL be present; `#immunization`
/// classifies the card (SMART Health Cards vocabulary).
pub const TYPES: [&str; 2] = [
    "https://smarthealth.cards#health-card",
    "https://smarthealth.cards#immunization",
];
/// FHIR R4.
pub const FHIR_VERSION: &str = "4.0.1";
/// `jti` for a credential whose own `id` does not name the host id.
const URN_PREFIX: &str = "urn:divoc:certificate:";
/// Symbols in a host certificate id's body (before its check symbol).
const ID_BODY_LEN: usize = 26;

#[derive(Debug, Serialize)]
pub struct Payload {
    pub iss: String,
    pub nbf: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// RFC 7519 §4.1.7; the W3C VC-JWT encoding of the credential's `id`.
    pub jti: String,
    pub vc: Vc,
}

#[derive(Debug, Serialize)]
pub struct Vc {
    #[serde(rename = "type")]
    pub types: [&'static str; 2],
    #[serde(rename = "credentialSubject")]
    pub credential_subject: CredentialSubject,
    /// Revocation identifier ("Revocation": base64url alphabet, ≤ 24 chars).
    pub rid: String,
}

#[derive(Debug, Serialize)]
pub struct CredentialSubject {
    #[serde(rename = "fhirVersion")]
    pub fhir_version: &'static str,
    #[serde(rename = "fhirBundle")]
    pub fhir_bundle: Bundle,
}

#[derive(Debug, Serialize)]
pub struct Bundle {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    #[serde(rename = "type")]
    bundle_type: &'static str,
    entry: (Entry<Patient>, Entry<Immunization>),
}

#[derive(Debug, Serialize)]
struct Entry<R> {
    #[serde(rename = "fullUrl")]
    full_url: &'static str,
    resource: R,
}

#[derive(Debug, Serialize)]
struct Patient {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    name: [HumanName; 1],
    #[serde(rename = "birthDate")]
    birth_date: String,
}

#[derive(Debug, Default, Serialize)]
struct HumanName {
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    given: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

#[derive(Debug, Serialize)]
struct Immunization {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    status: &'static str,
    #[serde(rename = "vaccineCode")]
    vaccine_code: CodeableConcept,
    patient: Reference,
    #[serde(rename = "occurrenceDateTime")]
    occurrence: String,
    #[serde(rename = "lotNumber", skip_serializing_if = "Option::is_none")]
    lot_number: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    performer: Vec<Performer>,
}

#[derive(Debug, Serialize)]
struct CodeableConcept {
    coding: [Coding; 1],
}

#[derive(Debug, Serialize)]
struct Coding {
    system: &'static str,
    code: String,
}

#[derive(Debug, Serialize)]
struct Reference {
    reference: &'static str,
}

#[derive(Debug, Serialize)]
struct Performer {
    actor: Display,
}

#[derive(Debug, Serialize)]
struct Display {
    display: String,
}

/// The revocation identifier of a host certificate id: base64url (no
/// padding) of the first 8 bytes (64 bits) of SHA-256 over the UTF-8 id body
/// — the first 26 characters of a 27-character host id (dropping its Crockford
/// check symbol), otherwise the whole id. 11 characters.
pub fn rid(certificate_id: &str) -> String {
    let body = if certificate_id.chars().count() == ID_BODY_LEN + 1 {
        certificate_id
            .char_indices()
            .nth(ID_BODY_LEN)
            .map_or(certificate_id, |(cut, _)| &certificate_id[..cut])
    } else {
        certificate_id
    };
    let digest = Sha256::digest(body.as_bytes());
    b64(&digest[..8])
}

/// The certificate id a `jti` names: its text after the last `/` or `:`,
/// percent-decoded.
pub fn certificate_id_of(jti: &str) -> Option<String> {
    let last = jti.rsplit(['/', ':']).next()?;
    let id = percent_decode_str(last).decode_utf8().ok()?.into_owned();
    (!id.trim().is_empty()).then_some(id)
}

/// The `jti`: the credential's own `id` when it names the host id (the
/// VC-JWT mapping of `id`), else `urn:divoc:certificate:<host id>`.
fn jti(source: &Value, host_id: &str) -> String {
    match source.get("id").and_then(Value::as_str) {
        Some(id) if certificate_id_of(id).as_deref() == Some(host_id) => id.to_owned(),
        _ => format!("{URN_PREFIX}{host_id}"),
    }
}

fn seconds(source: &Value, member: &str) -> Result<Option<i64>, Error> {
    let Some(value) = source.get(member) else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .ok_or_else(|| Error::invalid_input(format!("credential {member} is not a string")))?;
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        Error::invalid_input(format!("credential {member} is not an RFC 3339 date-time"))
    })?;
    Ok(Some(t.unix_timestamp()))
}

/// A FHIR `date` (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`).
fn is_fhir_date(s: &str) -> bool {
    let two = |a: u8, b: u8| {
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| (a - b'0') * 10 + (b - b'0'))
    };
    match s.as_bytes() {
        [y0, y1, y2, y3, rest @ ..] if [y0, y1, y2, y3].iter().all(|c| c.is_ascii_digit()) => {
            match rest {
                [] => true,
                [b'-', m0, m1, rest @ ..]
                    if two(*m0, *m1).is_some_and(|m| (1..=12).contains(&m)) =>
                {
                    match rest {
                        [] => true,
                        [b'-', d0, d1] => two(*d0, *d1).is_some_and(|d| (1..=31).contains(&d)),
                        _ => false,
                    }
                }
                _ => false,
            }
        }
        _ => false,
    }
}

fn text<'a>(object: &'a Value, member: &str, path: &str) -> Result<&'a str, Error> {
    object
        .get(member)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid_input(format!("credential {path} is missing or blank")))
}

fn optional_text(object: Option<&Value>, member: &str) -> Option<String> {
    object?
        .get(member)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn human_name(name: &str, order: NameOrder) -> HumanName {
    let words: Vec<String> = name.split_whitespace().map(str::to_owned).collect();
    match (order, words.as_slice()) {
        (NameOrder::Text, _) => HumanName {
            text: Some(words.join(" ")),
            ..HumanName::default()
        },
        (NameOrder::GivenFamily, [given @ .., family]) => HumanName {
            family: Some(family.clone()),
            given: given.to_vec(),
            text: None,
        },
        (NameOrder::FamilyGiven, [family, given @ ..]) => HumanName {
            family: Some(family.clone()),
            given: given.to_vec(),
            text: None,
        },
        (_, []) => HumanName::default(),
    }
}

/// Builds the payload from the host's W3C vaccination credential.
pub fn build(
    source: &Value,
    host_id: &str,
    config: &Config,
    now: impl FnOnce() -> u64,
) -> Result<Payload, Error> {
    let subject = source
        .get("credentialSubject")
        .filter(|s| s.is_object())
        .ok_or_else(|| Error::invalid_input("credential credentialSubject is missing"))?;
    let name = text(subject, "name", "credentialSubject.name")?;
    let birth_date = text(subject, "birthDate", "credentialSubject.birthDate")?;
    if !is_fhir_date(birth_date) {
        return Err(Error::invalid_input(
            "credential credentialSubject.birthDate is not a date",
        ));
    }
    let vaccination = subject
        .get("vaccination")
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::invalid_input("credential vaccination is missing"))?;
    let vaccine = text(vaccination, "vaccine", "vaccination.vaccine")?;
    let date = text(vaccination, "date", "vaccination.date")?;
    // Immunization.occurrenceDateTime as a date: the date part as written.
    let occurrence = date.get(..10).filter(|d| is_fhir_date(d)).ok_or_else(|| {
        Error::invalid_input("credential vaccination.date is not a date or date-time")
    })?;
    if date.len() > 10 && OffsetDateTime::parse(date, &Rfc3339).is_err() {
        return Err(Error::invalid_input(
            "credential vaccination.date is not a date or date-time",
        ));
    }
    let facility = optional_text(vaccination.get("facility"), "name");

    let nbf = match seconds(source, "validFrom")? {
        Some(t) => t,
        None => i64::try_from(now()).map_err(|_| Error::internal("clock out of range"))?,
    };
    let exp = seconds(source, "validUntil")?;

    let patient = Patient {
        resource_type: "Patient",
        name: [human_name(name, config.name_order)],
        birth_date: birth_date.to_owned(),
    };
    let immunization = Immunization {
        resource_type: "Immunization",
        status: "completed",
        vaccine_code: CodeableConcept {
            coding: [Coding {
                system: CVX_SYSTEM,
                code: config.cvx_for(vaccine),
            }],
        },
        patient: Reference {
            reference: "resource:0",
        },
        occurrence: occurrence.to_owned(),
        lot_number: optional_text(Some(vaccination), "batch"),
        performer: facility
            .map(|display| Performer {
                actor: Display { display },
            })
            .into_iter()
            .collect(),
    };
    Ok(Payload {
        iss: config.iss().to_owned(),
        nbf,
        exp,
        jti: jti(source, host_id),
        vc: Vc {
            types: TYPES,
            credential_subject: CredentialSubject {
                fhir_version: FHIR_VERSION,
                fhir_bundle: Bundle {
                    resource_type: "Bundle",
                    bundle_type: "collection",
                    entry: (
                        Entry {
                            full_url: "resource:0",
                            resource: patient,
                        },
                        Entry {
                            full_url: "resource:1",
                            resource: immunization,
                        },
                    ),
                },
            },
            rid: rid(host_id),
        },
    })
}

/// Whole seconds of a JSON NumericDate (RFC 7519 §2; may be fractional).
fn numeric_date(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

/// `decoded.claims-json` from a card's (inflated, still unverified) claims:
/// `certificateId` (from `jti`; `null` when the card has none), `expiresAt`
/// (`exp`, when present), `issuer`, `notBefore`, `jti`, `rid` and `vc`.
pub fn claims(payload: &Value) -> Result<Value, Error> {
    let iss = payload
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid_input("the card has no iss"))?;
    let vc = payload
        .get("vc")
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::invalid_input("the card has no vc"))?;
    let is_health_card = vc
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|types| types.iter().any(|t| t.as_str() == Some(TYPES[0])));
    if !is_health_card {
        return Err(Error::invalid_input(
            "vc.type does not name https://smarthealth.cards#health-card",
        ));
    }
    if vc.pointer("/credentialSubject/fhirBundle").is_none() {
        return Err(Error::invalid_input("the card has no FHIR bundle"));
    }
    let jti = payload.get("jti").and_then(Value::as_str);
    let mut out = Map::new();
    out.insert(
        "certificateId".into(),
        jti.and_then(certificate_id_of)
            .map_or(Value::Null, Value::from),
    );
    if let Some(exp) = payload.get("exp") {
        let exp = numeric_date(exp).ok_or_else(|| Error::invalid_input("exp is not a number"))?;
        out.insert("expiresAt".into(), exp.into());
    }
    out.insert("issuer".into(), iss.into());
    if let Some(nbf) = payload.get("nbf").and_then(numeric_date) {
        out.insert("notBefore".into(), nbf.into());
    }
    if let Some(jti) = jti {
        out.insert("jti".into(), jti.into());
    }
    out.insert("rid".into(), vc.get("rid").cloned().unwrap_or(Value::Null));
    out.insert("vc".into(), vc.clone());
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURE: &str =
        include_str!("../../../conformance/fixtures/credentials/vaccination.json");
    const ID: &str = "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0";

    fn fixture() -> Value {
        serde_json::from_str(FIXTURE).unwrap()
    }

    #[test]
    fn builds_the_minimised_bundle() {
        let p = build(&fixture(), ID, &Config::default(), || unreachable!()).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            json!({
                "iss": "http://localhost:8080",
                "nbf": 1619950878,
                "exp": 1651486878,
                "jti": "http://localhost:8080/v1/certificates/01F4Q8ZJ6M3T9V2K7XBC5RWD8N0",
                "vc": {
                    "type": ["https://smarthealth.cards#health-card", "https://smarthealth.cards#immunization"],
                    "credentialSubject": {
                        "fhirVersion": "4.0.1",
                        "fhirBundle": {
                            "resourceType": "Bundle",
                            "type": "collection",
                            "entry": [
                                {"fullUrl": "resource:0", "resource": {
                                    "resourceType": "Patient",
                                    "name": [{"family": "Mitra", "given": ["Bhaya"]}],
                                    "birthDate": "1994-11-30"}},
                                {"fullUrl": "resource:1", "resource": {
                                    "resourceType": "Immunization",
                                    "status": "completed",
                                    "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "210"}]},
                                    "patient": {"reference": "resource:0"},
                                    "occurrenceDateTime": "2021-05-02",
                                    "lotNumber": "MB3428BX",
                                    "performer": [{"actor": {"display": "ABC Medical Center"}}]}}
                            ]
                        }
                    },
                    "rid": rid(ID)
                }
            })
        );
        // Minified, with the spec's member order.
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.starts_with(r#"{"iss":"http://localhost:8080","nbf":1619950878,"exp":"#));
        assert!(!text.contains(": ") && !text.contains('\n'));
        // No personal data beyond the DM profiles: no identity number, gender,
        // address, vaccinator.
        for absent in ["234234333412", "Male", "Karnataka", "Sooraj"] {
            assert!(!text.contains(absent), "{absent}");
        }
    }

    #[test]
    fn rid_is_the_documented_hash() {
        // base64url(SHA-256("01F4Q8ZJ6M3T9V2K7XBC5RWD8N")[0..8]).
        let digest = Sha256::digest(b"01F4Q8ZJ6M3T9V2K7XBC5RWD8N");
        assert_eq!(rid(ID), b64(&digest[..8]));
        assert_eq!(rid(ID), rid("01F4Q8ZJ6M3T9V2K7XBC5RWD8N"));
        assert_eq!(rid(ID).len(), 11);
        assert!(rid(ID)
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(rid("conformance-1"), rid("conformance-2"));
    }

    #[test]
    fn jti_names_the_host_id() {
        let src = fixture();
        assert_eq!(certificate_id_of(&jti(&src, ID)).as_deref(), Some(ID));
        // A credential id that names something else: the URN form.
        assert_eq!(jti(&src, "OTHER"), "urn:divoc:certificate:OTHER");
        assert_eq!(jti(&json!({}), ID), format!("urn:divoc:certificate:{ID}"));
        // Percent-encoded check symbols (`$`, `=`) in the credential URL.
        let enc = json!({"id": "https://x.in/v1/certificates/01F4Q8ZJ6M3T9V2K7XBC5RWD8N%3D"});
        let id = "01F4Q8ZJ6M3T9V2K7XBC5RWD8N=";
        assert_eq!(certificate_id_of(&jti(&enc, id)).as_deref(), Some(id));
        assert_eq!(certificate_id_of("urn:divoc:certificate:"), None);
    }

    #[test]
    fn name_orders() {
        let n = |s, o| serde_json::to_value(human_name(s, o)).unwrap();
        assert_eq!(
            n("  Anil  Kumar Sharma ", NameOrder::GivenFamily),
            json!({"family": "Sharma", "given": ["Anil", "Kumar"]})
        );
        assert_eq!(
            n("Mitra Bhaya", NameOrder::FamilyGiven),
            json!({"family": "Mitra", "given": ["Bhaya"]})
        );
        assert_eq!(n("Ravi", NameOrder::GivenFamily), json!({"family": "Ravi"}));
        assert_eq!(
            n("Anil Kumar", NameOrder::Text),
            json!({"text": "Anil Kumar"})
        );
    }

    #[test]
    fn optional_parts_and_clock_fallback() {
        let mut src = fixture();
        let obj = src.as_object_mut().unwrap();
        obj.remove("validFrom");
        obj.remove("validUntil");
        obj.remove("id");
        let vac = src["credentialSubject"]["vaccination"]
            .as_object_mut()
            .unwrap();
        vac.remove("batch");
        vac.remove("facility");
        let p = build(&src, ID, &Config::default(), || 1_700_000_000).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["nbf"], 1_700_000_000);
        assert!(v.get("exp").is_none());
        let imm = &v["vc"]["credentialSubject"]["fhirBundle"]["entry"][1]["resource"];
        assert!(imm.get("lotNumber").is_none());
        assert!(imm.get("performer").is_none());
    }

    #[test]
    fn refuses_incomplete_credentials() {
        let cases: [(&str, Value); 7] = [
            ("/credentialSubject/name", json!("  ")),
            ("/credentialSubject/birthDate", json!("30-11-1994")),
            ("/credentialSubject/vaccination/vaccine", json!(7)),
            ("/credentialSubject/vaccination/date", json!("yesterday")),
            (
                "/credentialSubject/vaccination/date",
                json!("2021-05-02Tnonsense"),
            ),
            ("/validFrom", json!("2021-05-02")),
            ("/validUntil", json!(12)),
        ];
        for (path, value) in cases {
            let mut src = fixture();
            *src.pointer_mut(path).unwrap() = value;
            let err = build(&src, ID, &Config::default(), || 0).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{path}: {err:?}");
        }
        assert!(build(&json!({}), ID, &Config::default(), || 0).is_err());
        assert!(build(&json!([1]), ID, &Config::default(), || 0).is_err());
        assert!(is_fhir_date("1994") && is_fhir_date("1994-11") && is_fhir_date("1994-11-30"));
        assert!(!is_fhir_date("1994-13") && !is_fhir_date("1994-11-32") && !is_fhir_date("94-1-1"));
    }

    #[test]
    fn claims_carry_what_the_host_reads() {
        let p = build(&fixture(), ID, &Config::default(), || 0).unwrap();
        let c = claims(&serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(c["certificateId"], ID);
        assert_eq!(c["expiresAt"], 1651486878);
        assert_eq!(c["issuer"], "http://localhost:8080");
        assert_eq!(c["notBefore"], 1619950878);
        assert_eq!(c["rid"], rid(ID));
        assert_eq!(c["vc"]["credentialSubject"]["fhirVersion"], "4.0.1");
        // A foreign card (no jti, fractional dates) still decodes.
        let foreign = json!({"iss": "https://spec.smarthealth.cards/examples/issuer",
            "nbf": 1668545475.4, "exp": 1700081475.4,
            "vc": {"type": [TYPES[0]], "credentialSubject": {"fhirBundle": {}}, "rid": "vwAjHdarZuc"}});
        let c = claims(&foreign).unwrap();
        assert_eq!(c["certificateId"], Value::Null);
        assert_eq!(c["expiresAt"], 1700081475);
        assert_eq!(c["rid"], "vwAjHdarZuc");
        assert!(claims(&json!({"iss": "x", "vc": {"type": ["other"]}})).is_err());
        assert!(claims(&json!({"vc": {}})).is_err());
        assert!(claims(&json!({"iss": "x", "exp": "soon", "vc": {"type": [TYPES[0]], "credentialSubject": {"fhirBundle": {}}}})).is_err());
    }
}
