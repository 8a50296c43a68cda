//! API tokens made over the API: `POST /v1/tokens` (the secret is in the
//! answer once and never again), `GET /v1/tokens` (without secrets),
//! `GET /v1/tokens/{id}` and `DELETE /v1/tokens/{id}` (revoke). Only the
//! SHA-256 of a secret is stored (`divoc_storage::tokens`); tokens from
//! `config/divoc.toml` keep working beside them.
//!
//! An admin makes tokens of any role; a controller only for facility staff
//! (`facility`, `facility-admin`, `vaccinator`), and sees only those.
//! Facility-bound tokens name facilities that exist in the registry, and
//! may carry a daily rate per programme (enforced by Rollout II).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;

use divoc_storage::tokens::{self as store, TokenRow};
use divoc_storage::{audit, events, Database};
use divoc_time::SharedClock;

use crate::auth::{token_digest, Caller, Principal, Role};
use crate::certificates::principal;
use crate::error::{ApiError, ApiQuery};
use crate::AppState;

/// What a stored token is scoped to (its `scope` column).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Scope {
    #[serde(default)]
    facilities: Vec<String>,
    #[serde(default)]
    contacts: Vec<String>,
    #[serde(default)]
    daily_rates: BTreeMap<String, u32>,
}

/// The stored tokens, for the auth middleware.
#[derive(Clone)]
pub struct TokenStore {
    db: Database,
    clock: SharedClock,
}

impl TokenStore {
    /// Tokens kept in `db`; expiry read from `clock`.
    pub fn new(db: Database, clock: SharedClock) -> TokenStore {
        TokenStore { db, clock }
    }

    /// The principal of a live stored token. A failed read refuses the
    /// token (fails closed) and is logged.
    pub(crate) fn principal(&self, digest: &[u8; 32]) -> Option<Principal> {
        let row = match self.db.read(|r| store::by_digest(r, digest)) {
            Ok(row) => row?,
            Err(e) => {
                tracing::error!(error = %e, "reading API tokens failed; refusing the token");
                return None;
            }
        };
        if status(&row, self.clock.now_ms()) != "active" {
            return None;
        }
        let role = Role::from_name(&row.role)?;
        let scope: Scope = serde_json::from_str(&row.scope).ok()?;
        // The token's id, not its label: a label is free text, and a
        // controller could otherwise name a token after someone else and
        // write the audit log in their name.
        Some(Principal {
            name: format!("token:{}", row.id),
            role,
            facilities: scope.facilities,
            contacts: scope.contacts,
            daily_rates: scope.daily_rates,
        })
    }
}

/// A storage failure: logged, answered without its details.
fn storage_failed(e: divoc_storage::StorageError) -> ApiError {
    tracing::error!(error = %e, "API token storage failed");
    ApiError::internal("the token store failed; see the server log")
}

fn status(row: &TokenRow, now_ms: i64) -> &'static str {
    if row.revoked_ms.is_some() {
        "revoked"
    } else if row.expires_ms.is_some_and(|e| e <= now_ms) {
        "expired"
    } else {
        "active"
    }
}

/// A token as listed: everything but the secret.
fn describe(row: &TokenRow, now_ms: i64) -> serde_json::Value {
    let scope: Scope = serde_json::from_str(&row.scope).unwrap_or_default();
    json!({
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "facilities": scope.facilities,
        "contacts": scope.contacts,
        "dailyRates": scope.daily_rates,
        "status": status(row, now_ms),
        "createdAt": divoc_time::format_millis(row.created_ms),
        "createdBy": row.created_by,
        "expiresAt": row.expires_ms.map(divoc_time::format_millis),
        "revokedAt": row.revoked_ms.map(divoc_time::format_millis),
    })
}

/// The body of `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewToken {
    name: String,
    role: String,
    #[serde(default)]
    facilities: Vec<String>,
    #[serde(default)]
    contacts: Vec<String>,
    #[serde(default)]
    daily_rates: BTreeMap<String, u32>,
    #[serde(default)]
    expires_at: Option<String>,
}

/// Roles a controller may make tokens for.
fn controller_may_make(role: Role) -> bool {
    role.facility_bound()
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
    let (field, message) = (field.into(), message.into());
    ApiError::invalid_fields([(field.as_str(), message.as_str())])
}

