//! # divoc-certificates
//!
//! The certificate module: W3C Verifiable Credentials 2.0 vaccination
//! certificates signed with `eddsa-jcs-2022`.

#![deny(missing_docs)]

pub mod credential;
pub mod dates;
pub mod error;
pub mod legacy;
pub mod qr;
pub mod request;
pub mod service;
pub mod status_list;
pub mod verify;

pub use error::{CertError, FieldError};
pub use request::IssueRequest;
pub use service::{CertificateService, IssueStatus, Issued, ServiceConfig};
pub use verify::{Verdict, VerifyInput};
