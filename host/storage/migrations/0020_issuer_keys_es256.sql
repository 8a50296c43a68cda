-- The ES256 keys (EU DCC, SMART Health Cards) are shared by the hosts of
-- one database too, in the same table: each row names its algorithm, and
-- an ES256 key keeps its document-signer certificate (DER) beside its
-- public key (base64 SEC1 point). One active key per purpose and algorithm:
-- a purpose has an Ed25519 key and an ES256 key.
ALTER TABLE issuer_keys ADD COLUMN algorithm TEXT NOT NULL DEFAULT 'ed25519';
ALTER TABLE issuer_keys ADD COLUMN certificate BLOB;
DROP INDEX issuer_keys_active;
CREATE UNIQUE INDEX issuer_keys_active ON issuer_keys(algorithm, purpose) WHERE active = 1;
