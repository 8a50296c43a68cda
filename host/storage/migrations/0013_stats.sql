-- 0013: live counters (see stats.rs): certificates issued, corrected,
-- revoked, …, by dimension, moved in the transaction of the change they
-- count, so reading them never scans the counted rows.
CREATE TABLE stats_counts (
    metric    TEXT    NOT NULL,   -- e.g. certificates.issued
    dimension TEXT    NOT NULL,   -- e.g. vaccine
    key       TEXT    NOT NULL,   -- e.g. COVAX
    n         INTEGER NOT NULL,
    PRIMARY KEY (metric, dimension, key)
) STRICT, WITHOUT ROWID;

-- What a database upgraded to this version holds already, counted once
-- from its rows. Days are UTC dates here (the deployment's time zone is
-- configuration, which a migration does not see), and age bands are left
-- to the certificates issued from now on.
CREATE TEMP TABLE stats_seed AS
SELECT CASE WHEN previous_id IS NULL THEN 'certificates.issued'
            ELSE 'certificates.corrected' END AS metric,
       date(issued_at / 1000, 'unixepoch') AS day,
       program,
       dose,
       facility_id,
       json_extract(credential, '$.credentialSubject.vaccination.vaccine') AS vaccine,
       json_extract(credential, '$.credentialSubject.vaccination.batch') AS batch,
       json_extract(credential, '$.credentialSubject.vaccination.facility.address.district') AS district,
       json_extract(credential, '$.credentialSubject.vaccination.facility.address.state') AS state,
       json_extract(credential, '$.credentialSubject.gender') AS gender
  FROM certificates;

INSERT INTO stats_counts (metric, dimension, key, n)
SELECT metric, 'total', 'all', COUNT(*) FROM stats_seed GROUP BY metric
UNION ALL
SELECT metric, 'day', day, COUNT(*) FROM stats_seed GROUP BY metric, day
UNION ALL
SELECT metric, 'programme', program, COUNT(*) FROM stats_seed GROUP BY metric, program
UNION ALL
SELECT metric, 'dose', CAST(dose AS TEXT), COUNT(*) FROM stats_seed GROUP BY metric, dose
UNION ALL
SELECT metric, 'facility', facility_id, COUNT(*) FROM stats_seed
 WHERE facility_id IS NOT NULL GROUP BY metric, facility_id
UNION ALL
SELECT metric, 'vaccine', vaccine, COUNT(*) FROM stats_seed
 WHERE vaccine IS NOT NULL GROUP BY metric, vaccine
UNION ALL
SELECT metric, 'batch', batch, COUNT(*) FROM stats_seed
 WHERE batch IS NOT NULL GROUP BY metric, batch
UNION ALL
SELECT metric, 'district', district, COUNT(*) FROM stats_seed
 WHERE district IS NOT NULL GROUP BY metric, district
UNION ALL
SELECT metric, 'state', state, COUNT(*) FROM stats_seed
 WHERE state IS NOT NULL GROUP BY metric, state
UNION ALL
SELECT metric, 'gender', gender, COUNT(*) FROM stats_seed
 WHERE gender IS NOT NULL GROUP BY metric, gender;

INSERT INTO stats_counts (metric, dimension, key, n)
SELECT 'certificates.revoked', 'total', 'all', COUNT(*) FROM certificates
 WHERE status = 'revoked' AND COALESCE(revoked_reason, '') <> 'superseded'
HAVING COUNT(*) > 0;

DROP TABLE stats_seed;
