//! A fleet rollout's driver: one step per run, each in one transaction (see
//! [`crate::adapters::db::rollouts::step`]), the next step enqueued a moment later. The sites of
//! a wave deploy as their own `deploy` jobs; the driver only watches their rows, so a kill -9
//! anywhere resumes from what the database holds.

use super::{BackgroundJob, JobContext};
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::rollouts::{self, Step};
use crate::domain::job::{Deploy, Rollout};
use crate::services::rollouts as rollouts_service;

impl BackgroundJob for Rollout {
    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        ctx.faults.hit("rollout.step").await?;
        let (id, tick) = (self.rollout_id.clone(), self.tick);
        let jobs = ctx.settings.get().jobs.clone();
        let step = ctx
            .db
            .write(move |c| {
                let step = rollouts::step(
                    c,
                    &id,
                    tick,
                    |tick| rollouts_service::next_step(&id, tick, &jobs),
                    |site| {
                        Deploy {
                            site_id: site.id.clone(),
                            version: site.version,
                        }
                        .to_new_job(&jobs)
                    },
                )?;
                let shown = match (&step, rollouts::get(c, &id)?) {
                    (Step::StoodDown, _) | (_, None) => None,
                    (_, Some(rollout)) => Some((rollout.clone(), rollouts::progress(c, &id)?)),
                };
                Ok((step, shown))
            })
            .await?;
        let (step, shown) = step;
        if let Some((rollout, progress)) = shown {
            rollouts_service::record_metrics(&rollout, &progress);
            let tenant = rollout.tenant;
            match step {
                Step::Wave { wave, sites } => {
                    ctx.wake.notify_one();
                    tracing::info!(rollout.id = %self.rollout_id, tenant, wave, sites, remaining = progress.pending, "rollout: next wave");
                }
                Step::Ended(state) => tracing::info!(
                    rollout.id = %self.rollout_id,
                    tenant,
                    rollout.state = %state,
                    done = progress.done,
                    failed = progress.failed,
                    skipped = progress.skipped,
                    remaining = progress.pending,
                    "rollout ended"
                ),
                Step::Waiting | Step::StoodDown => {}
            }
        }
        Ok(())
    }

    /// A step that failed for good (the database refused it through every retry) would leave
    /// the rollout running with no driver: it stops, saying why, and can be started again.
    async fn exhausted(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        let (id, tick) = (self.rollout_id.clone(), self.tick);
        let reason = format!("its driver failed: {error}");
        let stopped = ctx
            .db
            .write(move |c| rollouts::halt(c, &id, tick, &reason))
            .await?;
        if stopped {
            tracing::error!(rollout.id = %self.rollout_id, error, "rollout stopped: its driver failed for good");
        }
        Ok(())
    }
}
