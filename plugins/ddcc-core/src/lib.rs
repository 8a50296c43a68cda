//! The WHO DDCC:VS core data set, mapped from the host's signed W3C
//! vaccination credential. Shared by the `format-who-ddcc` (HCERT, `HC1:`)
//! and `format-who-ddcc-fhir` (FHIR R4 document Bundle) plugins so that both
//! artifacts carry the same data.
//!
//! References:
//! - WHO, "Digital documentation of COVID-19 certificates: vaccination
//!   status — technical specifications and implementation guidance"
//!   (27 August 2021), §"Core data set" (the DDCC:VS data dictionary).
//! - WHO DDCC implementation guide (<http://smart.who.int/ddcc>), logical
//!   models `DDCCCoreDataSet` and `DDCCCoreDataSet.VS` (element names and
//!   cardinalities used here), value sets `WHO_DDCC_Vaccines_COVID_19`,
//!   `WHO_DDCC_Brands_COVID_19` and `WHO_DDCC_Disease_Targeted_COVID_19`
//!   (ICD-11 MMS codes), and the `CertDIVOCtoCoreDataSet` structure map
//!   (free-text DIVOC names become a Coding with a `code` and no `system`).
//!
//! This crate is a plain library (no `plugin.toml`): it has no host imports
//! and is unit-tested on the host target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// ICD-11 MMS code system URI (DDCC IG alias `$ICD11`).
pub const ICD11: &str = "http://id.who.int/icd11/mms";
/// ISO 3166 code system URI (FHIR; used by the IG's DIVOC map for `country`).
pub const ISO3166: &str = "urn:iso:std:iso:3166";
/// ICD-11 `XM68M6` "COVID-19 vaccines": the generic vaccine when nothing
/// more specific is known (value set `WHO_DDCC_Vaccines_COVID_19`).
pub const GENERIC_COVID19_VACCINE: &str = "XM68M6";
/// ICD-11 `RA01` "COVID-19" (value set `WHO_DDCC_Disease_Targeted_COVID_19`).
pub const COVID19_DISEASE: &str = "RA01";
/// `certificate.version`: the DDCC:VS schema version written.
pub const SCHEMA_VERSION: &str = "RC-2.0.0";
/// Default `Bundle.identifier.system` / `hcid` system in the FHIR document.
pub const DEFAULT_IDENTIFIER_SYSTEM: &str = "urn:divoc:certificate-id";

/// Why a credential cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapError {
    /// The credential is malformed or lacks a required element.
    InvalidInput(String),
    /// The operator's configuration is wrong.
    Config(String),
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapError::InvalidInput(m) | MapError::Config(m) => f.write_str(m),
        }
    }
}

fn invalid(message: impl Into<String>) -> MapError {
    MapError::InvalidInput(message.into())
}

// ---------------------------------------------------------------------------
// The core data set (DDCCCoreDataSet.VS). Field names are the logical model's
// element names; FHIR datatypes (Coding, Identifier, Reference, Period) keep
// their FHIR JSON member names, which is how the CBOR map of the HCERT claim
// and the JSON of the claims are both written.
// ---------------------------------------------------------------------------

/// A FHIR `Coding` reduced to `system` and `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub code: String,
}

impl Coding {
    pub fn new(system: &str, code: &str) -> Coding {
        Coding {
            system: Some(system.to_owned()),
            code: code.to_owned(),
        }
    }

    /// A free-text name as a Coding with no system (the IG's DIVOC map).
    pub fn text(code: &str) -> Coding {
        Coding {
            system: None,
            code: code.to_owned(),
        }
    }
}

/// A FHIR `Identifier` reduced to `system` and `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub value: String,
}

/// A FHIR `Reference` by identifier (`certificate.issuer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// A FHIR `Period`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// `DDCCCoreDataSet.certificate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    pub issuer: Reference,
    /// Health certificate identifier: the host's certificate id.
    pub hcid: Identifier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddccid: Option<Identifier>,
    pub version: String,
}

/// `DDCCCoreDataSet.VS.vaccination`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vaccination {
    pub vaccine: Coding,
    pub brand: Coding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<Coding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maholder: Option<Coding>,
    pub lot: String,
    pub date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    pub dose: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_doses: Option<u32>,
    pub country: Coding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centre: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disease: Option<Coding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_dose: Option<String>,
}

/// `DDCCCoreDataSet.VS` (with `sex` from `DDCCCoreDataSet.VS.CoC`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreDataSet {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// FHIR administrative gender: `male`, `female`, `other`, `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    pub certificate: Certificate,
    pub vaccination: Vaccination,
}

