//! The transactional outbox: messages to deliver to the outside world
//! (webhooks, notifications, registry pushes), written in the same
//! transaction as the change that caused them, and delivered later by a
//! worker with retries.
//!
//! Delivery is at-least-once. [`claim_due`] leases items instead of locking
//! them: it bumps `attempts` and pushes `next_attempt_at` out by the lease,
//! so if the worker dies before reporting, the item becomes due again when
//! the lease runs out. Workers report with [`mark_done`], [`mark_retry`] or
//! [`mark_failed`].

use crate::sql::{Optional, Row};

use crate::db::{Database, PendingWrite, Reader, Tx};
use crate::error::{to_i64, to_u64, Result, StorageError};

/// Where an outbox item is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    /// Waiting for (another) delivery attempt.
    Pending,
    /// Delivered.
    Done,
    /// Given up on; kept for inspection.
    Failed,
}

impl OutboxStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Done => "done",
            OutboxStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<OutboxStatus> {
        match s {
            "pending" => Ok(OutboxStatus::Pending),
            "done" => Ok(OutboxStatus::Done),
            "failed" => Ok(OutboxStatus::Failed),
            other => Err(StorageError::InvalidArgument(format!(
                "unknown outbox status {other:?} in the database"
            ))),
        }
    }
}

/// One outbox item.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Identifier, increasing in enqueue order.
    pub id: i64,
    /// Message type, chosen by the enqueuing module.
    pub kind: String,
    /// Destination: a channel name, URL or plugin id, per `kind`.
    pub target: String,
    /// The message.
    pub payload: serde_json::Value,
    /// Delivery attempts started so far (claims).
    pub attempts: u64,
    /// Earliest time of the next attempt, in ms since the Unix epoch. For a
    /// claimed item, the end of its lease.
    pub next_attempt_at_ms: i64,
    /// Current status.
    pub status: OutboxStatus,
    /// Error reported by the last failed attempt.
    pub last_error: Option<String>,
    /// When the item was enqueued, in ms since the Unix epoch.
    pub created_at_ms: i64,
    /// When the item last changed, in ms since the Unix epoch.
    pub updated_at_ms: i64,
}

/// How many items are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Items waiting for delivery.
    pub pending: u64,
    /// Items delivered.
    pub done: u64,
    /// Items given up on.
    pub failed: u64,
}

/// Outbox `kind` of a prepared notification for a distribution channel:
/// the payload is the message (`template`, `recipient_name`, `contacts`
/// as `tel:`/`mailto:` strings, `variables`, `subject`), built by the
/// module that raised it; the row's target is a channel, or
/// [`NOTIFY_UNROUTED`] for the channels configured when it is delivered.
pub const NOTIFY: &str = "notify";

/// Outbox `target` of a notification not yet routed to channels.
pub const NOTIFY_UNROUTED: &str = "notify";

const COLUMNS: &str = "id, kind, target, payload, attempts, next_attempt_at, status, last_error, created_at, updated_at";

fn from_row(row: &Row<'_>) -> Result<OutboxItem> {
    let payload: String = row.get(3)?;
    let status: String = row.get(6)?;
    Ok(OutboxItem {
        id: row.get(0)?,
        kind: row.get(1)?,
        target: row.get(2)?,
        payload: serde_json::from_str(&payload).map_err(|source| StorageError::Json {
            what: "outbox.payload",
            source,
        })?,
        attempts: to_u64(row.get(4)?, "outbox.attempts")?,
        next_attempt_at_ms: row.get(5)?,
        status: OutboxStatus::parse(&status)?,
        last_error: row.get(7)?,
        created_at_ms: row.get(8)?,
        updated_at_ms: row.get(9)?,
    })
}

/// Enqueues a message inside a write closure; it becomes due at
/// `not_before_ms` (pass the current time for "now"). Returns its id.
pub fn enqueue(
    tx: &Tx<'_>,
    kind: &str,
    target: &str,
    payload: &serde_json::Value,
    not_before_ms: i64,
) -> Result<i64> {
    let payload = serde_json::to_string(payload).map_err(|source| StorageError::Json {
        what: "outbox payload",
        source,
    })?;
    enqueue_json(tx, kind, target, &payload, not_before_ms)
}

