//! Provider `cloudflare`: one record per site, at the site's hostname, in the tenant's zone.
//!
//! Invariants:
//! - berth only ever modifies or deletes a record whose comment is the site's ownership marker
//!   ([`DnsRecord::owner_tag`]); any other record at the name (a human's, another tool's,
//!   another berth site's) makes the job fail at once ([`Permanent`]) with a message naming it,
//!   and nothing is written.
//! - An owned record is written only when it differs from what berth wants, so re-running a job
//!   sends no writes.
//! - Refused credentials or permissions fail the job at once; rate limits, `5xx` answers and
//!   connection errors are ordinary errors that the job retries later.

mod api;
mod budget;
mod client;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;

use self::api::{ApiError, Record, RecordBody};
pub use self::budget::Budget;
use self::client::Client;
pub use self::client::{read_answer, real_pause, Pause, RetryPolicy};
use super::{DnsProvider, DnsRecord, Owner, RecordType};
use crate::configuration::DnsSettings;
use crate::error::Permanent;

pub struct Cloudflare {
    client: Client,
    tenant: String,
    zone_id: String,
    kind: RecordType,
    proxied: bool,
    ttl: u32,
}

impl Cloudflare {
    /// The provider of one tenant. Its requests count against the process-wide budget of its API
    /// token, shared with every other tenant that uses the same token.
    pub fn new(tenant: &str, settings: &DnsSettings) -> anyhow::Result<Self> {
        let budget = budget::for_token(&settings.api_token);
        Self::with(
            tenant,
            settings,
            budget,
            RetryPolicy::default(),
            real_pause(),
        )
    }

    /// As [`Cloudflare::new`], with the budget, retry policy and waiting given (for tests).
    pub fn with(
        tenant: &str,
        settings: &DnsSettings,
        budget: Arc<Budget>,
        retry: RetryPolicy,
        pause: Pause,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client: Client::new(settings, budget, retry, pause)?,
            tenant: tenant.to_owned(),
            zone_id: settings.zone_id.clone(),
            kind: settings.record_type,
            proxied: settings.proxied,
            // Cloudflare manages the TTL of proxied records: 1 (automatic) is the only one it takes.
            ttl: if settings.proxied { 1 } else { settings.ttl },
        })
    }

    /// The record berth wants for `record`; a target that cannot be this record type's content
    /// is a configuration error no retry fixes.
    fn wanted(&self, record: &DnsRecord) -> anyhow::Result<RecordBody> {
        let target = record.target.trim_end_matches('.');
        let mut problem = self.kind.check_target(target).err();
        if self.kind == RecordType::Cname && target.eq_ignore_ascii_case(&record.hostname) {
            problem = Some("a CNAME cannot point at itself".into());
        }
        if let Some(problem) = problem {
            return Err(Permanent::new(format!(
                "cannot point {} at {:?}: {problem}; set dns.target (or dns.record_type) of tenant {}",
                record.hostname, record.target, self.tenant
            ))
            .into());
        }
        Ok(RecordBody {
            kind: self.kind,
            name: record.hostname.clone(),
            content: target.to_owned(),
            proxied: self.proxied,
            ttl: self.ttl,
            comment: record.owner_tag(),
        })
    }

    /// Turns an API error into a job error: permanent when retrying cannot help.
    fn job_error(&self, error: ApiError) -> anyhow::Error {
        if error.is_auth() {
            return Permanent::new(format!(
                "{error}. The API token of tenant {} (dns.api_token) was refused or may not edit \
                 DNS records in zone {}: give it the Zone / DNS / Edit permission on that zone, \
                 then retry the site",
                self.tenant, self.zone_id
            ))
            .into();
        }
        if error.is_rejected_request() && !error.is_conflict() {
            let hint = if error.is_not_found() {
                format!(
                    " (is dns.zone_id {:?} of tenant {} right?)",
                    self.zone_id, self.tenant
                )
            } else {
                String::new()
            };
            return Permanent::new(format!("{error}{hint}")).into();
        }
        anyhow::Error::new(error)
    }

    /// The job error for records at the name that berth does not own, with Cloudflare's refusal
    /// when a create was refused because of them; counted and logged.
    fn conflict(
        &self,
        record: &DnsRecord,
        theirs: &[Record],
        refusal: Option<&ApiError>,
    ) -> anyhow::Error {
        let described: Vec<String> = theirs
            .iter()
            .map(|r| {
                let whose = match r.comment.as_deref().and_then(Owner::parse) {
                    Some(owner) => format!(
                        "it belongs to berth site {} of tenant {}",
                        owner.site_id, owner.tenant
                    ),
                    None => "berth did not create it".into(),
                };
                format!("{} — {whose}", r.describe())
            })
            .collect();
        self.counted("conflict");
        tracing::warn!(
            dns.name = %record.hostname,
            dns.conflicts = %described.join("; "),
            "DNS record berth does not own is in the way; left untouched"
        );
        let refusal = refusal.map(|e| format!(" ({e})")).unwrap_or_default();
        Permanent::new(format!(
            "DNS conflict: {} already has a record berth does not own: {}{refusal}. berth changed \
             nothing. Remove that record (or, to hand it to berth, set its comment to {:?}), then \
             retry the site",
            record.hostname,
            described.join("; "),
            record.owner_tag()
        ))
        .into()
    }

    fn counted(&self, action: &'static str) {
        metrics::counter!("berth_dns_changes_total", "tenant" => self.tenant.clone(), "action" => action)
            .increment(1);
    }

    /// Brings an owned record to what berth wants, writing only when something differs.
    async fn correct(&self, existing: &Record, wanted: &RecordBody) -> anyhow::Result<()> {
        if wanted.matches(existing) {
            self.counted("unchanged");
            tracing::info!(dns.name = %wanted.name, dns.record_id = %existing.id, "DNS record is already right");
            return Ok(());
        }
        self.client
            .update(&existing.id, wanted)
            .await
            .map_err(|e| self.job_error(e))?;
        self.counted("updated");
        tracing::info!(
            dns.name = %wanted.name,
            dns.record_id = %existing.id,
            dns.was = %existing.content,
            dns.content = %wanted.content,
            "corrected the DNS record berth owns"
        );
        Ok(())
    }

    /// Deletes a record berth owns; one that is already gone is fine.
    async fn remove(&self, existing: &Record) -> anyhow::Result<()> {
        match self.client.delete(&existing.id).await {
            Ok(()) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(self.job_error(error)),
        }
        self.counted("deleted");
        tracing::info!(dns.name = %existing.name, dns.record_id = %existing.id, dns.type = %existing.kind, "deleted the DNS record berth owned");
        Ok(())
    }

    /// After Cloudflare refused a create because of another record at the name: finds what
    /// blocks it. Someone else's record is a conflict; the site's own record of another type
    /// (left from an earlier `dns.record_type`) is removed so the create can go ahead.
    async fn clear_the_way(&self, record: &DnsRecord, refusal: &ApiError) -> anyhow::Result<()> {
        let (mut mine, mut theirs) = self.records_at(record, None).await?;
        mine.retain(|r| self.blocked_by(&r.kind));
        theirs.retain(|r| self.blocked_by(&r.kind));
        if !theirs.is_empty() {
            return Err(self.conflict(record, &theirs, Some(refusal)));
        }
        for stale in &mine {
            self.remove(stale).await?;
        }
        Ok(())
    }

    /// The records at the site's hostname (of type `kind`, when given): the site's own, and
    /// everyone else's.
    async fn records_at(
        &self,
        record: &DnsRecord,
        kind: Option<RecordType>,
    ) -> anyhow::Result<(Vec<Record>, Vec<Record>)> {
        let at_name = self
            .client
            .list(&record.hostname, kind)
            .await
            .map_err(|e| self.job_error(e))?;
        Ok(at_name
            .into_iter()
            .partition(|r| record.is_marked_by_me(r.comment.as_deref())))
    }

    /// Whether a record of type `other` at the name keeps berth's type from being created there:
    /// a CNAME cannot share its name with anything, and nothing can share a CNAME's name.
    fn blocked_by(&self, other: &str) -> bool {
        !other.eq_ignore_ascii_case(self.kind.as_str())
            && (self.kind == RecordType::Cname || other.eq_ignore_ascii_case("CNAME"))
    }
}

