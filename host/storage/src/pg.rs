//! The PostgreSQL backend's plumbing: its I/O thread, connections and
//! schema migrations.
//!
//! # Why tokio-postgres, driven on a thread of its own
//!
//! The repositories are synchronous closures run on the writer thread or
//! a caller's thread (see [`crate::db`]); that model is what makes group
//! commit and "a closure is one savepoint" work, and it is the same for
//! both backends. `tokio-postgres` is the well-kept PostgreSQL driver with
//! pipelining and prepared statements; its blocking wrapper (`postgres`)
//! would start a runtime per connection and panic when waited on inside a
//! Tokio worker. Instead, every connection's socket is driven by one small
//! runtime owned by the database handle ([`PgRuntime`]), and the client's
//! futures, which only exchange messages with that task, are waited for
//! with `futures-executor` on whichever thread runs the repository code.
//! `sqlx` was not chosen: it would make every repository `async` and its
//! SQLite driver would replace the tuned rusqlite one.
//!
//! # Schema versions
//!
//! The schema version lives in `schema_version` (SQLite keeps it in the
//! file header). A PostgreSQL database starts at SQLite's version 16 in
//! one script (`migrations/postgres/0016_baseline.sql`); later versions are
//! numbered on for both. Hosts starting at the same time serialize their
//! migrations with an advisory lock.

use std::sync::Arc;

use tokio_postgres::NoTls;

use crate::error::{Result, StorageError};
use crate::sql::{block_on, PgConn, SqlError};

/// The first version a PostgreSQL database has: the SQLite schema after its
/// sixteen migrations.
pub(crate) const BASELINE_VERSION: u32 = 16;

const BASELINE: &str = include_str!("../migrations/postgres/0016_baseline.sql");

/// Migrations after the baseline, in order: entry `i` brings the schema to
/// `BASELINE_VERSION + 1 + i`. Append only, as for SQLite.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0017_status_blocks.sql"),
    include_str!("../migrations/postgres/0018_issuer_keys.sql"),
    include_str!("../migrations/postgres/0019_issuer_keys_order.sql"),
    include_str!("../migrations/postgres/0020_issuer_keys_es256.sql"),
];

/// Arbitrary, fixed: the advisory lock key hosts take while migrating.
const MIGRATION_LOCK: i64 = 0x000d_10c5_0001;

/// The runtime that drives the PostgreSQL connections' sockets. Shut down
/// in the background when the last handle goes, so dropping a database
/// inside async code does not block it.
pub(crate) struct PgRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    config: tokio_postgres::Config,
}

impl Drop for PgRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgRuntime {
    /// Parses `url` (`postgres://user:password@host:port/db?options=…`, or
    /// the key=value form) and starts the I/O thread.
    pub(crate) fn start(url: &str) -> Result<Arc<PgRuntime>> {
        let config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| StorageError::Setting {
                    pragma: "storage.url",
                    actual: format!("{}: {e}", redact(url)),
                    required: "a PostgreSQL connection URL",
                })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("divoc-pg-io")
            .enable_all()
            .build()
            .map_err(|source| StorageError::Io {
                path: "divoc-pg-io".into(),
                source,
            })?;
        Ok(Arc::new(PgRuntime {
            runtime: Some(runtime),
            config,
        }))
    }

    /// Opens one connection.
    pub(crate) fn connect(&self) -> std::result::Result<PgConn, SqlError> {
        let Some(rt) = &self.runtime else {
            return Err(SqlError::Param(
                "the PostgreSQL runtime is shut down".into(),
            ));
        };
        let config = self.config.clone();
        let task = rt.spawn(async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "a PostgreSQL connection ended with an error");
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        let client = block_on(task)
            .map_err(|e| SqlError::Param(format!("connecting to PostgreSQL: {e}")))??;
        Ok(PgConn::new(client))
    }
}

/// What a host is told when another changed something it caches.
pub type OnChange = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