/// [`enqueue`] with the payload already serialized as JSON, so that callers
/// can serialize outside the writer thread.
pub fn enqueue_json(
    tx: &Tx<'_>,
    kind: &str,
    target: &str,
    payload: &str,
    not_before_ms: i64,
) -> Result<i64> {
    let now = crate::now_ms();
    tx.conn()
        .insert_id(
            "INSERT INTO outbox(kind, target, payload, next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            "id",
            crate::sql::params![kind, target, payload, not_before_ms, now],
        )?
        .ok_or_else(|| crate::sql::SqlError::NoRows.into())
}

/// One item for [`enqueue_json_many`].
#[derive(Debug, Clone, Copy)]
pub struct NewItem<'a> {
    /// What it is, e.g. `certificate.distribute`.
    pub kind: &'a str,
    /// Where it goes, e.g. a channel.
    pub target: &'a str,
    /// The payload, a JSON object.
    pub payload: &'a str,
    /// Not delivered before (ms).
    pub not_before_ms: i64,
}

/// Enqueues `items` in order, as one [`enqueue_json`] each would; on
/// PostgreSQL in one statement.
pub fn enqueue_json_many(tx: &Tx<'_>, items: &[NewItem<'_>]) -> Result<()> {
    let Some(pg) = tx.conn().pg() else {
        for i in items {
            enqueue_json(tx, i.kind, i.target, i.payload, i.not_before_ms)?;
        }
        return Ok(());
    };
    if items.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = items.iter().map(|i| i.kind).collect();
    let targets: Vec<&str> = items.iter().map(|i| i.target).collect();
    let payloads: Vec<&str> = items.iter().map(|i| i.payload).collect();
    let due: Vec<i64> = items.iter().map(|i| i.not_before_ms).collect();
    // Ids in the given order (see `events::append_events_json`).
    pg.execute_pg(
        "INSERT INTO outbox(kind, target, payload, next_attempt_at, created_at, updated_at)
         SELECT k, t, p, d, $1, $1
           FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[])
                WITH ORDINALITY AS u(k, t, p, d, i)
          ORDER BY i",
        &[&crate::now_ms(), &kinds, &targets, &payloads, &due],
    )?;
    Ok(())
}

/// Claims up to `limit` pending items due at `now_ms`, oldest due first:
/// each gets `attempts + 1` and is hidden from further claims until
/// `now_ms + lease_ms`. Returns the claimed items as updated.
pub fn claim_due(tx: &Tx<'_>, now_ms: i64, lease_ms: i64, limit: usize) -> Result<Vec<OutboxItem>> {
    claim(tx, None, now_ms, lease_ms, limit)
}

/// [`claim_due`] for items of one `kind` only: a worker claims only what
/// it can deliver, so other modules' messages wait for their own worker.
pub fn claim_due_of(
    tx: &Tx<'_>,
    kind: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<OutboxItem>> {
    claim(tx, Some(kind), now_ms, lease_ms, limit)
}

fn claim(
    tx: &Tx<'_>,
    kind: Option<&str>,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<OutboxItem>> {
    let limit = to_i64(limit as u64, "limit")?;
    let conn = tx.conn();
    let ids: Vec<i64> = {
        // `kind = ?3 OR ?3 IS NULL` keeps one statement for both forms; the
        // due index still drives the scan. On PostgreSQL several hosts
        // claim at once: each locks the rows it takes and skips the rows
        // another has locked, and a row another host leased meanwhile no
        // longer matches when it is re-checked under the lock, so every
        // item is claimed by one host (its lease then keeps it).
        let mut stmt = conn.prepare_cached(match conn.dialect() {
            crate::sql::Dialect::Sqlite => {
                "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1
                    AND (kind = ?3 OR ?3 IS NULL)
                  ORDER BY next_attempt_at, id LIMIT ?2"
            }
            crate::sql::Dialect::Postgres => {
                "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1
                    AND (kind = ?3 OR ?3 IS NULL)
                  ORDER BY next_attempt_at, id LIMIT ?2
                  FOR UPDATE SKIP LOCKED"
            }
        })?;
        let rows = stmt.query_map(crate::sql::params![now_ms, limit, kind], |row| row.get(0))?;
        rows.collect::<crate::sql::SqlResult<_>>()?
    };
    let lease_end = now_ms.saturating_add(lease_ms);
    let mut update = conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, updated_at = ?3
          WHERE id = ?1",
    )?;
    let mut select = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"))?;
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        update.execute(crate::sql::params![id, lease_end, now_ms])?;
        let mut rows = select.query([id])?;
        if let Some(row) = rows.next()? {
            claimed.push(from_row(&row)?);
        }
    }
    Ok(claimed)
}

