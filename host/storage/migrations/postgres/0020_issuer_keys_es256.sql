-- The ES256 keys shared in the same table (the SQLite migration 0020 says
-- why).
ALTER TABLE issuer_keys ADD COLUMN algorithm TEXT COLLATE "C" NOT NULL DEFAULT 'ed25519';
ALTER TABLE issuer_keys ADD COLUMN certificate BYTEA;
DROP INDEX issuer_keys_active;
CREATE UNIQUE INDEX issuer_keys_active ON issuer_keys(algorithm, purpose) WHERE active = 1;
