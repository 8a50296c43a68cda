-- The rollout registry: vaccines, programmes, facilities, vaccinators.
--
-- One row per record, its current version; every version kept in
-- rollout_versions (the audit log and the event log name the change, this
-- table holds what the record was). The entity itself is JSON owned by
-- host/rollout; the columns beside it are what lists filter and page on.
CREATE TABLE rollout_records (
    kind        TEXT    NOT NULL,   -- vaccine | programme | facility | vaccinator
    code        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    district    TEXT,               -- facilities: address.district
    state       TEXT,               -- facilities: address.state
    type        TEXT,               -- facilities: fixed | mobile | both
    body        TEXT    NOT NULL,   -- the record as JSON
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (kind, code)
) WITHOUT ROWID;

CREATE INDEX rollout_records_status   ON rollout_records (kind, status, code);
CREATE INDEX rollout_records_district ON rollout_records (kind, district, code);
CREATE INDEX rollout_records_state    ON rollout_records (kind, state, code);

-- What a record refers to, for filters such as "facilities of programme X"
-- and for refusing to delete what is referred to.
CREATE TABLE rollout_links (
    rel         TEXT    NOT NULL,   -- e.g. programme, vaccine, facility
    target      TEXT    NOT NULL,   -- the referred record's code
    kind        TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    PRIMARY KEY (rel, target, kind, code)
) WITHOUT ROWID;

CREATE INDEX rollout_links_by_record ON rollout_links (kind, code);

CREATE TABLE rollout_versions (
    kind        TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    body        TEXT    NOT NULL,   -- JSON; '' for a deletion
    actor       TEXT    NOT NULL,
    at_ms       INTEGER NOT NULL,
    PRIMARY KEY (kind, code, version)
) WITHOUT ROWID;
