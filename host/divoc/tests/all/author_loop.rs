//! The plugin author's loop, through the binary: `plugin new` → `plugin build`
//! → `conformance` passes on the scaffold; conformance fails (exit code 1) on
//! a deliberately broken plugin; `plugin check` refuses an incompatible one.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn divoc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_divoc"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures");
    assert!(
        dir.join("broken-identity/plugin.toml").is_file(),
        "fixtures are not built in {}; run scripts/setup.sh",
        dir.display()
    );
    dir
}

#[test]
fn scaffold_build_conformance() {
    let tmp = tempfile::tempdir().unwrap();
    let crate_dir = tmp.path().join("demo");
    let crate_str = crate_dir.to_str().unwrap();
    let o = divoc(&[
        "plugin",
        "new",
        "demo",
        "--world",
        "identity-provider",
        "--dir",
        crate_str,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let o = divoc(&["plugin", "build", crate_str]);
    assert!(o.status.success(), "{}", text(&o));
    let wasm = crate_dir.join("target/divoc/demo/demo.wasm");
    assert!(wasm.is_file(), "{}", text(&o));

    let o = divoc(&["plugin", "check", wasm.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("implements identity-provider"));

    let junit = tmp.path().join("junit.xml");
    let o = divoc(&[
        "conformance",
        wasm.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<testsuite"));
}

#[test]
fn conformance_fails_on_a_broken_plugin() {
    let broken = fixtures().join("broken-identity/broken-identity.wasm");
    let o = divoc(&["conformance", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn check_refuses_an_incompatible_plugin() {
    let o = divoc(&[
        "plugin",
        "check",
        fixtures().join("major-v2").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("2.0.0"), "{}", text(&o));
}
