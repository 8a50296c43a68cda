//! Constructors for the contract's [`Error`] variant.

use crate::types::Error;

/// Result with the contract's error type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// The input was malformed or failed validation (not retryable).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// The input was well formed, but the plugin or the system it fronts said no.
    pub fn rejected(message: impl Into<String>) -> Self {
        Error::Rejected(message.into())
    }

    /// A dependency was unavailable (retryable).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable(message.into())
    }

    /// A bug or unexpected state inside the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    /// The message carried by any variant.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidInput(m)
            | Error::Rejected(m)
            | Error::Unavailable(m)
            | Error::Internal(m) => m,
        }
    }

    /// Whether the host may retry the call later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::InvalidInput(format!("invalid JSON: {e}"))
    }
}
