//! Write berth policy plugins (ABI v1, see `plugins/ABI.md`) in plain Rust.
//!
//! ```ignore
//! use berth_plugin_sdk::{berth_plugin, Context, Outcome, Value};
//!
//! fn validate(ctx: &Context, value: &str) -> Outcome {
//!     if value.contains("casino") {
//!         Outcome::deny("gambling", "gambling sites are not allowed")
//!     } else {
//!         Outcome::allow()
//!     }
//! }
//!
//! berth_plugin!(validate = validate);
//! ```
//!
//! The macro exports `berth_abi_version`, `berth_alloc`, `berth_validate` and, when given,
//! `berth_validate_settings`. berth runs every call in a fresh instance, so memory handed to the
//! host is never freed: the instance is dropped after the call. The SDK's allocator is built for
//! that (see `alloc.rs`), and the inputs arrive as `&str` without a second UTF-8 check, which
//! berth guarantees (ABI.md, "One call").

#[cfg(target_arch = "wasm32")]
mod alloc;
pub mod json;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: alloc::CallAllocator = alloc::CallAllocator::new();

pub use json::Value;

/// What the host tells the plugin besides the value under test.
#[derive(Debug, Clone)]
pub struct Context {
    /// `"name"` or `"html"`.
    pub hook: String,
    pub tenant: String,
    pub plugin: String,
    /// The binding's settings (a JSON object).
    pub settings: Value,
    /// The submitted site name.
    pub name: String,
    pub email: String,
    pub plan: Option<String>,
}

impl Context {
    /// Parses the host-built context JSON.
    pub fn parse(text: &str) -> Result<Context, String> {
        let value = json::parse(text)?;
        let text_of = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
        let submission = value.get("submission");
        Ok(Context {
            hook: text_of(value.get("hook")),
            tenant: text_of(value.get("tenant")),
            plugin: text_of(value.get("plugin")),
            settings: value
                .get("settings")
                .cloned()
                .unwrap_or(Value::Object(Vec::new())),
            name: text_of(submission.and_then(|s| s.get("name"))),
            email: text_of(submission.and_then(|s| s.get("email"))),
            plan: submission
                .and_then(|s| s.get("plan"))
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

/// One reason for a denial. `code` must match `[a-z0-9_]{1,32}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

/// A plugin's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub reasons: Vec<Reason>,
    /// A replacement value (html hook, plugins uploaded as mutating).
    pub rewrite: Option<String>,
}

impl Outcome {
    pub fn allow() -> Outcome {
        Outcome {
            reasons: Vec::new(),
            rewrite: None,
        }
    }

    pub fn deny(code: &str, message: &str) -> Outcome {
        let mut outcome = Outcome::allow();
        outcome.add(code, message);
        outcome
    }

    pub fn rewrite(value: String) -> Outcome {
        Outcome {
            reasons: Vec::new(),
            rewrite: Some(value),
        }
    }

    /// Adds a reason; an outcome with any reason denies.
    pub fn add(&mut self, code: &str, message: &str) {
        self.reasons.push(Reason {
            code: code.to_string(),
            message: message.to_string(),
        });
    }

    pub fn denies(&self) -> bool {
        !self.reasons.is_empty()
    }

    /// The ABI's output JSON.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"verdict\":");
        out.push_str(if self.denies() {
            "\"deny\""
        } else {
            "\"allow\""
        });
        out.push_str(",\"reasons\":[");
        for (i, reason) in self.reasons.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"code\":");
            json::write_string(&mut out, &reason.code);
            out.push_str(",\"message\":");
            json::write_string(&mut out, &reason.message);
            out.push('}');
        }
        out.push_str("],\"rewrite\":");
        match &self.rewrite {
            Some(value) => json::write_string(&mut out, value),
            None => out.push_str("null"),
        }
        out.push('}');
        out
    }
}

/// Log levels of `berth_v1.log`.
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

#[link(wasm_import_module = "berth_v1")]
extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, ptr: i32, len: i32);
}

/// Sends a line to berth's log (bounded and tagged with the plugin's name by the host).
pub fn log(level: Level, message: &str) {
    // SAFETY: the host reads `len` bytes at `ptr` from this module's memory, which is valid.
    unsafe { host_log(level as i32, message.as_ptr() as i32, message.len() as i32) }
}

