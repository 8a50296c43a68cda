//! `divoc plugin new|build|check|reload` and `divoc conformance`: the plugin
//! author's loop.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use divoc_runtime::{Grant, HostServices, Manifest, Runtime, RuntimeSettings};
use divoc_toolchain::{BuildOptions, Toolchain};

use crate::config::{Config, Overrides};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin crate that builds and passes conformance.
    New {
        name: String,
        #[arg(long)]
        world: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a plugin crate (or a workspace of them) into components.
    Build {
        dir: PathBuf,
        /// Output directory (default: DIR/target/divoc); each plugin gets
        /// OUT/<crate>/<name>.wasm + plugin.toml.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the world/version check (for deliberately broken test fixtures).
        #[arg(long, hide = true)]
        no_contract_check: bool,
    },
    /// Validate a component against the worlds and its manifest.
    Check {
        /// A plugin directory, or a `.wasm` with `plugin.toml` beside it.
        path: PathBuf,
    },
    /// Ask a running server to reload its plugins directory.
    Reload {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Admin token (default: $DIVOC_ADMIN_TOKEN, then <data-dir>/admin-token).
        #[arg(long)]
        token: Option<String>,
    },
}

pub fn run(command: PluginCommand, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::New { name, world, dir } => {
            let dest = dir.unwrap_or_else(|| PathBuf::from(&name));
            divoc_toolchain::scaffold(&name, &world, &dest)?;
            println!("created {} ({world})", dest.display());
            println!("next: divoc plugin build {}", dest.display());
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Build {
            dir,
            out,
            no_contract_check,
        } => {
            let toolchain = Toolchain::detect()?;
            let out = out.unwrap_or_else(|| dir.join("target").join("divoc"));
            let options = BuildOptions {
                check_contract: !no_contract_check,
            };
            let built = toolchain.build_with(&dir, &out, &options)?;
            for b in &built {
                println!(
                    "built {} {} ({}) -> {} ({} bytes)",
                    b.name,
                    b.version,
                    b.world,
                    b.wasm_path.display(),
                    b.size
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Check { path } => {
            let (dir, manifest, component) = read_plugin(&path)?;
            let runtime = isolated_runtime(&manifest)?;
            let info = runtime
                .load_component(&dir, manifest.as_bytes(), &component)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "ok: {} {} implements {} ({}); capabilities: {}",
                info.name,
                info.version,
                info.world,
                info.wit,
                serde_json::to_string(&info.capabilities)?
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Reload { url, token } => {
            let token = match token.or_else(|| std::env::var("DIVOC_ADMIN_TOKEN").ok()) {
                Some(t) => t,
                None => {
                    let config = Config::load(config_file, &Overrides::default())?;
                    let path = crate::serve::admin_token_path(&config.storage.data_dir);
                    std::fs::read_to_string(&path)
                        .with_context(|| {
                            format!("no --token given and cannot read {}", path.display())
                        })?
                        .trim()
                        .to_string()
                }
            };
            let endpoint = format!("{}/v1/plugins/reload", url.trim_end_matches('/'));
            let response = ureq::post(&endpoint)
                .set("Authorization", &format!("Bearer {token}"))
                .call();
            match response {
                Ok(r) => {
                    println!("{}", r.into_string()?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(ureq::Error::Status(code, r)) => {
                    eprintln!("{code}: {}", r.into_string().unwrap_or_default());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(anyhow::anyhow!("cannot reach {endpoint}: {e}")),
            }
        }
    }
}

/// Reads a plugin given as a directory or as its `.wasm` file.
fn read_plugin(path: &Path) -> anyhow::Result<(PathBuf, String, Vec<u8>)> {
    let (dir, wasm) = if path.is_dir() {
        let manifest = Manifest::from_file(&path.join("plugin.toml"))?;
        (
            path.to_path_buf(),
            path.join(format!("{}.wasm", manifest.plugin.name)),
        )
    } else {
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        (dir, path.to_path_buf())
    };
    let manifest_path = dir.join("plugin.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let component =
        std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    Ok((dir, manifest, component))
}

/// A runtime with in-memory services that grants whatever the manifest asks
/// for: `check` is about the component and its contract, not about one
/// operator's grants.
fn isolated_runtime(manifest_text: &str) -> anyhow::Result<Runtime> {
    let mut settings = RuntimeSettings::default();
    if let Ok(manifest) = Manifest::parse(manifest_text) {
        settings
            .grants
            .insert(manifest.plugin.name.clone(), Grant::requested_by(&manifest));
    }
    settings.engine.pool_instances = 8;
    Runtime::new(settings, HostServices::isolated())
}

/// Runs the conformance suite; exit code 1 when any case fails.
pub fn conformance(plugin: &Path, junit: Option<&Path>) -> anyhow::Result<ExitCode> {
    let report = divoc_conformance::run(plugin, &divoc_conformance::Options::default())?;
    report.print_human(&mut std::io::stdout().lock())?;
    if let Some(path) = junit {
        report.write_junit(path)?;
    }
    Ok(if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
