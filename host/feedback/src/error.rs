//! The feedback module's errors.

use divoc_certificates::error::FieldError;

/// What can go wrong filing or reading feedback.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    /// The request is invalid; every bad field is listed.
    #[error("invalid request: {}", .0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    /// What the request names does not exist (or is not the caller's).
    #[error("{0} not found")]
    NotFound(String),
    /// It exists already (a certificate's rating).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The form or the rules in the configuration are unusable.
    #[error("feedback configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] divoc_storage::StorageError),
    /// The certificate module failed.
    #[error(transparent)]
    Certificate(#[from] divoc_certificates::CertError),
}

impl FeedbackError {
    /// One bad field.
    pub fn field(field: &str, message: impl Into<String>) -> FeedbackError {
        FeedbackError::Validation(vec![FieldError::new(field, message)])
    }
}
