//! What a Stripe event does to a site (SPEC §2.2).
//!
//! Invariants:
//! - Everything an event does happens in one write transaction together with the record of its
//!   outcome, and an event is only looked at while its outcome is `received` or `deferred`: it
//!   takes effect once, whatever crashes or retries.
//! - Per tenant, event transactions are serialised (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
//!   transaction-scoped advisory lock per tenant), so events of one site never interleave.
//! - A site remembers Stripe's `created` of the newest event applied to it. An older event is
//!   `stale` and changes nothing, so a stale or out-of-order event never moves a site backwards.
//!   `customer.subscription.deleted` is final and applies whatever its age; a failed invoice only
//!   records the failure, so it never hides the newer subscription status that follows it.
//! - An event whose site is not known yet (its checkout has not arrived, or the customer is
//!   unknown) is kept as `deferred`. The checkout that links its subscription to a site applies
//!   the deferred events, oldest first, in the same transaction; an operator can also replay one.
//! - Sites are found by `client_reference_id`, then `metadata.berth_site_id` (checkouts), then
//!   the subscription they were linked to. Only a checkout links a subscription to a site.
//!
//! One file per event family: `checkout` (`checkout.session.*` for a known site),
//! `payment_first` (a checkout that creates its site), `subscription` (`customer.subscription.*`,
//! `invoice.*`, and the deferred ones), with `lock` (the per-tenant lock) and `shared` (the
//! `Processor`, its `Outcome`, the event types and the helpers of more than one family). This
//! file dispatches an event to its family.

mod checkout;
mod lock;
mod payment_first;
mod shared;
mod subscription;

pub use payment_first::{prepare, PaymentFirst};
pub use shared::{
    Outcome, Processor, CHECKOUT_ASYNC_FAILED, CHECKOUT_ASYNC_SUCCEEDED, CHECKOUT_COMPLETED,
    HANDLED, INVOICE_PAID, INVOICE_PAYMENT_FAILED, SUBSCRIPTION_DELETED, SUBSCRIPTION_UPDATED,
};

use crate::adapters::db::{stripe_events, DbConnection};
use crate::services::stripe::event::Event;
use lock::lock_tenant;
use shared::{record, SUBSCRIPTION_EVENTS};

impl Processor<'_> {
    /// Applies `event` (stored as `row_id`) inside the caller's write transaction and records
    /// its outcome. `None` when the event was no longer pending (processed meanwhile).
    pub fn apply(
        &self,
        conn: &mut DbConnection,
        row_id: &str,
        event: &Event,
        payment_first: Option<PaymentFirst>,
    ) -> anyhow::Result<Option<Outcome>> {
        lock_tenant(conn, self.tenant.name.as_str())?;
        if stripe_events::is_pending(conn, row_id)? != Some(true) {
            return Ok(None);
        }
        let outcome = match event.kind.as_str() {
            CHECKOUT_COMPLETED | CHECKOUT_ASYNC_SUCCEEDED | CHECKOUT_ASYNC_FAILED => {
                self.checkout(conn, event, payment_first)?
            }
            kind if SUBSCRIPTION_EVENTS.contains(&kind) => self.subscription_event(conn, event)?,
            other => Outcome::ignored(format!("berth does not act on {other} events")),
        };
        record(conn, row_id, &outcome)?;
        Ok(Some(outcome))
    }
}
