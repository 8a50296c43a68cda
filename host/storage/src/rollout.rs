//! The rollout registry's rows: vaccines, programmes, facilities,
//! vaccinators and enrolments (their meaning and rules are
//! `host/rollout`'s).
//!
//! A record is stored as the JSON its domain crate gives, with the columns
//! lists filter on beside it ([`RecordIndex`]) and the codes it refers to
//! ([`RecordIndex::links`]). The record row is its current version; every
//! version it leaves behind goes to `rollout_versions`. The caller appends
//! the audit record and the event in the same write closure, so they
//! commit together.
//!
//! Records carry a sequential id and lists come in id order (the order the
//! records were created): every index a new record enters, except the
//! unique code and a person key, then grows at its end, which is what
//! lets an upload of a million random-coded pre-enrolments append
//! (migration 0007 says why).
//!
//! Uniqueness is the unique index on `(kind, code)`: of two concurrent
//! creates of one code, the writer applies one and the other finds the
//! row ([`insert`] answers `None`).

use crate::sql::{params, params_from_iter, Optional, Row};

use crate::db::{Reader, Tx};
use crate::error::Result;

/// One stored record, at its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its place in creation order (lists' cursor).
    pub id: i64,
    /// `vaccine`, `programme`, `facility`, `vaccinator` or `enrolment`.
    pub kind: String,
    /// Its unique code within the kind.
    pub code: String,
    /// 1 for a new record, +1 per change.
    pub version: i64,
    /// The record's status as its domain names it.
    pub status: String,
    /// The record as JSON.
    pub body: String,
    /// When it was created, ms since the Unix epoch.
    pub created_ms: i64,
    /// When it last changed.
    pub updated_ms: i64,
}

/// One kept version of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordVersion {
    /// The version number.
    pub version: i64,
    /// The record as JSON at that version; `None` for a deletion.
    pub body: Option<String>,
    /// Who made the change (a token's label).
    pub actor: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
}

/// What lists filter on, taken from the record by its domain crate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordIndex {
    /// The record's status.
    pub status: String,
    /// A facility's district.
    pub district: Option<String>,
    /// A facility's state.
    pub state: Option<String>,
    /// A facility's type.
    pub kind_of_site: Option<String>,
    /// `(relation, code)` pairs the record refers to, e.g.
    /// `("programme", "C19")` for a facility active in programme `C19`.
    pub links: Vec<(String, String)>,
}

/// A list query: every given filter must hold; records come in creation
/// order, after `after` (the cursor: the last id of the previous page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this district.
    pub district: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only this type.
    pub kind_of_site: Option<String>,
    /// Only records linked to this `(relation, code)`.
    pub link: Option<(String, String)>,
    /// Only these codes (e.g. a facility token's own facilities).
    pub codes: Option<Vec<String>>,
    /// Only records after this id ([`Record::id`]).
    pub after: Option<i64>,
    /// Only records changed at or after this time (ms since the epoch).
    pub updated_since: Option<i64>,
}

fn record(row: &Row<'_>) -> crate::sql::SqlResult<Record> {
    Ok(Record {
        id: row.get(0)?,
        kind: row.get(1)?,
        code: row.get(2)?,
        version: row.get(3)?,
        status: row.get(4)?,
        body: row.get(5)?,
        created_ms: row.get(6)?,
        updated_ms: row.get(7)?,
    })
}

const COLUMNS: &str =
    "rr.id, rr.kind, rr.code, rr.version, rr.status, rr.body, rr.created_ms, rr.updated_ms";

/// Sets a record's links; `fresh` for a record just inserted (it has none
/// to remove).
fn put_links(tx: &Tx<'_>, id: i64, links: &[(String, String)], fresh: bool) -> Result<()> {
    let conn = tx.conn();
    if !fresh {
        conn.prepare_cached("DELETE FROM rollout_links WHERE record = ?1")?
            .execute(params![id])?;
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO rollout_links (rel, target, record) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
    )?;
    for (rel, target) in links {
        insert.execute(params![rel, target, id])?;
    }
    Ok(())
}

