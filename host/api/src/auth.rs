//! Bearer-token authentication and per-route roles.
//!
//! Tokens come from the operator's configuration; only their SHA-256 digests
//! are kept in memory, so a heap dump or a debug print does not reveal them.
//! Every route is listed in [`crate::routes::all`] with the roles it
//! accepts, and one middleware enforces that table for every request: a
//! route missing from the table is refused (fail closed), never open.

use std::collections::HashMap;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::routes::{self, Access};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Operates the service: plugins, keys, tokens, everything.
    Admin,
    /// A system that issues certificates (a ministry's registry).
    Issuer,
    /// A vaccination facility; scoped to its facility ids.
    Facility,
    /// A vaccinator working at a facility.
    Vaccinator,
    /// A verifier app or service.
    Verifier,
    /// A vaccinated person, seeing only their own records.
    Recipient,
    /// Runs the rollout: programmes, vaccines, facilities, vaccinators,
    /// activation and daily rates.
    Controller,
    /// Reads the registry and reports (a health ministry's monitoring desk).
    Monitoring,
    /// Administers its facilities: reads them and their vaccinators.
    FacilityAdmin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 9] = [
        Role::Admin,
        Role::Issuer,
        Role::Facility,
        Role::Vaccinator,
        Role::Verifier,
        Role::Recipient,
        Role::Controller,
        Role::Monitoring,
        Role::FacilityAdmin,
    ];

    /// The role's name as in configuration and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Issuer => "issuer",
            Role::Facility => "facility",
            Role::Vaccinator => "vaccinator",
            Role::Verifier => "verifier",
            Role::Recipient => "recipient",
            Role::Controller => "controller",
            Role::Monitoring => "monitoring",
            Role::FacilityAdmin => "facility-admin",
        }
    }

    /// The role of a name as in configuration.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether tokens of this role are scoped to facilities.
    pub fn facility_bound(self) -> bool {
        matches!(
            self,
            Role::Facility | Role::FacilityAdmin | Role::Vaccinator
        )
    }
}

/// A configured API token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TokenConfig {
    /// A label for logs and audit records (never the token itself).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The token in clear (best supplied through the environment), or...
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
    /// ...its SHA-256 digest in hex, so the config file holds no secret.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Facility ids a `facility` or `vaccinator` token is scoped to.
    #[serde(default)]
    pub facilities: Vec<String>,
    /// The contacts (`tel:…`, `mailto:…`) a `recipient` token belongs to:
    /// it sees only certificates issued to one of them.
    #[serde(default)]
    pub contacts: Vec<String>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's label.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The facilities a facility-bound token serves.
    pub facilities: Vec<String>,
    /// A recipient's own contacts (see [`TokenConfig::contacts`]).
    pub contacts: Vec<String>,
    /// The most vaccinations a day this token may record, per programme
    /// (a stored token's `dailyRates`); none: only the facility's rate.
    pub daily_rates: std::collections::BTreeMap<String, u32>,
}

/// Put into every request's extensions by the auth middleware.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Principal>);

/// A token configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Neither or both of `token` and `token-sha256`.
    #[error("token `{0}`: give exactly one of `token` and `token-sha256`")]
    Ambiguous(String),
    /// A digest that is not 64 hex characters.
    #[error("token `{0}`: `token-sha256` must be 64 hex characters")]
    BadDigest(String),
    /// A secret shorter than 16 characters.
    #[error("token `{0}`: tokens must be at least 16 characters")]
    TooShort(String),
    /// Two tokens with one secret.
    #[error("two tokens share the same secret (`{0}` and `{1}`)")]
    Duplicate(String, String),
    /// A recipient token that would see nothing.
    #[error("token `{0}`: a recipient token needs `contacts` (it would see nothing)")]
    RecipientWithoutContacts(String),
}

/// Token digests → principals: the configured tokens in memory, and, when
/// a database is attached ([`TokenTable::with_store`]), the tokens made over
/// the API (`/v1/tokens`).
#[derive(Default)]
pub struct TokenTable {
    by_digest: HashMap<[u8; 32], Principal>,
    store: Option<crate::tokens::TokenStore>,
    oidc: Option<crate::oidc::OidcVerifier>,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenTable")
            .field("tokens", &self.by_digest.len())
            .finish()
    }
}

