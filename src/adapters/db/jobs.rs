//! Job rows: enqueue, claim under a lease, heartbeat, finish.
//!
//! A job is `queued` until a worker claims it: the claim sets `running`, the worker as lease
//! owner, a lease expiry, and counts the attempt, for a batch of jobs in one statement
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same row; SQLite:
//! inside `BEGIN IMMEDIATE`, so claims are serialised). A `running` job whose lease expired (its
//! worker died) is claimable again. Every finishing write checks the lease owner, so a worker
//! that lost its lease cannot overwrite the outcome of the one that took over.
//!
//! Claims read the due set in index order (`jobs_due` is `(state, run_at, id)`, `jobs_lease` is
//! `(state, lease_expires_at)`) and stop at the batch size, so a claim costs the same with ten
//! jobs waiting or a million: nothing scans or sorts the due set. Every function that writes
//! expects to run inside [`super::Db::write`].

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use serde::Serialize;

use super::cached::CacheDsl;
use super::listen::notify_jobs;
use super::schema::jobs;
use super::{now_ms, DbConnection};
use crate::configuration::JobSettings;
use crate::domain::job::Job;
use crate::domain::{JobId, JobState};

pub const QUEUED: &str = JobState::Queued.as_str();
pub const RUNNING: &str = JobState::Running.as_str();
pub const SUCCEEDED: &str = JobState::Succeeded.as_str();
pub const FAILED: &str = JobState::Failed.as_str();
pub const STATES: [&str; 4] = [QUEUED, RUNNING, SUCCEEDED, FAILED];

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub site_id: Option<String>,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A job payload as the row that enqueues it, to insert in the transaction that calls for it.
pub trait Enqueue {
    fn to_new_job(&self, settings: &JobSettings) -> NewJob;
}

