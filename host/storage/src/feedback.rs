//! Side-effect reports and ratings (migration 0014). The feedback module
//! decides what is stored; this is its SQL.

use crate::sql::{params, Optional, Row};

use crate::db::{Reader, Tx};
use crate::error::{to_i64, Result, StorageError};

/// A side-effect report as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    /// Position in the list (its cursor).
    pub seq: i64,
    /// `rpt_…`.
    pub id: String,
    /// The certificate it is about.
    pub certificate_id: String,
    /// Copied from the certificate when filed.
    pub programme: String,
    /// Copied from the certificate.
    pub vaccine: String,
    /// Copied from the certificate.
    pub batch: String,
    /// Copied from the certificate.
    pub facility: String,
    /// The facility's district.
    pub district: String,
    /// The facility's state.
    pub state: String,
    /// Which dose.
    pub dose: i64,
    /// `mild`, `moderate` or `serious`.
    pub severity: String,
    /// The form's answers (JSON).
    pub answers: serde_json::Value,
    /// Who filed it: `recipient`, `holder`, `facility`, …
    pub filed_by: String,
    /// When, ms.
    pub filed_at_ms: i64,
}

/// Which reports [`list`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFilter {
    /// Programme code.
    pub programme: Option<String>,
    /// Vaccine.
    pub vaccine: Option<String>,
    /// Batch.
    pub batch: Option<String>,
    /// Facility code.
    pub facility: Option<String>,
    /// District.
    pub district: Option<String>,
    /// Severity.
    pub severity: Option<String>,
    /// Filed at or after (ms).
    pub from_ms: Option<i64>,
    /// Filed before (ms).
    pub to_ms: Option<i64>,
    /// Only after this cursor.
    pub after: Option<i64>,
}

const COLUMNS: &str = "seq, id, certificate_id, programme, vaccine, batch, facility, district, \
     state, dose, severity, answers, filed_by, filed_at";

fn from_row(row: &Row<'_>) -> crate::sql::SqlResult<(ReportRow, String)> {
    Ok((
        ReportRow {
            seq: row.get(0)?,
            id: row.get(1)?,
            certificate_id: row.get(2)?,
            programme: row.get(3)?,
            vaccine: row.get(4)?,
            batch: row.get(5)?,
            facility: row.get(6)?,
            district: row.get(7)?,
            state: row.get(8)?,
            dose: row.get(9)?,
            severity: row.get(10)?,
            answers: serde_json::Value::Null,
            filed_by: row.get(12)?,
            filed_at_ms: row.get(13)?,
        },
        row.get(11)?,
    ))
}

fn parse(pair: (ReportRow, String)) -> Result<ReportRow> {
    let (mut r, answers) = pair;
    r.answers = serde_json::from_str(&answers).map_err(|source| StorageError::Json {
        what: "feedback_reports.answers",
        source,
    })?;
    Ok(r)
}

/// Stores a report (its `seq` is assigned; the one given is ignored) and
/// returns its `seq`.
pub fn insert_report(tx: &Tx<'_>, r: &ReportRow) -> Result<i64> {
    let answers = serde_json::to_string(&r.answers).map_err(|source| StorageError::Json {
        what: "feedback answers",
        source,
    })?;
    tx.conn()
        .insert_id(
            "INSERT INTO feedback_reports (id, certificate_id, programme, vaccine, batch, facility,
                 district, state, dose, severity, answers, filed_by, filed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            "seq",
            params![
                r.id,
                r.certificate_id,
                r.programme,
                r.vaccine,
                r.batch,
                r.facility,
                r.district,
                r.state,
                r.dose,
                r.severity,
                answers,
                r.filed_by,
                r.filed_at_ms
            ],
        )?
        .ok_or_else(|| crate::sql::SqlError::NoRows.into())
}

/// One report by id.
pub fn get_report(r: &Reader<'_>, id: &str) -> Result<Option<ReportRow>> {
    r.conn()
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM feedback_reports WHERE id = ?1"
        ))?
        .query_row([id], from_row)
        .optional()?
        .map(parse)
        .transpose()
}

/// How many reports a certificate has.
pub fn reports_of(r: &Reader<'_>, certificate_id: &str) -> Result<i64> {
    Ok(r.conn()
        .prepare_cached("SELECT COUNT(*) FROM feedback_reports WHERE certificate_id = ?1")?
        .query_row([certificate_id], |row| row.get(0))?)
}

/// Reports matching `f`, oldest first, at most `limit`. Each filter is an
/// equality on an indexed column (or the filing time), so a regulator's
/// "this batch" reads the batch's index.
pub fn list(r: &Reader<'_>, f: &ReportFilter, limit: usize) -> Result<Vec<ReportRow>> {
    let limit = to_i64(limit as u64, "limit")?;
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM feedback_reports
          WHERE seq > ?1
            AND (programme = ?2 OR ?2 IS NULL)
            AND (vaccine = ?3 OR ?3 IS NULL)
            AND (batch = ?4 OR ?4 IS NULL)
            AND (facility = ?5 OR ?5 IS NULL)
            AND (district = ?6 OR ?6 IS NULL)
            AND (severity = ?7 OR ?7 IS NULL)
            AND (filed_at >= ?8 OR ?8 IS NULL)
            AND (filed_at < ?9 OR ?9 IS NULL)
          ORDER BY seq LIMIT ?10"
    ))?;
    let rows = stmt.query_map(
        params![
            f.after.unwrap_or(0),
            f.programme,
            f.vaccine,
            f.batch,
            f.facility,
            f.district,
            f.severity,
            f.from_ms,
            f.to_ms,
            limit
        ],
        from_row,
    )?;
    let mut out = Vec::new();
    for row in rows {
        out.push(parse(row?)?);
    }
    Ok(out)
}

