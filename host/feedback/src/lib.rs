//! The feedback module: side-effect (AEFI) reports and ratings, tied to
//! certificates.
//!
//! - [`form`]: the report form is configuration (a JSON Schema with labels
//!   per language);
//! - [`severity`]: reports are graded by configured rules; a serious one
//!   raises an event and alerts pharmacovigilance through distribution;
//! - [`service`]: filing, rating (once per certificate), the monitoring
//!   list with its filters and CSV export. Rates per batch come from the
//!   live counters (`divoc_insight::stats`).

pub mod error;
pub mod form;
pub mod service;
pub mod severity;

pub use error::FeedbackError;
pub use form::Form;
pub use service::{FeedbackService, FeedbackSettings, NewRating, Rating, Report, ReportPage};
pub use severity::{Severity, SeverityRule};
