//! The plugin's configuration section (`[plugins.config.events-dhis2]`).
//!
//! Parsing is lenient (every key optional) so that an unconfigured plugin
//! still answers the contract: it exports nothing until `data_elements`
//! (aggregate) or `tracker` says what to send. What is needed to send is
//! checked when there is something to send ([`Config::target`],
//! [`Config::tracker`]); a problem there is [`Error::Internal`] (the
//! operator's configuration is wrong, not the host's input).

use std::collections::BTreeMap;

use divoc_sdk::Error;
use serde::Deserialize;

use crate::dhis2::{base64, is_uid};

/// Keys this plugin reads; others are reported in the log (a typo such as
/// `data_element` for `data_elements` would otherwise export nothing).
pub const KNOWN_KEYS: &[&str] = &[
    "url",
    "username",
    "password",
    "token",
    "mode",
    "source",
    "data_set",
    "period_type",
    "utc_offset_minutes",
    "data_elements",
    "org_units",
    "default_org_unit",
    "tracker",
    "timeout_ms",
    "uid_namespace",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// DHIS2 base URL, e.g. `https://dhis2.example.org` (no `/api`).
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A DHIS2 personal access token (DHIS2 2.37+).
    pub token: Option<String>,
    pub mode: Mode,
    /// The event kind exported.
    pub source: Source,
    /// Data set UID sent with aggregate values (optional per DHIS2).
    pub data_set: Option<String>,
    pub period_type: PeriodType,
    /// Offset of the local time zone from UTC, applied to event times
    /// (`certificate.issued` carries an instant, and DHIS2 periods are local
    /// calendar days and months).
    pub utc_offset_minutes: i32,
    /// Aggregate: which data element (and category option combo) counts a
    /// vaccination; the first matching row wins.
    pub data_elements: Vec<Mapping>,
    /// Facility code → organisation unit UID.
    pub org_units: BTreeMap<String, String>,
    /// Organisation unit for facilities not in `org_units` (and events
    /// without a facility).
    pub default_org_unit: Option<String>,
    pub tracker: Option<TrackerConfig>,
    /// Time-out of one DHIS2 request (capped by the plugin's deadline).
    pub timeout_ms: u32,
    /// Mixed into tracker event UIDs; change it if the host's event log is
    /// ever started afresh, so that new sequence numbers do not overwrite
    /// events exported before.
    pub uid_namespace: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: None,
            username: None,
            password: None,
            token: None,
            mode: Mode::Aggregate,
            source: Source::CertificateIssued,
            data_set: None,
            period_type: PeriodType::Monthly,
            utc_offset_minutes: 0,
            data_elements: Vec::new(),
            org_units: BTreeMap::new(),
            default_org_unit: None,
            tracker: None,
            timeout_ms: 10_000,
            uid_namespace: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Running totals per period, org unit and data element.
    #[default]
    Aggregate,
    /// One anonymous event per vaccination in an event program.
    Tracker,
}

/// Which host event counts as a vaccination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Source {
    /// Every certificate issued (through the rollout or the certificate
    /// API): programme, dose and facility; dated when it was issued.
    #[default]
    #[serde(rename = "certificate.issued")]
    CertificateIssued,
    /// Vaccinations recorded through the rollout module: also the vaccine
    /// and the vaccination date.
    #[serde(rename = "rollout.vaccinated")]
    RolloutVaccinated,
}

impl Source {
    pub fn kind(self) -> &'static str {
        match self {
            Source::CertificateIssued => "certificate.issued",
            Source::RolloutVaccinated => "rollout.vaccinated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodType {
    /// `YYYYMMDD`.
    Daily,
    /// `YYYYMM`.
    #[default]
    Monthly,
}

/// One row of the aggregate mapping table. Unset filters match anything;
/// `vaccine` only matches events that carry one (`rollout.vaccinated`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    #[serde(default)]
    pub program: Option<String>,
    #[serde(default)]
    pub vaccine: Option<String>,
    #[serde(default)]
    pub dose: Option<u32>,
    pub data_element: String,
    #[serde(default)]
    pub category_option_combo: Option<String>,
    /// Overrides the top-level `data_set` for this row.
    #[serde(default)]
    pub data_set: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    /// An event program (without registration): no tracked entity, so no
    /// person, is ever created.
    pub program: String,
    pub program_stage: String,
    /// Data elements receiving the event's facts; each optional.
    #[serde(default)]
    pub data_elements: TrackerDataElements,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerDataElements {
    /// Receives the dose number.
    pub dose: Option<String>,
    /// Receives the vaccine code (`rollout.vaccinated` only).
    pub vaccine: Option<String>,
    /// Receives the DIVOC programme code.
    pub program: Option<String>,
}

/// Where and how to reach DHIS2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Base URL without a trailing `/`.
    pub base: String,
    /// `Authorization` header value.
    pub authorization: String,
    pub timeout_ms: u32,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::internal(format!("invalid plugin configuration: {}", message.into()))
}

