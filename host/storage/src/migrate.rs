//! Versioned schema migrations, tracked in SQLite's `user_version`.
//!
//! A tiny runner instead of a migration framework: we need only "apply the
//! numbered files above the stored version, each in its own transaction",
//! and `user_version` lives in the database header, so it needs no table of
//! its own.

use rusqlite::Connection;

use crate::error::{Result, StorageError};

/// All migrations, in order. Entry `i` brings the schema to version `i + 1`.
/// Append only: a released migration is never edited, since databases in the
/// field already ran it.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_certificates.sql"),
];

/// The schema version this build creates and understands.
pub fn latest_version() -> u32 {
    // The list is a short literal; it cannot exceed u32.
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Reads the schema version stored in the database header.
pub(crate) fn current_version(conn: &Connection) -> Result<u32> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    // user_version is a 32-bit signed field; we only ever write small
    // positive numbers, so anything else is someone else's file.
    u32::try_from(v).map_err(|_| StorageError::SchemaTooNew {
        found: u32::MAX,
        supported: latest_version(),
    })
}

/// Brings the schema up to [`latest_version`]. Each migration and its
/// version bump commit together, so a crash mid-way leaves the database at a
/// consistent earlier version and the next open resumes.
pub(crate) fn run(conn: &mut Connection) -> Result<()> {
    let found = current_version(conn)?;
    let supported = latest_version();
    if found > supported {
        return Err(StorageError::SchemaTooNew { found, supported });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        };
        apply(conn).map_err(|source| StorageError::Migration { version, source })?;
        tracing::info!(version, "applied storage migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_fresh_database_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        run(&mut conn).unwrap();
        assert_eq!(current_version(&conn).unwrap(), latest_version());
        // A second run must be a no-op, not a "table exists" error.
        run(&mut conn).unwrap();
        assert_eq!(current_version(&conn).unwrap(), latest_version());
    }

    #[test]
    fn refuses_newer_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        match run(&mut conn) {
            Err(StorageError::SchemaTooNew { found, supported }) => {
                assert_eq!(found, latest_version() + 1);
                assert_eq!(supported, latest_version());
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn failed_migration_leaves_version_unchanged() {
        let mut conn = Connection::open_in_memory().unwrap();
        // Pre-create a table the first migration creates, so it fails.
        conn.execute_batch("CREATE TABLE meta (x INTEGER);")
            .unwrap();
        match run(&mut conn) {
            Err(StorageError::Migration { version: 1, .. }) => {}
            other => panic!("expected migration 1 to fail, got {other:?}"),
        }
        assert_eq!(current_version(&conn).unwrap(), 0);
    }
}
