-- The order keys were stored in (the SQLite migration 0019 says why).
ALTER TABLE issuer_keys ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE issuer_keys SET seq = o.n
  FROM (SELECT key_id, row_number() OVER (ORDER BY created_at, active, key_id) AS n
          FROM issuer_keys) AS o
 WHERE issuer_keys.key_id = o.key_id;
