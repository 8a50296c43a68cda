-- CSV uploads to the registry: one row per upload (who, when, the file's
-- digest, counts) and one per refused row, with the row's cells and why,
-- for GET /v1/uploads/{id}/errors.csv.
CREATE TABLE uploads (
    id          TEXT    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,   -- facilities | vaccinators
    actor       TEXT    NOT NULL,
    sha256      TEXT    NOT NULL,   -- of the file, hex
    header      TEXT    NOT NULL,   -- JSON array of the header's cells
    created_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    rows        INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX uploads_by_time ON uploads (created_ms);

CREATE TABLE upload_errors (
    upload_id   TEXT    NOT NULL,
    row_no      INTEGER NOT NULL,   -- 1 = the first row after the header
    cells       TEXT    NOT NULL,   -- JSON array of the row's cells
    errors      TEXT    NOT NULL,   -- "field: why; field: why"
    PRIMARY KEY (upload_id, row_no)
) WITHOUT ROWID;
