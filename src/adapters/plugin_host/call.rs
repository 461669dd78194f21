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
    /// From instantiation (which runs the module's `start` function) to the end of the call.
    pub duration: Duration,
    /// Fuel consumed (wasmtime's count, about one unit per WebAssembly instruction), from
    /// instantiation to the end of the call. `None` when the call trapped inside the module
    /// (timeout, oom, a trap): compiled code keeps the count in a register and does not write it
    /// back on a trap, so the figure would be too low. Also `None` on a host that does not count
    /// fuel ([`super::Metering::DeadlineOnly`]).
    pub fuel: Option<u64>,
    pub logs: Vec<LogLine>,
    /// Log lines dropped over the per-call budget.
    pub dropped_logs: usize,
}

/// The store's data: the memory cap, the bounded log buffer and what `env.abort` said.
pub struct CallState {
    memory_limit: usize,
    /// Set when the module asked for more memory than it may have.
    out_of_memory: bool,
    log_budget: usize,
    logs: Vec<LogLine>,
    dropped_logs: usize,
    /// The decoded `env.abort` message, location included, when the module called it.
    aborted: Option<String>,
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
            let (level, message) = match level {
                0 => ("debug", message),
                1 => ("info", message),
                2 => ("warn", message),
                3 => ("error", message),
                other => (
                    "info",
                    format!("[log level {other} is not 0..3; shown as info] {message}"),
                ),
            };
            state.logs.push(LogLine { level, message });
            Ok(())
        },
    )?;
    linker.func_wrap(
        "env",
        "abort",
        |mut caller: Caller<'_, CallState>,
         msg: i32,
         file: i32,
         line: i32,
         col: i32|
         -> wasmtime::Result<()> {
            let text = match caller.get_export("memory") {
                Some(Extern::Memory(memory)) => {
                    let data = memory.data(&caller);
                    describe_abort(data, msg, file, line, col)
                }
                _ => describe_abort(&[], msg, file, line, col),
            };
            caller.data_mut().aborted = Some(text);
            Err(wasmtime::Error::msg("the module called env.abort"))
        },
    )?;
    Ok(linker)
}

/// Longest `env.abort` message or file name kept, in UTF-16 code units.
const MAX_ABORT_UNITS: usize = 500;

/// AssemblyScript's `abort(msg, file, line, col)` in words: `msg` and `file` point at
/// AssemblyScript strings (UTF-16LE, their byte length in the 4 bytes before the pointer), or are
/// 0. Whatever the pointers, this stays inside `memory`, reads at most [`MAX_ABORT_UNITS`] units
/// of each string and replaces control characters.
pub(super) fn describe_abort(memory: &[u8], msg: i32, file: i32, line: i32, col: i32) -> String {
    let message = as_string(memory, msg).unwrap_or_else(|| "(no message)".into());
    match as_string(memory, file) {
        Some(file) => format!("{message} (at {file}:{line}:{col})"),
        None if line != 0 => format!("{message} (at line {line}, column {col})"),
        None => message,
    }
}

/// The AssemblyScript string at `ptr`, bounded and cleaned; `None` for a null or out-of-memory
/// pointer.
fn as_string(memory: &[u8], ptr: i32) -> Option<String> {
    let ptr = ptr as u32 as usize;
    if ptr < 4 {
        return None;
    }
    let header = memory.get(ptr - 4..ptr)?;
    let bytes = u32::from_le_bytes(header.try_into().ok()?) as usize;
    let units = (bytes / 2).min(MAX_ABORT_UNITS);
    let data = memory.get(ptr..ptr.checked_add(units * 2)?)?;
    let code_units = data
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    let mut text: String = char::decode_utf16(code_units)
        .map(|c| match c {
            Ok(c) if !c.is_control() => c,
            Ok(_) => ' ',
            Err(_) => char::REPLACEMENT_CHARACTER,
        })
        .collect();
    if bytes / 2 > units {
        text.push('…');
    }
    Some(text)
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
            aborted: None,
        };
        let mut store = Store::new(host.engine(), state);
        store.limiter(|state| state);
        store.set_epoch_deadline(host.deadline_ticks());
        if host.counts_fuel() {
            store
                .set_fuel(FUEL)
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
        // An empty input needs no room: any pointer, even 0, is fine for `berth_alloc(0)`.
        if len == 0 {
            return Ok((ptr, 0));
        }
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

    fn report<T>(mut self, result: T, trapped: bool) -> CallReport<T> {
        let fuel = (self.host.counts_fuel() && !trapped)
            .then(|| FUEL - self.store.get_fuel().unwrap_or(FUEL));
        let state = self.store.data_mut();
        CallReport {
            result,
            duration: self.started.elapsed(),
            fuel,
            logs: std::mem::take(&mut state.logs),
            dropped_logs: state.dropped_logs,
        }
    }

    /// Runs `f` on this call, then reports it with its result or its failure.
    fn finish<T>(
        mut self,
        f: impl FnOnce(&mut Self) -> Result<T, PluginError>,
    ) -> Result<CallReport<T>, (PluginError, CallReport<()>)> {
        match f(&mut self) {
            Ok(value) => Ok(self.report(value, false)),
            Err(error) => {
                // A trap leaves the fuel count stale; a host-side failure (abi_error,
                // bad_output, env.abort) happens between instructions, where it is exact.
                let trapped = matches!(error, PluginError::Timeout | PluginError::Oom)
                    || matches!(&error, PluginError::Crash(_) if self.store.data().aborted.is_none());
                Err((error, self.report((), trapped)))
            }
        }
    }
}

