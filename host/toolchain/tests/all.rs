//! Integration tests: these run the real guest toolchain. They are skipped,
//! with the reason printed, only when `Toolchain::detect()` finds none.

use std::path::{Path, PathBuf};

use divoc_toolchain::{scaffold, BuildOptions, Toolchain, ToolchainError, World};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn toolchain() -> Option<Toolchain> {
    match Toolchain::detect() {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("SKIPPED: no guest toolchain: {e}");
            None
        }
    }
}

#[test]
fn detect_finds_a_toolchain_and_a_guest_target_dir() {
    let Some(t) = toolchain() else { return };
    eprintln!(
        "detected {:?}, target dir {}",
        t.kind,
        t.target_dir.display()
    );
    if std::env::var_os("DIVOC_GUEST_TARGET_DIR").is_none() {
        assert!(t.target_dir.ends_with("target/guest"));
    }
}

#[test]
fn builds_every_example_plugin_into_a_component_of_its_world() -> Result<(), ToolchainError> {
    let Some(t) = toolchain() else { return Ok(()) };
    let out = repo().join("target/plugins");
    let built = t.build(&repo().join("plugins"), &out)?;
    let expected = [
        ("events-counter", World::EventSubscriber),
        ("format-jws", World::CertificateFormat),
        ("id-verhoeff", World::IdentityProvider),
        ("notify-log", World::DistributionChannel),
        ("notify-webhook", World::DistributionChannel),
        ("pay-voucher", World::PaymentProvider),
        ("policy-age-interval", World::RolloutPolicy),
    ];
    assert_eq!(built.len(), expected.len());
    for (p, (name, world)) in built.iter().zip(expected) {
        assert_eq!(p.name, name);
        assert_eq!(p.world, world.name());
        assert_eq!(p.wasm_path, out.join(name).join(format!("{name}.wasm")));
        assert!(p.manifest_path.is_file());
        assert_eq!(
            p.info.exports,
            vec![format!("divoc:plugin/{}@1.1.0", world.export_interface())]
        );
        assert!(
            p.info
                .imports
                .iter()
                .all(|i| i.starts_with("divoc:plugin/") && i.ends_with("@1.1.0")),
            "{:?}",
            p.info
        );
    }
    // Imports only what is used: the rollout policy only reads its config.
    let policy = built
        .iter()
        .find(|p| p.name == "policy-age-interval")
        .map(|p| &p.info.imports);
    assert_eq!(
        policy,
        Some(&vec![
            "divoc:plugin/types@1.1.0".to_string(),
            "divoc:plugin/config@1.1.0".to_string()
        ])
    );
    Ok(())
}

#[test]
fn builds_the_fixtures_and_the_contract_check_catches_wrong_world() -> Result<(), ToolchainError> {
    let Some(t) = toolchain() else { return Ok(()) };
    let dir = repo().join("conformance/fixtures");
    let out = repo().join("target/fixtures");
    let built = t.build_with(
        &dir,
        &out,
        &BuildOptions {
            check_contract: false,
        },
    )?;
    let by_pkg = |pkg: &str| {
        built
            .iter()
            .find(|p| p.package == pkg)
            .map(|p| p.info.clone())
    };
    assert_eq!(built.len(), 13);
    assert_eq!(
        by_pkg("policy-paused").map(|i| i.exports),
        Some(vec!["divoc:plugin/eligibility@1.1.0".to_string()])
    );
    assert_eq!(
        by_pkg("wrong-world").map(|i| i.exports),
        Some(vec!["divoc:plugin/payment@1.1.0".to_string()])
    );
    assert_eq!(
        by_pkg("compat-v1-0").map(|i| i.exports),
        Some(vec!["divoc:plugin/identity@1.0.0".to_string()])
    );
    assert_eq!(
        by_pkg("major-v2").map(|i| i.exports),
        Some(vec!["divoc:plugin/identity@2.0.0".to_string()])
    );
    for pkg in ["swap-v1", "swap-v2"] {
        let p = built
            .iter()
            .find(|p| p.package == pkg)
            .map(|p| p.wasm_path.clone());
        assert_eq!(p, Some(out.join(pkg).join("swap.wasm")));
    }
    // With the check on, the same build refuses the wrong-world fixture.
    match t.build(&dir, &std::env::temp_dir().join("divoc-fixtures-checked")) {
        Err(ToolchainError::ContractMismatch { package, .. }) => assert_eq!(package, "wrong-world"),
        other => panic!("expected a contract mismatch, got {other:?}"),
    }
    Ok(())
}

#[test]
fn scaffolds_one_plugin_per_world_that_builds_right_away() -> Result<(), ToolchainError> {
    let Some(t) = toolchain() else { return Ok(()) };
    let tmp = tempfile::tempdir().map_err(|source| ToolchainError::Io {
        what: "cannot create",
        path: std::env::temp_dir(),
        source,
    })?;
    for world in World::ALL {
        let name = format!("my-{}", world.name());
        let dir = tmp.path().join(&name);
        scaffold(&name, world.name(), &dir)?;
        let built = t.build(&dir, &tmp.path().join("out"))?;
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].name, name);
        assert_eq!(
            built[0].info.exports,
            vec![format!("divoc:plugin/{}@1.1.0", world.export_interface())]
        );
        assert!(built[0].wasm_path.is_file());
    }
    Ok(())
}

#[test]
fn scaffold_refuses_bad_arguments() {
    let tmp = std::env::temp_dir().join("divoc-scaffold-bad");
    assert!(matches!(
        scaffold("Bad Name", "identity-provider", &tmp),
        Err(ToolchainError::Scaffold(_))
    ));
    assert!(matches!(
        scaffold("ok-name", "no-such-world", &tmp),
        Err(ToolchainError::Scaffold(_))
    ));
}
