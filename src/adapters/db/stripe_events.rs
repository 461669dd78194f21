//! Stripe event rows: stored raw when a delivery is verified, then processed by a job.
//!
//! `(tenant, stripe_event_id)` is unique, so a redelivery stores nothing. An event's `outcome`
//! starts as `received`; processing sets it once (`applied`, `ignored`, `stale`, `rejected`,
//! `invalid`) or parks it as `deferred` until its site is known. Only `received` and `deferred`
//! events are processed; a replay puts an event back to `received`.

use diesel::prelude::*;
use serde::Serialize;

use super::cached::CacheDsl;
use super::schema::stripe_events;
use super::{now_ms, DbConnection};

pub const RECEIVED: &str = "received";
pub const APPLIED: &str = "applied";
pub const IGNORED: &str = "ignored";
pub const STALE: &str = "stale";
pub const DEFERRED: &str = "deferred";
pub const REJECTED: &str = "rejected";
pub const INVALID: &str = "invalid";
pub const OUTCOMES: [&str; 7] = [
    RECEIVED, APPLIED, IGNORED, STALE, DEFERRED, REJECTED, INVALID,
];

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = stripe_events)]
pub struct NewStripeEvent {
    pub id: String,
    pub tenant: String,
    pub stripe_event_id: String,
    pub event_type: String,
    pub created_at: i64,
    pub livemode: bool,
    pub api_version: Option<String>,
    pub object_id: Option<String>,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub payload: String,
    pub outcome: String,
    pub received_at: i64,
}

/// A stored event. `payload` (which holds the customer's email) is left out of listings.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = stripe_events)]
pub struct StripeEventRow {
    pub id: String,
    pub tenant: String,
    pub stripe_event_id: String,
    pub event_type: String,
    /// Stripe's `created`, in Unix milliseconds.
    pub created_at: i64,
    pub livemode: bool,
    pub api_version: Option<String>,
    pub object_id: Option<String>,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    #[serde(skip)]
    pub payload: String,
    /// `received`, `applied`, `ignored`, `stale`, `deferred`, `rejected` or `invalid`.
    pub outcome: String,
    /// What processing did, or why the event waits.
    pub detail: Option<String>,
    pub site_id: Option<String>,
    pub received_at: i64,
    pub processed_at: Option<i64>,
}

/// Whether an event with this outcome still has to be processed.
fn pending(outcome: &str) -> bool {
    outcome == RECEIVED || outcome == DEFERRED
}

impl StripeEventRow {
    /// Whether processing still has to look at the event.
    pub fn is_pending(&self) -> bool {
        pending(&self.outcome)
    }
}

/// Inserts the event unless this tenant already has one with its Stripe id. Returns whether it
/// was inserted. Safe under concurrent deliveries on every backend (`ON CONFLICT DO NOTHING`).
pub fn insert_new(conn: &mut DbConnection, event: &NewStripeEvent) -> anyhow::Result<bool> {
    let query = diesel::insert_into(stripe_events::table)
        .values(event)
        .on_conflict((stripe_events::tenant, stripe_events::stripe_event_id))
        .do_nothing();
    let inserted = match conn {
        DbConnection::Postgresql(pg) => query.execute(pg)?,
        DbConnection::Sqlite(lite) => query.execute(lite)?,
    };
    Ok(inserted == 1)
}

/// Inserts the events their tenant does not have yet; returns berth's ids of those inserted. No
/// two of `events` may share a tenant and Stripe id. PostgreSQL gets one multi-row statement
/// (one round trip); SQLite, in process, one cheap statement per row.
pub fn insert_new_many(
    conn: &mut DbConnection,
    events: &[&NewStripeEvent],
) -> anyhow::Result<Vec<String>> {
    match conn {
        DbConnection::Postgresql(pg) if !events.is_empty() => {
            Ok(diesel::insert_into(stripe_events::table)
                .values(events.to_vec())
                .on_conflict((stripe_events::tenant, stripe_events::stripe_event_id))
                .do_nothing()
                .returning(stripe_events::id)
                .get_results(pg)?)
        }
        _ => {
            let mut inserted = Vec::new();
            for event in events {
                if insert_new(conn, event)? {
                    inserted.push(event.id.clone());
                }
            }
            Ok(inserted)
        }
    }
}

pub fn get(conn: &mut DbConnection, id: &str) -> anyhow::Result<Option<StripeEventRow>> {
    Ok(stripe_events::table
        .find(id)
        .select(StripeEventRow::as_select())
        .first(conn)
        .optional()?)
}

/// Whether the stored event `id` still has to be processed (`None`: there is no such event).
/// Reads one column, not the payload: the write path checks this for every event it applies.
pub fn is_pending(conn: &mut DbConnection, id: &str) -> anyhow::Result<Option<bool>> {
    let outcome: Option<String> = stripe_events::table
        .find(id)
        .select(stripe_events::outcome)
        .first(conn)
        .optional()?;
    Ok(outcome.as_deref().map(pending))
}