/// Changes a pending item, failing with `NotFound` if it is not pending
/// (unknown id, or already done/failed): reporting twice is a worker bug
/// worth surfacing.
fn finish_pending(
    tx: &Tx<'_>,
    id: i64,
    sql: &str,
    params: &[&dyn crate::sql::Param],
) -> Result<()> {
    let changed = tx.conn().execute(sql, params)?;
    if changed == 0 {
        return Err(StorageError::NotFound(format!("pending outbox item {id}")));
    }
    Ok(())
}

/// Records a successful delivery. A delivered item's `next_attempt_at` is
/// set to when it was delivered, so that [`prune_delivered`] finds the old
/// ones through the `(status, next_attempt_at)` index without scanning the
/// recent ones.
pub fn mark_done(tx: &Tx<'_>, id: i64) -> Result<()> {
    finish_pending(
        tx,
        id,
        "UPDATE outbox SET status = 'done', last_error = NULL, updated_at = ?2,
                next_attempt_at = ?2
          WHERE id = ?1 AND status = 'pending'",
        &[&id, &crate::now_ms()],
    )
}

/// Deletes at most `limit` items delivered before `before_ms`; returns how
/// many. Delivered items are kept a while for operators (`GET /v1/outbox`,
/// a certificate's delivery status), then go: their payloads hold
/// contacts, and they are most of what the outbox would otherwise grow by
/// (docs/PERFORMANCE.md, § Storage footprint). Failed items stay until an
/// operator has seen them.
pub fn prune_delivered(tx: &Tx<'_>, before_ms: i64, limit: usize) -> Result<usize> {
    let n = tx
        .conn()
        .prepare_cached(
            "DELETE FROM outbox WHERE id IN (
                SELECT id FROM outbox WHERE status = 'done' AND next_attempt_at < ?1 LIMIT ?2)",
        )?
        .execute(crate::sql::params![before_ms, to_i64_len(limit)])?;
    Ok(n)
}

