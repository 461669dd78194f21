//! Deploy (an update or a rollback of a ready site): apply the target version while the live one
//! keeps serving, wait until the workload is ready, then switch in one transaction. A version
//! that fails for good is marked `failed` with its error, and the live version is applied again
//! (a runtime may have half-rolled the failed one out).

use super::{BackgroundJob, JobContext};
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::{sites, versions};
use crate::domain::job::{Deploy, Job};
use crate::domain::SiteState;

impl BackgroundJob for Deploy {
    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let result = self.deploy(ctx).await;
        if let Err(error) = &result {
            let (id, message) = (self.site_id.clone(), format!("{error:#}"));
            let version = self.version;
            ctx.db
                .write(move |c| {
                    let Some(site) = sites::get(c, &id)? else {
                        return Ok(());
                    };
                    match site.target_version {
                        Some(target) if site.version == version => {
                            versions::note_error(c, &id, target, &message)
                        }
                        _ => Ok(()),
                    }
                })
                .await?;
        }
        result
    }

    async fn exhausted(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        let (id, version, error) = (self.site_id.clone(), self.version, error.to_owned());
        let jobs = ctx.settings.jobs.clone();
        let failed = ctx
            .db
            .write(move |c| {
                versions::fail_deploy(c, &id, version, &error, |site| {
                    Deploy {
                        site_id: site.id.clone(),
                        version: site.version,
                    }
                    .to_new_job(&jobs)
                })
            })
            .await?;
        match failed {
            Some(number) => {
                ctx.wake.notify_one();
                tracing::error!(
                    site.id = %self.site_id,
                    version = number,
                    "a new version failed to deploy for good; the live version stays and is applied again"
                );
            }
            None => tracing::warn!(
                site.id = %self.site_id,
                "a deploy gave up (applying the live version again, or one a newer change replaced); an operator can retry its job"
            ),
        }
        Ok(())
    }
}

impl Deploy {
    async fn deploy(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let Some(site) = super::current_site(
            ctx,
            Self::KIND,
            &self.site_id,
            self.version,
            SiteState::Ready,
        )
        .await?
        else {
            return Ok(());
        };
        let tenant = ctx.tenants.get(&site.tenant)?;
        let spec = super::target_spec(ctx, &tenant, &site).await?;
        let target = site.target_version.unwrap_or_default();
        let started = std::time::Instant::now();

        let step = format!("deploying version {target}");
        tracing::info!(site.id = %site.id, version = target, "deploying");
        let (id, version) = (self.site_id.clone(), self.version);
        ctx.db
            .write(move |c| sites::note(c, &id, version, Some(&step), None))
            .await?;
        ctx.faults.hit("deploy.apply").await?;
        tenant.runtime.apply(&spec).await?;
        let timeout = std::time::Duration::from_secs(ctx.settings.jobs.ready_timeout_secs);
        tenant.runtime.wait_ready(&spec, timeout).await?;
        ctx.faults.hit("deploy.before_switch").await?;

        let (id, version) = (self.site_id.clone(), self.version);
        let switched = ctx
            .db
            .write(move |c| versions::finish_deploy(c, &id, version))
            .await?;
        if let Some(site) = switched {
            super::retire(&tenant, &spec).await;
            metrics::histogram!("berth_deploy_duration_seconds", "tenant" => site.tenant.clone())
                .record(started.elapsed().as_secs_f64());
            tracing::info!(
                site.id = %site.id,
                tenant = %site.tenant,
                version = target,
                duration_ms = started.elapsed().as_millis() as u64,
                "version is live"
            );
        }
        Ok(())
    }
}
