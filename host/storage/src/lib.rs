//! `divoc-storage`: the single owner of the DIVOC host's SQLite database.
//!
//! Nothing outside this crate writes SQL. Other crates get a [`Database`]
//! handle and use the typed repositories:
//!
//! - [`kv`]: plugin-private key/value storage with byte quotas,
//! - [`events`]: the append-only domain event log and subscriber cursors,
//! - [`audit`]: the hash-chained audit log and its verifier,
//! - [`outbox`]: the transactional outbox for outgoing messages,
//! - [`certificates`]: certificate records, status and corrections,
//! - [`rollout`]: the rollout registry (vaccines, programmes, facilities, vaccinators),
//! - [`tokens`]: API tokens made over the API (digests only),
//! - [`uploads`]: CSV uploads to the registry and their refused rows,
//! - [`meta`]: host metadata.
//!
//! # Writes
//!
//! All writes go through one writer thread that groups concurrent writes
//! into a single transaction and a single fsync (see [`db`] for why).
//! [`Database::write`] takes a closure over a [`Tx`]; the repositories'
//! `&Tx` functions can be combined in one closure so that, say, a
//! certificate's record, its event, its audit entry and its outbox message
//! commit together or not at all. The returned [`PendingWrite`] is waited
//! for with [`PendingWrite::wait`] or `.await`; `Ok` means the write is on
//! disk (`synchronous=FULL`).
//!
//! ```no_run
//! use divoc_storage::{audit, events, Database, DbOptions};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), divoc_storage::StorageError> {
//! let db = Database::open("data/divoc.db".as_ref(), DbOptions::default())?;
//! let seq = db
//!     .write(|tx| {
//!         audit::append_audit(tx, "operator-7", "certificate.revoke", "cert-42", &json!({}))?;
//!         events::append_event(tx, "certificate.revoked", "cert-42", &json!({ "reason": "error" }))
//!     })
//!     .wait()?;
//! assert!(db.events_after(seq - 1, 1)?.len() == 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Reads
//!
//! [`Database::read`] lends a pooled read-only connection, inside one read
//! transaction, to a closure over a [`Reader`]; the `Database` methods such
//! as [`Database::kv_get`] wrap that for single reads. Readers run in
//! parallel with the writer (WAL mode) and see only committed data.

#![deny(missing_docs)]

pub mod appointments;
pub mod audit;
pub mod certificates;
mod compact;
pub mod copy;
mod credential_codec;
pub mod db;
mod error;
pub mod events;
pub mod feedback;
pub mod issuer_keys;
pub mod kv;
pub mod meta;
mod migrate;
pub mod otp;
pub mod outbox;
pub mod pg;
pub mod rollout;
pub mod sql;
pub mod stats;
pub mod tokens;
pub mod uploads;
pub mod vaccinations;

pub use audit::{AuditFault, AuditRecord, AuditReport};
pub use db::{Database, DbOptions, PendingWrite, Reader, Tx, WriteAnswer, WriteFuture, WriteStats};
pub use error::{Result, StorageError};
pub use events::Event;
pub use migrate::latest_version as latest_schema_version;
pub use outbox::{OutboxCounts, OutboxItem, OutboxStatus};

/// Current wall-clock time in milliseconds since the Unix epoch. A clock set
/// before 1970 yields 0 rather than an error: timestamps here are
/// informational, never used for ordering (sequence numbers are).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
