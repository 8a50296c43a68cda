//! Appointment routes: a facility's slots and day, booking, cancelling and
//! rescheduling. The rules are `divoc_rollout::appointments`'; here the
//! caller's role and facilities are checked.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use divoc_rollout::{Booking, Reschedule};

use crate::auth::{Caller, Principal, Role};
use crate::certificates::principal;
use crate::error::{ApiError, ApiQuery};
use crate::rollout::{blocking, parse_body, service};
use crate::AppState;

/// Whether `p` may act for `facility`: every caller the route admits,
/// except a facility-bound token for another facility.
fn serves(p: &Principal, facility: &str) -> bool {
    !p.role.facility_bound() || p.facilities.iter().any(|f| f == facility)
}

/// `GET /v1/facilities/{code}/slots` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotsQuery {
    programme: Option<String>,
    from: Option<String>,
    days: Option<u32>,
}

/// `GET /v1/facilities/{code}/slots?programme=C19[&from=YYYY-MM-DD][&days=N]`:
/// the bookable slots with the seats left. Not personal data: any role.
pub async fn slots(
    State(state): State<AppState>,
    Path(code): Path<String>,
    ApiQuery(q): ApiQuery<SlotsQuery>,
) -> Result<Response, ApiError> {
    let programme = q
        .programme
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("programme", "name the programme: ?programme="))?;
    let svc = service(&state)?;
    let slots = blocking(move || svc.slots(&code, &programme, q.from.as_deref(), q.days)).await?;
    Ok(Json(json!({ "slots": slots })).into_response())
}

/// `GET /v1/facilities/{code}/day` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayQuery {
    date: Option<String>,
}

/// `GET /v1/facilities/{code}/day[?date=YYYY-MM-DD]`: the facility's
/// appointments that day (default today), with the people's names.
pub async fn day(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(code): Path<String>,
    ApiQuery(q): ApiQuery<DayQuery>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    if !serves(p, &code) {
        return Err(ApiError::not_found(format!("no facility {code}")));
    }
    let svc = service(&state)?;
    let day = blocking(move || svc.day(&code, q.date.as_deref())).await?;
    Ok(Json(json!({ "appointments": day })).into_response())
}

/// `POST /v1/appointments`: books a seat; 201 with the appointment, 409
/// `slot_full` or `duplicate` (the open booking's id in `existing`).
pub async fn book(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let booking: Booking = parse_body(&body)?;
    if !serves(p, &booking.facility) {
        return Err(ApiError::forbidden_facility("facility"));
    }
    if p.role == Role::Recipient && !recipient_owns(&state, p, booking.enrolment.clone()).await? {
        return Err(
            ApiError::forbidden("a recipient books for the people under their number")
                .with_field("enrolment"),
        );
    }
    let (svc, actor) = (service(&state)?, p.name.clone());
    let appointment = blocking(move || svc.book(&booking, &actor)).await?;
    Ok((StatusCode::CREATED, Json(appointment)).into_response())
}

/// The appointment `id` if `p` may see it (404 otherwise, as if there were
/// none).
async fn visible(
    state: &AppState,
    p: &Principal,
    id: String,
) -> Result<divoc_rollout::Appointment, ApiError> {
    let svc = service(state)?;
    let missing = ApiError::not_found(format!("no appointment {id}"));
    let a = blocking(move || svc.appointment(&id)).await?;
    let theirs = match p.role {
        Role::Recipient => recipient_owns(state, p, a.enrolment.clone()).await?,
        _ => serves(p, &a.facility),
    };
    if theirs {
        Ok(a)
    } else {
        Err(missing)
    }
}

/// Whether a recipient token's number is the enrolment's (`false` if
/// there is no such enrolment).
async fn recipient_owns(state: &AppState, p: &Principal, code: String) -> Result<bool, ApiError> {
    let svc = service(state)?;
    match blocking(move || svc.get::<divoc_rollout::Enrolment>(&code)).await {
        Ok(e) => Ok(crate::recipients::owns(p, &e.record)),
        Err(e) if e.status == StatusCode::NOT_FOUND => Ok(false),
        Err(e) => Err(e),
    }
}

