//! Workload specs and fleet rollouts (SPEC §7).
//!
//! A workload spec is what a runtime applies for a site besides its name and content
//! ([`crate::adapters::runtime::Runtime::workload`]), stored once per distinct value in
//! `workload_specs` under the hex sha256 of its JSON. A site's `applied_spec` names the spec it
//! runs and `target_spec` the one its next job applies; content updates and suspensions keep
//! them, so only a rollout (or a new plan) moves a site to another template.
//!
//! A rollout lists a tenant's drifted live sites with the spec each goes from and to. Its driver
//! ([`step`], run by the `rollout` job) starts a wave at a time: each site of the wave gets its
//! new spec as its target with a version bump and a `deploy` job, exactly like a content update,
//! so a site's changes still apply in the order they were accepted and a crash at any point
//! resumes from the rows. The deploy settles the site's row: `done` once the new spec is ready
//! ([`applied`]), `failed` once it failed for good and the site went back to its previous spec
//! ([`failed`]). Every function that writes expects to run inside [`super::Db::write`].

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde::Serialize;

use super::cached::CacheDsl;
use super::schema::{rollout_sites, rollouts, sites, workload_specs};
use super::sites::SiteRow;
use super::{jobs::NewJob, now_ms, DbConnection};
use crate::domain::{RolloutSiteState, RolloutState, SiteState};

/// The rows the `sites_unpinned` partial index holds, for `tenant`.
macro_rules! unpinned {
    ($tenant:expr) => {
        sites::table
            .filter(sites::tenant.eq($tenant))
            .filter(sites::applied_spec.is_null())
            .filter(sites::state.eq_any([SiteState::Ready.as_str(), SiteState::Suspended.as_str()]))
    };
}

/// One workload spec: its JSON and the hex sha256 that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub sha256: String,
    pub json: String,
}

impl WorkloadSpec {
    pub fn new(value: &serde_json::Value) -> Self {
        let json = value.to_string();
        Self {
            sha256: super::versions::sha256_hex(&json),
            json,
        }
    }

    pub fn value(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.json)
            .map_err(|e| anyhow::anyhow!("stored workload spec {} is not JSON: {e}", self.sha256))
    }
}

