//! The DIVOC plugin runtime.
//!
//! Every country-specific part of DIVOC — identity checks, payment, certificate
//! formats, distribution channels, rollout policies, event exports — is a
//! WebAssembly component implementing one world of the `divoc:plugin` WIT
//! package (`wit/`). This crate loads such components, checks them against
//! their manifest and the operator's grants, runs every call in a sandbox with
//! a deadline, a memory cap, optional fuel and an output cap, and swaps new
//! versions in while calls are in flight.
//!
//! It is the only crate that touches wasmtime. The rest of the host uses:
//! - [`Runtime`]: load a directory of plugins, reload it, list status;
//! - the typed handles ([`IdentityProvider`], [`PaymentProvider`], ...) that
//!   call into one plugin version;
//! - [`HostServices`]: the storage and signing backends capabilities use.

#![deny(missing_docs)]

mod bindings;
mod capabilities;
mod engine;
mod error;
mod grants;
mod manifest;
mod output_size;
mod plugin;
mod registry;
mod rfc3339;
mod services;
mod watcher;
mod worlds;

pub use engine::EngineSettings;
pub use error::{GuestError, GuestErrorKind, LoadError, ManifestError, PluginError};
pub use grants::{EffectiveCapabilities, Grant, Grants, Origin};
pub use manifest::{Manifest, World, WIT_PACKAGE};
pub use plugin::{EffectiveLimits, LimitSettings, PluginInfo, HOST_WIT_VERSION};
pub use registry::{PluginState, PluginStatus, Rejection, ReloadReport, Runtime, RuntimeSettings};
pub use services::{
    HostKey, HostServices, KeyAlgorithm, KvBackend, KvError, MailBackend, MailError, MemoryKv,
    NoKeys, NoMail, OutgoingMail, SignerBackend,
};
pub use watcher::Watcher;
pub use worlds::{
    types, CertificateFormat, Delivery, DistributionChannel, EventSubscriber, IdentityProvider,
    PaymentProvider, RolloutPolicy,
};
