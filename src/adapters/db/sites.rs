//! Site rows and their state changes.

use diesel::prelude::*;
use serde::Serialize;

use super::cached::CacheDsl;
use super::schema::sites;
use super::{jobs::NewJob, now_ms, DbConnection};
use crate::domain::{Author, SiteState};

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
    pub plan: Option<String>,
    #[schema(value_type = String)]
    pub state: SiteState,
    pub step: Option<String>,
    pub version: i64,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Stripe's `created` (ms) of the newest event applied to the site; older events are stale.
    pub stripe_event_at: Option<i64>,
    /// Since when (ms) the subscription is past due; suspension follows a grace period later.
    pub payment_overdue_since: Option<i64>,
    /// `payment` when the site is suspended for an unpaid subscription (paying lifts it); `None`
    /// for an operator's suspension, which payments never lift.
    pub suspended_for: Option<String>,
    /// The version of its content the site serves (`None`: not served yet, or no HTML).
    pub live_version: Option<i64>,
    /// The version the next deploy applies: `live_version`, or a newer one on its way.
    pub target_version: Option<i64>,
    /// Hex sha256 of the site's manage token.
    #[serde(skip)]
    pub manage_token_hash: Option<String>,
    /// What the manage token is derived from (see [`crate::domain::manage_token`]).
    #[serde(skip)]
    pub manage_token_nonce: Option<String>,
    /// When a checkout for the site was paid (ms).
    pub paid_at: Option<i64>,
    /// The hex sha256 of the workload spec the site runs (in `workload_specs`).
    pub applied_spec: Option<String>,
    /// The spec its next job applies: `applied_spec`, or a rollout's on its way; `None`: the
    /// configuration's (a new site, or a changed plan).
    pub target_spec: Option<String>,
}

/// [`SiteRow::suspended_for`] of a site suspended because its subscription went unpaid.
pub const SUSPENDED_FOR_PAYMENT: &str = "payment";

#[derive(Debug, Insertable)]
#[diesel(table_name = sites)]
pub struct NewSite {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub hostname: String,
    pub email: String,
    pub plan: Option<String>,
    pub state: String,
    pub version: i64,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub stripe_event_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// `Some(1)` when the site has HTML: its first version, stored beside the row.
    pub target_version: Option<i64>,
    pub manage_token_hash: Option<String>,
    pub manage_token_nonce: Option<String>,
    pub paid_at: Option<i64>,
    /// The first version's HTML and who made it (stored in `site_versions`).
    #[diesel(skip_insertion)]
    pub html: Option<(String, Author)>,
}

/// Stores a new site and the job that starts its life; call inside a write, which then stores
/// both or neither. A live site with the same hostname makes it fail with a unique violation
/// (see [`super::is_unique_violation`]).
pub fn create(conn: &mut DbConnection, site: &NewSite, job: Option<&NewJob>) -> anyhow::Result<()> {
    insert(conn, site)?;
    if let Some(job) = job {
        super::jobs::insert(conn, job)?;
    }
    Ok(())
}

/// Inserts a site row and its first version; call inside a write transaction. A live site with
/// the same hostname makes it fail with a unique violation (see [`hostname_taken`] to check
/// first).
pub fn insert(conn: &mut DbConnection, site: &NewSite) -> anyhow::Result<()> {
    diesel::insert_into(sites::table)
        .values(site)
        .execute(conn)?;
    if let (Some(number), Some((html, by))) = (site.target_version, &site.html) {
        super::versions::insert(conn, &site.id, number, html, *by)?;
    }
    Ok(())
}

/// Whether a live site (one that holds its name) has this hostname.
pub fn hostname_taken(conn: &mut DbConnection, hostname: &str) -> anyhow::Result<bool> {
    let count: i64 = sites::table
        .filter(sites::hostname.eq(hostname))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(HOLDS_NAME))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// The sites that hold their name, written as the partial unique index `sites_hostname_live`
/// states it: the databases use that index only for a query whose condition is the index's own,
/// in literals. (With the states as bound parameters, every signup read the whole table.)
const HOLDS_NAME: &str = "state NOT IN ('deleted', 'rejected')";

/// Locks the site's row until the transaction ends, so that a read-check-write on it cannot
/// interleave with another one (PostgreSQL: `FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` already
/// serialises write transactions). Call inside a write transaction, before reading the row.
pub fn lock(conn: &mut DbConnection, id: &str) -> anyhow::Result<()> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("SELECT id FROM sites WHERE id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(id)
            .execute(pg)?;
    }
    Ok(())
}