impl<J: Job> Enqueue for J {
    fn to_new_job(&self, settings: &JobSettings) -> NewJob {
        let now = now_ms();
        NewJob {
            id: JobId::generate().to_string(),
            kind: J::KIND.to_owned(),
            payload: serde_json::to_string(self).expect("job payloads serialise"),
            site_id: self.site_id().map(str::to_owned),
            state: QUEUED.to_owned(),
            attempts: 0,
            max_attempts: settings.max_attempts,
            run_at: now,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, Serialize, utoipa::ToSchema)]
#[diesel(table_name = jobs)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    #[serde(skip)]
    pub payload: String,
    pub site_id: Option<String>,
    #[schema(value_type = String)]
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Enqueues a job. On PostgreSQL the commit also notifies every listening worker.
pub fn insert(conn: &mut DbConnection, job: &NewJob) -> anyhow::Result<()> {
    insert_many(conn, &[job])
}

/// Enqueues several jobs: one multi-row statement on PostgreSQL (and one notification to the
/// listening workers), one statement per row on SQLite (whose multi-row inserts diesel runs in
/// a transaction of its own).
pub fn insert_many(conn: &mut DbConnection, jobs: &[&NewJob]) -> anyhow::Result<()> {
    match conn {
        DbConnection::Postgresql(_) if jobs.is_empty() => {}
        DbConnection::Postgresql(pg) => {
            diesel::insert_into(jobs::table)
                .values(jobs.to_vec())
                .execute(pg)?;
            notify_jobs(pg)?;
        }
        DbConnection::Sqlite(lite) => {
            for job in jobs {
                diesel::insert_into(jobs::table)
                    .values(*job)
                    .execute(lite)?;
            }
        }
    }
    Ok(())
}

/// Claims up to `$4` rows of the subquery for lease owner `$1` until `$2`, at time `$3`.
/// `{due}` selects ids in index order; `{lock}` is `FOR UPDATE SKIP LOCKED` on PostgreSQL.
/// (SQLite reads `$N` as named parameters numbered by first appearance, which is `$1`..`$4`
/// here too, so one text serves both backends.)
const CLAIM: &str = "
UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2,
       attempts = attempts + 1, updated_at = $3
WHERE id IN (SELECT id FROM jobs WHERE {due} LIMIT $4 {lock})
RETURNING *";

/// Running jobs whose lease expired (their worker died), the longest expired first.
const EXPIRED: &str = "state = 'running' AND lease_expires_at <= $3 ORDER BY lease_expires_at";
/// Queued jobs that are due, oldest first.
const DUE: &str = "state = 'queued' AND run_at <= $3 ORDER BY run_at, id";

/// Claims up to `limit` jobs for `owner` until `now + lease_ms`: first those whose lease
/// expired, then due ones, oldest first. Call inside a write.
pub fn claim(
    conn: &mut DbConnection,
    owner: &str,
    lease_ms: i64,
    limit: usize,
) -> anyhow::Result<Vec<JobRow>> {
    let now = now_ms();
    let mut claimed = claim_where(conn, EXPIRED, owner, now, lease_ms, limit)?;
    if claimed.len() < limit {
        let due = claim_where(conn, DUE, owner, now, lease_ms, limit - claimed.len())?;
        claimed.extend(due);
    }
    Ok(claimed)
}

fn claim_where(
    conn: &mut DbConnection,
    due: &str,
    owner: &str,
    now: i64,
    lease_ms: i64,
    limit: usize,
) -> anyhow::Result<Vec<JobRow>> {
    let lock = match conn {
        DbConnection::Postgresql(_) => "FOR UPDATE SKIP LOCKED",
        DbConnection::Sqlite(_) => "",
    };
    let sql = CLAIM.replace("{due}", due).replace("{lock}", lock);
    let mut claimed = diesel::sql_query(sql)
        .bind::<Text, _>(owner)
        .bind::<BigInt, _>(now + lease_ms)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(limit as i64)
        .cached()
        .load::<JobRow>(conn)?;
    // RETURNING keeps no order.
    claimed.sort_by(|a, b| (a.run_at, &a.id).cmp(&(b.run_at, &b.id)));
    Ok(claimed)
}

/// The rows of this job that `owner` still holds.
macro_rules! held {
    ($id:expr, $owner:expr) => {
        jobs::table
            .find($id)
            .filter(jobs::lease_owner.eq($owner))
            .filter(jobs::state.eq(RUNNING))
    };
}

/// Extends the leases of the jobs `owner` holds among `ids`; returns the ids whose lease was
/// lost to another worker.
///
/// Durability: a heartbeat lost to a power cut only lets a lease expire early, and a job whose
/// lease expired runs again (jobs are idempotent), so heartbeats share commits like any write.
pub fn heartbeat(
    conn: &mut DbConnection,
    ids: &[String],
    owner: &str,
    lease_ms: i64,
) -> anyhow::Result<Vec<String>> {
    let now = now_ms();
    let extended: Vec<String> = diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(ids))
            .filter(jobs::lease_owner.eq(owner))
            .filter(jobs::state.eq(RUNNING)),
    )
    .set((
        jobs::lease_expires_at.eq(now + lease_ms),
        jobs::updated_at.eq(now),
    ))
    .returning(jobs::id)
    .get_results(conn)?;
    Ok(ids
        .iter()
        .filter(|id| !extended.contains(id))
        .cloned()
        .collect())
}

/// Marks the jobs among `ids` that `owner` still holds done, in one statement; returns the ids
/// it marked (a missing id's lease was lost and nothing was written for it).
pub fn succeed_many(
    conn: &mut DbConnection,
    ids: &[String],
    owner: &str,
) -> anyhow::Result<Vec<String>> {
    let now = now_ms();
    // A finished job's `run_at` becomes the time it finished.
    Ok(diesel::update(
        jobs::table
            .filter(jobs::id.eq_any(ids))
            .filter(jobs::lease_owner.eq(owner))
            .filter(jobs::state.eq(RUNNING)),
    )
    .set((
        jobs::state.eq(SUCCEEDED),
        jobs::run_at.eq(now),
        jobs::lease_owner.eq(None::<String>),
        jobs::lease_expires_at.eq(None::<i64>),
        jobs::last_error.eq(None::<String>),
        jobs::updated_at.eq(now),
    ))
    .returning(jobs::id)
    .get_results(conn)?)
}

/// Puts the job back in the queue to run at `run_at`, keeping the error.
pub fn retry_at(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    run_at: i64,
    error: &str,
) -> anyhow::Result<bool> {
    finish(conn, id, owner, QUEUED, Some(run_at), Some(error))
}

