//! Identity provider for national ID numbers: configurable length, alphabet
//! and check-digit scheme (Verhoeff, Luhn, ISO/IEC 7064 MOD 11-2 or none),
//! with an optional lookup in the operator's national ID registry.
//!
//! The configuration is documented in `README.md`. Personal data never
//! reaches the log: lines name HTTP statuses only, and the number appears in
//! user-facing reasons only masked (`********2346`).

pub mod checksum;
pub mod number;
pub mod registry;

use std::collections::BTreeMap;

use divoc_sdk::identity::{Claim, Guest, Verification, VerifiedIdentity};
use divoc_sdk::{config, Error};
use serde::Deserialize;

use checksum::Checksum;
use number::{Alphabet, Rules};
use registry::{Facts, Outcome, Registry, RegistryMethod, Secret};

/// The longest number the plugin accepts to be configured; anything longer
/// is not an ID number and would only make huge inputs cost more.
const MAX_LENGTH: usize = 64;

/// `[plugins.config.id-national]`, as the operator writes it. Keys are
/// accepted in snake case (as documented) and in kebab case, which is how
/// `DIVOC_PLUGINS__CONFIG__ID_NATIONAL__*` environment overrides deliver
/// them (the way to supply `authorization`).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(alias = "identity-types")]
    pub identity_types: Vec<String>,
    /// Exact length; or `min_length`/`max_length` (not both).
    pub length: Option<usize>,
    #[serde(alias = "min-length")]
    pub min_length: Option<usize>,
    #[serde(alias = "max-length")]
    pub max_length: Option<usize>,
    /// `digits`, `alphanumeric`, or the allowed characters themselves.
    pub alphabet: String,
    pub checksum: Checksum,
    /// Removed before checking, besides whitespace.
    pub separators: String,
    /// Characters left visible at the end of a masked number.
    #[serde(alias = "mask-keep")]
    pub mask_keep: usize,
    #[serde(alias = "registry-url")]
    pub registry_url: Option<String>,
    #[serde(alias = "registry-method")]
    pub registry_method: RegistryMethod,
    #[serde(alias = "registry-timeout-ms")]
    pub registry_timeout_ms: u32,
    #[serde(alias = "registry-headers")]
    pub registry_headers: BTreeMap<String, Secret>,
    /// The `Authorization` header value for the registry. One word, so that
    /// `DIVOC_PLUGINS__CONFIG__ID_NATIONAL__AUTHORIZATION` can supply it.
    pub authorization: Option<Secret>,
    #[serde(alias = "registry-send-claim")]
    pub registry_send_claim: bool,
    #[serde(alias = "registry-attributes")]
    pub registry_attributes: Vec<String>,
    #[serde(alias = "match-name")]
    pub match_name: bool,
    #[serde(alias = "match-dob")]
    pub match_dob: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            identity_types: vec!["national-id".into()],
            length: None,
            min_length: None,
            max_length: None,
            alphabet: "digits".into(),
            checksum: Checksum::None,
            separators: "-".into(),
            mask_keep: 4,
            registry_url: None,
            registry_method: RegistryMethod::Post,
            registry_timeout_ms: 3000,
            registry_headers: BTreeMap::new(),
            authorization: None,
            registry_send_claim: false,
            registry_attributes: vec!["name".into(), "dob".into()],
            match_name: true,
            match_dob: true,
        }
    }
}

/// Defaults when neither `length` nor `min_length`/`max_length` is set:
/// wide enough for most national numbering schemes.
const DEFAULT_MIN_LENGTH: usize = 6;
const DEFAULT_MAX_LENGTH: usize = 20;

/// The configuration, checked once per call.
#[derive(Debug)]
pub struct Settings {
    pub identity_types: Vec<String>,
    pub rules: Rules,
    pub mask_keep: usize,
    pub registry: Option<Registry>,
}

fn bad_config(message: impl std::fmt::Display) -> Error {
    Error::internal(format!("invalid plugin configuration: {message}"))
}

