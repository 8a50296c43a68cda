//! Issuer key management over HTTP: rotation in the running server, so the
//! key that signs, the DID document and the JWKS change together (the
//! `divoc keys rotate` CLI refuses to touch a data dir a server holds).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use divoc_crypto::keys::{KeyError, DEFAULT_PURPOSE};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::certificates::principal;
use crate::error::ApiError;
use crate::AppState;

/// Body of `POST /v1/keys/rotate`; empty = the certificate key.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RotateRequest {
    purpose: Option<String>,
    /// `ed25519` (default) or `es256` (the EU DCC / SMART Health Card key,
    /// with a new document-signer certificate).
    algorithm: Option<String>,
}

/// `POST /v1/keys/rotate` (admin): a fresh key signs for the purpose from
/// now on; the key it replaces is retired (it keeps verifying, its private
/// half is erased). Audited as `keys.rotated`.
pub async fn rotate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = principal(&caller)?.name.clone();
    let request: RotateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("purpose", format!("expected {{\"purpose\": \"...\"}}: {e}"))
        })?
    };
    let purpose = request
        .purpose
        .unwrap_or_else(|| DEFAULT_PURPOSE.to_owned());
    match request.algorithm.as_deref() {
        None | Some("ed25519") => {}
        Some("es256") => return rotate_es256(&state, actor, purpose).await,
        Some(other) => {
            return Err(ApiError::bad_request(
                "algorithm",
                format!("`algorithm` is `ed25519` or `es256`, not {other:?}"),
            ))
        }
    }
    let keyring = state.keyring.clone();
    let rotation = if let Some(shared) = state.shared_keys.clone() {
        // Hosts on one database: rotated there, loaded by every host.
        let for_task = purpose.clone();
        tokio::task::spawn_blocking(move || shared.rotate(&for_task))
            .await
            .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
            .map_err(|e| match e {
                divoc_certificates::CertError::Validation(_) => ApiError::bad_request(
                    "purpose",
                    format!("this issuer has no key for purpose {purpose:?}"),
                ),
                e => ApiError::from(e),
            })?
    } else {
        let for_task = purpose.clone();
        tokio::task::spawn_blocking(move || keyring.rotate_reporting(&for_task))
            .await
            .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
            .map_err(|e| match e {
                KeyError::NoActiveKey(_) => ApiError::bad_request(
                    "purpose",
                    format!("this issuer has no key for purpose {purpose:?}"),
                ),
                e => ApiError::internal(format!("key rotation failed: {e}")),
            })?
    };
    let (rotated, retired) = (rotation.new, rotation.retired);
    let detail = json!({
        "purpose": purpose,
        "key_id": rotated.key_id,
        "retired_key_id": retired.key_id,
    });
    let db = state.db.clone();
    let subject = rotated.key_id.clone();
    db.write(move |tx| {
        divoc_storage::audit::append_audit(tx, &actor, "keys.rotated", &subject, &detail)
    })
    .await
    .map_err(|e| {
        tracing::error!("key rotated but its audit record failed: {e}");
        ApiError::internal(format!(
            "the key WAS rotated ({} signs now); only recording it in the audit log \
             failed, so do not rotate again: {e}",
            rotated.key_id
        ))
    })?;
    Ok(Json(json!({
        "key_id": rotated.key_id,
        "purpose": purpose,
        "retired_key_id": retired.key_id,
    }))
    .into_response())
}

/// Rotates the ES256 key of `purpose` (new key, new self-signed
/// document-signer certificate); the old one keeps verifying.
async fn rotate_es256(
    state: &AppState,
    actor: String,
    purpose: String,
) -> Result<Response, ApiError> {
    let Some(ring) = state.es256.clone() else {
        return Err(ApiError::not_found("this service keeps no ES256 keys"));
    };
    if state.shared_keys.is_some() {
        // Not shared through the database (docs/SCALE.md): other hosts
        // on it keep the old key until they get this keys directory.
        tracing::warn!(
            "ES256 key rotated on this host only: copy its keys directory to the other hosts"
        );
    }
    let old = ring.active(&purpose).ok().map(|k| k.kid);
    let for_task = purpose.clone();
    let rotated = tokio::task::spawn_blocking(move || ring.rotate(&for_task))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(|e| match e {
            KeyError::NoActiveKey(_) => ApiError::bad_request(
                "purpose",
                format!("this issuer has no ES256 key for purpose {purpose:?}"),
            ),
            e => ApiError::internal(format!("key rotation failed: {e}")),
        })?;
    let detail = json!({
        "purpose": purpose,
        "algorithm": "es256",
        "key_id": rotated.kid,
        "retired_key_id": old,
    });
    let subject = rotated.kid.clone();
    state
        .db
        .write(move |tx| {
            divoc_storage::audit::append_audit(tx, &actor, "keys.rotated", &subject, &detail)
        })
        .await
        .map_err(|e| {
            ApiError::internal(format!(
                "the key WAS rotated ({} signs now); only recording it in the audit log failed: {e}",
                rotated.kid
            ))
        })?;
    use base64::Engine as _;
    Ok(Json(json!({
        "key_id": rotated.kid,
        "algorithm": "es256",
        "eu_dcc_kid": base64::engine::general_purpose::STANDARD.encode(rotated.dcc_kid()),
        "purpose": purpose,
        "retired_key_id": old,
    }))
    .into_response())
}