/// Stores `spec` unless it is stored already.
pub fn put_spec(conn: &mut DbConnection, tenant: &str, spec: &WorkloadSpec) -> anyhow::Result<()> {
    // One text for both databases (the multi-backend connection has no `on_conflict`).
    diesel::sql_query(
        "INSERT INTO workload_specs (sha256, tenant, spec, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind::<Text, _>(&spec.sha256)
    .bind::<Text, _>(tenant)
    .bind::<Text, _>(&spec.json)
    .bind::<BigInt, _>(now_ms())
    .cached()
    .execute(conn)?;
    Ok(())
}

pub fn spec(conn: &mut DbConnection, sha256: &str) -> anyhow::Result<Option<WorkloadSpec>> {
    let json: Option<String> = workload_specs::table
        .find(sha256)
        .select(workload_specs::spec)
        .first(conn)
        .optional()?;
    Ok(json.map(|json| WorkloadSpec {
        sha256: sha256.to_owned(),
        json,
    }))
}

/// The site is ready on `spec`: it is what the site runs and what its next job applies, and the
/// site's row in a rollout moving it there is `done`. Every provisioning runs this in its ready
/// transaction, so each statement stays prepared.
pub fn applied(conn: &mut DbConnection, site: &SiteRow, spec: &WorkloadSpec) -> anyhow::Result<()> {
    if site.applied_spec.as_deref() != Some(&spec.sha256)
        || site.target_spec.as_deref() != Some(&spec.sha256)
    {
        put_spec(conn, &site.tenant, spec)?;
        diesel::update(sites::table.find(&site.id))
            .set((
                sites::applied_spec.eq(&spec.sha256),
                sites::target_spec.eq(&spec.sha256),
            ))
            .cached()
            .execute(conn)?;
    }
    settle(conn, &site.id, &spec.sha256, RolloutSiteState::Done, None)
}

/// Settles the site's row in the rollout moving it to `to_spec`, while it is `applying`: `done`,
/// `failed` with `error` (the site went back to its previous spec), or still `applying` with the
/// error of an attempt that retries.
pub fn settle(
    conn: &mut DbConnection,
    site_id: &str,
    to_spec: &str,
    outcome: RolloutSiteState,
    error: Option<&str>,
) -> anyhow::Result<()> {
    diesel::update(
        rollout_sites::table
            .filter(rollout_sites::site_id.eq(site_id))
            .filter(rollout_sites::state.eq(RolloutSiteState::Applying.as_str()))
            .filter(rollout_sites::to_spec.eq(to_spec)),
    )
    .set((
        rollout_sites::state.eq(outcome.as_str()),
        rollout_sites::error.eq(error),
        rollout_sites::updated_at.eq(now_ms()),
    ))
    .cached()
    .execute(conn)?;
    Ok(())
}

/// The live sites (`ready`, `suspended`) of `tenant` that run no recorded spec yet (from before
/// rollouts), by plan.
pub fn unpinned_plans(
    conn: &mut DbConnection,
    tenant: &str,
) -> anyhow::Result<Vec<Option<String>>> {
    Ok(unpinned!(tenant)
        .select(sites::plan)
        .distinct()
        .load(conn)?)
}

/// Records `spec` as what the unpinned live sites of `tenant` on `plan` run (they were applied
/// from the configuration, which gives them `spec` now). Returns how many.
pub fn pin(
    conn: &mut DbConnection,
    tenant: &str,
    plan: Option<&str>,
    spec: &WorkloadSpec,
) -> anyhow::Result<usize> {
    put_spec(conn, tenant, spec)?;
    let set = (
        sites::applied_spec.eq(&spec.sha256),
        sites::target_spec.eq(&spec.sha256),
    );
    let pinned = match plan {
        Some(plan) => diesel::update(unpinned!(tenant).filter(sites::plan.eq(plan)))
            .set(set)
            .execute(conn)?,
        None => diesel::update(unpinned!(tenant).filter(sites::plan.is_null()))
            .set(set)
            .execute(conn)?,
    };
    Ok(pinned)
}

/// How many of a tenant's live sites run each spec, by plan and state.
#[derive(Debug, Queryable)]
pub struct SpecCount {
    pub plan: Option<String>,
    pub applied_spec: Option<String>,
    pub state: SiteState,
    pub sites: i64,
}

pub fn spec_counts(conn: &mut DbConnection, tenant: &str) -> anyhow::Result<Vec<SpecCount>> {
    let live = [SiteState::Ready.as_str(), SiteState::Suspended.as_str()];
    Ok(sites::table
        .filter(sites::tenant.eq(tenant))
        .filter(sites::state.eq_any(live))
        .group_by((sites::plan, sites::applied_spec, sites::state))
        .select((
            sites::plan,
            sites::applied_spec,
            sites::state,
            diesel::dsl::count_star(),
        ))
        .load(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = rollouts)]
pub struct RolloutRow {
    pub id: String,
    pub tenant: String,
    #[schema(value_type = RolloutState)]
    pub state: RolloutState,
    pub max_parallel: i32,
    pub max_failures: i32,
    /// The wave being applied (0 before the first).
    pub wave: i32,
    #[serde(skip)]
    pub tick: i64,
    /// Why it stopped or was cancelled.
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = rollout_sites)]
pub struct RolloutSiteRow {
    #[serde(skip)]
    pub rollout_id: String,
    pub site_id: String,
    /// Where the site is in the rollout's order (oldest site first).
    pub position: i32,
    /// The spec the site ran before (`null`: none recorded).
    pub from_spec: Option<String>,
    pub to_spec: String,
    #[schema(value_type = RolloutSiteState)]
    pub state: RolloutSiteState,
    pub wave: Option<i32>,
    pub error: Option<String>,
    pub updated_at: i64,
}

/// A rollout's sites by state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub pending: i64,
    pub applying: i64,
    pub done: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl Progress {
    pub fn total(&self) -> i64 {
        self.pending + self.applying + self.done + self.failed + self.skipped
    }

    pub fn get(&self, state: RolloutSiteState) -> i64 {
        let mut copy = *self;
        *copy.count(state)
    }

    fn count(&mut self, state: RolloutSiteState) -> &mut i64 {
        match state {
            RolloutSiteState::Pending => &mut self.pending,
            RolloutSiteState::Applying => &mut self.applying,
            RolloutSiteState::Done => &mut self.done,
            RolloutSiteState::Failed => &mut self.failed,
            RolloutSiteState::Skipped => &mut self.skipped,
        }
    }
}

/// On PostgreSQL, holds the rollout's row until the transaction ends, so that a driver step and
/// an operator's pause, resume or cancel never interleave (SQLite's writes are serial anyway).
fn lock(conn: &mut DbConnection, id: &str) -> anyhow::Result<()> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("SELECT id FROM rollouts WHERE id = $1 FOR UPDATE")
            .bind::<Text, _>(id)
            .execute(pg)?;
    }
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> anyhow::Result<Option<RolloutRow>> {
    Ok(rollouts::table
        .find(id)
        .select(RolloutRow::as_select())
        .first(conn)
        .optional()?)
}

