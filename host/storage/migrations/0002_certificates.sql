-- 0002: certificates (the certificate module's records; the signed
-- credential itself is stored whole, as issued).

CREATE TABLE certificates (
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
    credential      TEXT NOT NULL CHECK (json_valid(credential)),
    -- Idempotency by construction: one certificate per dose per version.
    UNIQUE (program, recipient_ref, dose, version)
) STRICT;

CREATE INDEX certificates_by_recipient ON certificates (recipient_ref, program, dose);
CREATE INDEX certificates_by_facility ON certificates (facility_id, issued_at);

-- Lookup keys for "recipient contact + date of birth": keyed hashes, never
-- the plaintext contact (see src/certificates.rs).
CREATE TABLE certificate_lookup (
    lookup_hash    TEXT NOT NULL,
    certificate_id TEXT NOT NULL REFERENCES certificates(id),
    PRIMARY KEY (lookup_hash, certificate_id)
) STRICT, WITHOUT ROWID;
