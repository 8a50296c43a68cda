-- 0007: the registry's tables laid out so that a large upload appends.
--
-- 0004 keyed records by (kind, code) and kept every version, the current
-- one included, in rollout_versions. Pre-enrolment codes are random, so
-- each new enrolment landed on a random page of two wide tables (the
-- record and its first version) and of every index ordered by code:
-- about ten pages written to the WAL per row, which bounded a
-- pre-enrolment upload to ~4,000 rows/s (docs/PERFORMANCE.md,
-- § Rollout registry). Now:
--
-- * records get a sequential id (the rowid): a new record appends to the
--   table, and (kind, code) is a narrow unique index beside it;
-- * lists come in id order (the order records were created), so the
--   filter indexes (kind, status | district | state), which end in the
--   rowid, also append;
-- * links name the record by id, so "enrolments of programme C19"
--   appends too; only the person key and the code stay random;
-- * rollout_versions keeps the versions a record has left behind; the
--   current version is the record itself (with the actor who made it).

CREATE TABLE rollout_records_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused: a cursor stays good
    kind        TEXT    NOT NULL,   -- vaccine | programme | facility | vaccinator | enrolment
    code        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    district    TEXT,
    state       TEXT,
    type        TEXT,
    body        TEXT    NOT NULL,   -- the record as JSON
    actor       TEXT    NOT NULL,   -- who made this version
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);

INSERT INTO rollout_records_new
    (kind, code, version, status, district, state, type, body, actor, created_ms, updated_ms)
SELECT r.kind, r.code, r.version, r.status, r.district, r.state, r.type, r.body,
       COALESCE((SELECT v.actor FROM rollout_versions v
                  WHERE v.kind = r.kind AND v.code = r.code AND v.version = r.version), ''),
       r.created_ms, r.updated_ms
  FROM rollout_records r
 ORDER BY r.created_ms, r.kind, r.code;

DELETE FROM rollout_versions
 WHERE EXISTS (SELECT 1 FROM rollout_records r
                WHERE r.kind = rollout_versions.kind AND r.code = rollout_versions.code
                  AND r.version = rollout_versions.version);

CREATE TABLE rollout_links_new (
    rel         TEXT    NOT NULL,   -- e.g. programme, vaccine, facility, person
    target      TEXT    NOT NULL,   -- the referred record's code (or a person key)
    record      INTEGER NOT NULL,   -- rollout_records.id of the referring record
    PRIMARY KEY (rel, target, record)
) WITHOUT ROWID;

INSERT INTO rollout_links_new (rel, target, record)
SELECT l.rel, l.target, n.id
  FROM rollout_links l JOIN rollout_records_new n ON n.kind = l.kind AND n.code = l.code;

DROP TABLE rollout_links;
DROP TABLE rollout_records;
ALTER TABLE rollout_records_new RENAME TO rollout_records;
ALTER TABLE rollout_links_new RENAME TO rollout_links;

CREATE UNIQUE INDEX rollout_records_code ON rollout_records (kind, code);
-- Each ends in the rowid: a filtered list is read in id order.
CREATE INDEX rollout_records_kind     ON rollout_records (kind);
CREATE INDEX rollout_records_status   ON rollout_records (kind, status);
CREATE INDEX rollout_records_district ON rollout_records (kind, district);
CREATE INDEX rollout_records_state    ON rollout_records (kind, state);
CREATE INDEX rollout_links_by_record  ON rollout_links (record);
