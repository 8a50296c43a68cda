//! DIVOC's own routes, with DIVOC's payloads, answering as DIVOC's API
//! (tag 2.1.3-generic) does where its clients look, so an existing
//! integrator only changes the base URL:
//!
//! - `POST /divoc/api/v1/certify` — issue an array of `certify` items. As
//!   in DIVOC, the request is all or nothing at validation: a body that is
//!   not JSON is a 400, any invalid item a 422 (our error body names the
//!   item index and field), and nothing is stored;
//! - `PUT /divoc/api/v1/certificate` — corrections (an array of `certify`
//!   items; the item's program, pre-enrolment code and dose name the
//!   certificate to correct): 422 for an invalid item (one without
//!   `vaccination` included), 412 when an item names no certificate;
//! - `DELETE /divoc/api/v1/certificates/{code}?doses=1,2` (or
//!   `?allDoses=true`) — revoke; one of the two is required, and named
//!   doses must be consecutive and include the latest (else 400);
//! - `POST /divoc/api/v1/certificate/revoked` (and DIVOC verifier's
//!   `/cert/api/certificate/revoked`) — 200 when the presented certificate
//!   is revoked, 404 when not, 400 when the body is not a certificate;
//! - `HEAD /cert/api/certificate/{code}` — does the code have a
//!   certificate;
//! - `GET /divoc/api/v1/certificates/{code}/{file}` — QR files of a dose.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use divoc_certificates::legacy::CertifyRequest;
use divoc_certificates::lookup::DoseSelection;
use divoc_certificates::{CertError, Certificate, IssueRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Caller, Principal};
use crate::certificates::{
    blocking, default_facility, error_json, facility_allows, issue_items, legacy_names, may_read,
    parse_json, principal, render_pdf, render_qr, service, FacilityQuery, RenderQuery,
    DIVOC_DEFAULT_PROGRAM, MAX_BATCH,
};
use crate::error::{ApiError, ApiQuery};
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

/// The items of a DIVOC array body: 400 when the body is not JSON, 422
/// when it is not an array of 1 to [`MAX_BATCH`] items (a schema
/// violation, in DIVOC's terms).
fn divoc_items(body: &Bytes) -> Result<Vec<Value>, ApiError> {
    let Value::Array(items) = parse_json(body)? else {
        return Err(unprocessable(
            "body",
            "the body must be a JSON array of items",
        ));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(unprocessable(
            "body",
            &format!("the array holds 1 to {MAX_BATCH} items"),
        ));
    }
    Ok(items)
}

fn unprocessable(field: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message).with_field(field)
}

