//! The certificate module's error type, shaped so that an HTTP layer can map
//! each variant to one status code without looking inside.

use serde::Serialize;

/// One rejected input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field in the request, e.g. `vaccination.dose` or
    /// `recipient.contacts[1]`.
    pub field: String,
    /// What is wrong, for a person; never echoes the value (it may be
    /// personal data).
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

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Everything a certificate operation can fail with.
///
/// | variant | HTTP |
/// | --- | --- |
/// | [`Validation`](Self::Validation) | 400 (malformed) / 422 (well-formed but invalid) |
/// | [`Conflict`](Self::Conflict) | 409 |
/// | [`NotFound`](Self::NotFound) | 404 |
/// | [`Storage`](Self::Storage), [`Internal`](Self::Internal) | 500 |
/// | [`Unavailable`](Self::Unavailable) | 503 |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The request is invalid; every bad field is listed.
    #[error("invalid request: {}", join(.0))]
    Validation(Vec<FieldError>),

    /// The request contradicts what is stored: a different payload for an
    /// already issued dose, an operation not allowed in the certificate's
    /// state, or the correction limit.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicts, without personal data.
        message: String,
        /// The certificate the conflict is with, when there is one.
        existing_id: Option<String>,
        /// Where a client fixes it, e.g. `PUT /v1/certificates/{id}` for a
        /// correction; `None` when there is no such path.
        correction_path: Option<String>,
    },

    /// No certificate (or status list) with that id.
    #[error("not found: {0}")]
    NotFound(String),

    /// The database failed.
    #[error("storage: {0}")]
    Storage(#[from] divoc_storage::StorageError),

    /// Signing, encoding or another internal step failed.
    #[error("internal: {0}")]
    Internal(String),

    /// A check the pipeline requires (an identity or payment plugin) could
    /// not be made. Nothing was stored; the caller may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl CertError {
    /// A validation error for a single field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        CertError::Validation(vec![FieldError::new(field, message)])
    }

    /// The HTTP status code this error maps to (422 for validation: the
    /// body parsed but its content is wrong).
    pub fn http_status(&self) -> u16 {
        match self {
            CertError::Validation(_) => 422,
            CertError::Conflict { .. } => 409,
            CertError::NotFound(_) => 404,
            CertError::Storage(_) | CertError::Internal(_) => 500,
            CertError::Unavailable(_) => 503,
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