fn store_of(state: &AppState) -> Result<(Database, SharedClock), ApiError> {
    let svc = state
        .rollout
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("the rollout module is not enabled"))?;
    Ok((state.db.clone(), svc.clock()))
}

/// Checks a new token against the caller and the registry.
async fn check(
    state: &AppState,
    caller: &Principal,
    t: &NewToken,
    now_ms: i64,
) -> Result<(Role, Option<i64>), ApiError> {
    let label_ok = (1..=64).contains(&t.name.chars().count())
        && !t.name.trim().is_empty()
        && !t.name.chars().any(char::is_control);
    if !label_ok {
        return Err(invalid("name", "must be 1-64 characters, not blank"));
    }
    let role = Role::from_name(&t.role).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
        invalid("role", format!("must be one of {}", names.join(", ")))
    })?;
    if caller.role == Role::Controller && !controller_may_make(role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a controller makes tokens for facility staff only (facility, facility-admin, vaccinator)",
        )
        .with_field("role"));
    }
    if role.facility_bound() {
        if t.facilities.is_empty() {
            return Err(invalid(
                "facilities",
                "a facility-bound role needs at least one facility",
            ));
        }
        if t.facilities.len() > 1000 {
            return Err(invalid("facilities", "at most 1000 facilities"));
        }
        let rollout = state
            .rollout
            .clone()
            .ok_or_else(|| ApiError::unavailable("the rollout module is not enabled"))?;
        let (facilities, programmes): (Vec<String>, Vec<String>) = (
            t.facilities.clone(),
            t.daily_rates.keys().cloned().collect(),
        );
        let missing =
            tokio::task::spawn_blocking(move || rollout.missing_codes(&facilities, &programmes))
                .await
                .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
                .map_err(ApiError::from)?;
        if let Some((field, message)) = missing.into_iter().next() {
            return Err(invalid(field, message));
        }
        if let Some((programme, _)) = t
            .daily_rates
            .iter()
            .find(|(_, n)| !(1..=1_000_000).contains(*n))
        {
            return Err(invalid(
                format!("dailyRates.{programme}"),
                "must be 1-1000000",
            ));
        }
    } else {
        if !t.facilities.is_empty() {
            return Err(invalid(
                "facilities",
                format!("a {} token is not scoped to facilities", role.name()),
            ));
        }
        if !t.daily_rates.is_empty() {
            return Err(invalid(
                "dailyRates",
                "only facility staff have daily rates",
            ));
        }
    }
    if role == Role::Recipient {
        if t.contacts.is_empty() {
            return Err(invalid(
                "contacts",
                "a recipient token needs contacts (it would see nothing)",
            ));
        }
    } else if !t.contacts.is_empty() {
        return Err(invalid("contacts", "only recipient tokens have contacts"));
    }
    let expires = match &t.expires_at {
        None => None,
        Some(text) => {
            let at = divoc_time::parse_instant(text, &divoc_time::Zone::utc())
                .ok_or_else(|| invalid("expiresAt", "must be an RFC 3339 date-time"))?;
            if at <= now_ms {
                return Err(invalid("expiresAt", "must be in the future"));
            }
            Some(at)
        }
    };
    Ok((role, expires))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// `POST /v1/tokens`: 201 with the secret, shown this once.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let t: NewToken = crate::rollout::parse_body(&body)?;
    let (db, clock) = store_of(&state)?;
    let now = clock.now_ms();
    let (role, expires_ms) = check(&state, &p, &t, now).await?;
    let scope = Scope {
        facilities: t.facilities,
        contacts: t.contacts,
        daily_rates: t.daily_rates,
    };
    let (secret, row) = mint(&db, t.name, role, &scope, &p.name, now, expires_ms).await?;
    let mut answer = describe(&row, now);
    answer["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Whether `p` may see a token of this role.
fn may_see(p: &Principal, row: &TokenRow) -> bool {
    p.role == Role::Admin || Role::from_name(&row.role).is_some_and(controller_may_make)
}

/// The list query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/tokens`: tokens in id order, without secrets.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit", "must be 1-1000"));
    }
    let (db, clock) = store_of(&state)?;
    let now = clock.now_ms();
    let (items, next) = tokio::task::spawn_blocking(move || {
        // Filtering after the read may leave a page short; the cursor still
        // moves past what was read, so paging ends.
        let rows = db.read(|r| store::list(r, q.cursor.as_deref(), limit + 1))?;
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let next = if more {
            rows.last().map(|r| r.id.clone())
        } else {
            None
        };
        let items: Vec<_> = rows
            .iter()
            .filter(|r| may_see(&p, r))
            .map(|r| describe(r, now))
            .collect();
        Ok::<_, divoc_storage::StorageError>((items, next))
    })
    .await
    .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    .map_err(storage_failed)?;
    Ok(Json(json!({ "items": items, "next_cursor": next })).into_response())
}

