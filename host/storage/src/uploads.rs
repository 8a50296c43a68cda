//! CSV uploads to the registry: their history and refused rows. Parsing
//! and the rows' meaning are `host/rollout`'s.

use crate::sql::{params, Optional, Row};

use crate::db::{Reader, Tx};
use crate::error::Result;

/// One upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadRow {
    /// Its id.
    pub id: String,
    /// `facilities` or `vaccinators`.
    pub kind: String,
    /// Who sent it.
    pub actor: String,
    /// SHA-256 of the file, hex (empty until it has been read whole).
    pub sha256: String,
    /// The header's cells, as a JSON array.
    pub header: String,
    /// When it started, ms since the Unix epoch.
    pub created_ms: i64,
    /// When it finished; `None` while it runs (or if it was cut off).
    pub finished_ms: Option<i64>,
    /// Rows read.
    pub rows: i64,
    /// Records created.
    pub created: i64,
    /// Records changed to a new version.
    pub updated: i64,
    /// Rows identical to what is stored (a re-sent upload).
    pub unchanged: i64,
    /// Rows refused.
    pub failed: i64,
    /// When its refused rows were erased ([`erase_errors`]), if they were.
    pub errors_erased_ms: Option<i64>,
}

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadError {
    /// 1 for the first row after the header.
    pub row_no: i64,
    /// The row's cells, as a JSON array.
    pub cells: String,
    /// `field: why; field: why`.
    pub errors: String,
}

const COLUMNS: &str = "id, kind, actor, sha256, header, created_ms, finished_ms, rows, created, \
                       updated, unchanged, failed, errors_erased_ms";

fn upload(r: &Row<'_>) -> crate::sql::SqlResult<UploadRow> {
    Ok(UploadRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        actor: r.get(2)?,
        sha256: r.get(3)?,
        header: r.get(4)?,
        created_ms: r.get(5)?,
        finished_ms: r.get(6)?,
        rows: r.get(7)?,
        created: r.get(8)?,
        updated: r.get(9)?,
        unchanged: r.get(10)?,
        failed: r.get(11)?,
        errors_erased_ms: r.get(12)?,
    })
}

/// Records the start of an upload.
pub fn start(tx: &Tx<'_>, u: &UploadRow) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO uploads (id, kind, actor, sha256, header, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            u.id,
            u.kind,
            u.actor,
            u.sha256,
            u.header,
            u.created_ms
        ])?;
    Ok(())
}

/// Adds a chunk's counts to an upload.
pub fn add_counts(
    tx: &Tx<'_>,
    id: &str,
    rows: i64,
    created: i64,
    updated: i64,
    unchanged: i64,
    failed: i64,
) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE uploads SET rows = rows + ?2, created = created + ?3, updated = updated + ?4,
                    unchanged = unchanged + ?5, failed = failed + ?6 WHERE id = ?1",
        )?
        .execute(params![id, rows, created, updated, unchanged, failed])?;
    Ok(())
}

/// Keeps a refused row.
pub fn add_error(tx: &Tx<'_>, id: &str, e: &UploadError) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "INSERT INTO upload_errors (upload_id, row_no, cells, errors)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (upload_id, row_no)
             DO UPDATE SET cells = excluded.cells, errors = excluded.errors",
        )?
        .execute(params![id, e.row_no, e.cells, e.errors])?;
    Ok(())
}

/// Marks an upload finished, with its file's digest (known only once the
/// whole file has been read).
pub fn finish(tx: &Tx<'_>, id: &str, sha256: &str, now_ms: i64) -> Result<()> {
    tx.conn()
        .prepare_cached("UPDATE uploads SET finished_ms = ?2, sha256 = ?3 WHERE id = ?1")?
        .execute(params![id, now_ms, sha256])?;
    Ok(())
}

/// The upload with this id.
pub fn get(r: &Reader<'_>, id: &str) -> Result<Option<UploadRow>> {
    Ok(r.conn()
        .prepare_cached(&format!("SELECT {COLUMNS} FROM uploads WHERE id = ?1"))?
        .query_row(params![id], upload)
        .optional()?)
}

/// The newest uploads of `kind` (all kinds if `None`), newest first, up
/// to `limit`, before the upload created at `before_ms` if given.
pub fn list(
    r: &Reader<'_>,
    kind: Option<&str>,
    before_ms: Option<i64>,
    limit: usize,
) -> Result<Vec<UploadRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {COLUMNS} FROM uploads
          WHERE (kind = ?1 OR ?1 IS NULL) AND (created_ms < ?2 OR ?2 IS NULL)
          ORDER BY created_ms DESC, id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![kind, before_ms, limit], upload)?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// Erases up to `limit` refused rows of the oldest upload started before
