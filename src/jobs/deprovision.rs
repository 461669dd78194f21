//! Deprovision: delete the workload and the DNS record berth owns, then mark the site `deleted`.

use super::{BackgroundJob, JobContext};
use crate::adapters::db::sites;
use crate::domain::job::Deprovision;
use crate::domain::job::Job;
use crate::domain::SiteState;

impl BackgroundJob for Deprovision {
    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let Some(site) = super::current_site(
            ctx,
            Self::KIND,
            &self.site_id,
            self.version,
            SiteState::Deprovisioning,
        )
        .await?
        else {
            return Ok(());
        };
        let tenant = ctx.tenants.get().get(&site.tenant)?;
        let spec = tenant.site_spec(&site, None);
        tenant.runtime.delete(&spec).await?;
        let target = tenant.dns_target(None).unwrap_or_default();
        tenant.dns.delete(&spec.dns_record(target)).await?;
        let (id, version) = (self.site_id.clone(), self.version);
        ctx.db
            .write(move |c| {
                sites::advance(
                    c,
                    &id,
                    version,
                    SiteState::Deprovisioning,
                    SiteState::Deleted,
                )
            })
            .await?;
        tracing::info!(site.id = %site.id, tenant = %site.tenant, site.hostname = %site.hostname, "site deleted");
        Ok(())
    }

    async fn exhausted(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        let (id, version, error) = (self.site_id.clone(), self.version, error.to_owned());
        ctx.db
            .write(move |c| sites::note(c, &id, version, None, Some(&error)))
            .await
    }
}
