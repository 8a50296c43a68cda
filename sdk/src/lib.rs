//! Guest-side SDK for DIVOC-rs plugins (`divoc:plugin@1.2.0`).
//!
//! A plugin crate depends on this crate with exactly the feature of the world
//! it implements, implements that world's `Guest` trait and exports it:
//!
//! ```ignore
//! use divoc_sdk::identity::{Claim, Guest, Verification, VerifiedIdentity};
//! use divoc_sdk::Error;
//!
//! struct Plugin;
//!
//! impl Guest for Plugin {
//!     fn identity_types() -> Vec<String> {
//!         vec!["national-id".into()]
//!     }
//!     fn verify(claim: Claim) -> Result<Verification, Error> {
//!         divoc_sdk::log::info("verifying a claim");
//!         Ok(Verification::Rejected("not implemented".into()))
//!     }
//! }
//!
//! divoc_sdk::export_identity_provider!(Plugin);
//! ```
//!
//! Host imports (`log`, `clock`, `random`, `kv`, `http`, `signer`, `config`)
//! are generated once, from the `host` world, and shared by every world via
//! wit-bindgen's `with`. Each world's export bindings sit behind a cargo
//! feature; the world's type information (with its export) is only emitted by
//! the `export_*!` macro, so a plugin's core module describes exactly the world
//! it exports, and `wit-component` drops every host import it does not call.
//! Enabling several features (e.g. through cargo's feature unification in a
//! workspace) is therefore harmless.

#![deny(missing_docs)]

extern crate self as divoc_sdk;

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

/// Raw bindings for the host imports, generated from `world host`.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "divoc:plugin/host@1.2.0",
        generate_unused_types: true,
        runtime_path: "divoc_sdk::__private::wit_bindgen::rt",
    });
}

pub mod clock;
pub mod config;
mod error;
pub mod http;
pub mod kv;
pub mod log;
pub mod mail;
pub mod random;
pub mod signer;
mod worlds;

pub use bindings::divoc::plugin::types;
pub use error::Result;
pub use types::{
    Address, Contact, ContactKind, Error, Facility, Identity, Money, Recipient, VaccinationEvent,
};
#[allow(unused_imports)]
pub use worlds::*;

/// The WIT contract this SDK implements.
pub const WIT_PACKAGE: &str = "divoc:plugin@1.2.0";

/// Quotes untrusted input for an error message, cut to 64 characters, so a
/// huge input cannot make the plugin's answer exceed its output limit.
pub fn quote(input: &str) -> String {
    const MAX: usize = 64;
    match input.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &input[..cut]),
        None => format!("{input:?}"),
    }
}
