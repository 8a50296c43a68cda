//! One loaded version of one plugin: its compiled component, the checks it
//! passed, its pre-linked instance template and its warm instances.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::Store;

use crate::bindings::{
    certificate_format, distribution_channel, event_subscriber, identity_provider,
    payment_provider, rollout_policy,
};
use crate::capabilities::{PluginContext, StoreState};
use crate::engine::deadline_ticks;
use crate::error::{LoadError, PluginError};
use crate::grants::{self, EffectiveCapabilities, Grants};
use crate::manifest::{Manifest, PluginConfigs, World, WIT_PACKAGE};
use crate::output_size::output_size;
use crate::services::HostServices;

/// The contract version this host implements.
pub const HOST_WIT_VERSION: semver::Version = divoc_contract::VERSION;

/// Capability interfaces a component may import.
const CAPABILITIES: [&str; 8] = [
    "log", "clock", "random", "kv", "http", "signer", "config", "mail",
];

/// Operator defaults and ceilings for plugin limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitSettings {
    /// Deadline per call, in milliseconds, for a plugin that sets no `deadline-ms`.
    pub default_deadline_ms: u64,
    /// Highest `deadline-ms` a plugin may ask for.
    pub max_deadline_ms: u64,
    /// Memory limit, in MiB, for a plugin that sets no `memory-mib`; capped by
    /// the engine's `max-memory-mib`, which is also the ceiling for requests.
    pub default_memory_mib: u64,
    /// Output limit, in KiB, for a plugin that sets no `output-kib`.
    pub default_output_kib: u64,
    /// Highest `output-kib` a plugin may ask for.
    pub max_output_kib: u64,
    /// Fuel ceiling; a plugin that asks for none runs without a fuel budget.
    pub max_fuel: u64,
    /// Warm instances kept per plugin; 0 instantiates afresh for every call.
    pub warm_instances: usize,
    /// Consecutive faults after which a plugin is disabled until reloaded.
    pub max_consecutive_faults: u32,
    /// Largest HTTP response body handed to a plugin.
    pub max_http_body_kib: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            default_deadline_ms: 1_000,
            max_deadline_ms: 30_000,
            default_memory_mib: 32,
            default_output_kib: 1_024,
            max_output_kib: 16_384,
            max_fuel: 10_000_000_000,
            warm_instances: 16,
            max_consecutive_faults: 5,
            max_http_body_kib: 1_024,
        }
    }
}

/// The limits a loaded plugin runs under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveLimits {
    /// Guest time allowed per call, in milliseconds; time spent in kv and http
    /// host calls does not count.
    pub deadline_ms: u64,
    /// Largest size, in bytes, any linear memory of an instance may grow to.
    pub memory_bytes: u64,
    /// Fuel per call (about one unit per Wasm instruction); `None` runs
    /// without a budget, bounded by the deadline alone.
    pub fuel: Option<u64>,
    /// Largest result a call may return, in payload bytes (see
    /// [`PluginError::OutputTooLarge`]).
    pub output_bytes: u64,
}

/// Everything needed to load a plugin, shared by every load.
pub(crate) struct LoadEnv<'a> {
    pub engine: &'a wasmtime::Engine,
    pub linker: &'a Linker<StoreState>,
    pub limits: &'a LimitSettings,
    pub max_memory_mib: u64,
    pub grants: &'a Grants,
    pub configs: &'a PluginConfigs,
    pub services: &'a HostServices,
}

/// Static facts about a loaded plugin, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    /// The plugin's name, unique on this host.
    pub name: String,
    /// The plugin's own version, from its manifest.
    pub version: String,
    /// The world the component implements.
    pub world: World,
    /// The contract version the component was built against.
    pub wit: String,
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// SHA-256 of manifest and component; a reload with the same digest is a no-op.
    pub digest: String,
    /// When this version was loaded; RFC 3339 (UTC) in JSON.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub loaded_at: SystemTime,
    /// What it may use: its request intersected with its grant.
    pub capabilities: EffectiveCapabilities,
    /// The limits its calls run under.
    pub limits: EffectiveLimits,
    /// For a certificate-format plugin: the text prefixes of its artifacts
    /// (manifest `[format] prefixes`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub format_prefixes: Vec<String>,
}

enum WorldPre {
    Identity(identity_provider::IdentityProviderPre<StoreState>),
    Payment(payment_provider::PaymentProviderPre<StoreState>),
    Format(certificate_format::CertificateFormatPre<StoreState>),
    Distribution(distribution_channel::DistributionChannelPre<StoreState>),
    Policy(rollout_policy::RolloutPolicyPre<StoreState>),
    Events(event_subscriber::EventSubscriberPre<StoreState>),
}

