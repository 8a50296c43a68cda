//! The DIVOC plugin conformance suite.
//!
//! [`run`] loads one plugin component into an isolated runtime (in-memory
//! kv, a throw-away signing key, a temporary directory; never the production
//! database) and checks it against its world's contract:
//! - **contract cases**, stored as data in `conformance/cases/<world>/<case>/`
//!   (format: `cases/README.md`) and embedded in the binary at compile time;
//! - **generic cases**, generated in code for every world: oversized, odd and
//!   extreme inputs never fault, deterministic functions are deterministic,
//!   and no call exceeds the plugin's limits.
//!
//! The result is a [`Report`] that prints for humans or writes JUnit XML.

#![deny(missing_docs)]

mod cases;
mod generic;
mod harness;
mod report;
mod signer;
mod value;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use divoc_runtime::{Grant, LoadError, Manifest, ManifestError, World, HOST_WIT_VERSION};

use crate::generic::{Facts, Kind};
use crate::harness::{Call, Outcome, Plugin};
use crate::signer::EphemeralSigner;

pub use crate::report::{CaseResult, Report};

/// How to run the suite. `Options::default()` tests a component with the
/// `plugin.toml` next to it, the embedded cases and the grants its manifest
/// requests.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The plugin's manifest; default: `plugin.toml` next to the component.
    /// When that file does not exist either, one is synthesized from the
    /// component itself (see [`Report::synthesized_manifest`]).
    pub manifest: Option<PathBuf>,
    /// A directory of cases (`<world>/<case>/...`) to use instead of the
    /// embedded ones.
    pub cases_dir: Option<PathBuf>,
    /// The grant to run under; default: everything the manifest requests
    /// (which allows loopback HTTP only when a requested origin is loopback,
    /// since the runtime only connects to local addresses a grant names).
    pub grants: Option<Grant>,
}