/// `GET /v1/appointments/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    Ok(Json(visible(&state, p, id).await?).into_response())
}

/// `POST /v1/appointments/{id}/cancel`: the seat is given back.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    visible(&state, p, id.clone()).await?;
    let (svc, actor) = (service(&state)?, p.name.clone());
    let by_recipient = p.role == Role::Recipient;
    let a = blocking(move || svc.cancel_appointment(&id, &actor, by_recipient)).await?;
    Ok(Json(a).into_response())
}

/// `POST /v1/appointments/{id}/reschedule` with `{"date", "time",
/// "facility"?}`: moves the booking, or leaves it where it was (409
/// `slot_full`).
pub async fn reschedule(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let to: Reschedule = parse_body(&body)?;
    visible(&state, p, id.clone()).await?;
    if let Some(f) = &to.facility {
        if !serves(p, f) {
            return Err(ApiError::forbidden_facility("facility"));
        }
    }
    let (svc, actor) = (service(&state)?, p.name.clone());
    let by_recipient = p.role == Role::Recipient;
    let a = blocking(move || svc.reschedule(&id, &to, &actor, by_recipient)).await?;
    Ok(Json(a).into_response())
}

/// The certificate service a vaccination issues through.
fn certificates(state: &AppState) -> Result<divoc_certificates::CertificateService, ApiError> {
    state
        .certificates
        .clone()
        .ok_or_else(|| ApiError::unavailable("the certificate module is not enabled"))
}

/// `POST /v1/vaccinations`: records a vaccination and issues its
/// certificate (201; 200 with `created: false` for the same one again);
/// 422 naming the field or the dose's date, 429 `rate_limited` at the
/// facility's daily rate, 409 for a dose given already.
pub async fn vaccinate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let v: divoc_rollout::Vaccinate = parse_body(&body)?;
    if !serves(p, &v.facility) {
        return Err(ApiError::forbidden_facility("facility"));
    }
    let certificates = certificates(&state)?;
    let (svc, actor, rates) = (service(&state)?, p.name.clone(), p.daily_rates.clone());
    let done = blocking(move || svc.vaccinate(&certificates, &v, &actor, &rates)).await?;
    let status = if done.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(done)).into_response())
}

/// `POST /v1/facility/sync`: vaccinations a facility app recorded offline,
/// each with the app's own id; every item answered (done, refused with the
/// reason, or retry), the same answer again for an item sent again.
pub async fn sync(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let request: divoc_rollout::SyncRequest = parse_body(&body)?;
    if !serves(p, &request.facility) {
        return Err(ApiError::forbidden_facility("facility"));
    }
    let certificates = certificates(&state)?;
    let (svc, actor, rates) = (service(&state)?, p.name.clone(), p.daily_rates.clone());
    let items =
        blocking(move || svc.sync_vaccinations(&certificates, &request, &actor, &rates)).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// `GET /v1/facility/sync` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    facility: Option<String>,
    since: Option<String>,
    after: Option<String>,
}

/// `GET /v1/facility/sync[?facility=F][&since=CURSOR][&after=…]`: what the
/// facility's app needs offline, changed since its last `cursor`.
pub async fn snapshot(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let facility = match (q.facility, p.facilities.as_slice()) {
        (Some(f), _) => f,
        (None, [only]) if p.role.facility_bound() => only.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "facility",
                "name the facility: ?facility=",
            ))
        }
    };
    if !serves(p, &facility) {
        return Err(ApiError::forbidden_facility("facility"));
    }
    let number = |field: &str, v: Option<String>| -> Result<Option<i64>, ApiError> {
        v.map(|s| {
            s.parse()
                .map_err(|_| ApiError::bad_request(field, "not a cursor this service gave"))
        })
        .transpose()
    };
    let since = number("since", q.since)?;
    let after = number("after", q.after)?;
    let svc = service(&state)?;
    let snapshot = blocking(move || svc.facility_snapshot(&facility, since, after)).await?;
    Ok(Json(snapshot).into_response())
}

/// `GET /v1/programmes/{code}/progress`: enrolled, booked and vaccinated
/// by dose, each by district.
pub async fn progress(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let progress = blocking(move || svc.progress(&code)).await?;
    Ok(Json(progress).into_response())
}