/// `before_ms` that has refused rows left, marking it erased (at `now_ms`)
/// in the first call, so that `errors.csv` is never a part of the rows
/// (uploads without refused rows are left as they are). `Some(true)` when
/// its last rows went, `Some(false)` while rows remain, `None` when there
/// was no such upload (call until then; each call is one short write).
pub fn erase_errors(
    tx: &Tx<'_>,
    before_ms: i64,
    now_ms: i64,
    limit: usize,
) -> Result<Option<bool>> {
    let conn = tx.conn();
    let Some(id) = conn
        .prepare_cached(
            "SELECT id FROM uploads u
              WHERE created_ms < ?1 AND failed > 0
                AND (errors_erased_ms IS NULL
                     OR EXISTS (SELECT 1 FROM upload_errors e WHERE e.upload_id = u.id))
              ORDER BY created_ms LIMIT 1",
        )?
        .query_row(params![before_ms], |r| r.get::<String>(0))
        .optional()?
    else {
        return Ok(None);
    };
    conn.prepare_cached(
        "UPDATE uploads SET errors_erased_ms = ?2 WHERE id = ?1 AND errors_erased_ms IS NULL",
    )?
    .execute(params![id, now_ms])?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "DELETE FROM upload_errors WHERE upload_id = ?1 AND row_no IN
           (SELECT row_no FROM upload_errors WHERE upload_id = ?1 ORDER BY row_no LIMIT ?2)",
    )?
    .execute(params![id, limit])?;
    let left = conn
        .prepare_cached("SELECT 1 FROM upload_errors WHERE upload_id = ?1")?
        .exists(params![id])?;
    Ok(Some(!left))
}

/// Refused rows of an upload after row `after`, in row order, up to `limit`.
pub fn errors(r: &Reader<'_>, id: &str, after: i64, limit: usize) -> Result<Vec<UploadError>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = r.conn().prepare_cached(
        "SELECT row_no, cells, errors FROM upload_errors
          WHERE upload_id = ?1 AND row_no > ?2 ORDER BY row_no LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![id, after, limit], |row| {
        Ok(UploadError {
            row_no: row.get(0)?,
            cells: row.get(1)?,
            errors: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Database, DbOptions};

    #[test]
    fn an_upload_keeps_its_counts_and_refused_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        let u = UploadRow {
            id: "up1".into(),
            kind: "facilities".into(),
            actor: "ctl".into(),
            sha256: "ab".into(),
            header: "[\"facilityCode\"]".into(),
            created_ms: 10,
            ..UploadRow::default()
        };
        let u0 = u.clone();
        db.write(move |tx| {
            start(tx, &u)?;
            add_counts(tx, "up1", 3, 1, 1, 0, 1)?;
            add_counts(tx, "up1", 2, 2, 0, 0, 0)?;
            for n in [4, 2] {
                let e = UploadError {
                    row_no: n,
                    cells: "[\"x\"]".into(),
                    errors: "code: bad".into(),
                };
                add_error(tx, "up1", &e)?;
            }
            finish(tx, "up1", "cd", 20)
        })
        .wait()
        .unwrap();
        let got = db.read(|r| get(r, "up1")).unwrap().unwrap();
        assert_eq!(
            (
                got.rows,
                got.created,
                got.updated,
                got.failed,
                got.finished_ms
            ),
            (5, 3, 1, 1, Some(20))
        );
        let rows: Vec<i64> = db
            .read(|r| errors(r, "up1", 0, 10))
            .unwrap()
            .iter()
            .map(|e| e.row_no)
            .collect();
        assert_eq!(rows, [2, 4]);
        assert_eq!(db.read(|r| errors(r, "up1", 2, 10)).unwrap().len(), 1);
        assert_eq!(
            db.read(|r| list(r, Some("facilities"), None, 10))
                .unwrap()
                .len(),
            1
        );
        assert!(db
            .read(|r| list(r, Some("vaccinators"), None, 10))
            .unwrap()
            .is_empty());
        assert!(db.read(|r| list(r, None, Some(10), 10)).unwrap().is_empty());

        // An old upload without refused rows is left as it is.
        let clean = UploadRow {
            id: "up0".into(),
            created_ms: 5,
            ..u0
        };
        db.write(move |tx| start(tx, &clean)).wait().unwrap();
        // Retention: nothing started before 10; then up1 (started at 10),
        // one row per call, marked erased at the first.
        let erase = |before| db.write(move |tx| erase_errors(tx, before, 99, 1)).wait();
        assert_eq!(erase(10).unwrap(), None);
        assert_eq!(erase(11).unwrap(), Some(false));
        assert_eq!(db.read(|r| errors(r, "up1", 0, 10)).unwrap().len(), 1);
        let got = db.read(|r| get(r, "up1")).unwrap().unwrap();
        assert_eq!(
            got.errors_erased_ms,
            Some(99),
            "marked before the last row goes"
        );
        assert_eq!(erase(11).unwrap(), Some(true), "its last row");
        assert_eq!(erase(11).unwrap(), None);
        let got = db.read(|r| get(r, "up1")).unwrap().unwrap();
        assert_eq!((got.errors_erased_ms, got.failed), (Some(99), 1));
        assert!(db.read(|r| errors(r, "up1", 0, 10)).unwrap().is_empty());
        let clean = db.read(|r| get(r, "up0")).unwrap().unwrap();
        assert_eq!(clean.errors_erased_ms, None);
    }
}
