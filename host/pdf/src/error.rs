//! The crate's one error type.

use std::path::PathBuf;

/// Why loading templates or rendering a certificate failed.
///
/// Loading errors ([`PdfError::Io`], [`PdfError::Template`],
/// [`PdfError::Font`], [`PdfError::NoTemplates`]) name the file at fault and
/// belong at start-up; the HTTP layer sees only the request errors
/// ([`PdfError::UnknownLanguage`], [`PdfError::Credential`]) and the internal
/// ones ([`PdfError::Qr`], [`PdfError::SecondQr`], [`PdfError::Render`]).
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// A template or font file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A template is malformed or inconsistent.
    #[error("template {path}: {message}")]
    Template {
        /// The template file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A font named by a template is not a usable OpenType font.
    #[error("font {path}: {message}")]
    Font {
        /// The font file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The templates directory holds no `*.toml` template.
    #[error("no PDF templates (*.toml) in {dir}")]
    NoTemplates {
        /// The directory searched.
        dir: PathBuf,
    },
    /// The requested language has no template. A client error: the API
    /// answers 4xx naming the `lang` parameter.
    #[error("lang: no certificate template for {lang:?} (available: {})", available.join(", "))]
    UnknownLanguage {
        /// The language asked for.
        lang: String,
        /// The languages that have a template.
        available: Vec<String>,
    },
    /// The stored credentials do not have the shape of our vaccination
    /// certificates.
    #[error("credential: {0}")]
    Credential(String),
    /// The QR payload does not fit in a QR code.
    #[error("QR code: {0}")]
    Qr(String),
    /// The second QR's payload does not fit in a QR code. Its own variant,
    /// so that a caller can print the certificate without it.
    #[error("second QR code: {0}")]
    SecondQr(String),
    /// The PDF writer failed (e.g. a font could not be subset).
    #[error("PDF: {0}")]
    Render(String),
}
