//! The rollout registry's routes: `/v1/vaccines`, `/v1/programmes`,
//! `/v1/facilities` and `/v1/vaccinators`, each with list (filters and a
//! cursor), create, read, replace (`If-Match` for safe updates), delete and
//! history. The rules are `divoc-rollout`'s; this module parses, scopes and
//! answers.
//!
//! Facility scoping: a facility-bound token (roles `facility`,
//! `facility-admin` and `vaccinator`) sees only its own facilities and the vaccinators who work
//! at them; anything else answers 404, as if it did not exist, so a token
//! cannot learn which codes another facility uses.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

use divoc_rollout::{
    Enrolment, Facility, ListFilter, Programme, RecordKind, RolloutError, RolloutService, Stored,
    Vaccinator, Vaccine,
};

use crate::auth::{Caller, Principal, Role};
use crate::certificates::principal;
use crate::error::{ApiError, ApiQuery};
use crate::AppState;

impl From<RolloutError> for ApiError {
    fn from(e: RolloutError) -> ApiError {
        match e {
            RolloutError::Validation(errors) => ApiError::invalid_fields(
                errors
                    .iter()
                    .map(|f| (f.field.as_str(), f.message.as_str())),
            ),
            RolloutError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            RolloutError::Duplicate { existing, message } => {
                ApiError::new(StatusCode::CONFLICT, "duplicate", message)
                    .with_details(json!({ "existing": existing }))
            }
            e @ RolloutError::Stale { .. } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "stale", e.to_string())
                    .with_field("If-Match")
            }
            RolloutError::NotFound(m) => ApiError::not_found(m),
            RolloutError::Erased(m) => ApiError::new(StatusCode::GONE, "erased", m),
            RolloutError::Full(m) => ApiError::new(StatusCode::CONFLICT, "slot_full", m),
            RolloutError::Ineligible(reasons) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ineligible",
                format!("not eligible: {}", reasons.join("; ")),
            )
            .with_details(json!({ "reasons": reasons })),
            RolloutError::Unavailable(m) => ApiError::unavailable(m),
            RolloutError::TooSoon(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_soon", m),
            RolloutError::RateLimited {
                limit,
                value,
                resets_at,
            } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "{limit} records at most {value} a day; the count starts again at {resets_at}"
                ),
            )
            .with_details(json!({ "limit": limit, "value": value, "resetsAt": resets_at })),
            RolloutError::Certificate(e) => ApiError::from(e),
            RolloutError::Input(m) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "input_cut_off",
                format!("the upload could not be read to its end ({m}); rows before were stored"),
            )
            .with_field("body"),
            other => {
                tracing::error!(error = %other, "rollout operation failed");
                ApiError::internal("the registry failed; see the server log")
            }
        }
    }
}

/// [`blocking`] for callers who may not read every enrolment: a duplicate
/// is refused without naming the existing record (its code would tell who
/// is enrolled, and let them read it).
pub(crate) async fn blocking_unnamed<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RolloutError> + Send + 'static,
) -> Result<T, ApiError> {
    let unnamed = |r: Result<T, RolloutError>| {
        r.map_err(|e| match e {
            RolloutError::Duplicate { .. } => {
                RolloutError::Conflict("this person is enrolled in the programme already".into())
            }
            other => other,
        })
    };
    blocking(move || unnamed(f())).await
}

pub(crate) fn service(state: &AppState) -> Result<RolloutService, ApiError> {
    state
        .rollout
        .clone()
        .ok_or_else(|| ApiError::unavailable("the rollout module is not enabled"))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RolloutError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(ApiError::from)
}

/// Whether `p` is scoped to facilities.
fn facility_bound(p: &Principal) -> bool {
    p.role.facility_bound()
}

/// The list query string; each kind accepts the filters that mean
/// something for it and refuses the others by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    district: Option<String>,
    state: Option<String>,
    #[serde(rename = "type")]
    site_type: Option<String>,
    programme: Option<String>,
    vaccine: Option<String>,
    facility: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// How each kind is scoped and filtered at the HTTP edge.
pub trait Scoped: RecordKind {
    /// The query parameters this kind filters on, besides `status`,
    /// `cursor` and `limit`.
    const FILTERS: &'static [&'static str];
    /// Whether a facility-bound `p` may see `record`.
    fn visible(p: &Principal, record: &Self) -> bool;
    /// What a facility-bound `p` may see of a visible record.
    fn redact(_p: &Principal, _record: &mut Self) {}
    /// The same, for a kept version (JSON).
    fn redact_json(_p: &Principal, _record: &mut Value) {}
}

