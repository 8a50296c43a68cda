//! The DIVOC HTTP API.
//!
//! axum on hyper/tokio, with tower-http for body-size limits, time-outs,
//! request ids and tracing. Every route is in the route table
//! ([`routes::all`]) with the roles it accepts; errors are JSON objects
//! `{"error": {"code", "message", "field"}}`.
//!
//! The request log records the method, the route template (never the raw
//! path, which can carry a pre-enrolment code), the status and the latency,
//! and never headers: tokens and personal data stay out of logs.

#![deny(missing_docs)]

pub mod admission;
mod appointments;
pub mod auth;
mod certificates;
mod distribution;
mod divoc_compat;
pub mod error;
mod events;
mod feedback;
mod formats;
mod keys;
pub mod lanes;
pub mod metrics;
pub mod oidc;
pub mod openapi;
mod pages;
mod plugins;
mod recipients;
mod rollout;
pub mod routes;
mod stats;
pub mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, head, post, put};
use axum::{Json, Router};
use divoc_crypto::keys::Keyring;
use divoc_runtime::Runtime;
use divoc_storage::Database;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use auth::{Caller, Principal, Role, TokenConfig, TokenTable};
pub use error::ApiError;

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The plugin runtime.
    pub runtime: Runtime,
    /// The database.
    pub db: Database,
    /// The issuer's keys (for `did.json`, `jwks.json` and rotation).
    pub keyring: Keyring,
    /// The same keys shared through the database with the other hosts
    /// (PostgreSQL): rotated there, for every host at once.
    pub shared_keys: Option<divoc_certificates::shared_keys::SharedKeys>,
    /// Bearer tokens and who they are.
    pub tokens: Arc<TokenTable>,
    /// The directory plugins are loaded from (for reloads).
    pub plugins_dir: PathBuf,
    /// The certificate module, when enabled.
    pub certificates: Option<divoc_certificates::CertificateService>,
    /// Printable certificates (templates and fonts, loaded once).
    pub pdf: Option<Arc<divoc_pdf::PdfRenderer>>,
    /// The rollout registry, when enabled.
    pub rollout: Option<divoc_rollout::RolloutService>,
    /// Where each event-subscriber plugin stands, when they are fed.
    pub feeds: Option<divoc_insight::Feeds>,
    /// Turns true when the server begins to shut down (open event streams
    /// end then).
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// The published statistics (rebuilt in the background).
    pub stats: divoc_insight::stats::StatsCache,
    /// The feedback module, when enabled.
    pub feedback: Option<divoc_feedback::FeedbackService>,
    /// What `/metrics` renders, when a recorder is installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The issuer's ES256 keys (EU DCC, SMART Health Cards), published in
    /// `jwks.json` beside the Ed25519 keys.
    pub es256: Option<divoc_crypto::keys::es256::Es256Keyring>,
    /// Other certificate formats, made by certificate-format plugins.
    pub formats: Option<divoc_certificates::formats::Formats>,
    /// Rate limits and the gates of expensive work.
    pub admission: Arc<admission::Admission>,
}

/// HTTP-level limits.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request body; larger is a 413.
    pub body_limit_bytes: usize,
    /// Longest a request may take; longer is a 408.
    pub request_timeout: Duration,
    /// Largest CSV upload (`POST /v1/uploads/{kind}`, streamed, so it
    /// costs no memory).
    pub upload_limit_bytes: usize,
    /// Longest an upload may take.
    pub upload_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            body_limit_bytes: 1 << 20,
            request_timeout: Duration::from_secs(30),
            upload_limit_bytes: 1 << 30,
            upload_timeout: Duration::from_secs(3600),
        }
    }
}

