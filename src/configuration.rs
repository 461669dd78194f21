//! Layer 0. Settings: one TOML file (optional) layered under `BERTH_<SECTION>__<KEY>` environment overrides.
//!
//! Every key has a default, so no file at all gives the embedded default. Unknown keys and bad
//! values are errors that name the key (`server.lisen: unknown key …`). Each section is a file
//! here with its defaults, validation and tests; configuration reads only [`crate::domain`].
//!
//! Tenants are an array in TOML; the environment addresses them by name instead of position:
//! `BERTH_TENANTS__ACME_SHOPS__ADMIN_TOKEN` sets `admin_token` of tenant `acme-shops` (`_` in the
//! variable stands for `-` in the tenant name).

mod admin_tokens;
pub mod builtin_plugins;
mod database;
mod dns;
mod email;
mod error;
mod jobs;
mod kubernetes;
mod live;
mod log;
mod mode;
mod overrides;
mod plugins;
mod policies;
mod rate_limits;
mod redact;
mod server;
mod stack;
mod stripe;
mod tenants;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use admin_tokens::MIN_ADMIN_TOKEN_CHARS;
pub use database::DatabaseSettings;
pub use dns::{DnsProviderKind, DnsSettings};
pub use email::{EmailSettings, EmailTemplate, EmailTransport};
pub use error::ConfigError;
pub use jobs::JobSettings;
pub use kubernetes::{KubernetesSettings, KUBERNETES_HTML_MAX_BYTES};
pub use live::{keep_restart_only, restart_only, Live, Source};
pub use log::{LogFormat, LogSettings};
pub use mode::Mode;
pub use plugins::PluginSettings;
pub use policies::{OnError, PolicySettings};
pub use rate_limits::{Rate, RateLimitSettings};
pub use server::ServerSettings;
pub use stack::{parse_value, start_order, ComponentSettings, Piece, Placeholder};
pub use stripe::{StripeRetentionSettings, StripeSettings};
pub use tenants::{
    find_plan, PlanSettings, RuntimeKind, TenantSettings, VolumeSettings, WorkloadKind,
    WorkloadSettings,
};

use error::{collect_strings, invalid, syntax_message};
use overrides::{apply_override, ENV_PREFIX};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub email: EmailSettings,
    pub rate_limits: RateLimitSettings,
    pub jobs: JobSettings,
    pub log: LogSettings,
    pub kubernetes: KubernetesSettings,
    pub plugins: PluginSettings,
    /// Settings of Stripe event handling shared by every tenant (each tenant's webhook secrets
    /// are in its own `stripe` table).
    pub stripe: StripeRetentionSettings,
    pub tenants: Vec<TenantSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            email: EmailSettings::default(),
            rate_limits: RateLimitSettings::default(),
            jobs: JobSettings::default(),
            log: LogSettings::default(),
            kubernetes: KubernetesSettings::default(),
            plugins: PluginSettings::default(),
            stripe: StripeRetentionSettings::default(),
            tenants: vec![TenantSettings::default()],
        }
    }
}