/// An instantiated component of one of the worlds.
pub(crate) enum WorldInstance {
    Identity(identity_provider::IdentityProvider),
    Payment(payment_provider::PaymentProvider),
    Format(certificate_format::CertificateFormat),
    Distribution(distribution_channel::DistributionChannel),
    Policy(rollout_policy::RolloutPolicy),
    Events(event_subscriber::EventSubscriber),
}

struct Warm {
    store: Store<StoreState>,
    instance: WorldInstance,
}

/// Call and fault counters of one loaded version.
#[derive(Debug, Default)]
pub(crate) struct Health {
    pub calls: AtomicU64,
    pub faults: AtomicU64,
    pub consecutive_faults: AtomicU32,
    pub disabled: Mutex<Option<String>>,
    pub last_error: Mutex<Option<String>>,
}

pub(crate) struct LoadedPlugin {
    pub info: PluginInfo,
    ctx: Arc<PluginContext>,
    engine: wasmtime::Engine,
    pre: WorldPre,
    warm: Mutex<Vec<Warm>>,
    warm_max: usize,
    max_consecutive_faults: u32,
    pub health: Health,
    /// `divoc_plugin_call_duration_seconds{plugin, world}`, resolved once
    /// at load: a call records into it without building labels.
    call_seconds: metrics::Histogram,
}

/// The digest that identifies a manifest + component pair.
pub(crate) fn digest(manifest: &[u8], component: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update((manifest.len() as u64).to_le_bytes());
    h.update(manifest);
    h.update(component);
    hex::encode(h.finalize())
}

/// A parsed `<package>/<interface>@<version>` name.
struct InterfaceName<'a> {
    package: &'a str,
    interface: &'a str,
    version: Option<semver::Version>,
}

fn parse_interface_name(name: &str) -> Option<InterfaceName<'_>> {
    let (path, version) = match name.split_once('@') {
        Some((p, v)) => (p, semver::Version::parse(v).ok()),
        None => (name, None),
    };
    let (package, interface) = path.split_once('/')?;
    Some(InterfaceName {
        package,
        interface,
        version,
    })
}

/// Whether a component built against `found` can run on this host: same major
/// version and no newer minor (semantic versioning; for 0.x the minor is the
/// breaking component, as Cargo treats it).
fn compatible(found: &semver::Version) -> bool {
    let host = HOST_WIT_VERSION;
    if host.major == 0 {
        found.major == 0 && found.minor == host.minor && found.patch <= host.patch
    } else {
        found.major == host.major && (found.minor, found.patch) <= (host.minor, host.patch)
    }
}

fn supported_range() -> String {
    let host = HOST_WIT_VERSION;
    if host.major == 0 {
        format!("0.{}.0 to {host}", host.minor)
    } else {
        format!("{}.0.0 to {host}", host.major)
    }
}

