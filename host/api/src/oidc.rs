//! Bearer tokens from an external OpenID Connect provider (Keycloak, a
//! ministry's SSO): a JWT signed with a key from the provider's JWKS, for
//! this service's audience, is accepted as a principal whose role and
//! facilities come from claims.
//!
//! Checked (RFC 7519 §7.2, OpenID Connect Core §3.1.3.7): the signature
//! with the JWKS key named by `kid`, an asymmetric algorithm only (`HS*`
//! would let anyone holding a shared secret mint tokens), `iss`, `aud`,
//! `exp` and `nbf` with a minute of leeway. The JWKS is fetched at start
//! and refreshed in the background ([`OidcVerifier::spawn_refresh`]); the
//! request path only reads the cached keys, so an unreachable provider
//! never blocks a request (tokens signed by a key not yet fetched are
//! refused until the next refresh).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Principal, Role};

/// `[auth.oidc]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OidcConfig {
    /// The provider's issuer (`iss`), e.g.
    /// `https://sso.health.gov.example/realms/divoc`.
    pub issuer: String,
    /// This service's audience (`aud`), e.g. its client id.
    pub audience: String,
    /// Where the provider publishes its signing keys.
    pub jwks_url: String,
    /// The claim holding the role: a dotted path (`realm_access.roles` for
    /// Keycloak realm roles), a string or an array; the first value that
    /// names a role of this service wins.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// The claim holding a facility-bound role's facility codes (a string
    /// or an array).
    #[serde(default = "default_facility_claim")]
    pub facility_claim: String,
    /// How often the JWKS is fetched again, seconds.
    #[serde(default = "default_refresh")]
    pub refresh_s: u64,
}

fn default_role_claim() -> String {
    "divoc_role".into()
}

fn default_facility_claim() -> String {
    "divoc_facilities".into()
}

fn default_refresh() -> u64 {
    300
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("auth.oidc: {0}")]
pub struct OidcError(pub String);

/// Verifies provider tokens against the cached JWKS.
#[derive(Clone)]
pub struct OidcVerifier {
    config: OidcConfig,
    keys: Arc<RwLock<JwkSet>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.config.issuer)
            .field("keys", &self.keys.read().keys.len())
            .finish()
    }
}

/// Algorithms a provider may sign with: asymmetric ones only.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl OidcVerifier {
    /// A verifier for `config`, with no keys until [`OidcVerifier::refresh`].
    pub fn new(config: OidcConfig) -> Result<OidcVerifier, OidcError> {
        let url =
            url::Url::parse(&config.jwks_url).map_err(|e| OidcError(format!("jwks-url: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(OidcError("jwks-url must be an http(s) URL".into()));
        }
        if config.issuer.trim().is_empty() || config.audience.trim().is_empty() {
            return Err(OidcError("issuer and audience must not be empty".into()));
        }
        Ok(OidcVerifier {
            config,
            keys: Arc::new(RwLock::new(JwkSet { keys: Vec::new() })),
        })
    }

    /// Fetches the JWKS (blocking); the old keys stay if it fails.
    pub fn refresh(&self) -> Result<usize, OidcError> {
        let text = ureq::get(&self.config.jwks_url)
            .timeout(Duration::from_secs(10))
            .call()
            .map_err(|e| OidcError(format!("cannot fetch {}: {e}", self.config.jwks_url)))?
            .into_string()
            .map_err(|e| OidcError(format!("cannot read the JWKS: {e}")))?;
        let set: JwkSet =
            serde_json::from_str(&text).map_err(|e| OidcError(format!("not a JWKS: {e}")))?;
        let n = set.keys.len();
        *self.keys.write() = set;
        Ok(n)
    }

    /// Refreshes the keys every `refresh-s` seconds until the runtime
    /// stops.
    pub fn spawn_refresh(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs(this.config.refresh_s.max(10));
            loop {
                tokio::time::sleep(every).await;
                let v = this.clone();
                match tokio::task::spawn_blocking(move || v.refresh()).await {
                    Ok(Ok(n)) => tracing::debug!(keys = n, "OIDC keys refreshed"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "OIDC keys not refreshed"),
                    Err(e) => tracing::warn!(error = %e, "OIDC refresh task failed"),
                }
            }
        })
    }

    /// The principal of a provider token, or `None` (not ours, forged,
    /// expired, for someone else, or without a role of this service).
    pub fn principal(&self, token: &str) -> Option<Principal> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !ASYMMETRIC.contains(&header.alg) {
            return None;
        }
        let key = {
            let keys = self.keys.read();
            let jwk = match &header.kid {
                Some(kid) => keys.find(kid)?.clone(),
                // Without a kid, only an unambiguous single key will do.
                None if keys.keys.len() == 1 => keys.keys[0].clone(),
                None => return None,
            };
            DecodingKey::from_jwk(&jwk).ok()?
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.leeway = 60;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .ok()?
            .claims;
        let role = strings(claim(&claims, &self.config.role_claim)?)
            .into_iter()
            .find_map(|r| Role::from_name(&r))?;
        let facilities = claim(&claims, &self.config.facility_claim)
            .map(strings)
            .unwrap_or_default();
        if role.facility_bound() && facilities.is_empty() {
            return None;
        }
        // Recipients are signed in by the service itself (OTP), not by the
        // ministry's staff directory.
        if role == Role::Recipient {
            return None;
        }
        // `sub` is the provider's stable, unique id of the person;
        // `preferred_username` can often be changed by its owner.
        let who = claims["sub"].as_str()?;
        Some(Principal {
            name: format!("oidc:{who}"),
            role,
            facilities,
            contacts: Vec::new(),
            daily_rates: Default::default(),
        })
    }
}

