//! Certificate routes: issue, read, render, verify, revoke, suspend, correct,
//! and the published status lists.
//!
//! The certificate service is synchronous (it signs and waits for the group
//! commit), so every call runs on the blocking pool. A 2xx is sent only after
//! the service returned, i.e. after the commit.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use divoc_certificates::{
    qr, CertError, Certificate, CertificateService, IssueRequest, IssueStatus, Issued, Verdict,
    VerifyInput,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::{Caller, Principal, Role};
use crate::error::{ApiError, ApiQuery};
use crate::AppState;

/// The most items one batch may carry.
pub const MAX_BATCH: usize = 1000;

impl From<CertError> for ApiError {
    fn from(e: CertError) -> ApiError {
        match e {
            CertError::Validation(errors) => ApiError::invalid_fields(
                errors
                    .iter()
                    .map(|f| (f.field.as_str(), f.message.as_str())),
            ),
            CertError::Conflict {
                message,
                existing_id,
                correction_path,
            } => ApiError::new(StatusCode::CONFLICT, "conflict", message).with_details(json!({
                "existing_id": existing_id,
                "correction_path": correction_path,
            })),
            CertError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            // A required check (identity, payment) could not be made:
            // nothing was stored, the caller may retry.
            CertError::Unavailable(message) => ApiError::unavailable(message),
            other => {
                tracing::error!(error = %other, "certificate service failed");
                ApiError::internal("the certificate service failed; see the server log")
            }
        }
    }
}

pub(crate) fn service(state: &AppState) -> Result<CertificateService, ApiError> {
    state
        .certificates
        .clone()
        .ok_or_else(|| ApiError::unavailable("the certificate module is not enabled"))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CertError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(ApiError::from)
}

pub(crate) fn principal(caller: &Caller) -> Result<&Principal, ApiError> {
    caller.0.as_ref().ok_or_else(ApiError::unauthorized)
}

/// The facility a request issues for when its payload names none (DIVOC's
/// payloads name facilities only by name): the one `?facility=` names, else
/// a facility token's only facility. A token serving several must name one.
pub(crate) fn default_facility(p: &Principal, named: Option<String>) -> Option<String> {
    named.or_else(|| match (p.role, p.facilities.as_slice()) {
        (Role::Facility, [only]) => Some(only.clone()),
        _ => None,
    })
}

/// Query of the routes that issue from payloads without a facility id.
/// Other parameters are ignored, as DIVOC's own service did.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FacilityQuery {
    /// The issuing facility; a facility token with one facility may omit it.
    pub(crate) facility: Option<String>,
}

/// A facility token may only issue for, and read, its own facilities.
pub(crate) fn facility_allows(p: &Principal, facility_id: Option<&str>) -> bool {
    p.role != Role::Facility || facility_id.is_some_and(|id| p.facilities.iter().any(|f| f == id))
}

pub(crate) fn parse_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not JSON: {e}"),
        )
        .with_field("body")
    })
}

fn issue_request(value: Value, p: &Principal) -> Result<IssueRequest, ApiError> {
    let req = IssueRequest::from_json(value)?;
    if !facility_allows(p, req.facility.id.as_deref()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may not issue for that facility",
        )
        .with_field("facility.id"));
    }
    Ok(req)
}

/// `POST /v1/certificates`: 201 for a new certificate, 200 for a re-send.
pub async fn issue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let req = issue_request(parse_json(&body)?, &p)?;
    let svc = service(&state)?;
    // Inline when nothing in the pipeline can block: a hand-off to a
    // blocking thread and back costs more than preparing the certificate.
    let issued = if svc.issues_inline(&req) {
        svc.issue_async(&req, &p.name).await?
    } else {
        svc.issue_offloaded(req, p.name.clone()).await?
    };
    let status = match issued.status {
        IssueStatus::Created => StatusCode::CREATED,
        IssueStatus::Existing => StatusCode::OK,
    };
    Ok((status, Json(issued)).into_response())
}

/// The items of a batch body: a JSON array of 1 to [`MAX_BATCH`] items.
pub(crate) fn batch_items(body: &Bytes) -> Result<Vec<Value>, ApiError> {
    let Value::Array(items) = parse_json(body)? else {
        return Err(ApiError::bad_request(
            "body",
            "the body must be a JSON array",
        ));
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "body",
            format!("a batch holds 1 to {MAX_BATCH} items"),
        ));
    }
    Ok(items)
}

