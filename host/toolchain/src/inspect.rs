//! Validation and a summary of a component's imports and exports.

use std::path::Path;

use crate::ToolchainError;

/// The interfaces a component imports and exports, by full name
/// (`divoc:plugin/kv@1.1.0`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Imported interfaces and functions.
    pub imports: Vec<String>,
    /// Exported interfaces and functions.
    pub exports: Vec<String>,
}

/// Validates `bytes` as a component with the host's `wasmparser` (the version
/// wasmtime uses) and lists its imports and exports with `wit-component`'s
/// decoder. `path` is only used in error messages.
pub fn inspect(bytes: &[u8], path: &Path) -> Result<ComponentInfo, ToolchainError> {
    let invalid = |message: String| ToolchainError::InvalidComponent {
        path: path.to_path_buf(),
        message,
    };
    let mut validator =
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::default());
    validator
        .validate_all(bytes)
        .map_err(|e| invalid(e.to_string()))?;
    let decoded = wit_component::decode(bytes).map_err(|e| invalid(format!("{e:#}")))?;
    let wit_component::DecodedWasm::Component(resolve, world) = decoded else {
        return Err(invalid("a WIT package, not a component".into()));
    };
    let world = &resolve.worlds[world];
    Ok(ComponentInfo {
        imports: world
            .imports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect(),
        exports: world
            .exports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect(),
    })
}
