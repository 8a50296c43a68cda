//! The pages people use, served by the host from files embedded in the
//! binary (`host/api/pages/`; plain HTML, CSS and ES modules, no build
//! step): `/verify` (a verifier for phones that keeps working offline),
//! `/feedback/{certificateId}` (where a credential's `feedbackUrl` lands)
//! and `/dashboard` (for the monitoring role; the data behind it needs a
//! token, the page itself does not).

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// What the pages may load: only this origin, no inline script or style.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "divoc.js",
        "text/javascript; charset=utf-8",
        include_str!("../pages/divoc.js"),
    ),
    (
        "verify.js",
        "text/javascript; charset=utf-8",
        include_str!("../pages/verify.js"),
    ),
    (
        "feedback.js",
        "text/javascript; charset=utf-8",
        include_str!("../pages/feedback.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../pages/dashboard.js"),
    ),
    (
        "pages.css",
        "text/css; charset=utf-8",
        include_str!("../pages/pages.css"),
    ),
    (
        "manifest.json",
        "application/manifest+json",
        include_str!("../pages/manifest.json"),
    ),
];

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = r.headers_mut();
    // Revalidated each time: a new binary's pages are seen at once (the
    // verifier's service worker keeps its own copy for offline use).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

const HTML: &str = "text/html; charset=utf-8";

/// `GET /verify`.
pub async fn verify() -> Response {
    page(HTML, include_str!("../pages/verify.html"))
}

/// `GET /feedback/{certificateId}`.
pub async fn feedback(Path(_id): Path<String>) -> Response {
    page(HTML, include_str!("../pages/feedback.html"))
}

/// `GET /dashboard`.
pub async fn dashboard() -> Response {
    page(HTML, include_str!("../pages/dashboard.html"))
}

/// `GET /sw.js`: the verifier's service worker, at the root so that its
/// scope covers `/verify`.
pub async fn service_worker() -> Response {
    page(
        "text/javascript; charset=utf-8",
        include_str!("../pages/sw.js"),
    )
}

/// `GET /pages/{file}`: the pages' scripts, style sheet and manifest.
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, ty, body)| page(ty, body))
        .ok_or_else(|| ApiError::not_found(format!("no page asset {file}")))
}
