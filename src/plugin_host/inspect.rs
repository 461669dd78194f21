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

pub(super) fn compile(
    host: &PluginHost,
    bytes: &[u8],
    hash: String,
) -> Result<CompiledPlugin, String> {
    let limit = host.settings.max_module_bytes;
    if bytes.len() > limit {
        return Err(format!(
            "the module is {} bytes; the limit is {limit} bytes",
            bytes.len()
        ));
    }
    if !bytes.starts_with(b"\0asm") {
        return Err("not a WebAssembly binary module (it must start with \\0asm; text .wat is not accepted)".into());
    }
    let module = host.compile_module(bytes).map_err(|e| {
        let detail = format!("{e:#}");
        let detail = detail.lines().next().unwrap_or_default();
        if detail.contains("exceeds the limit") {
            format!("the module asks for more than a call may have: {detail}")
        } else {
            format!("not a valid WebAssembly module: {detail}")
        }
    })?;

    let mut imports = Vec::new();
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
        imports.push(name);
    }

    let memory = match module.get_export("memory") {
        Some(ExternType::Memory(memory)) => memory,
        Some(other) => {
            return Err(format!(
                "the module exports memory as {}; ABI v1 needs its linear memory there",
                kind(&other)
            ))
        }
        None => return Err("the module does not export its memory as \"memory\"".into()),
    };
    let memory_bytes = memory.minimum().saturating_mul(64 * 1024);
    // A larger initial memory than a call may have was refused above: the pooling allocator's
    // slots are exactly `plugins.memory_limit_bytes` large.
    for (name, params, results, required) in EXPORTS {
        match module.get_export(name) {
            Some(ExternType::Func(func))
                if same_types(func.params(), params) && same_types(func.results(), results) => {}
            Some(ExternType::Func(func)) => {
                return Err(format!(
                    "the module exports {name} as {}; ABI v1 expects {}",
                    signature_of(&func),
                    signature(params, results)
                ))
            }
            Some(other) => {
                return Err(format!(
                    "the module exports {name} as {}; ABI v1 expects a function",
                    kind(&other)
                ))
            }
            None if *required => return Err(format!("the module does not export {name}")),
            None => {}
        }
    }

    let validates_settings = module.get_export("berth_validate_settings").is_some();
    let template = host.linker.instantiate_pre(&module).map_err(|e| {
        format!(
            "the module cannot be linked: {}",
            format!("{e:#}").lines().next().unwrap_or_default()
        )
    })?;
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
    let version = super::call::abi_version(host, &plugin)
        .map_err(|e| format!("berth_abi_version failed ({}): {e}", e.class()))?;
    if version != 1 {
        return Err(format!(
            "berth_abi_version returned {version}; this berth speaks ABI version 1"
        ));
    }
    plugin.info.abi_version = version;
    Ok(plugin)
}
