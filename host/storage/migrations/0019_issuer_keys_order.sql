-- The order keys were stored in. Times are to the second (they are
-- published as a dateTimeStamp), and a rotation soon after another — or
-- after the first host seeded — falls in the same second, so the list of
-- keys needs its own order: each stored key takes the next number.
ALTER TABLE issuer_keys ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE issuer_keys SET seq = o.n
  FROM (SELECT key_id, row_number() OVER (ORDER BY created_at, active, key_id) AS n
          FROM issuer_keys) AS o
 WHERE issuer_keys.key_id = o.key_id;