impl Config {
    /// Checks the operator's choices; a mistake is an `internal` error that
    /// names the setting (the operator's configuration is wrong, not the
    /// caller's input).
    pub fn validate(self) -> Result<Settings, Error> {
        if self.identity_types.is_empty() || self.identity_types.iter().any(|t| t.trim().is_empty())
        {
            return Err(bad_config("`identity_types` must list non-blank types"));
        }
        let (min, max) = match (self.length, self.min_length, self.max_length) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(bad_config(
                    "set either `length` or `min_length`/`max_length`, not both",
                ))
            }
            (Some(n), None, None) => (n, n),
            (None, min, max) => (
                min.unwrap_or(DEFAULT_MIN_LENGTH.min(max.unwrap_or(DEFAULT_MIN_LENGTH))),
                max.unwrap_or(DEFAULT_MAX_LENGTH.max(min.unwrap_or(DEFAULT_MAX_LENGTH))),
            ),
        };
        if min == 0 || min > max || max > MAX_LENGTH {
            return Err(bad_config(format!(
                "the length must be between 1 and {MAX_LENGTH} (minimum ≤ maximum); got {min} to {max}"
            )));
        }
        if self.alphabet.is_empty() {
            return Err(bad_config("`alphabet` is empty"));
        }
        let alphabet = Alphabet::from_config(&self.alphabet);
        if self.checksum.needs_digits() && !alphabet.digits_only() {
            return Err(bad_config(
                "the chosen `checksum` works on decimal digits; set `alphabet = \"digits\"`",
            ));
        }
        if self.checksum != Checksum::None && min < 2 {
            return Err(bad_config(
                "a number with a check digit has at least 2 characters",
            ));
        }
        let registry = match self.registry_url {
            None => None,
            Some(url) => {
                let lower = url.to_ascii_lowercase();
                if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                    return Err(bad_config("`registry_url` must be an http or https URL"));
                }
                if self.registry_timeout_ms == 0 {
                    return Err(bad_config("`registry_timeout_ms` must be above 0"));
                }
                Some(Registry {
                    url,
                    method: self.registry_method,
                    timeout_ms: self.registry_timeout_ms,
                    headers: self.registry_headers,
                    authorization: self.authorization,
                    send_claim: self.registry_send_claim,
                    match_name: self.match_name,
                    match_dob: self.match_dob,
                    attributes: self.registry_attributes,
                })
            }
        };
        Ok(Settings {
            identity_types: self.identity_types,
            rules: Rules {
                min_length: min,
                max_length: max,
                alphabet,
                checksum: self.checksum,
                separators: self.separators.chars().collect(),
            },
            mask_keep: self.mask_keep,
            registry,
        })
    }
}

/// Loads and validates the configuration section.
fn settings() -> Result<Settings, Error> {
    config::load::<Config>()?.validate()
}