/// Events newest first (by arrival), filtered by tenant, outcome and/or site.
pub fn list(
    conn: &mut DbConnection,
    tenant: Option<&str>,
    outcome: Option<&str>,
    site_id: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<StripeEventRow>> {
    let mut query = stripe_events::table
        .select(StripeEventRow::as_select())
        .into_boxed();
    if let Some(tenant) = tenant {
        query = query.filter(stripe_events::tenant.eq(tenant.to_owned()));
    }
    if let Some(outcome) = outcome {
        query = query.filter(stripe_events::outcome.eq(outcome.to_owned()));
    }
    if let Some(site_id) = site_id {
        query = query.filter(stripe_events::site_id.eq(site_id.to_owned()));
    }
    Ok(query
        .order((stripe_events::received_at.desc(), stripe_events::id.desc()))
        .limit(limit)
        .load(conn)?)
}

/// Records what processing did. Call inside the transaction that did it.
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    outcome: &str,
    detail: &str,
    site_id: Option<&str>,
) -> anyhow::Result<()> {
    let target = stripe_events::table.find(id);
    let now = now_ms();
    match site_id {
        Some(site_id) => diesel::update(target)
            .set((
                stripe_events::outcome.eq(outcome),
                stripe_events::detail.eq(detail),
                stripe_events::site_id.eq(site_id),
                stripe_events::processed_at.eq(now),
            ))
            .cached()
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                stripe_events::outcome.eq(outcome),
                stripe_events::detail.eq(detail),
                stripe_events::processed_at.eq(now),
            ))
            .cached()
            .execute(conn)?,
    };
    Ok(())
}

/// Sets the event's detail without deciding its outcome (processing failed for good).
pub fn note(conn: &mut DbConnection, id: &str, detail: &str) -> anyhow::Result<()> {
    diesel::update(stripe_events::table.find(id))
        .set(stripe_events::detail.eq(detail))
        .cached()
        .execute(conn)?;
    Ok(())
}

/// The deferred events of a subscription, oldest (by Stripe's `created`) first.
pub fn deferred_for_subscription(
    conn: &mut DbConnection,
    tenant: &str,
    subscription_id: &str,
) -> anyhow::Result<Vec<StripeEventRow>> {
    Ok(stripe_events::table
        .filter(stripe_events::tenant.eq(tenant))
        .filter(stripe_events::subscription_id.eq(subscription_id))
        .filter(stripe_events::outcome.eq(DEFERRED))
        .select(StripeEventRow::as_select())
        .order((
            stripe_events::created_at.asc(),
            stripe_events::received_at.asc(),
        ))
        .load(conn)?)
}

/// The site an earlier event about the same Stripe object (a checkout session) was applied to.
pub fn site_of_object(
    conn: &mut DbConnection,
    tenant: &str,
    object_id: &str,
) -> anyhow::Result<Option<String>> {
    Ok(stripe_events::table
        .filter(stripe_events::tenant.eq(tenant))
        .filter(stripe_events::object_id.eq(object_id))
        .filter(stripe_events::site_id.is_not_null())
        .select(stripe_events::site_id)
        .order(stripe_events::received_at.asc())
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// Puts the event back to `received` so that processing looks at it again (an operator's
/// replay). The site it was applied to is kept: a replayed checkout finds the site it created.
pub fn reset(conn: &mut DbConnection, id: &str) -> anyhow::Result<bool> {
    let n = diesel::update(stripe_events::table.find(id))
        .set((
            stripe_events::outcome.eq(RECEIVED),
            stripe_events::detail.eq(None::<String>),
            stripe_events::processed_at.eq(None::<i64>),
        ))
        .cached()
        .execute(conn)?;
    Ok(n == 1)
}

/// Deferred events per tenant, for the metrics gauge.
pub fn count_deferred(conn: &mut DbConnection) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(stripe_events::table
        .filter(stripe_events::outcome.eq(DEFERRED))
        .group_by(stripe_events::tenant)
        .select((stripe_events::tenant, diesel::dsl::count_star()))
        .load(conn)?)
}

/// The outcomes of events that are done with: pruned after the retention period. `rejected` and
/// `deferred` events wait for an operator, and `received` ones for their job.
pub const PROCESSED: [&str; 4] = [APPLIED, IGNORED, STALE, INVALID];

/// Deletes up to `limit` processed events that were processed before `before` (Unix ms), oldest
/// first; returns how many. A redelivery of a pruned event would be stored again and found
/// stale by its site, so pruning never makes an event apply twice. Call inside a write.
pub fn prune_processed(conn: &mut DbConnection, before: i64, limit: i64) -> anyhow::Result<usize> {
    let oldest: Vec<String> = stripe_events::table
        .select(stripe_events::id)
        .filter(stripe_events::outcome.eq_any(PROCESSED))
        .filter(stripe_events::processed_at.lt(before))
        .limit(limit)
        .load(conn)?;
    Ok(
        diesel::delete(stripe_events::table.filter(stripe_events::id.eq_any(oldest)))
            .execute(conn)?,
    )
}
