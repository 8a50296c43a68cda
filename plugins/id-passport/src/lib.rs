//! Identity provider for passports, by the machine-readable zone (MRZ) of
//! the data page: ICAO Doc 9303 TD3, two lines of 44 characters.
//!
//! The format, every check digit (document number, date of birth, expiry,
//! optional data and the composite, Part 3 §4.9) and the expiry against the
//! host clock are checked. A verified passport's normalized id is
//! `<issuing state>:<document number>` (e.g. `UTO:L898902C3`), and the MRZ's
//! name, nationality, date of birth, sex and expiry become attributes.
//!
//! Configuration (`README.md`): `identity_types` (default `["passport"]`),
//! `issuing_states` (accepted issuers; default any), `allow_expired`
//! (default false), `match_dob` (default true: a claim's date of birth must
//! equal the MRZ's). Nothing is logged.

pub mod date;
pub mod mrz;

use divoc_sdk::identity::{Claim, Guest, Verification, VerifiedIdentity};
use divoc_sdk::{clock, config, Error};
use serde::Deserialize;

use date::Date;
use mrz::Passport;

/// `[plugins.config.id-passport]`. Keys are accepted in snake case (as
/// documented) and in kebab case (as `DIVOC_PLUGINS__CONFIG__ID_PASSPORT__*`
/// environment overrides deliver them).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(alias = "identity-types")]
    pub identity_types: Vec<String>,
    /// ICAO 9303 Part 3 §5 three-letter codes (e.g. `IND`, `D`); empty: any.
    #[serde(alias = "issuing-states")]
    pub issuing_states: Vec<String>,
    #[serde(alias = "allow-expired")]
    pub allow_expired: bool,
    #[serde(alias = "match-dob")]
    pub match_dob: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            identity_types: vec!["passport".into()],
            issuing_states: Vec::new(),
            allow_expired: false,
            match_dob: true,
        }
    }
}

impl Config {
    /// Checks the operator's choices (an `internal` error names the setting).
    pub fn validate(mut self) -> Result<Config, Error> {
        if self.identity_types.is_empty() || self.identity_types.iter().any(|t| t.trim().is_empty())
        {
            return Err(Error::internal(
                "invalid plugin configuration: `identity_types` must list non-blank types",
            ));
        }
        for state in &mut self.issuing_states {
            // Codes are compared as the MRZ writes them, without fillers.
            *state = state.trim().trim_end_matches('<').to_ascii_uppercase();
            if state.is_empty() || state.len() > 3 || !state.bytes().all(|c| c.is_ascii_uppercase())
            {
                return Err(Error::internal(
                    "invalid plugin configuration: `issuing_states` must be ICAO three-letter codes",
                ));
            }
        }
        Ok(self)
    }
}

fn load() -> Result<Config, Error> {
    config::load::<Config>()?.validate()
}

/// Checks a claim against the configuration and today's date (UTC).
pub fn check(cfg: &Config, claim: &Claim, today: Date) -> Result<Verification, Error> {
    if !cfg.identity_types.contains(&claim.id_type) {
        return Err(Error::invalid_input(format!(
            "unsupported identity type {}",
            divoc_sdk::quote(&claim.id_type)
        )));
    }
    let passport = match mrz::parse(&claim.value) {
        Ok(p) => p,
        // Text that is no MRZ at all is still an answer about the claim
        // (the conformance contract wants `rejected`, not an error, for a
        // well-formed claim of a declared type).
        Err(e) => return Ok(Verification::Rejected(e.to_string())),
    };
    Ok(judge(cfg, claim, &passport, today))
}

