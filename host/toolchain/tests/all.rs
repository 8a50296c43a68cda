//! Integration tests: these run the real guest toolchain. They are skipped,
//! with the reason printed, only when `Toolchain::detect()` finds none.

use std::path::{Path, PathBuf};

use divoc_toolchain::{
    componentize_module, scaffold, BuildOptions, Toolchain, ToolchainError, World,
};

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
    // Every example crate with a plugin.toml, in package order (the order
    // the build reports them in), with the world its manifest names.
    let mut expected: Vec<(String, World)> = Vec::new();
    for entry in std::fs::read_dir(repo().join("plugins")).unwrap() {
        let entry = entry.unwrap();
        let Ok(text) = std::fs::read_to_string(entry.path().join("plugin.toml")) else {
            continue;
        };
        let manifest: toml::Value = toml::from_str(&text).unwrap();
        let name = manifest["plugin"]["name"].as_str().unwrap().to_owned();
        let world: World = manifest["plugin"]["world"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        expected.push((name, world));
    }
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(expected.len() >= 8, "{expected:?}");
    assert_eq!(built.len(), expected.len());
    for (p, (name, world)) in built.iter().zip(expected) {
        assert_eq!(p.name, name);
        let name = name.as_str();
        assert_eq!(p.world, world.name());
        assert_eq!(p.wasm_path, out.join(name).join(format!("{name}.wasm")));
        assert!(p.manifest_path.is_file());
        assert_eq!(
            p.info.exports,
            vec![format!("divoc:plugin/{}@1.2.0", world.export_interface())]
        );
        assert!(
            p.info
                .imports
                .iter()
                .all(|i| i.starts_with("divoc:plugin/") && i.ends_with("@1.2.0")),
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
            "divoc:plugin/types@1.2.0".to_string(),
            "divoc:plugin/config@1.2.0".to_string()
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
    assert_eq!(built.len(), 14);
    assert_eq!(
        by_pkg("policy-paused").map(|i| i.exports),
        Some(vec!["divoc:plugin/eligibility@1.2.0".to_string()])
    );
    assert_eq!(
        by_pkg("wrong-world").map(|i| i.exports),
        Some(vec!["divoc:plugin/payment@1.2.0".to_string()])
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
            vec![format!("divoc:plugin/{}@1.2.0", world.export_interface())]
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

/// A distribution-channel core module as clang + `wit-bindgen c` make one
/// (the C guests in plugins/c): the two exports with their canonical-ABI
/// signatures, `cabi_realloc`, a memory, and the component-type section.
/// The bodies only trap: it is componentized, never run.
fn foreign_core_module() -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction,
        MemorySection, MemoryType, Module, TypeSection, ValType,
    };
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]); // info: () -> ret area
    types.ty().function([ValType::I32; 14], [ValType::I32]); // deliver: 7 flat (ptr, len)
    types.ty().function([ValType::I32; 4], [ValType::I32]); // cabi_realloc
    let mut functions = FunctionSection::new();
    let mut code = CodeSection::new();
    for ty in 0..3 {
        functions.function(ty);
        let mut body = Function::new([]);
        body.instruction(&Instruction::Unreachable);
        body.instruction(&Instruction::End);
        code.function(&body);
    }
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut exports = ExportSection::new();
    exports
        .export("divoc:plugin/distribution@1.2.0#info", ExportKind::Func, 0)
        .export(
            "divoc:plugin/distribution@1.2.0#deliver",
            ExportKind::Func,
            1,
        )
        .export("cabi_realloc", ExportKind::Func, 2)
        .export("memory", ExportKind::Memory, 0);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&memories)
        .section(&exports)
        .section(&code);
    let mut bytes = module.finish();

    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(repo().join("wit")).expect("wit/ parses");
    let world = resolve
        .select_world(&[package], Some("distribution-channel"))
        .expect("the world exists");
    wit_component::embed_component_metadata(
        &mut bytes,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .expect("metadata embeds");
    bytes
}

/// A core module built by another compiler becomes a component like a
/// crate's does, in the layout `divoc plugin build` writes; the manifest's
/// world is checked.
#[test]
fn componentizes_a_core_module_built_elsewhere() -> Result<(), ToolchainError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, foreign_core_module()).expect("write");
    let manifest = |world: &str| {
        let path = dir.path().join(format!("{world}.toml"));
        std::fs::write(
            &path,
            format!(
                "[plugin]\nname = \"foreign-channel\"\nversion = \"0.2.0\"\nworld = \"{world}\"\nwit = \"divoc:plugin@1.2.0\"\n"
            ),
        )
        .expect("write");
        path
    };
    let out = dir.path().join("out");

    let built = componentize_module(
        &core,
        &manifest("distribution-channel"),
        &out,
        &BuildOptions::default(),
    )?;
    assert_eq!(built.name, "foreign-channel");
    assert_eq!(built.version, "0.2.0");
    assert_eq!(built.package, "foreign-channel");
    assert_eq!(
        built.wasm_path,
        out.join("foreign-channel/foreign-channel.wasm")
    );
    assert_eq!(built.manifest_path, out.join("foreign-channel/plugin.toml"));
    assert!(built.manifest_path.is_file());
    assert_eq!(
        built.info.exports,
        vec!["divoc:plugin/distribution@1.2.0".to_string()]
    );
    assert!(
        built
            .info
            .imports
            .iter()
            .all(|i| i.starts_with("divoc:plugin/")),
        "{:?}",
        built.info
    );

    let wrong = componentize_module(
        &core,
        &manifest("identity-provider"),
        &out,
        &BuildOptions::default(),
    );
    assert!(
        matches!(wrong, Err(ToolchainError::ContractMismatch { .. })),
        "{wrong:?}"
    );
    let missing = componentize_module(
        &dir.path().join("nothing.wasm"),
        &manifest("distribution-channel"),
        &out,
        &BuildOptions::default(),
    );
    assert!(
        matches!(missing, Err(ToolchainError::Io { .. })),
        "{missing:?}"
    );
    Ok(())
}
