//! Upload-time checks: a module is refused, with a reason that names the problem, when it does
//! not parse, is too large, imports anything not granted, lacks an ABI export or has it with the
//! wrong type, asks for more memory than a call may have, or speaks another ABI version.

use serde::Serialize;
use wasmtime::{ExternType, FuncType, ValType};

use super::{CompiledPlugin, PluginHost};

/// What berth learned about a module at upload.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModuleInfo {
    /// `sha256:<hex>` of the module's bytes.
    pub hash: String,
    pub size: usize,
    pub abi_version: i32,
    /// Whether it exports `berth_validate_settings`.
    pub validates_settings: bool,
    /// The granted imports it uses (`berth_v1.log`, `env.abort`).
    pub imports: Vec<String>,
    /// Initial linear memory, in bytes.
    pub memory_bytes: u64,
}

/// The imports ABI v1 grants, with their types.
const GRANTED: &[(&str, &str, &[ValType], &[ValType])] = &[
    (
        "berth_v1",
        "log",
        &[ValType::I32, ValType::I32, ValType::I32],
        &[],
    ),
    (
        "env",
        "abort",
        &[ValType::I32, ValType::I32, ValType::I32, ValType::I32],
        &[],
    ),
];

/// The function exports of ABI v1: name, params, results, required.
const EXPORTS: &[(&str, &[ValType], &[ValType], bool)] = &[
    ("berth_abi_version", &[], &[ValType::I32], true),
    ("berth_alloc", &[ValType::I32], &[ValType::I32], true),
    (
        "berth_validate",
        &[ValType::I32, ValType::I32, ValType::I32, ValType::I32],
        &[ValType::I64],
        true,
    ),
    (
        "berth_validate_settings",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
        false,
    ),
];

fn signature(params: &[ValType], results: &[ValType]) -> String {
    let list = |types: &[ValType]| {
        types
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

fn signature_of(func: &FuncType) -> String {
    let params: Vec<_> = func.params().collect();
    let results: Vec<_> = func.results().collect();
    signature(&params, &results)
}

fn same_types(found: impl ExactSizeIterator<Item = ValType>, wanted: &[ValType]) -> bool {
    found.len() == wanted.len() && found.zip(wanted).all(|(a, b)| ValType::eq(&a, b))
}

fn kind(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Func(_) => "a function",
        ExternType::Global(_) => "a global",
        ExternType::Table(_) => "a table",
        ExternType::Memory(_) => "a memory",
        ExternType::Tag(_) => "a tag",
    }
}

/// The outcome of one conformance item that did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// The reason, fit to show the operator who uploaded the module.
    Reason(String),
    /// Not checked, because an item it depends on failed.
    Skipped,
}

/// One item of the conformance list (`plugins/ABI.md`, "Conformance"), in its order there.
#[derive(Debug, Clone)]
pub struct Item {
    pub number: usize,
    pub title: &'static str,
    /// What was found when it passed.
    pub outcome: Result<String, Failed>,
}

/// Every conformance item for a module, and the compiled plugin when all of them pass.
pub struct Conformance {
    pub items: Vec<Item>,
    pub plugin: Option<CompiledPlugin>,
}

impl Conformance {
    /// The first failure's reason: what an upload of this module is refused with.
    pub fn first_failure(&self) -> Option<&str> {
        self.items.iter().find_map(|item| match &item.outcome {
            Err(Failed::Reason(reason)) => Some(reason.as_str()),
            _ => None,
        })
    }
}

/// The conformance list, in order. Items 4 to 9 are each checked on their own once the module
/// compiles, so one run names every problem; the last three need all before them.
pub const ITEMS: &[&str] = &[
    "size within the limit",
    "a WebAssembly binary module",
    "valid with berth's features",
    "imports only what is granted",
    "exports its memory",
    "exports berth_abi_version",
    "exports berth_alloc",
    "exports berth_validate",
    "berth_validate_settings type",
    "links against berth_v1/env",
    "instantiates within limits",
    "berth_abi_version returns 1",
];

struct Checklist {
    items: Vec<Item>,
}

impl Checklist {
    fn record(&mut self, outcome: Result<String, String>) -> bool {
        let number = self.items.len() + 1;
        let passed = outcome.is_ok();
        self.items.push(Item {
            number,
            title: ITEMS[number - 1],
            outcome: outcome.map_err(Failed::Reason),
        });
        passed
    }

    fn passed(&self) -> bool {
        self.items.iter().all(|item| item.outcome.is_ok())
    }

    /// Marks every item not reached yet as skipped.
    fn finish(mut self, plugin: Option<CompiledPlugin>) -> Conformance {
        while self.items.len() < ITEMS.len() {
            let number = self.items.len() + 1;
            self.items.push(Item {
                number,
                title: ITEMS[number - 1],
                outcome: Err(Failed::Skipped),
            });
        }
        Conformance {
            items: self.items,
            plugin,
        }
    }
}

