//! Runs the suite against the built example plugins (all must pass) and the
//! broken fixture (must fail exactly where expected).
//!
//! The components are built outside cargo's test run (they need the guest
//! toolchain); a missing one fails the test with the command that builds it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use divoc_conformance::{run, Options, Report};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `target/<dir>/<crate>/<name>.wasm`, or a failure saying how to build it.
fn component(dir: &str, krate: &str, name: &str) -> PathBuf {
    let path = repo()
        .join("target")
        .join(dir)
        .join(krate)
        .join(format!("{name}.wasm"));
    if !path.is_file() {
        let build = match dir {
            "plugins" => "cargo run -p divoc-toolchain --example build -- plugins target/plugins",
            "c-plugins" => "bash plugins/c/notify-webhook-c/build.sh (after scripts/install-c-guest.sh)",
            _ => {
                "cargo run -p divoc-toolchain --example build -- --fixtures conformance/fixtures target/fixtures"
            }
        };
        panic!(
            "{} is missing; build it from the repository root with:\n    {build}",
            path.display()
        );
    }
    path
}

fn run_ok(path: &Path) -> Report {
    let report = run(path, &Options::default())
        .unwrap_or_else(|e| panic!("{}: suite did not run: {e}", path.display()));
    let mut out = Vec::new();
    report.print_human(&mut out).unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out));
    report
}

fn assert_conformant(krate: &str, world: &str) {
    assert_conformant_in("plugins", krate, world);
}

/// The suite on `target/<dir>/<krate>/<krate>.wasm`: every case passes.
fn assert_conformant_in(dir: &str, krate: &str, world: &str) {
    let report = run_ok(&component(dir, krate, krate));
    assert_eq!(report.plugin, krate);
    assert_eq!(report.world, world);
    assert!(!report.synthesized_manifest);
    assert!(
        report.cases.iter().any(|c| c.name.starts_with(world)),
        "no data cases ran"
    );
    assert!(
        report
            .cases
            .iter()
            .any(|c| c.name.starts_with("generic/deterministic/")),
        "no determinism cases ran"
    );
    let failures: Vec<String> = report
        .failures()
        .iter()
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    assert!(report.success(), "{krate} failed:\n{}", failures.join("\n"));
}

#[test]
fn id_verhoeff_conforms() {
    assert_conformant("id-verhoeff", "identity-provider");
}

#[test]
fn pay_voucher_conforms() {
    assert_conformant("pay-voucher", "payment-provider");
}

#[test]
fn format_jws_conforms() {
    assert_conformant("format-jws", "certificate-format");
}

#[test]
fn notify_webhook_conforms() {
    assert_conformant("notify-webhook", "distribution-channel");
}

/// The same adapter written in C (plugins/c/notify-webhook-c, built by
/// scripts/setup.sh into target/c-plugins), with the same configuration as
/// the Rust one: none beyond its manifest's grants.
#[test]
fn notify_webhook_c_conforms() {
    assert_conformant_in("c-plugins", "notify-webhook-c", "distribution-channel");
}

#[test]
fn notify_sms_conforms() {
    assert_conformant("notify-sms", "distribution-channel");
}

#[test]
fn notify_log_conforms() {
    assert_conformant("notify-log", "distribution-channel");
}

#[test]
fn policy_age_interval_conforms() {
    assert_conformant("policy-age-interval", "rollout-policy");
}

#[test]
fn events_counter_conforms() {
    assert_conformant("events-counter", "event-subscriber");
}

/// The country adapters: every one passes its world's whole suite.
#[test]
fn country_adapters_conform() {
    for (krate, world) in [
        ("format-eu-dcc", "certificate-format"),
        ("format-shc", "certificate-format"),
        ("format-who-ddcc", "certificate-format"),
        ("format-who-ddcc-fhir", "certificate-format"),
        ("id-national", "identity-provider"),
        ("id-passport", "identity-provider"),
        ("pay-government", "payment-provider"),
        ("pay-gateway", "payment-provider"),
        ("notify-email", "distribution-channel"),
        ("policy-priority-groups", "rollout-policy"),
        ("events-dhis2", "event-subscriber"),
    ] {
        assert_conformant(krate, world);
    }
}

#[test]
fn broken_identity_fails_where_expected() {
    let report = run_ok(&component("fixtures", "broken-identity", "broken-identity"));
    assert!(!report.success());
    let mut failed: Vec<&str> = report.failures().iter().map(|c| c.name.as_str()).collect();
    failed.sort_unstable();
    assert_eq!(
        failed,
        vec![
            // Traps on values longer than 256 bytes (a trap, not a limit:
            // `generic/limits` passes).
            "generic/robust/huge-value",
            // Random bytes in `normalized-id`.
            "generic/deterministic/verify",
            // Verifies a value that is only whitespace.
            "generic/robust/blank-unicode-value",
            "identity-provider/verify-blank-value",
            "identity-provider/verify-empty-value",
            "identity-provider/verify-long-value",
            // Verifies a type it never declared.
            "identity-provider/verify-undeclared-type",
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    let trap = report
        .cases
        .iter()
        .find(|c| c.name == "identity-provider/verify-long-value")
        .unwrap();
    assert!(trap.message.contains("trap"), "{}", trap.message);
}

#[test]
fn junit_report_lists_every_case() {
    let report = run_ok(&component("fixtures", "broken-identity", "broken-identity"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conformance.xml");
    report.write_junit(&path).unwrap();
    let xml = std::fs::read_to_string(&path).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert_eq!(xml.matches("<testcase ").count(), report.cases.len());
    assert_eq!(xml.matches("<failure ").count(), report.failed());
    assert!(xml.contains(&format!("failures=\"{}\"", report.failed())));
    assert!(xml.contains("name=\"identity-provider/verify-empty-value\""));
    // Balanced: every opened case is closed, one way or the other.
    let open = xml.matches("<testcase ").count();
    let closed = xml.matches("</testcase>").count() + xml.matches(" />").count();
    assert_eq!(open, closed, "{xml}");
}

#[test]
fn world_is_detected_without_a_manifest() {
    let built = component("plugins", "policy-age-interval", "policy-age-interval");
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("Policy_Age.wasm");
    std::fs::copy(&built, &lone).unwrap();
    let report = run_ok(&lone);
    assert!(report.synthesized_manifest);
    assert_eq!(report.world, "rollout-policy");
    assert_eq!(report.plugin, "policy-age");
    assert!(report.success(), "{:?}", report.failures());
}

#[test]
fn unusable_inputs_are_errors_not_reports() {
    let missing = run(Path::new("/nonexistent/plugin.wasm"), &Options::default()).unwrap_err();
    assert!(matches!(
        missing,
        divoc_conformance::ConformanceError::ReadComponent { .. }
    ));
    let built = component("plugins", "id-verhoeff", "id-verhoeff");
    let options = Options {
        manifest: Some(PathBuf::from("/nonexistent/plugin.toml")),
        ..Options::default()
    };
    let e = run(&built, &options).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/plugin.toml"), "{e}");
    // A plugin that does not load is reported with the runtime's reason.
    let wrong = component("fixtures", "wrong-world", "wrong-world");
    let e = run(&wrong, &Options::default()).unwrap_err();
    assert!(
        matches!(e, divoc_conformance::ConformanceError::Load(_)),
        "{e}"
    );
}
