//! The plugin's configuration section (`[plugins.config.format-shc]`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The CVX code system (HL7 FHIR R4 terminology, `http://hl7.org/fhir/sid/cvx`).
pub const CVX_SYSTEM: &str = "http://hl7.org/fhir/sid/cvx";
/// CVX 213, "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED FORMULATION".
pub const CVX_UNSPECIFIED: &str = "213";

/// Built-in CVX codes (CDC CVX; the SMART Health Cards value set
/// `immunization-covid-cvx`), by lower-case vaccine name.
const DEFAULT_CVX: &[(&str, &str)] = &[
    ("comirnaty", "208"),
    ("pfizer", "208"),
    ("pfizer-biontech", "208"),
    ("pfizer biontech", "208"),
    ("bnt162b2", "208"),
    ("spikevax", "207"),
    ("moderna", "207"),
    ("mrna-1273", "207"),
    ("janssen", "212"),
    ("jcovden", "212"),
    ("johnson & johnson", "212"),
    ("ad26.cov2.s", "212"),
    ("covishield", "210"),
    ("vaxzevria", "210"),
    ("astrazeneca", "210"),
    ("chadox1", "210"),
    ("azd1222", "210"),
    ("covaxin", "502"),
    ("bbv152", "502"),
    ("novavax", "211"),
    ("nuvaxovid", "211"),
    ("sputnik light", "504"),
    ("sputnik v", "505"),
    ("sinopharm", "510"),
    ("bbibp-corv", "510"),
    ("coronavac", "511"),
    ("sinovac", "511"),
    ("zycov-d", "514"),
    ("corbevax", "517"),
];

/// How the host's single `name` string maps onto FHIR `HumanName`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NameOrder {
    /// The last word is `family`, the words before it `given` (default).
    #[default]
    GivenFamily,
    /// The first word is `family`, the words after it `given`.
    FamilyGiven,
    /// The whole name in `HumanName.text`, not split.
    Text,
}

/// A code given as a string or a number in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Code {
    Text(String),
    Number(u64),
}

impl Code {
    fn to_text(&self) -> String {
        match self {
            Code::Text(s) => s.trim().to_owned(),
            Code::Number(n) => n.to_string(),
        }
    }
}

/// `[plugins.config.format-shc]`; every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The JWS `iss`: the base URL under which the host serves
    /// `/.well-known/jwks.json` (no trailing `/`).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Vaccine name (case-insensitive) → CVX code; overrides the built-ins.
    #[serde(default)]
    pub cvx: BTreeMap<String, Code>,
    /// The CVX code for a vaccine found in neither table.
    #[serde(default = "default_cvx", alias = "default-cvx")]
    pub default_cvx: Code,
    /// How to split the recipient's name.
    #[serde(default, alias = "name-order")]
    pub name_order: NameOrder,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: default_issuer(),
            cvx: BTreeMap::new(),
            default_cvx: default_cvx(),
            name_order: NameOrder::default(),
        }
    }
}

fn default_issuer() -> String {
    "http://localhost:8080".to_owned()
}

fn default_cvx() -> Code {
    Code::Text(CVX_UNSPECIFIED.to_owned())
}

impl Config {
    /// The `iss` value: "SHALL NOT include a trailing /".
    pub fn iss(&self) -> &str {
        self.issuer.trim().trim_end_matches('/')
    }

    /// The CVX code for a vaccine name: configured table, then built-ins,
    /// then `default_cvx`. Names compare trimmed and case-insensitively.
    pub fn cvx_for(&self, vaccine: &str) -> String {
        let wanted = vaccine.trim();
        if let Some(code) = self
            .cvx
            .iter()
            .find(|(name, _)| name.trim().eq_ignore_ascii_case(wanted))
            .map(|(_, code)| code.to_text())
        {
            return code;
        }
        DEFAULT_CVX
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map_or_else(
                || self.default_cvx.to_text(),
                |(_, code)| (*code).to_owned(),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Config {
        divoc_sdk::config::parse(json).unwrap()
    }

    #[test]
    fn defaults_with_no_config() {
        let c = parse("{}");
        assert_eq!(c.iss(), "http://localhost:8080");
        assert_eq!(c.cvx_for("Covishield"), "210");
        assert_eq!(c.cvx_for("  COVAXIN "), "502");
        assert_eq!(c.cvx_for("comirnaty"), "208");
        assert_eq!(c.cvx_for("Spikevax"), "207");
        assert_eq!(c.cvx_for("Janssen"), "212");
        assert_eq!(c.cvx_for("Novavax"), "211");
        assert_eq!(c.cvx_for("Something new"), "213");
        assert_eq!(c.name_order, NameOrder::GivenFamily);
    }

    #[test]
    fn configured_values_win() {
        let c = parse(
            r#"{"issuer":"https://divoc.example.in/","cvx":{"covishield":"500","Local":217},
                "default_cvx":500,"name_order":"family-given"}"#,
        );
        assert_eq!(c.iss(), "https://divoc.example.in");
        assert_eq!(c.cvx_for("Covishield"), "500");
        assert_eq!(c.cvx_for("LOCAL"), "217");
        assert_eq!(c.cvx_for("Covaxin"), "502");
        assert_eq!(c.cvx_for("Unknown"), "500");
        assert_eq!(c.name_order, NameOrder::FamilyGiven);
        let kebab = parse(r#"{"default-cvx":"213","name-order":"text"}"#);
        assert_eq!(kebab.name_order, NameOrder::Text);
    }

    #[test]
    fn typos_are_configuration_errors() {
        assert!(divoc_sdk::config::parse::<Config>(r#"{"isuer":"x"}"#).is_err());
        assert!(divoc_sdk::config::parse::<Config>(r#"{"name_order":"reverse"}"#).is_err());
    }
}
