-- 0014: side-effect (AEFI) reports and ratings, tied to certificates.
-- A report keeps what it is about (programme, vaccine, batch, facility,
-- district) as columns, copied from the certificate when filed, so that
-- a regulator's filters read an index, not credentials.
CREATE TABLE feedback_reports (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,  -- list order and cursor
    id             TEXT    NOT NULL UNIQUE,            -- rpt_…
    certificate_id TEXT    NOT NULL,
    programme      TEXT    NOT NULL,
    vaccine        TEXT    NOT NULL,
    batch          TEXT    NOT NULL,
    facility       TEXT    NOT NULL,
    district       TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    dose           INTEGER NOT NULL,
    severity       TEXT    NOT NULL CHECK (severity IN ('mild', 'moderate', 'serious')),
    answers        TEXT    NOT NULL CHECK (json_valid(answers)),
    filed_by       TEXT    NOT NULL,                   -- recipient, holder, facility, …
    filed_at       INTEGER NOT NULL                    -- ms
) STRICT;

CREATE INDEX feedback_reports_certificate ON feedback_reports (certificate_id);
CREATE INDEX feedback_reports_batch ON feedback_reports (batch, seq);
CREATE INDEX feedback_reports_facility ON feedback_reports (facility, seq);
CREATE INDEX feedback_reports_severity ON feedback_reports (severity, seq);
CREATE INDEX feedback_reports_filed ON feedback_reports (filed_at);

-- One rating per certificate.
CREATE TABLE feedback_ratings (
    certificate_id   TEXT    NOT NULL PRIMARY KEY,
    facility         TEXT    NOT NULL,
    vaccinator       TEXT    NOT NULL,
    facility_stars   INTEGER NOT NULL CHECK (facility_stars BETWEEN 1 AND 5),
    vaccinator_stars INTEGER CHECK (vaccinator_stars BETWEEN 1 AND 5),
    comment          TEXT,
    rated_at         INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
