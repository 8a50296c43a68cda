//! DIVOC's own routes, with DIVOC's payloads, so an existing integrator only
//! changes the base URL. `POST /divoc/api/v1/certify` lives beside the
//! native issue routes (it shares their batch path); the rest are here:
//!
//! - `PUT /divoc/api/v1/certificate` — corrections (an array of `certify`
//!   items; the item's program, pre-enrolment code and dose name the
//!   certificate to correct);
//! - `DELETE /divoc/api/v1/certificates/{code}?doses=1,2` — revoke;
//! - `POST /divoc/api/v1/certificate/revoked` (and DIVOC verifier's
//!   `/cert/api/certificate/revoked`) — 200 when the presented certificate
//!   is revoked, 404 when not;
//! - `HEAD /cert/api/certificate/{code}` — does the code have a
//!   certificate;
//! - `GET /divoc/api/v1/certificates/{code}/{file}` — QR files of a dose.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use divoc_certificates::legacy::CertifyRequest;
use divoc_certificates::{CertError, IssueRequest};
use divoc_storage::certificates::CertificateRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Caller, Principal};
use crate::certificates::{
    batch_items, blocking, default_facility, error_json, facility_allows, legacy_names, may_read,
    parse_json, principal, render_pdf, render_qr, service, FacilityQuery, RenderQuery,
    DIVOC_DEFAULT_PROGRAM,
};
use crate::error::ApiError;
use crate::AppState;

/// Longest pre-enrolment code accepted in a path (matches validation).
const MAX_CODE: usize = 64;

fn check_code(code: &str) -> Result<(), ApiError> {
    if code.is_empty() || code.len() > MAX_CODE || code.chars().any(char::is_whitespace) {
        return Err(ApiError::bad_request(
            "preEnrollmentCode",
            "must be 1-64 characters without spaces",
        ));
    }
    Ok(())
}

/// `PUT /divoc/api/v1/certificate`: corrections, answered per item like
/// `certify` (200 with results in DIVOC's field names).
pub async fn correct(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<FacilityQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let facility = default_facility(&p, query.facility);
    let items = batch_items(&body)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let code = item
            .get("preEnrollmentCode")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let parsed = CertifyRequest::from_json(item)
            .and_then(|r| r.into_issue_request(DIVOC_DEFAULT_PROGRAM))
            .and_then(|r| {
                r.validate().map_err(CertError::Validation)?;
                Ok(r)
            })
            .map_err(|e| ApiError::from(legacy_names(e)));
        let parsed = parsed.map(|mut req| {
            req.facility.id.clone_from(&facility);
            req
        });
        let result = match parsed {
            Err(e) => Err(e),
            Ok(req) if !facility_allows(&p, req.facility.id.as_deref()) => {
                Err(ApiError::forbidden("facility"))
            }
            Ok(req) => correct_visible(&state, &caller, &p, req).await,
        };
        out.push(match result {
            Ok(issued) => json!({
                "preEnrollmentCode": code,
                "certificateId": issued.id,
                "status": "corrected",
            }),
            Err(e) => {
                let mut v = error_json(&e);
                v["preEnrollmentCode"] = json!(code);
                v
            }
        });
    }
    Ok(Json(out).into_response())
}

/// Corrects the dose `req` names if the caller may read its certificate: a
/// facility corrects only what it issued.
async fn correct_visible(
    state: &AppState,
    caller: &Caller,
    p: &Principal,
    mut req: IssueRequest,
) -> Result<divoc_certificates::Issued, ApiError> {
    let visible = visible_by_code(state, caller, req.pre_enrollment_code.clone()).await?;
    let current = visible
        .iter()
        .find(|r| r.program == req.vaccination.program && r.dose == req.vaccination.dose)
        .ok_or_else(|| {
            ApiError::not_found("no certificate for that pre-enrolment code and dose")
        })?;
    // DIVOC's payload has no facility id: the correction keeps the one
    // the certificate was issued for (a token serving several facilities
    // cannot move it to another with `?facility=`).
    req.facility.id.clone_from(&current.facility_id);
    let (svc, actor) = (service(state)?, p.name.clone());
    blocking(move || svc.correct_dose(&req, &actor)).await
}

/// Query of the revoke route.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RevokeQuery {
    /// Comma-separated dose numbers; all doses when absent.
    doses: Option<String>,
    /// Why; DIVOC sent none, so there is a default.
    reason: Option<String>,
}