fn judge(cfg: &Config, claim: &Claim, p: &Passport, today: Date) -> Verification {
    let (yy, month, day) = p.expiry;
    let Some(expiry) = Date::new(date::expiry_year(yy, today), month, day) else {
        return Verification::Rejected(mrz::MrzError::BadField("expiry date").to_string());
    };
    let dob = p.birth.iso(today);
    if let (Some(m), Some(d)) = (p.birth.month, p.birth.day) {
        // 29 February was allowed before the century was known.
        let year = date::birth_year(p.birth.yy, Some(m), Some(d), today);
        if Date::new(year, m, d).is_none() {
            return Verification::Rejected(mrz::MrzError::BadField("date of birth").to_string());
        }
    }
    if !cfg.issuing_states.is_empty() && !cfg.issuing_states.contains(&p.issuing_state) {
        return Verification::Rejected(
            "passports of this issuing state are not accepted here".into(),
        );
    }
    // A passport is valid through (not until) its date of expiry.
    if expiry < today && !cfg.allow_expired {
        return Verification::Rejected(format!("the passport expired on {expiry}"));
    }
    if cfg.match_dob {
        if let Some(claimed) = claim
            .dob
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if claimed != dob {
                return Verification::Rejected(
                    "the date of birth does not match the passport".into(),
                );
            }
        }
    }
    let full_name = [p.given_names.as_str(), p.surname.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let mut attributes = vec![("name".to_string(), full_name)];
    if !p.surname.is_empty() {
        attributes.push(("surname".into(), p.surname.clone()));
    }
    if !p.given_names.is_empty() {
        attributes.push(("given-names".into(), p.given_names.clone()));
    }
    attributes.extend([
        ("nationality".to_string(), p.nationality.clone()),
        ("dob".to_string(), dob),
        ("sex".to_string(), p.sex.code().to_string()),
        ("expiry".to_string(), expiry.to_string()),
        ("issuing-state".to_string(), p.issuing_state.clone()),
    ]);
    Verification::Verified(VerifiedIdentity {
        id_type: claim.id_type.clone(),
        normalized_id: format!("{}:{}", p.issuing_state, p.document_number),
        attributes,
    })
}

struct Plugin;

impl Guest for Plugin {
    fn identity_types() -> Vec<String> {
        // A broken configuration is reported by `verify`.
        load()
            .map(|c| c.identity_types)
            .unwrap_or_else(|_| Config::default().identity_types)
    }

    fn verify(claim: Claim) -> Result<Verification, Error> {
        let cfg = load()?;
        check(&cfg, &claim, Date::from_unix_seconds(clock::unix_seconds()))
    }
}

