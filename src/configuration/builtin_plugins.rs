//! The example policy plugins built into the binary: the modules committed under
//! `plugins/dist/` (which `.ci/run` rebuilds from `plugins/examples/` and compares byte for
//! byte). A policy names one with `file = "builtin:<file>"`, for example
//! `builtin:html_guard.wasm`; any other `file` is a path.

/// What a policy's `file` starts with when it names a built-in module.
pub const PREFIX: &str = "builtin:";

/// The built-in modules by file name.
const MODULES: [(&str, &[u8]); 4] = [
    (
        "reserved_names.wasm",
        include_bytes!("../../plugins/dist/reserved_names.wasm"),
    ),
    (
        "brand_guard.wasm",
        include_bytes!("../../plugins/dist/brand_guard.wasm"),
    ),
    (
        "digit_limit.wasm",
        include_bytes!("../../plugins/dist/digit_limit.wasm"),
    ),
    (
        "html_guard.wasm",
        include_bytes!("../../plugins/dist/html_guard.wasm"),
    ),
];

/// The built-in module a policy `file` names: `None` when `file` is a path, an error listing
/// the built-in modules when it names one that does not exist.
pub fn lookup(file: &str) -> Option<Result<&'static [u8], String>> {
    let name = file.strip_prefix(PREFIX)?;
    Some(
        MODULES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, bytes)| *bytes)
            .ok_or_else(|| {
                let known: Vec<String> = MODULES
                    .iter()
                    .map(|(n, _)| format!("{PREFIX}{n}"))
                    .collect();
                // The value itself stays out: configuration errors never echo one.
                format!("names no built-in plugin; built in: {}", known.join(", "))
            }),
    )
}

/// The bytes of a policy's module: the built-in one `file` names, or the file at that path.
pub fn read(file: &str) -> Result<Vec<u8>, String> {
    match lookup(file) {
        Some(found) => found.map(<[u8]>::to_vec),
        None => std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_module_is_a_webassembly_module() {
        for (name, bytes) in MODULES {
            assert!(bytes.starts_with(b"\0asm"), "{name}");
        }
    }

    #[test]
    fn a_file_names_a_built_in_module_only_with_the_prefix() {
        assert_eq!(
            lookup("builtin:digit_limit.wasm").unwrap().unwrap(),
            MODULES[2].1
        );
        assert!(lookup("plugins/dist/digit_limit.wasm").is_none());
        let unknown = lookup("builtin:nope.wasm").unwrap().unwrap_err();
        assert!(unknown.contains("builtin:html_guard.wasm"), "{unknown}");
    }
}
