//! Builds DIVOC plugin crates into WebAssembly components, and scaffolds new
//! ones.
//!
//! - [`Toolchain::detect`] finds a way to compile Rust for
//!   `wasm32-unknown-unknown`: an installed rustup target, else Debian's
//!   `rustc-web` + `rust-web-src` + `wasm-ld-22` with `-Zbuild-std`
//!   (`scripts/install-guest-toolchain.sh` installs the latter).
//! - [`Toolchain::build`] runs one `cargo build --release` for a plugin crate or
//!   a guest workspace, then turns every crate that has a `plugin.toml` into a
//!   validated component under `<out_dir>/<package>/`.
//! - [`componentize_module`] does the second half of that for a core module
//!   another compiler built (the C guests in `plugins/c/`).
//! - [`scaffold`] writes a new plugin crate for a world that builds right away.
//!
//! All guests share one target dir (`<repo>/target/guest`, or
//! `$DIVOC_GUEST_TARGET_DIR`), so std is rebuilt once for all of them.

#![deny(missing_docs)]

mod build;
mod detect;
mod inspect;
mod manifest;
mod scaffold;

use std::path::PathBuf;

pub use build::{componentize_module, BuildOptions, BuiltPlugin};
pub use detect::{Toolchain, ToolchainKind};
pub use inspect::{inspect, ComponentInfo};
pub use manifest::{PluginManifest, PluginSection, World};
pub use scaffold::scaffold;

/// The WIT package the host implements and the tools build against.
pub const WIT_PACKAGE: &str = divoc_contract::PACKAGE_AT_VERSION;

/// The repository root, as seen when this crate was compiled.
pub(crate) fn repo_root() -> PathBuf {
    // host/toolchain -> host -> repo
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// Everything that can go wrong while detecting, building or scaffolding.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    /// No way to compile for `wasm32-unknown-unknown` was found.
    #[error(
        "no Rust toolchain for wasm32-unknown-unknown found: {reason}. \
         Run `scripts/install-guest-toolchain.sh` (as root) to install one \
         (or `rustup target add wasm32-unknown-unknown` where rustup can reach its servers)"
    )]
    NotFound {
        /// What was looked for and missing.
        reason: String,
    },
    /// A file or process operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path (or program) involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `cargo` exited unsuccessfully.
    #[error("`cargo {command}` failed for {dir} ({status}); see its output above")]
    Cargo {
        /// The cargo subcommand.
        command: &'static str,
        /// The crate or workspace directory.
        dir: PathBuf,
        /// The exit status.
        status: std::process::ExitStatus,
    },
    /// `cargo metadata` printed something unexpected.
    #[error("cannot read `cargo metadata` for {dir}: {message}")]
    Metadata {
        /// The crate or workspace directory.
        dir: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A `plugin.toml` is missing fields or malformed.
    #[error("invalid plugin manifest {path}: {message}")]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A plugin crate produced no core module.
    #[error("plugin crate `{package}` has a plugin.toml but produced no module at {path} (is it `crate-type = [\"cdylib\"]`?)")]
    MissingModule {
        /// The cargo package.
        package: String,
        /// Where the module was expected.
        path: PathBuf,
    },
    /// `wit-component` could not turn the core module into a component.
    #[error("cannot componentize `{package}`: {message}")]
    Componentize {
        /// The cargo package.
        package: String,
        /// The encoder's error chain.
        message: String,
    },
    /// The component failed validation or decoding.
    #[error("invalid component {path}: {message}")]
    InvalidComponent {
        /// The component path (or the package name before it is written).
        path: PathBuf,
        /// The validator's message.
        message: String,
    },
    /// The component does not implement what its manifest claims.
    #[error("plugin `{package}`: {message}")]
    ContractMismatch {
        /// The cargo package.
        package: String,
        /// What differs.
        message: String,
    },
    /// No crate under the directory has a `plugin.toml`.
    #[error("no plugin crate (a cdylib with a plugin.toml next to its Cargo.toml) under {dir}")]
    NoPlugins {
        /// The crate or workspace directory.
        dir: PathBuf,
    },
    /// Bad arguments to [`scaffold`].
    #[error("cannot scaffold: {0}")]
    Scaffold(String),
}
