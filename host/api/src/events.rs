//! `GET /v1/events/stream`: the event log as Server-Sent Events, for the
//! monitoring role (and admin).
//!
//! Each event's SSE `id` is its sequence number, its `event` its kind, its
//! `data` the JSON of [`divoc_insight::stream::StreamEvent`]. A client
//! resumes with the `Last-Event-ID` header (browsers' `EventSource` sends
//! it on reconnecting) or `?after=SEQ`; without either the stream starts at
//! the log's end. `?kinds=certificate.,feedback.` keeps those kind
//! prefixes. Payloads carry ids, never personal data.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use divoc_insight::stream;
use futures_util::stream::{self as fstream, Stream};
use serde::Deserialize;

use crate::error::{ApiError, ApiQuery};
use crate::AppState;

/// How many log rows one read looks at.
const SCAN: usize = 512;
/// How long the stream waits when it has caught up with the log.
const IDLE: Duration = Duration::from_millis(250);

/// `GET /v1/events/stream` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    after: Option<i64>,
    kinds: Option<String>,
}

/// `GET /v1/events/stream[?after=SEQ][&kinds=PREFIX,…]`.
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    let last_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID", "must be an event's sequence number")
                })?,
        ),
    };
    if q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::bad_request("after", "must be 0 or more"));
    }
    let kinds = stream::kinds(q.kinds.as_deref());
    let after = match last_id.or(q.after) {
        Some(a) => a,
        None => {
            let db = state.db.clone();
            tokio::task::spawn_blocking(move || db.read(divoc_storage::events::head))
                .await
                .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
                .map_err(|e| {
                    tracing::error!(error = %e, "reading the event log failed");
                    ApiError::internal("reading the event log failed; see the server log")
                })?
        }
    };
    let events = live(state, after, kinds);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// What the stream carries between reads.
struct Cursor {
    state: AppState,
    after: i64,
    kinds: Vec<String>,
    pending: std::collections::VecDeque<stream::StreamEvent>,
}

/// The events after `after`, as they are appended, until the server stops
/// or the client goes away.
fn live(
    state: AppState,
    after: i64,
    kinds: Vec<String>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let cursor = Cursor {
        state,
        after,
        kinds,
        pending: Default::default(),
    };
    fstream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.pending.pop_front() {
                let data = serde_json::to_string(&e).unwrap_or_default();
                let event = SseEvent::default()
                    .id(e.seq.to_string())
                    .event(e.kind.clone())
                    .data(data);
                return Some((Ok(event), c));
            }
            if *c.state.stopping.borrow() {
                return None;
            }
            let (db, after, kinds) = (c.state.db.clone(), c.after, c.kinds.clone());
            let page =
                tokio::task::spawn_blocking(move || stream::page(&db, after, &kinds, SCAN)).await;
            match page {
                Ok(Ok(page)) => {
                    let moved = page.through > c.after;
                    c.after = page.through;
                    c.pending.extend(page.events);
                    if !moved {
                        let mut stopping = c.state.stopping.clone();
                        if stopping.has_changed().is_err() {
                            // No one will say stop (the sender is gone).
                            tokio::time::sleep(IDLE).await;
                        } else {
                            tokio::select! {
                                _ = tokio::time::sleep(IDLE) => {}
                                _ = stopping.changed() => {}
                            }
                        }
                    }
                }
                Ok(Err(e)) => {
                    // The client reconnects with its Last-Event-ID.
                    tracing::warn!(error = %e, "event stream: cannot read the log");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event stream: read task failed");
                    return None;
                }
            }
        }
    })
}
