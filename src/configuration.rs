//! Settings: one TOML file (optional) layered under `BERTH_<SECTION>__<KEY>` environment overrides.
//!
//! Every key has a default, so no file at all gives the embedded default. Unknown keys and bad
//! values are errors that name the key (`server.lisen: unknown key …`).
//!
//! Tenants are an array in TOML; the environment addresses them by name instead of position:
//! `BERTH_TENANTS__ACME_SHOPS__ADMIN_TOKEN` sets `admin_token` of tenant `acme-shops` (`_` in the
//! variable stands for `-` in the tenant name).

pub mod builtin_plugins;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::domain::RecordType;
use crate::domain::Secret;

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
    pub plugins: PluginSettings,
    /// Settings of Stripe event handling shared by every tenant (each tenant's webhook secrets
    /// are in its own `stripe` table).
    pub stripe: StripeRetentionSettings,
    pub tenants: Vec<TenantSettings>,
}

/// How long processed Stripe events are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeRetentionSettings {
    /// Processed events (applied, ignored, stale, invalid) are deleted this long after they were
    /// processed; rejected and deferred ones stay until an operator acts. 0 keeps them forever.
    pub event_retention_days: u64,
}

impl Default for StripeRetentionSettings {
    fn default() -> Self {
        Self {
            event_retention_days: 90,
        }
    }
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
    /// When set, `GET /metrics` needs `Authorization: Bearer <metrics_token>` (the metrics name
    /// tenants and plugins). Empty: `/metrics` is open, for a listener only scrapers reach.
    pub metrics_token: Secret,
    /// How long a client may take to send a request body, in seconds; then `408`.
    pub body_timeout_secs: u64,
    /// Open connections one client IP may hold on the API listener; more are closed at once.
    /// Peers in `trusted_proxies` are not bound.
    pub max_connections_per_ip: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default"),
            sites_listen: "127.0.0.1:8081".parse().expect("valid default"),
            trusted_proxies: Vec::new(),
            admin_token: Secret::default(),
            public_url: String::new(),
            metrics_token: Secret::default(),
            body_timeout_secs: 30,
            max_connections_per_ip: 64,
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
    /// Stripe deliveries whose signature does not verify, per client IP (only those count).
    pub stripe_invalid_per_ip: Rate,
    /// Admin requests with a missing or wrong token, per client IP (only those count); over
    /// it, even a right token is refused until the bucket refills.
    pub admin_failures_per_ip: Rate,
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
            stripe_invalid_per_ip: Rate::per_minute(30, 20),
            admin_failures_per_ip: Rate::per_minute(5, 10),
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
    /// Succeeded jobs are deleted this long after they finished; failed jobs stay until an
    /// operator acts. 0 keeps them forever.
    pub retention_days: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            concurrency: 64,
            base_delay_secs: 5,
            max_delay_secs: 6 * 3600,
            max_attempts: 12,
            lease_secs: 60,
            poll_interval_ms: 500,
            ready_timeout_secs: 300,
            shutdown_grace_secs: 20,
            retention_days: 7,
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

/// The `kubernetes` runtime (SPEC §2.4), shared by every tenant that uses it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSettings {
    /// A kubeconfig file; empty = the in-cluster service account.
    pub kubeconfig: String,
    /// The kubeconfig context; empty = its current context.
    pub context: String,
    /// `spec.ingressClassName` of every site's Ingress; empty = the cluster's default class.
    pub ingress_class: String,
    /// The ingress controller's namespace: the only one allowed in by the NetworkPolicy.
    pub ingress_namespace: String,
    /// A cert-manager ClusterIssuer; empty = Ingresses without TLS.
    pub tls_issuer: String,
    /// The unprivileged nginx image that serves static sites (listens on 8080, runs as 101).
    pub static_image: String,
    /// Deadline of one API request (a watch is bounded by the wait it serves instead).
    pub request_timeout_secs: u64,
    /// How long deprovisioning waits for a namespace to be gone before the job retries.
    pub delete_timeout_secs: u64,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        Self {
            kubeconfig: String::new(),
            context: String::new(),
            ingress_class: "nginx".into(),
            ingress_namespace: "ingress-nginx".into(),
            tls_issuer: String::new(),
            static_image: "docker.io/nginxinc/nginx-unprivileged:1.28-alpine".into(),
            request_timeout_secs: 30,
            delete_timeout_secs: 300,
        }
    }
}

