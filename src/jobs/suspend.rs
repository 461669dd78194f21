//! Suspend: the site already stopped being served when it entered `suspended`; this job scales
//! its workload to zero. Resume is a provision job (apply scales back up).

use serde::{Deserialize, Serialize};

use super::{BackgroundJob, JobContext};
use crate::db::sites;
use crate::domain::SiteState;

#[derive(Debug, Serialize, Deserialize)]
pub struct Suspend {
    pub site_id: String,
    pub version: i64,
}

impl BackgroundJob for Suspend {
    const KIND: &'static str = "suspend";

    fn site_id(&self) -> Option<&str> {
        Some(&self.site_id)
    }

    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let id = self.site_id.clone();
        let Some(site) = ctx.db.run(move |c| sites::get(c, &id)).await? else {
            return Ok(());
        };
        if site.version != self.version || site.state() != SiteState::Suspended {
            return Ok(());
        }
        let tenant = ctx.tenants.get(&site.tenant)?;
        tenant.runtime.suspend(&tenant.site_spec(&site)).await?;
        tracing::info!(site.id = %site.id, tenant = %site.tenant, "site suspended");
        Ok(())
    }
}
