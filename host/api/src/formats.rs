//! Other certificate formats (EU DCC, SMART Health Cards, WHO DDCC, …),
//! made by certificate-format plugins from the stored credential, and their
//! revocation lists.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use divoc_certificates::formats::{Artifact, ArtifactKind, Formats};
use divoc_certificates::{qr, CertError};

use crate::auth::Caller;
use crate::certificates::{blocking, readable};
use crate::error::ApiError;
use crate::AppState;

pub(crate) fn formats(state: &AppState) -> Result<Formats, ApiError> {
    state
        .formats
        .clone()
        .ok_or_else(|| ApiError::not_found("certificate formats are not enabled"))
}

/// `GET /v1/formats`: every format a plugin makes here (public: a verifier
/// may ask what it can be shown).
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let formats = formats(&state)?;
    Ok(Json(json!({ "formats": formats.list() })).into_response())
}

/// `GET /v1/certificates/{id}/formats`: the formats this certificate can be
/// fetched in, with their links.
pub async fn of_certificate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = readable(&state, &caller, id).await?;
    let formats = formats(&state)?;
    let rows: Vec<Value> = formats
        .list()
        .into_iter()
        .map(|f| {
            let base = format!("/v1/certificates/{}/formats/{}", record.id, f.id);
            let qr = (f.kind == ArtifactKind::QrText).then(
                || json!({ "png": format!("{base}/qr.png"), "svg": format!("{base}/qr.svg") }),
            );
            json!({
                "id": f.id,
                "plugin": f.plugin,
                "mediaType": f.media_type,
                "kind": f.kind,
                "href": base,
                "qr": qr,
            })
        })
        .collect();
    Ok(Json(json!({ "certificateId": record.id, "formats": rows })).into_response())
}

async fn artifact(
    state: &AppState,
    caller: &Caller,
    id: String,
    format: String,
) -> Result<(divoc_certificates::formats::FormatDescriptor, Artifact), ApiError> {
    // The same rule as reading the certificate itself.
    let record = readable(state, caller, id).await?;
    let formats = formats(state)?;
    blocking(move || formats.artifact(&record.id, &format)).await
}

/// `GET /v1/certificates/{id}/formats/{format}`: the artifact, as its
/// media type (QR text as `text/plain`, JSON as its JSON media type).
pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, format)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (descriptor, artifact) = artifact(&state, &caller, id, format).await?;
    let content_type = match descriptor.kind {
        ArtifactKind::QrText => "text/plain; charset=utf-8".to_owned(),
        _ => descriptor.media_type.clone(),
    };
    let body = match artifact {
        Artifact::Text(t) => t.into_bytes(),
        Artifact::Bytes(b) => b,
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/certificates/{id}/formats/{format}/{file}`: `qr.png`, `qr.svg`
/// (one QR per line of the artifact: a chunked SMART Health Card is
/// several) or `qr.txt`.
pub async fn render(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, format, file)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    if !matches!(file.as_str(), "qr.png" | "qr.svg" | "qr.txt") {
        return Err(ApiError::not_found(format!("rendering `{file}`")));
    }
    let (descriptor, artifact) = artifact(&state, &caller, id, format).await?;
    let Artifact::Text(text) = artifact else {
        return Err(ApiError::not_found(format!(
            "format {} is not QR text",
            descriptor.id
        )));
    };
    if descriptor.kind != ArtifactKind::QrText {
        return Err(ApiError::not_found(format!(
            "format {} is not QR text",
            descriptor.id
        )));
    }
    let (content_type, body) = blocking(move || {
        // A chunked artifact is one QR per line; the first is rendered here
        // and each has its own index (?part= is not offered: chunking is
        // deprecated for new SMART Health Cards, and ours fit one QR).
        let first = text.lines().next().unwrap_or_default().to_owned();
        match file.as_str() {
            "qr.png" => Ok(("image/png", qr::render_png(first.as_bytes(), 4)?)),
            "qr.svg" => Ok((
                "image/svg+xml",
                qr::render_svg(first.as_bytes())?.into_bytes(),
            )),
            _ => Ok::<_, CertError>(("text/plain; charset=utf-8", text.into_bytes())),
        }
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/formats/eu-dcc/revocations` (public): the EU DCC revocation
/// hashes of every withdrawn certificate (hash types UCI and
/// COUNTRYCODEUCI), for a national backend to take into the DCC revocation
/// network, and for verifiers to cache.
pub async fn eu_dcc_revocations(State(state): State<AppState>) -> Result<Response, ApiError> {
    let formats = formats(&state)?;
    let document = blocking(move || formats.eu_dcc_revocations()).await?;
    let Some(document) = document else {
        return Err(ApiError::not_found(
            "no EU DCC country is configured ([plugins.config.format-eu-dcc] country)",
        ));
    };
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(document),
    )
        .into_response())
}

/// `GET /.well-known/crl/{kid}.json` (public): the SMART Health Card
/// revocation list of the ES256 key `kid` (SMART Health Cards Framework,
/// "Revocation": `method: "rid"`, `ctr`, `rids`).
pub async fn shc_revocations(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let Some(kid) = file.strip_suffix(".json") else {
        return Err(ApiError::not_found("revocation lists are <kid>.json"));
    };
    let known = state
        .es256
        .as_ref()
        .is_some_and(|ring| ring.find(kid).is_some());
    if !known {
        return Err(ApiError::not_found(format!("no key {kid}")));
    }
    let formats = formats(&state)?;
    let kid = kid.to_owned();
    let document = blocking(move || formats.shc_revocations(&kid)).await?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(document),
    )
        .into_response())
}