/// The body limit and time-out of a request: the upload route's, or every
/// other route's. (One middleware instead of tower-http's two layers, which
/// apply one limit to every route.)
async fn limits(
    State(http): State<HttpSettings>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Uploads and a country-wide activation are long by nature: a time-out
    // would answer 408 while the work goes on and commits.
    let path = request.uri().path();
    let post = request.method() == axum::http::Method::POST;
    let upload = post && path.starts_with("/v1/uploads/");
    let activation = post && path.starts_with("/v1/programmes/") && path.ends_with("/facilities");
    let limit = if upload {
        http.upload_limit_bytes
    } else {
        http.body_limit_bytes
    };
    let timeout = if upload || activation {
        http.upload_timeout
    } else {
        http.request_timeout
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        // Refused before a byte of the body is read.
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let request =
        request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

/// The five routes of one registry kind under `base`.
fn registry<T: rollout::Scoped>(router: Router<AppState>, base: &str) -> Router<AppState> {
    router
        .route(base, get(rollout::list::<T>).post(rollout::create::<T>))
        .route(
            &format!("{base}/{{code}}"),
            get(rollout::get::<T>)
                .put(rollout::replace::<T>)
                .delete(rollout::delete::<T>),
        )
        .route(
            &format!("{base}/{{code}}/history"),
            get(rollout::history::<T>),
        )
}

/// The whole service as an axum router.
pub fn router(state: AppState, http: &HttpSettings) -> Router {
    let tokens = state.tokens.clone();
    let admission = admission::AdmissionState {
        admission: state.admission.clone(),
        tokens: tokens.clone(),
    };
    let request_id = HeaderName::from_static("x-request-id");
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::serve))
        .route("/verify", get(pages::verify))
        .route("/feedback/{id}", get(pages::feedback))
        .route("/dashboard", get(pages::dashboard))
        .route("/sw.js", get(pages::service_worker))
        .route("/pages/{file}", get(pages::asset))
        .route("/readyz", get(readyz))
        .route("/.well-known/did.json", get(did_json))
        .route("/.well-known/jwks.json", get(jwks_json))
        .route("/.well-known/crl/{file}", get(formats::shc_revocations))
        .route("/v1/formats", get(formats::list))
        .route(
            "/v1/formats/eu-dcc/revocations",
            get(formats::eu_dcc_revocations),
        )
        .route("/v1/whoami", get(whoami))
        .route("/v1/plugins", get(plugins::list))
        .route("/v1/plugins/reload", post(plugins::reload))
        .route("/v1/keys/rotate", post(keys::rotate))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", get(tokens::get).delete(tokens::revoke))
        .route("/v1/certificates", post(certificates::issue))
        .route("/v1/certificates/batch", post(certificates::issue_batch))
        .route("/v1/certificates/import", post(certificates::import))
        .route("/v1/certificates/lookup", post(certificates::lookup))
        .route("/v1/credentials", get(certificates::credential_types))
        .route("/v1/credentials/{type}", post(certificates::issue_typed))
        .route(
            "/v1/certificates/{id}",
            get(certificates::get).put(certificates::correct),
        )
        .route("/v1/certificates/{id}/history", get(certificates::history))
        .route(
            "/v1/certificates/{id}/distribution",
            get(distribution::status),
        )
        .route("/v1/certificates/{id}/{file}", get(certificates::qr))
        .route(
            "/v1/certificates/{id}/formats",
            get(formats::of_certificate),
        )
        .route("/v1/certificates/{id}/formats/{format}", get(formats::get))
        .route(
            "/v1/certificates/{id}/formats/{format}/{file}",
            get(formats::render),
        )
        .route("/v1/certificates/{id}/revoke", post(certificates::revoke))
        .route("/v1/certificates/{id}/suspend", post(certificates::suspend))
        .route(
            "/v1/certificates/{id}/reinstate",
            post(certificates::reinstate),
        )
        .route("/v1/outbox", get(distribution::outbox))
        .route("/v1/events/stream", get(events::stream))
        .route("/v1/stats", get(stats::stats))
        .route("/v1/stats/public", get(stats::public_stats))
        .route("/v1/feedback/form", get(feedback::form))
        .route("/v1/feedback/reports", get(feedback::list))
        .route("/v1/feedback/reports.csv", get(feedback::csv))
        .route("/v1/feedback/reports/{id}", get(feedback::get))
        .route("/v1/certificates/{id}/feedback", post(feedback::file))
        .route("/v1/certificates/{id}/rating", post(feedback::rate))
        .route("/v1/status/{list}", get(certificates::status_list))
        .route("/v1/contexts", get(certificates::contexts))
        .route("/v1/contexts/{name}", get(certificates::context))
        .route("/v1/verify", post(certificates::verify))
        .route("/v1/verify/batch", post(certificates::verify_batch))
        .route("/divoc/api/v1/certify", post(divoc_compat::certify))
        .route("/divoc/api/v1/certificate", put(divoc_compat::correct))
        .route(
            "/divoc/api/v1/certificates/{code}",
            delete(divoc_compat::revoke),
        )
        .route(
            "/divoc/api/v1/certificates/{code}/{file}",
            get(divoc_compat::file),
        )
        .route(
            "/divoc/api/v1/certificate/revoked",
            post(divoc_compat::is_revoked),
        )
        .route(
            "/cert/api/certificate/revoked",
            post(divoc_compat::is_revoked),
        )
        .route("/cert/api/certificate/{code}", head(divoc_compat::exists))
        .route(
            "/cert/api/certificatePDF/{code}",
            get(divoc_compat::certificate_pdf),
        );
    let router = router
        .route("/v1/uploads", get(rollout::uploads))
        .route(
            "/v1/uploads/{id}",
            get(rollout::upload_report).post(rollout::upload),
        )
        .route("/v1/uploads/{id}/errors.csv", get(rollout::upload_errors))
        .route("/v1/programmes/{code}/facilities", post(rollout::activate))
        .route(
            "/v1/programmes/{code}/progress",
            get(appointments::progress),
        )
        .route("/v1/facilities/{code}/slots", get(appointments::slots))
        .route("/v1/facilities/{code}/day", get(appointments::day))
        .route("/v1/appointments", post(appointments::book))
        .route("/v1/appointments/{id}", get(appointments::get))
        .route("/v1/appointments/{id}/cancel", post(appointments::cancel))
        .route(
            "/v1/appointments/{id}/reschedule",
            post(appointments::reschedule),
        )
        .route("/v1/vaccinations", post(appointments::vaccinate))
        .route("/v1/recipients/otp", post(recipients::send_otp))
        .route("/v1/recipients/token", post(recipients::token))
        .route("/v1/recipients/enrolments", post(recipients::enrol))
        .route("/v1/recipients/me", get(recipients::me))
        .route(
            "/v1/facility/sync",
            get(appointments::snapshot).post(appointments::sync),
        );
    let router = registry::<divoc_rollout::Vaccine>(router, "/v1/vaccines");
    let router = registry::<divoc_rollout::Programme>(router, "/v1/programmes");
    let router = registry::<divoc_rollout::Facility>(router, "/v1/facilities");
    let router = registry::<divoc_rollout::Vaccinator>(router, "/v1/vaccinators");
    // Enrolments get their code from the service: POST is `enrol`.
    let router = router
        .route(
            "/v1/enrolments",
            get(rollout::list::<divoc_rollout::Enrolment>).post(rollout::enrol),
        )
        .route(
            "/v1/enrolments/{code}",
            get(rollout::get::<divoc_rollout::Enrolment>)
                .put(rollout::replace::<divoc_rollout::Enrolment>)
                .delete(rollout::delete::<divoc_rollout::Enrolment>),
        )
        .route(
            "/v1/enrolments/{code}/history",
            get(rollout::history::<divoc_rollout::Enrolment>),
        );
    router
        .route_layer(axum::middleware::from_fn_with_state(
            tokens,
            auth::authorize,
        ))
        // Before the role check: a client over its rate costs little.
        .route_layer(axum::middleware::from_fn_with_state(
            admission,
            admission::admit,
        ))
        // Outside the role check: refusals are counted too.
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(|| async { ApiError::not_found("no such route") })
        // `limits` bounds bodies per route; axum's own 2 MB default would
        // cap uploads and a raised `server.body-limit-kib`.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request<_>| {
                            let id = request
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            tracing::info_span!(
                                "request",
                                method = %request.method(),
                                route = tracing::field::Empty,
                                request_id = %id,
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(axum::middleware::from_fn_with_state(http.clone(), limits)),
        )
        // Outermost: every error leaves as JSON, the body-limit and
        // time-out answers of the layers above included.
        .layer(axum::middleware::map_response(error::json_errors))
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready when the database answers and the plugin runtime is up.
async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || db.meta_get("schema-ready"))
        .await
        .map_err(|e| ApiError::unavailable(format!("readiness check failed: {e}")))?
        .map_err(|e| ApiError::unavailable(format!("database not ready: {e}")))?;
    let plugins = state.runtime.status();
    let ready = plugins
        .iter()
        .filter(|p| p.state == divoc_runtime::PluginState::Ready)
        .count();
    Ok(Json(serde_json::json!({
        "status": "ready",
        "plugins": {"ready": ready, "total": plugins.len()},
    })))
}