/// Issues the parsed items together (one group commit); items that failed
/// to parse are answered without reaching the service. Answers in input
/// order: `ok(index, issued)` or the item's error.
pub(crate) async fn issue_items(
    state: &AppState,
    actor: String,
    items: Vec<Result<IssueRequest, ApiError>>,
    service_error: impl Fn(CertError) -> ApiError,
    ok: impl Fn(usize, Issued) -> Value,
) -> Result<Vec<Value>, ApiError> {
    let mut parsed = Vec::with_capacity(items.len());
    let mut results: Vec<Option<Value>> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Ok(req) => {
                parsed.push(req);
                results.push(None);
            }
            Err(e) => results.push(Some(error_json(&e))),
        }
    }
    let svc = service(state)?;
    let issued = blocking(move || Ok(svc.issue_batch(&parsed, &actor))).await?;
    let mut issued = issued.into_iter();
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Some(err) => err,
            None => match issued.next() {
                Some(Ok(i)) => ok(index, i),
                Some(Err(e)) => error_json(&service_error(e)),
                None => json!({"error": {"code": "internal", "message": "missing result"}}),
            },
        })
        .collect())
}

/// `POST /v1/certificates/batch`: per item, the certificate or the errors.
pub async fn issue_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let items = batch_items(&body)?;
    let items = items.into_iter().map(|i| issue_request(i, &p)).collect();
    let out = issue_items(
        &state,
        p.name.clone(),
        items,
        ApiError::from,
        |_, i| json!({"id": i.id, "status": i.status}),
    )
    .await?;
    Ok(Json(json!({ "results": out })).into_response())
}

pub(crate) fn error_json(e: &ApiError) -> Value {
    json!({"error": {
        "status": e.status.as_u16(),
        "code": e.code,
        "message": e.message,
        "field": e.field,
        "details": e.details,
    }})
}

/// Whether `p` may see `record`: a facility only what it issued, a
/// recipient only what was issued to one of their contacts, other roles
/// that may reach a read route everything.
pub(crate) async fn may_read(
    state: &AppState,
    p: &Principal,
    record: &Certificate,
) -> Result<bool, ApiError> {
    match p.role {
        Role::Facility => Ok(facility_allows(p, record.facility_id.as_deref())),
        Role::Recipient => {
            let (svc, record, contacts) = (service(state)?, record.clone(), p.contacts.clone());
            blocking(move || svc.belongs_to(&record, &contacts)).await
        }
        _ => Ok(true),
    }
}

pub(crate) async fn readable(
    state: &AppState,
    caller: &Caller,
    id: String,
) -> Result<Certificate, ApiError> {
    let p = principal(caller)?.clone();
    let svc = service(state)?;
    let record = blocking(move || svc.get(&id)).await?;
    if !may_read(state, &p, &record).await? {
        // Do not reveal that someone else's certificate exists.
        return Err(ApiError::not_found("certificate not found"));
    }
    Ok(record)
}

/// `GET /v1/certificates/{id}`: the signed credential.
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = readable(&state, &caller, id).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/vc+ld+json")],
        Json(record.credential),
    )
        .into_response())
}

/// `GET /v1/certificates/{id}/history`: every version, oldest first.
pub async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    readable(&state, &caller, id.clone()).await?;
    let svc = service(&state)?;
    let versions = blocking(move || svc.history(&id)).await?;
    let rows: Vec<Value> = versions
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "version": r.version,
                "previous_id": r.previous_id,
                "status": r.status.as_str(),
                "revoked_reason": r.revoked_reason,
                "issued_at_ms": r.issued_at_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "versions": rows })).into_response())
}

/// Query of the rendering routes.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RenderQuery {
    /// `legacy` for DIVOC's zip-in-a-QR form (DIVOC's verifier apps).
    pub form: Option<String>,
    /// PDF language (a template name, e.g. `en`, `hi`).
    pub lang: Option<String>,
    /// Which dose, on the by-pre-enrolment-code routes.
    pub dose: Option<u32>,
}