fn check_uid(key: &str, value: &str) -> Result<(), Error> {
    if is_uid(value) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{key}: {} is not a DHIS2 UID (11 letters and digits, starting with a letter)",
            divoc_sdk::quote(value)
        )))
    }
}

impl Config {
    /// Parses the section (JSON, as the host hands it over) and lists the
    /// keys it does not know.
    pub fn parse(json: &str) -> Result<(Config, Vec<String>), Error> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        let unknown = value
            .as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let config = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        Ok((config, unknown))
    }

    /// The DHIS2 base URL and credentials, checked.
    pub fn target(&self) -> Result<Target, Error> {
        let url = self
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid("url: the DHIS2 base URL is not set"))?;
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://"))
            || url.contains(['?', '#'])
        {
            return Err(invalid(format!(
                "url: {} must be an http(s) base URL without query or fragment",
                divoc_sdk::quote(url)
            )));
        }
        let base = url.trim_end_matches('/').to_string();
        let authorization = match (&self.token, &self.username, &self.password) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(invalid("set either token or username/password, not both"))
            }
            // DHIS2 2.37+ personal access tokens use their own scheme
            // (Web API docs, "Authentication" → "Personal Access Tokens").
            (Some(token), None, None) if !token.trim().is_empty() => {
                format!("ApiToken {}", token.trim())
            }
            // Web API docs, "Authentication" → "Basic Authentication".
            (None, Some(user), Some(password)) if !user.is_empty() => {
                format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
            }
            _ => {
                return Err(invalid(
                    "set token (a DHIS2 personal access token) or username and password",
                ))
            }
        };
        if self.timeout_ms == 0 {
            return Err(invalid("timeout_ms: must be at least 1"));
        }
        Ok(Target {
            base,
            authorization,
            timeout_ms: self.timeout_ms,
        })
    }

    /// Checks every UID the aggregate export sends.
    pub fn check_aggregate(&self) -> Result<(), Error> {
        if let Some(ds) = &self.data_set {
            check_uid("data_set", ds)?;
        }
        for (i, row) in self.data_elements.iter().enumerate() {
            check_uid(
                &format!("data_elements[{i}].data_element"),
                &row.data_element,
            )?;
            if let Some(coc) = &row.category_option_combo {
                check_uid(&format!("data_elements[{i}].category_option_combo"), coc)?;
            }
            if let Some(ds) = &row.data_set {
                check_uid(&format!("data_elements[{i}].data_set"), ds)?;
            }
        }
        self.check_org_units()
    }

    /// The tracker settings, checked.
    pub fn tracker(&self) -> Result<&TrackerConfig, Error> {
        let t = self
            .tracker
            .as_ref()
            .ok_or_else(|| invalid("mode = \"tracker\" needs a [tracker] table"))?;
        check_uid("tracker.program", &t.program)?;
        check_uid("tracker.program_stage", &t.program_stage)?;
        let d = &t.data_elements;
        for (key, uid) in [
            ("dose", &d.dose),
            ("vaccine", &d.vaccine),
            ("program", &d.program),
        ] {
            if let Some(uid) = uid {
                check_uid(&format!("tracker.data_elements.{key}"), uid)?;
            }
        }
        self.check_org_units()?;
        Ok(t)
    }

    fn check_org_units(&self) -> Result<(), Error> {
        if let Some(ou) = &self.default_org_unit {
            check_uid("default_org_unit", ou)?;
        }
        for (facility, ou) in &self.org_units {
            check_uid(&format!("org_units.{facility}"), ou)?;
        }
        Ok(())
    }

    /// The organisation unit of a facility: its mapping, else the default.
    /// `Err` names the facility that has neither, so the operator can add it.
    pub fn org_unit(&self, facility: Option<&str>) -> Result<&str, Error> {
        facility
            .and_then(|f| self.org_units.get(f))
            .or(self.default_org_unit.as_ref())
            .map(String::as_str)
            .ok_or_else(|| match facility {
                Some(f) => Error::rejected(format!(
                    "facility {} has no org_units entry and no default_org_unit is set",
                    divoc_sdk::quote(f)
                )),
                None => Error::rejected(
                    "an event has no facility and no default_org_unit is set".to_string(),
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_parses_to_the_defaults() {
        let (c, unknown) = Config::parse("{}").unwrap();
        assert_eq!(c.mode, Mode::Aggregate);
        assert_eq!(c.source, Source::CertificateIssued);
        assert_eq!(c.period_type, PeriodType::Monthly);
        assert!(c.data_elements.is_empty());
        assert!(unknown.is_empty());
        // Unknown keys are listed, not fatal.
        let (_, unknown) = Config::parse(r#"{"interests": ["certificate."]}"#).unwrap();
        assert_eq!(unknown, ["interests"]);
        assert!(Config::parse(r#"{"mode": "bulk"}"#).is_err());
        assert!(Config::parse(r#"{"source": "certificate.revoked"}"#).is_err());
        assert!(Config::parse(r#"{"data_elements": [{"dataElement": "x"}]}"#).is_err());
    }

    #[test]
    fn the_target_needs_a_url_and_one_kind_of_credentials() {
        let base = |extra: &str| {
            Config::parse(&format!(
                r#"{{"url": "https://dhis2.example.org/"{extra}}}"#
            ))
            .unwrap()
            .0
        };
        let t = base(r#", "token": "d2pat_abc""#).target().unwrap();
        assert_eq!(t.base, "https://dhis2.example.org");
        assert_eq!(t.authorization, "ApiToken d2pat_abc");
        let t = base(r#", "username": "admin", "password": "district""#)
            .target()
            .unwrap();
        // RFC 7617 example encoding of "admin:district".
        assert_eq!(t.authorization, "Basic YWRtaW46ZGlzdHJpY3Q=");
        for bad in [
            base(""),
            base(r#", "token": "t", "username": "u", "password": "p""#),
            base(r#", "username": "u""#),
            base(r#", "token": "t", "timeout_ms": 0"#),
            Config::parse(r#"{"url": "ftp://x", "token": "t"}"#)
                .unwrap()
                .0,
            Config::parse(r#"{"url": "https://x/?a=1", "token": "t"}"#)
                .unwrap()
                .0,
            Config::default(),
        ] {
            assert!(matches!(bad.target(), Err(Error::Internal(_))), "{bad:?}");
        }
    }

    #[test]
    fn uids_and_org_units_are_checked() {
        let (c, _) =
            Config::parse(r#"{"data_elements": [{"data_element": "not-a-uid"}]}"#).unwrap();
        assert!(matches!(c.check_aggregate(), Err(Error::Internal(_))));
        let (c, _) = Config::parse(
            r#"{"org_units": {"F1": "DiszpKrYNg8"}, "default_org_unit": "ImspTQPwCqd"}"#,
        )
        .unwrap();
        c.check_aggregate().unwrap();
        assert_eq!(c.org_unit(Some("F1")).unwrap(), "DiszpKrYNg8");
        assert_eq!(c.org_unit(Some("F9")).unwrap(), "ImspTQPwCqd");
        assert_eq!(c.org_unit(None).unwrap(), "ImspTQPwCqd");
        let (c, _) = Config::parse(r#"{"org_units": {"F1": "DiszpKrYNg8"}}"#).unwrap();
        let e = c.org_unit(Some("F9")).unwrap_err();
        assert!(
            matches!(&e, Error::Rejected(m) if m.contains("\"F9\"")),
            "{e:?}"
        );
        let (c, _) = Config::parse(r#"{"mode": "tracker"}"#).unwrap();
        assert!(matches!(c.tracker(), Err(Error::Internal(_))));
    }
}
