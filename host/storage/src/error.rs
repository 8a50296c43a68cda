//! The one error type of the storage layer.

use std::path::PathBuf;

/// Everything that can go wrong in `divoc-storage`.
///
/// Variants that callers are expected to act on (a full quota, a missing
/// row, a rejected write) are distinct; SQLite failures are wrapped as-is so
/// the underlying code is not lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An SQLite call failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// A statement failed, on either backend.
    #[error("{0}")]
    Sql(#[from] crate::sql::SqlError),

    /// A file-system operation on the database location failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The path that was being created or opened.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// SQLite refused a pragma the product depends on (e.g. WAL mode on a
    /// file system that cannot do it).
    #[error("database setting {pragma} is {actual:?}, required {required:?}")]
    Setting {
        /// The pragma name.
        pragma: &'static str,
        /// What the database reported.
        actual: String,
        /// What we asked for.
        required: &'static str,
    },

    /// Applying a schema migration failed; the database is left at the
    /// previous version.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The migration that failed.
        version: u32,
        /// The underlying error.
        source: crate::sql::SqlError,
    },

    /// The file was written by a newer build; opening it with this one could
    /// corrupt data the newer schema relies on.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// `user_version` found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },

    /// A plugin's key/value write would take it past its quota. Nothing was
    /// stored.
    #[error("plugin {plugin:?} key/value quota exceeded: would use {would_use} of {quota} bytes")]
    QuotaExceeded {
        /// The plugin whose quota is exceeded.
        plugin: String,
        /// The quota in bytes.
        quota: u64,
        /// Bytes the plugin would use after the write.
        would_use: u64,
    },

    /// JSON stored in or handed to the database could not be (de)serialised.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// Which column or argument held the JSON.
        what: &'static str,
        /// The underlying error.
        source: serde_json::Error,
    },

    /// A row that the operation requires does not exist (or is not in the
    /// state the operation requires).
    #[error("not found: {0}")]
    NotFound(String),

    /// An argument is out of range for the database (e.g. a count above
    /// `i64::MAX`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A write closure chose to abort its own work item; only that item is
    /// rolled back. Callers outside this crate use this to carry their own
    /// reason through [`crate::Database::write`].
    #[error("write rejected: {0}")]
    Rejected(String),

    /// A write closure panicked. Its work item was rolled back; the rest of
    /// its group and the writer thread carried on.
    #[error("write closure panicked: {0}")]
    Panicked(String),

    /// The work item succeeded but the group transaction it was part of
    /// could not be committed, so nothing of it is stored.
    #[error("group commit failed: {0}")]
    CommitFailed(String),

    /// A write was waited for (or could not be queued) on the writer thread
    /// itself, i.e. from inside a write closure; that would wait forever.
    /// Do the work in the current closure's [`crate::Tx`] instead.
    #[error("waiting for a write from inside a write closure would deadlock")]
    WouldDeadlock,

    /// The writer thread is gone (the database is shutting down, or the
    /// writer died), so the write was not performed.
    #[error("the database writer has shut down")]
    WriterGone,
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Converts a `u64` coming from the API into SQLite's `i64`, naming the
/// argument when it does not fit.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| StorageError::InvalidArgument(format!("{what} {value} exceeds i64::MAX")))
}

/// Converts a non-negative SQLite integer back into a `u64`. SQLite sums of
/// lengths are never negative, so a negative value means a corrupt row.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| {
        StorageError::InvalidArgument(format!("{what} {value} is negative in the database"))
    })
}
