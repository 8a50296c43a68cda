-- 0010: vaccinations recorded by a facility (the rollout's view of a dose:
-- who, which dose, where, by whom, and the certificate it issued; the
-- credential itself is in certificates), and exact daily counters for the
-- rate limits (a facility's per programme, a staff token's).
CREATE TABLE vaccinations (
    enrolment       TEXT    NOT NULL,   -- the enrolment code
    programme       TEXT    NOT NULL,
    dose            INTEGER NOT NULL,
    certificate_id  TEXT    NOT NULL,
    vaccine         TEXT    NOT NULL,
    batch           TEXT    NOT NULL,
    facility        TEXT    NOT NULL,
    vaccinator      TEXT    NOT NULL,
    date            TEXT    NOT NULL,   -- the facility's local date
    at_ms           INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    PRIMARY KEY (enrolment, programme, dose)
) WITHOUT ROWID;

CREATE INDEX vaccinations_by_facility_day ON vaccinations (facility, date);

-- `scope` names what is counted: `facility:<code>:<programme>` or
-- `token:<name>`; `day` is the local date.
CREATE TABLE daily_counts (
    scope   TEXT    NOT NULL,
    day     TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (scope, day)
) WITHOUT ROWID;