impl LoadedPlugin {
    /// Compiles, checks, links and smoke-tests a plugin. Nothing is swapped
    /// in here; the caller decides what to do with the result.
    pub fn load(
        env: &LoadEnv<'_>,
        dir: &Path,
        manifest_bytes: &[u8],
        component_bytes: &[u8],
    ) -> Result<LoadedPlugin, LoadError> {
        let manifest_text = std::str::from_utf8(manifest_bytes).map_err(|_| LoadError::Layout {
            path: dir.to_path_buf(),
            message: "plugin.toml is not UTF-8".into(),
        })?;
        let manifest = Manifest::parse(manifest_text)
            .map_err(|e| LoadError::Manifest(e.at(&dir.join("plugin.toml"))))?;
        let name = manifest.plugin.name.clone();
        let version = manifest.plugin.version.to_string();
        let wit_version = manifest.wit_version()?;
        if !compatible(&wit_version) {
            return Err(LoadError::IncompatibleContract {
                plugin: name,
                version,
                found: manifest.plugin.wit.clone(),
                supported: HOST_WIT_VERSION.to_string(),
                supported_range: supported_range(),
            });
        }

        let component =
            Component::new(env.engine, component_bytes).map_err(|e| LoadError::Compile {
                plugin: name.clone(),
                version: version.clone(),
                message: format!("{e:#}"),
            })?;

        let world = Self::check_exports(env.engine, &component, &manifest)?;
        Self::check_imports(env.engine, &component, &manifest)?;
        let caps = grants::effective(&manifest, env.grants.get(&name))?;
        let limits = Self::limits(env, &manifest)?;

        let link_error = |e: wasmtime::Error| LoadError::Link {
            plugin: name.clone(),
            version: version.clone(),
            message: format!("{e:#}"),
        };
        let instance_pre = env.linker.instantiate_pre(&component).map_err(link_error)?;
        let pre = match world {
            World::IdentityProvider => WorldPre::Identity(
                identity_provider::IdentityProviderPre::new(instance_pre).map_err(link_error)?,
            ),
            World::PaymentProvider => WorldPre::Payment(
                payment_provider::PaymentProviderPre::new(instance_pre).map_err(link_error)?,
            ),
            World::CertificateFormat => WorldPre::Format(
                certificate_format::CertificateFormatPre::new(instance_pre).map_err(link_error)?,
            ),
            World::DistributionChannel => WorldPre::Distribution(
                distribution_channel::DistributionChannelPre::new(instance_pre)
                    .map_err(link_error)?,
            ),
            World::RolloutPolicy => WorldPre::Policy(
                rollout_policy::RolloutPolicyPre::new(instance_pre).map_err(link_error)?,
            ),
            World::EventSubscriber => WorldPre::Events(
                event_subscriber::EventSubscriberPre::new(instance_pre).map_err(link_error)?,
            ),
        };

        let ctx = Arc::new(PluginContext {
            name: name.clone(),
            version: version.clone(),
            caps: caps.clone(),
            config: env
                .configs
                .get(&name)
                .cloned()
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            services: env.services.clone(),
            max_http_body: (env.limits.max_http_body_kib as usize).saturating_mul(1024),
        });
        // A no-op unless a recorder is installed (`divoc serve` installs
        // one before it loads plugins).
        let call_seconds = metrics::histogram!(
            "divoc_plugin_call_duration_seconds",
            "plugin" => name.clone(),
            "world" => world.to_string(),
        );
        let plugin = LoadedPlugin {
            call_seconds,
            info: PluginInfo {
                name: name.clone(),
                version: version.clone(),
                world,
                wit: manifest.plugin.wit.clone(),
                dir: dir.to_path_buf(),
                digest: digest(manifest_bytes, component_bytes),
                loaded_at: SystemTime::now(),
                capabilities: caps,
                limits,
                format_prefixes: manifest
                    .format
                    .as_ref()
                    .map(|f| f.prefixes.clone())
                    .unwrap_or_default(),
            },
            ctx,
            engine: env.engine.clone(),
            pre,
            warm: Mutex::new(Vec::new()),
            warm_max: env.limits.warm_instances,
            max_consecutive_faults: env.limits.max_consecutive_faults.max(1),
            health: Health::default(),
        };
        // Smoke test: a version that cannot even be instantiated (start
        // function traps, memory too large, ...) never replaces a working one.
        let warm = plugin.instantiate().map_err(|e| LoadError::SmokeTest {
            plugin: name,
            version,
            message: e.to_string(),
        })?;
        plugin.put_back(warm);
        Ok(plugin)
    }

    fn check_exports(
        engine: &wasmtime::Engine,
        component: &Component,
        manifest: &Manifest,
    ) -> Result<World, LoadError> {
        let name = &manifest.plugin.name;
        let version = manifest.plugin.version.to_string();
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let mut found = None;
        for export in &exports {
            let Some(parsed) = parse_interface_name(export) else {
                continue;
            };
            if parsed.package != WIT_PACKAGE {
                continue;
            }
            let Some(world) = World::from_export_interface(parsed.interface) else {
                continue;
            };
            match &parsed.version {
                Some(v) if compatible(v) => {}
                _ => {
                    return Err(LoadError::IncompatibleContract {
                        plugin: name.clone(),
                        version,
                        found: export.clone(),
                        supported: HOST_WIT_VERSION.to_string(),
                        supported_range: supported_range(),
                    })
                }
            }
            found = Some(world);
        }
        let world = found.ok_or_else(|| LoadError::NoWorld {
            plugin: name.clone(),
            version: version.clone(),
            exports: if exports.is_empty() {
                "none".into()
            } else {
                exports.join(", ")
            },
        })?;
        if world != manifest.plugin.world {
            return Err(LoadError::WorldMismatch {
                plugin: name.clone(),
                version,
                manifest: manifest.plugin.world.to_string(),
                component: world.to_string(),
            });
        }
        Ok(world)
    }

