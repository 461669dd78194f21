//! Where sites run. A runtime turns a site into a serving workload; `local` (the embedded
//! default) serves static sites from berth itself, `kubernetes` gives each site a namespace.
//! Every method is idempotent: jobs retry them.

pub mod kubernetes;
pub mod local;

use std::time::Duration;

use async_trait::async_trait;

use crate::adapters::dns::DnsRecord;

/// What a runtime needs to know about a site.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub hostname: String,
    pub html: Option<String>,
    pub plan: Option<String>,
    /// The workload spec to apply (what [`Runtime::workload`] gave when the site was moved to
    /// it); `None`: what the configuration gives now.
    pub workload: Option<serde_json::Value>,
}

impl SiteSpec {
    pub fn dns_record(&self, target: String) -> DnsRecord {
        DnsRecord {
            hostname: self.hostname.clone(),
            target,
            tenant: self.tenant.clone(),
            site_id: self.id.clone(),
        }
    }
}

#[async_trait]
pub trait Runtime: Send + Sync {
    fn name(&self) -> &'static str;

    /// The workload spec a site on `plan` gets from the configuration now: everything this
    /// runtime applies besides the site's name and content. Sites record the spec they run, and
    /// a fleet rollout moves them to this one. Equal values apply equal workloads.
    fn workload(&self, plan: Option<&str>) -> anyhow::Result<serde_json::Value>;

    /// Creates or updates the workload (and scales a suspended one back up).
    async fn apply(&self, site: &SiteSpec) -> anyhow::Result<()>;

    /// Waits, at most `timeout`, until the workload serves. Returns the address DNS should point
    /// at when the runtime knows it (e.g. an Ingress load balancer).
    async fn wait_ready(
        &self,
        site: &SiteSpec,
        timeout: Duration,
    ) -> anyhow::Result<Option<String>>;

    /// Removes what earlier versions of the site's content left behind, once `site` (its
    /// target version) serves.
    async fn retire(&self, _site: &SiteSpec) -> anyhow::Result<()> {
        Ok(())
    }

    /// Stops serving the site, keeping what is needed to resume it.
    async fn suspend(&self, site: &SiteSpec) -> anyhow::Result<()>;

    /// Removes the workload; succeeds when it is already gone.
    async fn delete(&self, site: &SiteSpec) -> anyhow::Result<()>;

    /// The URL customers use to reach the site.
    fn site_url(&self, hostname: &str) -> String;
}
