//! `cargo build` for the guest target, then componentization.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use wit_component::ComponentEncoder;

use crate::detect::{Toolchain, TARGET};
use crate::manifest::{PluginManifest, World};
use crate::{inspect, ToolchainError};

/// A component written by [`Toolchain::build`].
#[derive(Debug, Clone)]
pub struct BuiltPlugin {
    /// The plugin name from `plugin.toml`.
    pub name: String,
    /// The plugin version from `plugin.toml`.
    pub version: String,
    /// The world from `plugin.toml`.
    pub world: String,
    /// The cargo package it was built from; also the output directory name.
    pub package: String,
    /// `<out_dir>/<package>/<name>.wasm`.
    pub wasm_path: PathBuf,
    /// `<out_dir>/<package>/plugin.toml`.
    pub manifest_path: PathBuf,
    /// The component's size in bytes.
    pub size: u64,
    /// The component's imports and exports.
    pub info: crate::ComponentInfo,
}

/// Options for [`Toolchain::build_with`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Refuse a component whose export does not match its manifest's `world`
    /// and `wit` version (default `true`). Off for deliberately broken
    /// test fixtures.
    pub check_contract: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            check_contract: true,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Package {
    id: String,
    name: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    name: String,
    crate_types: Vec<String>,
}

impl Toolchain {
    /// Builds a plugin crate or a guest workspace with one
    /// `cargo build --release` (cargo's output goes to stderr), then writes,
    /// for every member with a `plugin.toml` next to its `Cargo.toml`,
    /// `<out_dir>/<package>/<name>.wasm` and `<out_dir>/<package>/plugin.toml`.
    ///
    /// The directory is named after the cargo package, the file after the
    /// manifest's plugin name. They are equal for ordinary plugins; test
    /// fixtures use different packages for two versions of one plugin
    /// (`swap-v1/swap.wasm`, `swap-v2/swap.wasm`).
    pub fn build(&self, dir: &Path, out_dir: &Path) -> Result<Vec<BuiltPlugin>, ToolchainError> {
        self.build_with(dir, out_dir, &BuildOptions::default())
    }

    /// [`Toolchain::build`] with options.
    pub fn build_with(
        &self,
        dir: &Path,
        out_dir: &Path,
        options: &BuildOptions,
    ) -> Result<Vec<BuiltPlugin>, ToolchainError> {
        let dir = dir.canonicalize().map_err(|source| ToolchainError::Io {
            what: "cannot open",
            path: dir.to_path_buf(),
            source,
        })?;
        let cargo_toml = dir.join("Cargo.toml");
        let plugins = self.plugin_packages(&dir, &cargo_toml)?;
        if plugins.is_empty() {
            return Err(ToolchainError::NoPlugins { dir });
        }

        let mut cmd = self.cargo_command("build");
        cmd.arg("--release")
            .arg("--workspace")
            .arg("--manifest-path")
            .arg(&cargo_toml)
            .arg("--target-dir")
            .arg(&self.target_dir)
            .args(self.build_args())
            .current_dir(&dir)
            .stdout(stdout_to_stderr());
        let status = cmd.status().map_err(|source| ToolchainError::Io {
            what: "cannot run",
            path: self.cargo.clone(),
            source,
        })?;
        if !status.success() {
            return Err(ToolchainError::Cargo {
                command: "build",
                dir,
                status,
            });
        }

        let release = self.target_dir.join(TARGET).join("release");
        plugins
            .into_iter()
            .map(|p| componentize(&p, &release, out_dir, options))
            .collect()
    }

