//! Reading the event log forward for the live stream
//! (`GET /v1/events/stream`): pages of the events after a cursor, of the
//! kinds asked for, and how far the read went, so that a filtered reader
//! moves past the events it skipped.

use divoc_storage::events::{self, Event};
use divoc_storage::{Database, StorageError};
use serde::Serialize;
use serde_json::Value;

/// One event as the stream shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamEvent {
    /// Its sequence number: the stream's event id, to resume after.
    pub seq: i64,
    /// e.g. `certificate.issued`.
    pub kind: String,
    /// When it happened (RFC 3339, UTC).
    pub occurred_at: String,
    /// The id it is about (a certificate, an enrolment, a facility code).
    pub subject: String,
    /// Its data: ids and counts, no personal data.
    pub payload: Value,
}

impl From<Event> for StreamEvent {
    fn from(e: Event) -> Self {
        StreamEvent {
            seq: e.seq,
            occurred_at: divoc_time::format_millis(e.occurred_at_ms),
            kind: e.kind,
            subject: e.subject,
            payload: e.payload,
        }
    }
}

/// A page of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The events of the kinds asked for, oldest first.
    pub events: Vec<StreamEvent>,
    /// The last sequence read (matching or not): the next page's `after`.
    pub through: i64,
}

/// Up to `scan` events after `after`, those whose kind starts with one of
/// `kinds` (all when empty).
pub fn page(
    db: &Database,
    after: i64,
    kinds: &[String],
    scan: usize,
) -> Result<Page, StorageError> {
    let window = db.read(|r| events::events_after(r, after, scan))?;
    let through = window.last().map_or(after, |e| e.seq);
    let events = window
        .into_iter()
        .filter(|e| crate::subscribers::wanted(kinds, &e.kind))
        .map(StreamEvent::from)
        .collect();
    Ok(Page { events, through })
}

/// Parses a `kinds` list: comma-separated prefixes such as
/// `certificate.,feedback.serious`.
pub fn kinds(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use divoc_storage::DbOptions;
    use serde_json::json;

    #[test]
    fn pages_move_past_skipped_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("s.db"), DbOptions::default()).unwrap();
        for kind in [
            "certificate.issued",
            "enrolment.created",
            "certificate.revoked",
        ] {
            db.append_event(kind, "x", json!({})).wait().unwrap();
        }
        let only = kinds(Some("certificate.revoked, "));
        let p = page(&db, 0, &only, 2).unwrap();
        assert!(p.events.is_empty());
        assert_eq!(p.through, 2);
        let p = page(&db, p.through, &only, 2).unwrap();
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].seq, 3);
        assert_eq!(p.through, 3);
        let p = page(&db, 3, &[], 10).unwrap();
        assert_eq!((p.events.len(), p.through), (0, 3));
    }
}