/// Marks the job failed for good, keeping the error.
pub fn fail(conn: &mut DbConnection, id: &str, owner: &str, error: &str) -> anyhow::Result<bool> {
    finish(conn, id, owner, FAILED, None, Some(error))
}

fn finish(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    state: &str,
    run_at: Option<i64>,
    error: Option<&str>,
) -> anyhow::Result<bool> {
    let now = now_ms();
    // A finished job's `run_at` becomes the time it finished.
    let n = diesel::update(held!(id, owner))
        .set((
            jobs::state.eq(state),
            jobs::run_at.eq(run_at.unwrap_or(now)),
            jobs::lease_owner.eq(None::<String>),
            jobs::lease_expires_at.eq(None::<i64>),
            jobs::last_error.eq(error),
            jobs::updated_at.eq(now),
        ))
        .cached()
        .execute(conn)?;
    Ok(n == 1)
}

/// Gives back every lease `owner` holds (graceful shutdown): the jobs are due at once and the
/// interrupted attempt is not counted.
pub fn release_all(conn: &mut DbConnection, owner: &str) -> anyhow::Result<usize> {
    let now = now_ms();
    Ok(diesel::update(
        jobs::table
            .filter(jobs::lease_owner.eq(owner))
            .filter(jobs::state.eq(RUNNING)),
    )
    .set((
        jobs::state.eq(QUEUED),
        jobs::run_at.eq(now),
        jobs::attempts.eq(jobs::attempts - 1),
        jobs::lease_owner.eq(None::<String>),
        jobs::lease_expires_at.eq(None::<i64>),
        jobs::updated_at.eq(now),
    ))
    .cached()
    .execute(conn)?)
}

pub fn get(conn: &mut DbConnection, id: &str) -> anyhow::Result<Option<JobRow>> {
    Ok(jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .optional()?)
}