impl PgRuntime {
    /// Calls `f` with each notification's payload on `channel`, from a
    /// connection of its own that `LISTEN`s; reconnects after a second when
    /// it is lost, and then calls `f("")` because notifications sent
    /// meanwhile are gone: the listener must treat that as "anything may
    /// have changed".
    pub(crate) fn listen(&self, channel: &'static str, f: OnChange) {
        let Some(rt) = &self.runtime else {
            return;
        };
        let config = self.config.clone();
        rt.spawn(async move {
            loop {
                match config.connect(NoTls).await {
                    Ok((client, mut connection)) => {
                        let forward = std::sync::Arc::clone(&f);
                        let poller = tokio::spawn(async move {
                            while let Some(message) =
                                std::future::poll_fn(|cx| connection.poll_message(cx)).await
                            {
                                match message {
                                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                        forward(n.payload());
                                    }
                                    Ok(_) => {}
                                    Err(e) => {
                                        tracing::warn!(error = %e, channel, "change listener lost");
                                        break;
                                    }
                                }
                            }
                        });
                        match client.batch_execute(&format!("LISTEN {channel}")).await {
                            Ok(()) => f(""),
                            Err(e) => tracing::warn!(error = %e, channel, "LISTEN failed"),
                        }
                        let _ = poller.await;
                        drop(client);
                    }
                    Err(e) => tracing::warn!(error = %e, channel, "change listener cannot connect"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
}

/// `url` with its password replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Key=value form: drop the password pair.
        Err(_) => url
            .split_whitespace()
            .filter(|kv| !kv.starts_with("password="))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The newest schema version this build knows on PostgreSQL.
pub(crate) fn latest_version() -> u32 {
    BASELINE_VERSION + u32::try_from(MIGRATIONS.len()).unwrap_or(0)
}

/// Brings the schema up to [`latest_version`], each step in its own
/// transaction with its version bump.
pub(crate) fn migrate(conn: &PgConn) -> Result<()> {
    conn.batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let result = migrate_locked(conn);
    let unlock = conn.batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
    result?;
    unlock?;
    Ok(())
}

fn migrate_locked(conn: &PgConn) -> Result<()> {
    let c = crate::sql::Conn::Pg(conn);
    let exists: Option<String> = c.query_row(
        "SELECT CAST(to_regclass('schema_version') AS TEXT)",
        (),
        |r| r.get(0),
    )?;
    let found = if exists.is_some() {
        let v: i64 = c.query_row("SELECT version FROM schema_version", (), |r| r.get(0))?;
        u32::try_from(v).unwrap_or(u32::MAX)
    } else {
        step(conn, BASELINE_VERSION, BASELINE, true)?;
        BASELINE_VERSION
    };
    let supported = latest_version();
    if found > supported {
        return Err(StorageError::SchemaTooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = BASELINE_VERSION + 1 + u32::try_from(i).unwrap_or(u32::MAX);
        if version > found {
            step(conn, version, sql, false)?;
        }
    }
    Ok(())
}

fn step(conn: &PgConn, version: u32, sql: &str, first: bool) -> Result<()> {
    let bump = if first {
        format!("INSERT INTO schema_version (id, version) VALUES (1, {version})")
    } else {
        format!("UPDATE schema_version SET version = {version}")
    };
    let result = conn.batch(&format!("BEGIN;\n{sql};\n{bump};\nCOMMIT"));
    if let Err(source) = result {
        // A failed statement leaves the transaction aborted; end it.
        let _ = conn.batch("ROLLBACK");
        return Err(StorageError::Migration { version, source });
    }
    tracing::info!(version, "applied PostgreSQL storage migration");
    Ok(())
}

/// A fresh, empty schema `name` in the database at `base` (dropped first
/// if it exists), and the URL that makes it every connection's search
/// path: for benches and tests that need databases side by side.
pub fn fresh_schema_url(base: &str, name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StorageError::InvalidArgument(format!(
            "schema name {name:?}"
        )));
    }
    let rt = PgRuntime::start(base)?;
    let conn = rt.connect()?;
    conn.batch(&format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
    ))?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-csearch_path%3D{name}"))
}

/// Drops schema `name` (see [`fresh_schema_url`]).
pub fn drop_schema(base: &str, name: &str) -> Result<()> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StorageError::InvalidArgument(format!(
            "schema name {name:?}"
        )));
    }
    let rt = PgRuntime::start(base)?;
    rt.connect()?
        .batch(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))?;
    Ok(())
}

/// For tests: a fresh, empty schema in the cluster named by the
/// `TEST_DIVOC_POSTGRES` URL, and the URL that makes it every
/// connection's search path. `None` when the variable is unset.
pub fn test_database_url() -> Option<String> {
    let base = std::env::var("TEST_DIVOC_POSTGRES").ok()?;
    let schema = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT_SCHEMA.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let rt = PgRuntime::start(&base).ok()?;
    let conn = rt.connect().ok()?;
    conn.batch(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .ok()?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

/// For tests that start `divoc` processes: the URL of a schema named after
/// `key` (a data dir, say) in the `TEST_DIVOC_POSTGRES` cluster, created if
/// missing and kept, so a server restarted on the same data dir finds its
/// records. `None` when the variable is unset.
pub fn test_database_url_for(key: &str) -> Option<String> {
    use sha2::Digest;
    let base = std::env::var("TEST_DIVOC_POSTGRES").ok()?;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let schema = format!("k_{}", hex::encode(&digest[..12]));
    let rt = PgRuntime::start(&base).ok()?;
    let conn = rt.connect().ok()?;
    conn.batch(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .ok()?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

static NEXT_SCHEMA: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://divoc:secret@db.example:5432/divoc"),
            "postgres://divoc:***@db.example:5432/divoc"
        );
        assert_eq!(
            redact("host=db user=divoc password=secret dbname=divoc"),
            "host=db user=divoc dbname=divoc"
        );
    }
}
