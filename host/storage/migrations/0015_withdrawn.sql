-- Certificates that are not in force (revoked, superseded, suspended), for
-- the revocation lists of other certificate formats (EU DCC hashes, SMART
-- Health Card rids): a partial index, so the lists are read without scanning
-- every certificate and cost nothing for the valid majority.
CREATE INDEX certificates_withdrawn ON certificates (id) WHERE status != 'valid';