/// The tenant's newest rollout.
pub fn latest(conn: &mut DbConnection, tenant: &str) -> anyhow::Result<Option<RolloutRow>> {
    Ok(rollouts::table
        .filter(rollouts::tenant.eq(tenant))
        .order((rollouts::created_at.desc(), rollouts::id.desc()))
        .select(RolloutRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn progress(conn: &mut DbConnection, id: &str) -> anyhow::Result<Progress> {
    let counts: Vec<(RolloutSiteState, i64)> = rollout_sites::table
        .filter(rollout_sites::rollout_id.eq(id))
        .group_by(rollout_sites::state)
        .select((rollout_sites::state, diesel::dsl::count_star()))
        .load(conn)?;
    let mut progress = Progress::default();
    for (state, n) in counts {
        *progress.count(state) += n;
    }
    Ok(progress)
}

/// A rollout's sites in `states`, in the rollout's order, at most `limit`.
pub fn sites_in(
    conn: &mut DbConnection,
    id: &str,
    states: &[RolloutSiteState],
    limit: i64,
) -> anyhow::Result<Vec<RolloutSiteRow>> {
    let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    Ok(rollout_sites::table
        .filter(rollout_sites::rollout_id.eq(id))
        .filter(rollout_sites::state.eq_any(states))
        .order(rollout_sites::position)
        .limit(limit)
        .select(RolloutSiteRow::as_select())
        .load(conn)?)
}

/// A site to roll out: where it goes, or why it cannot.
pub struct Planned {
    pub site_id: String,
    pub from_spec: Option<String>,
    /// The new spec, or why the configuration cannot build one for the site.
    pub to: Result<WorkloadSpec, String>,
}

/// What [`start`] did.
pub enum Start {
    Started(Box<RolloutRow>),
    /// The tenant has a rollout under way.
    Busy(Box<RolloutRow>),
}

/// Starts rollout `id` of `tenant` over `planned` sites (in that order), with its first driver
/// step `first_step`: sites the configuration cannot build a spec for are listed `skipped` with
/// why.
#[allow(clippy::too_many_arguments)]
pub fn start(
    conn: &mut DbConnection,
    id: &str,
    tenant: &str,
    max_parallel: i32,
    max_failures: i32,
    planned: &[Planned],
    first_step: NewJob,
) -> anyhow::Result<Start> {
    if let Some(active) = latest(conn, tenant)?.filter(|r| r.state.is_active()) {
        return Ok(Start::Busy(Box::new(active)));
    }
    let now = now_ms();
    diesel::insert_into(rollouts::table)
        .values((
            rollouts::id.eq(id),
            rollouts::tenant.eq(tenant),
            rollouts::state.eq(RolloutState::Running.as_str()),
            rollouts::max_parallel.eq(max_parallel),
            rollouts::max_failures.eq(max_failures),
            rollouts::wave.eq(0),
            rollouts::tick.eq(1i64),
            rollouts::created_at.eq(now),
            rollouts::updated_at.eq(now),
        ))
        .execute(conn)?;
    let mut stored = std::collections::HashSet::new();
    for (position, site) in planned.iter().enumerate() {
        let (to_spec, state, error) = match &site.to {
            Ok(spec) => {
                if stored.insert(spec.sha256.as_str()) {
                    put_spec(conn, tenant, spec)?;
                }
                (spec.sha256.as_str(), RolloutSiteState::Pending, None)
            }
            Err(why) => ("", RolloutSiteState::Skipped, Some(why.as_str())),
        };
        diesel::insert_into(rollout_sites::table)
            .values((
                rollout_sites::rollout_id.eq(id),
                rollout_sites::site_id.eq(&site.site_id),
                rollout_sites::position.eq(position as i32),
                rollout_sites::from_spec.eq(&site.from_spec),
                rollout_sites::to_spec.eq(to_spec),
                rollout_sites::state.eq(state.as_str()),
                rollout_sites::error.eq(error),
                rollout_sites::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    super::jobs::insert(conn, &first_step)?;
    let row = get(conn, id)?.ok_or_else(|| anyhow::anyhow!("rollout {id} vanished"))?;
    Ok(Start::Started(Box::new(row)))
}

/// What an operator's pause, resume or cancel did.
pub enum Control {
    Done(Box<RolloutRow>),
    NotFound,
    WrongState(RolloutState),
}

/// Moves the tenant's rollout `id` from `from` to `to` (a resume also enqueues the driver step
/// `step` builds for the next tick; an ending records `reason`).
pub fn control(
    conn: &mut DbConnection,
    id: &str,
    from: RolloutState,
    to: RolloutState,
    reason: Option<&str>,
    step: impl FnOnce(i64) -> Option<NewJob>,
) -> anyhow::Result<Control> {
    lock(conn, id)?;
    let Some(rollout) = get(conn, id)? else {
        return Ok(Control::NotFound);
    };
    if rollout.state != from {
        return Ok(Control::WrongState(rollout.state));
    }
    let tick = rollout.tick + 1;
    let now = now_ms();
    let finished = (!to.is_active()).then_some(now);
    let changed = diesel::update(
        rollouts::table
            .find(id)
            .filter(rollouts::state.eq(from.as_str()))
            .filter(rollouts::tick.eq(rollout.tick)),
    )
    .set((
        rollouts::state.eq(to.as_str()),
        rollouts::tick.eq(tick),
        rollouts::reason.eq(reason),
        rollouts::updated_at.eq(now),
        rollouts::finished_at.eq(finished),
    ))
    .execute(conn)?;
    if changed == 0 {
        return Err(anyhow::anyhow!(
            "rollout {id} changed while it was being changed"
        ));
    }
    if let Some(job) = step(tick) {
        super::jobs::insert(conn, &job)?;
    }
    let row = get(conn, id)?.ok_or_else(|| anyhow::anyhow!("rollout {id} vanished"))?;
    Ok(Control::Done(Box::new(row)))
}

/// Stops rollout `id` with `reason` while it is running at `tick` (its driver step at that tick
/// failed for good). Returns whether it did.
pub fn halt(conn: &mut DbConnection, id: &str, tick: i64, reason: &str) -> anyhow::Result<bool> {
    lock(conn, id)?;
    let now = now_ms();
    let changed = diesel::update(
        rollouts::table
            .find(id)
            .filter(rollouts::state.eq(RolloutState::Running.as_str()))
            .filter(rollouts::tick.eq(tick)),
    )
    .set((
        rollouts::state.eq(RolloutState::Stopped.as_str()),
        rollouts::reason.eq(reason),
        rollouts::tick.eq(tick + 1),
        rollouts::updated_at.eq(now),
        rollouts::finished_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// What one driver step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The step is not the rollout's current one, or the rollout is not running.
    StoodDown,
    /// Sites of the current wave are still deploying.
    Waiting,
    /// Wave `wave` started with `sites` sites.
    Wave { wave: i32, sites: usize },
    /// The rollout ended in this state.
    Ended(RolloutState),
}

/// How many pending rows one step looks at past those it starts, so that a few sites with a
/// content update in flight (which wait for a later wave) do not hold a wave back.
const LOOK_AHEAD: i64 = 64;

/// One step of rollout `id`'s driver at `tick`: settles the rows of the wave under way whose
/// site moved on some other way, ends the rollout when `max_failures` sites failed or none is
/// left, starts the next wave once the current one settled (each site retargeted with the job
/// `deploy` builds), and enqueues the next step (`next_step` gets the next tick).
pub fn step(
    conn: &mut DbConnection,
    id: &str,
    tick: i64,
    next_step: impl FnOnce(i64) -> NewJob,
    deploy: impl Fn(&SiteRow) -> NewJob,
) -> anyhow::Result<Step> {
    lock(conn, id)?;
    let Some(rollout) = get(conn, id)? else {
        return Ok(Step::StoodDown);
    };
    if rollout.tick != tick || rollout.state != RolloutState::Running {
        return Ok(Step::StoodDown);
    }
    for row in sites_in(conn, id, &[RolloutSiteState::Applying], i64::MAX)? {
        let site = super::sites::get(conn, &row.site_id)?;
        if let Some((state, why)) = moved_on(site.as_ref(), &row.to_spec) {
            set_row(conn, &row, state, why.as_deref(), None)?;
        }
    }
    let progress = progress(conn, id)?;
    let ending = if progress.failed >= i64::from(rollout.max_failures) {
        Some((
            RolloutState::Stopped,
            Some(format!(
                "{} site(s) failed; max_failures is {}",
                progress.failed, rollout.max_failures
            )),
        ))
    } else if progress.pending == 0 && progress.applying == 0 {
        Some((RolloutState::Completed, None))
    } else {
        None
    };
    if let Some((state, reason)) = ending {
        let now = now_ms();
        diesel::update(rollouts::table.find(id))
            .set((
                rollouts::state.eq(state.as_str()),
                rollouts::reason.eq(reason),
                rollouts::tick.eq(tick + 1),
                rollouts::updated_at.eq(now),
                rollouts::finished_at.eq(now),
            ))
            .execute(conn)?;
        return Ok(Step::Ended(state));
    }
    let mut outcome = Step::Waiting;
    let mut wave = rollout.wave;
    if progress.applying == 0 {
        let next_wave = rollout.wave + 1;
        let mut started = 0;
        let candidates = sites_in(
            conn,
            id,
            &[RolloutSiteState::Pending],
            i64::from(rollout.max_parallel) + LOOK_AHEAD,
        )?;
        for row in candidates {
            if started == rollout.max_parallel as usize {
                break;
            }
            super::sites::lock(conn, &row.site_id)?;
            let site = super::sites::get(conn, &row.site_id)?;
            match site {
                None => set_row(conn, &row, RolloutSiteState::Skipped, Some(GONE), None)?,
                Some(site) if site.applied_spec.as_deref() == Some(&row.to_spec) => {
                    set_row(conn, &row, RolloutSiteState::Done, None, None)?
                }
                Some(site) if site.state != SiteState::Ready => {
                    let why = format!("the site is {}, not live", site.state);
                    set_row(conn, &row, RolloutSiteState::Skipped, Some(&why), None)?
                }
                // A new plan (or another change) moved the site since the rollout started: the
                // spec planned for it would undo that.
                Some(site)
                    if site.applied_spec != row.from_spec
                        || site.target_spec != site.applied_spec =>
                {
                    set_row(conn, &row, RolloutSiteState::Skipped, Some(MOVED), None)?
                }
                // A content update is deploying: the site waits for a later wave, so that a
                // failure is the new spec's alone.
                Some(site) if site.target_version != site.live_version => {}
                Some(mut site) => {
                    site.version += 1;
                    site.target_spec = Some(row.to_spec.clone());
                    diesel::update(sites::table.find(&site.id))
                        .set((
                            sites::target_spec.eq(&row.to_spec),
                            sites::version.eq(site.version),
                            sites::updated_at.eq(now_ms()),
                        ))
                        .execute(conn)?;
                    super::jobs::insert(conn, &deploy(&site))?;
                    set_row(
                        conn,
                        &row,
                        RolloutSiteState::Applying,
                        None,
                        Some(next_wave),
                    )?;
                    started += 1;
                }
            }
        }
        if started > 0 {
            wave = next_wave;
            outcome = Step::Wave {
                wave,
                sites: started,
            };
        }
    }
    diesel::update(rollouts::table.find(id))
        .set((
            rollouts::wave.eq(wave),
            rollouts::tick.eq(tick + 1),
            rollouts::updated_at.eq(now_ms()),
        ))
        .execute(conn)?;
    super::jobs::insert(conn, &next_step(tick + 1))?;
    Ok(outcome)
}

const GONE: &str = "the site is gone";
const MOVED: &str =
    "the site's spec changed since the rollout started (a new plan, say); a later rollout moves it";

/// How an `applying` row ends when its site moved on without its deploy settling it: `None`
/// while the deploy may still do so.
fn moved_on(site: Option<&SiteRow>, to_spec: &str) -> Option<(RolloutSiteState, Option<String>)> {
    let Some(site) = site else {
        return Some((RolloutSiteState::Skipped, Some(GONE.to_owned())));
    };
    if site.applied_spec.as_deref() == Some(to_spec) {
        return Some((RolloutSiteState::Done, None));
    }
    if site.target_spec.as_deref() != Some(to_spec) {
        return Some((
            RolloutSiteState::Skipped,
            Some("a newer change gave the site another spec".to_owned()),
        ));
    }
    if site.state != SiteState::Ready {
        return Some((
            RolloutSiteState::Skipped,
            Some(format!(
                "the site became {} during its deploy; it gets the new spec when it is provisioned again",
                site.state
            )),
        ));
    }
    None
}

fn set_row(
    conn: &mut DbConnection,
    row: &RolloutSiteRow,
    state: RolloutSiteState,
    error: Option<&str>,
    wave: Option<i32>,
) -> anyhow::Result<()> {
    diesel::update(rollout_sites::table.find((&row.rollout_id, &row.site_id)))
        .set((
            rollout_sites::state.eq(state.as_str()),
            rollout_sites::error.eq(error),
            rollout_sites::wave.eq(wave.or(row.wave)),
            rollout_sites::updated_at.eq(now_ms()),
        ))
        .execute(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, SqliteConnection};
    use diesel_migrations::MigrationHarness;

    use super::*;
    use crate::adapters::db::jobs::Enqueue;
    use crate::configuration::JobSettings;
    use crate::domain::job::{Deploy, Rollout};

    const OLD: &str = "old";

    fn database(sites: usize) -> DbConnection {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory database");
        conn.run_pending_migrations(crate::adapters::db::SQLITE_MIGRATIONS)
            .expect("migrations apply");
        for n in 1..=sites {
            conn.batch_execute(&format!(
                "INSERT INTO sites (id, tenant, name, hostname, email, state, version, created_at, \
                 updated_at, applied_spec, target_spec, live_version, target_version) VALUES \
                 ('site_{n}', 't', 's{n}', 's{n}.example', 'a@example.com', 'ready', 1, 1, 1, \
                 '{OLD}', '{OLD}', 1, 1)"
            ))
            .expect("a site");
        }
        DbConnection::Sqlite(conn)
    }

    fn new_spec() -> WorkloadSpec {
        WorkloadSpec::new(&serde_json::json!({"image": "shop:2"}))
    }

    fn begin(conn: &mut DbConnection, sites: usize, max_parallel: i32, max_failures: i32) {
        let planned: Vec<Planned> = (1..=sites)
            .map(|n| Planned {
                site_id: format!("site_{n}"),
                from_spec: Some(OLD.into()),
                to: Ok(new_spec()),
            })
            .collect();
        let first = step_job(1);
        let started = start(conn, "r", "t", max_parallel, max_failures, &planned, first).unwrap();
        assert!(matches!(started, Start::Started(_)));
    }

    fn step_job(tick: i64) -> NewJob {
        Rollout {
            rollout_id: "r".into(),
            tick,
        }
        .to_new_job(&JobSettings::default())
    }

    fn deploy_job(site: &SiteRow) -> NewJob {
        Deploy {
            site_id: site.id.clone(),
            version: site.version,
        }
        .to_new_job(&JobSettings::default())
    }

    /// An operator's action on rollout `r`: from `from` to `to`, a resume enqueueing its step.
    fn set(conn: &mut DbConnection, from: RolloutState, to: RolloutState) -> Control {
        let reason = (to == RolloutState::Cancelled).then_some("cancelled by an operator");
        control(conn, "r", from, to, reason, |tick| {
            (to == RolloutState::Running).then(|| step_job(tick))
        })
        .unwrap()
    }

    fn run_step(conn: &mut DbConnection) -> Step {
        let tick = get(conn, "r").unwrap().unwrap().tick;
        step(conn, "r", tick, step_job, deploy_job).unwrap()
    }

    fn site(conn: &mut DbConnection, n: usize) -> SiteRow {
        super::super::sites::get(conn, &format!("site_{n}"))
            .unwrap()
            .unwrap()
    }

    fn row_state(conn: &mut DbConnection, n: usize) -> RolloutSiteState {
        rollout_sites::table
            .find(("r", format!("site_{n}")))
            .select(rollout_sites::state)
            .first(conn)
            .unwrap()
    }

    /// The deploy of site `n` succeeded: what the deploy job's last transaction does.
    fn deployed(conn: &mut DbConnection, n: usize) {
        let site = site(conn, n);
        applied(conn, &site, &new_spec()).unwrap();
    }

    #[test]
    fn waves_deploy_max_parallel_sites_each_and_the_rollout_stops_at_max_failures() {
        let mut conn = database(5);
        begin(&mut conn, 5, 2, 1);
        assert_eq!(run_step(&mut conn), Step::Wave { wave: 1, sites: 2 });
        for n in [1, 2] {
            let site = site(&mut conn, n);
            assert_eq!(
                site.target_spec.as_deref(),
                Some(new_spec().sha256.as_str())
            );
            assert_eq!(site.applied_spec.as_deref(), Some(OLD));
            assert_eq!(site.version, 2, "older jobs of the site stand down");
            assert_eq!(row_state(&mut conn, n), RolloutSiteState::Applying);
        }
        assert_eq!(site(&mut conn, 3).target_spec.as_deref(), Some(OLD));
        assert_eq!(
            run_step(&mut conn),
            Step::Waiting,
            "the wave is still deploying"
        );
        assert_eq!(
            step(&mut conn, "r", 1, step_job, deploy_job).unwrap(),
            Step::StoodDown,
            "a step that already ran acts once"
        );

        deployed(&mut conn, 1);
        let version = site(&mut conn, 2).version;
        let abandoned =
            super::super::versions::fail_deploy(&mut conn, "site_2", version, "boom", deploy_job)
                .unwrap()
                .expect("the spec is given up");
        assert_eq!(abandoned.spec.as_deref(), Some(new_spec().sha256.as_str()));
        assert_eq!(abandoned.version, None, "the content did not change");
        let back = site(&mut conn, 2);
        assert_eq!(
            back.target_spec.as_deref(),
            Some(OLD),
            "back on its previous spec"
        );

        assert_eq!(run_step(&mut conn), Step::Ended(RolloutState::Stopped));
        let rollout = get(&mut conn, "r").unwrap().unwrap();
        assert_eq!(
            rollout.reason.as_deref(),
            Some("1 site(s) failed; max_failures is 1")
        );
        assert!(rollout.finished_at.is_some());
        assert_eq!(
            progress(&mut conn, "r").unwrap(),
            Progress {
                pending: 3,
                applying: 0,
                done: 1,
                failed: 1,
                skipped: 0
            }
        );
        let failed = sites_in(&mut conn, "r", &[RolloutSiteState::Failed], 10).unwrap();
        assert_eq!(failed[0].error.as_deref(), Some("boom"));
        assert_eq!(
            run_step(&mut conn),
            Step::StoodDown,
            "an ended rollout does nothing"
        );
    }

    #[test]
    fn a_site_that_moved_to_another_spec_since_the_start_is_left_alone() {
        let mut conn = database(2);
        begin(&mut conn, 2, 2, 1);
        // Site 2's plan changed and it was provisioned again on that plan's spec.
        if let DbConnection::Sqlite(c) = &mut conn {
            c.batch_execute(
                "UPDATE sites SET applied_spec = 'pro', target_spec = 'pro' WHERE id = 'site_2'",
            )
            .unwrap();
        }
        assert_eq!(run_step(&mut conn), Step::Wave { wave: 1, sites: 1 });
        assert_eq!(row_state(&mut conn, 2), RolloutSiteState::Skipped);
        assert_eq!(
            site(&mut conn, 2).target_spec.as_deref(),
            Some("pro"),
            "untouched"
        );
    }

    #[test]
    fn a_driver_step_that_failed_for_good_stops_its_rollout_unless_another_took_over() {
        let mut conn = database(2);
        begin(&mut conn, 2, 1, 1);
        assert_eq!(run_step(&mut conn), Step::Wave { wave: 1, sites: 1 });
        assert!(
            !halt(&mut conn, "r", 1, "stale").unwrap(),
            "step 1 was done"
        );
        assert!(halt(&mut conn, "r", 2, "its driver failed: disk full").unwrap());
        let rollout = get(&mut conn, "r").unwrap().unwrap();
        assert_eq!(rollout.state, RolloutState::Stopped);
        assert_eq!(
            rollout.reason.as_deref(),
            Some("its driver failed: disk full")
        );
    }

    #[test]
    fn pause_holds_the_next_wave_resume_goes_on_and_sites_that_moved_on_are_skipped() {
        let mut conn = database(4);
        // Site 3 has a content update deploying: it waits for a later wave.
        conn.batch_execute("UPDATE sites SET target_version = 2 WHERE id = 'site_3'")
            .unwrap();
        begin(&mut conn, 4, 1, 10);
        assert_eq!(run_step(&mut conn), Step::Wave { wave: 1, sites: 1 });
        let paused = set(&mut conn, RolloutState::Running, RolloutState::Paused);
        assert!(matches!(paused, Control::Done(r) if r.state == RolloutState::Paused));
        assert_eq!(run_step(&mut conn), Step::StoodDown, "paused");
        deployed(&mut conn, 1);
        assert_eq!(row_state(&mut conn, 1), RolloutSiteState::Done);
        let again = set(&mut conn, RolloutState::Running, RolloutState::Paused);
        assert!(matches!(again, Control::WrongState(RolloutState::Paused)));
        set(&mut conn, RolloutState::Paused, RolloutState::Running);

        // Site 2 deploys; site 3 waits for its content update, so site 4 comes next.
        assert_eq!(run_step(&mut conn), Step::Wave { wave: 2, sites: 1 });
        assert_eq!(row_state(&mut conn, 2), RolloutSiteState::Applying);
        assert_eq!(row_state(&mut conn, 3), RolloutSiteState::Pending);
        // Site 2 is suspended while it deploys: its deploy stands down.
        conn.batch_execute("UPDATE sites SET state = 'suspended', version = 9 WHERE id = 'site_2'")
            .unwrap();
        assert_eq!(run_step(&mut conn), Step::Wave { wave: 3, sites: 1 });
        assert_eq!(row_state(&mut conn, 2), RolloutSiteState::Skipped);
        assert_eq!(row_state(&mut conn, 4), RolloutSiteState::Applying);
        deployed(&mut conn, 4);
        conn.batch_execute("UPDATE sites SET live_version = 2 WHERE id = 'site_3'")
            .unwrap();
        assert_eq!(run_step(&mut conn), Step::Wave { wave: 4, sites: 1 });
        deployed(&mut conn, 3);
        assert_eq!(run_step(&mut conn), Step::Ended(RolloutState::Completed));
        let progress = progress(&mut conn, "r").unwrap();
        assert_eq!((progress.done, progress.skipped), (3, 1));
        let skipped = sites_in(&mut conn, "r", &[RolloutSiteState::Skipped], 10).unwrap();
        assert!(
            skipped[0]
                .error
                .as_deref()
                .unwrap()
                .contains("became suspended"),
            "{skipped:?}"
        );
    }

    #[test]
    fn a_tenant_has_one_rollout_under_way_and_a_cancelled_one_leaves_the_rest_alone() {
        let mut conn = database(3);
        begin(&mut conn, 3, 1, 1);
        let planned = [Planned {
            site_id: "site_1".into(),
            from_spec: None,
            to: Ok(new_spec()),
        }];
        let second = start(&mut conn, "r2", "t", 1, 1, &planned, step_job(1)).unwrap();
        assert!(matches!(second, Start::Busy(r) if r.id == "r"));
        assert_eq!(run_step(&mut conn), Step::Wave { wave: 1, sites: 1 });
        let cancelled = set(&mut conn, RolloutState::Running, RolloutState::Cancelled);
        assert!(matches!(cancelled, Control::Done(r) if r.finished_at.is_some()));
        assert_eq!(run_step(&mut conn), Step::StoodDown);
        // The site already deploying finishes and is counted; the others keep their spec.
        deployed(&mut conn, 1);
        assert_eq!(row_state(&mut conn, 1), RolloutSiteState::Done);
        assert_eq!(site(&mut conn, 2).target_spec.as_deref(), Some(OLD));
        let third = start(&mut conn, "r3", "t", 1, 1, &planned, step_job(1)).unwrap();
        assert!(
            matches!(third, Start::Started(_)),
            "a new rollout may start"
        );
    }

    #[test]
    fn live_sites_from_before_rollouts_are_pinned_by_plan_through_the_partial_index() {
        let mut conn = database(0);
        if let DbConnection::Sqlite(c) = &mut conn {
            c.batch_execute(
                "INSERT INTO sites (id, tenant, name, hostname, email, plan, state, version, \
                 created_at, updated_at) VALUES \
                 ('site_a', 't', 'a', 'a.example', 'x@example.com', 'pro', 'ready', 1, 1, 1), \
                 ('site_b', 't', 'b', 'b.example', 'x@example.com', NULL, 'suspended', 1, 1, 1), \
                 ('site_c', 't', 'c', 'c.example', 'x@example.com', NULL, 'provisioning', 1, 1, 1);",
            )
            .unwrap();
        }
        let mut plans = unpinned_plans(&mut conn, "t").unwrap();
        plans.sort();
        assert_eq!(plans, [None, Some("pro".to_owned())]);
        assert_eq!(pin(&mut conn, "t", Some("pro"), &new_spec()).unwrap(), 1);
        assert_eq!(pin(&mut conn, "t", None, &new_spec()).unwrap(), 1);
        assert!(unpinned_plans(&mut conn, "t").unwrap().is_empty());
        assert_eq!(
            super::super::sites::get(&mut conn, "site_c")
                .unwrap()
                .unwrap()
                .applied_spec,
            None,
            "a site not live yet records its spec when it is ready"
        );
        assert_eq!(
            spec(&mut conn, &new_spec().sha256).unwrap(),
            Some(new_spec()),
            "stored once"
        );
    }
}