#[async_trait]
impl DnsProvider for Cloudflare {
    #[tracing::instrument(name = "dns.upsert", skip_all, fields(dns.name = %record.hostname, tenant = %record.tenant, site.id = %record.site_id))]
    async fn upsert(&self, record: &DnsRecord) -> anyhow::Result<()> {
        let wanted = self.wanted(record)?;
        let mut cleared = false;
        loop {
            let (mine, theirs) = self.records_at(record, Some(self.kind)).await?;
            if !theirs.is_empty() {
                return Err(self.conflict(record, &theirs, None));
            }
            if let Some((keep, duplicates)) = mine.split_first() {
                // Duplicates can only come from a create that went through twice; they are ours.
                for duplicate in duplicates {
                    self.remove(duplicate).await?;
                }
                return self.correct(keep, &wanted).await;
            }
            match self.client.create(&wanted).await {
                Ok(created) => {
                    self.counted("created");
                    tracing::info!(
                        dns.name = %wanted.name,
                        dns.record_id = %created.id,
                        dns.type = %wanted.kind,
                        dns.content = %wanted.content,
                        dns.owner = %wanted.comment,
                        "created the DNS record"
                    );
                    return Ok(());
                }
                // Something appeared at the name since the list, or a record of another type
                // stands in the way: look once, then list again.
                Err(error) if error.is_conflict() && !cleared => {
                    tracing::info!(dns.name = %wanted.name, error = %error, "Cloudflare reports a record in the way; looking at the name");
                    self.clear_the_way(record, &error).await?;
                    cleared = true;
                }
                Err(error) => return Err(self.job_error(error)),
            }
        }
    }

    #[tracing::instrument(name = "dns.delete", skip_all, fields(dns.name = %record.hostname, tenant = %record.tenant, site.id = %record.site_id))]
    async fn delete(&self, record: &DnsRecord) -> anyhow::Result<()> {
        // By name only: the site's record is found even if dns.record_type changed since.
        let (mine, theirs) = self.records_at(record, None).await?;
        if mine.is_empty() {
            self.counted("absent");
            tracing::info!(
                dns.name = %record.hostname,
                dns.others = theirs.len(),
                "no DNS record of this site to delete; records berth does not own are left alone"
            );
        }
        for owned in &mine {
            self.remove(owned).await?;
        }
        Ok(())
    }
}
