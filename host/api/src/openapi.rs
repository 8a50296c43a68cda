//! `GET /openapi.json`: an OpenAPI 3.1 document generated from the code.
//!
//! Its paths are the route table ([`crate::routes::all`]): every route,
//! with the roles it accepts and its path parameters; a test checks the
//! two against each other both ways. Its schemas are derived (`utoipa`'s
//! `ToSchema`) from the types the handlers read and write — the issue
//! request, the verdict, feedback reports and ratings, appointments, the
//! outbox and event-stream entries — and every operation's error answers
//! share the one error shape ([`ErrorBody`]).

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::openapi::ComponentsBuilder;
use utoipa::ToSchema;

use crate::routes::{self, Access};

/// Every error answer: `{"error": {"code", "message", "field"?, "details"?}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code, e.g. `invalid_input`, `not_found`, `conflict`,
    /// `slot_full`, `rate_limited`, `ineligible`, `unauthorized`.
    pub code: String,
    /// For people.
    pub message: String,
    /// The request field at fault, when there is one (`answers/onsetDate`,
    /// `recipient.dob`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// More, per code (every bad field of a validation error, a conflict's
    /// existing id, a rate limit's value and reset time).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

/// What one operation reads and answers, where a schema is known.
struct Doc {
    summary: &'static str,
    request: Option<&'static str>,
    response: Option<&'static str>,
}

const fn doc(
    summary: &'static str,
    request: Option<&'static str>,
    response: Option<&'static str>,
) -> Doc {
    Doc {
        summary,
        request,
        response,
    }
}

/// Summaries and schemas of the operations that have them; the rest are
/// described from their path (registry records share one shape each).
fn docs() -> BTreeMap<(&'static str, &'static str), Doc> {
    let mut m = BTreeMap::new();
    let mut put = |method, path, d| {
        m.insert((method, path), d);
    };
    put("GET", "/healthz", doc("Liveness", None, None));
    put(
        "GET",
        "/readyz",
        doc("Readiness: the database and the plugin runtime", None, None),
    );
    put(
        "GET",
        "/metrics",
        doc("Prometheus metrics (text format)", None, None),
    );
    put("GET", "/openapi.json", doc("This document", None, None));
    put("GET", "/verify", doc("The verifier page", None, None));
    put(
        "GET",
        "/feedback/{id}",
        doc(
            "The side-effect and rating page of a certificate",
            None,
            None,
        ),
    );
    put(
        "GET",
        "/dashboard",
        doc("The monitoring dashboard page", None, None),
    );
    put(
        "POST",
        "/v1/certificates",
        doc(
            "Issue a vaccination certificate",
            Some("IssueRequest"),
            None,
        ),
    );
    put(
        "POST",
        "/v1/certificates/batch",
        doc("Issue up to 1,000 certificates", None, None),
    );
    put(
        "GET",
        "/v1/certificates/{id}",
        doc("The signed W3C credential", None, None),
    );
    put(
        "PUT",
        "/v1/certificates/{id}",
        doc(
            "Correct a certificate (a new version)",
            Some("IssueRequest"),
            None,
        ),
    );
    put(
        "POST",
        "/v1/verify",
        doc(
            "Verify a credential, QR text or QR image",
            None,
            Some("Verdict"),
        ),
    );
    put(
        "POST",
        "/v1/verify/batch",
        doc("Verify up to 200 credentials or QR texts", None, None),
    );
    put(
        "GET",
        "/v1/outbox",
        doc(
            "Messages waiting or sent, newest first (contacts masked)",
            None,
            None,
        ),
    );
    put(
        "GET",
        "/v1/events/stream",
        doc(
            "The event log as Server-Sent Events (resumable)",
            None,
            Some("StreamEvent"),
        ),
    );
    put(
        "GET",
        "/v1/stats",
        doc("Live statistics, small cells included", None, None),
    );
    put(
        "GET",
        "/v1/stats/public",
        doc(
            "Live statistics without cells under the minimum count",
            None,
            None,
        ),
    );
    put(
        "GET",
        "/v1/feedback/form",
        doc(
            "The side-effect form (JSON Schema with labels) in a language",
            None,
            None,
        ),
    );
    put(
        "POST",
        "/v1/certificates/{id}/feedback",
        doc("Report side effects of a vaccination", None, Some("Report")),
    );
    put(
        "POST",
        "/v1/certificates/{id}/rating",
        doc(
            "Rate the facility and the vaccinator",
            Some("NewRating"),
            Some("Rating"),
        ),
    );
    put(
        "GET",
        "/v1/feedback/reports",
        doc(
            "Side-effect reports, filtered (monitoring)",
            None,
            Some("ReportPage"),
        ),
    );
    put(
        "GET",
        "/v1/feedback/reports.csv",
        doc("Side-effect reports as CSV", None, None),
    );
    put(
        "GET",
        "/v1/feedback/reports/{id}",
        doc("One side-effect report", None, Some("Report")),
    );
    put(
        "POST",
        "/v1/appointments",
        doc("Book a slot", Some("Booking"), Some("Appointment")),
    );
    put(
        "GET",
        "/v1/appointments/{id}",
        doc("One appointment", None, Some("Appointment")),
    );
    put(
        "POST",
        "/v1/appointments/{id}/reschedule",
        doc("Move a booking", Some("Reschedule"), Some("Appointment")),
    );
    put(
        "POST",
        "/v1/appointments/{id}/cancel",
        doc("Cancel a booking", None, Some("Appointment")),
    );
    put(
        "GET",
        "/v1/facilities/{code}/slots",
        doc("Bookable slots with seats left", None, None),
    );
    m
}

