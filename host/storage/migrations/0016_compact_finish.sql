-- 0016 (last part): once every row is copied, the compact tables take the
-- old ones' places, in the same transaction as the schema version bump.
-- Dropping a table drops its indexes; the partial index of withdrawn
-- certificates (0015) is made again on the new table.

DROP TABLE certificate_lookup;
DROP TABLE certificates;
ALTER TABLE certificates_compact RENAME TO certificates;
ALTER TABLE certificate_lookup_compact RENAME TO certificate_lookup;
CREATE INDEX certificates_withdrawn ON certificates (id) WHERE status != 'valid';
DROP TABLE migration_progress;
