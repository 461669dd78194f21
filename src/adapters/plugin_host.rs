//! The WebAssembly policy host (SPEC §3): compiles operator-uploaded modules once per content
//! hash, checks them against ABI v1 at upload, and runs each call in a fresh instance from a
//! pre-instantiated template on wasmtime's pooling allocator, under a deadline (epoch
//! interruption), a memory cap (resource limiter), a bounded stack, bounded output and logs.
//! Whatever a module does, the failure stays inside its call and is classified.

mod call;
mod inspect;
mod output;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig,
};

pub use call::{CallReport, LogLine, SettingsAnswer};
pub use inspect::{Conformance, Failed, Item, ModuleInfo, ITEMS as CONFORMANCE};
pub use output::{parse_output, parse_settings_output, PluginOutput, PluginReason};

use crate::configuration::PluginSettings;

/// The WebAssembly features a module may use (conformance item 3); the engine's validator
/// refuses a module that uses any other.
pub const FEATURES: &str = "WebAssembly 2.0 (mutable globals, sign extension, non-trapping \
float-to-int, multi-value, bulk memory, reference types, 128-bit SIMD), relaxed SIMD, tail calls, \
extended constant expressions; not threads, multiple memories, memory64, GC or exceptions";

/// The address space each instance slot reserves for its memory, and the guard after it. With
/// a 32-bit memory's whole 4 GiB reserved (virtual address space only: pages are committed as
/// the memory grows, up to `plugins.memory_limit_bytes`), every load and store is in bounds or
/// hits the guard, so compiled code needs no bounds check per access, which costs a scanning
/// plugin about half its speed. 32 slots reserve about 130 GiB of the 128 TiB a 64-bit process
/// has.
const MEMORY_RESERVATION: u64 = 1 << 32;
const MEMORY_GUARD: u64 = 32 << 20;

/// How often the epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Whether a host's calls count fuel. Counting is exact (about one unit per instruction, the
/// same on every machine) but costs a scanning plugin about a seventh of its time, and fuel is
/// never a limit (the deadline is), so the service's own calls do not count it: the tools an
/// author measures a plugin with do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metering {
    /// The authoring tools: `berth plugin run` and the admin test endpoint.
    Fuel,
    /// Signups: the deadline bounds a call, and its time is measured.
    DeadlineOnly,
}

/// Why a call failed. Each class denies the submission unless the binding says
/// `on_error = "allow"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("the call ran past its deadline")]
    Timeout,
    #[error("the call went over its memory limit")]
    Oom,
    #[error("the module crashed: {0}")]
    Crash(String),
    #[error("the module broke the ABI: {0}")]
    AbiError(String),
    #[error("the module's output is not valid: {0}")]
    BadOutput(String),
}

impl PluginError {
    /// The class operators see in logs and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            PluginError::Timeout => "timeout",
            PluginError::Oom => "oom",
            PluginError::Crash(_) => "crash",
            PluginError::AbiError(_) => "abi_error",
            PluginError::BadOutput(_) => "bad_output",
        }
    }
}

/// A module validated against ABI v1 and compiled, ready to instantiate.
pub struct CompiledPlugin {
    pub info: ModuleInfo,
    template: InstancePre<call::CallState>,
}

/// The process's plugin host. Cheap to share (`Arc`).
pub struct PluginHost {
    engine: Engine,
    linker: Linker<call::CallState>,
    settings: PluginSettings,
    metering: Metering,
    compiled: Mutex<HashMap<String, Arc<CompiledPlugin>>>,
    stop_ticker: Arc<AtomicBool>,
}

/// How much of each pooled plugin memory (and table) stays mapped between calls.
const KEEP_RESIDENT: usize = 1 << 20;
/// Memories unmapped together after calls (see `PoolingAllocationConfig::decommit_batch_size`).
const DECOMMIT_BATCH: usize = 16;

/// Distinct modules kept compiled; past this the cache starts over (modules recompile on use).
const MAX_CACHED_MODULES: usize = 256;