#[doc(hidden)]
pub fn __alloc(len: i32) -> i32 {
    if len < 0 {
        return 0;
    }
    let mut buffer: Vec<u8> = Vec::with_capacity(len as usize);
    let ptr = buffer.as_mut_ptr();
    std::mem::forget(buffer);
    ptr as i32
}

/// The text the host wrote at `ptr`.
fn input<'a>(ptr: i32, len: i32) -> &'a str {
    if len <= 0 {
        return "";
    }
    // SAFETY: the host wrote `len` bytes into a buffer it got from `berth_alloc`, which stays
    // alive for the whole call (nothing is freed in a plugin instance), and everything berth
    // hands a plugin is valid UTF-8 (ABI.md, "The call"): checking it again would cost a
    // scanning plugin a tenth of its time on a page of HTML.
    unsafe {
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr as *const u8, len as usize))
    }
}

/// Hands `text` to the host as `(ptr << 32) | len`. The buffer is never freed (see above).
fn output(text: String) -> i64 {
    let bytes = text.into_bytes().into_boxed_slice();
    let len = bytes.len() as i64;
    let ptr = Box::into_raw(bytes) as *mut u8 as u32 as i64;
    (ptr << 32) | len
}

#[doc(hidden)]
pub fn __validate(
    ctx_ptr: i32,
    ctx_len: i32,
    val_ptr: i32,
    val_len: i32,
    validate: fn(&Context, &str) -> Outcome,
) -> i64 {
    let outcome = match Context::parse(input(ctx_ptr, ctx_len)) {
        Ok(context) => validate(&context, input(val_ptr, val_len)),
        Err(error) => Outcome::deny("bad_context", &error),
    };
    output(outcome.to_json())
}

#[doc(hidden)]
pub fn __validate_settings(ptr: i32, len: i32, check: fn(&Value) -> Result<(), String>) -> i64 {
    let result = json::parse(input(ptr, len)).and_then(|settings| check(&settings));
    let mut out = String::new();
    match result {
        Ok(()) => out.push_str("{\"valid\":true}"),
        Err(message) => {
            out.push_str("{\"valid\":false,\"message\":");
            json::write_string(&mut out, &message);
            out.push('}');
        }
    }
    output(out)
}

/// Exports the ABI v1 functions for a plugin.
///
/// `validate: fn(&Context, &str) -> Outcome` is required; `validate_settings:
/// fn(&Value) -> Result<(), String>` is optional and lets berth refuse bad settings when a
/// binding is saved.
#[macro_export]
macro_rules! berth_plugin {
    (validate = $validate:path $(, validate_settings = $settings:path)? $(,)?) => {
        #[no_mangle]
        pub extern "C" fn berth_abi_version() -> i32 {
            1
        }

        #[no_mangle]
        pub extern "C" fn berth_alloc(len: i32) -> i32 {
            $crate::__alloc(len)
        }

        #[no_mangle]
        pub extern "C" fn berth_validate(ctx_ptr: i32, ctx_len: i32, val_ptr: i32, val_len: i32) -> i64 {
            $crate::__validate(ctx_ptr, ctx_len, val_ptr, val_len, $validate)
        }

        $(
            #[no_mangle]
            pub extern "C" fn berth_validate_settings(ptr: i32, len: i32) -> i64 {
                $crate::__validate_settings(ptr, len, $settings)
            }
        )?
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialise_to_the_abi_shape() {
        assert_eq!(
            Outcome::allow().to_json(),
            r#"{"verdict":"allow","reasons":[],"rewrite":null}"#
        );
        assert_eq!(
            Outcome::deny("bad", "a \"quoted\" word").to_json(),
            r#"{"verdict":"deny","reasons":[{"code":"bad","message":"a \"quoted\" word"}],"rewrite":null}"#
        );
    }

    #[test]
    fn the_context_is_read_from_host_json() {
        let ctx = Context::parse(
            r#"{"abi":1,"hook":"name","tenant":"default","plugin":"p","settings":{"names":["x"]},"submission":{"name":"shop","email":"a@b.co","plan":null}}"#,
        )
        .unwrap();
        assert_eq!(ctx.hook, "name");
        assert_eq!(ctx.name, "shop");
        assert_eq!(ctx.plan, None);
        assert_eq!(
            ctx.settings.get("names").unwrap().as_array().unwrap().len(),
            1
        );
    }
}
