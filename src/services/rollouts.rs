//! Fleet rollouts (SPEC §7): how far a tenant's live sites are from the workload spec the
//! configuration gives them now, and starting, pausing, resuming and cancelling the rollout that
//! moves them (the stored side is [`crate::adapters::db::rollouts`], the driver the `rollout`
//! job).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::adapters::db::jobs::{Enqueue, NewJob};
use crate::adapters::db::rollouts::{
    self, Planned, Progress, RolloutRow, RolloutSiteRow, Start, WorkloadSpec,
};
use crate::adapters::db::Db;
use crate::configuration::JobSettings;
use crate::domain::job::Rollout;
use crate::domain::{RolloutId, RolloutSiteState, RolloutState, SiteState};
use crate::services::tenants::{Tenant, Tenants};

/// How long the driver waits between looks at a wave under way.
pub const STEP_EVERY: Duration = Duration::from_secs(1);

/// How many failed or skipped sites a status shows.
const SHOWN_SITES: i64 = 50;

/// The driver's step `tick` of rollout `id`, due a moment from now.
pub fn next_step(id: &str, tick: i64, jobs: &JobSettings) -> NewJob {
    let mut job = Rollout {
        rollout_id: id.to_owned(),
        tick,
    }
    .to_new_job(jobs);
    job.run_at += STEP_EVERY.as_millis() as i64;
    job
}

/// `berth_rollout_sites{tenant, state}`: the sites of the tenant's newest rollout by state, and
/// `berth_rollout_wave{tenant}`.
pub fn record_metrics(rollout: &RolloutRow, progress: &Progress) {
    for state in RolloutSiteState::ALL {
        metrics::gauge!("berth_rollout_sites", "tenant" => rollout.tenant.clone(), "state" => state.as_str())
            .set(progress.get(state) as f64);
    }
    metrics::gauge!("berth_rollout_wave", "tenant" => rollout.tenant.clone())
        .set(f64::from(rollout.wave));
}

/// The spec the configuration gives each plan, worked out once per plan.
struct Wanted<'a> {
    tenant: &'a Tenant,
    by_plan: BTreeMap<Option<String>, Result<WorkloadSpec, String>>,
}

impl<'a> Wanted<'a> {
    fn new(tenant: &'a Tenant) -> Self {
        Self {
            tenant,
            by_plan: BTreeMap::new(),
        }
    }

    fn get(&mut self, plan: Option<&str>) -> &Result<WorkloadSpec, String> {
        let tenant = self.tenant;
        self.by_plan
            .entry(plan.map(str::to_owned))
            .or_insert_with(|| {
                tenant
                    .runtime
                    .workload(plan)
                    .map(|value| WorkloadSpec::new(&value))
                    .map_err(|e| {
                        format!("the configuration cannot build this site's workload: {e:#}")
                    })
            })
    }

    /// Whether a site on `plan` running `applied` differs from what the configuration gives.
    fn differs(&mut self, plan: Option<&str>, applied: Option<&str>) -> bool {
        match self.get(plan) {
            Ok(spec) => applied != Some(spec.sha256.as_str()),
            Err(_) => true,
        }
    }
}

/// How many of a tenant's live sites run another spec than the configuration gives them now.
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct Drift {
    /// `ready` sites.
    pub ready: i64,
    /// `ready` sites on another spec: what a rollout would re-apply.
    pub drifted: i64,
    /// `suspended` sites on another spec (a rollout leaves them; they stay on theirs when they
    /// resume, until a later rollout).
    pub drifted_suspended: i64,
    /// Drifted sites whose plan the configuration cannot build any more (say, a removed plan):
    /// a rollout lists them as skipped, with why.
    pub unbuildable: i64,
}

pub async fn drift(db: &Db, tenant: &Tenant) -> anyhow::Result<Drift> {
    let name = tenant.name.to_string();
    let counts = db.run(move |c| rollouts::spec_counts(c, &name)).await?;
    let mut wanted = Wanted::new(tenant);
    let mut drift = Drift::default();
    for count in counts {
        let ready = count.state == SiteState::Ready;
        if ready {
            drift.ready += count.sites;
        }
        if !wanted.differs(count.plan.as_deref(), count.applied_spec.as_deref()) {
            continue;
        }
        if ready {
            drift.drifted += count.sites;
            if wanted.get(count.plan.as_deref()).is_err() {
                drift.unbuildable += count.sites;
            }
        } else {
            drift.drifted_suspended += count.sites;
        }
    }
    Ok(drift)
}

/// A tenant's rollout as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutView {
    #[serde(flatten)]
    pub rollout: RolloutRow,
    pub progress: Progress,
    /// Sites left to do: pending and applying.
    pub remaining: i64,
    pub total: i64,
    /// The failed sites and the skipped ones, with why (at most 50).
    pub problems: Vec<RolloutSiteRow>,
}

pub async fn view(db: &Db, rollout: RolloutRow) -> anyhow::Result<RolloutView> {
    let id = rollout.id.clone();
    let (progress, problems) = db
        .run(move |c| {
            let progress = rollouts::progress(c, &id)?;
            let problems = rollouts::sites_in(
                c,
                &id,
                &[RolloutSiteState::Failed, RolloutSiteState::Skipped],
                SHOWN_SITES,
            )?;
            Ok((progress, problems))
        })
        .await?;
    record_metrics(&rollout, &progress);
    Ok(RolloutView {
        remaining: progress.pending + progress.applying,
        total: progress.total(),
        rollout,
        progress,
        problems,
    })
}

