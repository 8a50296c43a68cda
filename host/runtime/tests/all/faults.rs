//! Fault tracking and reload safety: repeated faults disable a plugin until
//! it is reloaded, and a broken candidate never replaces a working version.

use std::path::Path;

use divoc_runtime::types::identity::Verification;
use divoc_runtime::{IdentityProvider, PluginError, PluginState, Runtime};

use crate::support;

fn normalized(p: &IdentityProvider, value: &str) -> String {
    match p.verify(&support::claim("national-id", value)).unwrap() {
        Verification::Verified(v) => v.normalized_id,
        other => panic!("expected verified, got {other:?}"),
    }
}

fn status_of(runtime: &Runtime, name: &str) -> divoc_runtime::PluginStatus {
    runtime
        .status()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status row for {name}"))
}

#[test]
fn repeated_faults_disable_until_reload() {
    let _load = support::shared();
    let tmp = tempfile::tempdir().unwrap();
    support::copy_plugin(
        &support::fixture_dir("trap"),
        &tmp.path().join("trap"),
        |m| m,
    );
    let mut settings = support::settings();
    settings.limits.max_consecutive_faults = 3;
    let runtime = support::runtime(settings);
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.loaded, vec!["trap@0.1.0"]);

    let p = runtime.identity_provider("trap").unwrap();
    // Two faults, then a good call: the count of consecutive faults resets.
    for _ in 0..2 {
        let e = p.verify(&support::claim("national-id", "x")).unwrap_err();
        assert!(matches!(e, PluginError::Trap { .. }), "{e}");
    }
    assert_eq!(status_of(&runtime, "trap").consecutive_faults, 2);
    assert_eq!(p.identity_types().unwrap(), vec!["national-id"]);
    assert_eq!(status_of(&runtime, "trap").consecutive_faults, 0);

    for _ in 0..3 {
        let e = p.verify(&support::claim("national-id", "x")).unwrap_err();
        assert!(e.is_fault(), "{e}");
    }
    let row = status_of(&runtime, "trap");
    assert_eq!(row.state, PluginState::Disabled);
    assert_eq!(row.faults, 5);
    assert!(
        row.disabled_reason
            .as_deref()
            .unwrap()
            .contains("3 consecutive faults"),
        "{row:?}"
    );
    // Every call is refused now, including ones that would succeed, and
    // refusals are not faults.
    let e = p.identity_types().unwrap_err();
    assert!(matches!(e, PluginError::Disabled { .. }), "{e}");
    assert!(e.to_string().contains("`trap` 0.1.0"), "{e}");
    let fresh = runtime.identity_provider("trap").unwrap();
    assert!(matches!(
        fresh.identity_types(),
        Err(PluginError::Disabled { .. })
    ));
    assert_eq!(status_of(&runtime, "trap").faults, 5);

    // Reloading the same, unchanged directory re-enables it.
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.loaded, vec!["trap@0.1.0"], "{report:?}");
    let row = status_of(&runtime, "trap");
    assert_eq!(row.state, PluginState::Ready);
    assert_eq!((row.faults, row.consecutive_faults), (0, 0));
    let p = runtime.identity_provider("trap").unwrap();
    assert_eq!(p.identity_types().unwrap(), vec!["national-id"]);
    // And a second unchanged reload leaves a healthy plugin alone.
    assert_eq!(runtime.reload_dir(tmp.path()).unchanged, vec!["trap"]);
}

/// Replaces the component and manifest of `dir` the way an operator should:
/// each file written under a temporary name, then renamed into place.
pub fn install(dir: &Path, component: &[u8], manifest: &[u8], wasm_name: &str) {
    let tmp_wasm = dir.join(format!(".{wasm_name}.tmp"));
    std::fs::write(&tmp_wasm, component).unwrap();
    std::fs::rename(&tmp_wasm, dir.join(wasm_name)).unwrap();
    let tmp_manifest = dir.join(".plugin.toml.tmp");
    std::fs::write(&tmp_manifest, manifest).unwrap();
    std::fs::rename(&tmp_manifest, dir.join("plugin.toml")).unwrap();
}

#[test]
fn a_broken_candidate_never_replaces_the_serving_version() {
    let _load = support::shared();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("swap");
    support::copy_plugin(&support::fixture_dir("swap-v1"), &dir, |m| m);
    let runtime = support::runtime(support::settings());
    assert_eq!(runtime.reload_dir(tmp.path()).loaded, vec!["swap@1.0.0"]);
    let (v2_manifest, v2_component) = support::read_plugin(&support::fixture_dir("swap-v2"));

    // 1. Not a component at all.
    install(&dir, b"\0asm garbage", &v2_manifest, "swap.wasm");
    let report = runtime.reload_dir(tmp.path());
    assert!(report.loaded.is_empty(), "{report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    let p = runtime.identity_provider("swap").unwrap();
    assert_eq!(p.info().version, "1.0.0");
    assert_eq!(normalized(&p, "a"), "v1:a");
    let row = status_of(&runtime, "swap");
    assert_eq!(row.state, PluginState::Ready);
    assert_eq!(row.info.as_ref().unwrap().version, "1.0.0");
    let rejection = row.last_rejection.as_ref().unwrap();
    assert!(rejection.error.contains("`swap` 2.0.0"), "{rejection:?}");
    assert!(rejection.error.contains("cannot compile"), "{rejection:?}");
    assert_eq!(rejection.dir, dir);

    // 2. A real component of the wrong world under the same manifest.
    let (_, wrong_world) = support::read_plugin(&support::fixture_dir("wrong-world"));
    install(&dir, &wrong_world, &v2_manifest, "swap.wasm");
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(
        normalized(&runtime.identity_provider("swap").unwrap(), "b"),
        "v1:b"
    );
    let row = status_of(&runtime, "swap");
    assert!(row
        .last_rejection
        .unwrap()
        .error
        .contains("payment-provider"));

    // 3. The real v2: swapped in, and the rejection is cleared.
    install(&dir, &v2_component, &v2_manifest, "swap.wasm");
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.loaded, vec!["swap@2.0.0"], "{report:?}");
    let row = status_of(&runtime, "swap");
    assert!(row.last_rejection.is_none(), "{row:?}");
    assert_eq!(row.info.unwrap().version, "2.0.0");
    // A handle taken before the swap stays on the version it pinned.
    assert_eq!(normalized(&p, "c"), "v1:c");
    assert_eq!(
        normalized(&runtime.identity_provider("swap").unwrap(), "c"),
        "v2:c"
    );

    // 4. The directory goes away: the plugin is unloaded, pinned handles finish.
    std::fs::remove_dir_all(&dir).unwrap();
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.removed, vec!["swap"], "{report:?}");
    assert!(matches!(
        runtime.identity_provider("swap"),
        Err(PluginError::NotFound(_))
    ));
    assert_eq!(normalized(&p, "d"), "v1:d");
}