/// Renders one of a certificate's files: `qr.png`, `qr.svg`, `qr.txt`
/// (the QR content) and `qr.zip` (DIVOC's legacy payload itself).
pub(crate) async fn render_qr(
    state: &AppState,
    record: Certificate,
    file: String,
    query: &RenderQuery,
) -> Result<Response, ApiError> {
    let legacy = match query.form.as_deref() {
        None | Some("") | Some("divoc1") => false,
        Some("legacy") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "form",
                "`form` is `divoc1` (default) or `legacy`",
            ))
        }
    };
    service(state)?;
    let (content_type, body) = blocking(move || {
        let content = if legacy || file == "qr.zip" {
            qr::legacy_zip(&record.credential)?
        } else {
            qr::encode(&record.credential)?.into_bytes()
        };
        match file.as_str() {
            "qr.png" => Ok(("image/png", qr::render_png(&content, 4)?)),
            "qr.svg" => Ok(("image/svg+xml", qr::render_svg(&content)?.into_bytes())),
            "qr.txt" if !legacy => Ok(("text/plain; charset=utf-8", content)),
            "qr.zip" => Ok(("application/zip", content)),
            _ => Err(CertError::NotFound(format!("rendering `{file}`"))),
        }
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// `GET /v1/certificates/{id}/{file}`: `certificate.pdf` (`?lang=`),
/// `qr.png`, `qr.svg`, `qr.txt`, `qr.zip` (`?form=legacy` for DIVOC's QR
/// form).
pub async fn qr(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, file)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<RenderQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = readable(&state, &caller, id).await?;
    if file == "certificate.pdf" {
        let p = principal(&caller)?.clone();
        let doses = doses_with(&state, &p, &record).await?;
        return render_pdf(&state, doses, record, query.lang.as_deref(), &headers).await;
    }
    render_qr(&state, record, file, &query).await
}

/// `POST /v1/certificates/{id}/revoke` `{"reason": "..."}`.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let body = parse_json(&body)?;
    let reason = body
        .get("reason")
        .and_then(Value::as_str)
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("reason", "`reason` is required"))?
        .to_string();
    let svc = service(&state)?;
    let record = blocking(move || svc.revoke(&id, &reason, &p.name)).await?;
    Ok(Json(status_json(&record)).into_response())
}

/// `POST /v1/certificates/{id}/suspend` `{"until": "YYYY-MM-DD"?}`.
pub async fn suspend(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let until = if body.is_empty() {
        None
    } else {
        match parse_json(&body)?.get("until") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::bad_request("until", "`until` must be a date")),
        }
    };
    let svc = service(&state)?;
    let record = blocking(move || svc.suspend(&id, until.as_deref(), &p.name)).await?;
    Ok(Json(status_json(&record)).into_response())
}

/// `POST /v1/certificates/{id}/reinstate`.
pub async fn reinstate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let svc = service(&state)?;
    let record = blocking(move || svc.reinstate(&id, &p.name)).await?;
    Ok(Json(status_json(&record)).into_response())
}

pub(crate) fn status_json(r: &Certificate) -> Value {
    json!({
        "id": r.id,
        "status": r.status.as_str(),
        "revoked_reason": r.revoked_reason,
        "suspended_until_ms": r.suspended_until_ms,
    })
}

