//! Data-driven hostile-plugin cases: one directory per case under
//! `tests/cases/<case>/case.toml`, naming a built fixture, grant and limit
//! overrides, the calls to make and the outcome each must have. A new
//! hostile behaviour is a new directory, not new code.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use divoc_runtime::types::distribution::Message;
use divoc_runtime::types::identity::Verification;
use divoc_runtime::{
    Delivery, Grant, GuestErrorKind, LimitSettings, LoadError, PluginError, Runtime,
};
use serde::Deserialize;

use crate::support;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Case {
    /// What the case shows, for the failure report.
    description: String,
    /// `target/fixtures/<fixture>`.
    fixture: String,
    /// `[old, new]` text replacements applied to the fixture's manifest, to
    /// vary requested limits without another fixture build.
    #[serde(default)]
    manifest_edit: Vec<[String; 2]>,
    #[serde(default)]
    grant: Option<Grant>,
    /// Overrides of the operator's limit settings (unset fields keep defaults).
    #[serde(default)]
    limits: Option<LimitSettings>,
    /// The expected load error class (a `LoadError` variant name); absent: must load.
    load_error: Option<String>,
    /// Substrings the load error's message must contain.
    #[serde(default)]
    message_contains: Vec<String>,
    #[serde(default)]
    call: Vec<Call>,
    /// After the calls, another plugin (a fixture crate) loaded into the same
    /// runtime must still answer: a hostile plugin must not take the host down.
    then_serves: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Call {
    /// `identity-types`, `verify` or `deliver`.
    function: String,
    /// The claim value (`verify`) or the message template (`deliver`).
    #[serde(default)]
    input: String,
    /// The expected success: `verify` → normalized id, `identity-types` →
    /// comma-joined types, `deliver` → channel reference.
    ok: Option<String>,
    /// The expected `PluginError` variant name.
    call_error: Option<String>,
    /// For `deliver`: `retryable` or `permanent`.
    delivery: Option<String>,
    /// The guest error kind (`rejected`, ...) of a returned error or failed delivery.
    guest_error: Option<String>,
    #[serde(default)]
    message_contains: Vec<String>,
    /// Wall-clock bound on the call (generous; precise timing is for benches).
    max_ms: Option<u64>,
}

fn load_error_class(e: &LoadError) -> &'static str {
    match e {
        LoadError::Manifest(_) => "Manifest",
        LoadError::Layout { .. } => "Layout",
        LoadError::Compile { .. } => "Compile",
        LoadError::IncompatibleContract { .. } => "IncompatibleContract",
        LoadError::WorldMismatch { .. } => "WorldMismatch",
        LoadError::NoWorld { .. } => "NoWorld",
        LoadError::UnknownImport { .. } => "UnknownImport",
        LoadError::NotRequested { .. } => "NotRequested",
        LoadError::NotGranted { .. } => "NotGranted",
        LoadError::LimitTooHigh { .. } => "LimitTooHigh",
        LoadError::Link { .. } => "Link",
        LoadError::SmokeTest { .. } => "SmokeTest",
        LoadError::DuplicateName { .. } => "DuplicateName",
    }
}

fn call_error_class(e: &PluginError) -> &'static str {
    match e {
        PluginError::NotFound(_) => "NotFound",
        PluginError::WrongWorld { .. } => "WrongWorld",
        PluginError::Disabled { .. } => "Disabled",
        PluginError::Returned { .. } => "Returned",
        PluginError::Timeout { .. } => "Timeout",
        PluginError::MemoryLimit { .. } => "MemoryLimit",
        PluginError::OutOfFuel { .. } => "OutOfFuel",
        PluginError::OutputTooLarge { .. } => "OutputTooLarge",
        PluginError::Trap { .. } => "Trap",
    }
}

fn kind_name(kind: GuestErrorKind) -> &'static str {
    match kind {
        GuestErrorKind::InvalidInput => "invalid-input",
        GuestErrorKind::Rejected => "rejected",
        GuestErrorKind::Unavailable => "unavailable",
        GuestErrorKind::Internal => "internal",
    }
}

fn contains_all(text: &str, wanted: &[String]) -> Result<(), String> {
    match wanted.iter().find(|w| !text.contains(w.as_str())) {
        Some(missing) => Err(format!("message lacks `{missing}`: {text}")),
        None => Ok(()),
    }
}

fn message(template: &str) -> Message {
    Message {
        id: "case-message-1".into(),
        template: template.into(),
        recipient_name: "Test Recipient".into(),
        contacts: Vec::new(),
        certificate_ids: vec!["c-1".into()],
        attachments: Vec::new(),
        variables: Vec::new(),
    }
}