fn to_i64_len(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records a failed attempt and schedules the next one at
/// `next_attempt_at_ms` (the caller chooses the back-off).
pub fn mark_retry(tx: &Tx<'_>, id: i64, next_attempt_at_ms: i64, error: &str) -> Result<()> {
    finish_pending(
        tx,
        id,
        "UPDATE outbox SET next_attempt_at = ?2, last_error = ?3, updated_at = ?4
          WHERE id = ?1 AND status = 'pending'",
        &[&id, &next_attempt_at_ms, &error, &crate::now_ms()],
    )
}

/// Gives up on an item, keeping it with its last error.
pub fn mark_failed(tx: &Tx<'_>, id: i64, error: &str) -> Result<()> {
    finish_pending(
        tx,
        id,
        "UPDATE outbox SET status = 'failed', last_error = ?2, updated_at = ?3
          WHERE id = ?1 AND status = 'pending'",
        &[&id, &error, &crate::now_ms()],
    )
}

/// Replaces a pending item by one pending item per target, due at
/// `now_ms`, with the same kind and payload: the item itself takes the
/// first target (its claim did not deliver anything, so its attempts are
/// reset), the others are enqueued. Used to route a message that was
/// queued before its destinations were known. Returns the ids, in
/// `targets` order; `NotFound` if the item is not pending.
pub fn fan_out(tx: &Tx<'_>, id: i64, targets: &[String], now_ms: i64) -> Result<Vec<i64>> {
    let Some((first, rest)) = targets.split_first() else {
        return Err(StorageError::InvalidArgument(
            "fan_out needs at least one target".into(),
        ));
    };
    let item = get(&tx.reader(), id)?
        .filter(|i| i.status == OutboxStatus::Pending)
        .ok_or_else(|| StorageError::NotFound(format!("pending outbox item {id}")))?;
    tx.conn().execute(
        "UPDATE outbox SET target = ?2, attempts = 0, next_attempt_at = ?3, updated_at = ?3
          WHERE id = ?1",
        crate::sql::params![id, first, now_ms],
    )?;
    let mut ids = vec![id];
    for target in rest {
        ids.push(enqueue(tx, &item.kind, target, &item.payload, now_ms)?);
    }
    Ok(ids)
}

/// Items of `kind` whose JSON payload has `field` (a top-level key, ASCII
/// letters, digits and `_`) equal to the string `value`, oldest first.
/// Not indexed: a scan of the outbox, for status queries, not hot paths.
pub fn by_payload_field(
    r: &Reader<'_>,
    kind: &str,
    field: &str,
    value: &str,
) -> Result<Vec<OutboxItem>> {
    // The field becomes part of a JSON path; anything but a plain key
    // could change what the path selects.
    if field.is_empty()
        || !field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(StorageError::InvalidArgument(format!(
            "payload field {field:?} must be a plain key"
        )));
    }
    let (sql, key) = match r.conn().dialect() {
        crate::sql::Dialect::Sqlite => (
            format!(
                "SELECT {COLUMNS} FROM outbox WHERE kind = ?1 AND json_extract(payload, ?2) = ?3
                  ORDER BY id"
            ),
            format!("$.{field}"),
        ),
        crate::sql::Dialect::Postgres => (
            format!(
                "SELECT {COLUMNS} FROM outbox WHERE kind = ?1 AND payload::jsonb ->> ?2 = ?3
                  ORDER BY id"
            ),
            field.to_owned(),
        ),
    };
    let mut stmt = r.conn().prepare_cached(&sql)?;
    let mut rows = stmt.query(crate::sql::params![kind, key, value])?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(from_row(&row)?);
    }
    Ok(items)
}

/// Reads one item.
pub fn get(r: &Reader<'_>, id: i64) -> Result<Option<OutboxItem>> {
    let mut stmt = r
        .conn()
        .prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"))?;
    let mut rows = stmt.query([id])?;
    rows.next()?.map(|r| from_row(&r)).transpose()
}

/// Counts items per status.
pub fn counts(r: &Reader<'_>) -> Result<OutboxCounts> {
    let mut stmt = r
        .conn()
        .prepare_cached("SELECT status, COUNT(*) FROM outbox GROUP BY status")?;
    let mut rows = stmt.query(())?;
    let mut counts = OutboxCounts::default();
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        let n = to_u64(row.get(1)?, "outbox count")?;
        match OutboxStatus::parse(&status)? {
            OutboxStatus::Pending => counts.pending = n,
            OutboxStatus::Done => counts.done = n,
            OutboxStatus::Failed => counts.failed = n,
        }
    }
    Ok(counts)
}

/// Up to `limit` items in `status`, oldest first.
pub fn list(r: &Reader<'_>, status: OutboxStatus, limit: usize) -> Result<Vec<OutboxItem>> {
    let limit = to_i64(limit as u64, "limit")?;
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE status = ?1 ORDER BY id LIMIT ?2"
    ))?;
    let mut rows = stmt.query(crate::sql::params![status.as_str(), limit])?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(from_row(&row)?);
    }
    Ok(items)
}

/// Which items [`page`] answers.
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery {
    /// Only items in this status.
    pub status: Option<OutboxStatus>,
    /// Only items of this kind.
    pub kind: Option<String>,
    /// Only items whose payload names this template.
    pub template: Option<String>,
    /// Only items older than this id (the cursor of the page before).
    pub before: Option<i64>,
}

