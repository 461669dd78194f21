//! Settings: one TOML file (optional) layered under `BERTH_<SECTION>__<KEY>` environment overrides.
//!
//! Every key has a default, so no file at all gives the embedded default. Unknown keys and bad
//! values are errors that name the key (`server.lisen: unknown key …`).
//!
//! Tenants are an array in TOML; the environment addresses them by name instead of position:
//! `BERTH_TENANTS__ACME_SHOPS__ADMIN_TOKEN` sets `admin_token` of tenant `acme-shops` (`_` in the
//! variable stands for `-` in the tenant name).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

const ENV_PREFIX: &str = "BERTH_";

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
            tenants: vec![TenantSettings::default()],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// The API listener: signup, webhooks, status pages, admin API.
    pub listen: SocketAddr,
    /// The local runtime's listener that serves customer sites (never the API origin).
    pub sites_listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Global admin token; empty disables the global token.
    pub admin_token: Secret,
    /// Base of the links berth hands out (status pages, emails). Empty: `http://<listen>`.
    pub public_url: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default"),
            sites_listen: "127.0.0.1:8081".parse().expect("valid default"),
            trusted_proxies: Vec::new(),
            admin_token: Secret::default(),
            public_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://user:pass@host/db`.
    pub url: Secret,
    pub max_connections: u32,
    /// How long a SQLite writer waits for the lock before giving up, in milliseconds.
    pub busy_timeout_ms: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: Secret::new("sqlite://berth.db"),
            max_connections: 8,
            busy_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    File,
    Smtp,
    Log,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    pub transport: EmailTransport,
    pub dir: PathBuf,
    /// lettre URL form; may carry credentials, so it is a secret.
    pub smtp_url: Secret,
    pub from: String,
    /// SMTP command timeout, in seconds.
    pub timeout_secs: u64,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            transport: EmailTransport::File,
            dir: PathBuf::from("outbox"),
            smtp_url: Secret::new("smtp://127.0.0.1:2525"),
            from: "berth <noreply@localhost>".into(),
            timeout_secs: 30,
        }
    }
}

/// A rate: exactly one of `per_second`, `per_minute`, `per_hour`, plus a `burst`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
    pub burst: u32,
}

impl Rate {
    pub const fn per_second(n: u32, burst: u32) -> Self {
        Self {
            per_second: Some(n),
            per_minute: None,
            per_hour: None,
            burst,
        }
    }
    pub const fn per_minute(n: u32, burst: u32) -> Self {
        Self {
            per_second: None,
            per_minute: Some(n),
            per_hour: None,
            burst,
        }
    }
    pub const fn per_hour(n: u32, burst: u32) -> Self {
        Self {
            per_second: None,
            per_minute: None,
            per_hour: Some(n),
            burst,
        }
    }

