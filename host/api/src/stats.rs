//! `GET /v1/stats` and `/v1/stats/public`: the live statistics, answered
//! from the background-refreshed documents
//! ([`divoc_insight::stats::StatsCache`]).

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

async fn stats_doc(state: &AppState, public: bool) -> Result<Response, ApiError> {
    let cache = state.stats.clone();
    let bytes = tokio::task::spawn_blocking(move || cache.get(public))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(|e| {
            tracing::error!(error = %e, "reading the statistics failed");
            ApiError::internal("reading the statistics failed; see the server log")
        })?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes.as_ref().clone(),
    )
        .into_response())
}

/// `GET /v1/stats`: every counter, small cells included.
pub async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    stats_doc(&state, false).await
}

/// `GET /v1/stats/public`: the counters anyone may see; cells under
/// `[stats] public-min-count` are left out.
pub async fn public_stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    stats_doc(&state, true).await
}
