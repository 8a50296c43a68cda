//! The `[plugin]` part of `plugin.toml` that the build tool needs. The host
//! parses the whole file; unknown tables are ignored here.

use std::path::Path;

use serde::Deserialize;

use crate::ToolchainError;

pub use divoc_contract::World;

/// The SDK feature that selects `world`'s bindings (the world's name).
pub fn sdk_feature(world: World) -> &'static str {
    world.name()
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
        if !divoc_contract::valid_plugin_name(&m.plugin.name) {
            return Err(format!(
                "plugin.name `{}` must be {}",
                m.plugin.name,
                divoc_contract::PLUGIN_NAME_RULE
            ));
        }
        if m.plugin.wit.split_once('@').is_none() {
            return Err(format!(
                "plugin.wit `{}` must look like `{}`",
                m.plugin.wit,
                divoc_contract::PACKAGE_AT_VERSION
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
