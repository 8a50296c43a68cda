//! Sending e-mail through the host's SMTP relay (`divoc:plugin/mail`, 1.2).
//!
//! The operator grants the plugin a sender address (`mail-sender`); the host
//! sets `From`, `Date` and a `Message-ID` derived from the idempotency key.

pub use crate::bindings::divoc::plugin::mail::{send, Email, MailAttachment};
