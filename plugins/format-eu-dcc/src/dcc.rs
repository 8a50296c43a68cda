//! The DCC payload (EU DCC JSON schema 1.3.0) for a host vaccination
//! credential, and the plugin's configuration.

use std::collections::BTreeMap;

use divoc_sdk::Error;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{icao, uvci};

/// Schema version of the DCC this plugin writes.
pub const SCHEMA_VERSION: &str = "1.3.0";
/// SNOMED CT 840539006, "COVID-19" (value set `disease-agent-targeted`).
pub const COVID_19: &str = "840539006";
/// ATC J07BX03 "covid-19 vaccines" (value set `sct-vaccines-covid-19`).
const ATC_COVID_19_VACCINES: &str = "J07BX03";
/// SNOMED CT 1119349007 "SARS-CoV-2 mRNA vaccine".
const SCT_MRNA: &str = "1119349007";
/// `co` and UVCI country when neither the configuration nor the facility
/// names one (ISO 3166-1 user-assigned code).
const UNKNOWN_COUNTRY: &str = "XX";
const DEFAULT_ISSUER: &str = "Ministry of Health";
const DEFAULT_VALIDITY_DAYS: u32 = 365;
const SECONDS_PER_DAY: i64 = 86_400;

/// The plugin's section, `[plugins.config.format-eu-dcc]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// ISO 3166-1 alpha-2 code of the issuing state: CWT `iss`, DCC `v.co`
    /// and the UVCI's country.
    pub country: Option<String>,
    /// DCC `v.is`, the certificate issuer (at most 80 characters).
    pub issuer: Option<String>,
    /// CWT `exp` = `iat` + this many days when the credential has no
    /// `validUntil`.
    pub validity_days: Option<u32>,
    /// Programme (case-insensitive) → SNOMED CT code of the disease
    /// targeted (`tg`). Added to the default `covid-19` → `840539006`.
    pub disease: BTreeMap<String, String>,
    /// Vaccine name as the credential gives it (case-insensitive) → the
    /// DCC value-set codes. Added to (and overriding) the built-in table.
    pub vaccines: BTreeMap<String, VaccineCodes>,
}

/// `vp`, `mp` and `ma` of a vaccine; a missing one falls back to the
/// built-in entry, then to the generic fallback (see [`vaccine_codes`]).
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VaccineCodes {
    /// Vaccine or prophylaxis (`sct-vaccines-covid-19`).
    pub vp: Option<String>,
    /// Medicinal product (`vaccines-covid-19-names`).
    pub mp: Option<String>,
    /// Marketing authorisation holder or manufacturer
    /// (`vaccines-covid-19-auth-holders`).
    pub ma: Option<String>,
}

/// Built-in codes from the EU DCC value sets (eu-dcc-valuesets:
/// vaccine-prophylaxis, vaccine-medicinal-product, vaccine-mah-manf).
const BUILT_IN: &[(&str, &str, &str, &str)] = &[
    // name (lower case), vp, mp, ma
    (
        "covishield",
        ATC_COVID_19_VACCINES,
        "Covishield",
        "ORG-100001981",
    ),
    (
        "covaxin",
        ATC_COVID_19_VACCINES,
        "Covaxin",
        "Bharat-Biotech",
    ),
    ("comirnaty", SCT_MRNA, "EU/1/20/1528", "ORG-100030215"),
    ("spikevax", SCT_MRNA, "EU/1/20/1507", "ORG-100031184"),
    (
        "vaxzevria",
        ATC_COVID_19_VACCINES,
        "EU/1/21/1529",
        "ORG-100001699",
    ),
    (
        "jcovden",
        ATC_COVID_19_VACCINES,
        "EU/1/20/1525",
        "ORG-100001417",
    ),
    (
        "nuvaxovid",
        ATC_COVID_19_VACCINES,
        "EU/1/21/1618",
        "ORG-100032020",
    ),
    (
        "sputnik-v",
        ATC_COVID_19_VACCINES,
        "Sputnik-V",
        "Gamaleya-Research-Institute",
    ),
    (
        "coronavac",
        ATC_COVID_19_VACCINES,
        "CoronaVac",
        "Sinovac-Biotech",
    ),
    (
        "bbibp-corv",
        ATC_COVID_19_VACCINES,
        "BBIBP-CorV",
        "ORG-100020693",
    ),
];

