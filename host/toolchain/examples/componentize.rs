//! Turns a core module built by another compiler (the C guests in
//! `plugins/c/`) into a plugin component, exactly as `divoc plugin build`
//! does for Rust crates, and prints what the component imports and exports.
//!
//! ```text
//! cargo run -p divoc-toolchain --example componentize -- [--only-divoc-imports] CORE.wasm PLUGIN.toml OUT_DIR
//! ```
//! writes `OUT_DIR/<name>/<name>.wasm` and `OUT_DIR/<name>/plugin.toml`.
//! `--only-divoc-imports` fails when the component imports anything outside
//! the `divoc:plugin` package (WASI, say: the host does not provide it).

use std::path::Path;
use std::process::ExitCode;

use divoc_toolchain::{componentize_module, BuildOptions};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let only_divoc = args.iter().any(|a| a == "--only-divoc-imports");
    args.retain(|a| a != "--only-divoc-imports");
    let [module, manifest, out] = args.as_slice() else {
        eprintln!("usage: componentize [--only-divoc-imports] CORE.wasm PLUGIN.toml OUT_DIR");
        return ExitCode::from(2);
    };
    let built = match componentize_module(
        Path::new(module),
        Path::new(manifest),
        Path::new(out),
        &BuildOptions::default(),
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "built {} {} ({}) {} bytes -> {}",
        built.name,
        built.version,
        built.world,
        built.size,
        built.wasm_path.display()
    );
    for export in &built.info.exports {
        println!("    export {export}");
    }
    for import in &built.info.imports {
        println!("    import {import}");
    }
    // `divoc:plugin@1.2.0` -> imports named `divoc:plugin/<interface>@1.2.0`.
    let package = divoc_toolchain::WIT_PACKAGE
        .split('@')
        .next()
        .unwrap_or_default();
    let prefix = format!("{package}/");
    let foreign: Vec<&String> = built
        .info
        .imports
        .iter()
        .filter(|i| !i.starts_with(&prefix))
        .collect();
    if only_divoc && !foreign.is_empty() {
        eprintln!(
            "error: {} imports {foreign:?}, outside divoc:plugin; the host provides nothing else",
            built.wasm_path.display()
        );
        // Not left where a loader would find it.
        let _ = std::fs::remove_file(&built.wasm_path);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
