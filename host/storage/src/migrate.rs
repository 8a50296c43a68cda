//! Versioned schema migrations, tracked in SQLite's `user_version`.
//!
//! A tiny runner instead of a migration framework: we need only "apply the
//! numbered files above the stored version, each in its own transaction",
//! and `user_version` lives in the database header, so it needs no table of
//! its own.

use rusqlite::Connection;

use crate::error::{Result, StorageError};

/// One migration: a SQL script run in one transaction, or a step in Rust
/// that commits as it goes (a large data conversion that must be
/// resumable, see [`crate::compact`]) and ends with the runner's commit.
enum Migration {
    Sql(&'static str),
    Steps(fn(&mut Connection, Commit) -> rusqlite::Result<()>),
}

/// The runner's end of a migration's last transaction: the foreign key
/// check and the version bump, then the commit.
type Commit = Box<dyn FnOnce(rusqlite::Transaction<'_>) -> rusqlite::Result<()>>;

use Migration::{Sql, Steps};

/// All migrations, in order. Entry `i` brings the schema to version `i + 1`.
/// Append only: a released migration is never edited, since databases in the
/// field already ran it.
const MIGRATIONS: &[Migration] = &[
    Sql(include_str!("../migrations/0001_initial.sql")),
    Sql(include_str!("../migrations/0002_certificates.sql")),
    Sql(include_str!("../migrations/0003_certificates_lean.sql")),
    Sql(include_str!("../migrations/0004_rollout.sql")),
    Sql(include_str!("../migrations/0005_api_tokens.sql")),
    Sql(include_str!("../migrations/0006_uploads.sql")),
    Sql(include_str!("../migrations/0007_rollout_append.sql")),
    Sql(include_str!(
        "../migrations/0008_upload_errors_retention.sql"
    )),
    Sql(include_str!("../migrations/0009_appointments.sql")),
    Sql(include_str!("../migrations/0010_vaccinations.sql")),
    Sql(include_str!("../migrations/0011_sync_items.sql")),
    Sql(include_str!("../migrations/0012_otp.sql")),
    Sql(include_str!("../migrations/0013_stats.sql")),
    Sql(include_str!("../migrations/0014_feedback.sql")),
    Sql(include_str!("../migrations/0015_withdrawn.sql")),
    Steps(|conn, commit| crate::compact::run(conn, commit)),
    Sql(include_str!("../migrations/0017_status_blocks.sql")),
    Sql(include_str!("../migrations/0018_issuer_keys.sql")),
    Sql(include_str!("../migrations/0019_issuer_keys_order.sql")),
    Sql(include_str!("../migrations/0020_issuer_keys_es256.sql")),
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
///
/// Migrations run with foreign key enforcement off and
/// `PRAGMA foreign_key_check` before each commit: SQLite's documented way
/// to rebuild a table that others reference (a `DROP TABLE` with
/// enforcement on would delete-check every referencing row). The previous
/// setting is restored afterwards.
pub(crate) fn run(conn: &mut Connection) -> Result<()> {
    run_to(conn, latest_version())
}

pub(crate) fn run_to(conn: &mut Connection, target: u32) -> Result<()> {
    let found = current_version(conn)?;
    let supported = latest_version();
    if found > supported {
        return Err(StorageError::SchemaTooNew { found, supported });
    }
    if found >= target {
        return Ok(());
    }
    let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = apply_all(conn, found, target);
    conn.pragma_update(None, "foreign_keys", enforced)?;
    result
}

fn apply_all(conn: &mut Connection, found: u32, target: u32) -> Result<()> {
    let pending = MIGRATIONS
        .iter()
        .enumerate()
        .skip(found as usize)
        .take(target.saturating_sub(found) as usize);
    for (index, migration) in pending {
        let version = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let commit: Commit = Box::new(move |tx| {
            let violations: i64 =
                tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", (), |r| {
                    r.get(0)
                })?;
            if violations > 0 {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                    Some(format!("{violations} rows violate foreign keys")),
                ));
            }
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        });
        let result = match migration {
            Sql(sql) => conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .and_then(|tx| {
                    tx.execute_batch(sql)?;
                    commit(tx)
                }),
            Steps(steps) => steps(conn, commit),
        };
        result.map_err(|source| StorageError::Migration {
            version,
            source: source.into(),
        })?;
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
    fn certificates_survive_the_lean_rebuild() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        run_to(&mut conn, 2).unwrap();
        conn.execute_batch(
            "INSERT INTO certificates (id, program, recipient_ref, dose, status_index,
                 issued_at, updated_at, payload_hash, credential)
             VALUES ('A', 'p', 'r1', 1, 7, 1, 1, 'h', '{\"id\":\"A\"}');
             INSERT INTO certificates (id, program, recipient_ref, dose, version, previous_id,
                 status_index, issued_at, updated_at, payload_hash, credential)
             VALUES ('B', 'p', 'r1', 1, 2, 'A', 9, 2, 2, 'h2', '{\"id\":\"B\"}');
             INSERT INTO certificate_lookup VALUES ('k', 'B');",
        )
        .unwrap();
        // The stored forms change again in 0016 (tested on its own).
        run_to(&mut conn, 15).unwrap();
        assert_eq!(current_version(&conn).unwrap(), 15);
        let enforced: bool = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert!(enforced, "foreign key enforcement is restored");
        let rows: Vec<(String, Option<String>, String)> = conn
            .prepare("SELECT id, previous_id, credential FROM certificates ORDER BY id")
            .unwrap()
            .query_map((), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ("A".into(), None, r#"{"id":"A"}"#.into()),
                ("B".into(), Some("A".into()), r#"{"id":"B"}"#.into()),
            ]
        );
        // The references still hold and are enforced against the new table.
        assert!(conn
            .execute("INSERT INTO certificate_lookup VALUES ('k', 'missing')", [])
            .is_err());
        assert!(
            conn.execute(
                "INSERT INTO certificates (id, program, recipient_ref, dose, version,
                     status_index, issued_at, updated_at, payload_hash, credential)
                 VALUES ('C', 'p', 'r1', 1, 2, 11, 3, 3, 'h3', '{}')",
                (),
            )
            .is_err(),
            "the idempotency key is still unique"
        );
        // Lookups by pre-enrolment code use the idempotency key's index.
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM certificates WHERE recipient_ref = 'r1'",
                (),
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("USING INDEX"), "{plan}");
    }

    #[test]
    fn registry_survives_the_append_rebuild() {
        use crate::rollout::{self, ListFilter};
        let mut conn = Connection::open_in_memory().unwrap();
        run_to(&mut conn, 6).unwrap();
        // F1 at its second version, P1 at its first, D1 deleted (only
        // versions left); F1 refers to P1.
        conn.execute_batch(
            "INSERT INTO rollout_records VALUES
                ('facility', 'F1', 2, 'active', 'd', 's', 'fixed', '{\"v\":2}', 10, 20),
                ('programme', 'P1', 1, 'active', NULL, NULL, NULL, '{\"p\":1}', 5, 5);
             INSERT INTO rollout_versions VALUES
                ('facility', 'F1', 1, '{\"v\":1}', 'alice', 10),
                ('facility', 'F1', 2, '{\"v\":2}', 'bob', 20),
                ('programme', 'P1', 1, '{\"p\":1}', 'carol', 5),
                ('facility', 'D1', 1, '{\"d\":1}', 'alice', 1),
                ('facility', 'D1', 2, '', 'alice', 2);
             INSERT INTO rollout_links VALUES ('programme', 'P1', 'facility', 'F1');",
        )
        .unwrap();
        run(&mut conn).unwrap();
        let r = crate::db::Reader {
            conn: crate::sql::Conn::Lite(&conn),
        };

        let f1 = rollout::get(&r, "facility", "F1").unwrap().unwrap();
        assert_eq!((f1.version, f1.body.as_str()), (2, r#"{"v":2}"#));
        let history = rollout::versions(&r, "facility", "F1").unwrap();
        let seen: Vec<_> = history
            .iter()
            .map(|v| (v.version, v.actor.as_str(), v.body.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1, "alice", Some(r#"{"v":1}"#)),
                (2, "bob", Some(r#"{"v":2}"#))
            ],
            "the current version is not listed twice and keeps its actor"
        );
        assert!(rollout::get(&r, "facility", "D1").unwrap().is_none());
        assert!(rollout::code_used(&r, "facility", "D1").unwrap());
        assert_eq!(rollout::versions(&r, "facility", "D1").unwrap().len(), 2);
        assert_eq!(
            rollout::referrers(&r, "programme", "P1", 10).unwrap(),
            vec![("facility".to_string(), "F1".to_string())]
        );
        let filter = ListFilter {
            link: Some(("programme".into(), "P1".into())),
            ..ListFilter::default()
        };
        let listed = rollout::list(&r, "facility", &filter, 10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].code, "F1");
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