/// A rating as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingRow {
    /// The certificate rated (one rating each).
    pub certificate_id: String,
    /// The facility rated.
    pub facility: String,
    /// The vaccinator rated.
    pub vaccinator: String,
    /// 1-5.
    pub facility_stars: i64,
    /// 1-5, when given.
    pub vaccinator_stars: Option<i64>,
    /// Free text.
    pub comment: Option<String>,
    /// When, ms.
    pub rated_at_ms: i64,
}

/// Stores a rating; `false` when the certificate has one already.
pub fn insert_rating(tx: &Tx<'_>, r: &RatingRow) -> Result<bool> {
    let n = tx
        .conn()
        .prepare_cached(
            "INSERT INTO feedback_ratings (certificate_id, facility, vaccinator,
                 facility_stars, vaccinator_stars, comment, rated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            r.certificate_id,
            r.facility,
            r.vaccinator,
            r.facility_stars,
            r.vaccinator_stars,
            r.comment,
            r.rated_at_ms
        ])?;
    Ok(n == 1)
}

/// A certificate's rating.
pub fn get_rating(r: &Reader<'_>, certificate_id: &str) -> Result<Option<RatingRow>> {
    Ok(r.conn()
        .prepare_cached(
            "SELECT certificate_id, facility, vaccinator, facility_stars, vaccinator_stars,
                    comment, rated_at
               FROM feedback_ratings WHERE certificate_id = ?1",
        )?
        .query_row([certificate_id], |row| {
            Ok(RatingRow {
                certificate_id: row.get(0)?,
                facility: row.get(1)?,
                vaccinator: row.get(2)?,
                facility_stars: row.get(3)?,
                vaccinator_stars: row.get(4)?,
                comment: row.get(5)?,
                rated_at_ms: row.get(6)?,
            })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Database, DbOptions};
    use serde_json::json;

    fn report(id: &str, batch: &str, severity: &str, at: i64) -> ReportRow {
        ReportRow {
            seq: 0,
            id: id.into(),
            certificate_id: format!("c-{id}"),
            programme: "C19".into(),
            vaccine: "COVAX".into(),
            batch: batch.into(),
            facility: "F1".into(),
            district: "D".into(),
            state: "S".into(),
            dose: 1,
            severity: severity.into(),
            answers: json!({"symptoms": ["fever"]}),
            filed_by: "recipient".into(),
            filed_at_ms: at,
        }
    }

    #[test]
    fn reports_filter_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("f.db"), DbOptions::default()).unwrap();
        for (i, (b, s)) in [("L1", "mild"), ("L2", "serious"), ("L1", "serious")]
            .iter()
            .enumerate()
        {
            let r = report(&format!("r{i}"), b, s, 1000 * i as i64);
            db.write(move |tx| insert_report(tx, &r)).wait().unwrap();
        }
        let l1 = ReportFilter {
            batch: Some("L1".into()),
            ..Default::default()
        };
        let got = db.read(|r| list(r, &l1, 10)).unwrap();
        assert_eq!(
            got.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r0", "r2"]
        );
        assert_eq!(got[0].answers["symptoms"][0], "fever");
        let serious_late = ReportFilter {
            severity: Some("serious".into()),
            from_ms: Some(1500),
            ..Default::default()
        };
        let got = db.read(|r| list(r, &serious_late, 10)).unwrap();
        assert_eq!(got.len(), 1);
        let page = db
            .read(|r| {
                list(
                    r,
                    &ReportFilter {
                        after: Some(1),
                        ..Default::default()
                    },
                    1,
                )
            })
            .unwrap();
        assert_eq!(page[0].id, "r1");
        assert!(db.read(|r| get_report(r, "r1")).unwrap().is_some());
    }

    #[test]
    fn one_rating_per_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("f.db"), DbOptions::default()).unwrap();
        let r = RatingRow {
            certificate_id: "c1".into(),
            facility: "F1".into(),
            vaccinator: "A1".into(),
            facility_stars: 5,
            vaccinator_stars: Some(4),
            comment: None,
            rated_at_ms: 1,
        };
        let again = r.clone();
        assert!(db.write(move |tx| insert_rating(tx, &r)).wait().unwrap());
        assert!(!db
            .write(move |tx| insert_rating(tx, &again))
            .wait()
            .unwrap());
        assert_eq!(
            db.read(|r| get_rating(r, "c1"))
                .unwrap()
                .unwrap()
                .facility_stars,
            5
        );
    }
}
