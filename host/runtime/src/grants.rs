//! Capability grants: what the operator allows each plugin.
//!
//! A capability needs both sides: the plugin's manifest requests it, the
//! operator's configuration grants it, and the effective set is the
//! intersection. A plugin that requests more than it is granted is refused at
//! load time with an error that names the plugin, its version and the
//! capability, so a missing grant is found when a plugin is deployed, not when
//! it is first called.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::LoadError;
use crate::manifest::Manifest;

/// The operator's grants, as configured under `[plugins.grants.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grant {
    /// `log`, `clock`, `random` and `config` are granted to every plugin unless
    /// the operator sets these to `false`.
    pub log: Option<bool>,
    /// `Some(false)` denies `clock` (wall-clock time); granted otherwise.
    pub clock: Option<bool>,
    /// `Some(false)` denies `random` (random bytes); granted otherwise.
    pub random: Option<bool>,
    /// `Some(false)` denies `config` (the plugin's configuration section);
    /// granted otherwise.
    pub config: Option<bool>,
    /// The largest kv quota the plugin may request; absent: no kv.
    pub kv_quota_bytes: Option<u64>,
    /// Origins (`scheme://host[:port]`) the plugin may call.
    #[serde(default)]
    pub http_origins: Vec<String>,
    /// Signing purposes whose keys the plugin may use.
    #[serde(default)]
    pub signer_purposes: Vec<String>,
    /// The address the plugin's e-mail goes out from; absent: no mail.
    pub mail_sender: Option<String>,
}

impl Grant {
    /// A grant covering exactly what a manifest requests, for tools that
    /// judge a component on its own (`divoc plugin check`, conformance).
    /// Origins are granted as written, so a loopback origin is reachable
    /// only when the manifest itself names one.
    pub fn requested_by(manifest: &Manifest) -> Grant {
        let c = &manifest.capabilities;
        Grant {
            kv_quota_bytes: c.kv.as_ref().map(|kv| kv.quota_bytes),
            http_origins: c
                .http
                .as_ref()
                .map(|h| h.origins.clone())
                .unwrap_or_default(),
            signer_purposes: c
                .signer
                .as_ref()
                .map(|s| s.purposes.clone())
                .unwrap_or_default(),
            mail_sender: c.mail.then(|| "plugin@localhost".to_string()),
            ..Grant::default()
        }
    }
}

/// All grants, keyed by plugin name.
pub type Grants = BTreeMap<String, Grant>;

/// The capabilities a loaded plugin actually has: request ∧ grant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EffectiveCapabilities {
    /// The plugin may write to the host's log.
    pub log: bool,
    /// The plugin may read the wall clock.
    pub clock: bool,
    /// The plugin may draw random bytes from the host.
    pub random: bool,
    /// The plugin may read its configuration section.
    pub config: bool,
    /// The plugin's kv quota: total bytes of its keys and values. `None`: no kv.
    pub kv_quota_bytes: Option<u64>,
    /// Origins the plugin may send HTTP requests to (those it requested). Empty: no http.
    pub http_origins: Vec<Origin>,
    /// Key purposes whose keys the plugin may list, sign and verify with.
    /// Empty: no signer.
    pub signer_purposes: Vec<String>,
    /// The sender address the plugin's e-mail goes out from. `None`: no mail.
    pub mail_sender: Option<String>,
}

impl EffectiveCapabilities {
    /// Whether the named capability interface is usable.
    pub fn has(&self, capability: &str) -> bool {
        match capability {
            "log" => self.log,
            "clock" => self.clock,
            "random" => self.random,
            "config" => self.config,
            "kv" => self.kv_quota_bytes.is_some(),
            "http" => !self.http_origins.is_empty(),
            "signer" => !self.signer_purposes.is_empty(),
            "mail" => self.mail_sender.is_some(),
            _ => false,
        }
    }
}

/// Computes request ∧ grant, refusing any request the grant does not cover.
pub fn effective(
    manifest: &Manifest,
    grant: Option<&Grant>,
) -> Result<EffectiveCapabilities, LoadError> {
    let plugin = &manifest.plugin.name;
    let version = manifest.plugin.version.to_string();
    let default_grant = Grant::default();
    let grant = grant.unwrap_or(&default_grant);
    let requested = &manifest.capabilities;
    let refuse = |capability: &str, detail: String| LoadError::NotGranted {
        plugin: plugin.clone(),
        version: version.clone(),
        capability: capability.to_string(),
        detail,
    };

    let mut caps = EffectiveCapabilities::default();
    for (wanted, granted, name, slot) in [
        (requested.log, grant.log, "log", &mut caps.log),
        (requested.clock, grant.clock, "clock", &mut caps.clock),
        (requested.random, grant.random, "random", &mut caps.random),
        (requested.config, grant.config, "config", &mut caps.config),
    ] {
        if wanted {
            if granted == Some(false) {
                return Err(refuse(name, " (the operator denied it)".into()));
            }
            *slot = true;
        }
    }

    if let Some(kv) = &requested.kv {
        match grant.kv_quota_bytes {
            None => {
                return Err(refuse(
                    "kv",
                    format!(
                        " (requested a quota of {} bytes; grant `kv-quota-bytes`)",
                        kv.quota_bytes
                    ),
                ))
            }
            Some(max) if kv.quota_bytes > max => {
                return Err(refuse(
                    "kv",
                    format!(
                        " (requested a quota of {} bytes, granted {max})",
                        kv.quota_bytes
                    ),
                ))
            }
            Some(_) => caps.kv_quota_bytes = Some(kv.quota_bytes),
        }
    }

    if let Some(http) = &requested.http {
        let granted: Vec<Origin> = grant
            .http_origins
            .iter()
            .filter_map(|o| Origin::parse(o).ok())
            .collect();
        for origin in &http.origins {
            let origin = Origin::parse(origin).map_err(|m| refuse("http", format!(" ({m})")))?;
            if !granted.contains(&origin) {
                return Err(refuse(
                    "http",
                    format!(" (origin {origin} is not in `http-origins`)"),
                ));
            }
            caps.http_origins.push(origin);
        }
    }

    if let Some(signer) = &requested.signer {
        for purpose in &signer.purposes {
            if !grant.signer_purposes.contains(purpose) {
                return Err(refuse(
                    "signer",
                    format!(" (key purpose `{purpose}` is not in `signer-purposes`)"),
                ));
            }
            caps.signer_purposes.push(purpose.clone());
        }
    }

    if requested.mail {
        match &grant.mail_sender {
            Some(sender) => caps.mail_sender = Some(sender.clone()),
            None => {
                return Err(refuse(
                    "mail",
                    " (grant a sender address with `mail-sender`)".into(),
                ))
            }
        }
    }
    Ok(caps)
}

