//! `reserved-names` (name hook): refuses names on the operator's list.
//!
//! Settings: `{"names": ["shop", "support", …], "prefixes": ["berth-", …]}` (both optional).
//! Names compare case-insensitively.

use berth_plugin_sdk::{berth_plugin, Context, Outcome, Value};

fn list<'a>(settings: &'a Value, key: &str) -> Vec<&'a str> {
    settings
        .get(key)
        .and_then(|v| v.string_list(key).ok())
        .unwrap_or_default()
}

pub fn validate(ctx: &Context, name: &str) -> Outcome {
    let name = name.to_ascii_lowercase();
    if list(&ctx.settings, "names")
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&name))
    {
        return Outcome::deny(
            "reserved",
            &format!("{:?} is reserved; choose another name", name),
        );
    }
    if let Some(prefix) = list(&ctx.settings, "prefixes")
        .into_iter()
        .find(|p| name.starts_with(&p.to_ascii_lowercase()))
    {
        return Outcome::deny(
            "reserved_prefix",
            &format!("names starting with {:?} are reserved", prefix),
        );
    }
    Outcome::allow()
}

pub fn validate_settings(settings: &Value) -> Result<(), String> {
    if !matches!(settings, Value::Object(_)) {
        return Err("settings must be an object".to_string());
    }
    for key in ["names", "prefixes"] {
        if let Some(value) = settings.get(key) {
            value.string_list(key)?;
        }
    }
    Ok(())
}

berth_plugin!(validate = validate, validate_settings = validate_settings);