/// SHA-256 of a token, as stored.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenTable {
    /// The table of the configured tokens; refuses unusable ones.
    pub fn from_config(tokens: &[TokenConfig]) -> Result<TokenTable, TokenError> {
        let mut table = TokenTable::default();
        for t in tokens {
            let digest = match (&t.token, &t.token_sha256) {
                (Some(token), None) => {
                    if token.len() < 16 {
                        return Err(TokenError::TooShort(t.name.clone()));
                    }
                    token_digest(token)
                }
                (None, Some(hex_digest)) => {
                    let bytes = hex::decode(hex_digest)
                        .map_err(|_| TokenError::BadDigest(t.name.clone()))?;
                    <[u8; 32]>::try_from(bytes.as_slice())
                        .map_err(|_| TokenError::BadDigest(t.name.clone()))?
                }
                _ => return Err(TokenError::Ambiguous(t.name.clone())),
            };
            if t.role == Role::Recipient && t.contacts.is_empty() {
                return Err(TokenError::RecipientWithoutContacts(t.name.clone()));
            }
            let principal = Principal {
                name: t.name.clone(),
                role: t.role,
                facilities: t.facilities.clone(),
                contacts: t.contacts.clone(),
                daily_rates: Default::default(),
            };
            if let Some(other) = table.by_digest.insert(digest, principal) {
                return Err(TokenError::Duplicate(other.name, t.name.clone()));
            }
        }
        Ok(table)
    }

    /// Adds one token given in clear (e.g. the seeded admin token).
    pub fn add(&mut self, token: &str, principal: Principal) {
        self.by_digest.insert(token_digest(token), principal);
    }

    /// How many tokens.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Also accepts JWTs of an external OpenID Connect provider.
    pub fn with_oidc(mut self, oidc: crate::oidc::OidcVerifier) -> TokenTable {
        self.oidc = Some(oidc);
        self
    }

    /// Also accepts the live (not expired, not revoked) tokens made over
    /// the API and kept in `store`.
    pub fn with_store(mut self, store: crate::tokens::TokenStore) -> TokenTable {
        self.store = Some(store);
        self
    }

    /// The principal of a presented token. The comparison with configured
    /// digests is constant time so response timing does not leak how much
    /// of a digest matched; a stored token is found by its digest's index
    /// (the digest of a 256-bit random secret: timing reveals nothing that
    /// helps to guess one).
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        self.configured(token).or_else(|| self.dynamic(token))
    }

    /// A configured token's principal (memory only: never blocks).
    pub fn configured(&self, token: &str) -> Option<Principal> {
        let digest = token_digest(token);
        self.by_digest
            .iter()
            .find(|(d, _)| bool::from(d.ct_eq(&digest)))
            .map(|(_, p)| p.clone())
    }

    /// Whether tokens beyond the configured ones are accepted (a database
    /// read or a JWT check: callers on an async runtime run
    /// [`TokenTable::dynamic`] on the blocking pool).
    pub fn has_dynamic(&self) -> bool {
        self.store.is_some() || self.oidc.is_some()
    }

    /// A stored token's or an OIDC JWT's principal. May block on a
    /// database read.
    pub fn dynamic(&self, token: &str) -> Option<Principal> {
        let digest = token_digest(token);
        self.store
            .as_ref()
            .and_then(|s| s.principal(&digest))
            .or_else(|| {
                // A JWT (three dot-separated parts) from the OIDC provider.
                let jwt = token.bytes().filter(|b| *b == b'.').count() == 2;
                self.oidc
                    .as_ref()
                    .filter(|_| jwt)
                    .and_then(|o| o.principal(token))
            })
    }
}

fn bearer(request: &Request) -> Result<Option<&str>, ApiError> {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::unauthorized())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(ApiError::unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized());
    }
    Ok(Some(token.trim()))
}

/// The request's bearer token, when it carries a well-formed one.
pub fn bearer_token(request: &Request) -> Option<&str> {
    bearer(request).ok().flatten()
}