fn code_of(item: &Value) -> Option<String> {
    item.get("preEnrollmentCode")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Parses and validates every item, in DIVOC's field names; the first
/// problem anywhere refuses the whole request (422), naming every bad item
/// by index and field (`[2].recipient.dob`), so nothing is stored.
fn validate_all(
    items: Vec<Value>,
    svc: &divoc_certificates::CertificateService,
    facility: &Option<String>,
    p: &Principal,
    require_vaccination: bool,
) -> Result<Vec<IssueRequest>, ApiError> {
    let mut requests = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let code = code_of(&item);
        if require_vaccination && !item.get("vaccination").is_some_and(Value::is_object) {
            bad.push((
                index,
                code,
                vec![("vaccination".to_owned(), "required".to_owned())],
            ));
            continue;
        }
        let parsed = CertifyRequest::from_json(item)
            .and_then(|r| r.into_issue_request(DIVOC_DEFAULT_PROGRAM))
            .and_then(|mut r| {
                r.facility.id.clone_from(facility);
                svc.validate(&r)?;
                Ok(r)
            });
        match parsed.map_err(legacy_names) {
            Ok(req) => requests.push(req),
            Err(CertError::Validation(fields)) => bad.push((
                index,
                code,
                fields.into_iter().map(|f| (f.field, f.message)).collect(),
            )),
            Err(e) => return Err(ApiError::from(e)),
        }
    }
    if let Some((index, _, fields)) = bad.first() {
        let first = fields.first().map(|f| f.0.as_str()).unwrap_or_default();
        let message = bad
            .iter()
            .flat_map(|(i, _, fields)| {
                fields
                    .iter()
                    .map(move |(f, m)| format!("item {i}: {f}: {m}"))
            })
            .collect::<Vec<_>>()
            .join("; ");
        let details: Vec<Value> = bad
            .iter()
            .map(|(i, code, fields)| {
                json!({
                    "index": i,
                    "preEnrollmentCode": code,
                    "fields": fields
                        .iter()
                        .map(|(f, m)| json!({"field": f, "message": m}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("nothing was stored: {message}"),
        )
        .with_field(format!("[{index}].{first}"))
        .with_details(json!({ "items": details })));
    }
    if requests
        .iter()
        .any(|r| !facility_allows(p, r.facility.id.as_deref()))
    {
        return Err(ApiError::forbidden_facility("facility"));
    }
    Ok(requests)
}

/// The answer to a DIVOC array request whose items were all valid: 200
/// with a result per item when every item succeeded; otherwise the first
/// failing item's status (409, 422, 503…), the same per-item results in
/// the error's details, so a client that checks only the status code does
/// not take a partial success for a whole one.
fn divoc_results(results: Vec<Value>) -> Response {
    let failed = results.iter().find_map(|r| {
        let e = r.get("error")?;
        let status = e.get("status")?.as_u64()?;
        Some((
            status,
            e.get("message").and_then(Value::as_str).map(str::to_owned),
        ))
    });
    match failed {
        None => Json(results).into_response(),
        Some((status, message)) => {
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::new(
                status,
                "item_failed",
                format!(
                    "an item failed: {}; the others are as `details.results` says",
                    message.unwrap_or_default()
                ),
            )
            .with_details(json!({ "results": results }))
            .into_response()
        }
    }
}

/// `POST /divoc/api/v1/certify`: DIVOC's payload unchanged (an array of
/// items). Every item is validated before any is issued; then each is
/// answered with its certificate (`created`, or `existing` for a re-send).
pub async fn certify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<FacilityQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let facility = default_facility(&p, query.facility);
    let items = divoc_items(&body)?;
    let codes: Vec<Option<String>> = items.iter().map(code_of).collect();
    let svc = service(&state)?;
    let requests = validate_all(items, &svc, &facility, &p, false)?;
    rollout_checks(&state, &svc, &requests).await?;
    let mut out = issue_items(
        &state,
        p.name.clone(),
        requests.into_iter().map(Ok).collect(),
        |e| ApiError::from(legacy_names(e)),
        |index, i| {
            json!({"preEnrollmentCode": codes[index], "certificateId": i.id, "status": i.status})
        },
    )
    .await?;
    for (result, code) in out.iter_mut().zip(&codes) {
        if result.get("error").is_some() {
            result["preEnrollmentCode"] = json!(code);
        }
    }
    Ok(divoc_results(out))
}

/// The registry's rules for items whose programme it knows (the policy,
/// the interval since the previous dose), all checked before any item is
/// issued: the first refusal answers for the request, naming the item.
async fn rollout_checks(
    state: &AppState,
    certificates: &divoc_certificates::CertificateService,
    requests: &[IssueRequest],
) -> Result<(), ApiError> {
    let Some(rollout) = state.rollout.clone() else {
        return Ok(());
    };
    for (index, req) in requests.iter().enumerate() {
        let (rollout, certificates, req) = (rollout.clone(), certificates.clone(), req.clone());
        let checked =
            tokio::task::spawn_blocking(move || rollout.check_certify(&certificates, &req))
                .await
                .map_err(|e| ApiError::internal(format!("the rollout check failed: {e}")))?;
        match checked {
            Ok(()) => {}
            Err(divoc_rollout::RolloutError::Validation(fields)) => {
                let named: Vec<(String, String)> = fields
                    .into_iter()
                    .map(|f| (format!("[{index}].{}", f.field), f.message))
                    .collect();
                return Err(ApiError::invalid_fields(
                    named.iter().map(|(f, m)| (f.as_str(), m.as_str())),
                ));
            }
            Err(e) => {
                let mut e = ApiError::from(e);
                e.message = format!("item {index}: {}", e.message);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `PUT /divoc/api/v1/certificate`: corrections. Every item is validated
/// (422) and must name a certificate the caller may correct (412, as
/// DIVOC's precondition) before any is corrected.
pub async fn correct(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<FacilityQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let facility = default_facility(&p, query.facility);
    let items = divoc_items(&body)?;
    let svc = service(&state)?;
    let requests = validate_all(items, &svc, &facility, &p, true)?;
    let mut targets = Vec::with_capacity(requests.len());
    for (index, req) in requests.into_iter().enumerate() {
        // A failed read is an error (503), not "no such certificate".
        let visible = match visible_by_code(&state, &caller, req.pre_enrollment_code.clone()).await
        {
            Ok(visible) => visible,
            Err(e) if e.status == StatusCode::NOT_FOUND => Vec::new(),
            Err(e) => return Err(e),
        };
        let Some(current) = visible
            .into_iter()
            .find(|r| r.program == req.vaccination.program && r.dose == req.vaccination.dose)
        else {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "no_certificate",
                format!(
                    "item {index}: no certificate for that pre-enrolment code and dose to \
                     correct; nothing was changed"
                ),
            )
            .with_field(format!("[{index}].preEnrollmentCode")));
        };
        targets.push((req, current));
    }
    let mut out = Vec::with_capacity(targets.len());
    for (mut req, current) in targets {
        let code = req.pre_enrollment_code.clone();
        // DIVOC's payload has no facility id: the correction keeps the one
        // the certificate was issued for (a token serving several
        // facilities cannot move it to another with `?facility=`).
        req.facility.id.clone_from(&current.facility_id);
        let (svc, actor) = (svc.clone(), p.name.clone());
        let result =
            blocking(move || svc.correct(&current.id, &req, &actor).map_err(legacy_names)).await;
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
    Ok(divoc_results(out))
}

/// Query of the revoke route. Other parameters are ignored, as DIVOC did.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RevokeQuery {
    /// Comma-separated dose numbers: consecutive, with the latest.
    doses: Option<String>,
    /// `true` to revoke every dose.
    all_doses: Option<bool>,
    /// Why; DIVOC sent none, so there is a default.
    reason: Option<String>,
}

fn parse_doses(doses: &str) -> Result<Vec<u32>, ApiError> {
    doses
        .split(',')
        .map(|d| match d.trim().parse::<u32>() {
            Ok(n) if (1..=20).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "doses",
                "`doses` is a comma-separated list of dose numbers (1-20)",
            )),
        })
        .collect()
}

/// `DELETE /divoc/api/v1/certificates/{code}?doses=2,3` or
/// `?allDoses=true`: revokes the current certificates of those doses.
/// Without either it is a 400, as in DIVOC (revoking every dose must be
/// asked for).
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
    ApiQuery(query): ApiQuery<RevokeQuery>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    check_code(&code)?;
    let doses = match (
        query
            .doses
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty()),
        query.all_doses,
    ) {
        (Some(_), Some(true)) => {
            return Err(ApiError::bad_request(
                "doses",
                "give `doses` or `allDoses=true`, not both",
            ))
        }
        (Some(d), _) => Some(parse_doses(d)?),
        (None, Some(true)) => None,
        (None, _) => {
            return Err(ApiError::bad_request(
                "doses",
                "name the doses to revoke (`doses=2,3`: consecutive, with the latest) \
                 or revoke all with `allDoses=true`",
            ))
        }
    };
    let reason = query
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "revoked by the issuer".to_owned());
    let svc = service(&state)?;
    let code2 = code.clone();
    let changed = blocking(move || {
        let selection = match &doses {
            Some(d) => DoseSelection::Doses(d),
            None => DoseSelection::All,
        };
        svc.revoke_doses(&code2, selection, &reason, &p.name)
    })
    .await
    .map_err(|e| {
        // DIVOC answers a bad dose selection with 400.
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            ApiError {
                status: StatusCode::BAD_REQUEST,
                ..e
            }
        } else {
            e
        }
    })?;
    let revoked: Vec<Value> = changed
        .iter()
        .map(|r| json!({"certificateId": r.id, "dose": r.dose}))
        .collect();
    Ok(Json(json!({"preEnrollmentCode": code, "revoked": revoked})).into_response())
}

