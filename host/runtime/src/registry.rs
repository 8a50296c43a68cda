//! The set of loaded plugins, and hot swap.
//!
//! The registry is an immutable map behind an atomic pointer. A call clones
//! the `Arc` of the plugin version it finds and keeps it for the whole call,
//! so a reload that swaps the map never disturbs calls in flight: they finish
//! on the version they started with, and every new call sees the new map.
//! A candidate version is compiled, checked, linked and instantiated once
//! before it may replace anything; a candidate that fails any step is
//! recorded as rejected and the old version keeps serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use wasmtime::component::Linker;

use crate::capabilities::{self, StoreState};
use crate::engine::{Engine, EngineSettings};
use crate::error::{LoadError, PluginError};
use crate::grants::Grants;
use crate::manifest::{Manifest, PluginConfigs, World};
use crate::plugin::{LimitSettings, LoadEnv, LoadedPlugin, PluginInfo};
use crate::services::HostServices;

/// Everything the runtime is configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuntimeSettings {
    /// Engine-wide settings (`[plugins.engine]`).
    pub engine: EngineSettings,
    /// Per-call limit defaults and ceilings (`[plugins.limits]`).
    pub limits: LimitSettings,
    /// Per-plugin capability grants.
    pub grants: Grants,
    /// Per-plugin configuration sections, handed to the `config` capability.
    pub config: PluginConfigs,
}

/// A plugin's state as shown by the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginState {
    /// Loaded and serving.
    Ready,
    /// Loaded, but disabled after repeated faults until reloaded.
    Disabled,
    /// Never loaded: every version tried so far was refused.
    Rejected,
}

/// A refused candidate version.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// The directory the refused candidate was read from.
    pub dir: PathBuf,
    /// Why it was refused: the [`LoadError`], as text.
    pub error: String,
    /// When it was refused; RFC 3339 (UTC) in JSON.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub at: SystemTime,
}

/// One row of `GET /v1/plugins`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// The plugin's name, or its directory when no manifest could be read.
    pub name: String,
    /// Whether it is serving, disabled or refused.
    pub state: PluginState,
    /// Absent for a plugin that never loaded.
    #[serde(flatten)]
    pub info: Option<PluginInfo>,
    /// Calls into the serving version since it was loaded, failed ones
    /// included; calls refused while it is disabled are not counted.
    pub calls: u64,
    /// Faults of the serving version since it was loaded.
    pub faults: u64,
    /// Faults since its last successful call; reaching the configured
    /// `max-consecutive-faults` disables it.
    pub consecutive_faults: u32,
    /// Why the serving version was disabled; `None` unless `state` is `disabled`.
    pub disabled_reason: Option<String>,
    /// The last fault of the serving version, or the last refused candidate.
    pub last_error: Option<String>,
    /// The last candidate version that was refused while this one kept serving.
    pub last_rejection: Option<Rejection>,
}

/// What one reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// Newly loaded or swapped-in plugins, as `name@version`.
    pub loaded: Vec<String>,
    /// Plugins kept as they were (same digest, not disabled), by name.
    pub unchanged: Vec<String>,
    /// Plugins unloaded because their directory is gone or now holds a
    /// plugin of another name, by name.
    pub removed: Vec<String>,
    /// Refused candidates: (plugin name or directory, error).
    pub rejected: Vec<(String, String)>,
}

type PluginMap = BTreeMap<String, Arc<LoadedPlugin>>;

struct Inner {
    engine: Engine,
    linker: Linker<StoreState>,
    settings: RuntimeSettings,
    services: HostServices,
    plugins: ArcSwap<PluginMap>,
    /// Keyed by plugin name, or by directory when the manifest was unreadable.
    rejections: Mutex<BTreeMap<String, Rejection>>,
    /// Serialises reloads; calls never take it.
    reload: Mutex<()>,
}

/// The plugin runtime: load, call, hot-swap.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field(
                "plugins",
                &self.inner.plugins.load().keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What a plugin directory holds.
struct Candidate {
    dir: PathBuf,
    manifest: Vec<u8>,
    component: Vec<u8>,
}

