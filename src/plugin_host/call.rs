//! One call into a plugin: a fresh store and instance from the template, the ABI dance
//! (`berth_alloc`, write inputs, call, read `(ptr << 32) | len`), and the classification of
//! whatever went wrong.

use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::{
    Caller, Engine, Extern, Instance, Linker, Memory, ResourceLimiter, Store, Trap, TypedFunc,
};

use super::output::{parse_output, PluginOutput};
use super::{CompiledPlugin, PluginError, PluginHost};

/// One line a plugin logged through `berth_v1.log`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    pub message: String,
}

/// What a call produced besides its result.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport<T> {
    pub result: T,
    pub duration: Duration,
    /// Fuel consumed, when the host counts fuel.
    pub fuel: Option<u64>,
    pub logs: Vec<LogLine>,
    /// Log lines dropped over the per-call budget.
    pub dropped_logs: usize,
}

/// The store's data: the memory cap and the bounded log buffer.
pub struct CallState {
    memory_limit: usize,
    /// Set when the module asked for more memory than it may have.
    out_of_memory: bool,
    log_budget: usize,
    logs: Vec<LogLine>,
    dropped_logs: usize,
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.out_of_memory = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 10_000)
    }
}

/// Longest line kept from `berth_v1.log`.
const MAX_LOG_LINE: usize = 512;

/// The host functions ABI v1 grants.
pub(super) fn linker(engine: &Engine) -> anyhow::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    linker.func_wrap(
        "berth_v1",
        "log",
        |mut caller: Caller<'_, CallState>,
         level: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                return Err(wasmtime::Error::msg(
                    "abi: berth_v1.log called without an exported memory",
                ));
            };
            let bytes = read(&memory, &caller, ptr, len)
                .ok_or_else(|| wasmtime::Error::msg("abi: berth_v1.log points outside memory"))?;
            let state = caller.data_mut();
            let take = bytes.len().min(MAX_LOG_LINE);
            if take > state.log_budget {
                state.dropped_logs += 1;
                return Ok(());
            }
            state.log_budget -= take;
            let message: String = String::from_utf8_lossy(&bytes[..take])
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let level = match level {
                0 => "debug",
                2 => "warn",
                3 => "error",
                _ => "info",
            };
            state.logs.push(LogLine { level, message });
            Ok(())
        },
    )?;
    linker.func_wrap(
        "env",
        "abort",
        |_: Caller<'_, CallState>,
         _msg: i32,
         _file: i32,
         _line: i32,
         _col: i32|
         -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg("the module called env.abort"))
        },
    )?;
    Ok(linker)
}

/// `len` bytes at `ptr`, or `None` when that range is not inside the memory.
fn read(memory: &Memory, store: impl wasmtime::AsContext, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    memory
        .data(&store)
        .get(ptr..ptr.checked_add(len)?)
        .map(<[u8]>::to_vec)
}

struct Call<'a> {
    host: &'a PluginHost,
    store: Store<CallState>,
    instance: Instance,
    memory: Memory,
    started: Instant,
}