#[test]
fn a_plugin_that_never_loaded_is_listed_as_rejected() {
    let _load = support::shared();
    let tmp = tempfile::tempdir().unwrap();
    support::copy_plugin(
        &support::fixture_dir("major-v2"),
        &tmp.path().join("major-v2"),
        |m| m,
    );
    let runtime = support::runtime(support::settings());
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.rejected.len(), 1);
    let row = status_of(&runtime, "major-v2");
    assert_eq!(row.state, PluginState::Rejected);
    assert!(row.info.is_none());
    assert!(row.last_error.unwrap().contains("divoc:plugin@2.0.0"));
}

#[test]
fn renamed_and_deleted_plugin_directories_leave_the_registry() {
    let _load = support::shared();
    let tmp = tempfile::tempdir().unwrap();
    support::copy_plugin(
        &support::fixture_dir("swap-v1"),
        &tmp.path().join("swap"),
        |m| m,
    );
    support::copy_plugin(
        &support::fixture_dir("major-v2"),
        &tmp.path().join("major-v2"),
        |m| m,
    );
    let runtime = support::runtime(support::settings());
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.loaded, vec!["swap@1.0.0"]);
    assert_eq!(report.rejected.len(), 1);

    // The directory now declares another plugin name: the old name goes.
    let manifest = tmp.path().join("swap/plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        support::replace(text, "name = \"swap\"", "name = \"swap-renamed\""),
    )
    .unwrap();
    let report = runtime.reload_dir(tmp.path());
    assert_eq!(report.loaded, vec!["swap-renamed@1.0.0"], "{report:?}");
    assert_eq!(report.removed, vec!["swap"], "{report:?}");
    assert!(matches!(
        runtime.identity_provider("swap"),
        Err(PluginError::NotFound(_))
    ));
    assert_eq!(
        normalized(&runtime.identity_provider("swap-renamed").unwrap(), "x"),
        "v1:x"
    );

    // A refused plugin whose directory is deleted is no longer listed.
    std::fs::remove_dir_all(tmp.path().join("major-v2")).unwrap();
    runtime.reload_dir(tmp.path());
    let names: Vec<String> = runtime.status().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["swap-renamed"]);
}

/// A kv backend whose writes take longer than the plugin's whole deadline,
/// as an fsync on a loaded disk can.
struct SlowKv {
    inner: divoc_runtime::MemoryKv,
    delay: std::time::Duration,
}

impl divoc_runtime::KvBackend for SlowKv {
    fn get(&self, p: &str, k: &str) -> Result<Option<Vec<u8>>, divoc_runtime::KvError> {
        self.inner.get(p, k)
    }
    fn set(&self, p: &str, k: &str, v: &[u8], q: u64) -> Result<(), divoc_runtime::KvError> {
        std::thread::sleep(self.delay);
        self.inner.set(p, k, v, q)
    }
    fn delete(&self, p: &str, k: &str) -> Result<(), divoc_runtime::KvError> {
        self.inner.delete(p, k)
    }
    fn list(&self, p: &str, pre: &str, l: u32) -> Result<Vec<String>, divoc_runtime::KvError> {
        self.inner.list(p, pre, l)
    }
}

#[test]
fn time_inside_host_calls_is_not_charged_to_the_deadline() {
    let _load = support::shared();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("compat");
    // A 50 ms deadline, and kv writes that take 150 ms each.
    support::copy_plugin(&support::fixture_dir("compat-v1-0"), &dir, |m| {
        m.replace("[limits]", "[limits]\ndeadline-ms = 50")
    });
    let mut settings = support::settings();
    settings
        .grants
        .insert("compat-v1-0".into(), support::generous_grant());
    let services = divoc_runtime::HostServices {
        kv: std::sync::Arc::new(SlowKv {
            inner: divoc_runtime::MemoryKv::default(),
            delay: std::time::Duration::from_millis(150),
        }),
        signer: std::sync::Arc::new(divoc_runtime::NoKeys),
        mail: std::sync::Arc::new(divoc_runtime::NoMail),
    };
    let runtime = Runtime::new(settings, services).unwrap();
    let (manifest, component) = support::read_plugin(&dir);
    runtime.load_component(&dir, &manifest, &component).unwrap();
    let p = runtime.identity_provider("compat-v1-0").unwrap();
    assert_eq!(normalized(&p, "abc"), "abc#1");
    assert_eq!(normalized(&p, "abc"), "abc#2");
    assert_eq!(status_of(&runtime, "compat-v1-0").faults, 0);
}
