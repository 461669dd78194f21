//! Deploy (an update or a rollback of a ready site, or a rollout's new workload spec): apply the
//! target version and spec while the live ones keep serving, wait until the workload is ready,
//! then switch in one transaction. A version or spec that fails for good is marked `failed` with
//! its error, and the live ones are applied again (a runtime may have half-rolled the failed
//! ones out).

use super::{BackgroundJob, JobContext};
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::{rollouts, sites, versions};
use crate::domain::job::{Deploy, Job};
use crate::domain::{RolloutSiteState, SiteState};

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
                    if site.version != version {
                        return Ok(());
                    }
                    if let Some(target) = site.target_version {
                        versions::note_error(c, &id, target, &message)?;
                    }
                    match &site.target_spec {
                        Some(spec) if site.applied_spec.as_ref() != Some(spec) => rollouts::settle(
                            c,
                            &id,
                            spec,
                            RolloutSiteState::Applying,
                            Some(&message),
                        ),
                        _ => Ok(()),
                    }
                })
                .await?;
        }
        result
    }

    async fn exhausted(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        let (id, version, error) = (self.site_id.clone(), self.version, error.to_owned());
        let jobs = ctx.settings.get().jobs.clone();
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
            Some(abandoned) => {
                ctx.wake.notify_one();
                tracing::error!(
                    site.id = %self.site_id,
                    version = abandoned.version,
                    workload_spec = abandoned.spec,
                    "a change failed to deploy for good; the site stays on its live version and workload spec, which are applied again"
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
        let tenant = ctx.tenants.get().get(&site.tenant)?;
        let (spec, workload) = super::target_spec(ctx, &tenant, &site).await?;
        let target = site.target_version.unwrap_or_default();
        let started = std::time::Instant::now();

        let content_changed = site.target_version != site.live_version;
        let step = if content_changed {
            format!("deploying version {target}")
        } else {
            "applying a new workload spec".to_owned()
        };
        tracing::info!(site.id = %site.id, version = target, workload_spec = %workload.sha256, step, "deploying");
        let (id, version) = (self.site_id.clone(), self.version);
        ctx.db
            .write(move |c| sites::note(c, &id, version, Some(&step), None))
            .await?;
        ctx.faults.hit("deploy.apply").await?;
        tenant.runtime.apply(&spec).await?;
        let timeout = std::time::Duration::from_secs(ctx.settings.get().jobs.ready_timeout_secs);
        tenant.runtime.wait_ready(&spec, timeout).await?;
        ctx.faults.hit("deploy.before_switch").await?;

        let (id, version) = (self.site_id.clone(), self.version);
        let switched = ctx
            .db
            .write(move |c| {
                let site = versions::finish_deploy(c, &id, version)?;
                if let Some(site) = &site {
                    rollouts::applied(c, site, &workload)?;
                }
                Ok(site)
            })
            .await?;
        if let Some(site) = switched {
            if content_changed {
                super::retire(&tenant, &spec).await;
            }
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