/// Checks a claim once the configuration is known; the registry lookup is
/// passed in so the decision logic is testable without a host.
pub fn check(
    settings: &Settings,
    claim: &Claim,
    lookup: impl FnOnce(&Registry, &str, Facts<'_>) -> Result<Outcome, Error>,
) -> Result<Verification, Error> {
    if !settings.identity_types.contains(&claim.id_type) {
        return Err(Error::invalid_input(format!(
            "unsupported identity type {}",
            divoc_sdk::quote(&claim.id_type)
        )));
    }
    let normalized = match number::normalize(&claim.value, &settings.rules) {
        Ok(n) => n,
        Err(invalid) => return Ok(Verification::Rejected(invalid.to_string())),
    };
    let verified = |attributes| {
        Verification::Verified(VerifiedIdentity {
            id_type: claim.id_type.clone(),
            normalized_id: normalized.clone(),
            attributes,
        })
    };
    let Some(registry) = &settings.registry else {
        return Ok(verified(Vec::new()));
    };
    let facts = Facts {
        name: claim.name.as_deref().filter(|s| !s.trim().is_empty()),
        dob: claim.dob.as_deref().filter(|s| !s.trim().is_empty()),
    };
    let masked = number::mask(&normalized, settings.mask_keep);
    Ok(match lookup(registry, &normalized, facts)? {
        Outcome::Found(attributes) => verified(attributes),
        Outcome::NotFound => Verification::Rejected(format!(
            "the number {masked} is not in the national ID registry"
        )),
        Outcome::NameMismatch => Verification::Rejected(format!(
            "the name does not match the registry's record for {masked}"
        )),
        Outcome::DobMismatch => Verification::Rejected(format!(
            "the date of birth does not match the registry's record for {masked}"
        )),
        Outcome::DetailsMismatch => Verification::Rejected(format!(
            "the details given do not match the registry's record for {masked}"
        )),
    })
}

struct Plugin;

impl Guest for Plugin {
    fn identity_types() -> Vec<String> {
        // A broken configuration is reported by `verify`; listing the
        // default type meanwhile keeps the claims coming to this plugin.
        settings()
            .map(|s| s.identity_types)
            .unwrap_or_else(|_| Config::default().identity_types)
    }

    fn verify(claim: Claim) -> Result<Verification, Error> {
        let settings = settings()?;
        let id_type = claim.id_type.clone();
        check(&settings, &claim, |registry, normalized, facts| {
            registry.lookup(&id_type, normalized, facts)
        })
    }
}

divoc_sdk::export_identity_provider!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Result<Settings, Error> {
        config::parse::<Config>(json)?.validate()
    }

    fn claim(value: &str) -> Claim {
        Claim {
            id_type: "national-id".into(),
            value: value.into(),
            name: Some("Asha Rao".into()),
            dob: Some("1980-01-15".into()),
            challenge_id: None,
            challenge_response: None,
        }
    }

    fn no_lookup(_: &Registry, _: &str, _: Facts<'_>) -> Result<Outcome, Error> {
        panic!("no registry is configured")
    }

    #[test]
    fn defaults() {
        let s = settings("{}").unwrap();
        assert_eq!(s.identity_types, vec!["national-id"]);
        assert_eq!((s.rules.min_length, s.rules.max_length), (6, 20));
        assert_eq!(s.rules.alphabet, Alphabet::Digits);
        assert_eq!(s.rules.checksum, Checksum::None);
        assert_eq!(s.mask_keep, 4);
        assert!(s.registry.is_none());
        // The conformance cases' number is verified by the defaults.
        assert!(matches!(
            check(&s, &claim("234123412346"), no_lookup).unwrap(),
            Verification::Verified(_)
        ));
    }

    #[test]
    fn configured_scheme() {
        let s =
            settings(r#"{"length": 12, "checksum": "verhoeff", "identity_types": ["aadhaar"]}"#)
                .unwrap();
        let mut c = claim("2341 2341 2346");
        c.id_type = "aadhaar".into();
        match check(&s, &c, no_lookup).unwrap() {
            Verification::Verified(v) => {
                assert_eq!(v.normalized_id, "234123412346");
                assert_eq!(v.id_type, "aadhaar");
                assert!(v.attributes.is_empty());
            }
            other => panic!("{other:?}"),
        }
        c.value = "234123412347".into();
        match check(&s, &c, no_lookup).unwrap() {
            Verification::Rejected(r) => assert!(r.contains("check digit"), "{r}"),
            other => panic!("{other:?}"),
        }
        // A type the operator did not configure is the caller's mistake.
        assert!(matches!(
            check(&s, &claim("234123412346"), no_lookup),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn kebab_case_keys_as_environment_overrides_give_them() {
        let s = settings(
            r#"{"identity-types": ["resident-id"], "min-length": 8, "max-length": 10,
                "registry-url": "https://r.example.org/q", "authorization": "Bearer x",
                "registry-headers": {"x-api-key": "k"}, "match-name": false}"#,
        )
        .unwrap();
        assert_eq!(s.identity_types, vec!["resident-id"]);
        assert_eq!((s.rules.min_length, s.rules.max_length), (8, 10));
        let r = s.registry.unwrap();
        assert_eq!(r.authorization, Some(Secret("Bearer x".into())));
        assert_eq!(r.headers["x-api-key"], Secret("k".into()));
        assert!(!r.match_name);
    }

    #[test]
    fn rejects_bad_configuration_by_name() {
        for (json, needle) in [
            (r#"{"length": 12, "max_length": 14}"#, "not both"),
            (r#"{"min_length": 10, "max_length": 8}"#, "length"),
            (r#"{"length": 0}"#, "length"),
            (r#"{"length": 500}"#, "length"),
            (
                r#"{"alphabet": "alphanumeric", "checksum": "luhn"}"#,
                "digits",
            ),
            (r#"{"identity_types": []}"#, "identity_types"),
            (r#"{"registry_url": "ftp://x"}"#, "registry_url"),
            (r#"{"checksum": "crc"}"#, "iso7064-mod11-2"),
            (r#"{"lenght": 12}"#, "lenght"),
        ] {
            match settings(json) {
                Err(Error::Internal(m)) => assert!(m.contains(needle), "{json}: {m}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        // Only a minimum, or only a maximum, keeps the other default if it fits.
        let s = settings(r#"{"max_length": 4}"#).unwrap();
        assert_eq!((s.rules.min_length, s.rules.max_length), (4, 4));
        let s = settings(r#"{"min_length": 30}"#).unwrap();
        assert_eq!((s.rules.min_length, s.rules.max_length), (30, 30));
    }

    fn with_registry() -> Settings {
        settings(
            r#"{"length": 12, "checksum": "verhoeff",
                "registry_url": "https://registry.example.org/lookup"}"#,
        )
        .unwrap()
    }

    #[test]
    fn registry_outcomes_become_verifications() {
        let s = with_registry();
        let attrs = vec![("name".to_string(), "Asha Rao".to_string())];
        let found = check(&s, &claim("2341-2341-2346"), |_, id, facts| {
            assert_eq!(id, "234123412346");
            assert_eq!(facts.name, Some("Asha Rao"));
            Ok(Outcome::Found(attrs.clone()))
        })
        .unwrap();
        match found {
            Verification::Verified(v) => assert_eq!(v.attributes, attrs),
            other => panic!("{other:?}"),
        }
        for (outcome, needle) in [
            (Outcome::NotFound, "not in the national ID registry"),
            (Outcome::NameMismatch, "name does not match"),
            (Outcome::DobMismatch, "date of birth does not match"),
            (Outcome::DetailsMismatch, "details given do not match"),
        ] {
            match check(&s, &claim("234123412346"), |_, _, _| Ok(outcome.clone())).unwrap() {
                Verification::Rejected(r) => {
                    assert!(r.contains(needle), "{r}");
                    // Masked: the last four digits only.
                    assert!(r.contains("********2346"), "{r}");
                    assert!(!r.contains("23412341"), "{r}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            check(&s, &claim("234123412346"), |_, _, _| Err(
                Error::unavailable("down")
            )),
            Err(Error::Unavailable(_))
        ));
    }

    #[test]
    fn an_invalid_number_never_reaches_the_registry() {
        let s = with_registry();
        for value in ["", "   ", "234123412347", "12", "abc"] {
            assert!(matches!(
                check(&s, &claim(value), no_lookup).unwrap(),
                Verification::Rejected(_)
            ));
        }
    }
}