impl PluginHost {
    /// The host for `settings`, counting fuel or not (see [`Metering`]).
    pub fn new(settings: &PluginSettings, metering: Metering) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(settings.max_instances)
            .total_memories(settings.max_instances)
            .total_tables(settings.max_instances)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .table_elements(10_000)
            .max_core_instance_size(1 << 20)
            .max_memory_size(settings.memory_limit_bytes)
            // A finished call's memory is reset for the next: the pages it dirtied (found with
            // `PAGEMAP_SCAN` where the kernel has it) are rewritten in place, up to
            // KEEP_RESIDENT, instead of being unmapped and faulted in again, which cost every
            // call page faults and a TLB flush on every core. What must still be unmapped is
            // unmapped in batches.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .decommit_batch_size(DECOMMIT_BATCH);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .consume_fuel(metering == Metering::Fuel)
            .max_wasm_stack(settings.stack_bytes)
            .wasm_multi_memory(false)
            .wasm_memory64(false)
            .wasm_gc(false)
            .wasm_stack_switching(false)
            .memory_init_cow(true)
            .memory_reservation(MEMORY_RESERVATION.max(settings.memory_limit_bytes as u64))
            .memory_guard_size(MEMORY_GUARD)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let linker = call::linker(&engine)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let stop = stop_ticker.clone();
        std::thread::Builder::new()
            .name("berth-plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })?;

        Ok(Self {
            engine,
            linker,
            settings: settings.clone(),
            metering,
            compiled: Mutex::new(HashMap::new()),
            stop_ticker,
        })
    }

    pub fn settings(&self) -> &PluginSettings {
        &self.settings
    }

    /// Whether this host's calls count fuel.
    pub fn counts_fuel(&self) -> bool {
        self.metering == Metering::Fuel
    }

    /// The content hash modules are cached and stored under: `sha256:<hex>`.
    pub fn hash(bytes: &[u8]) -> String {
        let digest = Sha256::digest(bytes);
        let mut out = String::from("sha256:");
        for byte in digest {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// The compiled plugin for `bytes`, checking the module against ABI v1 the first time its
    /// hash is seen. `Err` is a reason fit to show the operator who uploaded it.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<CompiledPlugin>, String> {
        let hash = Self::hash(bytes);
        if let Some(found) = self.compiled.lock().expect("plugin cache").get(&hash) {
            return Ok(found.clone());
        }
        let report = inspect::conformance(self, bytes, hash.clone());
        let plugin = match report.plugin {
            Some(plugin) => Arc::new(plugin),
            None => {
                return Err(report
                    .first_failure()
                    .unwrap_or("the module does not conform to ABI v1")
                    .to_owned())
            }
        };
        let mut cache = self.compiled.lock().expect("plugin cache");
        if cache.len() >= MAX_CACHED_MODULES {
            cache.clear();
        }
        cache.insert(hash, plugin.clone());
        Ok(plugin)
    }

    /// Every conformance item for `bytes` (what `berth plugin check` prints), without caching.
    pub fn conformance(&self, bytes: &[u8]) -> Conformance {
        inspect::conformance(self, bytes, Self::hash(bytes))
    }

    /// The compiled plugin for a hash already stored, if it is in the cache.
    pub fn cached(&self, hash: &str) -> Option<Arc<CompiledPlugin>> {
        self.compiled
            .lock()
            .expect("plugin cache")
            .get(hash)
            .cloned()
    }

    /// Runs `berth_validate` in a fresh instance. Blocking: call it off the async executor.
    pub fn validate(
        &self,
        plugin: &CompiledPlugin,
        context: &str,
        value: &str,
    ) -> Result<CallReport<PluginOutput>, (PluginError, CallReport<()>)> {
        call::validate(self, plugin, context, value)
    }

    /// Runs `berth_validate_settings` in a fresh instance, with its logs. Call it only for a
    /// plugin that exports it (`info.validates_settings`). Blocking, like [`Self::validate`].
    pub fn validate_settings(
        &self,
        plugin: &CompiledPlugin,
        settings: &str,
    ) -> Result<CallReport<SettingsAnswer>, (PluginError, CallReport<()>)> {
        call::validate_settings(self, plugin, settings)
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis() as u64;
        self.settings.timeout_ms.div_ceil(tick) + 1
    }

    fn compile_module(&self, bytes: &[u8]) -> anyhow::Result<Module> {
        Ok(Module::new(&self.engine, bytes)?)
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}