impl CoreDataSet {
    /// Checks what the logical model requires beyond the Rust types:
    /// non-blank name, lot, date and hcid, and `dose` a positiveInt.
    pub fn validate(&self) -> Result<(), MapError> {
        let blank = |s: &str| s.trim().is_empty();
        if blank(&self.name) {
            return Err(invalid("the DDCC core data set has no name"));
        }
        if blank(&self.certificate.hcid.value) {
            return Err(invalid("the DDCC core data set has no certificate.hcid"));
        }
        let v = &self.vaccination;
        if blank(&v.lot) || blank(&v.date) || blank(&v.vaccine.code) || blank(&v.brand.code) {
            return Err(invalid(
                "the DDCC core data set lacks vaccination vaccine, brand, lot or date",
            ));
        }
        if v.dose == 0 {
            return Err(invalid("vaccination.dose must be a positive integer"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Configuration (`[plugins.config.<plugin>]`), shared by both plugins.
// ---------------------------------------------------------------------------

/// Codes for one vaccine name of the `vaccines` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaccineCodes {
    pub vaccine: Option<Coding>,
    pub brand: Option<Coding>,
    pub manufacturer: Option<Coding>,
    pub maholder: Option<Coding>,
}

/// The configuration section both DDCC plugins read (unknown keys are left
/// to the plugin, e.g. `hcert_claim_key`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Config {
    /// ISO 3166-1 alpha-2 code of the issuing country (CWT `iss`).
    pub country: Option<String>,
    /// ISO 3166-1 alpha-3 code for `vaccination.country`.
    pub country_alpha3: Option<String>,
    /// `certificate.issuer.identifier.value` (default: the credential's issuer).
    pub issuer_id: Option<String>,
    /// `certificate.issuer.display` and the FHIR Organization's name.
    pub issuer_name: Option<String>,
    /// Write the recipient's identity document as `identifier` (personal data).
    pub include_identifier: bool,
    /// Expiry when the credential has no `validUntil`, in days after issuance.
    pub validity_days: u32,
    /// Codes by vaccine name (matched ignoring case and punctuation).
    pub vaccines: BTreeMap<String, VaccineCodes>,
    /// `vaccination.disease` (default ICD-11 RA01 COVID-19).
    pub disease: Option<Coding>,
    /// `system` of the FHIR Bundle identifier and of `certificate.hcid`.
    pub identifier_system: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            country: None,
            country_alpha3: None,
            issuer_id: None,
            issuer_name: None,
            include_identifier: false,
            validity_days: 365,
            vaccines: BTreeMap::new(),
            disease: None,
            identifier_system: None,
        }
    }
}

impl Config {
    /// Parses a configuration section (JSON object from the host).
    pub fn parse(json: &str) -> Result<Config, MapError> {
        let config: Config = serde_json::from_str(json)
            .map_err(|e| MapError::Config(format!("invalid plugin configuration: {e}")))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), MapError> {
        if let Some(c) = &self.country {
            if !is_alpha(c, 2) {
                return Err(MapError::Config(
                    "`country` must be an ISO 3166-1 alpha-2 code".into(),
                ));
            }
        }
        if let Some(c) = &self.country_alpha3 {
            if !is_alpha(c, 3) {
                return Err(MapError::Config(
                    "`country_alpha3` must be an ISO 3166-1 alpha-3 code".into(),
                ));
            }
        }
        Ok(())
    }

    /// The `system` of identifiers naming the host certificate.
    pub fn identifier_system(&self) -> &str {
        self.identifier_system
            .as_deref()
            .unwrap_or(DEFAULT_IDENTIFIER_SYSTEM)
    }
}

fn is_alpha(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_alphabetic())
}

// ---------------------------------------------------------------------------
// Vaccine codes: the operator's table first, then the IG's ICD-11 codes for
// well-known COVID-19 vaccine brands, then the generic fallback.
// ---------------------------------------------------------------------------

