//! Typed errors of the plugin runtime. Every error that concerns a plugin
//! names it and its version, so an operator can tell which build misbehaved.

use std::path::PathBuf;

use serde::Serialize;

/// A `plugin.toml` that cannot be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid plugin.toml: {0}")]
    Syntax(String),
    #[error("invalid plugin.toml: `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("{}: {inner}", path.display())]
    At {
        path: PathBuf,
        inner: Box<ManifestError>,
    },
}

impl ManifestError {
    pub(crate) fn at(self, path: &std::path::Path) -> ManifestError {
        match self {
            e @ (ManifestError::Read { .. } | ManifestError::At { .. }) => e,
            other => ManifestError::At {
                path: path.to_path_buf(),
                inner: Box::new(other),
            },
        }
    }
}

/// Why a plugin (or a new version of one) was refused at load time.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("plugin directory {}: {message}", path.display())]
    Layout { path: PathBuf, message: String },
    #[error("plugin `{plugin}` {version}: cannot compile component: {message}")]
    Compile {
        plugin: String,
        version: String,
        message: String,
    },
    #[error(
        "plugin `{plugin}` {version}: built for {found}, but this host implements \
         divoc:plugin@{supported} (compatible: {supported_range})"
    )]
    IncompatibleContract {
        plugin: String,
        version: String,
        found: String,
        supported: String,
        supported_range: String,
    },
    #[error(
        "plugin `{plugin}` {version}: plugin.toml says world `{manifest}`, \
         but the component implements `{component}`"
    )]
    WorldMismatch {
        plugin: String,
        version: String,
        manifest: String,
        component: String,
    },
    #[error(
        "plugin `{plugin}` {version}: the component exports no divoc:plugin world interface \
         (exports: {exports})"
    )]
    NoWorld {
        plugin: String,
        version: String,
        exports: String,
    },
    #[error(
        "plugin `{plugin}` {version}: the component imports `{import}`, which is not a \
         capability this host provides"
    )]
    UnknownImport {
        plugin: String,
        version: String,
        import: String,
    },
    #[error(
        "plugin `{plugin}` {version}: the component uses capability `{capability}` \
         but plugin.toml does not request it"
    )]
    NotRequested {
        plugin: String,
        version: String,
        capability: String,
    },
    #[error("plugin `{plugin}` {version}: capability `{capability}` is not granted{detail}")]
    NotGranted {
        plugin: String,
        version: String,
        capability: String,
        detail: String,
    },
    #[error(
        "plugin `{plugin}` {version}: limit `{limit}` of {requested} exceeds the \
         host's ceiling of {ceiling}"
    )]
    LimitTooHigh {
        plugin: String,
        version: String,
        limit: String,
        requested: u64,
        ceiling: u64,
    },
    #[error("plugin `{plugin}` {version}: imports do not match the host: {message}")]
    Link {
        plugin: String,
        version: String,
        message: String,
    },
    #[error("plugin `{plugin}` {version}: smoke-test instantiation failed: {message}")]
    SmokeTest {
        plugin: String,
        version: String,
        message: String,
    },
    #[error("plugin name `{plugin}` is used by both {} and {}", first.display(), second.display())]
    DuplicateName {
        plugin: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// The class of an error a plugin returned (the WIT `error` variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestErrorKind {
    InvalidInput,
    Rejected,
    Unavailable,
    Internal,
}

/// An error a plugin returned through its contract. Not a fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct GuestError {
    pub kind: GuestErrorKind,
    pub message: String,
}

/// Why a call into a plugin did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no plugin named `{0}` is loaded")]
    NotFound(String),
    #[error("plugin `{plugin}` implements `{actual}`, not `{expected}`")]
    WrongWorld {
        plugin: String,
        expected: String,
        actual: String,
    },
    #[error("plugin `{plugin}` {version} is disabled after repeated faults: {reason}")]
    Disabled {
        plugin: String,
        version: String,
        reason: String,
    },
    #[error("plugin `{plugin}` {version} returned an error: {error}")]
    Returned {
        plugin: String,
        version: String,
        error: GuestError,
    },
    #[error("plugin `{plugin}` {version} exceeded its deadline of {deadline_ms} ms")]
    Timeout {
        plugin: String,
        version: String,
        deadline_ms: u64,
    },
    #[error("plugin `{plugin}` {version} exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit {
        plugin: String,
        version: String,
        limit_bytes: u64,
    },
    #[error("plugin `{plugin}` {version} ran out of fuel ({fuel})")]
    OutOfFuel {
        plugin: String,
        version: String,
        fuel: u64,
    },
    #[error(
        "plugin `{plugin}` {version} returned {size} bytes, more than its output limit of {limit}"
    )]
    OutputTooLarge {
        plugin: String,
        version: String,
        size: u64,
        limit: u64,
    },
    #[error("plugin `{plugin}` {version} trapped: {message}")]
    Trap {
        plugin: String,
        version: String,
        message: String,
    },
}

impl PluginError {
    /// A fault is a misbehaviour of the plugin (trap, time-out, limit); it counts
    /// towards disabling the plugin. Returned errors and lookups are not faults.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            PluginError::Timeout { .. }
                | PluginError::MemoryLimit { .. }
                | PluginError::OutOfFuel { .. }
                | PluginError::OutputTooLarge { .. }
                | PluginError::Trap { .. }
        )
    }

    /// The guest's own error, when the plugin returned one.
    pub fn guest_error(&self) -> Option<&GuestError> {
        match self {
            PluginError::Returned { error, .. } => Some(error),
            _ => None,
        }
    }
}