/// Items newest first, filtered by `q`. The id order is the primary key's;
/// the template filter reads each payload (an operator's page, not a hot
/// path).
pub fn page(r: &Reader<'_>, q: &OutboxQuery, limit: usize) -> Result<Vec<OutboxItem>> {
    let limit = to_i64(limit as u64, "limit")?;
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox
         WHERE id < ?1
           AND (status = ?2 OR ?2 IS NULL)
           AND (kind = ?3 OR ?3 IS NULL)
           AND ({template} = ?4 OR ?4 IS NULL)
         ORDER BY id DESC LIMIT ?5",
        template = match r.conn().dialect() {
            crate::sql::Dialect::Sqlite => "json_extract(payload, '$.template')",
            crate::sql::Dialect::Postgres => "payload::jsonb ->> 'template'",
        }
    ))?;
    let mut rows = stmt.query(crate::sql::params![
        q.before.unwrap_or(i64::MAX),
        q.status.map(|s| s.as_str()),
        q.kind,
        q.template,
        limit
    ])?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(from_row(&row)?);
    }
    Ok(items)
}

/// Whether an item exists at all (used to tell "unknown" from "not pending").
pub fn exists(r: &Reader<'_>, id: i64) -> Result<bool> {
    Ok(r.conn()
        .query_row("SELECT 1 FROM outbox WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

impl Database {
    /// Enqueues one message through the writer (see [`enqueue`]). To
    /// enqueue atomically with a change, call [`enqueue`] in that change's
    /// [`Database::write`] closure instead.
    pub fn outbox_enqueue(
        &self,
        kind: &str,
        target: &str,
        payload: serde_json::Value,
        not_before_ms: i64,
    ) -> PendingWrite<i64> {
        let (kind, target) = (kind.to_string(), target.to_string());
        self.write(move |tx| enqueue(tx, &kind, &target, &payload, not_before_ms))
    }

    /// Claims due items through the writer (see [`claim_due`]).
    pub fn outbox_claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> PendingWrite<Vec<OutboxItem>> {
        self.write(move |tx| claim_due(tx, now_ms, lease_ms, limit))
    }

    /// Claims due items of one kind through the writer (see
    /// [`claim_due_of`]).
    pub fn outbox_claim_due_of(
        &self,
        kind: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> PendingWrite<Vec<OutboxItem>> {
        let kind = kind.to_string();
        self.write(move |tx| claim_due_of(tx, &kind, now_ms, lease_ms, limit))
    }

    /// Routes a pending item to several targets (see [`fan_out`]).
    pub fn outbox_fan_out(
        &self,
        id: i64,
        targets: Vec<String>,
        now_ms: i64,
    ) -> PendingWrite<Vec<i64>> {
        self.write(move |tx| fan_out(tx, id, &targets, now_ms))
    }

    /// [`prune_delivered`] on the writer.
    pub fn outbox_prune_delivered(&self, before_ms: i64, limit: usize) -> PendingWrite<usize> {
        self.write(move |tx| prune_delivered(tx, before_ms, limit))
    }

    /// Records a delivery (see [`mark_done`]).
    pub fn outbox_mark_done(&self, id: i64) -> PendingWrite<()> {
        self.write(move |tx| mark_done(tx, id))
    }

    /// Schedules a retry (see [`mark_retry`]).
    pub fn outbox_mark_retry(
        &self,
        id: i64,
        next_attempt_at_ms: i64,
        error: &str,
    ) -> PendingWrite<()> {
        let error = error.to_string();
        self.write(move |tx| mark_retry(tx, id, next_attempt_at_ms, &error))
    }

    /// Gives up on an item (see [`mark_failed`]).
    pub fn outbox_mark_failed(&self, id: i64, error: &str) -> PendingWrite<()> {
        let error = error.to_string();
        self.write(move |tx| mark_failed(tx, id, &error))
    }

    /// Reads one item (see [`get`]).
    pub fn outbox_get(&self, id: i64) -> Result<Option<OutboxItem>> {
        self.read(|r| get(r, id))
    }

    /// Counts items per status (see [`counts`]).
    pub fn outbox_counts(&self) -> Result<OutboxCounts> {
        self.read(counts)
    }

    /// Lists items in a status (see [`list`]).
    pub fn outbox_list(&self, status: OutboxStatus, limit: usize) -> Result<Vec<OutboxItem>> {
        self.read(|r| list(r, status, limit))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::DbOptions;

    #[test]
    fn pages_newest_first_by_status_kind_and_template() {
        let (_d, db) = db();
        for (i, t) in ["otp", "dose-reminder", "otp"].iter().enumerate() {
            db.outbox_enqueue("notify", "x", json!({"template": t, "n": i}), 0)
                .wait()
                .unwrap();
        }
        db.outbox_enqueue("distribute", "x", json!({"certificate_id": "c"}), 0)
            .wait()
            .unwrap();
        let all = db.read(|r| page(r, &OutboxQuery::default(), 10)).unwrap();
        let ids: Vec<i64> = all.iter().map(|i| i.id).collect();
        assert_eq!(ids, [4, 3, 2, 1]);
        let q = OutboxQuery {
            template: Some("otp".into()),
            ..Default::default()
        };
        let otp = db.read(|r| page(r, &q, 10)).unwrap();
        assert_eq!(otp.iter().map(|i| i.id).collect::<Vec<_>>(), [3, 1]);
        let q = OutboxQuery {
            before: Some(3),
            kind: Some("notify".into()),
            status: Some(OutboxStatus::Pending),
            ..Default::default()
        };
        let older = db.read(|r| page(r, &q, 1)).unwrap();
        assert_eq!(older.iter().map(|i| i.id).collect::<Vec<_>>(), [2]);
    }

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("ob.db"), DbOptions::default()).unwrap();
        (dir, db)
    }

    #[test]
    fn claim_only_due_items_in_due_order_and_lease_them() {
        let (_d, db) = db();
        let late = db
            .outbox_enqueue("webhook", "https://a", json!({"n": 1}), 2_000)
            .wait()
            .unwrap();
        let early = db
            .outbox_enqueue("webhook", "https://b", json!({"n": 2}), 1_000)
            .wait()
            .unwrap();
        let future = db
            .outbox_enqueue("webhook", "https://c", json!({"n": 3}), 9_000)
            .wait()
            .unwrap();

        let claimed = db.outbox_claim_due(5_000, 60_000, 10).wait().unwrap();
        assert_eq!(
            claimed.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![early, late]
        );
        assert_eq!(claimed[0].attempts, 1);
        assert_eq!(claimed[0].next_attempt_at_ms, 65_000);
        assert_eq!(claimed[0].payload, json!({"n": 2}));
        assert_eq!(claimed[0].status, OutboxStatus::Pending);

        // Leased items are not claimed again until the lease ends...
        assert!(db
            .outbox_claim_due(6_000, 60_000, 10)
            .wait()
            .unwrap()
            .is_empty());
        // ...after which they are (the worker presumably died). The never
        // claimed item was due earliest (9 000 < 65 000), so it comes first;
        // equal due times fall back to id order.
        let again = db.outbox_claim_due(70_000, 60_000, 10).wait().unwrap();
        assert_eq!(
            again.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![future, late, early]
        );
        assert_eq!(again[0].attempts, 1);
        assert_eq!(again[2].attempts, 2);
    }

    #[test]
    fn claim_respects_limit() {
        let (_d, db) = db();
        for i in 0..5 {
            db.outbox_enqueue("k", "t", json!(i), 0).wait().unwrap();
        }
        assert_eq!(db.outbox_claim_due(1, 10, 2).wait().unwrap().len(), 2);
        assert_eq!(db.outbox_claim_due(1, 10, 10).wait().unwrap().len(), 3);
    }

    #[test]
    fn done_retry_failed_lifecycle() {
        let (_d, db) = db();
        let a = db.outbox_enqueue("k", "t", json!({}), 0).wait().unwrap();
        let b = db.outbox_enqueue("k", "t", json!({}), 0).wait().unwrap();
        let c = db.outbox_enqueue("k", "t", json!({}), 0).wait().unwrap();
        db.outbox_claim_due(10, 100, 10).wait().unwrap();

        db.outbox_mark_done(a).wait().unwrap();
        db.outbox_mark_retry(b, 500, "timeout").wait().unwrap();
        db.outbox_mark_failed(c, "410 gone").wait().unwrap();

        let b_item = db.outbox_get(b).unwrap().unwrap();
        assert_eq!(b_item.status, OutboxStatus::Pending);
        assert_eq!(b_item.next_attempt_at_ms, 500);
        assert_eq!(b_item.last_error.as_deref(), Some("timeout"));
        let c_item = db.outbox_get(c).unwrap().unwrap();
        assert_eq!(c_item.status, OutboxStatus::Failed);
        assert_eq!(c_item.last_error.as_deref(), Some("410 gone"));

        assert_eq!(
            db.outbox_counts().unwrap(),
            OutboxCounts {
                pending: 1,
                done: 1,
                failed: 1
            }
        );
        assert_eq!(db.outbox_list(OutboxStatus::Done, 10).unwrap()[0].id, a);

        // Reporting on a finished or unknown item is an error.
        assert!(matches!(
            db.outbox_mark_done(a).wait(),
            Err(StorageError::NotFound(_))
        ));
        assert!(matches!(
            db.outbox_mark_failed(999, "x").wait(),
            Err(StorageError::NotFound(_))
        ));
        assert!(db.read(|r| exists(r, a)).unwrap());
        assert!(!db.read(|r| exists(r, 999)).unwrap());

        // The retried item is due again at its new time.
        assert!(db.outbox_claim_due(499, 100, 10).wait().unwrap().is_empty());
        assert_eq!(db.outbox_claim_due(500, 100, 10).wait().unwrap()[0].id, b);
    }

    #[test]
    fn delivered_items_are_pruned_after_their_retention_and_nothing_else() {
        let (_d, db) = db();
        let ids: Vec<i64> = (0..5)
            .map(|_| db.outbox_enqueue("k", "t", json!({}), 0).wait().unwrap())
            .collect();
        db.outbox_claim_due(10, 100, 10).wait().unwrap();
        db.outbox_mark_done(ids[0]).wait().unwrap();
        db.outbox_mark_done(ids[1]).wait().unwrap();
        db.outbox_mark_failed(ids[2], "gone").wait().unwrap();
        db.outbox_mark_retry(ids[3], 0, "busy").wait().unwrap();
        let first = db.outbox_get(ids[0]).unwrap().unwrap().updated_at_ms;
        let done_at = db.outbox_get(ids[1]).unwrap().unwrap().updated_at_ms;
        // Delivered before the cut-off: none yet.
        assert_eq!(db.outbox_prune_delivered(first, 10).wait().unwrap(), 0);
        // One at a time when limited, then the rest; never failed or
        // pending items.
        assert_eq!(db.outbox_prune_delivered(done_at + 1, 1).wait().unwrap(), 1);
        assert_eq!(
            db.outbox_prune_delivered(done_at + 1, 10).wait().unwrap(),
            1
        );
        assert_eq!(db.outbox_prune_delivered(i64::MAX, 10).wait().unwrap(), 0);
        assert_eq!(
            db.outbox_counts().unwrap(),
            OutboxCounts {
                pending: 2,
                done: 0,
                failed: 1
            }
        );
        // The pruning is a range of the due index, not a scan (SQLite's
        // plan; PostgreSQL chooses by its statistics).
        if db.dialect() != crate::sql::Dialect::Sqlite {
            return;
        }
        let plan: String = db
            .read(|r| {
                Ok(r.conn().query_row(
                    "EXPLAIN QUERY PLAN SELECT id FROM outbox
                      WHERE status = 'done' AND next_attempt_at < 5 LIMIT 3",
                    (),
                    |row| row.get(3),
                )?)
            })
            .unwrap();
        assert!(
            plan.contains("outbox_due") && plan.contains("next_attempt_at<"),
            "{plan}"
        );
    }

    #[test]
    fn two_hosts_claiming_at_once_take_each_item_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = crate::db::two_handles_for_tests(&dir);
        let enqueued: Vec<i64> = (0..200)
            .map(|i| {
                a.outbox_enqueue("sms", "t", json!({ "i": i }), 0)
                    .wait()
                    .unwrap()
            })
            .collect();
        let claimed: Vec<i64> = std::thread::scope(|s| {
            let hosts: Vec<_> = [&a, &b]
                .into_iter()
                .map(|db| {
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        loop {
                            // Several claims in flight, so they meet in groups.
                            let pending: Vec<_> = (0..4)
                                .map(|_| db.write(|tx| claim_due(tx, 10, 60_000, 7)))
                                .collect();
                            let got: Vec<i64> = pending
                                .into_iter()
                                .flat_map(|p| p.wait().unwrap())
                                .map(|item| item.id)
                                .collect();
                            if got.is_empty() {
                                return mine;
                            }
                            mine.extend(got);
                        }
                    })
                })
                .collect();
            hosts.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = claimed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, enqueued, "each item claimed exactly once");
    }

    #[test]
    fn claim_of_a_kind_leaves_other_kinds_alone() {
        let (_d, db) = db();
        let mine = db.outbox_enqueue("mine", "t", json!({}), 0).wait().unwrap();
        let other = db
            .outbox_enqueue("other", "t", json!({}), 0)
            .wait()
            .unwrap();
        let claimed = db.outbox_claim_due_of("mine", 1, 10, 10).wait().unwrap();
        assert_eq!(claimed.iter().map(|i| i.id).collect::<Vec<_>>(), vec![mine]);
        let item = db.outbox_get(other).unwrap().unwrap();
        assert_eq!((item.attempts, item.next_attempt_at_ms), (0, 0));
        assert!(db
            .outbox_claim_due_of("mine", 1, 10, 10)
            .wait()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn fan_out_retargets_and_copies_a_pending_item() {
        let (_d, db) = db();
        let id = db
            .outbox_enqueue("k", "unrouted", json!({"c": "x"}), 0)
            .wait()
            .unwrap();
        db.outbox_claim_due(5, 1_000, 10).wait().unwrap();
        let ids = db
            .outbox_fan_out(id, vec!["a".into(), "b".into()], 7)
            .wait()
            .unwrap();
        assert_eq!(ids[0], id);
        let first = db.outbox_get(id).unwrap().unwrap();
        assert_eq!(
            (
                first.target.as_str(),
                first.attempts,
                first.next_attempt_at_ms
            ),
            ("a", 0, 7)
        );
        let second = db.outbox_get(ids[1]).unwrap().unwrap();
        assert_eq!((second.target.as_str(), second.kind.as_str()), ("b", "k"));
        assert_eq!(second.payload, json!({"c": "x"}));
        // Both are due right away, not at the end of the first's lease.
        assert_eq!(db.outbox_claim_due(7, 10, 10).wait().unwrap().len(), 2);
        // Only a pending item can be routed, and only somewhere.
        db.outbox_mark_done(id).wait().unwrap();
        assert!(matches!(
            db.outbox_fan_out(id, vec!["a".into()], 8).wait(),
            Err(StorageError::NotFound(_))
        ));
        assert!(matches!(
            db.outbox_fan_out(ids[1], vec![], 8).wait(),
            Err(StorageError::InvalidArgument(_))
        ));
    }

    #[test]
    fn items_are_found_by_a_payload_field() {
        let (_d, db) = db();
        let a = db
            .outbox_enqueue("k", "t1", json!({"cert": "A"}), 0)
            .wait()
            .unwrap();
        db.outbox_enqueue("k", "t1", json!({"cert": "B"}), 0)
            .wait()
            .unwrap();
        let a2 = db
            .outbox_enqueue("k", "t2", json!({"cert": "A"}), 0)
            .wait()
            .unwrap();
        db.outbox_enqueue("other", "t", json!({"cert": "A"}), 0)
            .wait()
            .unwrap();
        let found = db.read(|r| by_payload_field(r, "k", "cert", "A")).unwrap();
        assert_eq!(found.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a, a2]);
        assert!(matches!(
            db.read(|r| by_payload_field(r, "k", "cert') OR 1=1 --", "A")),
            Err(StorageError::InvalidArgument(_))
        ));
    }

    #[test]
    fn enqueue_is_atomic_with_its_change() {
        let (_d, db) = db();
        let r = db
            .write(|tx| {
                crate::meta::set(tx, "x", "y")?;
                enqueue(tx, "k", "t", &json!({}), 0)?;
                Err::<(), _>(StorageError::Rejected("abort".into()))
            })
            .wait();
        assert!(r.is_err());
        assert_eq!(db.outbox_counts().unwrap(), OutboxCounts::default());
    }
}