impl Runtime {
    /// Configures the engine and links the host capabilities; fails if the
    /// engine cannot be set up (e.g. the cache directory cannot be created).
    /// No plugin is loaded yet: call [`Runtime::reload_dir`] or
    /// [`Runtime::load_component`].
    pub fn new(settings: RuntimeSettings, services: HostServices) -> anyhow::Result<Runtime> {
        let engine = Engine::new(&settings.engine)?;
        let mut linker = Linker::new(&engine.engine);
        capabilities::add_to_linker(&mut linker)?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                settings,
                services,
                plugins: ArcSwap::from_pointee(PluginMap::new()),
                rejections: Mutex::new(BTreeMap::new()),
                reload: Mutex::new(()),
            }),
        })
    }

    /// Whether the engine got the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.inner.engine.pooling
    }

    fn env(&self) -> LoadEnv<'_> {
        let s = &self.inner.settings;
        LoadEnv {
            engine: &self.inner.engine.engine,
            linker: &self.inner.linker,
            limits: &s.limits,
            max_memory_mib: s.engine.max_memory_mib,
            grants: &s.grants,
            configs: &s.config,
            services: &self.inner.services,
        }
    }

    /// Loads (or checks) one plugin directory without registering it.
    pub fn check_dir(&self, dir: &Path) -> Result<PluginInfo, LoadError> {
        let c = read_candidate(dir)?;
        LoadedPlugin::load(&self.env(), &c.dir, &c.manifest, &c.component).map(|p| p.info)
    }

    /// Loads one component with its manifest text and registers it, replacing
    /// any version of the same name. Used by the conformance runner and tests.
    pub fn load_component(
        &self,
        dir: &Path,
        manifest: &[u8],
        component: &[u8],
    ) -> Result<PluginInfo, LoadError> {
        let _guard = self.inner.reload.lock();
        let plugin = Arc::new(LoadedPlugin::load(&self.env(), dir, manifest, component)?);
        let info = plugin.info.clone();
        let mut map = PluginMap::clone(&self.inner.plugins.load());
        map.insert(info.name.clone(), plugin);
        self.inner.plugins.store(Arc::new(map));
        Ok(info)
    }

    /// Scans `dir` (one sub-directory per plugin, each with `plugin.toml` and
    /// a component) and brings the registry in line with it. Unchanged plugins
    /// are kept (a disabled one is re-enabled by reloading it); changed ones
    /// are swapped in only if they pass every check.
    pub fn reload_dir(&self, dir: &Path) -> ReloadReport {
        let _guard = self.inner.reload.lock();
        let mut report = ReloadReport::default();
        let current = self.inner.plugins.load_full();
        let mut next = PluginMap::new();
        let mut seen_dirs = Vec::new();
        let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();

        let entries = match plugin_dirs(dir) {
            Ok(entries) => entries,
            Err(e) => {
                report
                    .rejected
                    .push((dir.display().to_string(), e.to_string()));
                return report;
            }
        };
        for sub in entries {
            seen_dirs.push(sub.clone());
            let candidate = match read_candidate(&sub) {
                Ok(c) => c,
                Err(e) => {
                    self.reject(&sub.display().to_string(), &sub, &e, &mut report);
                    continue;
                }
            };
            let name = match Manifest::parse(&String::from_utf8_lossy(&candidate.manifest)) {
                Ok(m) => m.plugin.name,
                Err(e) => {
                    let e = LoadError::Manifest(e.at(&sub.join("plugin.toml")));
                    self.reject(&sub.display().to_string(), &sub, &e, &mut report);
                    continue;
                }
            };
            if let Some(first) = names.get(&name) {
                let e = LoadError::DuplicateName {
                    plugin: name.clone(),
                    first: first.clone(),
                    second: sub.clone(),
                };
                self.reject(&name, &sub, &e, &mut report);
                continue;
            }
            names.insert(name.clone(), sub.clone());

            let old = current.get(&name);
            let digest = crate::plugin::digest(&candidate.manifest, &candidate.component);
            if let Some(old) = old {
                if old.info.digest == digest && !old.is_disabled() {
                    next.insert(name.clone(), old.clone());
                    report.unchanged.push(name);
                    continue;
                }
            }
            match LoadedPlugin::load(&self.env(), &sub, &candidate.manifest, &candidate.component) {
                Ok(plugin) => {
                    tracing::info!(
                        plugin = %plugin.info.name,
                        version = %plugin.info.version,
                        world = %plugin.info.world,
                        "plugin loaded"
                    );
                    report
                        .loaded
                        .push(format!("{}@{}", plugin.info.name, plugin.info.version));
                    self.inner.rejections.lock().remove(&name);
                    next.insert(name, Arc::new(plugin));
                }
                Err(e) => {
                    // Keep serving the old version, if there is one.
                    if let Some(old) = old {
                        next.insert(name.clone(), old.clone());
                    }
                    self.reject(&name, &sub, &e, &mut report);
                }
            }
        }
        // A plugin whose directory is gone, or whose directory now holds a
        // plugin of another name, is unloaded; calls in flight keep their
        // `Arc` and finish normally. A plugin whose directory could not be
        // read this time keeps serving.
        let renamed = |dir: &PathBuf, name: &str| names.iter().any(|(n, d)| d == dir && n != name);
        for (name, plugin) in current.iter() {
            if next.contains_key(name) {
                continue;
            }
            if seen_dirs.contains(&plugin.info.dir) && !renamed(&plugin.info.dir, name) {
                next.insert(name.clone(), plugin.clone());
            } else {
                tracing::info!(plugin = %name, "plugin removed");
                report.removed.push(name.clone());
            }
        }
        // Refusals of candidates whose directory is gone are history: the
        // admin API would otherwise list a deleted plugin as rejected forever.
        self.inner
            .rejections
            .lock()
            .retain(|_, r| seen_dirs.contains(&r.dir));
        self.inner.plugins.store(Arc::new(next));
        report
    }

    fn reject(&self, key: &str, dir: &Path, error: &LoadError, report: &mut ReloadReport) {
        tracing::warn!(plugin = %key, "plugin refused: {error}");
        report.rejected.push((key.to_string(), error.to_string()));
        self.inner.rejections.lock().insert(
            key.to_string(),
            Rejection {
                dir: dir.to_path_buf(),
                error: error.to_string(),
                at: SystemTime::now(),
            },
        );
    }

    /// Status of every loaded or refused plugin, by name.
    pub fn status(&self) -> Vec<PluginStatus> {
        let plugins = self.inner.plugins.load();
        let rejections = self.inner.rejections.lock().clone();
        let mut rows: Vec<PluginStatus> = plugins
            .values()
            .map(|p| {
                let disabled_reason = p.health.disabled.lock().clone();
                let last_rejection = rejections.get(&p.info.name).cloned();
                let last_error = last_rejection
                    .as_ref()
                    .map(|r| r.error.clone())
                    .or_else(|| p.health.last_error.lock().clone());
                PluginStatus {
                    name: p.info.name.clone(),
                    state: if disabled_reason.is_some() {
                        PluginState::Disabled
                    } else {
                        PluginState::Ready
                    },
                    info: Some(p.info.clone()),
                    calls: p.health.calls.load(Ordering::Relaxed),
                    faults: p.health.faults.load(Ordering::Relaxed),
                    consecutive_faults: p.health.consecutive_faults.load(Ordering::Relaxed),
                    disabled_reason,
                    last_error,
                    last_rejection,
                }
            })
            .collect();
        for (key, rejection) in rejections {
            if !plugins.contains_key(&key) {
                rows.push(PluginStatus {
                    name: key,
                    state: PluginState::Rejected,
                    info: None,
                    calls: 0,
                    faults: 0,
                    consecutive_faults: 0,
                    disabled_reason: None,
                    last_error: Some(rejection.error.clone()),
                    last_rejection: Some(rejection),
                });
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// Names of the loaded plugins of a world.
    pub fn plugins_of(&self, world: World) -> Vec<String> {
        self.inner
            .plugins
            .load()
            .values()
            .filter(|p| p.info.world == world)
            .map(|p| p.info.name.clone())
            .collect()
    }

    /// The serving version of a plugin, checked to implement `world`.
    pub(crate) fn get(&self, name: &str, world: World) -> Result<Arc<LoadedPlugin>, PluginError> {
        let plugin = self
            .inner
            .plugins
            .load()
            .get(name)
            .cloned()
            .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
        if plugin.info.world != world {
            return Err(PluginError::WrongWorld {
                plugin: name.to_string(),
                expected: world.to_string(),
                actual: plugin.info.world.to_string(),
            });
        }
        Ok(plugin)
    }

    /// Facts about a loaded plugin.
    pub fn info(&self, name: &str) -> Option<PluginInfo> {
        self.inner.plugins.load().get(name).map(|p| p.info.clone())
    }
}

fn plugin_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && path.join("plugin.toml").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Reads `plugin.toml` and the component next to it: `<name>.wasm`, or the
/// only `.wasm` file in the directory.
fn read_candidate(dir: &Path) -> Result<Candidate, LoadError> {
    let layout = |message: String| LoadError::Layout {
        path: dir.to_path_buf(),
        message,
    };
    let manifest_path = dir.join("plugin.toml");
    let manifest = std::fs::read(&manifest_path)
        .map_err(|e| layout(format!("cannot read plugin.toml: {e}")))?;
    let named = Manifest::parse(&String::from_utf8_lossy(&manifest))
        .ok()
        .map(|m| dir.join(format!("{}.wasm", m.plugin.name)))
        .filter(|p| p.is_file());
    let wasm = match named {
        Some(p) => p,
        None => {
            let mut wasm: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| layout(e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                .collect();
            if wasm.len() != 1 {
                return Err(layout(format!(
                    "expected one .wasm component next to plugin.toml, found {}",
                    wasm.len()
                )));
            }
            wasm.remove(0)
        }
    };
    let component =
        std::fs::read(&wasm).map_err(|e| layout(format!("cannot read {}: {e}", wasm.display())))?;
    Ok(Candidate {
        dir: dir.to_path_buf(),
        manifest,
        component,
    })
}
