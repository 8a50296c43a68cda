//! The append-only domain event log and event-subscriber cursors.
//!
//! Modules append events in the same write closure as the change they
//! describe, so an event exists if and only if its change was committed.
//! Subscribers (e.g. event-subscriber plugins) read forward from a cursor
//! they persist with [`set_subscriber_cursor`]: delivery is at-least-once,
//! since a crash between handling events and moving the cursor replays them.

use crate::sql::Optional;

use crate::db::{Database, PendingWrite, Reader, Tx};
use crate::error::{to_i64, Result, StorageError};

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in the log: strictly increasing, never reused.
    pub seq: i64,
    /// Event type, e.g. `"certificate.issued"`.
    pub kind: String,
    /// When the event was appended, in milliseconds since the Unix epoch.
    pub occurred_at_ms: i64,
    /// What the event is about, e.g. a certificate id.
    pub subject: String,
    /// Event-specific data.
    pub payload: serde_json::Value,
}

/// Appends an event inside a write closure and returns its sequence number.
pub fn append_event(
    tx: &Tx<'_>,
    kind: &str,
    subject: &str,
    payload: &serde_json::Value,
) -> Result<i64> {
    let payload = serde_json::to_string(payload).map_err(|source| StorageError::Json {
        what: "event payload",
        source,
    })?;
    append_event_json(tx, kind, subject, &payload)
}

/// [`append_event`] with the payload already serialized as JSON, so that
/// callers can serialize outside the writer thread.
pub fn append_event_json(tx: &Tx<'_>, kind: &str, subject: &str, payload: &str) -> Result<i64> {
    tx.conn()
        .insert_id(
            "INSERT INTO events(kind, occurred_at, subject, payload) VALUES (?1, ?2, ?3, ?4)",
            "seq",
            crate::sql::params![kind, crate::now_ms(), subject, payload],
        )?
        .ok_or_else(|| crate::sql::SqlError::NoRows.into())
}

/// Appends events `(kind, subject, payload JSON)` in order, as one
/// [`append_event_json`] each would; on PostgreSQL in one statement, the
/// sequence numbered in the given order.
pub fn append_events_json(tx: &Tx<'_>, events: &[(&str, &str, &str)]) -> Result<()> {
    let Some(pg) = tx.conn().pg() else {
        for (kind, subject, payload) in events {
            append_event_json(tx, kind, subject, payload)?;
        }
        return Ok(());
    };
    if events.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.0).collect();
    let subjects: Vec<&str> = events.iter().map(|e| e.1).collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.2).collect();
    // `WITH ORDINALITY … ORDER BY`: identity values are drawn in the
    // order rows are produced, so the log keeps the given order.
    pg.execute_pg(
        "INSERT INTO events(kind, occurred_at, subject, payload)
         SELECT k, $1, s, p
           FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS t(k, s, p, i)
          ORDER BY i",
        &[&crate::now_ms(), &kinds, &subjects, &payloads],
    )?;
    Ok(())
}

/// Up to `limit` events with `seq > after`, oldest first. Start with
/// `after = 0`.
pub fn events_after(r: &Reader<'_>, after: i64, limit: usize) -> Result<Vec<Event>> {
    let limit = to_i64(limit as u64, "limit")?;
    let mut stmt = r.conn().prepare_cached(
        "SELECT seq, kind, occurred_at, subject, payload FROM events
          WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(crate::sql::params![after, limit], |row| {
        Ok((
            row.get::<i64>(0)?,
            row.get::<String>(1)?,
            row.get::<i64>(2)?,
            row.get::<String>(3)?,
            row.get::<String>(4)?,
        ))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, kind, occurred_at_ms, subject, payload) = row?;
        let payload = serde_json::from_str(&payload).map_err(|source| StorageError::Json {
            what: "events.payload",
            source,
        })?;
        events.push(Event {
            seq,
            kind,
            occurred_at_ms,
            subject,
            payload,
        });
    }
    Ok(events)
}

/// The last event's sequence number; `0` for an empty log.
pub fn head(r: &Reader<'_>) -> Result<i64> {
    Ok(r.conn()
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", (), |row| {
            row.get(0)
        })?)
}

