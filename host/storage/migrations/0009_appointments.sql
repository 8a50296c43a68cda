-- 0009: appointments. A facility's slots are not stored: they follow from
-- its schedule (rollout_records, facility body) and the date. What is
-- stored is who booked what, and how many seats of each slot are taken.
CREATE TABLE appointments (
    id          TEXT    NOT NULL PRIMARY KEY,   -- apt_<16 hex>
    enrolment   TEXT    NOT NULL,   -- the enrolment code
    programme   TEXT    NOT NULL,
    facility    TEXT    NOT NULL,
    dose        INTEGER NOT NULL,
    date        TEXT    NOT NULL,   -- the facility's local date, YYYY-MM-DD
    start       TEXT    NOT NULL,   -- local HH:MM
    starts_ms   INTEGER NOT NULL,   -- the slot's start, ms since the epoch
    status      TEXT    NOT NULL,   -- booked | cancelled | done
    reschedules INTEGER NOT NULL DEFAULT 0,
    actor       TEXT    NOT NULL,   -- who made the last change
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- One open booking per person, programme and dose.
CREATE UNIQUE INDEX appointments_open
    ON appointments (enrolment, programme, dose) WHERE status = 'booked';
CREATE INDEX appointments_by_day ON appointments (facility, date, start);
CREATE INDEX appointments_by_enrolment ON appointments (enrolment);

-- Seats taken per slot; a booking takes one only while booked < capacity
-- (one statement, in the writer: no read-then-write race).
CREATE TABLE slot_seats (
    facility    TEXT    NOT NULL,
    programme   TEXT    NOT NULL,
    date        TEXT    NOT NULL,
    start       TEXT    NOT NULL,
    booked      INTEGER NOT NULL,
    PRIMARY KEY (facility, programme, date, start)
) WITHOUT ROWID;