/// Why the suite could not run at all. A plugin that runs but misbehaves is
/// not an error: it is a [`Report`] with failed cases.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The component file could not be read.
    #[error("cannot read component {}: {source}", path.display())]
    ReadComponent {
        /// The component path given to [`run`].
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The plugin's `plugin.toml` (given or found next to the component) is
    /// unreadable or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The runtime refused the plugin; its load error is the verdict.
    #[error("the plugin does not load: {0}")]
    Load(#[from] LoadError),
    /// Without a `plugin.toml`, the world the component implements could not
    /// be worked out, so no manifest could be synthesized.
    #[error("cannot tell which world {} implements: {message}", path.display())]
    UnknownWorld {
        /// The component.
        path: PathBuf,
        /// What the runtime reported instead of a usable world.
        message: String,
    },
    /// A contract case could not be read: a file is missing, unreadable or
    /// not UTF-8.
    #[error("conformance case {}: {message}", path.display())]
    Cases {
        /// The case file or directory at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The scratch directory the plugin is loaded from could not be created.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(std::io::Error),
    /// The isolated runtime could not be set up; holds its error, with causes.
    #[error("cannot start the plugin runtime: {0}")]
    Runtime(String),
    /// The JUnit report could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The report file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

/// Runs the suite against one component.
pub fn run(component: &Path, options: &Options) -> Result<Report, ConformanceError> {
    let bytes = std::fs::read(component).map_err(|source| ConformanceError::ReadComponent {
        path: component.to_path_buf(),
        source,
    })?;
    let work = tempfile::Builder::new()
        .prefix("divoc-conformance-")
        .tempdir()
        .map_err(ConformanceError::TempDir)?;

    let manifest_path = options.manifest.clone().unwrap_or_else(|| {
        component
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("plugin.toml")
    });
    // An explicitly named manifest must exist; only the default may be absent.
    let (plugin, synthesized) = if options.manifest.is_some() || manifest_path.is_file() {
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|source| ManifestError::Read {
                path: manifest_path.clone(),
                source,
            })?;
        let manifest = Manifest::from_file(&manifest_path)?;
        (
            plugin_for(manifest, text, bytes, options, work.path())?,
            false,
        )
    } else {
        (synthesize(component, bytes, options, work.path())?, true)
    };

    // The first load doubles as the load check: a plugin that does not load
    // cannot be tested, and its load error is the answer.
    let first = plugin.session(None)?;
    let info = first.info.clone();
    let world = info.world;
    let facts = facts(&plugin, &first, info.limits.output_bytes);
    drop(first);

    let mut results = Vec::new();
    for case in cases::load(options.cases_dir.as_deref(), world)? {
        let started = Instant::now();
        let result = cases::run(&plugin, world, &case);
        results.push(CaseResult::new(
            format!("{}/{}", world.name(), case.name),
            result,
            started.elapsed(),
        ));
    }
    let mut limit_hits = Vec::new();
    for case in generic::cases(world, &facts) {
        let name = format!("generic/{}", case.name);
        let before = plugin.limit_faults.borrow().len();
        let started = Instant::now();
        let result = run_generic(&plugin, &case.kind);
        let new: Vec<String> = plugin.limit_faults.borrow()[before..].to_vec();
        if !new.is_empty() {
            limit_hits.push(format!("{name} ({})", new.join("; ")));
        }
        results.push(CaseResult::new(name, result, started.elapsed()));
    }
    // Data cases may hit limits too; they are counted by the log's total.
    let total = plugin.limit_faults.borrow().len();
    let limits = &info.limits;
    let summary = format!(
        "deadline {} ms, memory {} MiB, output {} KiB",
        limits.deadline_ms,
        limits.memory_bytes >> 20,
        limits.output_bytes >> 10
    );
    results.push(CaseResult::new(
        "generic/limits".into(),
        if total == 0 {
            Ok(format!("no call exceeded its limits ({summary})"))
        } else {
            let mut listed = limit_hits.join(", ");
            if listed.is_empty() {
                listed = "in contract cases".into();
            }
            Err(format!(
                "{total} call(s) exceeded the plugin's limits ({summary}): {listed}"
            ))
        },
        Duration::ZERO,
    ));

    Ok(Report {
        plugin: info.name,
        version: info.version,
        world: world.name().to_string(),
        synthesized_manifest: synthesized,
        cases: results,
    })
}

fn plugin_for(
    manifest: Manifest,
    manifest_text: String,
    component: Vec<u8>,
    options: &Options,
    work_dir: &Path,
) -> Result<Plugin, ConformanceError> {
    let grant = options
        .grants
        .clone()
        .unwrap_or_else(|| Grant::requested_by(&manifest));
    let purposes = manifest
        .capabilities
        .signer
        .as_ref()
        .map(|s| s.purposes.clone())
        .unwrap_or_default();
    Ok(Plugin {
        signer: Arc::new(EphemeralSigner::new(&purposes)),
        manifest,
        manifest_text,
        component,
        grant,
        work_dir: work_dir.to_path_buf(),
        limit_faults: Rc::new(RefCell::new(Vec::new())),
    })
}

/// Quota requested by a synthesized manifest.
const SYNTHESIZED_KV_QUOTA: u64 = 1 << 20;

fn synthesized_manifest(name: &str, world: World) -> String {
    // Every capability is requested, so whatever the component imports is
    // covered; `http` has no origins (none can be guessed), so HTTP calls are
    // refused by the runtime and the plugin must cope with that.
    format!(
        "[plugin]\nname = \"{name}\"\nversion = \"0.0.0\"\nworld = \"{world}\"\n\
         wit = \"divoc:plugin@{HOST_WIT_VERSION}\"\n\
         description = \"synthesized by the conformance suite\"\n\
         [capabilities]\nlog = true\nclock = true\nrandom = true\nconfig = true\n\
         kv = {{ quota-bytes = {SYNTHESIZED_KV_QUOTA} }}\nhttp = {{ origins = [] }}\n\
         signer = {{ purposes = [\"certificate\"] }}\n"
    )
}

/// A manifest for a component that came without one. The world is found by
/// asking the runtime: a load under the wrong world fails with
/// `WorldMismatch`, which names the world the component implements.
fn synthesize(
    component_path: &Path,
    component: Vec<u8>,
    options: &Options,
    work_dir: &Path,
) -> Result<Plugin, ConformanceError> {
    let name = plugin_name(component_path);
    let mut world = World::IdentityProvider;
    let mut tried = BTreeSet::new();
    loop {
        tried.insert(world);
        let text = synthesized_manifest(&name, world);
        let manifest = Manifest::parse(&text)?;
        let plugin = plugin_for(manifest, text, component.clone(), options, work_dir)?;
        match plugin.session(None) {
            Ok(_) => return Ok(plugin),
            Err(ConformanceError::Load(LoadError::WorldMismatch {
                component: actual, ..
            })) => match World::from_name(&actual) {
                Some(w) if !tried.contains(&w) => world = w,
                _ => {
                    return Err(ConformanceError::UnknownWorld {
                        path: component_path.to_path_buf(),
                        message: format!("the runtime reports world `{actual}`"),
                    })
                }
            },
            Err(ConformanceError::Load(e @ LoadError::NoWorld { .. })) => {
                return Err(ConformanceError::UnknownWorld {
                    path: component_path.to_path_buf(),
                    message: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        }
    }
}

/// A valid plugin name (`[a-z0-9-]`, 1-64) from the component's file name.
fn plugin_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .skip_while(|c| *c == '-')
        .take(64)
        .collect();
    if name.is_empty() {
        name = "plugin".into();
    }
    name
}

/// Values generators take from the plugin itself, with neutral fallbacks
/// when the plugin cannot say (its own cases will report why).
fn facts(plugin: &Plugin, session: &harness::Session, output_bytes: u64) -> Facts {
    let first = |call: Call| match session.call(&call) {
        Outcome::Ok(serde_json::Value::Array(items)) => {
            items.first().and_then(|v| v.as_str()).map(str::to_string)
        }
        _ => None,
    };
    let world = session.info.world;
    Facts {
        identity_type: (world == World::IdentityProvider)
            .then(|| first(Call::IdentityTypes))
            .flatten()
            .unwrap_or_else(|| "national-id".into()),
        mode: (world == World::PaymentProvider)
            .then(|| first(Call::Modes))
            .flatten()
            .unwrap_or_else(|| "cash".into()),
        signing_purpose: plugin
            .manifest
            .capabilities
            .signer
            .as_ref()
            .and_then(|s| s.purposes.first().cloned())
            .unwrap_or_else(|| "certificate".into()),
        huge: generic::huge_len(output_bytes),
    }
}

fn run_generic(plugin: &Plugin, kind: &Kind) -> Result<String, String> {
    let session = || {
        plugin
            .session(None)
            .map_err(|e| format!("cannot load the plugin for this case: {e}"))
    };
    match kind {
        Kind::Robust(calls) => {
            let s = session()?;
            let mut answers = Vec::new();
            for call in calls {
                let outcome = s.call(call);
                if matches!(outcome, Outcome::Fault(_) | Outcome::Unavailable(_)) {
                    return Err(format!("{}: {}", call.function(), outcome.describe()));
                }
                generic::invariant(call, &outcome)
                    .map_err(|e| format!("{}: {e}", call.function()))?;
                answers.push(outcome.class());
            }
            Ok(format!("no fault ({})", answers.join(", ")))
        }
        Kind::Deterministic(calls) => {
            // Two runtimes, so neither kv state nor a warm instance can
            // carry anything from the first call to the second.
            let (a, b) = (session()?, session()?);
            for call in calls {
                let first = a.call(call);
                let second = b.call(call);
                for outcome in [&first, &second] {
                    if matches!(outcome, Outcome::Fault(_) | Outcome::Unavailable(_)) {
                        return Err(format!("{}: {}", call.function(), outcome.describe()));
                    }
                    generic::invariant(call, outcome)
                        .map_err(|e| format!("{}: {e}", call.function()))?;
                }
                if generic::stable(call, &first) != generic::stable(call, &second) {
                    return Err(format!(
                        "{} is not deterministic: {} then {}",
                        call.function(),
                        first.describe(),
                        second.describe()
                    ));
                }
            }
            Ok(format!("{} call(s) repeat exactly", calls.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn synthesized_manifests_parse_for_every_world() {
        for world in World::ALL {
            let m = Manifest::parse(&synthesized_manifest("x", world)).unwrap();
            assert_eq!(m.plugin.world, world);
        }
    }

    #[test]
    fn plugin_names_are_valid() {
        assert_eq!(
            plugin_name(Path::new("/a/My_Plugin.v2.wasm")),
            "my-plugin-v2"
        );
        assert_eq!(plugin_name(Path::new("__.wasm")), "plugin");
    }

    #[test]
    fn default_grant_is_the_request() {
        let m = Manifest::parse(
            "[plugin]\nname = \"p\"\nversion = \"1.0.0\"\nworld = \"certificate-format\"\n\
             wit = \"divoc:plugin@1.1.0\"\n[capabilities]\nkv = { quota-bytes = 10 }\n\
             http = { origins = [\"http://127.0.0.1:9\"] }\nsigner = { purposes = [\"c\"] }\n",
        )
        .unwrap();
        let g = Grant::requested_by(&m);
        assert_eq!(g.kv_quota_bytes, Some(10));
        assert_eq!(g.http_origins, vec!["http://127.0.0.1:9".to_string()]);
        assert_eq!(g.signer_purposes, vec!["c".to_string()]);
    }
}