/// `(aliases, vaccine sub-type, brand)`, from the DDCC IG code system
/// `DDCC-ICD11-CodeSystem` and value sets `WHO_DDCC_Vaccines_COVID_19`
/// (sub-types) / `WHO_DDCC_Brands_COVID_19` (brands).
const BUILTIN: &[(&[&str], &str, &str)] = &[
    (&["covishield"], "XM9QW8", "XM97T2"),
    (&["covaxin", "bbv152"], "XM1NL1", "XM1G90"),
    (
        &["comirnaty", "pfizer", "pfizerbiontech", "bnt162b2"],
        "XM0GQ8",
        "XM8NQ0",
    ),
    (&["moderna", "spikevax", "mrna1273"], "XM0GQ8", "XM3DT5"),
    (&["astrazeneca", "vaxzevria", "azd1222"], "XM9QW8", "XM4YL8"),
    (&["janssen", "johnsonjohnson", "jj"], "XM9QW8", "XM6QV1"),
    (&["sputnikv", "gamcovidvac"], "XM9QW8", "XM5ZJ4"),
    (&["sputniklight"], "XM9QW8", "XM5QM6"),
    (&["coronavac", "sinovac"], "XM1NL1", "XM7HT3"),
    (&["bbibpcorv", "sinopharm"], "XM1NL1", "XM8866"),
    (&["convidecia"], "XM9QW8", "XM1AG7"),
    (&["zycovd"], "XM6AT1", "XM52P3"),
    (&["novavax", "nuvaxovid", "covovax"], "XM5JC5", "XM9T65"),
];