/// `PUT /v1/certificates/{id}`: a corrected version; the old one is revoked
/// as superseded.
pub async fn correct(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    readable(&state, &caller, id.clone()).await?;
    let req = issue_request(parse_json(&body)?, &p)?;
    let svc = service(&state)?;
    let issued = blocking(move || svc.correct(&id, &req, &p.name)).await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// `GET /v1/contexts/{name}`: the JSON-LD context a configured credential
/// type's credentials name (generated from its definition), or our
/// vaccination vocabulary (`vaccination-v1`). Public, like the keys: a
/// verifier needs it to read the credential. Cached for a day; a changed
/// type definition changes the document, so the `ETag` is its hash.
pub async fn context(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let body = svc
        .context_bytes(&name)
        .ok_or_else(|| ApiError::not_found("no such context"))?;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..8]));
    let cache = "public, max-age=86400";
    if if_none_match(&headers, &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::CACHE_CONTROL, cache),
                (header::ETAG, etag.as_str()),
            ],
        )
            .into_response());
    }
    Ok((
        [
            (header::CACHE_CONTROL, cache),
            (header::CONTENT_TYPE, "application/ld+json"),
            (header::ETAG, etag.as_str()),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/contexts`: every JSON-LD context this deployment's credentials
/// name, where each is served and the SHA-256 of its bytes, so a verifier
/// can vendor them (a verifier that fetches contexts at verification time
/// can be tracked by, or fed a different meaning from, the server).
pub async fn contexts(State(state): State<AppState>) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let contexts = svc.context_index();
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(json!({ "contexts": contexts })),
    )
        .into_response())
}

/// `GET /v1/status/{list}`: a signed Bitstring Status List credential that
/// verifiers may cache (for its `ttl`).
///
/// Its ETag is weak and names the bits only, so a verifier whose cached
/// copy holds the same bits gets `304 Not Modified` for `If-None-Match`.
/// The service keeps built lists until a status changes, so neither answer
/// reads the database or signs in the common case.
pub async fn status_list(
    State(state): State<AppState>,
    Path(list): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let signed = match svc.cached_status_list(&list) {
        Some(signed) => signed,
        None => blocking(move || svc.signed_status_list(&list)).await?,
    };
    let cache = format!("public, max-age={}", signed.max_age_s);
    if if_none_match(&headers, &signed.etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::CACHE_CONTROL, cache.as_str()),
                (header::ETAG, signed.etag.as_str()),
            ],
        )
            .into_response());
    }
    Ok((
        [
            (header::CACHE_CONTROL, cache.as_str()),
            (header::CONTENT_TYPE, "application/vc+ld+json"),
            (header::ETAG, signed.etag.as_str()),
        ],
        signed.body.clone(),
    )
        .into_response())
}

/// Whether `If-None-Match` names `etag` (or `*`), by the weak comparison
/// RFC 9110 §13.1.2 prescribes for it.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// Largest QR image accepted by `/v1/verify`, bytes.
const MAX_QR_IMAGE: usize = 4 << 20;

/// `POST /v1/verify`: `{"qr": "DIVOC1:..."}`, `{"credential": {...}}`,
/// `{"qr_image": "<base64 PNG/JPEG>"}`, or the image itself as the body
/// (`Content-Type: image/png` or `image/jpeg`).
pub async fn verify(
    State(state): State<AppState>,
    client: Option<Extension<crate::admission::Client>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let client = client.map(|Extension(c)| c);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let image = if content_type.starts_with("image/") {
        Some(body.to_vec())
    } else {
        None
    };
    let input = match image {
        Some(image) => qr_image_input(&state, client, image).await?,
        None => {
            let body = parse_json(&body)?;
            if let Some(format) = body.get("format") {
                return verify_named_format(&state, format, body.get("artifact")).await;
            }
            match (body.get("qr"), body.get("credential"), body.get("qr_image")) {
                (Some(Value::String(text)), None, None) => VerifyInput::QrText(text.clone()),
                (None, Some(credential @ Value::Object(_)), None) => {
                    VerifyInput::Json(credential.clone())
                }
                (None, None, Some(Value::String(b64))) => {
                    use base64::Engine as _;
                    let image = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|_| {
                            ApiError::bad_request("qr_image", "`qr_image` is not base64")
                        })?;
                    qr_image_input(&state, client, image).await?
                }
                _ => {
                    return Err(ApiError::bad_request(
                        "qr",
                        "give exactly one of `qr` (text), `credential` (object) and \
                         `qr_image` (base64 PNG/JPEG), or send the image as the body",
                    ))
                }
            }
        }
    };
    // Another format's artifact (EU DCC, SMART Health Card, ...) goes to the
    // plugin that declares its prefix.
    if let VerifyInput::QrText(text) = &input {
        if let Some(verdict) = foreign_verdict(&state, text).await? {
            crate::metrics::verified(verdict_label(&verdict));
            return Ok(Json(verdict).into_response());
        }
    }
    let svc = service(&state)?;
    // Inline: a verification is ~100 µs of CPU and one indexed status
    // read, less than the hand-off to a blocking thread and back.
    let verdict = svc.verify(input)?;
    crate::metrics::verified(verdict_label(&verdict));
    Ok(Json(verdict).into_response())
}

/// A verdict's one-word label for the metrics: `invalid` when the
/// signature fails, else the status.
pub(crate) fn verdict_label(v: &divoc_certificates::Verdict) -> &'static str {
    use divoc_certificates::verify::StatusVerdict as S;
    if !v.checks.signature.ok {
        return "invalid";
    }
    match v.checks.status {
        S::Valid => "valid",
        S::Revoked => "revoked",
        S::Suspended => "suspended",
        S::Expired => "expired",
        S::NotYetValid => "not-yet-valid",
        S::Unknown => "unknown",
    }
}

/// Most credentials in one `POST /v1/verify/batch` (a public route: the
/// bound keeps one request's work to a few tens of milliseconds).
pub const MAX_VERIFY_BATCH: usize = 200;

/// `POST /v1/verify/batch`: a JSON array of 1 to [`MAX_VERIFY_BATCH`]
/// items, each `{"qr": "..."}` or `{"credential": {...}}` (no images),
/// answered `{"results": [...]}` in order: each the verdict `/v1/verify`
/// gives, or `{"error": {...}}` for an item that is not one of those forms
/// or cannot be decoded. Statuses are read from one database snapshot.
pub async fn verify_batch(
    State(state): State<AppState>,
    client: Option<Extension<crate::admission::Client>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Value::Array(items) = parse_json(&body)? else {
        return Err(ApiError::bad_request(
            "body",
            "the body must be a JSON array",
        ));
    };
    if items.is_empty() || items.len() > MAX_VERIFY_BATCH {
        return Err(ApiError::bad_request(
            "body",
            format!("a verification batch holds 1 to {MAX_VERIFY_BATCH} items"),
        ));
    }
    if let Some(Extension(client)) = client {
        state.admission.charge_batch(client, items.len())?;
    }
    let mut inputs = Vec::with_capacity(items.len());
    let mut results: Vec<Option<Value>> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let input = match item {
            Value::Object(mut m) if m.len() == 1 => {
                match (m.remove("qr"), m.remove("credential")) {
                    (Some(Value::String(text)), None) => Some(VerifyInput::QrText(text)),
                    (None, Some(credential @ Value::Object(_))) => {
                        Some(VerifyInput::Json(credential))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(VerifyInput::QrText(text)) = &input {
            match foreign_verdict(&state, text).await {
                Ok(Some(v)) => {
                    crate::metrics::verified(verdict_label(&v));
                    results
                        .push(Some(serde_json::to_value(&v).unwrap_or_else(|e| {
                            error_json(&ApiError::internal(e.to_string()))
                        })));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    results.push(Some(error_json(&e)));
                    continue;
                }
            }
        }
        match input {
            Some(input) => {
                inputs.push(input);
                results.push(None);
            }
            None => results.push(Some(error_json(&ApiError::bad_request(
                "qr",
                format!("item {i}: give exactly one of `qr` (text) and `credential` (object)"),
            )))),
        }
    }
    let svc = service(&state)?;
    let verdicts = blocking(move || Ok(svc.verify_many(inputs))).await?;
    let mut verdicts = verdicts.into_iter();
    let results = results
        .into_iter()
        .map(|r| match r {
            Some(err) => BatchItem::Error(err),
            None => match verdicts.next() {
                Some(Ok(v)) => {
                    crate::metrics::verified(verdict_label(&v));
                    BatchItem::Verdict(Box::new(v))
                }
                Some(Err(e)) => BatchItem::Error(error_json(&ApiError::from(e))),
                None => BatchItem::Error(error_json(&ApiError::internal("missing verdict"))),
            },
        })
        .collect();
    // Serialized straight from the verdicts: going through `Value` first
    // cost a tenth of a batch's time.
    Ok(Json(BatchVerdicts { results }).into_response())
}

/// The answer of `POST /v1/verify/batch`.
#[derive(Serialize)]
struct BatchVerdicts {
    results: Vec<BatchItem>,
}

/// One item's verdict, or the error for that item alone.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchItem {
    Verdict(Box<Verdict>),
    Error(Value),
}

/// Reads the QR code in an image: text (ours or another format's) is
/// verified as QR text, DIVOC's zip as the credential inside it.
/// A QR code searched for in an image: charged to an anonymous client's
/// rate, through the image gate, on a low-priority thread, within the image
/// budget (see [`crate::admission`]).
async fn qr_image_input(
    state: &AppState,
    client: Option<crate::admission::Client>,
    image: Vec<u8>,
) -> Result<VerifyInput, ApiError> {
    if image.len() > MAX_QR_IMAGE {
        return Err(ApiError::bad_request(
            "qr_image",
            "the image is larger than 4 MiB",
        ));
    }
    if let Some(client) = client {
        state.admission.charge_image(client)?;
    }
    let found = state
        .admission
        .search_image(move |deadline| {
            let content = qr::read_image_until(&image, Some(deadline))?;
            match String::from_utf8(content) {
                Ok(text) => Ok(VerifyInput::QrText(text)),
                Err(e) => qr::decode_content(e.as_bytes()).map(VerifyInput::Json),
            }
        })
        .await?;
    found.map_err(ApiError::from)
}

/// `{"format": "who-ddcc-fhir", "artifact": …}`: an artifact of a named
/// format (text, or a JSON document such as a FHIR bundle).
async fn verify_named_format(
    state: &AppState,
    format: &Value,
    artifact: Option<&Value>,
) -> Result<Response, ApiError> {
    use divoc_certificates::formats::Artifact;
    let Value::String(format) = format else {
        return Err(ApiError::bad_request("format", "`format` is a format id"));
    };
    let artifact = match artifact {
        Some(Value::String(text)) => Artifact::Text(text.clone()),
        Some(doc @ Value::Object(_)) => Artifact::Text(doc.to_string()),
        _ => {
            return Err(ApiError::bad_request(
                "artifact",
                "`artifact` is the artifact's text or its JSON document",
            ))
        }
    };
    let formats = crate::formats::formats(state)?;
    let format = format.clone();
    let verdict = blocking(move || formats.verify_artifact(&format, artifact)).await?;
    crate::metrics::verified(verdict_label(&verdict));
    Ok(Json(verdict).into_response())
}

/// The verdict on another format's artifact, or `None` when no loaded
/// format claims the text.
pub(crate) async fn foreign_verdict(
    state: &AppState,
    text: &str,
) -> Result<Option<Verdict>, ApiError> {
    let Some(formats) = state.formats.clone() else {
        return Ok(None);
    };
    if formats.claimants(text).is_empty() {
        return Ok(None);
    }
    let text = text.to_owned();
    blocking(move || formats.verify_text(&text)).await
}

/// `POST /v1/certificates/lookup`: `{"preEnrollmentCode": "..."}` or
/// `{"contact": "tel:...", "dob": "YYYY-MM-DD"}` (personal data travels in
/// the body, not the URL, so it stays out of access logs). Answers the
/// current certificate of every dose the caller may see.
pub async fn lookup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let body = parse_json(&body)?;
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let svc = service(&state)?;
    let records = match (text("preEnrollmentCode"), text("contact"), text("dob")) {
        (Some(code), None, None) => {
            if p.role == Role::Recipient {
                return Err(ApiError::forbidden(
                    "a recipient token looks up by `contact` and `dob`, not by pre-enrolment code",
                )
                .with_field("preEnrollmentCode"));
            }
            blocking(move || svc.current_by_pre_enrollment(&code)).await?
        }
        (None, Some(contact), Some(dob)) => {
            if divoc_time::parse_date(&dob).is_none() {
                return Err(ApiError::bad_request("dob", "`dob` must be YYYY-MM-DD"));
            }
            if p.role == Role::Recipient && !p.contacts.iter().any(|c| same_contact(c, &contact)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "a recipient may look up only their own contacts",
                )
                .with_field("contact"));
            }
            blocking(move || svc.current_by_contact(&contact, &dob)).await?
        }
        (None, Some(_), None) => {
            return Err(ApiError::bad_request(
                "dob",
                "`dob` is required with `contact`",
            ))
        }
        _ => {
            return Err(ApiError::bad_request(
                "preEnrollmentCode",
                "give `preEnrollmentCode`, or `contact` and `dob`",
            ))
        }
    };
    let mut out = Vec::new();
    for r in records {
        if may_read(&state, &p, &r).await? {
            out.push(summary_json(&r, true));
        }
    }
    Ok(Json(json!({ "certificates": out })).into_response())
}

fn same_contact(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    norm(a) == norm(b)
}

/// A certificate in lookup answers.
pub(crate) fn summary_json(r: &Certificate, with_credential: bool) -> Value {
    let mut v = json!({
        "id": r.id,
        "program": r.program,
        "dose": r.dose,
        "version": r.version,
        "status": r.status.as_str(),
        "issued_at_ms": r.issued_at_ms,
    });
    if with_credential {
        v["credential"] = r.credential.clone();
    }
    v
}

/// Rows per `/v1/certificates/import` request.
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// `POST /v1/certificates/import`: a DIVOC bulk-upload CSV as the body.
/// A bad header is a 422 naming the column and nothing is issued; otherwise
/// each row is answered (by line number) with its certificate or its errors
/// by column, and the good rows are issued.
pub async fn import(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<FacilityQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let facility = default_facility(&p, query.facility);
    let svc = service(&state)?;
    let _pass = state.admission.imports.enter().await?;
    let rows = blocking(move || {
        divoc_certificates::import::parse(
            &body,
            DIVOC_DEFAULT_PROGRAM,
            MAX_IMPORT_ROWS,
            svc.now_ms(),
            svc.zone(),
        )
    })
    .await?;
    let mut results: Vec<Value> = Vec::with_capacity(rows.len());
    let mut parsed = Vec::new();
    for row in rows {
        let head = json!({"line": row.line, "preEnrollmentCode": row.pre_enrollment_code});
        let request = row.request.map(|mut req| {
            if req.facility.id.is_none() {
                req.facility.id = facility.clone();
            }
            req
        });
        match request {
            Ok(req) if !facility_allows(&p, req.facility.id.as_deref()) => {
                let e = ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this token may not issue for that facility",
                )
                .with_field("facilityId");
                results.push(merge(head, error_json(&e)));
            }
            Ok(req) => {
                parsed.push((results.len(), req));
                results.push(head);
            }
            Err(e) => results.push(merge(head, error_json(&ApiError::from(e)))),
        }
    }
    let (mut created, mut existing) = (0usize, 0usize);
    for chunk in parsed.chunks(MAX_BATCH) {
        let (slots, reqs): (Vec<usize>, Vec<IssueRequest>) = chunk.iter().cloned().unzip();
        let (svc, actor) = (service(&state)?, p.name.clone());
        let issued = blocking(move || Ok(svc.issue_batch(&reqs, &actor))).await?;
        for (slot, r) in slots.into_iter().zip(issued) {
            let extra = match r {
                Ok(i) => {
                    match i.status {
                        IssueStatus::Created => created += 1,
                        IssueStatus::Existing => existing += 1,
                    }
                    json!({"certificateId": i.id, "status": i.status})
                }
                Err(e) => error_json(&ApiError::from(e)),
            };
            let head = std::mem::take(&mut results[slot]);
            results[slot] = merge(head, extra);
        }
    }
    let failed = results.len() - created - existing;
    Ok(Json(json!({
        "results": results,
        "summary": {"rows": results.len(), "created": created, "existing": existing, "failed": failed},
    }))
    .into_response())
}

/// `a` with `b`'s fields added (both objects).
fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// The program assumed for DIVOC items that carry no `programId`.
pub(crate) const DIVOC_DEFAULT_PROGRAM: &str = "covid-19";

/// Renames native field paths in validation errors to DIVOC's.
pub(crate) fn legacy_names(e: CertError) -> CertError {
    match e {
        CertError::Validation(fields) => CertError::Validation(
            fields
                .into_iter()
                .map(|mut f| {
                    f.field = divoc_certificates::legacy::legacy_field(&f.field);
                    f
                })
                .collect(),
        ),
        other => other,
    }
}

/// `POST /v1/credentials/{type}`: issues a credential of an
/// operator-defined type from a flat JSON object of its fields. 201 for a
/// new credential, 200 for a re-send of the same reference and payload.
pub async fn issue_typed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(type_name): Path<String>,
    ApiQuery(query): ApiQuery<FacilityQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?.clone();
    let request = parse_json(&body)?;
    let facility = match (p.role, query.facility) {
        (Role::Facility, None) if p.facilities.len() == 1 => p.facilities.first().cloned(),
        (Role::Facility, None) => {
            return Err(ApiError::bad_request(
                "facility",
                "this token serves several facilities: name one with ?facility=",
            ))
        }
        (_, f) => f,
    };
    if !facility_allows(&p, facility.as_deref()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may not issue for that facility",
        )
        .with_field("facility"));
    }
    let svc = service(&state)?;
    let issued = blocking(move || svc.issue_typed(&type_name, &request, facility, &p.name)).await?;
    let status = match issued.status {
        IssueStatus::Created => StatusCode::CREATED,
        IssueStatus::Existing => StatusCode::OK,
    };
    Ok((status, Json(issued)).into_response())
}

/// `GET /v1/credentials`: the configured credential types.
pub async fn credential_types(State(state): State<AppState>) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let mut types = vec!["vaccination".to_owned()];
    types.extend(svc.credential_types());
    Ok(Json(json!({ "types": types })).into_response())
}

/// The PDF language of a request: `?lang=`, else the first
/// `Accept-Language` tag that has a template, else the default template.
fn pdf_language(
    renderer: &divoc_pdf::PdfRenderer,
    lang: Option<&str>,
    headers: &HeaderMap,
) -> String {
    if let Some(l) = lang.map(str::trim).filter(|l| !l.is_empty()) {
        // An unknown `?lang=` is the caller's mistake: render reports it.
        return l.to_owned();
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|tag| tag.split(';').next())
        .find_map(|tag| renderer.resolve_language(tag))
        .unwrap_or_else(|| renderer.default_language())
        .to_owned()
}

/// Renders the printable certificate: every dose in `doses` (one credential
/// each), the QR code of `qr_of` and, when the template asks for one
/// (`[second_qr]`), its QR in another format (see [`second_qr`]).
pub(crate) async fn render_pdf(
    state: &AppState,
    doses: Vec<Certificate>,
    qr_of: Certificate,
    lang: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let renderer = state
        .pdf
        .clone()
        .ok_or_else(|| ApiError::unavailable("PDF rendering is not configured"))?;
    let lang = pdf_language(&renderer, lang, headers);
    // Tens of milliseconds of CPU each: a bounded number at once.
    let _pass = state.admission.pdfs.enter().await?;
    let second = second_qr(state, &renderer, &lang, &qr_of.id).await;
    let rendered = tokio::task::spawn_blocking(move || {
        let qr_text = qr::encode(&qr_of.credential).map_err(ApiError::from)?;
        let credentials: Vec<Value> = doses.into_iter().map(|r| r.credential).collect();
        let mut doc = divoc_pdf::CertificateDocument::from_credentials(&credentials, qr_text)
            .map_err(pdf_error)?;
        doc.certificate_id = qr_of.id.clone();
        doc.second_qr = second;
        match renderer.render(&doc, &lang) {
            // The second code is an extra: one too long for a QR code
            // never costs the holder their certificate.
            Err(divoc_pdf::PdfError::SecondQr(_)) => {
                tracing::warn!(
                    certificate = %qr_of.id,
                    "the PDF's second QR code does not fit in a QR code; printing without it"
                );
                doc.second_qr = None;
                renderer.render(&doc, &lang).map_err(pdf_error)
            }
            other => other.map_err(pdf_error),
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("task failed: {e}")))??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"certificate.pdf\"",
            ),
        ],
        rendered,
    )
        .into_response())
}

/// The second QR code the PDF template for `lang` asks for (`[second_qr]`):
/// certificate `id` in that format, made by its plugin, under the
/// template's label. `None` when the template asks for none, and — with a
/// warning — when the format is not loaded, cannot express this
/// certificate, fails, or is not QR text: the PDF is then printed with our
/// QR alone, never refused for the extra one. The warning names the
/// certificate and the format and says why in general terms only: a
/// plugin's message may quote the credential, i.e. personal data.
async fn second_qr(
    state: &AppState,
    renderer: &divoc_pdf::PdfRenderer,
    lang: &str,
    id: &str,
) -> Option<divoc_pdf::SecondQr> {
    use divoc_certificates::formats::{Artifact, ArtifactKind};
    let spec = renderer.second_qr(lang)?;
    let format = spec.format.to_owned();
    let Some(formats) = state.formats.clone() else {
        // A fixed wiring (the binary always enables formats): said once,
        // not on every certificate printed.
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                format = %format,
                "the PDF template asks for a second QR code, but no certificate formats are \
                 enabled; printing PDFs without it"
            );
        }
        return None;
    };
    let (certificate, wanted) = (id.to_owned(), format.clone());
    // Plugin calls are synchronous, like the service's. Not `blocking`:
    // that turns the error into an API error and logs its message; here
    // only its kind is wanted.
    let made = tokio::task::spawn_blocking(move || formats.artifact(&certificate, &wanted)).await;
    let why = match made {
        Ok(Ok((descriptor, Artifact::Text(text)))) if descriptor.kind == ArtifactKind::QrText => {
            // A chunked artifact (an old-style SMART Health Card) is one
            // QR per line; the page has room for one, the first.
            match text.lines().next().map(str::trim) {
                Some(first) if !first.is_empty() => return Some(spec.with_text(first)),
                _ => "the format plugin made an empty artifact",
            }
        }
        Ok(Ok(_)) => "the format does not make QR text",
        Ok(Err(CertError::NotFound(_))) => "the format is not loaded",
        Ok(Err(CertError::Validation(_))) => "the format cannot express this certificate",
        Ok(Err(CertError::Unavailable(_))) => "the format plugin is unavailable",
        Ok(Err(_)) => "making the artifact failed",
        Err(_) => "the task making the artifact failed",
    };
    tracing::warn!(
        certificate = %id,
        format = %format,
        reason = why,
        "the PDF's second QR code was not made; printing without it"
    );
    None
}

fn pdf_error(e: divoc_pdf::PdfError) -> ApiError {
    match e {
        divoc_pdf::PdfError::UnknownLanguage { available, .. } => ApiError::bad_request(
            "lang",
            format!(
                "no certificate template for that language; available: {}",
                available.join(", ")
            ),
        ),
        divoc_pdf::PdfError::Credential(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_printable_form",
            "this credential type has no printable certificate",
        ),
        other => {
            tracing::error!(error = %other, "PDF rendering failed");
            ApiError::internal("PDF rendering failed; see the server log")
        }
    }
}

/// The doses printed with `record`: the current, unrevoked certificate of
/// every other dose of the same recipient and program that the caller may
/// see, and `record` itself.
async fn doses_with(
    state: &AppState,
    p: &Principal,
    record: &Certificate,
) -> Result<Vec<Certificate>, ApiError> {
    let svc = service(state)?;
    let code = record.recipient_ref.clone();
    let all = blocking(move || svc.current_by_pre_enrollment(&code)).await?;
    let mut doses = vec![record.clone()];
    for r in all {
        if r.program == record.program
            && r.dose != record.dose
            && !r.is_revoked()
            && may_read(state, p, &r).await?
        {
            doses.push(r);
        }
    }
    Ok(doses)
}