/// Moves the current version of the record `id` into `rollout_versions`
/// (before it is replaced or deleted). Its `(kind, code, version)`.
fn keep_current(tx: &Tx<'_>, id: i64) -> Result<(String, String, i64)> {
    Ok(tx
        .conn()
        .prepare_cached(
            "INSERT INTO rollout_versions (kind, code, version, body, actor, at_ms)
             SELECT kind, code, version, body, actor, updated_ms FROM rollout_records WHERE id = ?1
             RETURNING kind, code, version",
        )?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
}

fn current(tx: &Tx<'_>, kind: &str, code: &str) -> Result<Option<(i64, i64)>> {
    Ok(tx
        .conn()
        .prepare_cached("SELECT id, version FROM rollout_records WHERE kind = ?1 AND code = ?2")?
        .query_row(params![kind, code], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Stores a new record; its version (1, or one past the deletion of an
/// earlier record with the code: versions are never reused). `None` (and
/// nothing written) when a record of that kind and code exists.
pub fn insert(
    tx: &Tx<'_>,
    kind: &str,
    code: &str,
    index: &RecordIndex,
    body: &str,
    actor: &str,
    now_ms: i64,
) -> Result<Option<i64>> {
    // rollout_versions holds only what records left behind: for a code
    // never used this finds nothing, from a small table.
    let version: i64 = tx
        .conn()
        .prepare_cached(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM rollout_versions WHERE kind = ?1 AND code = ?2",
        )?
        .query_row(params![kind, code], |r| r.get(0))?;
    let inserted = tx.conn().insert_id(
        "INSERT INTO rollout_records
                 (kind, code, version, status, district, state, type, body, actor,
                  created_ms, updated_ms)
             VALUES (?1, ?2, ?9, ?3, ?4, ?5, ?6, ?7, ?10, ?8, ?8)
             ON CONFLICT (kind, code) DO NOTHING",
        "id",
        params![
            kind,
            code,
            index.status,
            index.district,
            index.state,
            index.kind_of_site,
            body,
            now_ms,
            version,
            actor
        ],
    )?;
    let Some(id) = inserted else {
        return Ok(None);
    };
    put_links(tx, id, &index.links, true)?;
    Ok(Some(version))
}

/// How an [`update`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Stored as this version.
    Updated(i64),
    /// No such record.
    NotFound,
    /// The record is at another version than the caller read (optimistic
    /// concurrency: the caller re-reads and decides again).
    Stale {
        /// The stored version.
        current: i64,
    },
}

/// Replaces a record with its next version. With `expected`, only if the
/// stored version is that one.
#[allow(clippy::too_many_arguments)]
pub fn update(
    tx: &Tx<'_>,
    kind: &str,
    code: &str,
    expected: Option<i64>,
    index: &RecordIndex,
    body: &str,
    actor: &str,
    now_ms: i64,
) -> Result<Update> {
    let Some((id, version)) = current(tx, kind, code)? else {
        return Ok(Update::NotFound);
    };
    if expected.is_some_and(|e| e != version) {
        return Ok(Update::Stale { current: version });
    }
    keep_current(tx, id)?;
    let version = version + 1;
    tx.conn()
        .prepare_cached(
            "UPDATE rollout_records
                SET version = ?2, status = ?3, district = ?4, state = ?5, type = ?6, body = ?7,
                    actor = ?8, updated_ms = ?9
              WHERE id = ?1",
        )?
        .execute(params![
            id,
            version,
            index.status,
            index.district,
            index.state,
            index.kind_of_site,
            body,
            actor,
            now_ms
        ])?;
    put_links(tx, id, &index.links, false)?;
    Ok(Update::Updated(version))
}

/// Deletes a record (its versions stay, ending with an empty one; with
/// `purge`, the earlier versions' contents are erased too, for records of
/// personal data). The version the deletion was, or `None` if there was no
/// such record.
pub fn delete(
    tx: &Tx<'_>,
    kind: &str,
    code: &str,
    purge: bool,
    actor: &str,
    now_ms: i64,
) -> Result<Option<i64>> {
    let Some((id, version)) = current(tx, kind, code)? else {
        return Ok(None);
    };
    keep_current(tx, id)?;
    let conn = tx.conn();
    conn.prepare_cached("DELETE FROM rollout_records WHERE id = ?1")?
        .execute(params![id])?;
    conn.prepare_cached("DELETE FROM rollout_links WHERE record = ?1")?
        .execute(params![id])?;
    if purge {
        conn.prepare_cached("UPDATE rollout_versions SET body = '' WHERE kind = ?1 AND code = ?2")?
            .execute(params![kind, code])?;
    }
    conn.prepare_cached(
        "INSERT INTO rollout_versions (kind, code, version, body, actor, at_ms)
         VALUES (?1, ?2, ?3, '', ?4, ?5)",
    )?
    .execute(params![kind, code, version + 1, actor, now_ms])?;
    Ok(Some(version + 1))
}

/// The record of that kind and code.
pub fn get(r: &Reader<'_>, kind: &str, code: &str) -> Result<Option<Record>> {
    Ok(r.conn()
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM rollout_records rr WHERE rr.kind = ?1 AND rr.code = ?2"
        ))?
        .query_row(params![kind, code], record)
        .optional()?)
}

/// Whether a record of `kind` has, or had, this code (a code drawn for a
/// new record must be neither: an old code names someone else).
pub fn code_used(r: &Reader<'_>, kind: &str, code: &str) -> Result<bool> {
    let conn = r.conn();
    Ok(conn
        .prepare_cached("SELECT 1 FROM rollout_records WHERE kind = ?1 AND code = ?2")?
        .exists(params![kind, code])?
        || conn
            .prepare_cached("SELECT 1 FROM rollout_versions WHERE kind = ?1 AND code = ?2")?
            .exists(params![kind, code])?)
}

/// Brings PostgreSQL's statistics of the records and their links up to
/// date, counting the rows this transaction wrote (`ANALYZE` counts its own
/// transaction's rows as live; autovacuum's cannot see them). Bulk work
/// that grows a kind from few records to many calls it now and then: the
/// planner, still expecting one record of the kind, would otherwise look a
/// code up through any index that starts with `kind` and read every record
/// of the kind. Nothing on SQLite, whose lookups name their index.
pub fn refresh_statistics(tx: &Tx<'_>) -> Result<()> {
    if tx.conn().dialect() == crate::sql::Dialect::Postgres {
        tx.conn()
            .execute_batch("ANALYZE rollout_records, rollout_links")?;
    }
    Ok(())
}

/// Which of `codes` exist as records of `kind`.
pub fn existing(r: &Reader<'_>, kind: &str, codes: &[String]) -> Result<Vec<String>> {
    let mut stmt = r
        .conn()
        .prepare_cached("SELECT 1 FROM rollout_records WHERE kind = ?1 AND code = ?2")?;
    let mut found = Vec::new();
    for code in codes {
        if stmt.exists(params![kind, code])? {
            found.push(code.clone());
        }
    }
    Ok(found)
}

/// Up to `limit` records of `kind` matching `filter`, in id order.
///
/// The plan is chosen here, not left to SQLite: without statistics its
/// planner may pick any index on `kind` and then sort every record of the
/// kind, or walk the table and filter. A link filter drives the query from
/// the link table (in id order); a list of codes, the code index (a few
/// rows, sorted); otherwise the most selective indexed column's index is
/// named with `INDEXED BY` (district, then state, then status, else kind
/// alone; each ends in the id, so rows come in order, from the cursor on,
/// without a sort).
pub fn list(r: &Reader<'_>, kind: &str, filter: &ListFilter, limit: usize) -> Result<Vec<Record>> {
    if filter.codes.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let (sql, args) = list_query(r.conn().dialect(), kind, filter, limit);
    let mut stmt = r.conn().prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), record)?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// The SQL of [`list`] and its arguments.
fn list_query(
    dialect: crate::sql::Dialect,
    kind: &str,
    filter: &ListFilter,
    limit: usize,
) -> (String, Vec<crate::sql::Value>) {
    let mut args: Vec<crate::sql::Value> = vec![kind.to_owned().into()];
    let mut bind = |sql: &mut String, clause: &str, value: crate::sql::Value| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    let mut sql = String::new();
    let order;
    if let Some((rel, target)) = &filter.link {
        sql.push_str(&format!(
            "SELECT {COLUMNS}
               FROM rollout_links l JOIN rollout_records rr ON rr.id = l.record
              WHERE rr.kind = ?1"
        ));
        bind(&mut sql, " AND l.rel = ?", rel.clone().into());
        bind(&mut sql, " AND l.target = ?", target.clone().into());
        order = "l.record";
    } else {
        // SQLite's planner, left alone, sometimes chose the kind index and
        // sorted; PostgreSQL plans from its statistics (and has no
        // INDEXED BY).
        let index = if dialect == crate::sql::Dialect::Postgres {
            ""
        } else if filter.codes.is_some() {
            " INDEXED BY rollout_records_code"
        } else if filter.district.is_some() {
            " INDEXED BY rollout_records_district"
        } else if filter.state.is_some() {
            " INDEXED BY rollout_records_state"
        } else if filter.status.is_some() {
            " INDEXED BY rollout_records_status"
        } else {
            " INDEXED BY rollout_records_kind"
        };
        sql.push_str(&format!(
            "SELECT {COLUMNS} FROM rollout_records rr{index} WHERE rr.kind = ?1"
        ));
        order = "rr.id";
    }
    if let Some(v) = &filter.status {
        bind(&mut sql, " AND rr.status = ?", v.clone().into());
    }
    if let Some(v) = &filter.district {
        bind(&mut sql, " AND rr.district = ?", v.clone().into());
    }
    if let Some(v) = &filter.state {
        bind(&mut sql, " AND rr.state = ?", v.clone().into());
    }
    if let Some(v) = &filter.kind_of_site {
        bind(&mut sql, " AND rr.type = ?", v.clone().into());
    }
    if let Some(v) = filter.after {
        bind(&mut sql, &format!(" AND {order} > ?"), v.into());
    }
    if let Some(v) = filter.updated_since {
        bind(&mut sql, " AND rr.updated_ms >= ?", v.into());
    }
    if let Some(codes) = &filter.codes {
        sql.push_str(" AND rr.code IN (");
        for (i, code) in codes.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            bind(&mut sql, "?", code.clone().into());
        }
        sql.push(')');
    }
    sql.push_str(&format!(" ORDER BY {order} LIMIT {limit}"));
    (sql, args)
}

