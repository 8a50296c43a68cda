//! Vaccinations as the rollout records them, and the daily counters its
//! rate limits use. Their meaning is `host/rollout`'s.

use crate::sql::{params, Optional, Row};

use crate::db::{Reader, Tx};
use crate::error::Result;

/// One recorded dose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaccinationRow {
    /// The enrolment code.
    pub enrolment: String,
    /// The programme.
    pub programme: String,
    /// Which dose (1 = the first).
    pub dose: i64,
    /// The certificate it issued.
    pub certificate_id: String,
    /// The vaccine's code.
    pub vaccine: String,
    /// The batch (lot) number.
    pub batch: String,
    /// Where.
    pub facility: String,
    /// By whom (vaccinator code).
    pub vaccinator: String,
    /// The facility's local date, `YYYY-MM-DD`.
    pub date: String,
    /// When it was recorded, ms since the epoch.
    pub at_ms: i64,
    /// Who recorded it.
    pub actor: String,
}

const COLUMNS: &str = "enrolment, programme, dose, certificate_id, vaccine, batch, facility, \
                       vaccinator, date, at_ms, actor";

fn row(r: &Row<'_>) -> crate::sql::SqlResult<VaccinationRow> {
    Ok(VaccinationRow {
        enrolment: r.get(0)?,
        programme: r.get(1)?,
        dose: r.get(2)?,
        certificate_id: r.get(3)?,
        vaccine: r.get(4)?,
        batch: r.get(5)?,
        facility: r.get(6)?,
        vaccinator: r.get(7)?,
        date: r.get(8)?,
        at_ms: r.get(9)?,
        actor: r.get(10)?,
    })
}

/// Stores a dose; `false` (nothing stored) if that dose of that person in
/// that programme is recorded already.
pub fn insert(tx: &Tx<'_>, v: &VaccinationRow) -> Result<bool> {
    let changed = tx
        .conn()
        .prepare_cached(&format!(
            "INSERT INTO vaccinations ({COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT DO NOTHING"
        ))?
        .execute(params![
            v.enrolment,
            v.programme,
            v.dose,
            v.certificate_id,
            v.vaccine,
            v.batch,
            v.facility,
            v.vaccinator,
            v.date,
            v.at_ms,
            v.actor
        ])?;
    Ok(changed == 1)
}

/// A person's doses in a programme, first dose first.
pub fn of_enrolment(
    r: &Reader<'_>,
    enrolment: &str,
    programme: &str,
) -> Result<Vec<VaccinationRow>> {
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM vaccinations WHERE enrolment = ?1 AND programme = ?2 ORDER BY dose"
    ))?;
    let rows = stmt.query_map(params![enrolment, programme], row)?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// Counts one more for `scope` on `day` if fewer than `limit` are counted
/// (no limit: always): the new count, or `None` at the limit. One
/// statement in the writer, so concurrent recorders cannot pass it.
pub fn count_up(tx: &Tx<'_>, scope: &str, day: &str, limit: Option<i64>) -> Result<Option<i64>> {
    let limit = limit.unwrap_or(i64::MAX);
    if limit < 1 {
        return Ok(None);
    }
    Ok(tx
        .conn()
        .prepare_cached(
            "INSERT INTO daily_counts (scope, day, count) VALUES (?1, ?2, 1)
             ON CONFLICT (scope, day) DO UPDATE SET count = daily_counts.count + 1 WHERE daily_counts.count < ?3
             RETURNING count",
        )?
        .query_row(params![scope, day, limit], |r| r.get(0))
        .optional()?)
}

