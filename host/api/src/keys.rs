//! Issuer key management over HTTP: rotation in the running server, so the
//! key that signs, the DID document and the JWKS change together (the
//! `divoc keys rotate` CLI refuses to touch a data dir a server holds).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use divoc_certificates::{shared_keys, CertError};
use divoc_crypto::keys::DEFAULT_PURPOSE;
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
    let (keyring, shared) = (state.keyring.clone(), state.shared_keys.clone());
    let for_task = purpose.clone();
    let rotation = tokio::task::spawn_blocking(move || {
        shared_keys::rotate_ed25519(shared.as_ref(), &keyring, &for_task)
    })
    .await
    .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    .map_err(rotation_error)?;
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
/// document-signer certificate), on every host when hosts share one
/// database; the old one keeps verifying.
async fn rotate_es256(
    state: &AppState,
    actor: String,
    purpose: String,
) -> Result<Response, ApiError> {
    let Some(ring) = state.es256.clone() else {
        return Err(ApiError::not_found("this service keeps no ES256 keys"));
    };
    let shared = state.shared_keys.clone();
    let for_task = purpose.clone();
    let rotation = tokio::task::spawn_blocking(move || {
        shared_keys::rotate_es256(shared.as_ref(), &ring, &for_task)
    })
    .await
    .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    .map_err(rotation_error)?;
    let (rotated, old) = (rotation.new, rotation.retired.kid);
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

/// An unknown purpose is the request's fault (400 naming `purpose`); the
/// rest is the service's.
fn rotation_error(e: CertError) -> ApiError {
    match e {
        CertError::Validation(errors) => {
            let message = errors
                .first()
                .map(|f| f.message.clone())
                .unwrap_or_else(|| "unknown purpose".into());
            ApiError::bad_request("purpose", message)
        }
        e => ApiError::from(e),
    }
}
