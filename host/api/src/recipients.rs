//! A recipient's own routes: signing in with a code sent to their phone,
//! enrolling themselves and their family, and seeing their enrolments and
//! appointments. The rules are `divoc_rollout`'s.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use divoc_rollout::Enrolment;

use crate::auth::{Caller, Principal};
use crate::certificates::principal;
use crate::error::ApiError;
use crate::rollout::{blocking, blocking_unnamed, parse_body, service};
use crate::AppState;

/// `POST /v1/recipients/otp` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpRequest {
    phone: String,
}

/// `POST /v1/recipients/otp` `{"phone"}`: sends a sign-in code (202).
pub async fn send_otp(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let r: OtpRequest = parse_body(&body)?;
    let svc = service(&state)?;
    let sent = blocking(move || svc.send_otp(&r.phone)).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)).into_response())
}

/// `POST /v1/recipients/token` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    phone: String,
    code: String,
}

/// `POST /v1/recipients/token` `{"phone", "code"}`: a recipient token for
/// the number (201), shown this once.
pub async fn token(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let r: TokenRequest = parse_body(&body)?;
    let svc = service(&state)?;
    let contact = blocking(move || svc.verify_otp(&r.phone, &r.code)).await?;
    let (secret, expires) = crate::tokens::issue_recipient(&state, &contact).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": secret,
            "role": "recipient",
            "expiresAt": divoc_time::format_millis(expires),
        })),
    )
        .into_response())
}

/// The phone a recipient token proved (`tel:<digits>`), if any.
pub(crate) fn phone_of(p: &Principal) -> Option<String> {
    p.contacts
        .iter()
        .find_map(|c| c.strip_prefix("tel:"))
        .map(str::to_owned)
}

/// Whether a recipient token's number is the enrolment's.
pub(crate) fn owns(p: &Principal, enrolment: &Enrolment) -> bool {
    let Some(phone) = phone_of(p) else {
        return false;
    };
    enrolment
        .phone
        .as_deref()
        .is_some_and(|e| divoc_rollout::enrolment::same_phone(e, &phone))
}

/// `POST /v1/recipients/enrolments`: a recipient enrols themself or a
/// member of their family under their number (at most
/// `[rollout] members-per-contact`); the programme's policy decides.
pub async fn enrol(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let mut record: Enrolment = parse_body(&body)?;
    let phone = phone_of(p).ok_or_else(|| {
        ApiError::bad_request(
            "phone",
            "this token proves no phone number: sign in with a code",
        )
    })?;
    match &record.phone {
        None => record.phone = Some(phone),
        Some(given) if divoc_rollout::enrolment::same_phone(given, &phone) => {}
        Some(_) => {
            return Err(ApiError::forbidden(
                "a recipient enrols under the number they signed in with",
            )
            .with_field("phone"))
        }
    }
    // Where they are enrolled is the registry's to say.
    record.facility = None;
    let (svc, actor) = (service(&state)?, p.name.clone());
    let stored = blocking_unnamed(move || svc.enrol(record, &actor)).await?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

/// `GET /v1/recipients/me`: the enrolments under the recipient's number,
/// and their appointments.
pub async fn me(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let p = principal(&caller)?;
    let Some(phone) = phone_of(p) else {
        // A token that proves no number has no one under it.
        return Ok(Json(json!({ "enrolments": [], "appointments": [] })).into_response());
    };
    let svc = service(&state)?;
    let (enrolments, appointments) = blocking(move || {
        let enrolments = svc.enrolments_of_phone(&phone)?;
        let mut appointments = Vec::new();
        for e in &enrolments {
            appointments.extend(svc.appointments_of(&e.record.code)?);
        }
        Ok((enrolments, appointments))
    })
    .await?;
    Ok(Json(json!({ "enrolments": enrolments, "appointments": appointments })).into_response())
}
