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
        let tenant = ctx.tenants.get().get(&site.tenant)?;
        // Only the scale changes: the workload stays on the spec it runs.
        let (mut spec, _) = super::target_spec(ctx, &tenant, &site).await?;
        let applied = site.applied_spec.as_deref().or(site.target_spec.as_deref());
        let workload = super::workload_spec(ctx, &tenant, &site, applied).await?;
        spec.workload = Some(workload.value()?);
        tenant.runtime.suspend(&spec).await?;
        tracing::info!(site.id = %site.id, tenant = %site.tenant, "site suspended");
        Ok(())
    }
}