/// The value-set codes for a vaccine name: the configured entry, then the
/// built-in one, field by field; for a vaccine neither knows, `vp`
/// J07BX03 ("covid-19 vaccines"), `mp` the vaccine name and `ma` the
/// manufacturer name as the credential gives them.
pub fn vaccine_codes(
    config: &Config,
    vaccine: &str,
    manufacturer: &str,
) -> (String, String, String) {
    let key = vaccine.trim().to_lowercase();
    let configured = config
        .vaccines
        .iter()
        .find(|(name, _)| name.trim().to_lowercase() == key)
        .map(|(_, codes)| codes.clone())
        .unwrap_or_default();
    let built_in = BUILT_IN.iter().find(|(name, ..)| *name == key);
    let pick = |configured: Option<String>, built_in: Option<&str>, fallback: &str| {
        configured
            .or_else(|| built_in.map(str::to_owned))
            .unwrap_or_else(|| fallback.to_owned())
    };
    (
        pick(configured.vp, built_in.map(|b| b.1), ATC_COVID_19_VACCINES),
        pick(configured.mp, built_in.map(|b| b.2), vaccine.trim()),
        pick(configured.ma, built_in.map(|b| b.3), manufacturer.trim()),
    )
}

/// The SNOMED CT code of the disease a programme targets, if mapped.
pub fn disease_code(config: &Config, programme: &str) -> Option<String> {
    let key = programme.trim().to_lowercase();
    config
        .disease
        .iter()
        .find(|(name, _)| name.trim().to_lowercase() == key)
        .map(|(_, code)| code.clone())
        .or_else(|| (key == "covid-19").then(|| COVID_19.to_owned()))
}