/// Replaces the site's manage token (its nonce and hash): the old one stops working.
pub fn set_manage_token(
    conn: &mut DbConnection,
    id: &str,
    nonce: &str,
    hash: &str,
) -> anyhow::Result<()> {
    diesel::update(sites::table.find(id))
        .set((
            sites::manage_token_hash.eq(hash),
            sites::manage_token_nonce.eq(nonce),
            sites::updated_at.eq(now_ms()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The newest site of `tenant` paid for by this Stripe subscription.
pub fn find_by_subscription(
    conn: &mut DbConnection,
    tenant: &str,
    subscription_id: &str,
) -> anyhow::Result<Option<SiteRow>> {
    Ok(sites::table
        .filter(sites::tenant.eq(tenant))
        .filter(sites::stripe_subscription_id.eq(subscription_id))
        .select(SiteRow::as_select())
        .order((sites::created_at.desc(), sites::id.desc()))
        .first(conn)
        .optional()?)
}

/// Payment facts a Stripe event records on a site. `None` leaves a column as it is;
/// `Some(None)` clears a nullable one.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = sites)]
pub struct PaymentChanges {
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub plan: Option<String>,
    pub stripe_event_at: Option<i64>,
    pub payment_overdue_since: Option<Option<i64>>,
    pub suspended_for: Option<Option<String>>,
    pub last_error: Option<Option<String>>,
    pub paid_at: Option<i64>,
    /// Set to `Some(None)` with a new plan: the site's next job applies the spec the
    /// configuration gives that plan.
    pub target_spec: Option<Option<String>>,
    pub updated_at: i64,
}

/// Applies `changes` to the site (no version bump: running jobs carry on).
pub fn record_payment(
    conn: &mut DbConnection,
    id: &str,
    mut changes: PaymentChanges,
) -> anyhow::Result<()> {
    changes.updated_at = now_ms();
    if changes.plan.is_some() {
        changes.target_spec = Some(None);
    }
    diesel::update(sites::table.find(id))
        .set(&changes)
        .cached()
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> anyhow::Result<Option<SiteRow>> {
    Ok(sites::table
        .find(id)
        .select(SiteRow::as_select())
        .first(conn)
        .optional()?)
}

/// Which sites [`list`] returns.
#[derive(Debug, Default)]
pub struct SiteFilter {
    pub tenant: Option<String>,
    pub state: Option<String>,
    /// Deleted sites are left out unless `state` asks for them or this is set.
    pub include_deleted: bool,
    /// A lowercased piece of the hostname, name or email.
    pub search: Option<String>,
    /// Only sites listed after this one (newest first): the next page.
    pub after: Option<(i64, String)>,
}

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// Sites newest first (by creation, then id), as `filter` asks, at most `limit`.
pub fn list(
    conn: &mut DbConnection,
    filter: &SiteFilter,
    limit: i64,
) -> anyhow::Result<Vec<SiteRow>> {
    let mut query = sites::table.select(SiteRow::as_select()).into_boxed();
    if let Some(tenant) = &filter.tenant {
        query = query.filter(sites::tenant.eq(tenant.clone()));
    }
    match &filter.state {
        Some(state) => query = query.filter(sites::state.eq(state.clone())),
        None if !filter.include_deleted => {
            query = query.filter(sites::state.ne(SiteState::Deleted.as_str()))
        }
        None => {}
    }
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", escape_like(search));
        query = query.filter(
            sites::hostname
                .like(pattern.clone())
                .escape('\\')
                .or(sites::name.like(pattern.clone()).escape('\\'))
                .or(lower(sites::email).like(pattern).escape('\\')),
        );
    }
    if let Some((created_at, id)) = &filter.after {
        query = query.filter(
            sites::created_at.lt(*created_at).or(sites::created_at
                .eq(*created_at)
                .and(sites::id.lt(id.clone()))),
        );
    }
    Ok(query
        .order((sites::created_at.desc(), sites::id.desc()))
        .limit(limit)
        .load(conn)?)
}

/// `text` with LIKE's wildcards (and the escape character) escaped by `\`.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The sites of `tenant` in `state`, oldest first.
pub fn with_state(
    conn: &mut DbConnection,
    tenant: &str,
    state: SiteState,
) -> anyhow::Result<Vec<SiteRow>> {
    Ok(sites::table
        .filter(sites::tenant.eq(tenant))
        .filter(sites::state.eq(state.as_str()))
        .order((sites::created_at, sites::id))
        .select(SiteRow::as_select())
        .load(conn)?)
}

/// Counts of sites per state, for metrics and the dashboard.
pub fn count_by_state(conn: &mut DbConnection) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sites::table
        .group_by(sites::state)
        .select((sites::state, diesel::dsl::count_star()))
        .load(conn)?)
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
/// `job_for` builds for the updated site; call inside a write. Leaving a state clears
/// `suspended_for`: whoever suspends a site says why, afterwards.
pub fn act(
    conn: &mut DbConnection,
    id: &str,
    from: &[SiteState],
    to: SiteState,
    job_for: impl FnOnce(&SiteRow) -> Option<NewJob>,
) -> anyhow::Result<Transition> {
    lock(conn, id)?;
    let Some(mut site) = get(conn, id)? else {
        return Ok(Transition::NotFound);
    };
    if !from.contains(&site.state) {
        return Ok(Transition::WrongState(site.state));
    }
    let now = now_ms();
    site.state = to;
    site.version += 1;
    site.updated_at = now;
    site.step = None;
    site.suspended_for = None;
    diesel::update(sites::table.find(id))
        .set((
            sites::state.eq(to.as_str()),
            sites::version.eq(site.version),
            sites::updated_at.eq(now),
            sites::step.eq(None::<String>),
            sites::suspended_for.eq(None::<String>),
        ))
        .cached()
        .execute(conn)?;
    if let Some(job) = job_for(&site) {
        super::jobs::insert(conn, &job)?;
    }
    Ok(Transition::Done(Box::new(site)))
}

/// Why a site cannot take another name.
#[derive(Debug)]
pub enum Rename {
    Done(Box<SiteRow>),
    NotFound,
    /// Only a `rejected` site that a checkout paid (or is paying) for takes another name.
    NotRenamable(SiteState),
}

/// Gives a rejected, paid-for site the name `name` (at `hostname`), with `html` as its first
/// version when a policy rewrote it, and starts it: `provisioning` with the job `provision`
/// builds when the checkout was paid, else `pending_payment` (the payment's event provisions
/// it). The version bump makes older jobs stand down. A live site with the hostname makes it
/// fail with a unique violation. Call inside a write.
pub fn rename(
    conn: &mut DbConnection,
    id: &str,
    name: &str,
    hostname: &str,
    html: Option<&str>,
    provision: impl FnOnce(&SiteRow) -> NewJob,
) -> anyhow::Result<Rename> {
    lock(conn, id)?;
    let Some(mut site) = get(conn, id)? else {
        return Ok(Rename::NotFound);
    };
    let has_payment = site.stripe_customer_id.is_some() || site.stripe_subscription_id.is_some();
    if site.state != SiteState::Rejected || !has_payment {
        return Ok(Rename::NotRenamable(site.state));
    }
    site.state = if site.paid_at.is_some() {
        SiteState::Provisioning
    } else {
        SiteState::PendingPayment
    };
    site.name = name.to_owned();
    site.hostname = hostname.to_owned();
    site.version += 1;
    site.updated_at = now_ms();
    site.last_error = None;
    diesel::update(sites::table.find(id))
        .set((
            sites::name.eq(name),
            sites::hostname.eq(hostname),
            sites::state.eq(site.state.as_str()),
            sites::version.eq(site.version),
            sites::last_error.eq(None::<String>),
            sites::step.eq(None::<String>),
            sites::updated_at.eq(site.updated_at),
        ))
        .execute(conn)?;
    if let (Some(html), Some(number)) = (html, site.target_version) {
        super::versions::replace_pending(conn, id, number, html)?;
    }
    if site.state == SiteState::Provisioning {
        super::jobs::insert(conn, &provision(&site))?;
    }
    Ok(Rename::Done(Box::new(site)))
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
    .cached()
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
            .cached()
            .execute(conn)?,
        (None, Some(error)) => diesel::update(target)
            .set((sites::last_error.eq(error), sites::updated_at.eq(now)))
            .cached()
            .execute(conn)?,
        (None, None) => 0,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::Text;
    use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
    use diesel_migrations::MigrationHarness;

    use super::HOLDS_NAME;
    use crate::domain::SiteState;

    #[test]
    fn the_name_holding_condition_names_every_state_that_frees_a_name() {
        let mut freeing: Vec<String> = SiteState::ALL
            .into_iter()
            .filter(|s| s.frees_name())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        freeing.sort();
        assert_eq!(HOLDS_NAME, format!("state NOT IN ({})", freeing.join(", ")));
    }

    #[derive(QueryableByName)]
    struct PlanStep {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    #[test]
    fn checking_a_name_searches_the_live_name_index_instead_of_scanning_sites() {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory database");
        conn.run_pending_migrations(crate::adapters::db::SQLITE_MIGRATIONS)
            .expect("migrations apply");
        conn.batch_execute("ANALYZE").expect("analyze");
        let plan: Vec<PlanStep> = diesel::sql_query(format!(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM sites WHERE hostname = 'shop.example.com' \
             AND {HOLDS_NAME}"
        ))
        .load(&mut conn)
        .expect("query plan");
        let plan: Vec<&str> = plan.iter().map(|step| step.detail.as_str()).collect();
        assert_eq!(
            plan,
            ["SEARCH sites USING INDEX sites_hostname_live (hostname=?)"]
        );
    }
}
