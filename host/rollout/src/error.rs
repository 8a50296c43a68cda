//! The rollout module's error type: one variant per HTTP answer, so the API
//! maps it without looking inside.

use serde::Serialize;

/// One rejected input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `address.district` or `intervals[0].minDays`.
    pub field: String,
    /// What is wrong, for a person; never echoes the value.
    pub message: String,
}

impl FieldError {
    /// A field error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything a registry operation can fail with.
///
/// | variant | HTTP |
/// | --- | --- |
/// | [`Validation`](Self::Validation) | 422 |
/// | [`Conflict`](Self::Conflict), [`Duplicate`](Self::Duplicate) | 409 |
/// | [`Stale`](Self::Stale) | 412 |
/// | [`NotFound`](Self::NotFound) | 404 |
/// | [`Input`](Self::Input) | 400 (413 when the body was too large) |
/// | [`Storage`](Self::Storage), [`Internal`](Self::Internal) | 500 |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// The record is invalid, or refers to records that do not exist; every
    /// bad field is listed. Nothing was stored.
    #[error("invalid record: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    /// The code is taken, or the record is still referred to.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The record repeats one that exists under another code (the same
    /// person enrolled twice).
    #[error("duplicate: {message}")]
    Duplicate {
        /// The existing record's code.
        existing: String,
        /// What is the same, without personal data.
        message: String,
    },
    /// The record changed since the version the caller read.
    #[error("the record is at version {current}, not {expected}")]
    Stale {
        /// The version the caller sent.
        expected: i64,
        /// The stored version.
        current: i64,
    },
    /// No such record.
    #[error("not found: {0}")]
    NotFound(String),
    /// The programme's eligibility policy refused; the reasons are safe to
    /// show to the person.
    #[error("not eligible: {}", .0.join("; "))]
    Ineligible(Vec<String>),
    /// Something the decision needs (a plugin) is not there or failed: the
    /// request is refused, not let through.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A daily rate is reached.
    #[error("rate reached: {limit} records at most {value} a day (until {resets_at})")]
    RateLimited {
        /// Whose rate.
        limit: String,
        /// The rate.
        value: u32,
        /// When the count starts again (RFC 3339).
        resets_at: String,
    },
    /// The certificate pipeline refused or failed.
    #[error("certificate: {0}")]
    Certificate(divoc_certificates::CertError),
    /// Asked again too soon (a sign-in code).
    #[error("too soon: {0}")]
    TooSoon(String),
    /// The slot has no seat left.
    #[error("full: {0}")]
    Full(String),
    /// It existed, and was erased by a retention rule.
    #[error("erased: {0}")]
    Erased(String),
    /// The input could not be read to its end (the connection broke, the
    /// body was too large); what was read before is stored and the upload
    /// is left unfinished in its history.
    #[error("the input was cut off: {0}")]
    Input(String),
    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] divoc_storage::StorageError),
    /// A stored record could not be read back.
    #[error("internal: {0}")]
    Internal(String),
}
