//! Live counters (`stats_counts`): how many certificates were issued,
//! revoked, corrected, how many side-effect reports and ratings came in,
//! each by dimension (day, programme, vaccine, facility, …).
//!
//! A module counts inside its write closure with [`add`]; the writer keeps
//! a closure's deltas only if the closure succeeds, sums the deltas of the
//! whole group and writes each counter once, just before the group commits
//! (see `db.rs`). A counter is therefore exact (it moves in the same
//! transaction as the change it counts) and costs one upsert per distinct
//! counter per group, not per change. Reading is a scan of the counters of
//! one metric, never of the counted rows.

use std::collections::HashMap;

use crate::db::{Reader, Tx};
use crate::error::Result;

/// Certificates issued (version 1), by dimension.
pub const CERTIFICATES_ISSUED: &str = "certificates.issued";
/// Corrections (a new version of a certificate).
pub const CERTIFICATES_CORRECTED: &str = "certificates.corrected";

/// `(metric, dimension, key)`, e.g. `("certificates.issued", "vaccine",
/// "COVAX")`.
pub type CountKey = (String, String, String);

/// Counter deltas.
pub(crate) type Deltas = HashMap<CountKey, i64>;

/// Adds `delta` to a counter, in the caller's transaction.
pub fn add(tx: &Tx<'_>, metric: &str, dimension: &str, key: &str, delta: i64) {
    tx.count(
        (metric.to_owned(), dimension.to_owned(), key.to_owned()),
        delta,
    );
}

/// Writes a group's deltas.
pub(crate) fn flush(conn: crate::sql::Conn<'_>, deltas: &Deltas) -> crate::sql::SqlResult<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    if let Some(pg) = conn.pg() {
        // One statement for the group's counters (a group of certificate
        // batches moves dozens); the keys of a map are distinct, as one
        // `INSERT … ON CONFLICT DO UPDATE` needs.
        // In key order: two hosts' groups lock the same rows in one order.
        let mut moved: Vec<_> = deltas.iter().filter(|(_, n)| **n != 0).collect();
        moved.sort_unstable();
        let mut cols: (Vec<&str>, Vec<&str>, Vec<&str>, Vec<i64>) = Default::default();
        for ((metric, dimension, key), n) in moved {
            cols.0.push(metric);
            cols.1.push(dimension);
            cols.2.push(key);
            cols.3.push(*n);
        }
        if cols.3.is_empty() {
            return Ok(());
        }
        pg.execute_pg(
            "INSERT INTO stats_counts (metric, dimension, key, n)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
             ON CONFLICT (metric, dimension, key) DO UPDATE SET n = stats_counts.n + excluded.n",
            &[&cols.0, &cols.1, &cols.2, &cols.3],
        )?;
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO stats_counts (metric, dimension, key, n) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (metric, dimension, key) DO UPDATE SET n = stats_counts.n + excluded.n",
    )?;
    for ((metric, dimension, key), n) in deltas {
        if *n != 0 {
            stmt.execute(crate::sql::params![metric, dimension, key, n])?;
        }
    }
    Ok(())
}

/// One counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// e.g. `certificates.issued`.
    pub metric: String,
    /// e.g. `vaccine`.
    pub dimension: String,
    /// e.g. `COVAX`.
    pub key: String,
    /// The count.
    pub n: i64,
}

/// Every counter of the metrics starting with `prefix` (all with `""`),
/// by metric, dimension and key.
pub fn counts(r: &Reader<'_>, prefix: &str) -> Result<Vec<Count>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT metric, dimension, key, n FROM stats_counts
          WHERE metric >= ?1 AND metric < ?2
          ORDER BY metric, dimension, key",
    )?;
    // Every metric with the prefix sorts below the prefix followed by
    // the last code point.
    let end = format!("{prefix}\u{10FFFF}");
    let rows = stmt.query_map([prefix, end.as_str()], |row| {
        Ok(Count {
            metric: row.get(0)?,
            dimension: row.get(1)?,
            key: row.get(2)?,
            n: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<crate::sql::SqlResult<Vec<_>>>()?)
}

/// One counter's value (0 when never counted).
pub fn count(r: &Reader<'_>, metric: &str, dimension: &str, key: &str) -> Result<i64> {
    use crate::sql::Optional;
    Ok(r.conn()
        .prepare_cached(
            "SELECT n FROM stats_counts WHERE metric = ?1 AND dimension = ?2 AND key = ?3",
        )?
        .query_row([metric, dimension, key], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Database, DbOptions, StorageError};

    #[test]
    fn counts_move_with_their_write_and_not_with_a_failed_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("s.db"), DbOptions::default()).unwrap();
        // Many writers at once: grouped, some failing.
        let pending: Vec<_> = (0..200)
            .map(|i| {
                db.write(move |tx| {
                    add(tx, "t.issued", "total", "all", 1);
                    add(
                        tx,
                        "t.issued",
                        "parity",
                        if i % 2 == 0 { "even" } else { "odd" },
                        1,
                    );
                    if i % 10 == 0 {
                        return Err(StorageError::Rejected("refused".into()));
                    }
                    Ok(())
                })
            })
            .collect();
        let ok = pending.into_iter().filter_map(|p| p.wait().ok()).count();
        assert_eq!(ok, 180);
        let n = db.read(|r| count(r, "t.issued", "total", "all")).unwrap();
        assert_eq!(n, 180);
        let all = db.read(|r| counts(r, "t.")).unwrap();
        let even = all.iter().find(|c| c.key == "even").unwrap().n;
        let odd = all.iter().find(|c| c.key == "odd").unwrap().n;
        assert_eq!((even, odd), (80, 100));
        assert!(db.read(|r| counts(r, "u.")).unwrap().is_empty());
    }
}
