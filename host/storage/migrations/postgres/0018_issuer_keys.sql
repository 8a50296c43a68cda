-- The issuer's keys shared by the hosts (the SQLite migration 0018 says
-- why).
CREATE TABLE issuer_keys (
    key_id     TEXT COLLATE "C" PRIMARY KEY,
    purpose    TEXT COLLATE "C" NOT NULL,
    public_key TEXT COLLATE "C" NOT NULL,
    active     BIGINT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    retired_at TEXT COLLATE "C",
    sealed     BYTEA
);
CREATE UNIQUE INDEX issuer_keys_active ON issuer_keys(purpose) WHERE active = 1;