/// Lower-case letters and digits only: `"Pfizer-BioNTech"` → `"pfizerbiontech"`.
pub fn normalize_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The codes for a vaccine name: vaccine, brand, manufacturer, MA holder.
pub fn vaccine_codes(
    config: &Config,
    name: &str,
    manufacturer: Option<&str>,
) -> (Coding, Coding, Option<Coding>, Option<Coding>) {
    let key = normalize_name(name);
    let configured = config
        .vaccines
        .iter()
        .find(|(k, _)| normalize_name(k) == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let builtin = BUILTIN
        .iter()
        .find(|(aliases, _, _)| aliases.contains(&key.as_str()));
    let vaccine = configured.vaccine.unwrap_or_else(|| match builtin {
        Some((_, sub_type, _)) => Coding::new(ICD11, sub_type),
        None => Coding::new(ICD11, GENERIC_COVID19_VACCINE),
    });
    let brand = configured.brand.unwrap_or_else(|| match builtin {
        Some((_, _, brand)) => Coding::new(ICD11, brand),
        None => Coding::text(name.trim()),
    });
    let manufacturer = configured.manufacturer.or_else(|| {
        manufacturer
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(Coding::text)
    });
    (vaccine, brand, manufacturer, configured.maholder)
}

// ---------------------------------------------------------------------------
// Countries.
// ---------------------------------------------------------------------------

/// ISO 3166-1 alpha-3 for an alpha-2 or alpha-3 code, if it is one.
pub fn alpha3(code: &str) -> Option<String> {
    let code = code.trim();
    if is_alpha(code, 2) {
        isocountry::CountryCode::for_alpha2_caseless(code)
            .ok()
            .map(|c| c.alpha3().to_owned())
    } else if is_alpha(code, 3) {
        isocountry::CountryCode::for_alpha3_caseless(code)
            .ok()
            .map(|c| c.alpha3().to_owned())
    } else {
        None
    }
}

/// ISO 3166-1 alpha-2 for an alpha-2 or alpha-3 code, if it is one.
pub fn alpha2(code: &str) -> Option<String> {
    let code = code.trim();
    if is_alpha(code, 2) {
        isocountry::CountryCode::for_alpha2_caseless(code)
            .ok()
            .map(|c| c.alpha2().to_owned())
    } else if is_alpha(code, 3) {
        isocountry::CountryCode::for_alpha3_caseless(code)
            .ok()
            .map(|c| c.alpha2().to_owned())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Dates.
// ---------------------------------------------------------------------------

/// Seconds since the epoch for an RFC 3339 date-time or an ISO 8601 date
/// (taken as 00:00:00Z).
pub fn epoch_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    let parsed = if text.len() == 10 {
        OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339)
    } else {
        OffsetDateTime::parse(text, &Rfc3339)
    };
    parsed.ok().map(OffsetDateTime::unix_timestamp)
}

/// RFC 3339 (UTC) for seconds since the epoch.
pub fn rfc3339(seconds: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

/// The `YYYY-MM-DD` part of a date or date-time, when it is one.
fn date_part(text: &str) -> Option<String> {
    let d = text.trim().get(..10)?;
    epoch_seconds(d).map(|_| d.to_owned())
}

// ---------------------------------------------------------------------------
// The mapping.
// ---------------------------------------------------------------------------

/// What both formats make from one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub core: CoreDataSet,
    /// Issuing country, ISO 3166-1 alpha-2 (CWT `iss`, HCERT §3.3.4).
    pub issuer_country: String,
    /// Issued at, seconds since the epoch (the credential's `validFrom`).
    pub issued_at: i64,
    /// Expires at, seconds since the epoch (`validUntil`, or issued at +
    /// `validity_days`).
    pub expires_at: i64,
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn positive(v: &Value, pointer: &str) -> Option<u32> {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
}

/// FHIR administrative gender (`DDCCCoreDataSet.VS.CoC.sex`, required
/// binding) from the credential's free-text gender.
pub fn sex(gender: &str) -> &'static str {
    match normalize_name(gender).as_str() {
        "male" | "m" | "man" => "male",
        "female" | "f" | "woman" => "female",
        "other" | "o" | "transgender" | "nonbinary" | "diverse" | "x" => "other",
        _ => "unknown",
    }
}

/// Maps the host's signed vaccination credential (JSON) with certificate id
/// `certificate_id` to the DDCC:VS core data set.
pub fn map_credential(
    credential_json: &str,
    certificate_id: &str,
    config: &Config,
) -> Result<Mapped, MapError> {
    let vc: Value = serde_json::from_str(credential_json)
        .map_err(|e| invalid(format!("the credential is not JSON: {e}")))?;
    if !vc.is_object() {
        return Err(invalid("the credential is not a JSON object"));
    }
    let certificate_id = certificate_id.trim();
    if certificate_id.is_empty() {
        return Err(invalid("the certificate id is blank"));
    }
    let subject = "/credentialSubject";
    let event = "/credentialSubject/vaccination";
    let name = text(&vc, &format!("{subject}/name"))
        .ok_or_else(|| invalid("the credential has no credentialSubject.name"))?;
    let vaccine_name = text(&vc, &format!("{event}/vaccine"))
        .ok_or_else(|| invalid("the credential has no vaccination.vaccine"))?;
    let lot = text(&vc, &format!("{event}/batch"))
        .ok_or_else(|| invalid("the credential has no vaccination.batch (lot)"))?;
    let date = text(&vc, &format!("{event}/date"))
        .ok_or_else(|| invalid("the credential has no vaccination.date"))?;
    if epoch_seconds(date).is_none() {
        return Err(invalid(
            "vaccination.date is not an RFC 3339 date or date-time",
        ));
    }
    let dose = positive(&vc, &format!("{event}/dose"))
        .ok_or_else(|| invalid("vaccination.dose must be a positive integer"))?;
    let total_doses = positive(&vc, &format!("{event}/totalDoses"));
    let birth_date = text(&vc, &format!("{subject}/birthDate"))
        .or_else(|| text(&vc, &format!("{subject}/dob")))
        .and_then(date_part);

    let (vaccine, brand, manufacturer, maholder) = vaccine_codes(
        config,
        vaccine_name,
        text(&vc, &format!("{event}/manufacturer")),
    );

    // Country of vaccination (ISO 3166-1 alpha-3, DDCC:VS "country").
    let facility_country = text(&vc, &format!("{event}/facility/address/country"));
    let subject_country = text(&vc, &format!("{subject}/address/country"));
    let country3 = config
        .country_alpha3
        .as_deref()
        .map(str::to_ascii_uppercase)
        .or_else(|| facility_country.and_then(alpha3))
        .or_else(|| config.country.as_deref().and_then(alpha3))
        .unwrap_or_else(|| "XXX".to_owned());
    // Issuing country (ISO 3166-1 alpha-2, CWT iss).
    let issuer_country = config
        .country
        .as_deref()
        .map(str::to_ascii_uppercase)
        .or_else(|| facility_country.and_then(alpha2))
        .or_else(|| subject_country.and_then(alpha2))
        .unwrap_or_else(|| "XX".to_owned());

    let valid_from = text(&vc, "/validFrom");
    let valid_until = text(&vc, "/validUntil");
    let issued_at = valid_from
        .and_then(epoch_seconds)
        .or_else(|| epoch_seconds(date))
        .ok_or_else(|| invalid("the credential has no usable validFrom"))?;
    let expires_at = match valid_until {
        Some(v) => {
            epoch_seconds(v).ok_or_else(|| invalid("validUntil is not an RFC 3339 date-time"))?
        }
        None => issued_at.saturating_add(i64::from(config.validity_days) * 86_400),
    };
    if expires_at <= issued_at {
        return Err(invalid("the credential expires before it is valid"));
    }

    let issuer_id = config
        .issuer_id
        .clone()
        .or_else(|| text(&vc, "/issuer").map(str::to_owned))
        .or_else(|| text(&vc, "/issuer/id").map(str::to_owned))
        .ok_or_else(|| invalid("the credential has no issuer and no issuer_id is configured"))?;

    let identifier = if config.include_identifier {
        text(&vc, &format!("{subject}/identity/value")).map(|value| Identifier {
            system: text(&vc, &format!("{subject}/identity/scheme")).map(str::to_owned),
            value: value.to_owned(),
        })
    } else {
        None
    };

    let core = CoreDataSet {
        name: name.to_owned(),
        birth_date,
        identifier,
        sex: text(&vc, &format!("{subject}/gender")).map(|g| sex(g).to_owned()),
        certificate: Certificate {
            period: Some(Period {
                start: valid_from.and_then(epoch_seconds).and_then(rfc3339),
                end: rfc3339(expires_at),
            }),
            issuer: Reference {
                identifier: Some(Identifier {
                    system: None,
                    value: issuer_id,
                }),
                display: config.issuer_name.clone(),
            },
            hcid: Identifier {
                system: None,
                value: certificate_id.to_owned(),
            },
            ddccid: None,
            version: SCHEMA_VERSION.to_owned(),
        },
        vaccination: Vaccination {
            vaccine,
            brand,
            manufacturer,
            maholder,
            lot: lot.to_owned(),
            date: date.to_owned(),
            valid_from: text(&vc, &format!("{event}/effectiveStart")).and_then(date_part),
            dose,
            total_doses,
            country: Coding::new(ISO3166, &country3),
            centre: text(&vc, &format!("{event}/facility/name")).map(str::to_owned),
            // Practitioner (vaccinator) is optional in DDCC:VS and personal
            // data: not written.
            disease: Some(
                config
                    .disease
                    .clone()
                    .unwrap_or_else(|| Coding::new(ICD11, COVID19_DISEASE)),
            ),
            next_dose: text(&vc, &format!("{event}/nextDose")).and_then(date_part),
        },
    };
    core.validate()?;
    Ok(Mapped {
        core,
        issuer_country,
        issued_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const VACCINATION: &str =
        include_str!("../../../conformance/fixtures/credentials/vaccination.json");
    const ID: &str = "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0";

    #[test]
    fn maps_the_fixture() {
        let m = map_credential(VACCINATION, ID, &Config::default()).unwrap();
        let c = &m.core;
        assert_eq!(c.name, "Bhaya Mitra");
        assert_eq!(c.birth_date.as_deref(), Some("1994-11-30"));
        assert_eq!(c.identifier, None, "identifier is off by default");
        assert_eq!(c.sex.as_deref(), Some("male"));
        assert_eq!(c.certificate.hcid.value, ID);
        assert_eq!(c.certificate.version, "RC-2.0.0");
        assert_eq!(
            c.certificate.issuer.identifier.as_ref().unwrap().value,
            "did:web:localhost%3A8080"
        );
        let p = c.certificate.period.as_ref().unwrap();
        assert_eq!(p.start.as_deref(), Some("2021-05-02T10:21:18Z"));
        assert_eq!(p.end.as_deref(), Some("2022-05-02T10:21:18Z"));
        let v = &c.vaccination;
        assert_eq!(v.vaccine, Coding::new(ICD11, "XM9QW8"));
        assert_eq!(v.brand, Coding::new(ICD11, "XM97T2"));
        assert_eq!(
            v.manufacturer,
            Some(Coding::text("Serum Institute of India"))
        );
        assert_eq!(v.maholder, None);
        assert_eq!(v.lot, "MB3428BX");
        assert_eq!(v.date, "2021-05-02T10:21:18Z");
        assert_eq!(v.valid_from.as_deref(), Some("2021-05-02"));
        assert_eq!((v.dose, v.total_doses), (2, Some(2)));
        assert_eq!(v.country, Coding::new(ISO3166, "IND"));
        assert_eq!(v.centre.as_deref(), Some("ABC Medical Center"));
        assert_eq!(v.disease, Some(Coding::new(ICD11, "RA01")));
        assert_eq!(m.issuer_country, "IN");
        assert_eq!(m.issued_at, 1_619_950_878);
        assert_eq!(m.expires_at, 1_651_486_878);
    }

    #[test]
    fn json_shape_uses_logical_model_names() {
        let m = map_credential(VACCINATION, ID, &Config::default()).unwrap();
        let j = serde_json::to_value(&m.core).unwrap();
        assert_eq!(j["birthDate"], "1994-11-30");
        assert_eq!(j["vaccination"]["validFrom"], "2021-05-02");
        assert_eq!(j["vaccination"]["totalDoses"], 2);
        assert_eq!(
            j["vaccination"]["manufacturer"],
            serde_json::json!({"code": "Serum Institute of India"})
        );
        assert!(j["vaccination"].get("practitioner").is_none());
        assert!(j["vaccination"].get("nextDose").is_none());
        let back: CoreDataSet = serde_json::from_value(j).unwrap();
        assert_eq!(back, m.core);
    }

    #[test]
    fn config_overrides() {
        let config = Config::parse(
            r#"{"country":"IN","country_alpha3":"IND","issuer_id":"in.gov.mohfw",
                "issuer_name":"Ministry of Health","include_identifier":true,
                "vaccines":{"COVISHIELD":{"vaccine":{"system":"http://id.who.int/icd11/mms","code":"XM68M6"},
                  "maholder":{"system":"https://spor.ema.europa.eu/v1/organisations","code":"ORG-100001981"}}},
                "hcert_claim_key":-6}"#,
        )
        .unwrap();
        let m = map_credential(VACCINATION, ID, &config).unwrap();
        let c = &m.core;
        assert_eq!(c.vaccination.vaccine.code, "XM68M6");
        assert_eq!(c.vaccination.brand.code, "XM97T2", "brand still built in");
        assert_eq!(
            c.vaccination.maholder.as_ref().unwrap().code,
            "ORG-100001981"
        );
        assert_eq!(
            c.identifier,
            Some(Identifier {
                system: Some("in.gov.uidai.aadhaar".into()),
                value: "234234333412".into()
            })
        );
        assert_eq!(
            c.certificate.issuer.display.as_deref(),
            Some("Ministry of Health")
        );
        assert!(Config::parse(r#"{"country":"IND"}"#).is_err());
        assert!(Config::parse(r#"{"country_alpha3":"IN"}"#).is_err());
        assert!(Config::parse(r#"{"vaccines":{"x":{"brand":"XM97T2"}}}"#).is_err());
    }

    #[test]
    fn unknown_vaccine_and_country_fall_back() {
        let vc = VACCINATION
            .replace("\"Covishield\"", "\"Corbevax\"")
            .replace("\"country\": \"IN\"", "\"country\": \"Atlantis\"");
        let m = map_credential(&vc, ID, &Config::default()).unwrap();
        assert_eq!(m.core.vaccination.vaccine, Coding::new(ICD11, "XM68M6"));
        assert_eq!(m.core.vaccination.brand, Coding::text("Corbevax"));
        assert_eq!(m.core.vaccination.country.code, "XXX");
        assert_eq!(m.issuer_country, "XX");
    }

    #[test]
    fn missing_validity_uses_validity_days() {
        let mut vc: Value = serde_json::from_str(VACCINATION).unwrap();
        vc.as_object_mut().unwrap().remove("validUntil");
        let m = map_credential(&vc.to_string(), ID, &Config::default()).unwrap();
        assert_eq!(m.expires_at - m.issued_at, 365 * 86_400);
    }

    #[test]
    fn rejects_bad_credentials() {
        for bad in ["{not json", "[]", r#"{"credentialSubject":{"name":"A"}}"#] {
            assert!(matches!(
                map_credential(bad, ID, &Config::default()),
                Err(MapError::InvalidInput(_))
            ));
        }
        let zero = VACCINATION.replace("\"dose\": 2", "\"dose\": 0");
        assert!(map_credential(&zero, ID, &Config::default()).is_err());
        assert!(map_credential(VACCINATION, " ", &Config::default()).is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(normalize_name(" Pfizer-BioNTech® "), "pfizerbiontech");
        assert_eq!(sex("Female"), "female");
        assert_eq!(sex("Prefer not to say"), "unknown");
        assert_eq!(alpha3("in").as_deref(), Some("IND"));
        assert_eq!(alpha3("IND").as_deref(), Some("IND"));
        assert_eq!(alpha2("IND").as_deref(), Some("IN"));
        assert_eq!(alpha3("XX"), None);
        assert_eq!(epoch_seconds("1970-01-02"), Some(86_400));
        assert_eq!(rfc3339(86_400).as_deref(), Some("1970-01-02T00:00:00Z"));
    }
}