impl Scoped for Vaccine {
    const FILTERS: &'static [&'static str] = &[];
    fn visible(_: &Principal, _: &Self) -> bool {
        true
    }
}

impl Scoped for Programme {
    const FILTERS: &'static [&'static str] = &["vaccine"];
    fn visible(_: &Principal, _: &Self) -> bool {
        true
    }
}

impl Scoped for Facility {
    const FILTERS: &'static [&'static str] = &["district", "state", "type", "programme"];
    fn visible(p: &Principal, record: &Self) -> bool {
        p.facilities.contains(&record.code)
    }
}

impl Scoped for Vaccinator {
    const FILTERS: &'static [&'static str] = &["facility", "programme"];
    fn visible(p: &Principal, record: &Self) -> bool {
        record.facilities.iter().any(|f| p.facilities.contains(f))
    }
    /// A vaccinator who also works elsewhere: the other facilities' codes
    /// are not the caller's to learn.
    fn redact(p: &Principal, record: &mut Self) {
        record.facilities.retain(|f| p.facilities.contains(f));
    }
    fn redact_json(p: &Principal, record: &mut Value) {
        if let Some(list) = record.get_mut("facilities").and_then(Value::as_array_mut) {
            list.retain(|f| {
                f.as_str()
                    .is_some_and(|f| p.facilities.iter().any(|own| own == f))
            });
        }
    }
}

impl Scoped for Enrolment {
    const FILTERS: &'static [&'static str] = &["district", "state", "programme", "facility"];
    fn visible(p: &Principal, record: &Self) -> bool {
        record
            .facility
            .as_ref()
            .is_some_and(|f| p.facilities.contains(f))
    }
}

fn filter_for<T: Scoped>(p: &Principal, q: ListQuery) -> Result<ListFilter, ApiError> {
    let given = [
        ("district", q.district.is_some()),
        ("state", q.state.is_some()),
        ("type", q.site_type.is_some()),
        ("programme", q.programme.is_some()),
        ("vaccine", q.vaccine.is_some()),
        ("facility", q.facility.is_some()),
    ];
    if let Some((name, _)) = given
        .iter()
        .find(|(name, set)| *set && !T::FILTERS.contains(name))
    {
        return Err(ApiError::bad_request(
            name,
            format!("{} lists do not filter by {name}", T::KIND),
        ));
    }
    if let Some(status) = &q.status {
        if !["active", "inactive", "blocked"].contains(&status.as_str()) {
            return Err(ApiError::bad_request(
                "status",
                "must be active, inactive or blocked",
            ));
        }
    }
    if let Some(t) = &q.site_type {
        if !["fixed", "mobile", "both"].contains(&t.as_str()) {
            return Err(ApiError::bad_request(
                "type",
                "must be fixed, mobile or both",
            ));
        }
    }
    let after = match &q.cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::bad_request("cursor", "not a cursor this service gave (use next_cursor)")
        })?),
    };
    let link = match (q.programme, q.vaccine, q.facility) {
        (Some(p), None, None) => Some(("programme".to_owned(), p)),
        (None, Some(v), None) => Some(("vaccine".to_owned(), v)),
        (None, None, Some(f)) => Some(("facility".to_owned(), f)),
        (None, None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "programme",
                "filter by one of programme, vaccine and facility at a time",
            ))
        }
    };
    let mut filter = ListFilter {
        status: q.status,
        district: q.district,
        state: q.state,
        kind_of_site: q.site_type,
        link,
        codes: None,
        after,
        updated_since: None,
    };
    if facility_bound(p) {
        match T::KIND {
            "facility" => filter.codes = Some(p.facilities.clone()),
            "vaccinator" | "enrolment" => {
                // A vaccinator or enrolment list is a facility's: the one named, else the
                // token's only facility.
                let facility = match (&filter.link, p.facilities.as_slice()) {
                    // A token serving no facility sees no vaccinator.
                    (_, []) => {
                        filter.codes = Some(Vec::new());
                        return Ok(filter);
                    }
                    (Some((rel, f)), _) if rel == "facility" => f.clone(),
                    (Some(_), [only]) | (None, [only]) => only.clone(),
                    _ => {
                        return Err(ApiError::bad_request(
                            "facility",
                            "this token serves several facilities: name one with ?facility=",
                        ))
                    }
                };
                if !p.facilities.contains(&facility) {
                    return Err(ApiError::forbidden_facility("facility"));
                }
                if filter
                    .link
                    .as_ref()
                    .is_some_and(|(rel, _)| rel != "facility")
                {
                    return Err(ApiError::bad_request(
                        "programme",
                        "a facility token lists its own facility's vaccinators: filter by facility",
                    ));
                }
                filter.link = Some(("facility".to_owned(), facility));
            }
            _ => {}
        }
    }
    Ok(filter)
}