async fn visible(state: &AppState, p: &Principal, id: String) -> Result<(TokenRow, i64), ApiError> {
    let (db, clock) = store_of(state)?;
    let missing = ApiError::not_found(format!("no token {id}"));
    let row = tokio::task::spawn_blocking(move || db.read(|r| store::get(r, &id)))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(storage_failed)?;
    match row {
        Some(row) if may_see(p, &row) => Ok((row, clock.now_ms())),
        _ => Err(missing),
    }
}

/// `GET /v1/tokens/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let (row, now) = visible(&state, p, id).await?;
    Ok(Json(describe(&row, now)).into_response())
}

/// `DELETE /v1/tokens/{id}`: revokes it at once (204, also when it was
/// revoked before).
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let (row, now) = visible(&state, &p, id).await?;
    state
        .db
        .write(move |tx| {
            if store::revoke(tx, &row.id, now)? {
                let detail = json!({ "id": row.id, "role": row.role });
                audit::append_audit(tx, &p.name, "token.revoke", &row.id, &detail)?;
                events::append_event(tx, "auth.token.revoked", &row.id, &detail)?;
            }
            Ok(())
        })
        .await
        .map_err(storage_failed)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Makes and stores a token: its secret (shown once) and its row. The
/// audit record and event carry its id and role only.
async fn mint(
    db: &Database,
    name: String,
    role: Role,
    scope: &Scope,
    created_by: &str,
    now: i64,
    expires_ms: Option<i64>,
) -> Result<(String, TokenRow), ApiError> {
    let scope = serde_json::to_string(scope).map_err(|e| ApiError::internal(e.to_string()))?;
    // 256 random bits: a guess is hopeless, and two tokens never collide in
    // practice; a taken id or digest would be refused by the table anyway.
    let secret = format!(
        "dvc_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    );
    let row = TokenRow {
        id: format!("tok_{}", hex::encode(random_bytes::<8>())),
        digest: token_digest(&secret),
        name,
        role: role.name().to_owned(),
        scope,
        created_ms: now,
        created_by: created_by.to_owned(),
        expires_ms,
        revoked_ms: None,
    };
    let stored = row.clone();
    let inserted = db
        .write(move |tx| {
            if !store::insert(tx, &stored)? {
                return Ok(false);
            }
            let detail = json!({ "id": stored.id, "role": stored.role });
            audit::append_audit(tx, &stored.created_by, "token.create", &stored.id, &detail)?;
            events::append_event(tx, "auth.token.created", &stored.id, &detail)?;
            Ok(true)
        })
        .await
        .map_err(storage_failed)?;
    if !inserted {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "token id taken; try again",
        ));
    }
    Ok((secret, row))
}

/// How long a recipient's token lasts after signing in with a code.
pub(crate) const RECIPIENT_TOKEN_MS: i64 = 24 * 3_600_000;

/// Makes a recipient token for a proven `contact` (`tel:…`), stored like
/// every API token (its digest only), expiring after
/// [`RECIPIENT_TOKEN_MS`]: the secret and when it expires.
pub(crate) async fn issue_recipient(
    state: &AppState,
    contact: &str,
) -> Result<(String, i64), ApiError> {
    let (db, clock) = store_of(state)?;
    let now = clock.now_ms();
    let scope = Scope {
        facilities: Vec::new(),
        contacts: vec![contact.to_owned()],
        daily_rates: BTreeMap::new(),
    };
    let expires = now + RECIPIENT_TOKEN_MS;
    let (secret, _) = mint(
        &db,
        "recipient".into(),
        Role::Recipient,
        &scope,
        "otp",
        now,
        Some(expires),
    )
    .await?;
    Ok((secret, expires))
}