impl Settings {
    /// Loads the file (if any) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(path, std::env::vars())
    }

    /// Loads the file (if any) and the given environment; the seam tests use.
    ///
    /// No error shows a value from the file or the environment, whatever the mistake: any of
    /// them may be a secret in the wrong place. Errors name the key, the kind of value found
    /// and what was expected (see [`ConfigError::without_values`]).
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                Some((path, text))
            }
            None => None,
        };
        Self::load_text(file, env)
    }

    /// As [`Settings::load_from`], with the file's text given rather than read (`path` only
    /// names it in errors): the seam the configuration fuzz target uses. The same promise holds:
    /// settings that passed validation, or an error that shows no value.
    pub fn load_from_text(
        path: &Path,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::load_text(Some((path, text.to_owned())), env)
    }

    fn load_text(
        file: Option<(&Path, String)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let overrides: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(ENV_PREFIX)?.to_owned(), v)))
            .filter(|(k, _)| k.contains("__"))
            .collect();
        let mut values: Vec<String> = overrides.iter().map(|(_, v)| v.clone()).collect();
        Self::load_tree(file, overrides, &mut values).map_err(|e| e.without_values(&values))
    }

    fn load_tree(
        file: Option<(&Path, String)>,
        mut overrides: Vec<(String, String)>,
        values: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let mut tree = match file {
            Some((path, text)) => text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Syntax {
                    path: path.into(),
                    message: syntax_message(&text, &e),
                })?,
            None => toml::Table::new(),
        };
        collect_strings(&toml::Value::Table(tree.clone()), values);
        overrides.sort();
        for (key, value) in overrides {
            apply_override(&mut tree, &key, value)?;
        }
        let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(tree))
            .map_err(|e| {
                let key = e.path().to_string();
                let message = e.inner().message().to_owned();
                let message = message.replace("unknown field", "unknown key");
                invalid(if key == "." { "config".into() } else { key }, message)
            })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Each section's checks, in this order: the first that fails is the error.
    fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.email.validate()?;
        self.server.validate_public_url()?;
        self.rate_limits.validate()?;
        self.jobs.validate()?;
        self.plugins.validate()?;
        self.kubernetes.validate(&self.tenants)?;
        if self.tenants.is_empty() {
            return Err(invalid("tenants", "at least one tenant is needed"));
        }
        self.validate_admin_tokens()?;
        self.server.validate_requests()?;
        tenants::validate(&self.tenants, &self.plugins)
    }

    /// The base of links berth hands out, without a trailing slash.
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Loads `toml` as the config file under `env`: the seam of every section's tests.
    pub(super) fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(toml.as_bytes()).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::load_from(Some(file.path()), env)
    }

    #[test]
    fn no_file_gives_the_embedded_default() {
        let settings = Settings::load_from(None, Vec::new()).unwrap();
        assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.database.url.expose(), "sqlite://berth.db");
        assert_eq!(settings.tenants.len(), 1);
        assert_eq!(settings.tenants[0].name, "default");
        assert_eq!(
            settings.tenants[0].reserved_names,
            ["www", "admin", "api", "mail"]
        );
    }

    #[test]
    fn a_file_only_names_what_it_changes() {
        let settings = load("[server]\nlisten = \"0.0.0.0:9000\"\n", &[]).unwrap();
        assert_eq!(settings.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(settings.server.sites_listen.to_string(), "127.0.0.1:8081");
    }

    #[test]
    fn an_unknown_key_is_reported_by_name() {
        let err = load("[server]\nlisen = \"0.0.0.0:9000\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("server.lisen: unknown key"), "{err}");
        let err = load("[[tenants]]\nname = \"a\"\nbase_domian = \"x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("tenants[0].base_domian: unknown key"),
            "{err}"
        );
    }

    #[test]
    fn a_tenant_s_branding_is_checked() {
        let tenant = |extra: &str| load(&format!("[[tenants]]\nname = \"a\"\n{extra}\n"), &[]);
        let settings = tenant("display_name = \"A & Co\"\naccent_color = \"#C0392B\"\nlogo_url = \"https://cdn.example/a.png\"").unwrap();
        assert_eq!(settings.tenants[0].display_name_or_name(), "A & Co");
        assert_eq!(tenant("").unwrap().tenants[0].display_name_or_name(), "a");
        for (extra, key) in [
            ("accent_color = \"red\"", "tenants[0].accent_color:"),
            ("accent_color = \"#12345\"", "tenants[0].accent_color:"),
            ("accent_color = \"#12;}x\"", "tenants[0].accent_color:"),
            (
                "logo_url = \"http://cdn.example/a.png\"",
                "tenants[0].logo_url:",
            ),
            (
                "logo_url = \"https://cdn.example/a b.png\"",
                "tenants[0].logo_url:",
            ),
        ] {
            let err = tenant(extra).unwrap_err().to_string();
            assert!(err.starts_with(key), "{extra}: {err}");
        }
    }

    #[test]
    fn a_wrong_value_is_reported_by_name() {
        let err = load("[server]\nlisten = \"nowhere\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("server.listen:"), "{err}");
        let err = load("[email]\ntransport = \"pigeon\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("email.transport:"), "{err}");
        let err = load(
            "[rate_limits]\nsignup_per_ip = { per_minute = 1, per_hour = 2, burst = 1 }\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("rate_limits.signup_per_ip: give exactly one"),
            "{err}"
        );
        let err = load("[[tenants]]\nname = \"Bad Name\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("tenants[0].name:"), "{err}");
    }
}