divoc_sdk::export_identity_provider!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use mrz::tests::{line2_with_expiry, SPECIMEN_1, SPECIMEN_2};

    fn claim(value: &str) -> Claim {
        Claim {
            id_type: "passport".into(),
            value: value.into(),
            name: None,
            dob: None,
            challenge_id: None,
            challenge_response: None,
        }
    }

    fn today() -> Date {
        Date::new(2026, 3, 10).unwrap()
    }

    fn cfg(json: &str) -> Config {
        config::parse::<Config>(json).unwrap().validate().unwrap()
    }

    fn rejected(v: Verification) -> String {
        match v {
            Verification::Rejected(r) => r,
            other => panic!("expected rejected, got {other:?}"),
        }
    }

    #[test]
    fn the_specimen_has_expired() {
        let r = rejected(
            check(
                &cfg("{}"),
                &claim(&format!("{SPECIMEN_1}\n{SPECIMEN_2}")),
                today(),
            )
            .unwrap(),
        );
        assert_eq!(r, "the passport expired on 2012-04-15");
        // Unless the operator accepts expired passports.
        let v = check(
            &cfg(r#"{"allow_expired": true}"#),
            &claim(&format!("{SPECIMEN_1}\n{SPECIMEN_2}")),
            today(),
        )
        .unwrap();
        assert!(matches!(v, Verification::Verified(_)));
    }

    #[test]
    fn a_valid_passport_is_verified_with_attributes() {
        let mrz = format!("{SPECIMEN_1}{}", line2_with_expiry("340415"));
        match check(&cfg("{}"), &claim(&mrz), today()).unwrap() {
            Verification::Verified(v) => {
                assert_eq!(v.id_type, "passport");
                assert_eq!(v.normalized_id, "UTO:L898902C3");
                let get = |k: &str| {
                    v.attributes
                        .iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, value)| value.as_str())
                };
                assert_eq!(get("name"), Some("ANNA MARIA ERIKSSON"));
                assert_eq!(get("surname"), Some("ERIKSSON"));
                assert_eq!(get("given-names"), Some("ANNA MARIA"));
                assert_eq!(get("nationality"), Some("UTO"));
                assert_eq!(get("dob"), Some("1974-08-12"));
                assert_eq!(get("sex"), Some("F"));
                assert_eq!(get("expiry"), Some("2034-04-15"));
                assert_eq!(get("issuing-state"), Some("UTO"));
            }
            other => panic!("{other:?}"),
        }
        // Expiring today is still valid.
        let mrz = format!("{SPECIMEN_1}\n{}", line2_with_expiry("260310"));
        assert!(matches!(
            check(&cfg("{}"), &claim(&mrz), today()).unwrap(),
            Verification::Verified(_)
        ));
        let mrz = format!("{SPECIMEN_1}\n{}", line2_with_expiry("260309"));
        assert!(rejected(check(&cfg("{}"), &claim(&mrz), today()).unwrap()).contains("expired"));
    }

    #[test]
    fn date_of_birth_and_issuer_rules() {
        let mrz = format!("{SPECIMEN_1}\n{}", line2_with_expiry("340415"));
        let mut c = claim(&mrz);
        c.dob = Some("1974-08-12".into());
        assert!(matches!(
            check(&cfg("{}"), &c, today()).unwrap(),
            Verification::Verified(_)
        ));
        c.dob = Some("1974-08-13".into());
        assert!(rejected(check(&cfg("{}"), &c, today()).unwrap()).contains("date of birth"));
        assert!(matches!(
            check(&cfg(r#"{"match_dob": false}"#), &c, today()).unwrap(),
            Verification::Verified(_)
        ));
        let only_ind = cfg(r#"{"issuing_states": ["ind"]}"#);
        assert!(
            rejected(check(&only_ind, &claim(&mrz), today()).unwrap()).contains("issuing state")
        );
        assert!(matches!(
            check(
                &cfg(r#"{"issuing_states": ["UTO"]}"#),
                &claim(&mrz),
                today()
            )
            .unwrap(),
            Verification::Verified(_)
        ));
    }

    #[test]
    fn bad_input_is_rejected_not_an_error() {
        for value in ["", "   ", "234123412346", &"x".repeat(1 << 20)] {
            let r = rejected(check(&cfg("{}"), &claim(value), today()).unwrap());
            assert!(r.contains("machine-readable zone"), "{r}");
        }
        let mut bad = line2_with_expiry("340415").into_bytes();
        bad[43] = if bad[43] == b'9' { b'0' } else { bad[43] + 1 };
        let mrz = format!("{SPECIMEN_1}\n{}", String::from_utf8(bad).unwrap());
        assert!(rejected(check(&cfg("{}"), &claim(&mrz), today()).unwrap()).contains("composite"));
        let mut c = claim(&mrz);
        c.id_type = "national-id".into();
        assert!(matches!(
            check(&cfg("{}"), &c, today()),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn configuration() {
        let c = cfg("{}");
        assert_eq!(c.identity_types, vec!["passport"]);
        assert!(!c.allow_expired && c.match_dob && c.issuing_states.is_empty());
        for json in [
            r#"{"identity_types": []}"#,
            r#"{"issuing_states": ["INDIA"]}"#,
            r#"{"issuing_states": ["I1D"]}"#,
        ] {
            assert!(
                matches!(
                    config::parse::<Config>(json).and_then(Config::validate),
                    Err(Error::Internal(_))
                ),
                "{json}"
            );
        }
        assert!(matches!(
            config::parse::<Config>(r#"{"allow_expird": true}"#),
            Err(Error::Internal(_))
        ));
        // Kebab case, as environment overrides give keys.
        let c = cfg(r#"{"allow-expired": true, "issuing-states": ["IND"]}"#);
        assert!(c.allow_expired);
        assert_eq!(c.issuing_states, vec!["IND"]);
    }
}
