//! `/v1/plugins`: plugin status and reloads (admin only).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;

use crate::error::ApiError;
use crate::AppState;

/// Every plugin with its name, version, world, state, fault count, last error
/// and load time; an event subscriber also with its feed (`events`: its
/// cursor, the log's head, its lag, failures).
pub async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let plugins = with_feeds(&state).await?;
    Ok(Json(serde_json::json!({ "plugins": plugins })))
}

/// Plugin status rows; a subscriber's lag is counted against the log's
/// head as of this request (the feeder's own figure may be a round old).
async fn with_feeds(state: &AppState) -> Result<Vec<serde_json::Value>, ApiError> {
    let mut feeds = state.feeds.as_ref().map(|f| f.all()).unwrap_or_default();
    if !feeds.is_empty() {
        let db = state.db.clone();
        let head = tokio::task::spawn_blocking(move || db.read(divoc_storage::events::head))
            .await
            .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
            .map_err(|e| {
                tracing::error!(error = %e, "reading the event log failed");
                ApiError::internal("reading the event log failed; see the server log")
            })?;
        for f in feeds.values_mut() {
            f.head = f.head.max(head);
            f.lag = f.head - f.cursor;
        }
    }
    Ok(state
        .runtime
        .status()
        .into_iter()
        .map(|s| {
            let feed = feeds.get(&s.name).cloned();
            let mut v = serde_json::to_value(s).unwrap_or_default();
            if let (Some(feed), Some(map)) = (feed, v.as_object_mut()) {
                map.insert(
                    "events".into(),
                    serde_json::to_value(feed).unwrap_or_default(),
                );
            }
            v
        })
        .collect())
}

/// Rescans the plugins directory. Compiling is CPU-bound, so it runs on the
/// blocking pool, away from the request threads.
pub async fn reload(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let runtime = state.runtime.clone();
    let dir = state.plugins_dir.clone();
    let report = tokio::task::spawn_blocking(move || runtime.reload_dir(&dir))
        .await
        .map_err(|e| ApiError::internal(format!("reload failed: {e}")))?;
    Ok(Json(serde_json::json!({
        "report": report,
        "plugins": with_feeds(&state).await?,
    })))
}
