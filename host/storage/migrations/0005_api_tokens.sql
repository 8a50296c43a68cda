-- API tokens created over the API (POST /v1/tokens). Only the SHA-256 of
-- the secret is kept; the secret is shown once, when it is made. Tokens in
-- config/divoc.toml are not stored here.
CREATE TABLE api_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    digest      BLOB    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    scope       TEXT    NOT NULL,   -- JSON: facilities, contacts, daily rates
    created_ms  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL,
    expires_ms  INTEGER,
    revoked_ms  INTEGER
) WITHOUT ROWID;