/// Limits of the WebAssembly policy sandbox (SPEC §3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Largest module accepted at upload, in bytes.
    pub max_module_bytes: usize,
    /// Linear memory one call may use, in bytes.
    pub memory_limit_bytes: usize,
    /// Deadline of one call (allocation, validation and output), in milliseconds.
    pub timeout_ms: u64,
    /// Largest output JSON a plugin may return, in bytes.
    pub max_output_bytes: usize,
    /// Log bytes one call may emit through `berth_v1.log`; the rest is dropped.
    pub max_log_bytes: usize,
    /// WebAssembly stack of one call, in bytes.
    pub stack_bytes: usize,
    /// Plugin instances that may run at once (slots of the pooling allocator).
    pub max_instances: u32,
    /// Of those, the most one tenant's calls may take at once, so that other tenants always
    /// find slots and CPU. 0: half the machine's CPUs (at least 1), or every slot when there is
    /// only one tenant (it has nobody to share with).
    pub max_instances_per_tenant: u32,
    /// Bindings one tenant may have on one hook.
    pub max_bindings_per_hook: usize,
    /// Plugin time one submission may use across all its bindings and hooks, in milliseconds;
    /// bindings left unrun when it is spent count as failed (class `budget`).
    pub submission_budget_ms: u64,
}

impl PluginSettings {
    /// The slots one of `tenants` tenants' calls may take: `max_instances_per_tenant`, or when
    /// it is 0 half the CPUs (every slot for a lone tenant); at least 1, at most `max_instances`.
    pub fn instances_per_tenant(&self, tenants: usize) -> u32 {
        let share = match self.max_instances_per_tenant {
            0 if tenants <= 1 => self.max_instances,
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32 / 2),
            n => n,
        };
        share.clamp(1, self.max_instances.max(1))
    }
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            max_module_bytes: 4 * 1024 * 1024,
            memory_limit_bytes: 32 * 1024 * 1024,
            timeout_ms: 100,
            max_output_bytes: 64 * 1024,
            max_log_bytes: 4 * 1024,
            stack_bytes: 256 * 1024,
            max_instances: 32,
            max_instances_per_tenant: 0,
            max_bindings_per_hook: 16,
            submission_budget_ms: 1000,
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

/// What runs for each site. `static`: berth's unprivileged nginx serves the site's HTML.
/// `container` (kubernetes only): the tenant's image, listening on `port`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadSettings {
    pub kind: WorkloadKind,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The container's port (default 8080).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Environment of the container, delivered through a Secret.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The non-root UID the container runs as (default 10001).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// An HTTP path that answers 2xx when the container is healthy; unset = TCP probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    /// A persistent volume per site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeSettings>,
}

impl Default for WorkloadSettings {
    fn default() -> Self {
        Self {
            kind: WorkloadKind::Static,
            image: String::new(),
            port: None,
            env: BTreeMap::new(),
            run_as_user: None,
            health_path: None,
            volume: None,
        }
    }
}

/// A PersistentVolumeClaim mounted into a container workload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeSettings {
    /// e.g. `1Gi`.
    pub size: String,
    /// An absolute path in the container.
    pub mount_path: String,
    /// Empty = the cluster's default StorageClass.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_class: String,
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
    /// Cloudflare API token with DNS edit permission on the zone.
    pub api_token: Secret,
    pub zone_id: String,
    /// Cloudflare API v4 base URL, without a trailing slash.
    pub api_base: String,
    pub record_type: RecordType,
    /// The address or name records point at; empty = what the runtime reports.
    pub target: String,
    /// Proxy the site through Cloudflare; the TTL is then automatic whatever `ttl` says.
    pub proxied: bool,
    /// Seconds; 1 means automatic, else 30 to 86400.
    pub ttl: u32,
    /// Limit for one API request (connect, send, read the answer), in seconds.
    pub timeout_secs: u64,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            provider: DnsProviderKind::None,
            api_token: Secret::default(),
            zone_id: String::new(),
            api_base: "https://api.cloudflare.com/client/v4".into(),
            record_type: RecordType::Cname,
            target: String::new(),
            proxied: true,
            ttl: 1,
            timeout_secs: 10,
        }
    }
}

