//! `divoc-fuzz-seeds <dir>`: writes each target's seed corpus into
//! `<dir>/<target>/seed-<n>` (what `scripts/fuzz.sh` starts libFuzzer on).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: divoc-fuzz-seeds <dir>");
        return ExitCode::from(2);
    };
    for (target, _) in divoc_fuzz::TARGETS {
        let out = dir.join(target);
        if let Err(e) = std::fs::create_dir_all(&out) {
            eprintln!("cannot create {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        let seeds = divoc_fuzz::seeds::seeds(target);
        for (i, seed) in seeds.iter().enumerate() {
            let path = out.join(format!("seed-{i:03}"));
            if let Err(e) = std::fs::write(&path, seed) {
                eprintln!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        println!("{target}: {} seeds", seeds.len());
    }
    ExitCode::SUCCESS
}