fn tag(path: &str) -> String {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", what, ..] => (*what).to_owned(),
        ["divoc", ..] | ["cert", ..] => "divoc-compat".to_owned(),
        [first, ..] => first.trim_end_matches(".json").to_owned(),
        [] => "service".to_owned(),
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn operation(method: &str, path: &str, access: Access, d: Option<&Doc>) -> Value {
    let params: Vec<Value> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    let summary = d
        .map(|d| d.summary.to_owned())
        .unwrap_or_else(|| format!("{method} {path}"));
    let success = match d.and_then(|d| d.response) {
        Some(s) => {
            json!({"description": "Done", "content": {"application/json": {"schema": schema_ref(s)}}})
        }
        None => json!({"description": "Done"}),
    };
    let error = json!({"description": "Refused; nothing was stored",
                       "content": {"application/json": {"schema": schema_ref("ErrorBody")}}});
    let mut op = Map::new();
    op.insert(
        "operationId".into(),
        json!(format!(
            "{}{}",
            method.to_ascii_lowercase(),
            path.replace(['/', '{', '}', '.', '-'], "_")
        )),
    );
    op.insert("summary".into(), json!(summary));
    op.insert("tags".into(), json!([tag(path)]));
    if !params.is_empty() {
        op.insert("parameters".into(), json!(params));
    }
    if matches!(method, "POST" | "PUT") {
        let schema = d
            .and_then(|d| d.request)
            .map(schema_ref)
            .unwrap_or_else(|| json!({}));
        op.insert(
            "requestBody".into(),
            json!({"content": {"application/json": {"schema": schema}}}),
        );
    }
    let mut responses = Map::new();
    responses.insert("2XX".into(), success);
    // Routes that take no token are rate-limited per client
    // (crate::admission): the 429 says when to come back.
    if matches!(access, Access::Public | Access::RolesOrProof(_))
        && path != "/healthz"
        && path != "/readyz"
    {
        responses.insert(
            "429".into(),
            json!({
                "description": "This client is over its rate (`rate_limited`); nothing was done",
                "headers": {"Retry-After": {
                    "description": "Seconds until a request from this client is taken again",
                    "schema": {"type": "integer", "minimum": 1}
                }},
                "content": {"application/json": {"schema": schema_ref("ErrorBody")}}
            }),
        );
    }
    responses.insert("4XX".into(), error.clone());
    responses.insert("5XX".into(), error);
    op.insert("responses".into(), Value::Object(responses));
    match access {
        Access::Public => {
            op.insert("security".into(), json!([]));
        }
        Access::Roles(roles) => {
            op.insert("security".into(), json!([{"bearer": []}]));
            op.insert(
                "x-divoc-roles".into(),
                json!(roles.iter().map(|r| r.name()).collect::<Vec<_>>()),
            );
        }
        Access::RolesOrProof(roles) => {
            op.insert("security".into(), json!([{"bearer": []}, {}]));
            op.insert(
                "x-divoc-roles".into(),
                json!(roles.iter().map(|r| r.name()).collect::<Vec<_>>()),
            );
        }
    }
    Value::Object(op)
}

/// The document.
pub fn document() -> Value {
    let components = ComponentsBuilder::new()
        .schema_from::<ErrorBody>()
        .schema_from::<ErrorDetail>()
        .schema_from::<divoc_certificates::IssueRequest>()
        .schema_from::<divoc_certificates::request::Recipient>()
        .schema_from::<divoc_certificates::request::Identity>()
        .schema_from::<divoc_certificates::request::Address>()
        .schema_from::<divoc_certificates::request::Vaccination>()
        .schema_from::<divoc_certificates::request::Facility>()
        .schema_from::<divoc_certificates::request::Vaccinator>()
        .schema_from::<divoc_certificates::request::Payment>()
        .schema_from::<divoc_certificates::Verdict>()
        .schema_from::<divoc_certificates::verify::Checks>()
        .schema_from::<divoc_certificates::verify::SignatureCheck>()
        .schema_from::<divoc_certificates::verify::StatusVerdict>()
        .schema_from::<divoc_certificates::verify::ClaimsSummary>()
        .schema_from::<divoc_certificates::distribution::OutboxEntry>()
        .schema_from::<divoc_feedback::Report>()
        .schema_from::<divoc_feedback::ReportPage>()
        .schema_from::<divoc_feedback::Rating>()
        .schema_from::<divoc_feedback::NewRating>()
        .schema_from::<divoc_insight::FeedStatus>()
        .schema_from::<divoc_insight::stream::StreamEvent>()
        .schema_from::<divoc_rollout::appointments::Appointment>()
        .schema_from::<divoc_rollout::appointments::Booking>()
        .schema_from::<divoc_rollout::appointments::Reschedule>()
        .schema_from::<divoc_rollout::appointments::Slot>()
        .security_scheme(
            "bearer",
            utoipa::openapi::security::SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (the admin token, one made with POST /v1/tokens, a \
                         recipient's sign-in token) or an OpenID Connect JWT",
                    ))
                    .build(),
            ),
        )
        .build();
    let docs = docs();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for r in routes::all() {
        let op = operation(r.method, r.path, r.access, docs.get(&(r.method, r.path)));
        paths
            .entry(r.path)
            .or_default()
            .insert(r.method.to_ascii_lowercase(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "DIVOC-rs",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Vaccination certificates, rollout and feedback. Roles per operation are in \
                            `x-divoc-roles`; every error has the ErrorBody shape.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": serde_json::to_value(components).unwrap_or_default(),
    })
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    Json(document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_in_the_document_and_nothing_else() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                documented += 1;
                let m = method.to_ascii_uppercase();
                assert!(
                    routes::all().any(|r| r.path == path && r.method == m),
                    "{m} {path} is documented but not routed"
                );
                assert!(op["summary"].is_string());
                assert_eq!(
                    op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody"
                );
            }
        }
        assert_eq!(documented, routes::all().count());
        for r in routes::all() {
            let op = &doc["paths"][r.path][r.method.to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is routed but not documented",
                r.method,
                r.path
            );
            let params = r.path.matches('{').count();
            assert_eq!(
                op["parameters"].as_array().map_or(0, Vec::len),
                params,
                "{} {}",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 100);
        for r in all {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} does not resolve"
            );
        }
        // The schemas are the code's: the issue request's fields are there.
        let issue = &doc["components"]["schemas"]["IssueRequest"]["properties"];
        assert!(issue["recipient"].is_object() && issue["vaccination"].is_object());
        let verdict = &doc["components"]["schemas"]["Verdict"]["properties"];
        assert!(verdict["valid"].is_object() && verdict["checks"].is_object());
    }
}
