//! The feedback module's routes: the report form, filing a side-effect
//! report or a rating about a certificate, and the monitoring list.
//!
//! A report or rating comes from the certificate's recipient (their
//! recipient token, or — without any token — the certificate's QR text as
//! proof of holding it), from the facility that vaccinated (its token), or
//! from an admin. Anyone else is refused; a certificate the caller may not
//! see is a 404, as for reads.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use divoc_certificates::Certificate;
use divoc_feedback::{FeedbackError, FeedbackService, NewRating};
use divoc_storage::feedback::ReportFilter;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiQuery};
use crate::rollout::parse_body;
use crate::AppState;

impl From<FeedbackError> for ApiError {
    fn from(e: FeedbackError) -> ApiError {
        match e {
            FeedbackError::Validation(errors) => ApiError::invalid_fields(
                errors
                    .iter()
                    .map(|f| (f.field.as_str(), f.message.as_str())),
            ),
            FeedbackError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            FeedbackError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            FeedbackError::Forbidden(m) => ApiError::forbidden(m),
            FeedbackError::Certificate(e) => ApiError::from(e),
            other => {
                tracing::error!(error = %other, "feedback service failed");
                ApiError::internal("the feedback service failed; see the server log")
            }
        }
    }
}

fn service(state: &AppState) -> Result<FeedbackService, ApiError> {
    state
        .feedback
        .clone()
        .ok_or_else(|| ApiError::unavailable("the feedback module is not enabled"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FeedbackError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(ApiError::from)
}

/// `GET /v1/feedback/form` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormQuery {
    lang: Option<String>,
}

/// `GET /v1/feedback/form[?lang=hi]`: the report form (a JSON Schema with
/// titles and choice labels) in the language asked for, else the first of
/// `Accept-Language` the form has, else English. Public.
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FormQuery>,
) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let wanted: Vec<&str> = q
        .lang
        .as_deref()
        .into_iter()
        .chain(accept.split(',').map(|t| t.split(';').next().unwrap_or(t)))
        .collect();
    let form = svc.form();
    let lang = form.language(wanted);
    Ok(Json(json!({
        "lang": lang,
        "languages": form.languages(),
        "schema": form.localized(lang),
    }))
    .into_response())
}

/// Who files, and the certificate, once the caller is shown to be one who
/// may: the recipient (token or QR), the vaccinating facility, an admin.
async fn filer(
    state: &AppState,
    caller: &Caller,
    id: String,
    qr: Option<&str>,
) -> Result<(Certificate, &'static str), ApiError> {
    let svc = service(state)?;
    match &caller.0 {
        Some(p) => {
            let by = match p.role {
                Role::Recipient => "recipient",
                Role::Facility => "facility",
                Role::Admin => "admin",
                _ => return Err(ApiError::forbidden(
                    "side effects and ratings come from the recipient, the facility or an admin",
                )),
            };
            let record = crate::certificates::readable(state, caller, id).await?;
            Ok((record, by))
        }
        None => {
            let Some(qr) = qr else {
                return Err(ApiError::unauthorized());
            };
            let qr = qr.to_owned();
            let (record, holds) = blocking(move || {
                let record = svc.certificate(&id)?;
                let holds = svc.holds(&record, &qr);
                Ok((record, holds))
            })
            .await?;
            if !holds {
                return Err(
                    ApiError::forbidden("this QR is not the certificate's").with_field("qr")
                );
            }
            Ok((record, "holder"))
        }
    }
}

/// `POST /v1/certificates/{id}/feedback` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    answers: Value,
    #[serde(default)]
    qr: Option<String>,
}

/// `POST /v1/certificates/{id}/feedback` `{"answers": {…}, "qr"?}`: files
/// a side-effect report (201).
pub async fn file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: ReportBody = parse_body(&body)?;
    let (record, by) = filer(&state, &caller, id, b.qr.as_deref()).await?;
    let svc = service(&state)?;
    let report = blocking(move || svc.file(&record, b.answers, by)).await?;
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

/// `POST /v1/certificates/{id}/rating` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingBody {
    facility: i64,
    #[serde(default)]
    vaccinator: Option<i64>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    qr: Option<String>,
}

/// `POST /v1/certificates/{id}/rating` `{"facility": 1-5, "vaccinator"?,
/// "comment"?, "qr"?}`: rates the facility and the vaccinator, once per
/// certificate (201; 409 after).
pub async fn rate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: RatingBody = parse_body(&body)?;
    let (record, _) = filer(&state, &caller, id, b.qr.as_deref()).await?;
    let svc = service(&state)?;
    let rating = NewRating {
        facility: b.facility,
        vaccinator: b.vaccinator,
        comment: b.comment,
    };
    let rated = blocking(move || svc.rate(&record, rating)).await?;
    Ok((StatusCode::CREATED, Json(rated)).into_response())
}

/// `GET /v1/feedback/reports` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsQuery {
    programme: Option<String>,
    vaccine: Option<String>,
    batch: Option<String>,
    facility: Option<String>,
    district: Option<String>,
    severity: Option<String>,
    /// `YYYY-MM-DD` (deployment's time zone), inclusive.
    from: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    to: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

fn filter(state: &AppState, q: ReportsQuery) -> Result<(ReportFilter, usize), ApiError> {
    let zone = state
        .certificates
        .as_ref()
        .map(|c| c.zone().clone())
        .unwrap_or_default();
    let day = |field: &str, v: Option<String>, add: i64| -> Result<Option<i64>, ApiError> {
        v.map(|s| {
            divoc_time::parse_date(&s)
                .and_then(|d| d.add_days(add))
                .map(|d| zone.start_of_day_ms(d))
                .ok_or_else(|| ApiError::bad_request(field, "must be a date YYYY-MM-DD"))
        })
        .transpose()
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit", "must be 1-1000"));
    }
    Ok((
        ReportFilter {
            from_ms: day("from", q.from, 0)?,
            to_ms: day("to", q.to, 1)?,
            programme: q.programme,
            vaccine: q.vaccine,
            batch: q.batch,
            facility: q.facility,
            district: q.district,
            severity: q.severity,
            after: q.after,
        },
        limit,
    ))
}

/// `GET /v1/feedback/reports[?programme&vaccine&batch&facility&district&severity&from&to&after&limit]`:
/// reports oldest first (monitoring).
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReportsQuery>,
) -> Result<Response, ApiError> {
    let (f, limit) = filter(&state, q)?;
    let svc = service(&state)?;
    let page = blocking(move || svc.list(&f, limit)).await?;
    Ok(Json(page).into_response())
}

/// `GET /v1/feedback/reports.csv[?filters]`: every matching report as CSV.
pub async fn csv(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReportsQuery>,
) -> Result<Response, ApiError> {
    let (f, _) = filter(&state, ReportsQuery { limit: None, ..q })?;
    let svc = service(&state)?;
    let bytes = blocking(move || svc.csv(&f)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"aefi-reports.csv\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /v1/feedback/reports/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let report = blocking(move || svc.report(&id)).await?;
    Ok(Json(report).into_response())
}
