//! Finding a compiler for `wasm32-unknown-unknown`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ToolchainError;

/// The guest target.
pub(crate) const TARGET: &str = "wasm32-unknown-unknown";
/// Debian's `rustc-web` (with its own LLVM) from the package of that name.
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_RUSTDOC: &str = "/usr/bin/rustdoc";
/// The linker Debian ships for wasm (`lld-22`); Debian has no `rust-lld`.
const DEBIAN_LINKER: &str = "wasm-ld-22";

/// How guests are compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolchainKind {
    /// A rustup toolchain with the `wasm32-unknown-unknown` std installed.
    Rustup {
        /// That toolchain's sysroot.
        sysroot: PathBuf,
    },
    /// Debian's `rustc-web` rebuilding std from `rust-web-src`
    /// (`RUSTC_BOOTSTRAP=1`, `-Zbuild-std=std,panic_abort`), linked by `wasm-ld-22`.
    DebianBuildStd {
        /// The compiler (`/usr/bin/rustc`).
        rustc: PathBuf,
        /// The matching rustdoc.
        rustdoc: PathBuf,
        /// The wasm linker.
        linker: PathBuf,
    },
}

/// A detected way to build guests, plus where they are built.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// How guests are compiled.
    pub kind: ToolchainKind,
    /// The `cargo` program to run (`$CARGO` when set, else `cargo`).
    pub cargo: PathBuf,
    /// The shared guest target dir.
    pub target_dir: PathBuf,
}

impl Toolchain {
    /// Prefers an installed rustup `wasm32-unknown-unknown` std, else Debian's
    /// recipe; fails with a message naming `scripts/install-guest-toolchain.sh`.
    pub fn detect() -> Result<Toolchain, ToolchainError> {
        let cargo = std::env::var_os("CARGO")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("cargo"));
        let target_dir = guest_target_dir();
        let mut reasons = Vec::new();

        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
        match sysroot(Path::new(&rustc)) {
            Some(sysroot)
                if sysroot
                    .join("lib/rustlib")
                    .join(TARGET)
                    .join("lib")
                    .is_dir() =>
            {
                return Ok(Toolchain {
                    kind: ToolchainKind::Rustup { sysroot },
                    cargo,
                    target_dir,
                });
            }
            Some(sysroot) => reasons.push(format!(
                "`{}` (sysroot {}) has no {TARGET} std",
                rustc.to_string_lossy(),
                sysroot.display()
            )),
            None => reasons.push(format!("`{}` does not run", rustc.to_string_lossy())),
        }

        let debian = Path::new(DEBIAN_RUSTC);
        match sysroot(debian) {
            None => reasons.push(format!("{DEBIAN_RUSTC} (package rustc-web) is missing")),
            Some(sysroot) => {
                let std_src = sysroot.join("lib/rustlib/src/rust/library/std");
                let linker = find_in_path(DEBIAN_LINKER);
                if !std_src.is_dir() {
                    reasons.push(format!(
                        "{} (package rust-web-src) is missing",
                        std_src.display()
                    ));
                } else if let Some(linker) = linker {
                    return Ok(Toolchain {
                        kind: ToolchainKind::DebianBuildStd {
                            rustc: debian.to_path_buf(),
                            rustdoc: PathBuf::from(DEBIAN_RUSTDOC),
                            linker,
                        },
                        cargo,
                        target_dir,
                    });
                } else {
                    reasons.push(format!("{DEBIAN_LINKER} (package lld-22) is not in PATH"));
                }
            }
        }
        Err(ToolchainError::NotFound {
            reason: reasons.join("; "),
        })
    }

    /// Uses `dir` as the shared guest target dir instead of the default.
    pub fn with_target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.target_dir = dir.into();
        self
    }

    /// A `cargo` command for the guest target with this toolchain's settings
    /// in its environment and arguments (no config file involved).
    pub(crate) fn cargo_command(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.arg(subcommand);
        // The caller's target dir is for the host; guests have their own.
        cmd.env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET");
        // Variables cargo sets for the package running this code (a test or
        // `cargo run`) must not leak into the guest build's fingerprints.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
                "CARGO_TARGET_TMPDIR",
            ]
            .iter()
            .any(|prefix| k.starts_with(prefix))
                || k == "OUT_DIR"
            {
                cmd.env_remove(&key);
            }
        }
        if let ToolchainKind::DebianBuildStd {
            rustc,
            rustdoc,
            linker,
        } = &self.kind
        {
            cmd.env("RUSTC_BOOTSTRAP", "1")
                .env("RUSTC", rustc)
                .env("RUSTDOC", rustdoc)
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker)
                // A rustup proxy in PATH must not swap the compiler back.
                .env_remove("RUSTC_WRAPPER")
                .env_remove("RUSTC_WORKSPACE_WRAPPER");
        }
        cmd
    }

    /// Extra `cargo build` arguments for the guest target.
    pub(crate) fn build_args(&self) -> Vec<String> {
        let mut args = vec!["--target".to_string(), TARGET.to_string()];
        if matches!(self.kind, ToolchainKind::DebianBuildStd { .. }) {
            args.push("-Zbuild-std=std,panic_abort".to_string());
        }
        args
    }
}

/// `<repo>/target/guest`, or `$DIVOC_GUEST_TARGET_DIR`.
fn guest_target_dir() -> PathBuf {
    match std::env::var_os("DIVOC_GUEST_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => crate::repo_root().join("target").join("guest"),
    }
}

fn sysroot(rustc: &Path) -> Option<PathBuf> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(s.trim()))
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
