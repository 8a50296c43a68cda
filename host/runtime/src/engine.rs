//! The one place the wasmtime `Engine` is configured.
//!
//! - Epoch interruption enforces per-call deadlines: a ticker thread advances
//!   the epoch every [`EPOCH_TICK`], and each call sets its deadline in ticks.
//!   (Fuel is also enabled so a plugin may ask for an instruction budget.)
//! - The pooling allocator pre-reserves instance slots so that a fresh
//!   instance per call costs microseconds. If the machine refuses the virtual
//!   memory it needs, the engine falls back to on-demand allocation.
//! - Compiled components are cached on disk by wasmtime's cache, keyed by a
//!   hash of the component's bytes and the engine's settings, so a restart
//!   loads plugins without recompiling them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often the epoch advances; the resolution of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Engine-wide settings from the operator's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EngineSettings {
    /// Use the pooling instance allocator (falls back when unavailable).
    pub pooling: bool,
    /// Instance slots in the pool (concurrent instances across all plugins).
    pub pool_instances: u32,
    /// The largest linear memory any plugin may have, in MiB.
    pub max_memory_mib: u64,
    /// Where compiled components are cached; none disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            pooling: true,
            pool_instances: 256,
            max_memory_mib: 128,
            cache_dir: None,
        }
    }
}

/// A configured engine plus its epoch ticker.
pub(crate) struct Engine {
    pub engine: wasmtime::Engine,
    pub pooling: bool,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Engine {
    pub fn new(settings: &EngineSettings) -> anyhow::Result<Engine> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.consume_fuel(true);
        if let Some(dir) = &settings.cache_dir {
            std::fs::create_dir_all(dir)?;
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir.clone());
            config.cache(Some(wasmtime::Cache::new(cache)?));
        }
        let max_memory = settings.max_memory_mib.saturating_mul(1 << 20);

        let mut pooling = false;
        let engine = if settings.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            let n = settings.pool_instances.max(1);
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(2))
                .total_memories(n.saturating_mul(2))
                .total_tables(n.saturating_mul(2))
                .max_memory_size(max_memory as usize)
                .max_memories_per_component(4)
                .max_tables_per_component(4)
                .max_core_instances_per_component(16)
                // Resetting a freed instance's memory is an madvise per
                // slot; batching 16 of them cut a fresh-instance call by
                // ~10% (benches/plugin_calls.rs). A full pool flushes the
                // batch before it refuses an allocation, so nothing is lost.
                // (Keeping memory resident instead was slower: the memset
                // of a kept MiB costs more than the page faults it saves.)
                .decommit_batch_size(16);
            let mut pooled = config.clone();
            pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
            match wasmtime::Engine::new(&pooled) {
                Ok(engine) => {
                    pooling = true;
                    engine
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "pooling allocator unavailable; using on-demand instance allocation"
                    );
                    wasmtime::Engine::new(&config)?
                }
            }
        } else {
            wasmtime::Engine::new(&config)?
        };

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("divoc-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })?
        };
        Ok(Engine {
            engine,
            pooling,
            stop,
            ticker: Some(ticker),
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// Deadline in epoch ticks for a call of `deadline_ms`.
pub(crate) fn deadline_ticks(deadline_ms: u64) -> u64 {
    let tick = EPOCH_TICK.as_millis().max(1) as u64;
    deadline_ms.div_ceil(tick).max(1)
}
