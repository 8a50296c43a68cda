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
    let keyring = state.keyring.clone();
    let rotation = {
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