/// The value at a dotted path of the claims.
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(claims, |v, key| v.get(key))
}

/// A claim as strings: a string, or the strings of an array.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_are_read_by_dotted_path() {
        let claims =
            json!({"realm_access": {"roles": ["offline_access", "controller"]}, "f": "FAC-1"});
        let roles = strings(claim(&claims, "realm_access.roles").unwrap());
        assert_eq!(
            roles.iter().find_map(|r| Role::from_name(r)),
            Some(Role::Controller)
        );
        assert_eq!(strings(claim(&claims, "f").unwrap()), ["FAC-1"]);
        assert!(claim(&claims, "realm_access.nope").is_none());
    }

    #[test]
    fn unusable_settings_are_refused() {
        let ok = OidcConfig {
            issuer: "https://sso.example/realms/divoc".into(),
            audience: "divoc".into(),
            jwks_url: "https://sso.example/realms/divoc/protocol/openid-connect/certs".into(),
            role_claim: default_role_claim(),
            facility_claim: default_facility_claim(),
            refresh_s: 300,
        };
        OidcVerifier::new(ok.clone()).unwrap();
        let bad = OidcConfig {
            jwks_url: "file:///etc/keys".into(),
            ..ok.clone()
        };
        assert!(OidcVerifier::new(bad).is_err());
        let bad = OidcConfig {
            audience: " ".into(),
            ..ok
        };
        assert!(OidcVerifier::new(bad).is_err());
    }

    #[test]
    fn a_token_without_keys_or_with_a_shared_secret_is_refused() {
        let v = OidcVerifier::new(OidcConfig {
            issuer: "https://sso.example".into(),
            audience: "divoc".into(),
            jwks_url: "https://sso.example/certs".into(),
            role_claim: default_role_claim(),
            facility_claim: default_facility_claim(),
            refresh_s: 300,
        })
        .unwrap();
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &json!({"iss": "https://sso.example", "aud": "divoc", "sub": "x", "exp": 4_000_000_000u64, "divoc_role": "admin"}),
            &jsonwebtoken::EncodingKey::from_secret(b"shared"),
        )
        .unwrap();
        assert!(v.principal(&hs).is_none());
        assert!(v.principal("not.a.jwt").is_none());
    }
}