    fn check_imports(
        engine: &wasmtime::Engine,
        component: &Component,
        manifest: &Manifest,
    ) -> Result<(), LoadError> {
        let name = &manifest.plugin.name;
        let version = manifest.plugin.version.to_string();
        let requested = manifest.requested_capability_names();
        for (import, _) in component.component_type().imports(engine) {
            let parsed = parse_interface_name(import).filter(|p| p.package == WIT_PACKAGE);
            let Some(parsed) = parsed else {
                return Err(LoadError::UnknownImport {
                    plugin: name.clone(),
                    version,
                    import: import.to_string(),
                });
            };
            if !parsed.version.as_ref().is_some_and(compatible) {
                return Err(LoadError::IncompatibleContract {
                    plugin: name.clone(),
                    version,
                    found: import.to_string(),
                    supported: HOST_WIT_VERSION.to_string(),
                    supported_range: supported_range(),
                });
            }
            if parsed.interface == "types" {
                continue;
            }
            if !CAPABILITIES.contains(&parsed.interface) {
                return Err(LoadError::UnknownImport {
                    plugin: name.clone(),
                    version,
                    import: import.to_string(),
                });
            }
            if !requested.contains(&parsed.interface) {
                return Err(LoadError::NotRequested {
                    plugin: name.clone(),
                    version,
                    capability: parsed.interface.to_string(),
                });
            }
        }
        Ok(())
    }

    fn limits(env: &LoadEnv<'_>, manifest: &Manifest) -> Result<EffectiveLimits, LoadError> {
        let s = env.limits;
        let m = &manifest.limits;
        let too_high = |limit: &str, requested: u64, ceiling: u64| LoadError::LimitTooHigh {
            plugin: manifest.plugin.name.clone(),
            version: manifest.plugin.version.to_string(),
            limit: limit.to_string(),
            requested,
            ceiling,
        };
        let deadline_ms = m.deadline_ms.unwrap_or(s.default_deadline_ms);
        if deadline_ms > s.max_deadline_ms {
            return Err(too_high("deadline-ms", deadline_ms, s.max_deadline_ms));
        }
        let memory_mib = m
            .memory_mib
            .unwrap_or(s.default_memory_mib.min(env.max_memory_mib));
        if memory_mib > env.max_memory_mib {
            return Err(too_high("memory-mib", memory_mib, env.max_memory_mib));
        }
        let output_kib = m.output_kib.unwrap_or(s.default_output_kib);
        if output_kib > s.max_output_kib {
            return Err(too_high("output-kib", output_kib, s.max_output_kib));
        }
        if let Some(fuel) = m.fuel {
            if fuel > s.max_fuel {
                return Err(too_high("fuel", fuel, s.max_fuel));
            }
        }
        Ok(EffectiveLimits {
            deadline_ms,
            memory_bytes: memory_mib << 20,
            fuel: m.fuel,
            output_bytes: output_kib << 10,
        })
    }

    fn instantiate(&self) -> Result<Warm, PluginError> {
        let mut store = Store::new(
            &self.engine,
            StoreState::new(self.ctx.clone(), self.info.limits.memory_bytes as usize),
        );
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        // When the epoch deadline passes, charge only guest time: if host
        // calls used part of it, extend by what is left; otherwise interrupt.
        store.epoch_deadline_callback(|ctx| {
            let left = ctx.data().guest_time_left();
            if left.is_zero() {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
                Ok(wasmtime::UpdateDeadline::Continue(deadline_ticks(ms)))
            }
        });
        self.arm(&mut store);
        let instance = match &self.pre {
            WorldPre::Identity(p) => p.instantiate(&mut store).map(WorldInstance::Identity),
            WorldPre::Payment(p) => p.instantiate(&mut store).map(WorldInstance::Payment),
            WorldPre::Format(p) => p.instantiate(&mut store).map(WorldInstance::Format),
            WorldPre::Distribution(p) => p.instantiate(&mut store).map(WorldInstance::Distribution),
            WorldPre::Policy(p) => p.instantiate(&mut store).map(WorldInstance::Policy),
            WorldPre::Events(p) => p.instantiate(&mut store).map(WorldInstance::Events),
        };
        match instance {
            Ok(instance) => Ok(Warm { store, instance }),
            Err(e) => Err(self.classify(&store, e)),
        }
    }

    /// Sets the deadline, fuel and bookkeeping for the next call.
    fn arm(&self, store: &mut Store<StoreState>) {
        let limits = &self.info.limits;
        store.set_epoch_deadline(deadline_ticks(limits.deadline_ms));
        // Fuel is always on in the engine; a plugin without a budget gets
        // effectively unlimited fuel and is bounded by its deadline instead.
        let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
        let state = store.data_mut();
        state.memory_limit_hit = false;
        state.deadline = Duration::from_millis(limits.deadline_ms);
        state.call_started = Instant::now();
        state.host_time = Duration::ZERO;
    }

