//! Provision (and resume): apply the workload, wait until it is ready, point DNS at it, then
//! mark the site `ready` and enqueue its readiness email in the same transaction.

use super::{BackgroundJob, JobContext};
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::{self, sites};
use crate::domain::job::Job;
use crate::domain::job::{Provision, SendEmail};
use crate::domain::notice::SITE_READY;
use crate::domain::SiteState;

impl BackgroundJob for Provision {
    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let result = self.provision(ctx).await;
        if let Err(error) = &result {
            let (id, version, message) = (self.site_id.clone(), self.version, format!("{error:#}"));
            ctx.db
                .write(move |c| sites::note(c, &id, version, None, Some(&message)))
                .await?;
        }
        result
    }

    async fn exhausted(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        let (id, version, error) = (self.site_id.clone(), self.version, error.to_owned());
        let failed = ctx
            .db
            .write(move |c| {
                let moved =
                    sites::advance(c, &id, version, SiteState::Provisioning, SiteState::Failed)?;
                sites::note(c, &id, version, None, Some(&error))?;
                Ok(moved)
            })
            .await?;
        if failed {
            tracing::error!(site.id = %self.site_id, "provisioning failed for good; an operator can retry it");
        }
        Ok(())
    }
}

impl Provision {
    async fn provision(&self, ctx: &JobContext) -> anyhow::Result<()> {
        // An operator re-ran this job after it failed for good: same intent, so start over.
        let id = self.site_id.clone();
        let failed = ctx
            .db
            .run(move |c| sites::get(c, &id))
            .await?
            .is_some_and(|site| site.state == SiteState::Failed);
        if failed {
            let (id, version) = (self.site_id.clone(), self.version);
            ctx.db
                .write(move |c| {
                    sites::advance(c, &id, version, SiteState::Failed, SiteState::Provisioning)
                })
                .await?;
        }
        let Some(site) = super::current_site(
            ctx,
            Self::KIND,
            &self.site_id,
            self.version,
            SiteState::Provisioning,
        )
        .await?
        else {
            return Ok(());
        };
        let tenant = ctx.tenants.get().get(&site.tenant)?;
        let (spec, workload) = super::target_spec(ctx, &tenant, &site).await?;
        let started = std::time::Instant::now();

        self.step(ctx, "applying the workload").await?;
        ctx.faults.hit("provision.apply").await?;
        tenant.runtime.apply(&spec).await?;
        ctx.faults.hit("provision.after_apply").await?;

        self.step(ctx, "waiting for the workload to be ready")
            .await?;
        let timeout = std::time::Duration::from_secs(ctx.settings.get().jobs.ready_timeout_secs);
        let runtime_target = tenant.runtime.wait_ready(&spec, timeout).await?;

        self.step(ctx, "pointing DNS at the site").await?;
        let target = tenant.dns_target(runtime_target)?;
        tenant.dns.upsert(&spec.dns_record(target)).await?;

        let (id, version) = (self.site_id.clone(), self.version);
        let email = SendEmail {
            site_id: site.id.clone(),
            notice: SITE_READY.to_owned(),
            outbox: None,
        }
        .to_new_job(&ctx.settings.get().jobs);
        let message_id = ctx.mailer.get().message_id(SITE_READY, &site.id);
        // The row read above still holds: nothing changes a site's versions while it is
        // provisioning (content changes wait for `ready` or `suspended`).
        let mut promoted = site.clone();
        let became_ready = ctx
            .db
            .write(move |c| {
                if !sites::advance(c, &id, version, SiteState::Provisioning, SiteState::Ready)? {
                    return Ok(false);
                }
                db::versions::promote(c, &mut promoted)?;
                db::rollouts::applied(c, &promoted, &workload)?;
                if db::outbox::add(c, &id, SITE_READY, &message_id)? {
                    db::jobs::insert(c, &email)?;
                }
                Ok(true)
            })
            .await?;
        if became_ready {
            // A site past its first version (say, updated while suspended) may have left
            // earlier content behind.
            if site.target_version.is_some_and(|target| target > 1) {
                super::retire(&tenant, &spec).await;
            }
            ctx.wake.notify_one();
            metrics::histogram!("berth_provision_duration_seconds", "tenant" => site.tenant.clone())
                .record(started.elapsed().as_secs_f64());
            tracing::info!(
                site.id = %site.id,
                tenant = %site.tenant,
                site.hostname = %site.hostname,
                duration_ms = started.elapsed().as_millis() as u64,
                "site is ready"
            );
        }
        Ok(())
    }

    async fn step(&self, ctx: &JobContext, step: &'static str) -> anyhow::Result<()> {
        tracing::info!(site.id = %self.site_id, step, "provisioning");
        let (id, version) = (self.site_id.clone(), self.version);
        ctx.db
            .write(move |c| sites::note(c, &id, version, Some(step), None))
            .await
    }
}