/// Every version of a record, oldest first: those it left behind, then
/// the current one.
pub fn versions(r: &Reader<'_>, kind: &str, code: &str) -> Result<Vec<RecordVersion>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT version, body, actor, at_ms FROM rollout_versions WHERE kind = ?1 AND code = ?2
         UNION ALL
         SELECT version, body, actor, updated_ms FROM rollout_records WHERE kind = ?1 AND code = ?2
         ORDER BY 1",
    )?;
    let rows = stmt.query_map(params![kind, code], |row| {
        let body: String = row.get(1)?;
        Ok(RecordVersion {
            version: row.get(0)?,
            body: (!body.is_empty()).then_some(body),
            actor: row.get(2)?,
            at_ms: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// Up to `limit` records that refer to `(rel, target)`, as `(kind, code)`,
/// oldest first.
pub fn referrers(
    r: &Reader<'_>,
    rel: &str,
    target: &str,
    limit: usize,
) -> Result<Vec<(String, String)>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT rr.kind, rr.code FROM rollout_links l JOIN rollout_records rr ON rr.id = l.record
          WHERE l.rel = ?1 AND l.target = ?2
          ORDER BY l.record LIMIT ?3",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![rel, target, limit], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    Ok(rows.collect::<crate::sql::SqlResult<_>>()?)
}

/// Whether any certificate names this facility. A scan of the
/// certificates table (no index serves it, and none is kept for this rare
/// question: each index costs bytes on every certificate).
pub fn facility_has_certificates(r: &Reader<'_>, facility: &str) -> Result<bool> {
    Ok(r.conn()
        .prepare_cached("SELECT 1 FROM certificates WHERE facility_id = ?1 LIMIT 1")?
        .exists(params![facility])?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Database, DbOptions};

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("t.db"), DbOptions::default()).unwrap();
        (dir, db)
    }

    fn index(status: &str, district: &str, programmes: &[&str]) -> RecordIndex {
        RecordIndex {
            status: status.into(),
            district: Some(district.into()),
            state: Some("KA".into()),
            kind_of_site: Some("fixed".into()),
            links: programmes
                .iter()
                .map(|p| ("programme".to_owned(), (*p).to_owned()))
                .collect(),
        }
    }

    /// On PostgreSQL a lookup by code inside an upload's transaction takes
    /// the unique (kind, code) index once the statistics have been
    /// refreshed, though the committed ones have seen no record of the
    /// kind: before, the planner (one row expected) took any index starting
    /// with kind and read every record of the kind per lookup.
    #[test]
    fn statistics_refreshed_inside_an_upload_keep_lookups_on_the_code_index() {
        let (_d, db) = db();
        if db.dialect() != crate::sql::Dialect::Postgres {
            return;
        }
        let add = |tx: &Tx<'_>, kind: &str, n: usize| -> Result<()> {
            for i in 0..n {
                let code = format!("{kind}-{i}");
                insert(tx, kind, &code, &index("active", "D", &[]), "{}", "a", 1)?;
            }
            Ok(())
        };
        db.write(move |tx| add(tx, "facility", 2000))
            .wait()
            .unwrap();
        db.write(refresh_statistics).wait().unwrap();
        let explain = |r: &Reader<'_>| -> Result<String> {
            let mut stmt = r.conn().prepare_cached(
                "EXPLAIN SELECT 1 FROM rollout_records WHERE kind = 'enrolment' AND code = 'X'",
            )?;
            let mut rows = stmt.query(())?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(row.get::<String>(0)?);
            }
            Ok(out.join("\n"))
        };
        let (stale, fresh) = db
            .write(move |tx| {
                add(tx, "enrolment", 3000)?;
                let stale = explain(&tx.reader())?;
                refresh_statistics(tx)?;
                Ok((stale, explain(&tx.reader())?))
            })
            .wait()
            .unwrap();
        println!("before:\n{stale}\nafter:\n{fresh}");
        assert!(
            fresh.contains("rollout_records_code") && !fresh.contains("Filter"),
            "{fresh}"
        );
    }

    #[test]
    fn ids_are_never_reused() {
        let (_d, db) = db();
        let put = |code: &'static str| {
            db.write(move |tx| {
                insert(
                    tx,
                    "facility",
                    code,
                    &index("active", "D", &[]),
                    "{}",
                    "a",
                    1,
                )
            })
            .wait()
            .unwrap();
            db.read(|r| get(r, "facility", code)).unwrap().unwrap().id
        };
        let first = put("F1");
        let newest = put("F2");
        db.write(|tx| delete(tx, "facility", "F2", false, "a", 2))
            .wait()
            .unwrap();
        // A client holding `newest` as its cursor must still see F3.
        assert!(put("F3") > newest);
        assert!(newest > first);
    }

    #[test]
    fn a_code_is_created_once_and_every_version_is_kept() {
        let (_d, db) = db();
        let first = db
            .write(|tx| {
                insert(
                    tx,
                    "facility",
                    "F1",
                    &index("active", "D1", &["C19"]),
                    "{\"v\":1}",
                    "a",
                    10,
                )
            })
            .wait()
            .unwrap();
        let second = db
            .write(|tx| {
                insert(
                    tx,
                    "facility",
                    "F1",
                    &index("active", "D2", &[]),
                    "{\"v\":9}",
                    "b",
                    11,
                )
            })
            .wait()
            .unwrap();
        assert_eq!((first, second), (Some(1), None));
        let stale = db
            .write(|tx| {
                update(
                    tx,
                    "facility",
                    "F1",
                    Some(7),
                    &index("inactive", "D1", &[]),
                    "{}",
                    "a",
                    12,
                )
            })
            .wait()
            .unwrap();
        assert_eq!(stale, Update::Stale { current: 1 });
        let updated = db
            .write(|tx| {
                update(
                    tx,
                    "facility",
                    "F1",
                    Some(1),
                    &index("inactive", "D3", &[]),
                    "{\"v\":2}",
                    "a",
                    13,
                )
            })
            .wait()
            .unwrap();
        assert_eq!(updated, Update::Updated(2));
        let rec = db.read(|r| get(r, "facility", "F1")).unwrap().unwrap();
        assert_eq!(
            (rec.version, rec.status.as_str(), rec.body.as_str()),
            (2, "inactive", "{\"v\":2}")
        );
        assert_eq!((rec.created_ms, rec.updated_ms), (10, 13));
        let deleted = db
            .write(|tx| delete(tx, "facility", "F1", false, "c", 14))
            .wait()
            .unwrap();
        assert_eq!(deleted, Some(3));
        let history = db.read(|r| versions(r, "facility", "F1")).unwrap();
        let kept: Vec<(i64, Option<&str>, &str)> = history
            .iter()
            .map(|v| (v.version, v.body.as_deref(), v.actor.as_str()))
            .collect();
        assert_eq!(
            kept,
            vec![
                (1, Some("{\"v\":1}"), "a"),
                (2, Some("{\"v\":2}"), "a"),
                (3, None, "c")
            ]
        );
        assert!(db.read(|r| get(r, "facility", "F1")).unwrap().is_none());
        assert_eq!(
            db.write(|tx| update(
                tx,
                "facility",
                "F1",
                None,
                &index("x", "D", &[]),
                "{}",
                "a",
                15
            ))
            .wait()
            .unwrap(),
            Update::NotFound
        );
        // The code can be used again; its versions go on from the deletion.
        let again = db
            .write(|tx| {
                insert(
                    tx,
                    "facility",
                    "F1",
                    &index("active", "D1", &[]),
                    "{\"v\":4}",
                    "d",
                    16,
                )
            })
            .wait()
            .unwrap();
        assert_eq!(again, Some(4));
        // A purged deletion leaves no earlier contents.
        let purged = db
            .write(|tx| delete(tx, "facility", "F1", true, "e", 17))
            .wait()
            .unwrap();
        assert_eq!(purged, Some(5));
        let history = db.read(|r| versions(r, "facility", "F1")).unwrap();
        assert_eq!(history.len(), 5);
        assert!(history.iter().all(|v| v.body.is_none()));
    }

    #[test]
    fn every_list_reads_in_id_order_without_a_sort() {
        // SQLite's plans: always on SQLite.
        let d = tempfile::tempdir().unwrap();
        let db = Database::open(&d.path().join("t.db"), DbOptions::default()).unwrap();
        let conn = db.raw_connection_for_tests();
        let link = Some(("programme".to_owned(), "C19".to_owned()));
        let filters = [
            ListFilter::default(),
            ListFilter {
                after: Some(7),
                ..ListFilter::default()
            },
            ListFilter {
                kind_of_site: Some("fixed".into()),
                ..ListFilter::default()
            },
            ListFilter {
                district: Some("North".into()),
                after: Some(7),
                ..ListFilter::default()
            },
            ListFilter {
                state: Some("S".into()),
                ..ListFilter::default()
            },
            ListFilter {
                status: Some("active".into()),
                ..ListFilter::default()
            },
            ListFilter {
                link,
                after: Some(7),
                ..ListFilter::default()
            },
        ];
        for filter in &filters {
            let (sql, args) = list_query(crate::sql::Dialect::Sqlite, "facility", filter, 100);
            let plan: Vec<String> = crate::sql::Conn::Lite(&conn)
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params_from_iter(args.iter()), |r| r.get(3))
                .unwrap()
                .collect::<crate::sql::SqlResult<_>>()
                .unwrap();
            let plan = plan.join("; ");
            assert!(!plan.contains("TEMP B-TREE"), "{filter:?}: {plan}");
            assert!(!plan.contains("SCAN rr"), "{filter:?}: {plan}");
        }
    }

    #[test]
    fn lists_filter_and_page_in_creation_order() {
        let (_d, db) = db();
        db.write(|tx| {
            for i in 0..30 {
                let district = if i % 3 == 0 { "North" } else { "South" };
                let programmes: &[&str] = if i % 2 == 0 { &["C19"] } else { &["HPV"] };
                let status = if i == 6 { "inactive" } else { "active" };
                insert(
                    tx,
                    "facility",
                    &format!("F{i:02}"),
                    &index(status, district, programmes),
                    "{}",
                    "a",
                    1,
                )?;
            }
            insert(
                tx,
                "vaccine",
                "V1",
                &RecordIndex {
                    status: "active".into(),
                    ..RecordIndex::default()
                },
                "{}",
                "a",
                1,
            )?;
            Ok(())
        })
        .wait()
        .unwrap();
        let codes = |filter: &ListFilter, limit| -> Vec<String> {
            db.read(|r| list(r, "facility", filter, limit))
                .unwrap()
                .into_iter()
                .map(|r| r.code)
                .collect()
        };
        let north = ListFilter {
            district: Some("North".into()),
            ..ListFilter::default()
        };
        assert_eq!(codes(&north, 100).len(), 10);
        let north_c19 = ListFilter {
            link: Some(("programme".into(), "C19".into())),
            status: Some("active".into()),
            ..north.clone()
        };
        // Multiples of 6 except F06 (inactive).
        assert_eq!(codes(&north_c19, 100), ["F00", "F12", "F18", "F24"]);
        // Pages of 4 cover the district once, in order.
        let mut seen = Vec::new();
        let mut filter = north.clone();
        loop {
            let page = codes(&filter, 4);
            if page.is_empty() {
                break;
            }
            filter.after = db
                .read(|r| get(r, "facility", page.last().unwrap()))
                .unwrap()
                .map(|r| r.id);
            seen.extend(page);
        }
        assert_eq!(seen, codes(&north, 100));
        let own = ListFilter {
            codes: Some(vec!["F01".into(), "F03".into(), "V1".into()]),
            ..ListFilter::default()
        };
        assert_eq!(codes(&own, 100), ["F01", "F03"]);
        let none = ListFilter {
            codes: Some(vec![]),
            ..ListFilter::default()
        };
        assert!(codes(&none, 100).is_empty());
        let refs = db.read(|r| referrers(r, "programme", "HPV", 100)).unwrap();
        assert_eq!(refs.len(), 15);
        assert_eq!(
            db.read(|r| existing(r, "vaccine", &["V1".into(), "V2".into()]))
                .unwrap(),
            ["V1"]
        );
        assert!(!db.read(|r| facility_has_certificates(r, "F00")).unwrap());
    }
}