/// The fuel a call starts with: counted, never a limit (the deadline is the limit).
const FUEL: u64 = u64::MAX;

/// Maps a wasmtime error to a failure class. The limiter's flag decides `oom`: a refused
/// growth surfaces as whatever the guest does next (often a trap), not as a distinct trap code.
fn classify(store: &Store<CallState>, error: wasmtime::Error) -> PluginError {
    if store.data().out_of_memory {
        return PluginError::Oom;
    }
    if let Some(message) = &store.data().aborted {
        return PluginError::Crash(format!("env.abort: {message}"));
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

/// A call that could not even start: nothing ran, so there is nothing to report but the error.
fn not_started(error: PluginError) -> (PluginError, CallReport<()>) {
    (
        error,
        CallReport {
            result: (),
            duration: Duration::ZERO,
            fuel: None,
            logs: Vec::new(),
            dropped_logs: 0,
        },
    )
}

pub(super) fn validate(
    host: &PluginHost,
    plugin: &CompiledPlugin,
    context: &str,
    value: &str,
) -> Result<CallReport<PluginOutput>, (PluginError, CallReport<()>)> {
    let call = Call::start(host, plugin).map_err(not_started)?;
    call.finish(|call| {
        let (ctx_ptr, ctx_len) = call.write(context.as_bytes())?;
        let (val_ptr, val_len) = call.write(value.as_bytes())?;
        let validate = call.func::<(i32, i32, i32, i32), i64>("berth_validate")?;
        let packed = validate
            .call(&mut call.store, (ctx_ptr, ctx_len, val_ptr, val_len))
            .map_err(|e| classify(&call.store, e))?;
        let text = call.output(packed)?;
        parse_output(&text)
    })
}

/// What `berth_validate_settings` answered: `valid`, and the plugin's message.
pub type SettingsAnswer = (bool, Option<String>);

pub(super) fn validate_settings(
    host: &PluginHost,
    plugin: &CompiledPlugin,
    settings: &str,
) -> Result<CallReport<SettingsAnswer>, (PluginError, CallReport<()>)> {
    let call = Call::start(host, plugin).map_err(not_started)?;
    call.finish(|call| {
        let (ptr, len) = call.write(settings.as_bytes())?;
        let check = call.func::<(i32, i32), i64>("berth_validate_settings")?;
        let packed = check
            .call(&mut call.store, (ptr, len))
            .map_err(|e| classify(&call.store, e))?;
        let text = call.output(packed)?;
        super::output::parse_settings_output(&text)
    })
}

/// Instantiates the module once (running its `start` function and data segments) under a call's
/// limits.
pub(super) fn instantiate(host: &PluginHost, plugin: &CompiledPlugin) -> Result<(), PluginError> {
    Call::start(host, plugin).map(drop)
}

pub(super) fn abi_version(host: &PluginHost, plugin: &CompiledPlugin) -> Result<i32, PluginError> {
    let mut call = Call::start(host, plugin)?;
    let version = call.func::<(), i32>("berth_abi_version")?;
    version
        .call(&mut call.store, ())
        .map_err(|e| classify(&call.store, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AssemblyScript string at `at`: its byte length in the 4 bytes before it, then UTF-16LE.
    fn put_string(memory: &mut [u8], at: usize, text: &str) {
        let units: Vec<u16> = text.encode_utf16().collect();
        memory[at - 4..at].copy_from_slice(&((units.len() * 2) as u32).to_le_bytes());
        for (i, unit) in units.iter().enumerate() {
            memory[at + 2 * i..at + 2 * i + 2].copy_from_slice(&unit.to_le_bytes());
        }
    }

    #[test]
    fn an_abort_reads_as_its_message_and_location() {
        let mut memory = vec![0u8; 4096];
        put_string(&mut memory, 16, "name é\u{1F600} must be short\n");
        put_string(&mut memory, 256, "assembly/index.ts");
        assert_eq!(
            describe_abort(&memory, 16, 256, 12, 5),
            "name é\u{1F600} must be short  (at assembly/index.ts:12:5)"
        );
        assert_eq!(describe_abort(&memory, 0, 0, 0, 0), "(no message)");
        assert_eq!(
            describe_abort(&memory, 16, 0, 3, 1),
            "name é\u{1F600} must be short  (at line 3, column 1)"
        );
    }

    #[test]
    fn an_abort_with_hostile_pointers_stays_bounded_and_in_memory() {
        let mut memory = vec![b'a'; 8192];
        // A length far past the end of memory, or just past the bound: only the bounded prefix
        // is read, and the cut is marked.
        for length in [u32::MAX, 4000] {
            memory[12..16].copy_from_slice(&length.to_le_bytes());
            let text = describe_abort(&memory, 16, 0, 0, 0);
            assert_eq!(text.chars().count(), MAX_ABORT_UNITS + 1, "{length}");
            assert!(text.ends_with('…'));
        }
        // A bounded prefix that would still run past the end of memory is not read at all.
        memory[8186..8190].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(describe_abort(&memory, 8190, 0, 0, 0), "(no message)");
        for ptr in [-1, 1, 3, 8192, i32::MAX, i32::MIN] {
            assert_eq!(
                describe_abort(&memory, ptr, ptr, 1, 2),
                "(no message) (at line 1, column 2)"
            );
        }
        // A lone surrogate is replaced, not an error.
        memory[100..104].copy_from_slice(&2u32.to_le_bytes());
        memory[104..106].copy_from_slice(&0xD800u16.to_le_bytes());
        assert_eq!(describe_abort(&memory, 104, 0, 0, 0), "\u{FFFD}");
    }
}