/// What is counted for `scope` on `day`.
pub fn count(r: &Reader<'_>, scope: &str, day: &str) -> Result<i64> {
    Ok(r.conn()
        .prepare_cached("SELECT count FROM daily_counts WHERE scope = ?1 AND day = ?2")?
        .query_row(params![scope, day], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// The answer an offline app's item got, by facility and the app's id.
pub fn sync_answer(r: &Reader<'_>, facility: &str, client_id: &str) -> Result<Option<String>> {
    Ok(r.conn()
        .prepare_cached("SELECT answer FROM sync_items WHERE facility = ?1 AND client_id = ?2")?
        .query_row(params![facility, client_id], |r| r.get(0))
        .optional()?)
}

/// Keeps the answer an offline app's item got; `false` if it has one
/// already (the first answer stands).
pub fn keep_sync_answer(
    tx: &Tx<'_>,
    facility: &str,
    client_id: &str,
    answer: &str,
    now_ms: i64,
) -> Result<bool> {
    let changed = tx
        .conn()
        .prepare_cached(
            "INSERT INTO sync_items (facility, client_id, answer, at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![facility, client_id, answer, now_ms])?;
    Ok(changed == 1)
}

/// A programme's progress: counts by district and dose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// People enrolled, by the district they live in.
    pub enrolled: Vec<(String, i64)>,
    /// Open bookings.
    pub booked: i64,
    /// Doses given, by the enrolled person's district and the dose.
    pub vaccinated: Vec<(String, i64, i64)>,
}

/// Counts a programme's enrolments, open bookings and doses. A scan of
/// the programme's rows (its link index, its appointments, its doses):
/// a report for a controller, not a hot path.
pub fn progress(r: &Reader<'_>, programme: &str) -> Result<Progress> {
    let conn = r.conn();
    let enrolled = conn
        .prepare_cached(
            "SELECT COALESCE(rr.district, ''), COUNT(*)
               FROM rollout_links l JOIN rollout_records rr ON rr.id = l.record
              WHERE l.rel = 'programme' AND l.target = ?1 AND rr.kind = 'enrolment'
              GROUP BY 1 ORDER BY 1",
        )?
        .query_map(params![programme], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<crate::sql::SqlResult<_>>()?;
    let booked = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM appointments WHERE programme = ?1 AND status = 'booked'",
        )?
        .query_row(params![programme], |r| r.get(0))?;
    let vaccinated = conn
        .prepare_cached(
            "SELECT COALESCE(rr.district, ''), v.dose, COUNT(*)
               FROM vaccinations v
               LEFT JOIN rollout_records rr ON rr.kind = 'enrolment' AND rr.code = v.enrolment
              WHERE v.programme = ?1
              GROUP BY 1, 2 ORDER BY 1, 2",
        )?
        .query_map(params![programme], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<crate::sql::SqlResult<_>>()?;
    Ok(Progress {
        enrolled,
        booked,
        vaccinated,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Database, DbOptions};

    #[test]
    fn counts_stop_at_the_limit_per_scope_and_day() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let up = |scope: &'static str, day: &'static str, limit| {
            db.write(move |tx| count_up(tx, scope, day, limit))
                .wait()
                .unwrap()
        };
        assert_eq!(up("f", "d1", Some(2)), Some(1));
        assert_eq!(up("f", "d1", Some(2)), Some(2));
        assert_eq!(up("f", "d1", Some(2)), None);
        assert_eq!(up("f", "d2", Some(2)), Some(1), "a new day");
        assert_eq!(up("g", "d1", Some(2)), Some(1), "another scope");
        assert_eq!(up("f", "d1", None), Some(3), "no limit");
        assert_eq!(up("h", "d1", Some(0)), None);
        assert_eq!(db.read(|r| count(r, "f", "d1")).unwrap(), 3);
        assert_eq!(db.read(|r| count(r, "x", "d1")).unwrap(), 0);
    }

    #[test]
    fn a_dose_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let v = VaccinationRow {
            enrolment: "E".into(),
            programme: "P".into(),
            dose: 1,
            certificate_id: "C1".into(),
            vaccine: "V".into(),
            batch: "B".into(),
            facility: "F".into(),
            vaccinator: "N".into(),
            date: "2026-12-07".into(),
            at_ms: 1,
            actor: "a".into(),
        };
        let (a, b) = (v.clone(), v.clone());
        assert!(db.write(move |tx| insert(tx, &a)).wait().unwrap());
        assert!(!db.write(move |tx| insert(tx, &b)).wait().unwrap());
        let doses = db.read(|r| of_enrolment(r, "E", "P")).unwrap();
        assert_eq!(doses, vec![v]);
    }
}