impl<'a> Call<'a> {
    fn start(host: &'a PluginHost, plugin: &CompiledPlugin) -> Result<Self, PluginError> {
        let state = CallState {
            memory_limit: host.settings.memory_limit_bytes,
            out_of_memory: false,
            log_budget: host.settings.max_log_bytes,
            logs: Vec::new(),
            dropped_logs: 0,
        };
        let mut store = Store::new(host.engine(), state);
        store.limiter(|state| state);
        store.set_epoch_deadline(host.deadline_ticks());
        if host.options.fuel {
            store
                .set_fuel(u64::MAX)
                .map_err(|e| PluginError::Crash(e.to_string()))?;
        }
        let started = Instant::now();
        let instance = plugin
            .template
            .instantiate(&mut store)
            .map_err(|e| classify(&store, e))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| PluginError::AbiError("no exported memory".into()))?;
        Ok(Self {
            host,
            store,
            instance,
            memory,
            started,
        })
    }

    fn func<P: wasmtime::WasmParams, R: wasmtime::WasmResults>(
        &mut self,
        name: &str,
    ) -> Result<TypedFunc<P, R>, PluginError> {
        self.instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .map_err(|e| PluginError::AbiError(format!("{name}: {e}")))
    }

    /// Copies `bytes` into a buffer from `berth_alloc`.
    fn write(&mut self, bytes: &[u8]) -> Result<(i32, i32), PluginError> {
        let len = i32::try_from(bytes.len())
            .map_err(|_| PluginError::AbiError("input too large".into()))?;
        let alloc = self.func::<i32, i32>("berth_alloc")?;
        let ptr = alloc
            .call(&mut self.store, len)
            .map_err(|e| classify(&self.store, e))?;
        if ptr == 0 {
            return Err(PluginError::AbiError(format!(
                "berth_alloc({len}) returned 0"
            )));
        }
        let offset = ptr as u32 as usize;
        self.memory.write(&mut self.store, offset, bytes).map_err(|_| {
            PluginError::AbiError(format!("berth_alloc({len}) returned {offset:#x}, which is not {len} bytes inside memory"))
        })?;
        Ok((ptr, len))
    }

    /// Reads the `(ptr << 32) | len` output of a call.
    fn output(&self, packed: i64) -> Result<String, PluginError> {
        let ptr = (packed as u64 >> 32) as u32;
        let len = packed as u64 as u32;
        let max = self.host.settings.max_output_bytes;
        if len as usize > max {
            return Err(PluginError::BadOutput(format!(
                "the output is {len} bytes; the limit is {max}"
            )));
        }
        let bytes = read(&self.memory, &self.store, ptr as i32, len as i32).ok_or_else(|| {
            PluginError::AbiError(format!(
                "the output ({len} bytes at {ptr:#x}) is not inside memory"
            ))
        })?;
        String::from_utf8(bytes)
            .map_err(|_| PluginError::BadOutput("the output is not UTF-8".into()))
    }

    fn report<T>(mut self, result: T) -> CallReport<T> {
        let fuel = self
            .host
            .options
            .fuel
            .then(|| u64::MAX - self.store.get_fuel().unwrap_or(u64::MAX));
        let state = self.store.data_mut();
        CallReport {
            result,
            duration: self.started.elapsed(),
            fuel,
            logs: std::mem::take(&mut state.logs),
            dropped_logs: state.dropped_logs,
        }
    }
}

/// Maps a wasmtime error to a failure class. The limiter's flag decides `oom`: a refused
/// growth surfaces as whatever the guest does next (often a trap), not as a distinct trap code.
fn classify(store: &Store<CallState>, error: wasmtime::Error) -> PluginError {
    if store.data().out_of_memory {
        return PluginError::Oom;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout,
        Some(Trap::StackOverflow) => PluginError::Crash("stack overflow".into()),
        Some(trap) => PluginError::Crash(trap.to_string()),
        None => {
            let message = format!("{error:#}");
            match message.strip_prefix("abi: ") {
                Some(abi) => PluginError::AbiError(abi.to_owned()),
                None => PluginError::Crash(message.lines().next().unwrap_or_default().to_owned()),
            }
        }
    }
}

pub(super) fn validate(
    host: &PluginHost,
    plugin: &CompiledPlugin,
    context: &str,
    value: &str,
) -> Result<CallReport<PluginOutput>, (PluginError, CallReport<()>)> {
    let mut call = match Call::start(host, plugin) {
        Ok(call) => call,
        Err(error) => {
            return Err((
                error,
                CallReport {
                    result: (),
                    duration: Duration::ZERO,
                    fuel: None,
                    logs: Vec::new(),
                    dropped_logs: 0,
                },
            ))
        }
    };
    let outcome = (|| {
        let (ctx_ptr, ctx_len) = call.write(context.as_bytes())?;
        let (val_ptr, val_len) = call.write(value.as_bytes())?;
        let validate = call.func::<(i32, i32, i32, i32), i64>("berth_validate")?;
        let packed = validate
            .call(&mut call.store, (ctx_ptr, ctx_len, val_ptr, val_len))
            .map_err(|e| classify(&call.store, e))?;
        let text = call.output(packed)?;
        parse_output(&text)
    })();
    match outcome {
        Ok(output) => Ok(call.report(output)),
        Err(error) => Err((error, call.report(()))),
    }
}

pub(super) fn validate_settings(
    host: &PluginHost,
    plugin: &CompiledPlugin,
    settings: &str,
) -> Result<Option<(bool, Option<String>)>, PluginError> {
    if !plugin.info.validates_settings {
        return Ok(None);
    }
    let mut call = Call::start(host, plugin)?;
    let (ptr, len) = call.write(settings.as_bytes())?;
    let check = call.func::<(i32, i32), i64>("berth_validate_settings")?;
    let packed = check
        .call(&mut call.store, (ptr, len))
        .map_err(|e| classify(&call.store, e))?;
    let text = call.output(packed)?;
    super::output::parse_settings_output(&text).map(Some)
}

pub(super) fn abi_version(host: &PluginHost, plugin: &CompiledPlugin) -> Result<i32, PluginError> {
    let mut call = Call::start(host, plugin)?;
    let version = call.func::<(), i32>("berth_abi_version")?;
    version
        .call(&mut call.store, ())
        .map_err(|e| classify(&call.store, e))
}