/// The route-table middleware (installed with `route_layer`, so the matched
/// route is known).
pub async fn authorize(
    State(tokens): State<std::sync::Arc<TokenTable>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    tracing::Span::current().record("route", path.as_str());
    let method = request.method().as_str().to_owned();
    // HEAD is GET without the body (RFC 9110 §9.3.2): the same roles.
    let rule = routes::all()
        .find(|r| r.path == path && r.method == method)
        .or_else(|| {
            (method == "HEAD")
                .then(|| routes::all().find(|r| r.path == path && r.method == "GET"))
                .flatten()
        });
    let Some(rule) = rule else {
        let allowed: Vec<&str> = routes::all()
            .filter(|r| r.path == path)
            .map(|r| r.method)
            .collect();
        if allowed.is_empty() {
            // A route the router knows and the table does not: refuse.
            tracing::error!(%path, "route has no access rule; refusing");
            return Err(ApiError::forbidden("this route has no access rule"));
        }
        let mut allow = allowed.clone();
        if allow.contains(&"GET") && !allow.contains(&"HEAD") {
            allow.push("HEAD");
        }
        let mut e = ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} takes {}", allow.join(", ")),
        )
        .into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&allow.join(", ")) {
            e.headers_mut().insert(axum::http::header::ALLOW, v);
        }
        return Ok(e);
    };
    let caller = match rule.access {
        Access::Public => Caller(None),
        Access::RolesOrProof(_) if bearer(&request)?.is_none() => Caller(None),
        Access::Roles(roles) | Access::RolesOrProof(roles) => {
            let token = bearer(&request)?.ok_or_else(ApiError::unauthorized)?;
            let principal = match tokens.configured(token) {
                Some(p) => Some(p),
                // A database read or a JWT check: off the async threads.
                None if tokens.has_dynamic() => {
                    let (table, token) = (tokens.clone(), token.to_owned());
                    tokio::task::spawn_blocking(move || table.dynamic(&token))
                        .await
                        .ok()
                        .flatten()
                }
                None => None,
            }
            .ok_or_else(ApiError::unauthorized)?;
            if !roles.contains(&principal.role) {
                let allowed: Vec<&str> = roles.iter().map(|r| r.name()).collect();
                return Err(ApiError::forbidden_route(
                    principal.role.name(),
                    &method,
                    &path,
                    &allowed,
                ));
            }
            Caller(Some(principal))
        }
    };
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_as_digests() {
        let table = TokenTable::from_config(&[
            TokenConfig {
                name: "a".into(),
                role: Role::Issuer,
                token: Some("0123456789abcdef-issuer".into()),
                token_sha256: None,
                facilities: vec![],
                contacts: vec![],
            },
            TokenConfig {
                name: "b".into(),
                role: Role::Verifier,
                token: None,
                token_sha256: Some(hex::encode(token_digest("0123456789abcdef-verifier"))),
                facilities: vec![],
                contacts: vec![],
            },
        ])
        .unwrap();
        assert_eq!(
            table.authenticate("0123456789abcdef-issuer").unwrap().role,
            Role::Issuer
        );
        assert_eq!(
            table
                .authenticate("0123456789abcdef-verifier")
                .unwrap()
                .name,
            "b"
        );
        assert!(table.authenticate("nope").is_none());
        assert!(!format!("{table:?}").contains("issuer"));
    }

    #[test]
    fn bad_token_configs_are_refused() {
        let base = TokenConfig {
            name: "x".into(),
            role: Role::Admin,
            token: None,
            token_sha256: None,
            facilities: vec![],
            contacts: vec![],
        };
        assert!(matches!(
            TokenTable::from_config(std::slice::from_ref(&base)),
            Err(TokenError::Ambiguous(_))
        ));
        let short = TokenConfig {
            token: Some("short".into()),
            ..base.clone()
        };
        assert!(matches!(
            TokenTable::from_config(&[short]),
            Err(TokenError::TooShort(_))
        ));
        let bad = TokenConfig {
            token_sha256: Some("zz".into()),
            ..base
        };
        assert!(matches!(
            TokenTable::from_config(&[bad]),
            Err(TokenError::BadDigest(_))
        ));
    }
}