/// `GET /v1/{kind}`: a page of records in the order they were created.
pub async fn list<T: Scoped>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=divoc_rollout::MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            format!("must be 1-{}", divoc_rollout::MAX_PAGE),
        ));
    }
    let filter = filter_for::<T>(p, query)?;
    let svc = service(&state)?;
    let mut page = blocking(move || svc.list::<T>(&filter, limit)).await?;
    if facility_bound(p) {
        for item in &mut page.items {
            T::redact(p, &mut item.record);
        }
    }
    Ok(Json(page).into_response())
}

/// A JSON body as `T`: 400 when it is not JSON, 422 naming the field
/// serde could not take (unknown, missing or of the wrong type).
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not JSON: {inner}"),
            )
            .with_field("body");
        }
        // serde names an unknown or missing field in its message.
        let field = if field == "." {
            inner
                .to_string()
                .split('`')
                .nth(1)
                .map_or_else(|| "body".to_owned(), str::to_owned)
        } else {
            field
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("{field}: {inner}"),
        )
        .with_field(field)
    })
}

fn with_etag<T: serde::Serialize>(status: StatusCode, stored: &Stored<T>) -> Response {
    let etag = format!("\"{}\"", stored.version);
    (status, [(header::ETAG, etag)], Json(stored)).into_response()
}

/// `POST /v1/{kind}`: 201 with the stored record (version 1).
pub async fn create<T: Scoped>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let record: T = parse_body(&body)?;
    let (svc, actor) = (service(&state)?, p.name.clone());
    let stored = blocking(move || svc.create(record, &actor)).await?;
    Ok(with_etag(StatusCode::CREATED, &stored))
}

async fn visible<T: Scoped>(
    state: &AppState,
    p: &Principal,
    code: String,
) -> Result<Stored<T>, ApiError> {
    let svc = service(state)?;
    let missing = ApiError::not_found(format!("no {} {code}", T::KIND));
    let mut stored = blocking(move || svc.get::<T>(&code)).await?;
    if facility_bound(p) {
        if !T::visible(p, &stored.record) {
            return Err(missing);
        }
        T::redact(p, &mut stored.record);
    }
    Ok(stored)
}

/// `GET /v1/{kind}/{code}`, with the version as its `ETag`.
pub async fn get<T: Scoped>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let stored = visible::<T>(&state, p, code).await?;
    Ok(with_etag(StatusCode::OK, &stored))
}

/// `If-Match: "3"`: the version the caller read.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("If-Match", "must be a version as an ETag, e.g. \"3\"")
        })
}

/// `PUT /v1/{kind}/{code}`: the next version; 412 if `If-Match` names
/// another.
pub async fn replace<T: Scoped>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let expected = if_match(&headers)?;
    let record: T = parse_body(&body)?;
    let (svc, actor) = (service(&state)?, p.name.clone());
    let stored = blocking(move || svc.replace(&code, record, expected, &actor)).await?;
    Ok(with_etag(StatusCode::OK, &stored))
}

/// `DELETE /v1/{kind}/{code}`: 204; 409 while others refer to it.
pub async fn delete<T: Scoped>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let (svc, actor) = (service(&state)?, p.name.clone());
    blocking(move || svc.delete::<T>(&code, &actor)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/{kind}/{code}/history`: every version, oldest first.
pub async fn history<T: Scoped>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    if facility_bound(p) {
        // Scoped by the record as it is now.
        visible::<T>(&state, p, code.clone()).await?;
    }
    let svc = service(&state)?;
    let mut versions = blocking(move || svc.history::<T>(&code)).await?;
    // Who changed the registry is for those who run it.
    let operator = matches!(p.role, Role::Admin | Role::Controller | Role::Monitoring);
    for v in &mut versions {
        if !operator {
            v.actor = String::new();
        }
        if facility_bound(p) {
            if let Some(record) = v.record.as_mut() {
                T::redact_json(p, record);
            }
        }
    }
    Ok(Json(json!({ "versions": versions })).into_response())
}

/// The query of `POST /v1/uploads/{kind}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    country: Option<String>,
    programme: Option<String>,
}

/// A blocking reader over a request body that arrives on the async side:
/// chunks come through a small bounded channel, so an upload of any size
/// holds a few chunks in memory at a time.
struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
    too_large: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

fn body_reader(body: axum::body::Body) -> BodyReader {
    use futures_util::StreamExt as _;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let too_large = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = too_large.clone();
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                let limit = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if limit {
                    flag.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                e.to_string()
            });
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    BodyReader {
        rx,
        current: Bytes::new(),
        too_large,
    }
}

