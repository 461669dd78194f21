//! `[[tenants]]`: each tenant's domain, signup form, payment, runtime, workload and plans (its
//! `stripe`, `dns`, `policies` and `email_templates` have their own files).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::email::validate_templates;
use super::error::{invalid, ConfigError};
use super::kubernetes::validate_kubernetes_tenant;
use super::policies::validate_policies;
use super::stack::ComponentSettings;
use super::{DnsSettings, EmailTemplate, PluginSettings, PolicySettings, StripeSettings};
use crate::domain::Secret;

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
    Stack,
}

/// What runs for each site. `static`: berth's unprivileged nginx serves the site's HTML.
/// `container` (kubernetes only): the tenant's image, listening on `port`. `stack` (kubernetes
/// only): several `components`, one of them (`expose`) behind the Ingress.
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
    /// Stack: the component behind the Ingress.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub expose: String,
    /// Stack: the secrets each site gets, generated once and kept for its life.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Stack: its components.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentSettings>,
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
            expose: String::new(),
            secrets: Vec::new(),
            components: Vec::new(),
        }
    }
}

/// A PersistentVolumeClaim mounted into a container workload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeSettings {
    /// e.g. `1Gi`.
    pub size: String,
    /// An absolute path in the container (`mount` for short).
    #[serde(alias = "mount")]
    pub mount_path: String,
    /// Empty = the cluster's default StorageClass.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub storage_class: String,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    pub name: String,
    /// What customers see the site builder called on the pages berth hosts (the name when
    /// empty).
    pub display_name: String,
    /// A logo for those pages (`https://` only; none when empty).
    pub logo_url: String,
    /// Their accent colour, `#rgb` or `#rrggbb`.
    pub accent_color: String,
    pub base_domain: String,
    pub payment_required: bool,
    pub checkout_url: String,
    pub grace_period_secs: u64,
    pub reserved_names: Vec<String>,
    pub honeypot_field: String,
    pub html_max_bytes: usize,
    /// How many versions of each site's content are kept (the live one and one on its way are
    /// kept whatever their age), for rollback.
    pub versions_kept: u32,
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
            display_name: String::new(),
            logo_url: String::new(),
            accent_color: "#2f6fed".into(),
            base_domain: "localhost".into(),
            payment_required: false,
            checkout_url: String::new(),
            grace_period_secs: 259_200,
            reserved_names: ["www", "admin", "api", "mail"].map(String::from).to_vec(),
            honeypot_field: "website".into(),
            html_max_bytes: 100 * 1024,
            versions_kept: 10,
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

impl TenantSettings {
    /// The name customers see: `display_name`, or the tenant's name.
    pub fn display_name_or_name(&self) -> &str {
        if self.display_name.trim().is_empty() {
            &self.name
        } else {
            &self.display_name
        }
    }
}

/// Checks each tenant in turn: its name (and that no earlier tenant has it), then its keys.
pub(super) fn validate(
    tenants: &[TenantSettings],
    plugins: &PluginSettings,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for (i, tenant) in tenants.iter().enumerate() {
        let key = |field: &str| format!("tenants[{i}].{field}");
        crate::domain::TenantName::parse(&tenant.name).map_err(|e| invalid(key("name"), e))?;
        if !seen.insert(tenant.name.as_str()) {
            return Err(invalid(
                key("name"),
                format!("tenant {} is declared twice", tenant.name),
            ));
        }
        let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
        let colour = &tenant.accent_color;
        if !(colour.len() == 4 || colour.len() == 7)
            || !colour.starts_with('#')
            || !hex(&colour[1..])
        {
            return Err(invalid(
                key("accent_color"),
                format!("{colour:?} is not a colour like \"#2f6fed\" or \"#26e\""),
            ));
        }
        if !tenant.logo_url.is_empty()
            && (!tenant.logo_url.starts_with("https://")
                || tenant
                    .logo_url
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"'))
        {
            return Err(invalid(
                key("logo_url"),
                "must be an https:// URL (the hosted pages load images over HTTPS only)",
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
        if !(1..=1000).contains(&tenant.versions_kept) {
            return Err(invalid(key("versions_kept"), "must be between 1 and 1000"));
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
        tenant.stripe.validate(key)?;
        if tenant.runtime == RuntimeKind::Local && tenant.workload.kind != WorkloadKind::Static {
            return Err(invalid(
                key("workload.kind"),
                "the local runtime only serves static sites: containers and stacks run on \
                 the kubernetes runtime (runtime = \"kubernetes\")",
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
        validate_policies(&tenant.policies, plugins.max_bindings_per_hook, key)?;
        validate_templates(&tenant.email_templates, key)?;
    }
    Ok(())
}
