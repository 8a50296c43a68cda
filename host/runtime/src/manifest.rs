//! The plugin manifest, `plugin.toml`, shipped next to each component.
//!
//! The manifest says who the plugin is, which world (and contract version) it
//! was built for, which capabilities it requests and which limits it wants.
//! The format is documented in `docs/PLUGINS.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ManifestError;

pub use divoc_contract::World;

/// A parsed and validated `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[plugin]`: name, version, world and contract version.
    pub plugin: PluginSection,
    /// `[capabilities]`: what the plugin asks to use; nothing when absent.
    #[serde(default)]
    pub capabilities: RequestedCapabilities,
    /// `[limits]`: what the plugin asks to run under; host defaults when absent.
    #[serde(default)]
    pub limits: RequestedLimits,
    /// `[format]`: for `certificate-format` plugins, how the host recognises
    /// the format's artifacts when they are presented for verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FormatSection>,
}

/// `[format]` of a certificate-format plugin's manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FormatSection {
    /// Text prefixes that mark this format's artifacts (`HC1:`, `shc:/`,
    /// `eyJ` for a compact JWS). `/v1/verify` hands text starting with one of
    /// them to this plugin; when several plugins declare the same prefix
    /// (EU DCC and WHO DDCC are both `HC1:`), each is asked in name order
    /// until one recognises the artifact.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// `[a-z0-9-]+`; unique per host. Used in grants, logs and the admin API.
    pub name: String,
    /// The plugin's own semantic version.
    pub version: semver::Version,
    /// The world the component implements, e.g. `identity-provider`.
    pub world: World,
    /// The contract it was built against, e.g. `divoc:plugin@1.1.0`.
    pub wit: String,
    #[serde(default)]
    pub description: String,
}

/// Capabilities the plugin asks for. Absent means not requested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestedCapabilities {
    #[serde(default)]
    pub log: bool,
    #[serde(default)]
    pub clock: bool,
    #[serde(default)]
    pub random: bool,
    #[serde(default)]
    pub config: bool,
    pub kv: Option<KvRequest>,
    pub http: Option<HttpRequest>,
    pub signer: Option<SignerRequest>,
    /// Sending e-mail through the host's SMTP relay (since 1.2).
    #[serde(default)]
    pub mail: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KvRequest {
    pub quota_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpRequest {
    pub origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignerRequest {
    pub purposes: Vec<String>,
}

/// Limits the plugin asks for; the host fills in defaults and refuses values
/// above the operator's ceilings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestedLimits {
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub fuel: Option<u64>,
    pub output_kib: Option<u64>,
}

/// The contract a manifest names, e.g. `divoc:plugin@1.1.0`.
pub const WIT_PACKAGE: &str = divoc_contract::PACKAGE;

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::parse(&text).map_err(|e| e.at(path))
    }

    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The contract version the manifest names.
    pub fn wit_version(&self) -> Result<semver::Version, ManifestError> {
        let (package, version) =
            self.plugin
                .wit
                .split_once('@')
                .ok_or_else(|| ManifestError::Invalid {
                    field: "plugin.wit".into(),
                    message: format!("expected `{WIT_PACKAGE}@<version>`"),
                })?;
        if package != WIT_PACKAGE {
            return Err(ManifestError::Invalid {
                field: "plugin.wit".into(),
                message: format!("expected package `{WIT_PACKAGE}`, found `{package}`"),
            });
        }
        semver::Version::parse(version).map_err(|e| ManifestError::Invalid {
            field: "plugin.wit".into(),
            message: format!("bad version `{version}`: {e}"),
        })
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let name = &self.plugin.name;
        if !divoc_contract::valid_plugin_name(name) {
            return Err(ManifestError::Invalid {
                field: "plugin.name".into(),
                message: format!("`{name}` must be {}", divoc_contract::PLUGIN_NAME_RULE),
            });
        }
        self.wit_version()?;
        if let Some(http) = &self.capabilities.http {
            for origin in &http.origins {
                crate::grants::Origin::parse(origin).map_err(|message| ManifestError::Invalid {
                    field: "capabilities.http.origins".into(),
                    message,
                })?;
            }
        }
        let limits = &self.limits;
        for (field, value) in [
            ("limits.deadline-ms", limits.deadline_ms),
            ("limits.memory-mib", limits.memory_mib),
            ("limits.fuel", limits.fuel),
            ("limits.output-kib", limits.output_kib),
        ] {
            if value == Some(0) {
                return Err(ManifestError::Invalid {
                    field: field.into(),
                    message: "must be greater than zero".into(),
                });
            }
        }
        Ok(())
    }

    /// The capability names requested, for display.
    pub fn requested_capability_names(&self) -> Vec<&'static str> {
        let c = &self.capabilities;
        let mut names = Vec::new();
        for (on, name) in [
            (c.log, "log"),
            (c.clock, "clock"),
            (c.random, "random"),
            (c.config, "config"),
            (c.kv.is_some(), "kv"),
            (c.http.is_some(), "http"),
            (c.signer.is_some(), "signer"),
            (c.mail, "mail"),
        ] {
            if on {
                names.push(name);
            }
        }
        names
    }
}

/// Extra, free-form configuration sections keyed by plugin name.
pub type PluginConfigs = BTreeMap<String, serde_json::Value>;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [plugin]
        name = "id-verhoeff"
        version = "0.1.0"
        world = "identity-provider"
        wit = "divoc:plugin@1.1.0"
        [capabilities]
        log = true
        kv = { quota-bytes = 1024 }
        http = { origins = ["https://id.example.org"] }
        [limits]
        deadline-ms = 100
    "#;

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.plugin.world, World::IdentityProvider);
        assert_eq!(m.wit_version().unwrap(), semver::Version::new(1, 1, 0));
        assert_eq!(m.capabilities.kv.as_ref().unwrap().quota_bytes, 1024);
        assert_eq!(m.limits.deadline_ms, Some(100));
        assert_eq!(m.requested_capability_names(), vec!["log", "kv", "http"]);
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        let cases = [
            (GOOD.replace("id-verhoeff", "Bad Name"), "plugin.name"),
            (
                GOOD.replace("divoc:plugin@1.1.0", "other:pkg@1.0.0"),
                "plugin.wit",
            ),
            (
                GOOD.replace("deadline-ms = 100", "deadline-ms = 0"),
                "limits.deadline-ms",
            ),
            (
                GOOD.replace("https://id.example.org", "ftp://x"),
                "capabilities.http.origins",
            ),
        ];
        for (text, field) in cases {
            match Manifest::parse(&text) {
                Err(ManifestError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected an error on {field}, got {other:?}"),
            }
        }
        assert!(matches!(
            Manifest::parse(&GOOD.replace("world = \"identity-provider\"", "world = \"nope\"")),
            Err(ManifestError::Syntax(_))
        ));
        assert!(matches!(
            Manifest::parse(&format!("{GOOD}\nsurprise = 1\n")),
            Err(ManifestError::Syntax(_))
        ));
    }

    #[test]
    fn world_names_round_trip() {
        for w in World::ALL {
            assert_eq!(World::from_name(w.name()), Some(w));
            assert_eq!(World::from_export_interface(w.export_interface()), Some(w));
        }
    }
}
