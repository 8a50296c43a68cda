//! JSON errors: `{"error": {"code": "...", "message": "...", "field": "..."}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error answered to an HTTP client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `invalid_input`.
    pub code: &'static str,
    /// For people; never echoes personal data.
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// More structure: every bad field, the conflicting certificate, ...
    pub details: Option<serde_json::Value>,
    /// Seconds the client should wait before trying again (`Retry-After`,
    /// RFC 9110 §10.2.3), on a 429 or a 503.
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            details: None,
            retry_after: None,
        }
    }

    /// Tells the client when to try again (`Retry-After`, in seconds; at
    /// least 1).
    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// Adds structure (every bad field, the conflicting certificate…).
    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// 401: no valid bearer token.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    /// A 403 with a message that says what exactly is not allowed.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// The route table refused the caller's role: names the role, the
    /// route and the roles it takes.
    pub fn forbidden_route(role: &str, method: &str, route: &str, allowed: &[&str]) -> ApiError {
        ApiError::forbidden(format!(
            "the `{role}` role may not use {method} {route} (it takes: {})",
            allowed.join(", ")
        ))
    }

    /// A facility token acting for a facility it does not serve.
    pub fn forbidden_facility(field: &str) -> ApiError {
        ApiError::forbidden("this token may not act for that facility (it serves only its own)")
            .with_field(field)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 `invalid_input` naming every bad field: the message lists them,
    /// `field` is the first, `details.fields` all of them.
    pub fn invalid_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> ApiError {
        let fields: Vec<(&str, &str)> = fields.into_iter().collect();
        let message = fields
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        let details: Vec<serde_json::Value> = fields
            .iter()
            .map(|(f, m)| serde_json::json!({"field": f, "message": m}))
            .collect();
        let first = fields.first().map_or("", |(f, _)| *f);
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
            .with_field(first)
            .with_details(serde_json::json!({ "fields": details }))
    }

    /// 400 naming a field.
    pub fn bad_request(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message).with_field(field)
    }

    /// 500; the message must not reveal internals.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503: a dependency is down; nothing was stored, retry later.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 429 `rate_limited`: this client is over its rate; `Retry-After` says
    /// when its next request will be taken.
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .with_retry_after(retry_after)
    }

    /// 503 `overloaded`: the work's queue is full (load shed); nothing was
    /// done, retry after `Retry-After` seconds.
    pub fn overloaded(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
            .with_retry_after(retry_after)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                details: self.details.as_ref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// The query string, parsed into `T`; a malformed or unknown parameter is
/// a 400 in the JSON error shape naming it (axum's own `Query` answers
/// plain text).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                let inner = e.into_inner().to_string();
                // serde names an unknown parameter in its message.
                let field = if field == "." {
                    inner
                        .split('`')
                        .nth(1)
                        .map_or_else(|| "query".to_owned(), str::to_owned)
                } else {
                    field
                };
                ApiError::bad_request(&field, format!("query string: {inner}"))
            })
    }
}

/// The JSON error shape for answers that left the service without it:
/// axum's rejections (path), tower-http's 413 (body too large) and 408
/// (time-out), 405. Installed outermost, so every error a client sees is
/// `{"error": {"code", "message"}}`. A JSON answer passes unchanged.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than this service accepts (server.body-limit-kib)"
                .to_owned(),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "timeout",
            "the request took longer than this service allows (server.request-timeout-ms)"
                .to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take that method".to_owned(),
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such route".to_owned()),
        s if s.is_server_error() => (
            "internal",
            "the service failed; see the server log".to_owned(),
        ),
        _ if text.is_empty() => ("invalid_request", "the request was refused".to_owned()),
        _ => ("invalid_request", text),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    // Keep what the original answer told the client beyond its body
    // (`Allow` on a 405, `Retry-After`, the request id).
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Turns axum's JSON extraction failures into our error shape, naming the
/// field serde reported where it can.
pub fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    use axum::extract::rejection::JsonRejection as R;
    match rejection {
        R::JsonDataError(e) => {
            let text = e.body_text();
            let field = text
                .split_once(": ")
                .map(|(path, _)| {
                    path.trim_start_matches(
                        "Failed to deserialize the JSON body into the target type",
                    )
                    .to_string()
                })
                .filter(|p| !p.is_empty());
            let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", text);
            err.field = field;
            err
        }
        R::JsonSyntaxError(e) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.body_text())
        }
        R::MissingJsonContentType(e) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            e.body_text(),
        ),
        R::BytesRejection(e) => ApiError::new(e.status(), "invalid_body", e.body_text()),
        other => ApiError::new(other.status(), "invalid_body", other.body_text()),
    }
}
