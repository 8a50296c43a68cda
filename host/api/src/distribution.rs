//! `GET /v1/certificates/{id}/distribution`: where the delivery of a
//! certificate stands, one entry per channel; `GET /v1/outbox`: every
//! message waiting or sent (certificates, sign-in codes, reminders, alerts),
//! for operators.
//!
//! The entries are the certificate's outbox rows, which the distribution
//! worker (in the `divoc` binary) works through. Read access is that of the
//! certificate itself: a facility token sees only its own certificates.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use divoc_certificates::distribution::outbox_page;
use divoc_storage::certificates::{self as store, UNROUTED};
use divoc_storage::outbox::OutboxQuery;
use divoc_storage::{OutboxItem, OutboxStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::certificates::readable;
use crate::error::{ApiError, ApiQuery};
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

/// `GET /v1/outbox` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxParams {
    status: Option<String>,
    template: Option<String>,
    kind: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

/// `GET /v1/outbox[?status=pending|done|failed][&template=][&kind=certificate|notice][&before=ID][&limit=N]`:
/// messages newest first, contacts masked. `nextCursor` goes in `before`.
pub async fn outbox(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<OutboxParams>,
) -> Result<Response, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some("pending") => Some(OutboxStatus::Pending),
        Some("done") => Some(OutboxStatus::Done),
        Some("failed") => Some(OutboxStatus::Failed),
        Some(_) => {
            return Err(ApiError::bad_request(
                "status",
                "must be pending, done or failed",
            ))
        }
    };
    let kind = match q.kind.as_deref() {
        None => None,
        Some("certificate") => Some(store::DISTRIBUTE.to_owned()),
        Some("notice") => Some(divoc_storage::outbox::NOTIFY.to_owned()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "kind",
                "must be certificate or notice",
            ))
        }
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit", "must be 1-500"));
    }
    let query = OutboxQuery {
        status,
        kind,
        template: q.template,
        before: q.before,
    };
    let db = state.db.clone();
    let items = tokio::task::spawn_blocking(move || outbox_page(&db, &query, limit))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(|e| {
            tracing::error!(error = %e, "reading the outbox failed");
            ApiError::internal("reading the outbox failed; see the server log")
        })?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|i| i.id.to_string()))
        .flatten();
    Ok(Json(json!({ "items": items, "nextCursor": next })).into_response())
}
