//! Builds a guest crate or workspace into components and prints what each
//! component imports and exports.
//!
//! ```text
//! cargo run -p divoc-toolchain --example build -- plugins target/plugins
//! cargo run -p divoc-toolchain --example build -- --fixtures conformance/fixtures target/fixtures
//! ```
//! `--fixtures` skips the world/version check, for deliberately broken fixtures.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use divoc_toolchain::{BuildOptions, Toolchain};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let fixtures = args.iter().any(|a| a == "--fixtures");
    args.retain(|a| a != "--fixtures");
    let [dir, out] = args.as_slice() else {
        eprintln!("usage: build [--fixtures] DIR OUT_DIR");
        return ExitCode::from(2);
    };
    let toolchain = match Toolchain::detect() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "toolchain: {:?}; guest target dir {}",
        toolchain.kind,
        toolchain.target_dir.display()
    );
    let started = Instant::now();
    let options = BuildOptions {
        check_contract: !fixtures,
    };
    let built = match toolchain.build_with(&PathBuf::from(dir), &PathBuf::from(out), &options) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "built {} components in {:.1} s",
        built.len(),
        started.elapsed().as_secs_f64()
    );
    for p in &built {
        println!(
            "{} {} ({}) {} bytes -> {}",
            p.name,
            p.version,
            p.world,
            p.size,
            p.wasm_path.display()
        );
        println!("    exports: {}", p.info.exports.join(", "));
        println!("    imports: {}", p.info.imports.join(", "));
    }
    ExitCode::SUCCESS
}