/// A web origin: scheme, host and port (RFC 6454 §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name in lower case, or an IP address (IPv6 in brackets).
    pub host: String,
    /// The explicit port, or the scheme's default (80 or 443).
    pub port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` is allowed; nothing else).
    pub fn parse(text: &str) -> Result<Origin, String> {
        let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if url.path() != "/" && !url.path().is_empty() || url.query().is_some() {
            return Err(format!(
                "`{text}` must be an origin, without a path or query"
            ));
        }
        Origin::of(&url).ok_or_else(|| format!("`{text}` must be an http or https origin"))
    }

    /// The origin of an absolute `http`/`https` URL.
    pub fn of(url: &url::Url) -> Option<Origin> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// Whether the grant names a local host (loopback, private, link-local)
    /// itself, which is what allows connecting to such an address.
    pub fn names_local_host(&self) -> bool {
        if self.host == "localhost" {
            return true;
        }
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().map(is_local).unwrap_or(false)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Addresses a plugin may reach only when the grant names them explicitly:
/// loopback, private (RFC 1918, RFC 4193), link-local, unspecified, CGNAT
/// shared space, multicast and broadcast. This blocks server-side request
/// forgery against the host's own network through a granted public name.
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(caps: &str) -> Manifest {
        Manifest::parse(&format!(
            "[plugin]\nname = \"p\"\nversion = \"1.2.3\"\nworld = \"distribution-channel\"\n\
             wit = \"divoc:plugin@1.1.0\"\n[capabilities]\n{caps}"
        ))
        .unwrap()
    }

    #[test]
    fn effective_is_request_and_grant() {
        let m = manifest(
            "log = true\nkv = { quota-bytes = 100 }\nhttp = { origins = [\"https://a.example\"] }",
        );
        let grant = Grant {
            kv_quota_bytes: Some(1000),
            http_origins: vec!["https://a.example:443".into(), "https://b.example".into()],
            signer_purposes: vec!["certificate".into()],
            ..Grant::default()
        };
        let caps = effective(&m, Some(&grant)).unwrap();
        assert!(caps.log && !caps.clock);
        assert_eq!(caps.kv_quota_bytes, Some(100));
        assert_eq!(caps.http_origins.len(), 1);
        // Granted but not requested: not effective.
        assert!(caps.signer_purposes.is_empty());
        assert!(!caps.has("signer"));
    }

    #[test]
    fn refusals_name_plugin_version_and_capability() {
        let m = manifest("http = { origins = [\"https://a.example\"] }");
        let err = effective(&m, None).unwrap_err().to_string();
        assert!(err.contains("`p` 1.2.3"), "{err}");
        assert!(
            err.contains("`http`") && err.contains("https://a.example:443"),
            "{err}"
        );

        let m = manifest("kv = { quota-bytes = 5000 }");
        let grant = Grant {
            kv_quota_bytes: Some(10),
            ..Grant::default()
        };
        let err = effective(&m, Some(&grant)).unwrap_err().to_string();
        assert!(err.contains("`kv`") && err.contains("granted 10"), "{err}");

        let m = manifest("signer = { purposes = [\"certificate\"] }");
        let err = effective(&m, None).unwrap_err().to_string();
        assert!(
            err.contains("`signer`") && err.contains("certificate"),
            "{err}"
        );

        let m = manifest("log = true");
        let grant = Grant {
            log: Some(false),
            ..Grant::default()
        };
        assert!(effective(&m, Some(&grant)).is_err());
    }

    #[test]
    fn origins_normalise_and_classify() {
        assert_eq!(
            Origin::parse("HTTPS://Example.org/").unwrap(),
            Origin::parse("https://example.org:443").unwrap()
        );
        assert!(Origin::parse("https://example.org/path").is_err());
        assert!(Origin::parse("file:///etc/passwd").is_err());
        assert!(Origin::parse("http://127.0.0.1:8080")
            .unwrap()
            .names_local_host());
        assert!(Origin::parse("http://[::1]:8080")
            .unwrap()
            .names_local_host());
        assert!(!Origin::parse("https://example.org")
            .unwrap()
            .names_local_host());
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_local(local.parse().unwrap()), "{local}");
        }
        for public in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!is_local(public.parse().unwrap()), "{public}");
        }
    }
}