/// Jobs newest first, optionally in one state and/or of one site.
pub fn list(
    conn: &mut DbConnection,
    state: Option<&str>,
    site_id: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<JobRow>> {
    let mut query = jobs::table.select(JobRow::as_select()).into_boxed();
    if let Some(state) = state {
        query = query.filter(jobs::state.eq(state.to_owned()));
    }
    if let Some(site_id) = site_id {
        query = query.filter(jobs::site_id.eq(site_id.to_owned()));
    }
    Ok(query
        .order((jobs::created_at.desc(), jobs::id.desc()))
        .limit(limit)
        .load(conn)?)
}

/// Puts a failed job back in the queue with a fresh attempt budget. `false` if it is not failed.
pub fn requeue_failed(conn: &mut DbConnection, id: &str) -> anyhow::Result<bool> {
    let now = now_ms();
    let n = diesel::update(jobs::table.find(id).filter(jobs::state.eq(FAILED)))
        .set((
            jobs::state.eq(QUEUED),
            jobs::attempts.eq(0),
            jobs::run_at.eq(now),
            jobs::updated_at.eq(now),
        ))
        .cached()
        .execute(conn)?;
    Ok(n == 1)
}

/// The ids of the failed jobs among `rows` that a newer job of their site superseded (see
/// [`is_superseded`]), with one query for all their sites (and one more per exact tie of
/// creation times, which a site's jobs almost never have).
pub fn superseded_among(
    conn: &mut DbConnection,
    rows: &[JobRow],
) -> anyhow::Result<std::collections::HashSet<String>> {
    let failed: Vec<&JobRow> = rows
        .iter()
        .filter(|job| job.state == JobState::Failed && job.site_id.is_some())
        .collect();
    let sites: Vec<&str> = failed.iter().filter_map(|j| j.site_id.as_deref()).collect();
    if sites.is_empty() {
        return Ok(Default::default());
    }
    let newest: std::collections::HashMap<String, i64> = jobs::table
        .filter(jobs::site_id.eq_any(&sites))
        .group_by(jobs::site_id)
        .select((
            jobs::site_id.assume_not_null(),
            diesel::dsl::max(jobs::created_at),
        ))
        .load::<(String, Option<i64>)>(conn)?
        .into_iter()
        .filter_map(|(site, newest)| Some((site, newest?)))
        .collect();
    let mut superseded = std::collections::HashSet::new();
    for job in failed {
        let newest = job.site_id.as_ref().and_then(|s| newest.get(s)).copied();
        let newer = match newest {
            Some(newest) if newest > job.created_at => true,
            Some(newest) if newest == job.created_at => is_superseded(conn, job)?,
            _ => false,
        };
        if newer {
            superseded.insert(job.id.clone());
        }
    }
    Ok(superseded)
}

/// Whether a newer job of the same site exists: the site has moved on since `job` ran (a
/// failed provision followed by a deploy, say), so running `job` again would act on a state
/// that is gone. Jobs of no site are never superseded.
pub fn is_superseded(conn: &mut DbConnection, job: &JobRow) -> anyhow::Result<bool> {
    let Some(site_id) = &job.site_id else {
        return Ok(false);
    };
    let newer: i64 = jobs::table
        .filter(jobs::site_id.eq(site_id))
        .filter(
            jobs::created_at.gt(job.created_at).or(jobs::created_at
                .eq(job.created_at)
                .and(jobs::id.gt(&job.id))),
        )
        .count()
        .get_result(conn)?;
    Ok(newer > 0)
}

/// The age of the oldest due job, in milliseconds (0 when none is waiting): the queue's lag.
pub fn oldest_due_age_ms(conn: &mut DbConnection) -> anyhow::Result<i64> {
    let now = now_ms();
    let oldest: Option<i64> = jobs::table
        .filter(jobs::state.eq(QUEUED))
        .filter(jobs::run_at.le(now))
        .select(diesel::dsl::min(jobs::run_at))
        .first(conn)?;
    Ok(oldest.map_or(0, |t| now - t))
}

/// Deletes up to `limit` succeeded jobs that finished before `before` (Unix ms), oldest first;
/// returns how many. Small batches keep each write short. Call inside a write.
pub fn prune_succeeded(conn: &mut DbConnection, before: i64, limit: i64) -> anyhow::Result<usize> {
    let oldest: Vec<String> = jobs::table
        .select(jobs::id)
        .filter(jobs::state.eq(SUCCEEDED))
        .filter(jobs::run_at.lt(before))
        .order((jobs::run_at, jobs::id))
        .limit(limit)
        .load(conn)?;
    Ok(diesel::delete(jobs::table.filter(jobs::id.eq_any(oldest))).execute(conn)?)
}

/// The queue at a glance: how many jobs wait and run, per kind, and how long the oldest due one
/// has waited.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Backlog {
    pub queued: i64,
    pub running: i64,
    /// Seconds the oldest due job has waited (0 when none is due).
    pub oldest_due_secs: f64,
    pub by_kind: Vec<KindBacklog>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KindBacklog {
    pub kind: String,
    pub queued: i64,
    pub running: i64,
}

impl Backlog {
    pub fn read(conn: &mut DbConnection) -> anyhow::Result<Self> {
        let mut by_kind: Vec<KindBacklog> = Vec::new();
        for (kind, state, n) in backlog(conn)? {
            let entry = match by_kind.iter_mut().find(|k| k.kind == kind) {
                Some(entry) => entry,
                None => {
                    by_kind.push(KindBacklog {
                        kind,
                        queued: 0,
                        running: 0,
                    });
                    by_kind.last_mut().expect("just pushed")
                }
            };
            if state == QUEUED {
                entry.queued = n;
            } else {
                entry.running = n;
            }
        }
        by_kind.sort_by(|a, b| a.kind.cmp(&b.kind));
        Ok(Self {
            queued: by_kind.iter().map(|k| k.queued).sum(),
            running: by_kind.iter().map(|k| k.running).sum(),
            oldest_due_secs: oldest_due_age_ms(conn)? as f64 / 1000.0,
            by_kind,
        })
    }
}

/// How many jobs are queued and running, per kind: `(kind, state, count)`.
pub fn backlog(conn: &mut DbConnection) -> anyhow::Result<Vec<(String, String, i64)>> {
    Ok(jobs::table
        .filter(jobs::state.eq_any([QUEUED, RUNNING]))
        .group_by((jobs::kind, jobs::state))
        .select((jobs::kind, jobs::state, diesel::dsl::count_star()))
        .load(conn)?)
}
