-- 0016 (first part): the compact certificate tables, filled by the copy
-- step in src/compact.rs a chunk per transaction, so that a large database
-- converts resumably: a restart continues from the last committed chunk.
-- Idempotent, since it runs again on every resumed attempt.
--
-- What changes (docs/PERFORMANCE.md, § Storage footprint):
-- * `credential` is stored compressed (src/credential_codec.rs): ~2 KB of
--   JSON became a row too large for two to share a 4 KiB page, so every
--   certificate took a page of its own;
-- * `payload_hash` and `lookup_hash`, SHA-256 digests, are stored as their
--   32 bytes instead of 64 hex digits.

CREATE TABLE IF NOT EXISTS certificates_compact (
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
    payload_hash    BLOB NOT NULL,              -- SHA-256 of the canonical request
    credential      BLOB NOT NULL,              -- the signed credential, src/credential_codec.rs
    -- Idempotency by construction: one certificate per dose per version.
    UNIQUE (recipient_ref, program, dose, version)
) STRICT;

CREATE TABLE IF NOT EXISTS certificate_lookup_compact (
    lookup_hash    BLOB NOT NULL,
    certificate_id TEXT NOT NULL REFERENCES certificates(id),
    PRIMARY KEY (lookup_hash, certificate_id)
) STRICT, WITHOUT ROWID;

-- How far the copy got, per table; committed with each chunk.
CREATE TABLE IF NOT EXISTS migration_progress (
    step  TEXT PRIMARY KEY NOT NULL,
    after TEXT NOT NULL
) STRICT;