async fn did_json(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(divoc_crypto::keys::did_document(&state.keyring)),
    )
}

/// The Ed25519 keys (RFC 8037 OKP) and the ES256 keys (kid = RFC 7638
/// thumbprint, as SMART Health Card verifiers fetch them from
/// `<iss>/.well-known/jwks.json`), active and retired.
async fn jwks_json(State(state): State<AppState>) -> impl IntoResponse {
    let mut document = divoc_crypto::keys::jwks(&state.keyring);
    // SMART Health Cards: an issuer revoking by `rid` names its revocation
    // list's version on each key (`crlVersion`, the list's `ctr`), so a
    // verifier knows when its cached list is stale.
    let crl_version = state
        .certificates
        .as_ref()
        .and_then(|c| c.event_head().ok());
    if let (Some(ring), Some(keys)) = (
        &state.es256,
        document
            .get_mut("keys")
            .and_then(serde_json::Value::as_array_mut),
    ) {
        keys.extend(ring.keys().iter().map(|k| {
            let mut jwk = k.jwk();
            if let Some(ctr) = crl_version {
                jwk["crlVersion"] = ctr.into();
            }
            jwk
        }));
    }
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(document),
    )
}

async fn whoami(
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    let principal = caller.0.ok_or_else(ApiError::unauthorized)?;
    Ok(Json(serde_json::json!({
        "name": principal.name,
        "role": principal.role,
        "facilities": principal.facilities,
    })))
}
