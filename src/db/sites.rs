//! Site rows and their state changes.

use diesel::prelude::*;
use serde::Serialize;

use super::schema::sites;
use super::{jobs::NewJob, now_ms, write_tx, DbConnection};
use crate::domain::SiteState;

/// A stored site. `email` is personal data: it never reaches logs or the public status page.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = sites)]
pub struct SiteRow {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub hostname: String,
    #[serde(skip)]
    pub email: String,
    #[serde(skip)]
    pub html: Option<String>,
    pub plan: Option<String>,
    pub state: String,
    pub step: Option<String>,
    pub version: i64,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SiteRow {
    pub fn state(&self) -> SiteState {
        self.state.parse().unwrap_or(SiteState::Failed)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sites)]
pub struct NewSite {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub hostname: String,
    pub email: String,
    pub html: Option<String>,
    pub plan: Option<String>,
    pub state: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Stores a new site and the job that starts its life, atomically. `Ok(false)` means the
/// hostname is taken by a live site and nothing was written.
pub fn create(
    conn: &mut DbConnection,
    site: &NewSite,
    job: Option<&NewJob>,
) -> anyhow::Result<bool> {
    let result = write_tx(conn, |conn| {
        diesel::insert_into(sites::table)
            .values(site)
            .execute(conn)?;
        if let Some(job) = job {
            super::jobs::insert(conn, job)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn get(conn: &mut DbConnection, id: &str) -> anyhow::Result<Option<SiteRow>> {
    Ok(sites::table
        .find(id)
        .select(SiteRow::as_select())
        .first(conn)
        .optional()?)
}

/// Sites newest first, optionally of one tenant and/or state.
pub fn list(
    conn: &mut DbConnection,
    tenant: Option<&str>,
    state: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<SiteRow>> {
    let mut query = sites::table.select(SiteRow::as_select()).into_boxed();
    if let Some(tenant) = tenant {
        query = query.filter(sites::tenant.eq(tenant.to_owned()));
    }
    if let Some(state) = state {
        query = query.filter(sites::state.eq(state.to_owned()));
    }
    Ok(query
        .order((sites::created_at.desc(), sites::id.desc()))
        .limit(limit)
        .load(conn)?)
}

/// Counts of sites per state, for metrics and the dashboard.
pub fn count_by_state(conn: &mut DbConnection) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sites::table
        .group_by(sites::state)
        .select((sites::state, diesel::dsl::count_star()))
        .load(conn)?)
}

/// The HTML of the ready site at `hostname`, if there is one.
pub fn ready_html(conn: &mut DbConnection, hostname: &str) -> anyhow::Result<Option<String>> {
    Ok(sites::table
        .filter(sites::hostname.eq(hostname))
        .filter(sites::state.eq(SiteState::Ready.as_str()))
        .select(sites::html)
        .first::<Option<String>>(conn)
        .optional()?
        .map(Option::unwrap_or_default))
}

/// The result of asking for a state change.
#[derive(Debug)]
pub enum Transition {
    Done(Box<SiteRow>),
    NotFound,
    /// The site is in a state the change does not start from.
    WrongState(SiteState),
}

/// An outside action (operator or payment): moves the site from one of `from` to `to`, bumps its
/// version so that jobs enqueued for earlier versions stand down, and enqueues the job that
/// `job_for` builds for the updated site, all in one transaction.
pub fn act(
    conn: &mut DbConnection,
    id: &str,
    from: &[SiteState],
    to: SiteState,
    job_for: impl FnOnce(&SiteRow) -> Option<NewJob>,
) -> anyhow::Result<Transition> {
    write_tx(conn, |conn| {
        let Some(mut site) = get(conn, id)? else {
            return Ok(Transition::NotFound);
        };
        if !from.contains(&site.state()) {
            return Ok(Transition::WrongState(site.state()));
        }
        let now = now_ms();
        site.state = to.as_str().to_owned();
        site.version += 1;
        site.updated_at = now;
        site.step = None;
        diesel::update(sites::table.find(id))
            .set((
                sites::state.eq(&site.state),
                sites::version.eq(site.version),
                sites::updated_at.eq(now),
                sites::step.eq(None::<String>),
            ))
            .execute(conn)?;
        if let Some(job) = job_for(&site) {
            super::jobs::insert(conn, &job)?;
        }
        Ok(Transition::Done(Box::new(site)))
    })
}

/// A job's own progress: moves the site from `from` to `to` only while it is still at
/// `version` and in `from`. Returns whether it moved.
pub fn advance(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    from: SiteState,
    to: SiteState,
) -> anyhow::Result<bool> {
    let changed = diesel::update(
        sites::table
            .find(id)
            .filter(sites::version.eq(version))
            .filter(sites::state.eq(from.as_str())),
    )
    .set((
        sites::state.eq(to.as_str()),
        sites::updated_at.eq(now_ms()),
        sites::step.eq(None::<String>),
        sites::last_error.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Records what a job is doing (`step`) or what went wrong (`last_error`) on the site, while it
/// is still at `version`.
pub fn note(
    conn: &mut DbConnection,
    id: &str,
    version: i64,
    step: Option<&str>,
    last_error: Option<&str>,
) -> anyhow::Result<()> {
    let target = sites::table.find(id).filter(sites::version.eq(version));
    let now = now_ms();
    match (step, last_error) {
        (Some(step), _) => diesel::update(target)
            .set((sites::step.eq(step), sites::updated_at.eq(now)))
            .execute(conn)?,
        (None, Some(error)) => diesel::update(target)
            .set((sites::last_error.eq(error), sites::updated_at.eq(now)))
            .execute(conn)?,
        (None, None) => 0,
    };
    Ok(())
}
