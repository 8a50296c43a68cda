//! `GET /v1/certificates/{id}/distribution`: where the delivery of a
//! certificate stands, one entry per channel.
//!
//! The entries are the certificate's outbox rows, which the distribution
//! worker (in the `divoc` binary) works through. Read access is that of the
//! certificate itself: a facility token sees only its own certificates.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use divoc_storage::certificates::{self as store, UNROUTED};
use divoc_storage::{OutboxItem, OutboxStatus};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::certificates::readable;
use crate::error::ApiError;
use crate::AppState;

fn entry(item: &OutboxItem) -> Value {
    let pending = item.status == OutboxStatus::Pending;
    json!({
        "id": item.id,
        // A row queued while no channel was configured has none yet.
        "channel": (item.target != UNROUTED).then_some(item.target.as_str()),
        "status": item.status.as_str(),
        "attempts": item.attempts,
        "last_error": item.last_error,
        // For a pending row being delivered right now this is the end of
        // its lease, i.e. when it is retried if the attempt never reports.
        "next_attempt_at_ms": pending.then_some(item.next_attempt_at_ms),
        "created_at_ms": item.created_at_ms,
        "updated_at_ms": item.updated_at_ms,
    })
}

/// `GET /v1/certificates/{id}/distribution`.
pub async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // 404 for unknown ids and for other facilities' certificates alike.
    let record = readable(&state, &caller, id).await?;
    let db = state.db.clone();
    let certificate_id = record.id.clone();
    let items =
        tokio::task::spawn_blocking(move || db.read(|r| store::distribution(r, &certificate_id)))
            .await
            .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
            .map_err(|e| {
                tracing::error!(error = %e, "reading the distribution status failed");
                ApiError::internal("reading the distribution status failed; see the server log")
            })?;
    Ok(Json(json!({
        "certificate_id": record.id,
        "deliveries": items.iter().map(entry).collect::<Vec<_>>(),
    }))
    .into_response())
}