    /// Workspace members (or the single crate) that have a `plugin.toml`.
    fn plugin_packages(
        &self,
        dir: &Path,
        cargo_toml: &Path,
    ) -> Result<Vec<PluginPackage>, ToolchainError> {
        let out = self
            .cargo_command("metadata")
            .args(["--format-version", "1", "--no-deps", "--manifest-path"])
            .arg(cargo_toml)
            .current_dir(dir)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|source| ToolchainError::Io {
                what: "cannot run",
                path: self.cargo.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(ToolchainError::Cargo {
                command: "metadata",
                dir: dir.to_path_buf(),
                status: out.status,
            });
        }
        let meta: Metadata =
            serde_json::from_slice(&out.stdout).map_err(|e| ToolchainError::Metadata {
                dir: dir.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut found = Vec::new();
        for pkg in meta
            .packages
            .into_iter()
            .filter(|p| meta.workspace_members.contains(&p.id))
        {
            let Some(crate_dir) = pkg.manifest_path.parent() else {
                continue;
            };
            let manifest_path = crate_dir.join("plugin.toml");
            if !manifest_path.is_file() {
                continue;
            }
            let manifest = PluginManifest::load(&manifest_path)?;
            let lib = pkg
                .targets
                .iter()
                .find(|t| t.crate_types.iter().any(|c| c == "cdylib"))
                .map(|t| t.name.replace('-', "_"))
                .ok_or_else(|| ToolchainError::MissingModule {
                    package: pkg.name.clone(),
                    path: pkg.manifest_path.clone(),
                })?;
            found.push(PluginPackage {
                package: pkg.name,
                lib,
                manifest,
                manifest_path,
            });
        }
        found.sort_by(|a, b| a.package.cmp(&b.package));
        Ok(found)
    }
}

struct PluginPackage {
    package: String,
    lib: String,
    manifest: PluginManifest,
    manifest_path: PathBuf,
}

/// Turns a core module built by another compiler (C with `wit-bindgen c`,
/// say: see `plugins/c/`) into a plugin component, the same way
/// [`Toolchain::build`] does for a Rust crate: the module must carry
/// wit-bindgen's component-type section; the component is validated,
/// checked against the manifest's world and version (unless
/// `options.check_contract` is off), and written with a copy of the
/// manifest as `<out_dir>/<name>/<name>.wasm` and
/// `<out_dir>/<name>/plugin.toml`, `<name>` being the manifest's plugin name.
pub fn componentize_module(
    module_path: &Path,
    manifest_path: &Path,
    out_dir: &Path,
    options: &BuildOptions,
) -> Result<BuiltPlugin, ToolchainError> {
    if let Err(source) = std::fs::metadata(module_path) {
        return Err(ToolchainError::Io {
            what: "cannot read",
            path: module_path.to_path_buf(),
            source,
        });
    }
    let manifest = PluginManifest::load(manifest_path)?;
    let p = PluginPackage {
        package: manifest.plugin.name.clone(),
        lib: String::new(),
        manifest,
        manifest_path: manifest_path.to_path_buf(),
    };
    componentize_file(&p, module_path, out_dir, options)
}

fn componentize(
    p: &PluginPackage,
    release: &Path,
    out_dir: &Path,
    options: &BuildOptions,
) -> Result<BuiltPlugin, ToolchainError> {
    componentize_file(
        p,
        &release.join(format!("{}.wasm", p.lib)),
        out_dir,
        options,
    )
}

fn componentize_file(
    p: &PluginPackage,
    module_path: &Path,
    out_dir: &Path,
    options: &BuildOptions,
) -> Result<BuiltPlugin, ToolchainError> {
    let module = std::fs::read(module_path).map_err(|_| ToolchainError::MissingModule {
        package: p.package.clone(),
        path: module_path.to_path_buf(),
    })?;
    let component = encode(&module).map_err(|message| ToolchainError::Componentize {
        package: p.package.clone(),
        message,
    })?;

    let dest = out_dir.join(&p.package);
    let wasm_path = dest.join(format!("{}.wasm", p.manifest.plugin.name));
    let info = inspect(&component, &wasm_path)?;
    if options.check_contract {
        check_contract(p, &info)?;
    }

    std::fs::create_dir_all(&dest).map_err(|source| ToolchainError::Io {
        what: "cannot create",
        path: dest.clone(),
        source,
    })?;
    std::fs::write(&wasm_path, &component).map_err(|source| ToolchainError::Io {
        what: "cannot write",
        path: wasm_path.clone(),
        source,
    })?;
    let manifest_path = dest.join("plugin.toml");
    std::fs::copy(&p.manifest_path, &manifest_path).map_err(|source| ToolchainError::Io {
        what: "cannot write",
        path: manifest_path.clone(),
        source,
    })?;

    Ok(BuiltPlugin {
        name: p.manifest.plugin.name.clone(),
        version: p.manifest.plugin.version.clone(),
        world: p.manifest.plugin.world.clone(),
        package: p.package.clone(),
        wasm_path,
        manifest_path,
        size: component.len() as u64,
        info,
    })
}

/// Wraps a core module carrying wit-bindgen's type sections into a validated
/// component.
fn encode(module: &[u8]) -> Result<Vec<u8>, String> {
    let mut encoder = ComponentEncoder::default();
    encoder.module(module).map_err(|e| format!("{e:#}"))?;
    encoder.validate(true);
    encoder.encode().map_err(|e| format!("{e:#}"))
}

/// The component exports exactly `divoc:plugin/<interface of world>@<wit version>`.
fn check_contract(p: &PluginPackage, info: &crate::ComponentInfo) -> Result<(), ToolchainError> {
    let mismatch = |message: String| ToolchainError::ContractMismatch {
        package: p.package.clone(),
        message,
    };
    let world: World = p.manifest.plugin.world.parse().map_err(mismatch)?;
    let (package, version) = p
        .manifest
        .plugin
        .wit
        .split_once('@')
        .unwrap_or((p.manifest.plugin.wit.as_str(), ""));
    let expected = format!("{package}/{}@{version}", world.export_interface());
    if info.exports != [expected.clone()] {
        return Err(mismatch(format!(
            "plugin.toml says world `{world}` ({}), so the component must export only `{expected}`, but it exports {:?}",
            p.manifest.plugin.wit, info.exports
        )));
    }
    Ok(())
}

/// Cargo's stdout (normally empty) joins its stderr, so callers' stdout stays clean.
fn stdout_to_stderr() -> Stdio {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            return Stdio::from(fd);
        }
    }
    Stdio::inherit()
}
