//! The facts of the plugin contract (`wit/`) that Rust code needs: its
//! package name and version, its six worlds with the interface each exports,
//! and the rule for plugin names. The runtime, the build tool and the
//! conformance suite all take them from here, and `tests/wit.rs` ties them
//! to the WIT files, so a change to the contract cannot leave one of them
//! behind.

#![deny(missing_docs)]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The WIT package, without its version.
pub const PACKAGE: &str = "divoc:plugin";

/// The contract version this host implements. Plugins built against any
/// 1.x up to this one load (semver: minor versions only add).
pub const VERSION: semver::Version = semver::Version::new(1, 2, 0);

/// `PACKAGE@VERSION`, as a manifest's `plugin.wit` names it.
pub const PACKAGE_AT_VERSION: &str = "divoc:plugin@1.2.0";

/// The six plugin worlds of `divoc:plugin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `identity-provider`: checks identity documents; exports `identity`.
    IdentityProvider,
    /// `payment-provider`: takes payments; exports `payment`.
    PaymentProvider,
    /// `certificate-format`: encodes and verifies a format; exports `format`.
    CertificateFormat,
    /// `distribution-channel`: delivers certificates; exports `distribution`.
    DistributionChannel,
    /// `rollout-policy`: decides eligibility; exports `eligibility`.
    RolloutPolicy,
    /// `event-subscriber`: consumes the event log; exports `events`.
    EventSubscriber,
}

impl World {
    /// Every world, in the contract's order.
    pub const ALL: [World; 6] = [
        World::IdentityProvider,
        World::PaymentProvider,
        World::CertificateFormat,
        World::DistributionChannel,
        World::RolloutPolicy,
        World::EventSubscriber,
    ];

    /// The world's name in WIT and in `plugin.toml`, e.g. `identity-provider`.
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

    /// The one interface the world exports; its name identifies the world
    /// in a compiled component (`divoc:plugin/<this>@<version>`).
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

    /// The world named `name`, as written in a manifest.
    pub fn from_name(name: &str) -> Option<World> {
        World::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The world whose exported interface is `interface`.
    pub fn from_export_interface(interface: &str) -> Option<World> {
        World::ALL
            .into_iter()
            .find(|w| w.export_interface() == interface)
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for World {
    type Err = String;

    fn from_str(s: &str) -> Result<World, String> {
        World::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = World::ALL.iter().map(|w| w.name()).collect();
            format!(
                "unknown world `{s}` (expected one of: {})",
                names.join(", ")
            )
        })
    }
}

/// The plugin-name rule, for messages.
pub const PLUGIN_NAME_RULE: &str = "1-64 characters of [a-z0-9-], starting with a letter";

/// Whether `name` may name a plugin: 1–64 characters of `[a-z0-9-]`,
/// starting with a letter. Names appear in grants, logs, URLs and the
/// plugin's Cargo package name (which may not start with a digit or `-`).
pub fn valid_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_agree() {
        assert_eq!(PACKAGE_AT_VERSION, format!("{PACKAGE}@{VERSION}"));
    }

    #[test]
    fn names_and_interfaces_round_trip() {
        for w in World::ALL {
            assert_eq!(World::from_name(w.name()), Some(w));
            assert_eq!(w.name().parse::<World>(), Ok(w));
            assert_eq!(World::from_export_interface(w.export_interface()), Some(w));
            // The serde name (API, manifests) is the WIT name.
            let json = serde_json::to_string(&w).unwrap();
            assert_eq!(json, format!("\"{}\"", w.name()));
            assert_eq!(serde_json::from_str::<World>(&json).unwrap(), w);
        }
        assert!("identity".parse::<World>().is_err());
    }

    #[test]
    fn plugin_names() {
        for ok in ["id-verhoeff", "a", "pay2", &"a".repeat(64)] {
            assert!(valid_plugin_name(ok), "{ok}");
        }
        for bad in [
            "",
            "2fa",
            "-x",
            "Upper",
            "under_score",
            "dot.ted",
            &"a".repeat(65),
        ] {
            assert!(!valid_plugin_name(bad), "{bad}");
        }
    }
}