/// What the CWT needs besides the DCC.
#[derive(Debug, PartialEq)]
pub struct Certificate {
    /// The DCC JSON (`hcert` claim key 1).
    pub dcc: Value,
    /// Issuing country: CWT `iss`.
    pub country: String,
    /// CWT `iat`, seconds.
    pub issued_at: i64,
    /// CWT `exp`, seconds.
    pub expires_at: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credential {
    valid_from: Option<String>,
    valid_until: Option<String>,
    credential_subject: Option<Subject>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subject {
    name: Option<String>,
    birth_date: Option<String>,
    vaccination: Option<Vaccination>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vaccination {
    program: Option<String>,
    vaccine: Option<String>,
    manufacturer: Option<String>,
    date: Option<String>,
    dose: Option<u64>,
    total_doses: Option<u64>,
    facility: Option<Facility>,
}

#[derive(Debug, Deserialize)]
struct Facility {
    address: Option<Address>,
}

#[derive(Debug, Deserialize)]
struct Address {
    country: Option<String>,
}

fn missing(what: &str) -> Error {
    Error::invalid_input(format!("the credential has no {what}"))
}

/// Seconds since the epoch of an RFC 3339 date-time.
fn seconds(value: &str, what: &str) -> Result<i64, Error> {
    OffsetDateTime::parse(value.trim(), &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| {
            Error::invalid_input(format!(
                "the credential's {what} is not an RFC 3339 date-time"
            ))
        })
}

/// The calendar day of an RFC 3339 date-time (as written, in its own
/// offset) or of a plain `YYYY-MM-DD` date, as `YYYY-MM-DD`.
pub fn day(value: &str) -> Option<String> {
    let value = value.trim();
    let parsed = OffsetDateTime::parse(value, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{value}T00:00:00Z"), &Rfc3339))
        .ok()?;
    let date = parsed.date();
    Some(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    ))
}

/// `dob` as the schema allows it: `YYYY-MM-DD`, `YYYY-MM` or `YYYY` with
/// a year from 1900 to 2099, or `""` when unknown.
pub fn date_of_birth(birth_date: Option<&str>) -> String {
    let Some(value) = birth_date.map(str::trim) else {
        return String::new();
    };
    let in_range = |year: &str| matches!(year.get(..2), Some("19" | "20"));
    if let Some(full) = day(value) {
        return if in_range(&full) { full } else { String::new() };
    }
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let partial = match value.split('-').collect::<Vec<_>>()[..] {
        [year] => digits(year, 4),
        [year, month] => {
            digits(year, 4) && digits(month, 2) && matches!(month.parse::<u8>(), Ok(1..=12))
        }
        _ => false,
    };
    if partial && in_range(value) {
        value.to_owned()
    } else {
        String::new()
    }
}

/// The issuing country: the configured one, else the facility address's
/// when it is an ISO 3166-1 alpha-2 code, else `XX`.
fn country(config: &Config, facility_country: Option<&str>) -> Result<String, Error> {
    let two_letters = |c: &str| {
        let c = c.trim().to_ascii_uppercase();
        (c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())).then_some(c)
    };
    match &config.country {
        Some(configured) => two_letters(configured).ok_or_else(|| {
            Error::internal(format!(
                "invalid plugin configuration: `country` must be an ISO 3166-1 alpha-2 code, got {}",
                divoc_sdk::quote(configured)
            ))
        }),
        None => Ok(facility_country
            .and_then(two_letters)
            .unwrap_or_else(|| UNKNOWN_COUNTRY.to_owned())),
    }
}

/// Builds the DCC and the CWT times from the host credential JSON.
/// `now` is asked only when the credential has no `validFrom`.
pub fn build(
    credential_json: &str,
    certificate_id: &str,
    config: &Config,
    now: impl FnOnce() -> i64,
) -> Result<Certificate, Error> {
    let credential: Credential = serde_json::from_str(credential_json)?;
    let subject = credential
        .credential_subject
        .ok_or_else(|| missing("credentialSubject"))?;
    let vaccination = subject
        .vaccination
        .ok_or_else(|| missing("credentialSubject.vaccination"))?;

    // nam (schema `person_name`).
    let name = subject.name.unwrap_or_default();
    let (family, given) = icao::split(&name);
    if family.is_empty() {
        return Err(missing("recipient name"));
    }
    let mut nam = Map::new();
    nam.insert("fn".into(), json!(icao::limit(&family)));
    nam.insert("fnt".into(), json!(icao::transliterate(&family)));
    if let Some(given) = given {
        nam.insert("gn".into(), json!(icao::limit(&given)));
        nam.insert("gnt".into(), json!(icao::transliterate(&given)));
    }

    // v[0] (schema `vaccination_entry`).
    let programme = vaccination
        .program
        .ok_or_else(|| missing("vaccination.program"))?;
    let tg = disease_code(config, &programme).ok_or_else(|| {
        Error::rejected(format!(
            "programme {} has no disease code for the EU DCC; map it under [plugins.config.format-eu-dcc.disease]",
            divoc_sdk::quote(&programme)
        ))
    })?;
    let vaccine = vaccination
        .vaccine
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| missing("vaccination.vaccine"))?;
    let manufacturer = vaccination.manufacturer.unwrap_or_default();
    let (vp, mp, ma) = vaccine_codes(config, &vaccine, &manufacturer);
    // dn and sd are 1..=9 in the schema; sd never below dn (a booster past
    // the primary series counts as its own total).
    let dn = vaccination
        .dose
        .ok_or_else(|| missing("vaccination.dose"))?;
    if !(1..=9).contains(&dn) {
        return Err(Error::invalid_input(
            "the EU DCC schema allows dose numbers 1 to 9",
        ));
    }
    let sd = vaccination.total_doses.unwrap_or(dn).clamp(dn, 9);
    let dt = vaccination
        .date
        .as_deref()
        .and_then(day)
        .ok_or_else(|| missing("vaccination.date as an RFC 3339 date-time"))?;
    let facility_country = vaccination
        .facility
        .and_then(|f| f.address)
        .and_then(|a| a.country);
    let co = country(config, facility_country.as_deref())?;
    let issuer = icao::limit(config.issuer.as_deref().unwrap_or(DEFAULT_ISSUER));
    let body = uvci::certificate_body(certificate_id)?;
    let ci = uvci::uvci(&co, &body)?;

    let dcc = json!({
        "ver": SCHEMA_VERSION,
        "nam": nam,
        "dob": date_of_birth(subject.birth_date.as_deref()),
        "v": [{
            "tg": tg,
            "vp": vp,
            "mp": mp,
            "ma": ma,
            "dn": dn,
            "sd": sd,
            "dt": dt,
            "co": co,
            "is": issuer,
            "ci": ci,
        }],
    });

    // CWT times (hcert §3.3.1: iat and exp are required).
    let issued_at = match credential.valid_from.as_deref() {
        Some(from) => seconds(from, "validFrom")?,
        None => now(),
    };
    let expires_at = match credential.valid_until.as_deref() {
        Some(until) => seconds(until, "validUntil")?,
        None => {
            let days = config.validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS);
            issued_at.saturating_add(i64::from(days) * SECONDS_PER_DAY)
        }
    };
    Ok(Certificate {
        dcc,
        country: co,
        issued_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const FIXTURE: &str =
        include_str!("../../../conformance/fixtures/credentials/vaccination.json");
    pub const ID: &str = "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0";

    fn config(toml_like_json: Value) -> Config {
        serde_json::from_value(toml_like_json).unwrap()
    }

    fn with(edit: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(FIXTURE).unwrap();
        edit(&mut v);
        v.to_string()
    }

    #[test]
    fn the_fixture_credential() {
        let cert = build(FIXTURE, ID, &Config::default(), || panic!("not needed")).unwrap();
        assert_eq!(
            cert.dcc,
            json!({
                "ver": "1.3.0",
                "nam": {"fn": "Mitra", "fnt": "MITRA", "gn": "Bhaya", "gnt": "BHAYA"},
                "dob": "1994-11-30",
                "v": [{
                    "tg": "840539006",
                    "vp": "J07BX03",
                    "mp": "Covishield",
                    "ma": "ORG-100001981",
                    "dn": 2,
                    "sd": 2,
                    "dt": "2021-05-02",
                    "co": "IN",
                    "is": "Ministry of Health",
                    "ci": "URN:UVCI:01:IN:01F4Q8ZJ6M3T9V2K7XBC5RWD8N#:",
                }],
            })
        );
        assert_eq!(cert.country, "IN");
        assert_eq!(cert.issued_at, 1_619_950_878);
        assert_eq!(cert.expires_at, 1_651_486_878);
    }

    #[test]
    fn configuration_applies() {
        let cfg = config(json!({
            "country": "in",
            "issuer": "Ministry of Health and Family Welfare",
            "validity_days": 10,
            "disease": {"C19": "840539006"},
            "vaccines": {"COVISHIELD": {"ma": "ORG-X"}, "ZyCoV-D": {"mp": "ZyCoV-D", "ma": "Zydus"}},
        }));
        let json = with(|v| {
            v.as_object_mut().unwrap().remove("validUntil");
            v["credentialSubject"]["vaccination"]["program"] = json!("c19");
        });
        let cert = build(&json, ID, &cfg, || 0).unwrap();
        let v = &cert.dcc["v"][0];
        assert_eq!(v["is"], "Ministry of Health and Family Welfare");
        assert_eq!(v["co"], "IN");
        assert_eq!(
            (v["vp"].as_str(), v["mp"].as_str(), v["ma"].as_str()),
            (Some("J07BX03"), Some("Covishield"), Some("ORG-X"))
        );
        assert_eq!(cert.expires_at - cert.issued_at, 10 * 86_400);
        assert_eq!(
            vaccine_codes(&cfg, "zycov-d", "Cadila"),
            ("J07BX03".into(), "ZyCoV-D".into(), "Zydus".into())
        );
        assert!(serde_json::from_value::<Config>(json!({"validity-days": 1})).is_err());
    }

    #[test]
    fn defaults_without_facility_country_or_valid_from() {
        let json = with(|v| {
            let o = v.as_object_mut().unwrap();
            o.remove("validFrom");
            o.remove("validUntil");
            v["credentialSubject"]["vaccination"]["facility"]["address"]["country"] =
                json!("India");
            v["credentialSubject"]
                .as_object_mut()
                .unwrap()
                .remove("birthDate");
        });
        let cert = build(&json, ID, &Config::default(), || 1_700_000_000).unwrap();
        assert_eq!(cert.country, "XX");
        assert_eq!(cert.dcc["v"][0]["co"], "XX");
        assert_eq!(
            cert.dcc["v"][0]["ci"],
            "URN:UVCI:01:XX:01F4Q8ZJ6M3T9V2K7XBC5RWD8N#8"
        );
        assert_eq!(cert.dcc["dob"], "");
        assert_eq!(cert.issued_at, 1_700_000_000);
        assert_eq!(cert.expires_at, 1_700_000_000 + 365 * 86_400);
    }

    #[test]
    fn vaccines() {
        let cfg = Config::default();
        for (name, expected) in [
            ("Covaxin", ("J07BX03", "Covaxin", "Bharat-Biotech")),
            ("COMIRNATY", ("1119349007", "EU/1/20/1528", "ORG-100030215")),
            ("Spikevax", ("1119349007", "EU/1/20/1507", "ORG-100031184")),
            ("vaxzevria", ("J07BX03", "EU/1/21/1529", "ORG-100001699")),
            ("Jcovden", ("J07BX03", "EU/1/20/1525", "ORG-100001417")),
            ("Corbevax", ("J07BX03", "Corbevax", "Biological E")),
        ] {
            let (vp, mp, ma) = vaccine_codes(&cfg, name, "Biological E");
            assert_eq!((vp.as_str(), mp.as_str(), ma.as_str()), expected, "{name}");
        }
    }

    #[test]
    fn doses() {
        for ((dose, total), expected) in [
            ((1, Some(2)), Some((1, 2))),
            ((3, Some(2)), Some((3, 3))),
            ((1, None), Some((1, 1))),
            ((2, Some(20)), Some((2, 9))),
            ((0, Some(2)), None),
            ((10, Some(2)), None),
        ] {
            let json = with(|v| {
                v["credentialSubject"]["vaccination"]["dose"] = json!(dose);
                v["credentialSubject"]["vaccination"]["totalDoses"] = json!(total);
            });
            let got = build(&json, ID, &Config::default(), || 0).ok().map(|c| {
                (
                    c.dcc["v"][0]["dn"].as_u64().unwrap(),
                    c.dcc["v"][0]["sd"].as_u64().unwrap(),
                )
            });
            assert_eq!(got, expected, "{dose}/{total:?}");
        }
    }

    #[test]
    fn refusals() {
        let cfg = Config::default();
        assert!(matches!(
            build("{not json", ID, &cfg, || 0),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            build("{}", ID, &cfg, || 0),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            build("[1]", ID, &cfg, || 0),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            build(FIXTURE, "conformance-1", &cfg, || 0),
            Err(Error::InvalidInput(_))
        ));
        let measles = with(|v| v["credentialSubject"]["vaccination"]["program"] = json!("measles"));
        assert!(matches!(
            build(&measles, ID, &cfg, || 0),
            Err(Error::Rejected(_))
        ));
        let nameless = with(|v| v["credentialSubject"]["name"] = json!("  "));
        assert!(matches!(
            build(&nameless, ID, &cfg, || 0),
            Err(Error::InvalidInput(_))
        ));
        let bad_date = with(|v| v["credentialSubject"]["vaccination"]["date"] = json!("yesterday"));
        assert!(matches!(
            build(&bad_date, ID, &cfg, || 0),
            Err(Error::InvalidInput(_))
        ));
        let bad_from = with(|v| v["validFrom"] = json!("2021-13-01T00:00:00Z"));
        assert!(matches!(
            build(&bad_from, ID, &cfg, || 0),
            Err(Error::InvalidInput(_))
        ));
        let bad_country = config(json!({"country": "IND"}));
        assert!(matches!(
            build(FIXTURE, ID, &bad_country, || 0),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn days_and_birth_dates() {
        assert_eq!(day("2021-05-02T10:21:18Z").as_deref(), Some("2021-05-02"));
        // The day as written, in the date-time's own offset.
        assert_eq!(
            day("2021-05-02T01:00:00+05:30").as_deref(),
            Some("2021-05-02")
        );
        assert_eq!(day("2021-05-02").as_deref(), Some("2021-05-02"));
        assert_eq!(day("2021-02-30"), None);
        assert_eq!(day(""), None);
        assert_eq!(date_of_birth(Some("1994-11-30")), "1994-11-30");
        assert_eq!(date_of_birth(Some("1994-11")), "1994-11");
        assert_eq!(date_of_birth(Some("1994")), "1994");
        assert_eq!(date_of_birth(Some("1994-13")), "");
        assert_eq!(date_of_birth(Some("1850-01-01")), "");
        assert_eq!(date_of_birth(Some("30/11/1994")), "");
        assert_eq!(date_of_birth(None), "");
    }
}
