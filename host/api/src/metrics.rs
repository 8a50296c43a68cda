//! `GET /metrics`: the service in Prometheus' text format, through the
//! `metrics` facade and its Prometheus exporter.
//!
//! Recorded as they happen: requests per route template, method and status
//! (`divoc_http_requests_total`) and their latency
//! (`divoc_http_request_duration_seconds`), plugin call durations
//! (`divoc_plugin_call_duration_seconds`, in the runtime). Read when
//! scraped: certificates issued, corrected and revoked (the live counters),
//! verifications by verdict, plugin calls, faults and disabled state, the
//! storage writer's queue and group sizes, the outbox backlog and each
//! event subscriber's lag.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;
use crate::AppState;

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide recorder and returns the handle `/metrics`
/// renders from. Once per process (the binary's `serve`).
pub fn install() -> Result<PrometheusHandle, String> {
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
    Ok(handle)
}

/// Route middleware: counts each request and times it, by the route's
/// template (never the raw path: ids would make a series per certificate).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "divoc_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status,
    )
    .increment(1);
    metrics::histogram!(
        "divoc_http_request_duration_seconds",
        "method" => method,
        "route" => route,
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Counts a verification verdict (`valid`, `revoked`, `unknown`, …).
pub fn verified(verdict: &'static str) {
    metrics::counter!("divoc_certificates_verified_total", "verdict" => verdict).increment(1);
}

fn gauge(name: &'static str, value: f64) {
    metrics::gauge!(name).set(value);
}

/// Reads what is kept elsewhere (counters, plugin health, queues) into
/// gauges, then renders everything.
pub async fn render(State(state): State<AppState>) -> Result<Response, ApiError> {
    let Some(handle) = state.metrics.clone() else {
        return Err(ApiError::unavailable(
            "metrics are not enabled in this process",
        ));
    };
    let db = state.db.clone();
    let read = tokio::task::spawn_blocking(move || {
        let counts = db.read(|r| divoc_storage::stats::counts(r, "certificates."))?;
        let outbox = db.outbox_counts()?;
        Ok::<_, divoc_storage::StorageError>((counts, outbox, db.stats()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    .map_err(|e| {
        tracing::error!(error = %e, "reading metrics failed");
        ApiError::internal("reading metrics failed; see the server log")
    })?;
    let (counts, outbox, writer) = read;
    for c in counts.iter().filter(|c| c.dimension == "total") {
        let what = c.metric.trim_start_matches("certificates.").to_owned();
        metrics::gauge!("divoc_certificates", "event" => what).set(c.n as f64);
    }
    gauge("divoc_outbox_pending", outbox.pending as f64);
    gauge("divoc_outbox_failed", outbox.failed as f64);
    gauge("divoc_outbox_done", outbox.done as f64);
    gauge("divoc_storage_writes_queued", writer.queued as f64);
    gauge("divoc_storage_writes_total", writer.writes as f64);
    gauge("divoc_storage_commits_total", writer.commits as f64);
    gauge("divoc_storage_largest_group", writer.largest_group as f64);
    if writer.commits > 0 {
        gauge(
            "divoc_storage_mean_group_size",
            writer.writes as f64 / writer.commits as f64,
        );
    }
    for p in state.runtime.status() {
        let name = p.name.clone();
        metrics::gauge!("divoc_plugin_calls", "plugin" => name.clone()).set(p.calls as f64);
        metrics::gauge!("divoc_plugin_faults", "plugin" => name.clone()).set(p.faults as f64);
        let disabled = matches!(p.state, divoc_runtime::PluginState::Disabled);
        metrics::gauge!("divoc_plugin_disabled", "plugin" => name).set(if disabled {
            1.0
        } else {
            0.0
        });
    }
    if let Some(feeds) = &state.feeds {
        for (name, f) in feeds.all() {
            metrics::gauge!("divoc_event_subscriber_lag", "plugin" => name).set(f.lag as f64);
        }
    }
    state.admission.publish();
    handle.run_upkeep();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}
