//! Every event family: the `Processor` and its `Outcome`, the event types, and the helpers more
//! than one family uses (finding a checkout's site, stale events, provisioning, recording).

use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::sites::{self, SiteRow};
use crate::adapters::db::stripe_events;
use crate::adapters::db::DbConnection;
use crate::configuration::JobSettings;
use crate::domain::job::Provision;
use crate::domain::{SiteId, SiteState};
use crate::services::stripe::event::{CheckoutSession, Event};
use crate::services::tenants::Tenant;

pub const CHECKOUT_COMPLETED: &str = "checkout.session.completed";
pub const CHECKOUT_ASYNC_SUCCEEDED: &str = "checkout.session.async_payment_succeeded";
pub const CHECKOUT_ASYNC_FAILED: &str = "checkout.session.async_payment_failed";
pub const SUBSCRIPTION_UPDATED: &str = "customer.subscription.updated";
pub const SUBSCRIPTION_DELETED: &str = "customer.subscription.deleted";
pub const INVOICE_PAID: &str = "invoice.paid";
pub const INVOICE_PAYMENT_FAILED: &str = "invoice.payment_failed";

/// The event types whose site is the one linked to their subscription.
pub(super) const SUBSCRIPTION_EVENTS: [&str; 4] = [
    SUBSCRIPTION_UPDATED,
    SUBSCRIPTION_DELETED,
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
];

/// The event types berth acts on; every other type is stored, acknowledged and ignored.
pub const HANDLED: [&str; 7] = [
    CHECKOUT_COMPLETED,
    CHECKOUT_ASYNC_SUCCEEDED,
    CHECKOUT_ASYNC_FAILED,
    SUBSCRIPTION_UPDATED,
    SUBSCRIPTION_DELETED,
    INVOICE_PAID,
    INVOICE_PAYMENT_FAILED,
];

/// What processing did with an event: stored as its outcome, detail and site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// One of `stripe_events::{APPLIED, IGNORED, STALE, DEFERRED, REJECTED, INVALID}`.
    pub label: &'static str,
    pub detail: String,
    pub site_id: Option<String>,
}

impl Outcome {
    pub(super) fn new(label: &'static str, detail: impl Into<String>, site: Option<&str>) -> Self {
        Self {
            label,
            detail: detail.into(),
            site_id: site.map(str::to_owned),
        }
    }
    pub(super) fn applied(site: &str, detail: impl Into<String>) -> Self {
        Self::new(stripe_events::APPLIED, detail, Some(site))
    }
    pub(super) fn ignored(detail: impl Into<String>) -> Self {
        Self::new(stripe_events::IGNORED, detail, None)
    }
    pub(super) fn deferred(detail: impl Into<String>) -> Self {
        Self::new(stripe_events::DEFERRED, detail, None)
    }
    pub(super) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(stripe_events::INVALID, detail, None)
    }
}

/// Applies events of one tenant.
pub struct Processor<'a> {
    pub tenant: &'a Tenant,
    pub jobs: &'a JobSettings,
    /// Issues the manage tokens of sites that payments create.
    pub manage_key: &'a crate::domain::manage_token::ManageKey,
    /// Names the emails the payment flow queues (their Message-IDs).
    pub mailer: &'a crate::adapters::mailer::Mailer,
}

impl Processor<'_> {
    /// Moves the site from one of `from` to `provisioning` with a fresh provision job (a new
    /// version: an older job of the site stands down).
    pub(super) fn provision(
        &self,
        conn: &mut DbConnection,
        id: &str,
        from: &[SiteState],
    ) -> anyhow::Result<()> {
        sites::act(conn, id, from, SiteState::Provisioning, |site| {
            Some(
                Provision {
                    site_id: site.id.clone(),
                    version: site.version,
                }
                .to_new_job(self.jobs),
            )
        })?;
        Ok(())
    }
}

/// The site a checkout names: `client_reference_id`, else `metadata.berth_site_id` (values that
/// are not site ids are not berth's and are passed over).
pub(super) fn named_site(session: &CheckoutSession) -> Option<SiteId> {
    session
        .client_reference_id
        .as_deref()
        .and_then(|id| SiteId::parse(id).ok())
        .or_else(|| {
            session
                .metadata
                .get("berth_site_id")
                .and_then(|id| SiteId::parse(id).ok())
        })
}

/// A Unix-milliseconds time for people: `Sat, 21 Nov 2026 15:00:00 GMT`.
pub(super) fn http_date(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    httpdate::fmt_http_date(at)
}

/// `Some(stale outcome)` when a newer event was applied to the site already.
pub(super) fn stale(site: &SiteRow, event: &Event) -> Option<Outcome> {
    let newest = site.stripe_event_at?;
    (event.created_at_ms() < newest).then(|| {
        Outcome::new(
            stripe_events::STALE,
            format!(
                "older than an event already applied to the site (of {}); nothing changed",
                http_date(newest)
            ),
            Some(&site.id),
        )
    })
}

pub(super) fn record(
    conn: &mut DbConnection,
    row_id: &str,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    stripe_events::finish(
        conn,
        row_id,
        outcome.label,
        &outcome.detail,
        outcome.site_id.as_deref(),
    )
}
