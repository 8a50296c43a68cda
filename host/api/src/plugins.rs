//! `/v1/plugins`: plugin status and reloads (admin only).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;

use crate::error::ApiError;
use crate::AppState;

/// Every plugin with its name, version, world, state, fault count, last error
/// and load time.
pub async fn list(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "plugins": state.runtime.status() }))
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
        "plugins": state.runtime.status(),
    })))
}
