//! DNS: point each site's hostname at its workload. Provider `none` (the default) only logs;
//! `cloudflare` manages records it marks as its own.

use async_trait::async_trait;

/// A record berth wants to exist (or to remove) for one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub hostname: String,
    /// An IP address (A/AAAA) or a hostname (CNAME).
    pub target: String,
    pub tenant: String,
    pub site_id: String,
}

impl DnsRecord {
    /// The ownership marker stored on records berth creates.
    pub fn owner_tag(&self) -> String {
        format!("berth:{}/{}", self.tenant, self.site_id)
    }
}

#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Creates the record, or corrects one berth owns; never touches a record berth does not own.
    async fn upsert(&self, record: &DnsRecord) -> anyhow::Result<()>;

    /// Deletes the record if berth owns it; succeeds when it is already gone.
    async fn delete(&self, record: &DnsRecord) -> anyhow::Result<()>;
}

/// Provider `none`: says what it would do.
pub struct NoDns;

#[async_trait]
impl DnsProvider for NoDns {
    async fn upsert(&self, record: &DnsRecord) -> anyhow::Result<()> {
        tracing::info!(
            dns.name = %record.hostname,
            dns.target = %record.target,
            dns.owner = %record.owner_tag(),
            "DNS provider is none: would upsert this record"
        );
        Ok(())
    }

    async fn delete(&self, record: &DnsRecord) -> anyhow::Result<()> {
        tracing::info!(dns.name = %record.hostname, "DNS provider is none: would delete this record");
        Ok(())
    }
}
