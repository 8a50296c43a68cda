//! The `[plugin]` part of `plugin.toml` that the build tool needs. The host
//! parses the whole file; unknown tables are ignored here.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::ToolchainError;

/// A plugin world of `divoc:plugin`, and the one interface it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    /// `identity-provider`, exports `identity`.
    IdentityProvider,
    /// `payment-provider`, exports `payment`.
    PaymentProvider,
    /// `certificate-format`, exports `format`.
    CertificateFormat,
    /// `distribution-channel`, exports `distribution`.
    DistributionChannel,
    /// `rollout-policy`, exports `eligibility`.
    RolloutPolicy,
    /// `event-subscriber`, exports `events`.
    EventSubscriber,
}

impl World {
    /// Every world, in contract order.
    pub const ALL: [World; 6] = [
        World::IdentityProvider,
        World::PaymentProvider,
        World::CertificateFormat,
        World::DistributionChannel,
        World::RolloutPolicy,
        World::EventSubscriber,
    ];

    /// The world's name in WIT and in `plugin.toml`.
    pub fn name(self) -> &'static str {
        match self {
            World::IdentityProvider => "identity-provider",
            World::PaymentProvider => "payment-provider",
            World::CertificateFormat => "certificate-format",
            World::DistributionChannel => "distribution-channel",
            World::RolloutPolicy => "rollout-policy",
            World::EventSubscriber => "event-subscriber",
        }
    }

    /// The interface the world exports (`divoc:plugin/<this>@<version>`).
    pub fn export_interface(self) -> &'static str {
        match self {
            World::IdentityProvider => "identity",
            World::PaymentProvider => "payment",
            World::CertificateFormat => "format",
            World::DistributionChannel => "distribution",
            World::RolloutPolicy => "eligibility",
            World::EventSubscriber => "events",
        }
    }

    /// The SDK feature (equal to the world name).
    pub fn sdk_feature(self) -> &'static str {
        self.name()
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for World {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        World::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = World::ALL.iter().map(|w| w.name()).collect();
                format!(
                    "unknown world `{s}` (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// The parts of `plugin.toml` the build tool reads.
#[derive(Debug, Clone, Deserialize)]
pub struct PluginManifest {
    /// The `[plugin]` table.
    pub plugin: PluginSection,
}

/// The `[plugin]` table of `plugin.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct PluginSection {
    /// `[a-z0-9-]+`, unique per host.
    pub name: String,
    /// The plugin's semver.
    pub version: String,
    /// The world it implements, e.g. `identity-provider`.
    pub world: String,
    /// The contract it was built against, e.g. `divoc:plugin@1.1.0`.
    pub wit: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

impl PluginManifest {
    /// Reads and checks a `plugin.toml`.
    pub fn load(path: &Path) -> Result<Self, ToolchainError> {
        let text = std::fs::read_to_string(path).map_err(|source| ToolchainError::Io {
            what: "cannot read",
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ToolchainError::Manifest {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and checks the text of a `plugin.toml`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let m: PluginManifest = toml::from_str(text).map_err(|e| e.to_string())?;
        if !valid_name(&m.plugin.name) {
            return Err(format!(
                "plugin.name `{}` must match [a-z0-9-]+",
                m.plugin.name
            ));
        }
        if m.plugin.wit.split_once('@').is_none() {
            return Err(format!(
                "plugin.wit `{}` must look like `divoc:plugin@1.1.0`",
                m.plugin.wit
            ));
        }
        Ok(m)
    }

    /// The version part of `plugin.wit` (`1.1.0` in `divoc:plugin@1.1.0`).
    pub fn wit_version(&self) -> &str {
        self.plugin
            .wit
            .split_once('@')
            .map(|(_, v)| v)
            .unwrap_or("")
    }
}

/// `true` for a non-empty `[a-z0-9-]+` name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_format() {
        let m = PluginManifest::parse(
            r#"
[plugin]
name = "id-verhoeff"
version = "0.1.0"
world = "identity-provider"
wit = "divoc:plugin@1.1.0"
description = "..."
[capabilities]
log = true
kv = { quota-bytes = 65536 }
[limits]
deadline-ms = 200
"#,
        )
        .expect("valid manifest");
        assert_eq!(m.plugin.name, "id-verhoeff");
        assert_eq!(m.wit_version(), "1.1.0");
        assert_eq!(m.plugin.world.parse::<World>(), Ok(World::IdentityProvider));
    }

    #[test]
    fn rejects_bad_names_and_worlds() {
        let bad = "[plugin]\nname = \"Bad_Name\"\nversion = \"1.0.0\"\nworld = \"x\"\nwit = \"divoc:plugin@1.1.0\"\n";
        assert!(PluginManifest::parse(bad).is_err());
        assert!("nope".parse::<World>().is_err());
        for w in World::ALL {
            assert_eq!(w.name().parse::<World>(), Ok(w));
        }
    }
}