fn parse_doses(doses: Option<&str>) -> Result<Option<Vec<u32>>, ApiError> {
    let Some(doses) = doses.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    doses
        .split(',')
        .map(|d| match d.trim().parse::<u32>() {
            Ok(n) if (1..=20).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "doses",
                "`doses` is a comma-separated list of dose numbers (1-20)",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `DELETE /divoc/api/v1/certificates/{code}?doses=1,2`: revokes the
/// current certificates of those doses (all doses without `doses`).
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
    Query(query): Query<RevokeQuery>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    check_code(&code)?;
    let doses = parse_doses(query.doses.as_deref())?;
    let reason = query
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "revoked by the issuer".to_owned());
    let svc = service(&state)?;
    let code2 = code.clone();
    let changed =
        blocking(move || svc.revoke_doses(&code2, doses.as_deref(), &reason, &p.name)).await?;
    let revoked: Vec<Value> = changed
        .iter()
        .map(|r| json!({"certificateId": r.id, "dose": r.dose}))
        .collect();
    Ok(Json(json!({"preEnrollmentCode": code, "revoked": revoked})).into_response())
}

/// `POST /divoc/api/v1/certificate/revoked`: the body is a certificate
/// (the credential JSON, as DIVOC's verifier app sent it). 200 when it is
/// revoked, 404 when it is not (or is not ours): DIVOC's contract.
pub async fn is_revoked(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let credential = parse_json(&body)?;
    if !credential.is_object() {
        return Err(ApiError::bad_request(
            "body",
            "the body must be a certificate",
        ));
    }
    let svc = service(&state)?;
    let record = blocking(move || svc.revocation_of(&credential)).await?;
    match record {
        Some(r) if divoc_certificates::lookup::is_revoked(&r) => Ok(Json(json!({
            "revoked": true,
            "certificateId": r.id,
            "reason": r.revoked_reason,
        }))
        .into_response()),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_revoked",
            "the certificate is not revoked",
        )),
    }
}

/// `HEAD /cert/api/certificate/{code}`: 200 when the code has a
/// certificate the caller may see, 404 otherwise.
pub async fn exists(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    check_code(&code)?;
    let svc = service(&state)?;
    let records = blocking(move || svc.current_by_pre_enrollment(&code)).await?;
    for r in &records {
        if may_read(&state, &p, r).await? {
            return Ok(StatusCode::OK.into_response());
        }
    }
    Ok(StatusCode::NOT_FOUND.into_response())
}

/// The certificates of a code the caller may see, current versions only.
pub(crate) async fn visible_by_code(
    state: &AppState,
    caller: &Caller,
    code: String,
) -> Result<Vec<CertificateRecord>, ApiError> {
    let p = principal(caller)?.clone();
    check_code(&code)?;
    let svc = service(state)?;
    let records = blocking(move || svc.current_by_pre_enrollment(&code)).await?;
    let mut out = Vec::new();
    for r in records {
        if may_read(state, &p, &r).await? {
            out.push(r);
        }
    }
    if out.is_empty() {
        return Err(ApiError::not_found(
            "no certificate for that pre-enrolment code",
        ));
    }
    Ok(out)
}

/// `GET /divoc/api/v1/certificates/{code}/{file}?dose=N`: a QR file of one
/// dose (the latest dose by default).
pub async fn file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((code, file)): Path<(String, String)>,
    Query(query): Query<RenderQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let records = visible_by_code(&state, &caller, code).await?;
    if file == "certificate.pdf" {
        return pdf_of(&state, records, &query, &headers).await;
    }
    let record = match query.dose {
        Some(d) => records.into_iter().find(|r| r.dose == d).ok_or_else(|| {
            ApiError::not_found("no certificate for that dose").with_field("dose")
        })?,
        None => records
            .into_iter()
            .max_by_key(|r| (r.dose, r.issued_at_ms))
            .ok_or_else(|| ApiError::not_found("no certificate"))?,
    };
    render_qr(&state, record, file, &query).await
}

/// The printable certificate of a code's doses, with the QR of the latest
/// valid dose (or of `?dose=`).
async fn pdf_of(
    state: &AppState,
    records: Vec<CertificateRecord>,
    query: &RenderQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let qr_of = match query.dose {
        Some(d) => records.iter().find(|r| r.dose == d).ok_or_else(|| {
            ApiError::not_found("no certificate for that dose").with_field("dose")
        })?,
        None => records
            .iter()
            .filter(|r| !divoc_certificates::lookup::is_revoked(r))
            .max_by_key(|r| (r.dose, r.issued_at_ms))
            .or_else(|| records.iter().max_by_key(|r| (r.dose, r.issued_at_ms)))
            .ok_or_else(|| ApiError::not_found("no certificate"))?,
    }
    .clone();
    let doses: Vec<CertificateRecord> = records
        .into_iter()
        .filter(|r| {
            r.program == qr_of.program
                && (r.id == qr_of.id || !divoc_certificates::lookup::is_revoked(r))
        })
        .collect();
    render_pdf(state, doses, qr_of, query.lang.as_deref(), headers).await
}

/// `GET /cert/api/certificatePDF/{code}` (DIVOC's route): the printable
/// certificate of every dose of a pre-enrolment code.
pub async fn certificate_pdf(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
    Query(query): Query<RenderQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let records = visible_by_code(&state, &caller, code).await?;
    pdf_of(&state, records, &query, &headers).await
}
