//! Tenants as the running service sees them: settings plus the runtime and DNS provider they use.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::adapters::db::sites::SiteRow;
use crate::adapters::dns::cloudflare::Cloudflare;
use crate::adapters::dns::{DnsProvider, NoDns};
use crate::adapters::runtime::kubernetes::{Connection, KubernetesRuntime};
use crate::adapters::runtime::local::LocalRuntime;
use crate::adapters::runtime::{Runtime, SiteSpec};
use crate::configuration::{DnsProviderKind, PlanSettings, RuntimeKind, Settings, TenantSettings};
use crate::domain::TenantName;

pub struct Tenant {
    pub name: TenantName,
    pub settings: TenantSettings,
    pub runtime: Arc<dyn Runtime>,
    pub dns: Arc<dyn DnsProvider>,
    reserved: HashSet<String>,
    /// `server.public_url`, without a trailing slash.
    public_url: String,
}

impl Tenant {
    pub fn is_reserved(&self, name: &str) -> bool {
        self.reserved.contains(name)
    }

    /// Finds a plan by its name (`starter`) or its key (a Stripe price id).
    pub fn plan(&self, wanted: &str) -> Option<(&String, &PlanSettings)> {
        crate::configuration::find_plan(&self.settings.plans, wanted)
    }

    /// What the runtime applies for `site`, with `html` (its target version's, for a static
    /// site; `None` when the workload has none or the step needs none).
    pub fn site_spec(&self, site: &SiteRow, html: Option<String>) -> SiteSpec {
        SiteSpec {
            id: site.id.clone(),
            tenant: site.tenant.clone(),
            name: site.name.clone(),
            hostname: site.hostname.clone(),
            html,
            plan: site.plan.clone(),
            workload: None,
        }
    }

    /// Where DNS points: `dns.target` when set, else what the runtime reported.
    pub fn dns_target(&self, from_runtime: Option<String>) -> anyhow::Result<String> {
        if !self.settings.dns.target.is_empty() {
            return Ok(self.settings.dns.target.clone());
        }
        from_runtime.ok_or_else(|| {
            anyhow::anyhow!(
                "no DNS target: set dns.target for tenant {} or let the runtime report one",
                self.name
            )
        })
    }

    pub fn site_url(&self, hostname: &str) -> String {
        self.runtime.site_url(hostname)
    }

    /// The signup page berth hosts for this tenant.
    pub fn signup_path(&self) -> String {
        if self.name.as_str() == "default" {
            "/signup".into()
        } else {
            format!("/t/{}/signup", self.name)
        }
    }

    /// The signup page's full address.
    pub fn signup_url(&self) -> String {
        format!("{}{}", self.public_url, self.signup_path())
    }

    pub fn status_path(&self, site_id: &str) -> String {
        format!("/t/{}/sites/{site_id}", self.name)
    }

    pub fn status_url(&self, site_id: &str) -> String {
        format!("{}{}", self.public_url, self.status_path(site_id))
    }

    /// The customer's manage link. The token travels in the fragment, which browsers never
    /// send to a server (so it reaches no access log) nor put in a `Referer`.
    pub fn manage_url(&self, site_id: &str, token: &str) -> String {
        format!("{}/manage#token={token}", self.status_url(site_id))
    }
}

pub struct Tenants {
    by_name: BTreeMap<String, Arc<Tenant>>,
    /// The Kubernetes client's connection, which a configuration reload keeps.
    connection: Arc<Connection>,
}

impl Tenants {
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, None)
    }

    /// Like [`Tenants::build`], with an existing Kubernetes client for the tenants that use the
    /// kubernetes runtime (tests pass a mock API server); `None` builds one from the settings
    /// on first use.
    pub fn build_with(settings: &Settings, kube: Option<kube::Client>) -> anyhow::Result<Self> {
        let connection = Arc::new(match kube {
            Some(client) => Connection::with_client(&settings.kubernetes, client),
            None => Connection::lazy(&settings.kubernetes),
        });
        Self::build_on(settings, connection)
    }

    /// The tenants of reloaded `settings`, on this one's Kubernetes connection.
    pub fn rebuild(&self, settings: &Settings) -> anyhow::Result<Self> {
        Self::build_on(settings, self.connection.clone())
    }

    fn build_on(settings: &Settings, connection: Arc<Connection>) -> anyhow::Result<Self> {
        let local: Arc<dyn Runtime> = Arc::new(LocalRuntime::new(settings.server.sites_listen));
        let mut by_name = BTreeMap::new();
        for tenant in &settings.tenants {
            let runtime: Arc<dyn Runtime> = match tenant.runtime {
                RuntimeKind::Local => local.clone(),
                RuntimeKind::Kubernetes => Arc::new(KubernetesRuntime::new(
                    connection.clone(),
                    &settings.kubernetes,
                    tenant,
                )),
            };
            let dns: Arc<dyn DnsProvider> = match tenant.dns.provider {
                DnsProviderKind::None => Arc::new(NoDns),
                DnsProviderKind::Cloudflare => Arc::new(
                    Cloudflare::new(&tenant.name, &tenant.dns)
                        .map_err(|e| anyhow::anyhow!("tenant {}: {e}", tenant.name))?,
                ),
            };
            let name =
                TenantName::parse(&tenant.name).map_err(|e| anyhow::anyhow!("tenant name: {e}"))?;
            by_name.insert(
                tenant.name.clone(),
                Arc::new(Tenant {
                    name,
                    settings: tenant.clone(),
                    runtime,
                    dns,
                    reserved: tenant.reserved_names.iter().cloned().collect(),
                    public_url: settings.public_url(),
                }),
            );
        }
        Ok(Self {
            by_name,
            connection,
        })
    }

    pub fn find(&self, name: &str) -> Option<Arc<Tenant>> {
        self.by_name.get(name).cloned()
    }

    /// The tenant of a stored row; an error if the configuration no longer declares it.
    pub fn get(&self, name: &str) -> anyhow::Result<Arc<Tenant>> {
        self.find(name)
            .ok_or_else(|| anyhow::anyhow!("tenant {name} is not in the configuration"))
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_name.values()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}
