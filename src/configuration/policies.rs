//! A tenant's `policies`: which plugin runs on which hook, with what settings, and the example
//! policies the embedded default runs.

use serde::{Deserialize, Serialize};

use super::error::{invalid, ConfigError};
use super::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    pub plugin: String,
    #[serde(default)]
    pub file: String,
    pub hook: String,
    #[serde(default = "empty_object")]
    pub settings: serde_json::Value,
    #[serde(default)]
    pub on_error: OnError,
    /// The plugin may rewrite the HTML it is given (html hook only).
    #[serde(default)]
    pub mutating: bool,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl Settings {
    /// The embedded default runs the example policies built into the binary on tenant
    /// `default`, unless it already declares policies.
    pub fn attach_example_policies(&mut self) {
        let examples = [
            (
                "reserved-names",
                "reserved_names.wasm",
                "name",
                serde_json::json!({"names": ["root", "support", "billing", "status", "help", "security"], "prefixes": ["berth-"]}),
            ),
            (
                "brand-guard",
                "brand_guard.wasm",
                "name",
                serde_json::json!({"brands": ["paypal", "google", "apple", "microsoft", "amazon", "stripe"], "max_distance": 1}),
            ),
            (
                "digit-limit",
                "digit_limit.wasm",
                "name",
                serde_json::json!({"max_digits": 4}),
            ),
            (
                "html-guard",
                "html_guard.wasm",
                "html",
                serde_json::json!({}),
            ),
        ];
        let Some(tenant) = self.tenants.iter_mut().find(|t| t.name == "default") else {
            return;
        };
        if tenant.policies.is_empty() {
            tenant.policies = examples
                .into_iter()
                .map(|(plugin, file, hook, settings)| PolicySettings {
                    plugin: plugin.into(),
                    file: format!("{}{file}", crate::configuration::builtin_plugins::PREFIX),
                    hook: hook.into(),
                    settings,
                    on_error: OnError::Deny,
                    mutating: false,
                })
                .collect();
        }
    }
}

/// A tenant's policies, then how many each hook has; `tenant_key` gives the key under the tenant.
pub(super) fn validate_policies(
    policies: &[PolicySettings],
    max_bindings_per_hook: usize,
    tenant_key: impl Fn(&str) -> String,
) -> Result<(), ConfigError> {
    for (j, policy) in policies.iter().enumerate() {
        let key = |field: &str| tenant_key(&format!("policies[{j}].{field}"));
        crate::domain::PluginName::parse(&policy.plugin).map_err(|e| invalid(key("plugin"), e))?;
        if !["name", "html"].contains(&policy.hook.as_str()) {
            return Err(invalid(key("hook"), "must be name or html"));
        }
        if policy.file.is_empty() {
            return Err(invalid(key("file"), "must name the plugin's .wasm file"));
        }
        if let Some(Err(reason)) = crate::configuration::builtin_plugins::lookup(&policy.file) {
            return Err(invalid(key("file"), reason));
        }
        if !policy.settings.is_object() {
            return Err(invalid(key("settings"), "must be a table"));
        }
        if policy.mutating && policy.hook != "html" {
            return Err(invalid(key("mutating"), "only html plugins may rewrite"));
        }
    }
    for hook in ["name", "html"] {
        let bound = policies.iter().filter(|p| p.hook == hook).count();
        if bound > max_bindings_per_hook {
            return Err(invalid(
                tenant_key("policies"),
                format!(
                    "{bound} bindings on the {hook} hook; plugins.max_bindings_per_hook allows {}",
                    max_bindings_per_hook
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::configuration::tests::load;

    #[test]
    fn a_policy_names_a_built_in_plugin_or_a_file() {
        let policy = |file: &str| {
            format!("[[tenants]]\nname = \"default\"\npolicies = [{{ plugin = \"guard\", file = \"{file}\", hook = \"html\" }}]\n")
        };
        assert!(load(&policy("builtin:html_guard.wasm"), &[]).is_ok());
        assert!(load(&policy("plugins/dist/html_guard.wasm"), &[]).is_ok());
        let err = load(&policy("builtin:html_guard.wasn"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tenants[0].policies[0].file"), "{err}");
        assert!(err.contains("builtin:html_guard.wasm"), "{err}");
    }
}