/// `POST /divoc/api/v1/certificate/revoked`: the body is a certificate
/// (the credential JSON, as DIVOC's verifier app sent it). 200 when it is
/// revoked, 404 when it is not (or is not ours): DIVOC's contract. A body
/// that is not a verifiable credential (`{}`) is a 400.
pub async fn is_revoked(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let credential = parse_json(&body)?;
    let is_credential = credential
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t == "VerifiableCredential"))
        && credential.get("credentialSubject").is_some();
    if !is_credential {
        return Err(ApiError::bad_request(
            "body",
            "the body must be a certificate (a verifiable credential)",
        ));
    }
    let svc = service(&state)?;
    let record = blocking(move || svc.revocation_of(&credential)).await?;
    match record {
        Some(r) if r.is_revoked() => Ok(Json(json!({
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
) -> Result<Vec<Certificate>, ApiError> {
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
    ApiQuery(query): ApiQuery<RenderQuery>,
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
    records: Vec<Certificate>,
    query: &RenderQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let qr_of = match query.dose {
        Some(d) => records.iter().find(|r| r.dose == d).ok_or_else(|| {
            ApiError::not_found("no certificate for that dose").with_field("dose")
        })?,
        None => records
            .iter()
            .filter(|r| !r.is_revoked())
            .max_by_key(|r| (r.dose, r.issued_at_ms))
            .or_else(|| records.iter().max_by_key(|r| (r.dose, r.issued_at_ms)))
            .ok_or_else(|| ApiError::not_found("no certificate"))?,
    }
    .clone();
    let doses: Vec<Certificate> = records
        .into_iter()
        .filter(|r| r.program == qr_of.program && (r.id == qr_of.id || !r.is_revoked()))
        .collect();
    render_pdf(state, doses, qr_of, query.lang.as_deref(), headers).await
}

/// `GET /cert/api/certificatePDF/{code}` (DIVOC's route): the printable
/// certificate of every dose of a pre-enrolment code.
pub async fn certificate_pdf(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
    ApiQuery(query): ApiQuery<RenderQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let records = visible_by_code(&state, &caller, code).await?;
    pdf_of(&state, records, &query, &headers).await
}