/// The last sequence number the named subscriber has processed; `0` if it
/// has never stored one.
pub fn subscriber_cursor(r: &Reader<'_>, name: &str) -> Result<i64> {
    Ok(r.conn()
        .query_row(
            "SELECT seq FROM subscriber_cursors WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Stores the named subscriber's cursor. Moving it backwards is allowed, to
/// replay events.
pub fn set_subscriber_cursor(tx: &Tx<'_>, name: &str, seq: i64) -> Result<()> {
    tx.conn().execute(
        "INSERT INTO subscriber_cursors(name, seq) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
        crate::sql::params![name, seq],
    )?;
    Ok(())
}

impl Database {
    /// Appends a single event through the writer (see [`append_event`]).
    /// To store an event together with the change it describes, call
    /// [`append_event`] inside the same [`Database::write`] closure instead.
    pub fn append_event(
        &self,
        kind: &str,
        subject: &str,
        payload: serde_json::Value,
    ) -> PendingWrite<i64> {
        let (kind, subject) = (kind.to_string(), subject.to_string());
        self.write(move |tx| append_event(tx, &kind, &subject, &payload))
    }

    /// Reads events after a sequence number (see [`events_after`]).
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>> {
        self.read(|r| events_after(r, after, limit))
    }

    /// Reads a subscriber's cursor (see [`subscriber_cursor`]).
    pub fn subscriber_cursor(&self, name: &str) -> Result<i64> {
        self.read(|r| subscriber_cursor(r, name))
    }

    /// Stores a subscriber's cursor through the writer (see
    /// [`set_subscriber_cursor`]).
    pub fn set_subscriber_cursor(&self, name: &str, seq: i64) -> PendingWrite<()> {
        let name = name.to_string();
        self.write(move |tx| set_subscriber_cursor(tx, &name, seq))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Database, DbOptions, StorageError};

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("ev.db"), DbOptions::default()).unwrap();
        (dir, db)
    }

    #[test]
    fn append_and_page_through() {
        let (_d, db) = db();
        for i in 0..5 {
            let seq = db
                .append_event("thing.happened", &format!("s{i}"), json!({ "i": i }))
                .wait()
                .unwrap();
            assert_eq!(seq, i + 1);
        }
        let first = db.events_after(0, 2).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].seq, 1);
        assert_eq!(first[0].kind, "thing.happened");
        assert_eq!(first[0].subject, "s0");
        assert_eq!(first[0].payload, json!({ "i": 0 }));
        assert!(first[0].occurred_at_ms > 0);
        let rest = db.events_after(first[1].seq, 100).unwrap();
        assert_eq!(
            rest.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert!(db.events_after(5, 100).unwrap().is_empty());
    }

    #[test]
    fn event_commits_or_rolls_back_with_its_change() {
        let (_d, db) = db();
        let result = db
            .write(|tx| {
                crate::meta::set(tx, "record", "x")?;
                super::append_event(tx, "record.stored", "x", &json!({}))?;
                Err::<(), _>(StorageError::Rejected("validation failed".into()))
            })
            .wait();
        assert!(result.is_err());
        assert!(db.events_after(0, 10).unwrap().is_empty());
        assert_eq!(db.meta_get("record").unwrap(), None);

        db.write(|tx| {
            crate::meta::set(tx, "record", "x")?;
            super::append_event(tx, "record.stored", "x", &json!({}))
        })
        .wait()
        .unwrap();
        assert_eq!(db.events_after(0, 10).unwrap().len(), 1);
    }

    #[test]
    fn subscriber_cursors() {
        let (_d, db) = db();
        assert_eq!(db.subscriber_cursor("plugin-a").unwrap(), 0);
        db.set_subscriber_cursor("plugin-a", 7).wait().unwrap();
        db.set_subscriber_cursor("plugin-b", 3).wait().unwrap();
        db.set_subscriber_cursor("plugin-a", 9).wait().unwrap();
        assert_eq!(db.subscriber_cursor("plugin-a").unwrap(), 9);
        assert_eq!(db.subscriber_cursor("plugin-b").unwrap(), 3);
    }
}
