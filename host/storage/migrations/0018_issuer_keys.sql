-- The issuer's keys, for hosts that share one database (docs/SCALE.md,
-- § Issuer keys): public facts, and the private half of an active key
-- sealed with the store key every host holds (divoc_crypto::keys::shared).
-- A retired key keeps its row (it still verifies) and loses its sealed
-- half. One host alone keeps its keys in its keys directory and leaves this
-- table empty.
CREATE TABLE issuer_keys (
    key_id     TEXT    PRIMARY KEY,
    purpose    TEXT    NOT NULL,
    public_key TEXT    NOT NULL,           -- Multikey (z6Mk…)
    active     INTEGER NOT NULL,           -- 1 signs, 0 verifies only
    created_at TEXT    NOT NULL,
    retired_at TEXT,
    sealed     BLOB                        -- nonce ‖ ChaCha20-Poly1305 ciphertext ‖ tag
) STRICT;
-- One active key per purpose, whichever host rotates.
CREATE UNIQUE INDEX issuer_keys_active ON issuer_keys(purpose) WHERE active = 1;
