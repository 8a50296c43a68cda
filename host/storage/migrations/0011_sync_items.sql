-- 0011: what a facility's offline app sent, by the id the app gave each
-- item, with the answer it got: the same item sent again gets the same
-- answer, and is not applied twice.
CREATE TABLE sync_items (
    facility    TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    answer      TEXT    NOT NULL,   -- JSON, as answered
    at_ms       INTEGER NOT NULL,
    PRIMARY KEY (facility, client_id)
) WITHOUT ROWID;
