-- 0001: the initial schema of the DIVOC host database.
--
-- Migrations are append-only: once released, a file here is never edited;
-- changes go into a new, higher-numbered file.

-- Host metadata (schema information, generated identifiers, ...).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

-- Plugin-private key/value storage. The primary key doubles as the index
-- used for per-plugin usage sums and ordered prefix scans.
CREATE TABLE plugin_kv (
    plugin TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  BLOB NOT NULL,
    PRIMARY KEY (plugin, key)
) STRICT, WITHOUT ROWID;

-- Append-only domain event log. AUTOINCREMENT so that a sequence number is
-- never reused, even after the newest rows are removed: subscribers keep
-- cursors into this sequence.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    payload     TEXT NOT NULL CHECK (json_valid(payload))
) STRICT;

CREATE TABLE subscriber_cursors (
    name TEXT PRIMARY KEY NOT NULL,
    seq  INTEGER NOT NULL
) STRICT;

-- Hash-chained audit log; see src/audit.rs for the hash encoding.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL CHECK (json_valid(detail)),
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;

-- Checkpoint of the newest audit record, updated in the same transaction as
-- every append, so that deleting the newest records (truncating the tail) is
-- detectable: the chain alone cannot tell a short chain from a cut one.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;

-- The audit log is append-only through this crate; these triggers make an
-- accidental UPDATE or DELETE fail loudly. They do not stop someone with
-- write access to the file (they can drop the triggers): the hash chain is
-- what detects that.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

-- Transactional outbox: work to deliver to the outside world, written in the
-- same transaction as the change that caused it.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    target          TEXT NOT NULL,
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'done', 'failed')),
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- claim_due scans pending rows in due order.
CREATE INDEX outbox_due ON outbox (status, next_attempt_at, id);
