-- 0003: the certificates table rebuilt leaner, because every issuance
-- writes one row of it on the single writer thread
-- (docs/PERFORMANCE.md, § Certificates):
--
-- * no json_valid() CHECK on the stored credential: it is always written
--   by serde_json from a signed credential, and SQLite parsing 2 kB of
--   JSON per insert was 3-4 % of the writer's time;
-- * the idempotency key is ordered (recipient_ref, program, dose, version),
--   so it also serves lookups by pre-enrolment code, and the separate
--   certificates_by_recipient index goes;
-- * certificates_by_facility goes: no query uses it (facility access is
--   checked per record).
--
-- Run with foreign keys off and checked before commit (see migrate.rs),
-- as SQLite's documented procedure for changing a table's definition.

CREATE TABLE certificates_new (
    id              TEXT PRIMARY KEY NOT NULL,  -- certificate id
    program         TEXT NOT NULL,
    recipient_ref   TEXT NOT NULL,              -- pre-enrolment code
    dose            INTEGER NOT NULL CHECK (dose >= 1),
    version         INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    previous_id     TEXT REFERENCES certificates(id),
    status          TEXT NOT NULL DEFAULT 'valid'
                    CHECK (status IN ('valid', 'revoked', 'suspended')),
    suspended_until INTEGER,                    -- ms; NULL = until reinstated
    revoked_reason  TEXT,
    status_index    INTEGER NOT NULL UNIQUE,    -- Bitstring Status List position
    issued_at       INTEGER NOT NULL,           -- ms
    updated_at      INTEGER NOT NULL,           -- ms
    facility_id     TEXT,
    payload_hash    TEXT NOT NULL,              -- SHA-256 of the canonical request
    credential      TEXT NOT NULL,              -- the signed credential (JSON)
    -- Idempotency by construction: one certificate per dose per version.
    UNIQUE (recipient_ref, program, dose, version)
) STRICT;

INSERT INTO certificates_new (id, program, recipient_ref, dose, version, previous_id,
        status, suspended_until, revoked_reason, status_index, issued_at, updated_at,
        facility_id, payload_hash, credential)
    SELECT id, program, recipient_ref, dose, version, previous_id,
        status, suspended_until, revoked_reason, status_index, issued_at, updated_at,
        facility_id, payload_hash, credential
    FROM certificates ORDER BY rowid;

DROP TABLE certificates;
ALTER TABLE certificates_new RENAME TO certificates;
