//! Layer 3: durable background jobs. A job kind is a payload in [`crate::domain::job`] (its name
//! and fields) and here an implementation of [`BackgroundJob`] (its idempotent `run`). A new kind
//! is added by writing both and listing the type in [`registry`]; the queue and the worker need
//! no change.

mod deploy;
mod deprovision;
mod provision;
pub mod retention;
mod rollout;
mod runner;
mod send_email;
mod stripe_event;
mod suspend;
mod suspend_overdue;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::Notify;

pub use runner::Worker;

use crate::adapters::db::rollouts::WorkloadSpec;
use crate::adapters::db::Db;
use crate::adapters::mailer::Mailer;
use crate::configuration::{JobSettings, Live, Settings};
use crate::domain::job::{
    Deploy, Deprovision, Job, ProcessStripeEvent, Provision, Rollout, SendEmail, Suspend,
    SuspendOverdue,
};
use crate::services::policy::PolicyEngine;
use crate::services::tenants::Tenants;

/// What every job can reach.
pub struct JobContext {
    pub db: Db,
    /// The configuration, the tenants built from it and the mailer: a reload swaps them.
    pub settings: Live<Settings>,
    pub tenants: Live<Tenants>,
    pub mailer: Live<Mailer>,
    /// The tenants' policy plugins, for signups that arrive as payments.
    pub policies: Arc<PolicyEngine>,
    /// Wakes this process's worker when a job is enqueued.
    pub wake: Arc<Notify>,
    /// Derives sites' manage tokens (for the links in emails).
    pub manage_key: Arc<crate::domain::manage_token::ManageKey>,
    /// Test-only fault injection; empty in normal builds.
    pub faults: crate::faults::Faults,
}

/// What a kind of job does when it runs. `run` must be idempotent: it can run more than once (a
/// retry after an error, or a second worker after the first one died mid-run).
pub trait BackgroundJob: Job {
    fn run(&self, ctx: &JobContext) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Called once when the last attempt failed, before the job is marked `failed`.
    fn exhausted(
        &self,
        _ctx: &JobContext,
        _error: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}

type Erased = fn(Arc<JobContext>, String, Option<String>) -> BoxFuture<'static, anyhow::Result<()>>;

/// Runs a job from its stored payload: `run` when `error` is `None`, else `exhausted`.
fn erased<J: BackgroundJob>(
    ctx: Arc<JobContext>,
    payload: String,
    error: Option<String>,
) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(async move {
        let job: J = serde_json::from_str(&payload)
            .map_err(|e| anyhow::anyhow!("cannot decode {} payload: {e}", J::KIND))?;
        match error {
            None => job.run(&ctx).await,
            Some(error) => job.exhausted(&ctx, &error).await,
        }
    })
}

/// The job kinds a worker knows, by name.
#[derive(Default, Clone)]
pub struct Registry {
    kinds: HashMap<&'static str, Erased>,
}

impl Registry {
    pub fn register<J: BackgroundJob>(mut self) -> Self {
        self.kinds.insert(J::KIND, erased::<J>);
        self
    }

    fn get(&self, kind: &str) -> Option<Erased> {
        self.kinds.get(kind).copied()
    }

    /// The names of the registered kinds.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }
}

/// Every job kind berth runs.
pub fn registry() -> Registry {
    Registry::default()
        .register::<Provision>()
        .register::<Deploy>()
        .register::<Deprovision>()
        .register::<Suspend>()
        .register::<SendEmail>()
        .register::<ProcessStripeEvent>()
        .register::<SuspendOverdue>()
        .register::<Rollout>()
}