impl DnsSettings {
    /// Checks the keys the provider needs; the error names the key under `dns`.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.target.is_empty() {
            self.record_type
                .check_target(&self.target)
                .map_err(|m| ("dns.target", m))?;
        }
        if self.ttl != 1 && !(30..=86_400).contains(&self.ttl) {
            return Err(("dns.ttl", "must be 1 (automatic) or 30 to 86400".into()));
        }
        if self.provider != DnsProviderKind::Cloudflare {
            return Ok(());
        }
        if self.api_token.is_empty() {
            return Err(("dns.api_token", "is needed for cloudflare".into()));
        }
        let token_ok = self
            .api_token
            .expose()
            .bytes()
            .all(|b| b.is_ascii_graphic());
        if !token_ok {
            // Never echo the token: say what is wrong with it, not what it is.
            return Err((
                "dns.api_token",
                "may only hold printable ASCII without spaces".into(),
            ));
        }
        let zone_ok = self
            .zone_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if self.zone_id.is_empty() || !zone_ok {
            return Err((
                "dns.zone_id",
                "is needed for cloudflare: the zone's id (letters and digits)".into(),
            ));
        }
        if !(self.api_base.starts_with("https://") || self.api_base.starts_with("http://")) {
            return Err(("dns.api_base", "must start with https:// or http://".into()));
        }
        if self.timeout_secs == 0 {
            return Err(("dns.timeout_secs", "must be at least 1".into()));
        }
        Ok(())
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

impl Default for PlanSettings {
    /// What a site without a plan gets.
    fn default() -> Self {
        Self {
            name: "default".into(),
            cpu: default_cpu(),
            memory: default_memory(),
        }
    }
}

/// A plan by its key (a Stripe price id) or its name.
pub fn find_plan<'a>(
    plans: &'a BTreeMap<String, PlanSettings>,
    wanted: &str,
) -> Option<(&'a String, &'a PlanSettings)> {
    plans
        .iter()
        .find(|(key, plan)| key.as_str() == wanted || plan.name == wanted)
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
    /// The plugin may rewrite the HTML it is given (html hook only).
    #[serde(default)]
    pub mutating: bool,
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

/// Admin tokens are at least this long, so that guessing one is hopeless.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

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

impl ConfigError {
    /// The same error with no value in it: serde's "invalid type: string \"…\"" keeps only
    /// the kind of value, "unknown variant `…`" drops the variant, and any given value of 8 or
    /// more characters left in a message becomes `[redacted]`.
    fn without_values(self, values: &[String]) -> Self {
        match self {
            Self::Invalid { key, message } => {
                let mut message = without_serde_values(&message);
                let mut values: Vec<&String> = values.iter().filter(|v| v.len() >= 8).collect();
                values.sort_by_key(|v| std::cmp::Reverse(v.len()));
                for value in values {
                    message = message.replace(value.as_str(), "[redacted]");
                }
                Self::Invalid { key, message }
            }
            other => other,
        }
    }
}

/// serde's messages without the value they quote: `invalid type: string "…", expected X` →
/// `invalid type: string, expected X`; `unknown variant `…`, expected …` → `unknown variant,
/// expected …`.
fn without_serde_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.split_once(", expected ") {
                let kind = found.split(['`', '"']).next().unwrap_or_default().trim();
                return format!("{prefix}{kind}, expected {expected}");
            }
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((_, expected)) = rest.split_once("`, ") {
            return format!("unknown variant, {expected}");
        }
    }
    message.to_owned()
}

