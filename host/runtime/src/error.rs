//! Typed errors of the plugin runtime. Every error that concerns a plugin
//! names it and its version, so an operator can tell which build misbehaved.

use std::path::PathBuf;

use serde::Serialize;

/// A `plugin.toml` that cannot be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read from disk.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The `plugin.toml` that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML, or does not fit the manifest schema
    /// (unknown key, missing key, unknown world, wrong type).
    #[error("invalid plugin.toml: {0}")]
    Syntax(String),
    /// The manifest parsed, but a value breaks a rule the schema cannot express.
    #[error("invalid plugin.toml: `{field}`: {message}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `plugin.name` or `limits.fuel`.
        field: String,
        /// What is wrong with the value and what was expected.
        message: String,
    },
    /// Another manifest error, tagged with the file it came from.
    #[error("{}: {inner}", path.display())]
    At {
        /// The `plugin.toml` the error was found in.
        path: PathBuf,
        /// The error found in it.
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
    /// The plugin's `plugin.toml` is unreadable or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The directory does not hold what a plugin needs: a readable UTF-8
    /// `plugin.toml` and exactly one identifiable `.wasm` component.
    #[error("plugin directory {}: {message}", path.display())]
    Layout {
        /// The plugin directory.
        path: PathBuf,
        /// What is missing or unreadable.
        message: String,
    },
    /// wasmtime could not compile the bytes as a component (not a component,
    /// corrupt, or uses a feature the engine does not enable).
    #[error("plugin `{plugin}` {version}: cannot compile component: {message}")]
    Compile {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// wasmtime's error, with its chain of causes.
        message: String,
    },
    /// The manifest, or an interface the component exports or imports, names
    /// a `divoc:plugin` version this host cannot serve (another major version,
    /// or a newer minor one).
    #[error(
        "plugin `{plugin}` {version}: built for {found}, but this host implements \
         divoc:plugin@{supported} (compatible: {supported_range})"
    )]
    IncompatibleContract {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// The offending name as written: the manifest's `plugin.wit`, or the
        /// versioned interface name, e.g. `divoc:plugin/identity@2.0.0`.
        found: String,
        /// The contract version this host implements, [`crate::HOST_WIT_VERSION`].
        supported: String,
        /// The contract versions this host accepts, e.g. `1.0.0 to 1.1.0`.
        supported_range: String,
    },
    /// The world the manifest declares differs from the one the component exports.
    #[error(
        "plugin `{plugin}` {version}: plugin.toml says world `{manifest}`, \
         but the component implements `{component}`"
    )]
    WorldMismatch {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// The world named in `plugin.world`.
        manifest: String,
        /// The world whose interface the component exports.
        component: String,
    },
    /// The component exports none of the six world interfaces.
    #[error(
        "plugin `{plugin}` {version}: the component exports no divoc:plugin world interface \
         (exports: {exports})"
    )]
    NoWorld {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// The component's exports, comma-separated, or `none`.
        exports: String,
    },
    /// The component imports something outside the host's capabilities
    /// (e.g. WASI, or an interface of another package).
    #[error(
        "plugin `{plugin}` {version}: the component imports `{import}`, which is not a \
         capability this host provides"
    )]
    UnknownImport {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// The full name of the import, as the component declares it.
        import: String,
    },
    /// The component imports a capability its manifest does not request; the
    /// manifest must list everything the component can use.
    #[error(
        "plugin `{plugin}` {version}: the component uses capability `{capability}` \
         but plugin.toml does not request it"
    )]
    NotRequested {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// The capability interface imported, e.g. `http`.
        capability: String,
    },
    /// The manifest requests a capability (or a kv quota, origin or signing
    /// purpose) that the operator's grant for this plugin does not cover.
    #[error("plugin `{plugin}` {version}: capability `{capability}` is not granted{detail}")]
    NotGranted {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// The capability refused, e.g. `kv`.
        capability: String,
        /// What the grant does not cover and which grant key would, as
        /// ` (...)` ready to append to the message.
        detail: String,
    },
    /// A limit in the manifest (or its default) is above the operator's ceiling.
    #[error(
        "plugin `{plugin}` {version}: limit `{limit}` of {requested} exceeds the \
         host's ceiling of {ceiling}"
    )]
    LimitTooHigh {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// The manifest key of the limit, e.g. `deadline-ms` or `memory-mib`.
        limit: String,
        /// The value asked for, in the limit's own unit.
        requested: u64,
        /// The highest value the operator allows, in the same unit.
        ceiling: u64,
    },
    /// The component's imports could not be linked against the host's
    /// implementations (e.g. a function signature differs).
    #[error("plugin `{plugin}` {version}: imports do not match the host: {message}")]
    Link {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// wasmtime's error, with its chain of causes.
        message: String,
    },
    /// The component could not be instantiated once before being swapped in
    /// (its start function trapped, it needs too much memory, ...).
    #[error("plugin `{plugin}` {version}: smoke-test instantiation failed: {message}")]
    SmokeTest {
        /// Name of the plugin, from its `plugin.toml`.
        plugin: String,
        /// The candidate's own version, from its `plugin.toml`.
        version: String,
        /// The fault, worded as a [`PluginError`].
        message: String,
    },
    /// Two directories in one scan hold plugins of the same name; the second
    /// is refused.
    #[error("plugin name `{plugin}` is used by both {} and {}", first.display(), second.display())]
    DuplicateName {
        /// The name both manifests claim.
        plugin: String,
        /// The directory that claimed the name first (in sort order).
        first: PathBuf,
        /// The directory that was refused.
        second: PathBuf,
    },
}