/// The tenant's newest rollout, if any.
pub async fn latest(db: &Db, tenant: &str) -> anyhow::Result<Option<RolloutView>> {
    let name = tenant.to_owned();
    match db.run(move |c| rollouts::latest(c, &name)).await? {
        Some(rollout) => Ok(Some(view(db, rollout).await?)),
        None => Ok(None),
    }
}

/// What [`start`] did.
pub enum Started {
    Started(Box<RolloutView>),
    /// The tenant has a rollout under way.
    Busy(Box<RolloutRow>),
    /// Every ready site runs what the configuration gives it.
    NothingToDo,
}

/// Starts a rollout of the tenant's drifted ready sites, `max_parallel` at a time, stopping once
/// `max_failures` sites failed.
pub async fn start(
    db: &Db,
    tenant: &Tenant,
    max_parallel: i32,
    max_failures: i32,
    jobs: &JobSettings,
) -> anyhow::Result<Started> {
    let name = tenant.name.to_string();
    let sites = db
        .run(move |c| crate::adapters::db::sites::with_state(c, &name, SiteState::Ready))
        .await?;
    let mut wanted = Wanted::new(tenant);
    let mut planned = Vec::new();
    for site in sites {
        if wanted.differs(site.plan.as_deref(), site.applied_spec.as_deref()) {
            // Without a recorded spec there is nothing to put the site back on if it fails.
            let to = match &site.applied_spec {
                None => Err("the site has no recorded spec to go back to; it records one when it is next provisioned".to_owned()),
                Some(_) => wanted.get(site.plan.as_deref()).clone(),
            };
            planned.push(Planned {
                to,
                site_id: site.id,
                from_spec: site.applied_spec,
            });
        }
    }
    if planned.is_empty() {
        return Ok(Started::NothingToDo);
    }
    let id = RolloutId::generate().to_string();
    let first = next_step(&id, 1, jobs);
    let name = tenant.name.to_string();
    let started = db
        .write(move |c| rollouts::start(c, &id, &name, max_parallel, max_failures, &planned, first))
        .await;
    match started {
        Ok(Start::Started(rollout)) => Ok(Started::Started(Box::new(view(db, *rollout).await?))),
        Ok(Start::Busy(rollout)) => Ok(Started::Busy(rollout)),
        // Another start won the race for the tenant's one active rollout.
        Err(error) if crate::adapters::db::is_unique_violation(&error) => {
            let name = tenant.name.to_string();
            let active = db
                .run(move |c| rollouts::latest(c, &name))
                .await?
                .ok_or(error)?;
            Ok(Started::Busy(Box::new(active)))
        }
        Err(error) => Err(error),
    }
}

/// An operator's pause, resume or cancel of a tenant's rollout under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Cancel,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
        }
    }
}

/// What [`control`] did.
pub enum Controlled {
    Done(Box<RolloutView>),
    /// The tenant has no rollout under way.
    NoneActive,
    /// The rollout is not in a state the action applies to.
    WrongState(RolloutState),
}

pub async fn control(
    db: &Db,
    tenant: &str,
    action: Action,
    jobs: &JobSettings,
) -> anyhow::Result<Controlled> {
    let name = tenant.to_owned();
    let Some(rollout) = db
        .run(move |c| rollouts::latest(c, &name))
        .await?
        .filter(|r| r.state.is_active())
    else {
        return Ok(Controlled::NoneActive);
    };
    let (from, to) = match (action, rollout.state) {
        (Action::Pause, _) => (RolloutState::Running, RolloutState::Paused),
        (Action::Resume, _) => (RolloutState::Paused, RolloutState::Running),
        (Action::Cancel, current) => (current, RolloutState::Cancelled),
    };
    let jobs = jobs.clone();
    let id = rollout.id.clone();
    let result = db
        .write(move |c| {
            rollouts::control(
                c,
                &id,
                from,
                to,
                (action == Action::Cancel).then_some("cancelled by an operator"),
                |tick| (to == RolloutState::Running).then(|| next_step(&id, tick, &jobs)),
            )
        })
        .await?;
    match result {
        rollouts::Control::Done(rollout) => {
            Ok(Controlled::Done(Box::new(view(db, *rollout).await?)))
        }
        rollouts::Control::NotFound => Ok(Controlled::NoneActive),
        rollouts::Control::WrongState(state) => Ok(Controlled::WrongState(state)),
    }
}

/// Records, for the live sites from before rollouts, the spec the configuration gives them now
/// (what they were applied from, as far as berth can know). Finds them through a partial index,
/// so once done a start looks at no row.
pub async fn pin_unpinned(db: &Db, tenants: &Tenants) -> anyhow::Result<()> {
    for tenant in tenants.all() {
        let name = tenant.name.to_string();
        let plans = db.run(move |c| rollouts::unpinned_plans(c, &name)).await?;
        for plan in plans {
            let spec = match tenant.runtime.workload(plan.as_deref()) {
                Ok(value) => WorkloadSpec::new(&value),
                Err(error) => {
                    tracing::warn!(tenant = %tenant.name, plan = plan.as_deref().unwrap_or(""), error = format!("{error:#}"), "cannot record the workload spec of live sites: the configuration cannot build it");
                    continue;
                }
            };
            let name = tenant.name.to_string();
            let pinned = db
                .write(move |c| rollouts::pin(c, &name, plan.as_deref(), &spec))
                .await?;
            tracing::info!(tenant = %tenant.name, sites = pinned, "recorded the workload spec of live sites from before rollouts");
        }
    }
    Ok(())
}