/// A TOML syntax error by line and column, without the line itself (it may hold a secret).
fn syntax_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Every string in a TOML tree.
fn collect_strings(value: &toml::Value, into: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => into.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, into)),
        toml::Value::Table(table) => table.values().for_each(|v| collect_strings(v, into)),
        _ => {}
    }
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

    /// Every admin token set is long enough, and no two are the same (a tenant token equal to
    /// the global one, or another tenant's, would give one caller two scopes).
    fn validate_admin_tokens(&self) -> Result<(), ConfigError> {
        let tokens = std::iter::once(("server.admin_token".to_owned(), &self.server.admin_token))
            .chain(
                self.tenants
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("tenants[{i}].admin_token"), &t.admin_token)),
            )
            .filter(|(_, token)| !token.is_empty());
        let mut seen: Vec<(String, &Secret)> = Vec::new();
        for (key, token) in tokens {
            if token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS {
                return Err(invalid(
                    key,
                    format!(
                        "must be at least {MIN_ADMIN_TOKEN_CHARS} characters (generate one with: openssl rand -hex 32)"
                    ),
                ));
            }
            if let Some((other, _)) = seen.iter().find(|(_, t)| t.expose() == token.expose()) {
                return Err(invalid(
                    key,
                    format!("must differ from {other}; every admin token gets its own value"),
                ));
            }
            seen.push((key, token));
        }
        Ok(())
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
            (
                "stripe_invalid_per_ip",
                &self.rate_limits.stripe_invalid_per_ip,
            ),
            (
                "admin_failures_per_ip",
                &self.rate_limits.admin_failures_per_ip,
            ),
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
        let plugins = &self.plugins;
        if plugins.timeout_ms == 0 || plugins.timeout_ms > 60_000 {
            return Err(invalid("plugins.timeout_ms", "must be from 1 to 60000"));
        }
        if plugins.memory_limit_bytes < 64 * 1024 || plugins.memory_limit_bytes > 1 << 30 {
            return Err(invalid(
                "plugins.memory_limit_bytes",
                "must be from 65536 (one page) to 1 GiB",
            ));
        }
        if plugins.max_instances == 0 {
            return Err(invalid("plugins.max_instances", "must be at least 1"));
        }
        if plugins.max_instances_per_tenant > plugins.max_instances {
            return Err(invalid(
                "plugins.max_instances_per_tenant",
                "must be at most plugins.max_instances (0 = half the CPUs)",
            ));
        }
        if plugins.max_bindings_per_hook == 0 {
            return Err(invalid(
                "plugins.max_bindings_per_hook",
                "must be at least 1",
            ));
        }
        if plugins.submission_budget_ms < plugins.timeout_ms {
            return Err(invalid(
                "plugins.submission_budget_ms",
                "must be at least plugins.timeout_ms (one whole call)",
            ));
        }
        if plugins.stack_bytes < 16 * 1024 {
            return Err(invalid("plugins.stack_bytes", "must be at least 16384"));
        }
        let kube = &self.kubernetes;
        if kube.request_timeout_secs == 0 {
            return Err(invalid(
                "kubernetes.request_timeout_secs",
                "must be at least 1",
            ));
        }
        if kube.delete_timeout_secs == 0 {
            return Err(invalid(
                "kubernetes.delete_timeout_secs",
                "must be at least 1",
            ));
        }
        if kube.static_image.is_empty() {
            return Err(invalid("kubernetes.static_image", "must not be empty"));
        }
        let uses_kubernetes = self
            .tenants
            .iter()
            .any(|t| t.runtime == RuntimeKind::Kubernetes);
        if uses_kubernetes && kube.ingress_namespace.is_empty() {
            return Err(invalid(
                "kubernetes.ingress_namespace",
                "is needed: only the ingress controller's namespace may reach the sites",
            ));
        }
        if self.tenants.is_empty() {
            return Err(invalid("tenants", "at least one tenant is needed"));
        }
        self.validate_admin_tokens()?;
        let metrics_token = &self.server.metrics_token;
        if !metrics_token.is_empty()
            && metrics_token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(invalid(
                "server.metrics_token",
                format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters"),
            ));
        }
        if self.server.body_timeout_secs == 0 {
            return Err(invalid("server.body_timeout_secs", "must be at least 1"));
        }
        if self.server.max_connections_per_ip == 0 {
            return Err(invalid(
                "server.max_connections_per_ip",
                "must be at least 1",
            ));
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
            if tenant.runtime == RuntimeKind::Kubernetes {
                validate_kubernetes_tenant(tenant).map_err(|(k, m)| invalid(key(&k), m))?;
            }
            tenant.dns.validate().map_err(|(k, m)| invalid(key(k), m))?;
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
            for (j, policy) in tenant.policies.iter().enumerate() {
                let key = |field: &str| format!("tenants[{i}].policies[{j}].{field}");
                crate::domain::PluginName::parse(&policy.plugin)
                    .map_err(|e| invalid(key("plugin"), e))?;
                if !["name", "html"].contains(&policy.hook.as_str()) {
                    return Err(invalid(key("hook"), "must be name or html"));
                }
                if policy.file.is_empty() {
                    return Err(invalid(key("file"), "must name the plugin's .wasm file"));
                }
                if let Some(Err(reason)) =
                    crate::configuration::builtin_plugins::lookup(&policy.file)
                {
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
                let bound = tenant.policies.iter().filter(|p| p.hook == hook).count();
                if bound > self.plugins.max_bindings_per_hook {
                    return Err(invalid(
                        key("policies"),
                        format!(
                            "{bound} bindings on the {hook} hook; plugins.max_bindings_per_hook allows {}",
                            self.plugins.max_bindings_per_hook
                        ),
                    ));
                }
            }
            for notice in tenant.email_templates.keys() {
                if !crate::domain::notice::NOTICES.contains(&notice.as_str()) {
                    return Err(invalid(
                        key(&format!("email_templates.{notice}")),
                        format!(
                            "unknown notice; known: {}",
                            crate::domain::notice::NOTICES.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

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

    /// `text` (an error to print, say) with every secret's value, and the password inside a
    /// database or SMTP URL, replaced by `[redacted]`: a last guard for messages that other
    /// libraries wrote.
    pub fn redact(&self, text: &str) -> String {
        let mut secrets: Vec<&str> = vec![
            self.server.admin_token.expose(),
            self.server.metrics_token.expose(),
            self.database.url.expose(),
            self.email.smtp_url.expose(),
        ];
        secrets.extend(url_password(self.database.url.expose()));
        secrets.extend(url_password(self.email.smtp_url.expose()));
        for tenant in &self.tenants {
            secrets.push(tenant.admin_token.expose());
            secrets.push(tenant.dns.api_token.expose());
            secrets.extend(tenant.stripe.webhook_secrets.iter().map(Secret::expose));
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut text = text.to_owned();
        for secret in secrets {
            text = text.replace(secret, "[redacted]");
        }
        text
    }
}

/// The password of `scheme://user:password@host…`, if there is one.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// The largest HTML a static site on Kubernetes may have: it travels in a ConfigMap, whose data
/// is limited to 1 MiB (the nginx configuration shares it).
pub const KUBERNETES_HTML_MAX_BYTES: usize = 900 * 1024;

/// Checks what the kubernetes runtime needs of a tenant; errors are `(key under the tenant,
/// message)`.
fn validate_kubernetes_tenant(tenant: &TenantSettings) -> Result<(), (String, String)> {
    use crate::domain::quantity::{Bytes, Cpu};
    let fail = |key: &str, message: String| Err((key.to_owned(), message));
    if tenant.html_max_bytes > KUBERNETES_HTML_MAX_BYTES {
        return fail(
            "html_max_bytes",
            format!("must be at most {KUBERNETES_HTML_MAX_BYTES} with the kubernetes runtime (the HTML goes in a ConfigMap)"),
        );
    }
    for (price, plan) in &tenant.plans {
        Cpu::parse(&plan.cpu).map_err(|m| (format!("plans.{price}.cpu"), m))?;
        Bytes::parse(&plan.memory).map_err(|m| (format!("plans.{price}.memory"), m))?;
    }
    let workload = &tenant.workload;
    if workload.port == Some(0) {
        return fail("workload.port", "must be from 1 to 65535".into());
    }
    if let Some(uid) = workload.run_as_user {
        if uid < 1 {
            return fail(
                "workload.run_as_user",
                "must be a non-root UID (1 or more)".into(),
            );
        }
    }
    if let Some(path) = &workload.health_path {
        if !path.starts_with('/') {
            return fail("workload.health_path", "must start with /".into());
        }
    }
    for name in workload.env.keys() {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return fail(
                &format!("workload.env.{name}"),
                "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)".into(),
            );
        }
    }
    if let Some(volume) = &workload.volume {
        if workload.kind != WorkloadKind::Container {
            return fail(
                "workload.volume",
                "only container workloads have volumes".into(),
            );
        }
        Bytes::parse(&volume.size).map_err(|m| ("workload.volume.size".to_owned(), m))?;
        let path = volume.mount_path.trim_end_matches('/');
        if !volume.mount_path.starts_with('/') || path.is_empty() || path == "/tmp" {
            return fail(
                "workload.volume.mount_path",
                "must be an absolute path other than / and /tmp".into(),
            );
        }
    }
    Ok(())
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

/// Which parts of berth this process runs (`serve`, `--no-worker`, `--worker-only`).
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// The public and admin API (and, for local-runtime tenants, the sites listener).
    pub api: bool,
    pub worker: bool,
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
                ("BERTH_SERVER__ADMIN_TOKEN", "1234567890123456"),
                (
                    "BERTH_RATE_LIMITS__SIGNUP_PER_IP",
                    "{ per_second = 3, burst = 4 }",
                ),
                ("BERTH_JOBS__CONCURRENCY", "2"),
                ("BERTH_CONFIG", "ignored: not a section key"),
            ],
        )
        .unwrap();
        assert_eq!(settings.server.admin_token.expose(), "1234567890123456");
        assert_eq!(settings.rate_limits.signup_per_ip, Rate::per_second(3, 4));
        assert_eq!(settings.jobs.concurrency, 2);
    }

    #[test]
    fn environment_addresses_tenants_by_name() {
        let settings = load(
            "[[tenants]]\nname = \"default\"\n[[tenants]]\nname = \"acme-shops\"\nbase_domain = \"shops.example\"\n",
            &[("BERTH_TENANTS__ACME_SHOPS__ADMIN_TOKEN", "t0k3n-of-acme-shops")],
        )
        .unwrap();
        assert_eq!(
            settings.tenants[1].admin_token.expose(),
            "t0k3n-of-acme-shops"
        );
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
    fn a_cloudflare_tenant_is_configured_with_its_keys() {
        let settings = load(
            "[[tenants]]\nname = \"default\"\ndns = { provider = \"cloudflare\", zone_id = \"023e105f4ecef8ad9ca31a8372d0c353\", record_type = \"AAAA\", target = \"2001:db8::7\", proxied = false, ttl = 300, timeout_secs = 5 }\n",
            &[("BERTH_TENANTS__DEFAULT__DNS__API_TOKEN", "cf-s3cret")],
        )
        .unwrap();
        let dns = &settings.tenants[0].dns;
        assert_eq!(dns.provider, DnsProviderKind::Cloudflare);
        assert_eq!(dns.record_type, RecordType::Aaaa);
        assert_eq!(dns.api_token.expose(), "cf-s3cret");
        assert_eq!(dns.api_base, "https://api.cloudflare.com/client/v4");
        assert_eq!((dns.ttl, dns.timeout_secs), (300, 5));
        assert!(!settings.redacted_toml().contains("cf-s3cret"));
    }

    #[test]
    fn bad_dns_settings_are_reported_by_key() {
        let cloudflare = "provider = \"cloudflare\", api_token = \"t\", zone_id = \"z1\"";
        let cases = [
            (
                "record_type = \"MX\"",
                "tenants[0].dns.record_type:",
                "only A, AAAA, CNAME",
            ),
            (
                "record_type = \"A\", target = \"lb.example.net\"",
                "tenants[0].dns.target:",
                "A needs an address",
            ),
            (
                "target = \"203.0.113.7\"",
                "tenants[0].dns.target:",
                "a CNAME needs a hostname",
            ),
            ("ttl = 5", "tenants[0].dns.ttl:", "too short"),
            (
                "provider = \"cloudflare\", zone_id = \"z1\"",
                "tenants[0].dns.api_token:",
                "no token",
            ),
            (
                "provider = \"cloudflare\", api_token = \"t\"",
                "tenants[0].dns.zone_id:",
                "no zone",
            ),
            (
                "provider = \"cloudflare\", api_token = \"t\", zone_id = \"../x\"",
                "tenants[0].dns.zone_id:",
                "not an id",
            ),
            (
                "provider = \"cloudflare\", api_token = \"a b\", zone_id = \"z1\"",
                "tenants[0].dns.api_token:",
                "not a header value",
            ),
        ];
        for (dns, key, why) in cases {
            let err = load(
                &format!("[[tenants]]\nname = \"default\"\ndns = {{ {dns} }}\n"),
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(err.starts_with(key), "{why}: {err}");
            assert!(!err.contains("a b"), "the token is never echoed: {err}");
        }
        let timeout = format!(
            "[[tenants]]\nname = \"default\"\ndns = {{ {cloudflare}, timeout_secs = 0 }}\n"
        );
        let err = load(&timeout, &[]).unwrap_err().to_string();
        assert!(err.starts_with("tenants[0].dns.timeout_secs:"), "{err}");
    }

    #[test]
    fn a_kubernetes_tenant_is_checked_for_what_the_runtime_needs() {
        let tenant =
            |rest: &str| format!("[[tenants]]\nname = \"k\"\nruntime = \"kubernetes\"\n{rest}\n");
        let good = load(
            &tenant("workload = { kind = \"container\", image = \"shop:1\", port = 3000, env = { MODE = \"live\" }, volume = { size = \"1Gi\", mount_path = \"/data\" } }\nplans = { p = { name = \"pro\", cpu = \"1.5\", memory = \"1Gi\" } }"),
            &[],
        );
        assert!(good.is_ok(), "{good:?}");
        for (rest, key, why) in [
            ("html_max_bytes = 2000000", "tenants[0].html_max_bytes", "the HTML must fit a ConfigMap"),
            ("plans = { p = { name = \"pro\", cpu = \"lots\" } }", "tenants[0].plans.p.cpu", "not a CPU amount"),
            ("plans = { p = { name = \"pro\", memory = \"1GB\" } }", "tenants[0].plans.p.memory", "not a Kubernetes size"),
            ("workload = { kind = \"container\", image = \"x\", port = 0 }", "tenants[0].workload.port", "port 0"),
            ("workload = { kind = \"container\", image = \"x\", run_as_user = 0 }", "tenants[0].workload.run_as_user", "root"),
            ("workload = { kind = \"container\", image = \"x\", env = { \"BAD-NAME\" = \"1\" } }", "tenants[0].workload.env.BAD-NAME", "not an env name"),
            ("workload = { kind = \"container\", image = \"x\", health_path = \"up\" }", "tenants[0].workload.health_path", "relative path"),
            ("workload = { kind = \"static\", volume = { size = \"1Gi\", mount_path = \"/data\" } }", "tenants[0].workload.volume", "a static site has no volume"),
            ("workload = { kind = \"container\", image = \"x\", volume = { size = \"big\", mount_path = \"/data\" } }", "tenants[0].workload.volume.size", "bad size"),
            ("workload = { kind = \"container\", image = \"x\", volume = { size = \"1Gi\", mount_path = \"/tmp\" } }", "tenants[0].workload.volume.mount_path", "/tmp is the scratch dir"),
        ] {
            let err = load(&tenant(rest), &[]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}:")), "{why}: {err}");
        }
        let err = load("[kubernetes]\nrequest_timeout_secs = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("kubernetes.request_timeout_secs:"), "{err}");
        let no_ingress = format!("[kubernetes]\ningress_namespace = \"\"\n{}", tenant(""));
        let err = load(&no_ingress, &[]).unwrap_err().to_string();
        assert!(err.starts_with("kubernetes.ingress_namespace:"), "{err}");
        // A local tenant's plans are not Kubernetes quantities, and need not be.
        assert!(load(
            "[[tenants]]\nname = \"l\"\nplans = { p = { name = \"x\", cpu = \"lots\" } }\n",
            &[]
        )
        .is_ok());
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
    fn a_tenant_s_share_of_plugin_slots_is_half_the_cpus_unless_set() {
        let with = |per_tenant, max| PluginSettings {
            max_instances_per_tenant: per_tenant,
            max_instances: max,
            ..PluginSettings::default()
        };
        assert_eq!(with(3, 32).instances_per_tenant(2), 3);
        let cpus = std::thread::available_parallelism().unwrap().get() as u32;
        assert_eq!(with(0, 32).instances_per_tenant(2), (cpus / 2).clamp(1, 32));
        assert_eq!(
            with(0, 32).instances_per_tenant(1),
            32,
            "a lone tenant has nobody to share with"
        );
        assert_eq!(with(3, 32).instances_per_tenant(1), 3, "unless set");
        assert_eq!(
            with(0, 1).instances_per_tenant(2),
            1,
            "never more than all slots"
        );
        let err = load(
            "[plugins]\nmax_instances = 2\nmax_instances_per_tenant = 3\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("plugins.max_instances_per_tenant:"),
            "{err}"
        );
    }

    #[test]
    fn short_or_shared_admin_tokens_are_refused_at_start() {
        let global = "g-0123456789abcdef";
        let cases = [
            (
                "[server]\nadmin_token = \"short\"\n".to_owned(),
                "server.admin_token: must be at least 16 characters",
            ),
            (
                "[[tenants]]\nname = \"default\"\nadmin_token = \"fifteen-chars-x\"\n".to_owned(),
                "tenants[0].admin_token: must be at least 16 characters",
            ),
            (
                format!("[server]\nadmin_token = \"{global}\"\n[[tenants]]\nname = \"default\"\nadmin_token = \"{global}\"\n"),
                "tenants[0].admin_token: must differ from server.admin_token",
            ),
            (
                format!("[[tenants]]\nname = \"default\"\nadmin_token = \"{global}\"\n[[tenants]]\nname = \"acme\"\nbase_domain = \"acme.test\"\nadmin_token = \"{global}\"\n"),
                "tenants[1].admin_token: must differ from tenants[0].admin_token",
            ),
        ];
        for (file, expected) in cases {
            let err = load(&file, &[]).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{file}: {err}");
            assert!(!err.contains(global), "{err}");
        }
        let fine = format!("[server]\nadmin_token = \"{global}\"\n");
        assert!(load(&fine, &[]).is_ok());
    }

    #[test]
    fn no_configuration_error_shows_a_secret() {
        let secret = "whsec_9f8e7d6c5b4a39281706";
        let token = "tok_3b9d1f7a5c2e8046";
        /// What went wrong, the file, the environment.
        type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                "a secret as a string where a list belongs",
                String::new(),
                vec![("BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS", secret)],
            ),
            (
                "a secret in a number's place",
                String::new(),
                vec![("BERTH_TENANTS__DEFAULT__STRIPE__TOLERANCE_SECS", secret)],
            ),
            (
                "a malformed admin_token line",
                format!("[server]\nadmin_token = {token}\n"),
                vec![],
            ),
            (
                "an unterminated admin_token string",
                format!("[server]\nadmin_token = \"{token}\n"),
                vec![],
            ),
            (
                "a secret as an enum value",
                format!("[email]\ntransport = \"{token}\"\n"),
                vec![],
            ),
            (
                "a secret as a tenant name",
                format!("[[tenants]]\nname = \"{token}_X\"\n"),
                vec![],
            ),
            (
                "a secret as a list where a string belongs",
                format!("[server]\nadmin_token = [\"{token}\"]\n"),
                vec![],
            ),
            (
                "a secret in an origin",
                format!("[[tenants]]\nname = \"default\"\nallowed_origins = [\"{token}\"]\n"),
                vec![],
            ),
        ];
        for (what, file, env) in cases {
            let err = load(&file, &env).unwrap_err().to_string();
            assert!(
                !err.contains(secret) && !err.contains(token),
                "{what}: {err}"
            );
            assert!(
                err.contains(':'),
                "{what}: the error still says where: {err}"
            );
        }
        let err = load(
            "",
            &[("BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS", secret)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tenants[0].stripe.webhook_secrets")
                && err.contains("invalid type: string, expected a sequence"),
            "{err}"
        );
        let err = load("[server]\nadmin_token = oops-no-quotes\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2, column"), "{err}");
    }

    #[test]
    fn redact_hides_secrets_and_url_passwords_in_any_message() {
        let settings = load(
            "[server]\nadmin_token = \"s3cret-admin-0123456\"\n[database]\nurl = \"postgres://berth:pw-7f3a9c@db.internal/berth\"\n[email]\nsmtp_url = \"smtps://mailer:smtp-9d2e@mail.example:465\"\n",
            &[],
        )
        .unwrap();
        let message = "connection to server at \"db.internal\" failed for postgres://berth:pw-7f3a9c@db.internal/berth; \
                       password pw-7f3a9c; smtp smtp-9d2e; token s3cret-admin-0123456";
        let redacted = settings.redact(message);
        for secret in ["pw-7f3a9c", "smtp-9d2e", "s3cret-admin-0123456"] {
            assert!(!redacted.contains(secret), "{redacted}");
        }
        assert!(redacted.contains("db.internal"), "{redacted}");
    }

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

    #[test]
    fn redacted_output_hides_every_secret() {
        let settings = load(
            "[server]\nadmin_token = \"s3cret-admin-0123456\"\n[database]\nurl = \"postgres://u:pw@h/db\"\n[[tenants]]\nname = \"default\"\nadmin_token = \"s3cret-tenant-012345\"\nstripe = { webhook_secrets = [\"whsec_s3cret\"] }\n",
            &[],
        )
        .unwrap();
        let out = settings.redacted_toml();
        for secret in [
            "s3cret-admin-0123456",
            "pw@h",
            "s3cret-tenant-012345",
            "whsec_s3cret",
        ] {
            assert!(!out.contains(secret), "{secret} leaked into:\n{out}");
        }
        assert!(out.contains("[redacted]"));
    }
}
