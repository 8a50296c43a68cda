//! # divoc-certificates
//!
//! The certificate module: vaccination certificates as W3C Verifiable
//! Credentials 2.0 (<https://www.w3.org/TR/vc-data-model-2.0/>), signed
//! with Data Integrity `eddsa-jcs-2022` through `divoc-crypto`, stored
//! through `divoc-storage`.
//!
//! The flow of one certificate through [`CertificateService::issue`]:
//!
//! 1. [`IssueRequest::validate`] — every bad field, by path; nothing stored.
//!    Then the [`hooks`]: the identity check (its canonical number replaces
//!    the one sent).
//! 2. Re-send check (same payload hash → the stored certificate; a
//!    different payload for an issued dose → [`CertError::Conflict`]).
//!    Then payment, for programs that charge ([`hooks`]).
//! 3. [`credential::build_credential`] with a fresh id and a status-list
//!    index, then [`credential::sign`] (outside the database writer).
//! 4. One group-committed transaction: certificate row, lookup hashes, audit
//!    record, `certificate.issued` event, distribution outbox rows (one per
//!    configured channel), and the payment receipt's audit record.
//!
//! Verification ([`CertificateService::verify`], or offline
//! [`verify::verify_credential`] with a [`verify::TrustStore`] and
//! optional [`verify::StatusLists`]) reports signature, validity period and
//! status separately, and fails closed: `valid` only when the signature
//! holds and the status is known good; a status that cannot be established
//! is its own verdict, `unknown`, never `valid` (and never "forged").
//!
//! Plugins: [`plugin_hooks::PluginHooks`] is [`IssueHooks`] over the plugin
//! runtime (identity and payment checks); [`distribution::Worker`] delivers
//! issued certificates through distribution-channel plugins, and
//! [`capture::CaptureWorker`] captures authorised payments after issue.
//!
//! DIVOC compatibility: [`legacy::CertifyRequest`] accepts DIVOC's
//! `certify` item unchanged; [`qr::legacy_zip`] makes DIVOC's QR payload.

#![deny(missing_docs)]

pub mod capture;
pub mod certificate;
pub mod contexts;
pub mod credential;
pub mod distribution;
pub mod error;
pub mod formats;
pub mod hooks;
pub mod hostile;
pub mod import;
pub mod legacy;
pub mod lookup;
pub mod plugin_hooks;
pub mod qr;
pub mod request;
pub mod service;
pub mod shared_keys;
pub mod stats;
pub mod status_list;
pub mod synthetic;
pub mod template;
pub mod types;
pub mod verify;

pub use certificate::{Certificate, Status};
pub use error::{CertError, FieldError};
pub use hooks::{IssueHooks, NoHooks};
pub use request::IssueRequest;
pub use service::{
    Alongside, CertificateService, IssueStatus, Issued, ServiceConfig, SignedStatusList,
};
pub use verify::{Verdict, VerifyInput};