/// `POST /v1/uploads/{kind}` (`facilities`, `vaccinators` or `enrolments`
/// with `?programme=`): the body is the CSV file in DIVOC's columns,
/// streamed (`server.upload-limit-mib`, `server.upload-timeout-s`). 201
/// with the report; the refused rows are at `GET /v1/uploads/{id}/errors.csv`.
pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(kind): Path<String>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let kind = divoc_rollout::UploadKind::from_name(&kind).ok_or_else(|| {
        ApiError::not_found(format!(
            "no upload kind {kind}: facilities, vaccinators or enrolments"
        ))
    })?;
    let (svc, actor) = (service(&state)?, p.name.clone());
    let options = divoc_rollout::UploadOptions {
        country: query.country,
        programme: query.programme,
    };
    let _pass = state.admission.imports.enter().await?;
    let reader = body_reader(body);
    let too_large = reader.too_large.clone();
    let result = blocking(move || svc.upload(kind, reader, &options, &actor)).await;
    if too_large.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the upload is larger than this service accepts (server.upload-limit-mib); rows before the limit were stored",
        ));
    }
    Ok((StatusCode::CREATED, Json(result?)).into_response())
}

/// The query of `GET /v1/uploads`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadsQuery {
    kind: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/uploads`: the newest uploads first.
pub async fn uploads(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UploadsQuery>,
) -> Result<Response, ApiError> {
    let kind = match query.kind.as_deref() {
        None => None,
        Some(k) => Some(divoc_rollout::UploadKind::from_name(k).ok_or_else(|| {
            ApiError::bad_request("kind", "must be facilities, vaccinators or enrolments")
        })?),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit", "must be 1-1000"));
    }
    let svc = service(&state)?;
    let items = blocking(move || svc.uploads(kind, None, limit)).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// `GET /v1/uploads/{id}`: one upload's report.
pub async fn upload_report(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let report = blocking(move || svc.upload_report(&id)).await?;
    Ok(Json(report).into_response())
}

/// `GET /v1/uploads/{id}/errors.csv`: the refused rows, each with the
/// columns it failed on and why, streamed page by page.
pub async fn upload_errors(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Result<(), RolloutError>>();
    tokio::task::spawn_blocking(move || {
        let mut first = Some(first_tx);
        let result = svc.write_upload_errors(&id, |chunk| {
            // The header is out: the answer is a 200 from here on.
            if let Some(f) = first.take() {
                let _ = f.send(Ok(()));
            }
            tx.blocking_send(chunk).is_ok()
        });
        match (result, first) {
            (Err(e), Some(f)) => {
                let _ = f.send(Err(e));
            }
            (Err(e), None) => tracing::warn!(error = %e, "errors.csv cut short"),
            (Ok(()), _) => {}
        }
    });
    first_rx
        .await
        .map_err(|_| ApiError::internal("the errors.csv task ended early"))??;
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok::<_, std::convert::Infallible>(Bytes::from(c))))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /v1/programmes/{code}/facilities`: activates or deactivates the
/// facilities matching `filter` for the programme and sets their daily
/// rate; answers how many matched and changed.
pub async fn activate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let activation: divoc_rollout::Activation = parse_body(&body)?;
    let (svc, actor) = (service(&state)?, p.name.clone());
    let _pass = state.admission.imports.enter().await?;
    let report = blocking(move || svc.activate(&code, &activation, &actor)).await?;
    Ok(Json(report).into_response())
}

/// `POST /v1/enrolments`: enrols a person; 201 with the record and its
/// new enrolment code, 409 `duplicate` (with the existing code) if the
/// person is enrolled in the programme.
pub async fn enrol(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let mut record: Enrolment = parse_body(&body)?;
    // Facility staff register walk-ins at their own facility.
    if facility_bound(p) {
        match (&record.facility, p.facilities.as_slice()) {
            (None, [only]) => record.facility = Some(only.clone()),
            (Some(f), _) if p.facilities.contains(f) => {}
            (None, _) => {
                return Err(ApiError::bad_request(
                    "facility",
                    "name the facility the walk-in is registered at",
                ))
            }
            (Some(_), _) => return Err(ApiError::forbidden_facility("facility")),
        }
    }
    let (svc, actor) = (service(&state)?, p.name.clone());
    let stored = if facility_bound(p) {
        // The existing enrolment may be another facility's: not named.
        blocking_unnamed(move || svc.enrol(record, &actor)).await?
    } else {
        blocking(move || svc.enrol(record, &actor)).await?
    };
    Ok(with_etag(StatusCode::CREATED, &stored))
}