/// Checks `bytes` against every conformance item of ABI v1 and the host's limits.
pub(super) fn conformance(host: &PluginHost, bytes: &[u8], hash: String) -> Conformance {
    let mut list = Checklist { items: Vec::new() };
    let limit = host.settings.max_module_bytes;
    let size = if bytes.len() > limit {
        Err(format!(
            "the module is {} bytes; the limit is {limit} bytes",
            bytes.len()
        ))
    } else {
        Ok(format!("{} bytes (limit {limit})", bytes.len()))
    };
    if !list.record(size) {
        return list.finish(None);
    }
    let binary = match bytes.starts_with(b"\0asm") {
        true => Ok("starts with \\0asm".into()),
        false => Err("not a WebAssembly binary module (it must start with \\0asm; text .wat is not accepted)".into()),
    };
    if !list.record(binary) {
        return list.finish(None);
    }
    let module = match host.compile_module(bytes) {
        Ok(module) => module,
        Err(e) => {
            let detail = format!("{e:#}");
            let detail = detail.lines().next().unwrap_or_default();
            list.record(Err(if detail.contains("exceeds the limit") {
                format!("the module asks for more than a call may have: {detail}")
            } else {
                format!("not a valid WebAssembly module: {detail}")
            }));
            return list.finish(None);
        }
    };
    list.record(Ok(super::FEATURES.into()));

    let mut imports = Vec::new();
    list.record(check_imports(&module, &mut imports));
    let memory_bytes = match module.get_export("memory") {
        Some(ExternType::Memory(memory)) => {
            // A larger initial memory than a call may have was refused when compiling: the
            // pooling allocator's slots are exactly `plugins.memory_limit_bytes` large.
            let bytes = memory.minimum().saturating_mul(64 * 1024);
            list.record(Ok(format!(
                "\"memory\", {bytes} bytes initially (limit {})",
                host.settings.memory_limit_bytes
            )));
            bytes
        }
        Some(other) => {
            list.record(Err(format!(
                "the module exports memory as {}; ABI v1 needs its linear memory there",
                kind(&other)
            )));
            0
        }
        None => {
            list.record(Err(
                "the module does not export its memory as \"memory\"".into()
            ));
            0
        }
    };
    for export in EXPORTS {
        list.record(check_export(&module, export));
    }
    if !list.passed() {
        return list.finish(None);
    }

    let validates_settings = module.get_export("berth_validate_settings").is_some();
    let template = match host.linker.instantiate_pre(&module) {
        Ok(template) => template,
        Err(e) => {
            list.record(Err(format!(
                "the module cannot be linked: {}",
                format!("{e:#}").lines().next().unwrap_or_default()
            )));
            return list.finish(None);
        }
    };
    list.record(Ok(if imports.is_empty() {
        "imports nothing".to_owned()
    } else {
        imports.join(", ")
    }));
    let mut plugin = CompiledPlugin {
        info: ModuleInfo {
            hash,
            size: bytes.len(),
            abi_version: 0,
            validates_settings,
            imports,
            memory_bytes,
        },
        template,
    };
    let started = super::call::instantiate(host, &plugin)
        .map(|()| "a fresh instance (start function, data segments) in time and memory".into())
        .map_err(|e| format!("the module cannot be instantiated ({}): {e}", e.class()));
    if !list.record(started) {
        return list.finish(None);
    }
    let version = match super::call::abi_version(host, &plugin) {
        Ok(1) => Ok("1".into()),
        Ok(version) => Err(format!(
            "berth_abi_version returned {version}; this berth speaks ABI version 1"
        )),
        Err(e) => Err(format!("berth_abi_version failed ({}): {e}", e.class())),
    };
    if !list.record(version) {
        return list.finish(None);
    }
    plugin.info.abi_version = 1;
    list.finish(Some(plugin))
}

fn check_imports(
    module: &wasmtime::Module,
    granted_used: &mut Vec<String>,
) -> Result<String, String> {
    for import in module.imports() {
        let name = format!("{}.{}", import.module(), import.name());
        let granted = GRANTED
            .iter()
            .find(|(m, n, ..)| *m == import.module() && *n == import.name());
        let Some((_, _, params, results)) = granted else {
            return Err(format!(
                "the module imports {name}, which berth does not grant (only berth_v1.log and env.abort; no WASI, files, network, clock or randomness)"
            ));
        };
        match import.ty() {
            ExternType::Func(func)
                if same_types(func.params(), params) && same_types(func.results(), results) => {}
            ExternType::Func(func) => {
                return Err(format!(
                    "the module imports {name} as {}; ABI v1 defines it as {}",
                    signature_of(&func),
                    signature(params, results)
                ))
            }
            other => {
                return Err(format!(
                    "the module imports {name} as {}; ABI v1 defines a function",
                    kind(&other)
                ))
            }
        }
        granted_used.push(name);
    }
    Ok(if granted_used.is_empty() {
        "none".into()
    } else {
        granted_used.join(", ")
    })
}

fn check_export(
    module: &wasmtime::Module,
    (name, params, results, required): &(&str, &[ValType], &[ValType], bool),
) -> Result<String, String> {
    match module.get_export(name) {
        Some(ExternType::Func(func))
            if same_types(func.params(), params) && same_types(func.results(), results) =>
        {
            Ok(signature(params, results))
        }
        Some(ExternType::Func(func)) => Err(format!(
            "the module exports {name} as {}; ABI v1 expects {}",
            signature_of(&func),
            signature(params, results)
        )),
        Some(other) => Err(format!(
            "the module exports {name} as {}; ABI v1 expects a function",
            kind(&other)
        )),
        None if *required => Err(format!("the module does not export {name}")),
        None => Ok("not exported (optional: any settings are accepted)".into()),
    }
}