/// What one call produced, reduced to comparable parts.
enum Outcome {
    Ok(String),
    Failed(PluginError),
    Delivery(&'static str, GuestErrorKind, String),
}

fn make_call(runtime: &Runtime, plugin: &str, call: &Call) -> Result<Outcome, String> {
    let result = match call.function.as_str() {
        "identity-types" => runtime
            .identity_provider(plugin)
            .map_err(|e| e.to_string())?
            .identity_types()
            .map(|t| Outcome::Ok(t.join(","))),
        "verify" => runtime
            .identity_provider(plugin)
            .map_err(|e| e.to_string())?
            .verify(&support::claim("national-id", &call.input))
            .map(|v| match v {
                Verification::Verified(v) => Outcome::Ok(v.normalized_id),
                Verification::Challenge(c) => Outcome::Ok(format!("challenge:{}", c.prompt)),
                Verification::Rejected(r) => Outcome::Ok(format!("rejected:{r}")),
            }),
        "deliver" => runtime
            .distribution_channel(plugin)
            .map_err(|e| e.to_string())?
            .deliver(&message(&call.input))
            .map(|d| match d {
                Delivery::Delivered(r) => Outcome::Ok(r.channel_reference),
                Delivery::Retryable(e) => Outcome::Delivery("retryable", e.kind, e.message),
                Delivery::Permanent(e) => Outcome::Delivery("permanent", e.kind, e.message),
            }),
        other => return Err(format!("unknown function `{other}`")),
    };
    Ok(result.unwrap_or_else(Outcome::Failed))
}

fn check_call(runtime: &Runtime, plugin: &str, call: &Call) -> Result<(), String> {
    let started = Instant::now();
    let outcome = make_call(runtime, plugin, call)?;
    let elapsed = started.elapsed();
    if let Some(max) = call.max_ms {
        if elapsed > Duration::from_millis(max) {
            return Err(format!(
                "`{}` took {elapsed:?}, more than {max} ms",
                call.function
            ));
        }
    }
    match outcome {
        Outcome::Ok(value) => match &call.ok {
            Some(expected) if *expected == value => Ok(()),
            Some(expected) => Err(format!("expected `{expected}`, got `{value}`")),
            None => Err(format!("expected a failure, got `{value}`")),
        },
        Outcome::Failed(e) => {
            let text = e.to_string();
            let class = call_error_class(&e);
            let expected = match (&call.call_error, &call.guest_error, e.guest_error()) {
                (Some(expected), _, _) => expected.as_str() == class,
                (None, Some(kind), Some(g)) => kind == kind_name(g.kind),
                _ => false,
            };
            if !expected {
                return Err(format!(
                    "expected {:?}/{:?}, got {class}: {text}",
                    call.call_error, call.guest_error
                ));
            }
            contains_all(&text, &call.message_contains)
        }
        Outcome::Delivery(class, kind, text) => {
            if call.delivery.as_deref() != Some(class) {
                return Err(format!(
                    "expected delivery {:?}, got {class} ({}: {text})",
                    call.delivery,
                    kind_name(kind)
                ));
            }
            if let Some(expected) = &call.guest_error {
                if expected != kind_name(kind) {
                    return Err(format!(
                        "expected guest error {expected}, got {}: {text}",
                        kind_name(kind)
                    ));
                }
            }
            contains_all(&text, &call.message_contains)
        }
    }
}

fn run_case(dir: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dir.join("case.toml")).map_err(|e| e.to_string())?;
    let case: Case = toml::from_str(&text).map_err(|e| format!("bad case.toml: {e}"))?;
    println!("  {}", case.description);
    let fixture = support::fixture_dir(&case.fixture);
    let name = support::plugin_name(&fixture);

    let mut settings = support::settings();
    if let Some(grant) = case.grant.clone() {
        settings.grants.insert(name.clone(), grant);
    }
    if let Some(limits) = case.limits.clone() {
        settings.limits = limits;
    }
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    // Real backends, so kv goes through SQLite as in the host.
    let (services, _, _) = support::real_services(state.path());
    let runtime = Runtime::new(settings, services).map_err(|e| format!("{e:#}"))?;

    let (manifest, component) = support::read_plugin(&fixture);
    let mut manifest = String::from_utf8(manifest).map_err(|e| e.to_string())?;
    for [old, new] in &case.manifest_edit {
        manifest = support::replace(manifest, old, new);
    }
    let manifest = manifest.into_bytes();
    let loaded = runtime.load_component(&fixture, &manifest, &component);
    match (&case.load_error, loaded) {
        (Some(expected), Ok(info)) => {
            return Err(format!(
                "expected load error {expected}, but {info:?} loaded"
            ))
        }
        (Some(expected), Err(e)) => {
            let class = load_error_class(&e);
            if class != expected {
                return Err(format!("expected load error {expected}, got {class}: {e}"));
            }
            contains_all(&e.to_string(), &case.message_contains)?;
            // A refused plugin must not be callable.
            if runtime.info(&name).is_some() {
                return Err("a refused plugin is registered".into());
            }
        }
        (None, Err(e)) => return Err(format!("expected to load, got {e}")),
        (None, Ok(_)) => {}
    }

    for (i, call) in case.call.iter().enumerate() {
        check_call(&runtime, &name, call)
            .map_err(|e| format!("call {i} ({}): {e}", call.function))?;
    }

    if let Some(other) = &case.then_serves {
        let other_dir = support::fixture_dir(other);
        let (m, c) = support::read_plugin(&other_dir);
        let info = runtime
            .load_component(&other_dir, &m, &c)
            .map_err(|e| e.to_string())?;
        let answer = runtime
            .identity_provider(&info.name)
            .and_then(|p| p.verify(&support::claim("national-id", "after")))
            .map_err(|e| format!("{other} no longer served after the case: {e}"))?;
        if !matches!(&answer, Verification::Verified(v) if v.normalized_id.ends_with(":after")) {
            return Err(format!("{other} answered {answer:?} after the case"));
        }
    }
    Ok(())
}

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn hostile_cases() {
    let _load = support::shared();
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 10,
        "expected the case directories, found {}",
        dirs.len()
    );
    let only = std::env::var("DIVOC_CASE").ok();
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        let started = Instant::now();
        let result = run_case(dir);
        println!(
            "case {name}: {} in {:?}",
            if result.is_ok() { "ok" } else { "FAILED" },
            started.elapsed()
        );
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
}