/// The class of an error a plugin returned (the WIT `error` variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestErrorKind {
    /// The input was malformed or failed validation. Not retryable.
    InvalidInput,
    /// The input was well formed, but the plugin (or the system it fronts)
    /// said no. Not retryable.
    Rejected,
    /// A dependency of the plugin (network, remote service) was unavailable.
    /// Retryable.
    Unavailable,
    /// A bug or unexpected state inside the plugin.
    Internal,
}

/// An error a plugin returned through its contract. Not a fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct GuestError {
    /// Which class of error, and so whether it is worth retrying.
    pub kind: GuestErrorKind,
    /// Explanation, as written by the plugin.
    pub message: String,
}

/// Why a call into a plugin did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No plugin of this name is loaded (it may have been refused); holds the name.
    #[error("no plugin named `{0}` is loaded")]
    NotFound(String),
    /// The plugin is loaded but implements a different world from the one asked for.
    #[error("plugin `{plugin}` implements `{actual}`, not `{expected}`")]
    WrongWorld {
        /// Name of the plugin asked for.
        plugin: String,
        /// The world the caller wanted.
        expected: String,
        /// The world the loaded plugin implements.
        actual: String,
    },
    /// The version was disabled after too many consecutive faults; it stays
    /// disabled until it is reloaded. Not itself counted as a fault.
    #[error("plugin `{plugin}` {version} is disabled after repeated faults: {reason}")]
    Disabled {
        /// Name of the plugin that was called.
        plugin: String,
        /// The version that served the call.
        version: String,
        /// How many faults in a row, and the last one.
        reason: String,
    },
    /// The plugin ran correctly and returned an error through its contract.
    #[error("plugin `{plugin}` {version} returned an error: {error}")]
    Returned {
        /// Name of the plugin that was called.
        plugin: String,
        /// The version that served the call.
        version: String,
        /// The error the plugin returned.
        error: GuestError,
    },
    /// The call was interrupted at its deadline. Time spent waiting on kv and
    /// http host calls is not charged against it.
    #[error("plugin `{plugin}` {version} exceeded its deadline of {deadline_ms} ms")]
    Timeout {
        /// Name of the plugin that was called.
        plugin: String,
        /// The version that served the call.
        version: String,
        /// Milliseconds of guest time the call was allowed.
        deadline_ms: u64,
    },
    /// The plugin tried to grow its memory past its limit.
    #[error("plugin `{plugin}` {version} exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimit {
        /// Name of the plugin that was called.
        plugin: String,
        /// The version that served the call.
        version: String,
        /// The plugin's memory limit, in bytes.
        limit_bytes: u64,
    },
    /// The plugin used up the instruction budget (fuel) it asked for.
    #[error("plugin `{plugin}` {version} ran out of fuel ({fuel})")]
    OutOfFuel {
        /// Name of the plugin that was called.
        plugin: String,
        /// The version that served the call.
        version: String,
        /// The fuel budget of the call; `u64::MAX` when the plugin set none.
        fuel: u64,
    },
    /// The call's result was larger than the plugin's output limit, and was
    /// discarded.
    #[error(
        "plugin `{plugin}` {version} returned {size} bytes, more than its output limit of {limit}"
    )]
    OutputTooLarge {
        /// Name of the plugin that was called.
        plugin: String,
        /// The version that served the call.
        version: String,
        /// Payload bytes of the result (strings, byte lists and numbers).
        size: u64,
        /// The plugin's output limit, in bytes.
        limit: u64,
    },
    /// The plugin trapped (panic, out-of-bounds access, unreachable, ...), or
    /// could not be instantiated for the call.
    #[error("plugin `{plugin}` {version} trapped: {message}")]
    Trap {
        /// Name of the plugin that was called.
        plugin: String,
        /// The version that served the call.
        version: String,
        /// The trap, or wasmtime's error with its chain of causes.
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
