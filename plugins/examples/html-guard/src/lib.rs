//! `html-guard` (html hook): refuses HTML that could run code or take customers elsewhere —
//! `<script>`, inline `on*=` handlers, `javascript:` URLs, `<iframe>`/`<object>`/`<embed>`, meta
//! refresh and forms posting off-site — with one reason per finding.
//!
//! Settings: `{"allow_forms_to": ["https://forms.example.com"]}` (optional): form actions that
//! may leave the site.

use berth_plugin_sdk::{berth_plugin, Context, Outcome, Value};

pub mod scan;

pub fn validate(ctx: &Context, html: &str) -> Outcome {
    let allowed = ctx
        .settings
        .get("allow_forms_to")
        .and_then(|v| v.string_list("allow_forms_to").ok())
        .unwrap_or_default();
    let mut outcome = Outcome::allow();
    for finding in scan::scan(html, &allowed) {
        outcome.add(finding.code, &finding.message);
    }
    outcome
}

pub fn validate_settings(settings: &Value) -> Result<(), String> {
    if let Some(list) = settings.get("allow_forms_to") {
        for origin in list.string_list("allow_forms_to")? {
            if !(origin.starts_with("https://") || origin.starts_with("http://")) {
                return Err(format!(
                    "allow_forms_to: {:?} is not an http(s) origin",
                    origin
                ));
            }
        }
    }
    Ok(())
}

berth_plugin!(validate = validate, validate_settings = validate_settings);