    fn put_back(&self, warm: Warm) {
        let mut pool = self.warm.lock();
        if pool.len() < self.warm_max {
            pool.push(warm);
        }
    }

    fn classify(&self, store: &Store<StoreState>, e: wasmtime::Error) -> PluginError {
        let plugin = self.info.name.clone();
        let version = self.info.version.clone();
        if store.data().memory_limit_hit {
            return PluginError::MemoryLimit {
                plugin,
                version,
                limit_bytes: self.info.limits.memory_bytes,
            };
        }
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => PluginError::Timeout {
                plugin,
                version,
                deadline_ms: self.info.limits.deadline_ms,
            },
            Some(wasmtime::Trap::OutOfFuel) => PluginError::OutOfFuel {
                plugin,
                version,
                fuel: self.info.limits.fuel.unwrap_or(u64::MAX),
            },
            Some(trap) => PluginError::Trap {
                plugin,
                version,
                message: trap.to_string(),
            },
            None => PluginError::Trap {
                plugin,
                version,
                message: format!("{e:#}"),
            },
        }
    }

    /// Runs `f` on a warm (or fresh) instance under the plugin's limits.
    pub(crate) fn call<R: Serialize>(
        &self,
        f: impl FnOnce(&mut Store<StoreState>, &WorldInstance) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        if let Some(reason) = self.health.disabled.lock().clone() {
            return Err(PluginError::Disabled {
                plugin: self.info.name.clone(),
                version: self.info.version.clone(),
                reason,
            });
        }
        self.health.calls.fetch_add(1, Ordering::Relaxed);
        let pooled = self.warm.lock().pop();
        let mut warm = match pooled {
            Some(mut w) => {
                self.arm(&mut w.store);
                w
            }
            // Instantiation ran under its own deadline; the call gets a full
            // one, so a plugin without warm instances is not penalised.
            None => match self.instantiate() {
                Ok(mut w) => {
                    self.arm(&mut w.store);
                    w
                }
                Err(e) => return Err(self.fault(e)),
            },
        };
        let started = std::time::Instant::now();
        let outcome = f(&mut warm.store, &warm.instance);
        self.call_seconds.record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(result) => {
                let size = output_size(&result);
                if size > self.info.limits.output_bytes {
                    return Err(self.fault(PluginError::OutputTooLarge {
                        plugin: self.info.name.clone(),
                        version: self.info.version.clone(),
                        size,
                        limit: self.info.limits.output_bytes,
                    }));
                }
                self.health.consecutive_faults.store(0, Ordering::Relaxed);
                self.put_back(warm);
                Ok(result)
            }
            // The instance may be in any state after a trap: drop it.
            Err(e) => Err(self.fault(self.classify(&warm.store, e))),
        }
    }

    /// Records a fault; disables the plugin after too many in a row.
    fn fault(&self, error: PluginError) -> PluginError {
        self.health.faults.fetch_add(1, Ordering::Relaxed);
        let consecutive = self
            .health
            .consecutive_faults
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        let message = error.to_string();
        tracing::warn!(plugin = %self.info.name, version = %self.info.version, "{message}");
        *self.health.last_error.lock() = Some(message.clone());
        if consecutive >= self.max_consecutive_faults {
            let mut disabled = self.health.disabled.lock();
            if disabled.is_none() {
                tracing::error!(
                    plugin = %self.info.name,
                    version = %self.info.version,
                    consecutive,
                    "plugin disabled after repeated faults; reload it to re-enable"
                );
                *disabled = Some(format!("{consecutive} consecutive faults; last: {message}"));
            }
        }
        error
    }

    pub fn is_disabled(&self) -> bool {
        self.health.disabled.lock().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_compatibility_follows_semver() {
        assert!(compatible(&semver::Version::new(1, 0, 0)));
        assert!(compatible(&semver::Version::new(1, 1, 0)));
        assert!(compatible(&semver::Version::new(1, 2, 0)));
        assert!(!compatible(&semver::Version::new(1, 3, 0)));
        assert!(!compatible(&semver::Version::new(2, 0, 0)));
        assert!(!compatible(&semver::Version::new(0, 9, 0)));
    }

    #[test]
    fn interface_names_parse() {
        let p = parse_interface_name("divoc:plugin/identity@1.0.0").unwrap();
        assert_eq!(p.package, "divoc:plugin");
        assert_eq!(p.interface, "identity");
        assert_eq!(p.version, Some(semver::Version::new(1, 0, 0)));
        assert!(parse_interface_name("plain-name").is_none());
    }
}