/// The site a site job is about, when it is still at the job's `version` and in `state`; `None`
/// (logged) when it is gone or has moved on, so the job has nothing left to do.
async fn current_site(
    ctx: &JobContext,
    kind: &str,
    site_id: &str,
    version: i64,
    state: crate::domain::SiteState,
) -> anyhow::Result<Option<crate::adapters::db::sites::SiteRow>> {
    let id = site_id.to_owned();
    let site = ctx
        .db
        .run(move |c| crate::adapters::db::sites::get(c, &id))
        .await?;
    match site {
        Some(site) if site.version == version && site.state == state => Ok(Some(site)),
        Some(site) => {
            tracing::info!(site.id = %site.id, site.state = %site.state, job.kind = kind, "site moved on; the job stands down");
            Ok(None)
        }
        None => {
            tracing::warn!(site.id = %site_id, job.kind = kind, "site is gone; nothing to do");
            Ok(None)
        }
    }
}

/// What the runtime applies for `site`: its target version's HTML, when it has one, and its
/// target workload spec (the configuration's, for a site that has none yet).
async fn target_spec(
    ctx: &JobContext,
    tenant: &crate::services::tenants::Tenant,
    site: &crate::adapters::db::sites::SiteRow,
) -> anyhow::Result<(crate::adapters::runtime::SiteSpec, WorkloadSpec)> {
    let html = match site.target_version {
        None => None,
        Some(number) => {
            let id = site.id.clone();
            let html = ctx
                .db
                .run(move |c| crate::adapters::db::versions::html(c, &id, number))
                .await?
                .ok_or_else(|| {
                    anyhow::anyhow!("version {number} of site {} is missing", site.id)
                })?;
            Some(html)
        }
    };
    let workload = workload_spec(ctx, tenant, site, site.target_spec.as_deref()).await?;
    let mut spec = tenant.site_spec(site, html);
    spec.workload = Some(workload.value()?);
    Ok((spec, workload))
}

/// The workload spec stored as `recorded`, or for `None` the one the configuration gives the
/// site's plan now.
async fn workload_spec(
    ctx: &JobContext,
    tenant: &crate::services::tenants::Tenant,
    site: &crate::adapters::db::sites::SiteRow,
    recorded: Option<&str>,
) -> anyhow::Result<WorkloadSpec> {
    let Some(sha256) = recorded else {
        return Ok(WorkloadSpec::new(
            &tenant.runtime.workload(site.plan.as_deref())?,
        ));
    };
    let wanted = sha256.to_owned();
    ctx.db
        .run(move |c| crate::adapters::db::rollouts::spec(c, &wanted))
        .await?
        .ok_or_else(|| anyhow::anyhow!("workload spec {sha256} of site {} is missing", site.id))
}

/// Removes what earlier versions left behind once `spec` serves. A failure only leaves them
/// for the next switch to remove, so it is logged, not retried.
async fn retire(
    tenant: &crate::services::tenants::Tenant,
    spec: &crate::adapters::runtime::SiteSpec,
) {
    if let Err(error) = tenant.runtime.retire(spec).await {
        tracing::warn!(site.id = %spec.id, error = format!("{error:#}"), "could not remove earlier versions of the site's content; the next switch tries again");
    }
}

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped, with equal jitter
/// (between half and all of it) so that failed jobs do not retry in lockstep.
pub fn backoff(settings: &JobSettings, attempt: i32) -> std::time::Duration {
    let exp = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let full = settings
        .base_delay_secs
        .saturating_mul(1u64 << exp)
        .min(settings.max_delay_secs);
    let full_ms = full * 1000;
    let half = full_ms / 2;
    let jitter = rand::random_range(0..=half);
    std::time::Duration::from_millis(half + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let settings = JobSettings {
            base_delay_secs: 5,
            max_delay_secs: 60,
            ..Default::default()
        };
        for _ in 0..100 {
            let first = backoff(&settings, 1).as_millis();
            assert!((2500..=5000).contains(&first), "{first}");
            let third = backoff(&settings, 3).as_millis();
            assert!((10_000..=20_000).contains(&third), "{third}");
            let late = backoff(&settings, 20).as_millis();
            assert!((30_000..=60_000).contains(&late), "{late}");
        }
    }
}
