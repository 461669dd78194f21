//! Suspend: the site already stopped being served when it entered `suspended`; this job scales
//! its workload to zero. Resume is a provision job (apply scales back up).

use super::{BackgroundJob, JobContext};
use crate::domain::job::Job;
use crate::domain::job::Suspend;
use crate::domain::SiteState;

impl BackgroundJob for Suspend {
    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let Some(site) = super::current_site(
            ctx,
            Self::KIND,
            &self.site_id,
            self.version,
            SiteState::Suspended,
        )
        .await?
        else {
            return Ok(());
        };
        let tenant = ctx.tenants.get(&site.tenant)?;
        let spec = super::target_spec(ctx, &tenant, &site).await?;
        tenant.runtime.suspend(&spec).await?;
        tracing::info!(site.id = %site.id, tenant = %site.tenant, "site suspended");
        Ok(())
    }
}