    /// The time it takes to earn back one request.
    pub fn replenish_interval(&self) -> Result<std::time::Duration, String> {
        let periods = [
            (self.per_second, 1u64),
            (self.per_minute, 60),
            (self.per_hour, 3600),
        ];
        let given: Vec<_> = periods
            .iter()
            .filter_map(|(n, s)| n.map(|n| (n, *s)))
            .collect();
        match given.as_slice() {
            [(0, _)] => Err("the rate must be above 0".into()),
            [(n, secs)] if self.burst > 0 => Ok(std::time::Duration::from_secs(*secs) / *n),
            [_] => Err("burst must be at least 1".into()),
            _ => Err("give exactly one of per_second, per_minute or per_hour".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub signup_per_ip: Rate,
    pub signup_per_email: Rate,
    pub signup_per_tenant: Rate,
    pub stripe_per_tenant: Rate,
    pub admin_per_token: Rate,
    /// Keys kept per limiter before idle ones are evicted; bounds memory under a flood.
    pub max_keys: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            signup_per_ip: Rate::per_minute(10, 5),
            signup_per_email: Rate::per_hour(5, 3),
            signup_per_tenant: Rate::per_second(50, 100),
            stripe_per_tenant: Rate::per_second(200, 500),
            admin_per_token: Rate::per_second(20, 50),
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Jobs one process runs at once.
    pub concurrency: usize,
    /// First retry delay; doubles each attempt (with jitter) up to `max_delay_secs`.
    pub base_delay_secs: u64,
    pub max_delay_secs: u64,
    /// Attempts before a job is marked `failed`.
    pub max_attempts: i32,
    /// How long a claimed job stays owned without a heartbeat.
    pub lease_secs: u64,
    /// How often an idle worker looks for due jobs, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long provisioning waits for a workload to become ready.
    pub ready_timeout_secs: u64,
    /// On shutdown, how long running jobs may take to finish before their leases are released.
    pub shutdown_grace_secs: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            base_delay_secs: 5,
            max_delay_secs: 6 * 3600,
            max_attempts: 12,
            lease_secs: 60,
            poll_interval_ms: 500,
            ready_timeout_secs: 300,
            shutdown_grace_secs: 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `berth=debug,actix_web=info`. `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSettings {
    pub kubeconfig: String,
    pub context: String,
    pub ingress_class: String,
    pub ingress_namespace: String,
    pub tls_issuer: String,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            kubeconfig: String::new(),
            context: String::new(),
            ingress_class: "nginx".into(),
            ingress_namespace: "ingress-nginx".into(),
            tls_issuer: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Local,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Static,
    Container,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadSettings {
    pub kind: WorkloadKind,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        Self {
            kind: WorkloadKind::Static,
            image: String::new(),
            port: None,
            env: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSettings {
    pub webhook_secrets: Vec<Secret>,
    pub tolerance_secs: u64,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            webhook_secrets: Vec::new(),
            tolerance_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsProviderKind {
    None,
    Cloudflare,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSettings {
    pub provider: DnsProviderKind,
    pub api_token: Secret,
    pub zone_id: String,
    pub api_base: String,
    pub record_type: String,
    /// The address or name records point at; empty = what the runtime reports.
    pub target: String,
    pub proxied: bool,
    /// Seconds; 1 means automatic.
    pub ttl: u32,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            provider: DnsProviderKind::None,
            api_token: Secret::default(),
            zone_id: String::new(),
            api_base: "https://api.cloudflare.com/client/v4".into(),
            record_type: "CNAME".into(),
            target: String::new(),
            proxied: true,
            ttl: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlanSettings {
    pub name: String,
    #[serde(default = "default_cpu")]
    pub cpu: String,
    #[serde(default = "default_memory")]
    pub memory: String,
}

fn default_cpu() -> String {
    "250m".into()
}
fn default_memory() -> String {
    "256Mi".into()
}

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
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// Per-tenant override of one notice's email. Placeholders: `{{name}}`, `{{hostname}}`,
/// `{{site_url}}`, `{{status_url}}`, `{{tenant}}` (escaped in the HTML part).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EmailTemplate {
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    pub name: String,
    pub base_domain: String,
    pub payment_required: bool,
    pub checkout_url: String,
    pub grace_period_secs: u64,
    pub reserved_names: Vec<String>,
    pub honeypot_field: String,
    pub html_max_bytes: usize,
    pub allowed_origins: Vec<String>,
    pub runtime: RuntimeKind,
    pub workload: WorkloadSettings,
    pub admin_token: Secret,
    pub stripe: StripeSettings,
    pub dns: DnsSettings,
    pub plans: BTreeMap<String, PlanSettings>,
    pub policies: Vec<PolicySettings>,
    /// Keyed by notice, e.g. `site_ready`.
    pub email_templates: BTreeMap<String, EmailTemplate>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            name: "default".into(),
            base_domain: "localhost".into(),
            payment_required: false,
            checkout_url: String::new(),
            grace_period_secs: 259_200,
            reserved_names: ["www", "admin", "api", "mail"].map(String::from).to_vec(),
            honeypot_field: "website".into(),
            html_max_bytes: 100 * 1024,
            allowed_origins: Vec::new(),
            runtime: RuntimeKind::Local,
            workload: WorkloadSettings::default(),
            admin_token: Secret::default(),
            stripe: StripeSettings::default(),
            dns: DnsSettings::default(),
            plans: BTreeMap::new(),
            policies: Vec::new(),
            email_templates: BTreeMap::new(),
        }
    }
}

/// A configuration problem, always naming the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Settings {
    /// Loads the file (if any) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(path, std::env::vars())
    }

    /// Loads the file (if any) and the given environment; the seam tests use.
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut tree = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Syntax {
                        path: path.into(),
                        message: e.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let mut overrides: Vec<_> = env
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(ENV_PREFIX)?.to_owned(), v)))
            .filter(|(k, _)| k.contains("__"))
            .collect();
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

    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite://")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite://, postgres:// or postgresql://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        self.email
            .from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| invalid("email.from", format!("not a valid mailbox: {e}")))?;
        if self.email.transport == EmailTransport::Smtp {
            let url = self.email.smtp_url.expose();
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(invalid(
                    "email.smtp_url",
                    "must start with smtp:// or smtps://",
                ));
            }
        }
        let public_url = &self.server.public_url;
        let is_http = public_url.starts_with("http://") || public_url.starts_with("https://");
        if !public_url.is_empty() && !is_http {
            return Err(invalid(
                "server.public_url",
                "must start with http:// or https://",
            ));
        }
        let rates = [
            ("signup_per_ip", &self.rate_limits.signup_per_ip),
            ("signup_per_email", &self.rate_limits.signup_per_email),
            ("signup_per_tenant", &self.rate_limits.signup_per_tenant),
            ("stripe_per_tenant", &self.rate_limits.stripe_per_tenant),
            ("admin_per_token", &self.rate_limits.admin_per_token),
        ];
        for (name, rate) in rates {
            rate.replenish_interval()
                .map_err(|m| invalid(format!("rate_limits.{name}"), m))?;
        }
        if self.jobs.concurrency == 0 {
            return Err(invalid("jobs.concurrency", "must be at least 1"));
        }
        if self.jobs.max_attempts < 1 {
            return Err(invalid("jobs.max_attempts", "must be at least 1"));
        }
        if self.jobs.lease_secs < 5 {
            return Err(invalid("jobs.lease_secs", "must be at least 5"));
        }
        if self.tenants.is_empty() {
            return Err(invalid("tenants", "at least one tenant is needed"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            let key = |field: &str| format!("tenants[{i}].{field}");
            crate::domain::TenantName::parse(&tenant.name).map_err(|e| invalid(key("name"), e))?;
            if !seen.insert(tenant.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("tenant {} is declared twice", tenant.name),
                ));
            }
            crate::domain::validate_base_domain(&tenant.base_domain)
                .map_err(|e| invalid(key("base_domain"), e))?;
            if tenant.html_max_bytes == 0 {
                return Err(invalid(key("html_max_bytes"), "must be at least 1"));
            }
            if tenant.html_max_bytes > 8 * 1024 * 1024 {
                return Err(invalid(key("html_max_bytes"), "must be at most 8 MiB"));
            }
            if tenant.honeypot_field.is_empty() {
                return Err(invalid(key("honeypot_field"), "must not be empty"));
            }
            if ["name", "email", "html", "plan"].contains(&tenant.honeypot_field.as_str()) {
                return Err(invalid(key("honeypot_field"), "must not be a signup field"));
            }
            if tenant.payment_required && tenant.checkout_url.is_empty() {
                return Err(invalid(
                    key("checkout_url"),
                    "is needed when payment_required = true",
                ));
            }
            let checkout = &tenant.checkout_url;
            let is_url = checkout.starts_with("https://") || checkout.starts_with("http://");
            if !checkout.is_empty() && !is_url {
                return Err(invalid(
                    key("checkout_url"),
                    "must be an http:// or https:// URL (a Stripe Payment Link or your checkout page)",
                ));
            }
            for (n, secret) in tenant.stripe.webhook_secrets.iter().enumerate() {
                if !secret.expose().starts_with("whsec_") {
                    return Err(invalid(
                        key(&format!("stripe.webhook_secrets[{n}]")),
                        "is not a webhook signing secret (those start with whsec_)",
                    ));
                }
            }
            if tenant.stripe.tolerance_secs == 0 {
                return Err(invalid(key("stripe.tolerance_secs"), "must be at least 1"));
            }
            if tenant.runtime == RuntimeKind::Local && tenant.workload.kind != WorkloadKind::Static
            {
                return Err(invalid(
                    key("workload.kind"),
                    "the local runtime only serves static sites",
                ));
            }
            if tenant.workload.kind == WorkloadKind::Container && tenant.workload.image.is_empty() {
                return Err(invalid(
                    key("workload.image"),
                    "is needed for container workloads",
                ));
            }
            if tenant.dns.provider == DnsProviderKind::Cloudflare {
                if tenant.dns.api_token.is_empty() {
                    return Err(invalid(key("dns.api_token"), "is needed for cloudflare"));
                }
                if tenant.dns.zone_id.is_empty() {
                    return Err(invalid(key("dns.zone_id"), "is needed for cloudflare"));
                }
            }
            if !["A", "AAAA", "CNAME"].contains(&tenant.dns.record_type.as_str()) {
                return Err(invalid(key("dns.record_type"), "must be A, AAAA or CNAME"));
            }
            for (price, plan) in &tenant.plans {
                if plan.name.is_empty() {
                    return Err(invalid(
                        key(&format!("plans.{price}.name")),
                        "must not be empty",
                    ));
                }
            }
            for origin in &tenant.allowed_origins {
                if !(origin.starts_with("http://") || origin.starts_with("https://"))
                    || origin.ends_with('/')
                {
                    return Err(invalid(
                        key("allowed_origins"),
                        format!("{origin:?} is not an origin like https://shop.example"),
                    ));
                }
            }
            for notice in tenant.email_templates.keys() {
                if !crate::mailer::NOTICES.contains(&notice.as_str()) {
                    return Err(invalid(
                        key(&format!("email_templates.{notice}")),
                        format!(
                            "unknown notice; known: {}",
                            crate::mailer::NOTICES.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The base of links berth hands out, without a trailing slash.
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The effective configuration as TOML, with secrets shown as `[redacted]`.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

/// Applies `SECTION__KEY[__SUB…]=value` to the TOML tree. Values keep the type of the default at
/// that key when it is a string (so tokens made of digits stay strings); otherwise they are read
/// as TOML (`true`, `12`, `["a"]`, `{ per_minute = 5, burst = 2 }`) and fall back to a string.
fn apply_override(tree: &mut toml::Table, key: &str, raw: String) -> Result<(), ConfigError> {
    let parts: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
    let dotted = format!("{ENV_PREFIX}{key}");
    if parts.iter().any(String::is_empty) {
        return Err(invalid(dotted, "empty key segment in environment variable"));
    }
    let defaults = toml::Value::try_from(Settings::default()).expect("defaults serialize");
    let tenant_defaults =
        toml::Value::try_from(TenantSettings::default()).expect("defaults serialize");
    let (table, path, default_tree) = if parts[0] == "tenants" {
        if parts.len() < 3 {
            return Err(invalid(dotted, "use BERTH_TENANTS__<TENANT>__<KEY>"));
        }
        let wanted = parts[1].replace('_', "-");
        let tenants = tree
            .entry("tenants")
            .or_insert_with(|| toml::Value::Array(vec![]))
            .as_array_mut()
            .ok_or_else(|| invalid("tenants", "must be an array of tables"))?;
        if tenants.is_empty() && wanted == "default" {
            let mut t = toml::Table::new();
            t.insert("name".into(), "default".into());
            tenants.push(toml::Value::Table(t));
        }
        let tenant = tenants
            .iter_mut()
            .filter_map(toml::Value::as_table_mut)
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(wanted.as_str()))
            .ok_or_else(|| invalid(dotted.clone(), format!("no tenant named {wanted}")))?;
        (tenant, &parts[2..], tenant_defaults)
    } else {
        (tree, &parts[..], defaults)
    };
    let mut current = table;
    let mut default_at = Some(&default_tree);
    for segment in &path[..path.len() - 1] {
        default_at = default_at.and_then(|d| d.get(segment));
        current = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| invalid(dotted.clone(), format!("{segment} is not a table")))?;
    }
    let last = &path[path.len() - 1];
    let default_value = default_at.and_then(|d| d.get(last));
    let value = match default_value {
        Some(toml::Value::String(_)) => toml::Value::String(raw),
        _ => format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw)),
    };
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
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

    #[test]
    fn environment_overrides_the_file() {
        let settings = load(
            "[server]\nadmin_token = \"from-file\"\n",
            &[
                ("BERTH_SERVER__ADMIN_TOKEN", "12345"),
                (
                    "BERTH_RATE_LIMITS__SIGNUP_PER_IP",
                    "{ per_second = 3, burst = 4 }",
                ),
                ("BERTH_JOBS__CONCURRENCY", "2"),
                ("BERTH_CONFIG", "ignored: not a section key"),
            ],
        )
        .unwrap();
        assert_eq!(settings.server.admin_token.expose(), "12345");
        assert_eq!(settings.rate_limits.signup_per_ip, Rate::per_second(3, 4));
        assert_eq!(settings.jobs.concurrency, 2);
    }

    #[test]
    fn environment_addresses_tenants_by_name() {
        let settings = load(
            "[[tenants]]\nname = \"default\"\n[[tenants]]\nname = \"acme-shops\"\nbase_domain = \"shops.example\"\n",
            &[("BERTH_TENANTS__ACME_SHOPS__ADMIN_TOKEN", "t0k3n")],
        )
        .unwrap();
        assert_eq!(settings.tenants[1].admin_token.expose(), "t0k3n");
        assert!(settings.tenants[0].admin_token.is_empty());

        let err = load("", &[("BERTH_TENANTS__NOPE__ADMIN_TOKEN", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no tenant named nope"), "{err}");
    }

    #[test]
    fn an_unknown_environment_key_is_reported_by_name() {
        let err = load("", &[("BERTH_SERVER__LISTN", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("server.listn: unknown key"), "{err}");
    }

    #[test]
    fn stripe_settings_are_checked() {
        let err = load(
            "[[tenants]]\nname = \"default\"\nstripe = { webhook_secrets = [\"whsec_ok\", \"sk_live_oops\"] }\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("tenants[0].stripe.webhook_secrets[1]:"),
            "{err}"
        );
        assert!(
            !err.contains("sk_live_oops"),
            "the value is not echoed: {err}"
        );
        let err = load(
            "[[tenants]]\nname = \"default\"\nstripe = { tolerance_secs = 0 }\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("tenants[0].stripe.tolerance_secs:"),
            "{err}"
        );
        let err = load(
            "[[tenants]]\nname = \"default\"\npayment_required = true\ncheckout_url = \"buy.stripe.com/x\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("tenants[0].checkout_url:"), "{err}");
        let ok = load(
            "[[tenants]]\nname = \"default\"\npayment_required = true\ncheckout_url = \"https://buy.stripe.com/x\"\n",
            &[("BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS", "[\"whsec_a\", \"whsec_b\"]")],
        )
        .unwrap();
        assert_eq!(ok.tenants[0].stripe.webhook_secrets.len(), 2);
    }

    #[test]
    fn redacted_output_hides_every_secret() {
        let settings = load(
            "[server]\nadmin_token = \"s3cret-admin\"\n[database]\nurl = \"postgres://u:pw@h/db\"\n[[tenants]]\nname = \"default\"\nadmin_token = \"s3cret-tenant\"\nstripe = { webhook_secrets = [\"whsec_s3cret\"] }\n",
            &[],
        )
        .unwrap();
        let out = settings.redacted_toml();
        for secret in ["s3cret-admin", "pw@h", "s3cret-tenant", "whsec_s3cret"] {
            assert!(!out.contains(secret), "{secret} leaked into:\n{out}");
        }
        assert!(out.contains("[redacted]"));
    }
}
