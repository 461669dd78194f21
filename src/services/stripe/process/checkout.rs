//! `checkout.session.completed`, `checkout.session.async_payment_succeeded` and
//! `checkout.session.async_payment_failed`: link the customer and subscription to the site, and
//! start provisioning once paid (a checkout for no known site is handed to `payment_first`).

use super::payment_first::PaymentFirst;
use super::shared::{
    named_site, stale, Outcome, Processor, CHECKOUT_ASYNC_FAILED, CHECKOUT_ASYNC_SUCCEEDED,
    CHECKOUT_COMPLETED,
};
use crate::adapters::db::sites::{self, PaymentChanges};
use crate::adapters::db::stripe_events;
use crate::adapters::db::DbConnection;
use crate::domain::SiteState;
use crate::services::stripe::event::{CheckoutSession, Event};

impl Processor<'_> {
    /// `checkout.session.*`: find (or, paying first, create) the site, link the customer and
    /// subscription, and start provisioning once paid.
    pub(super) fn checkout(
        &self,
        conn: &mut DbConnection,
        event: &Event,
        payment_first: Option<PaymentFirst>,
    ) -> anyhow::Result<Outcome> {
        let session: CheckoutSession = match event.object() {
            Ok(session) => session,
            Err(why) => return Ok(Outcome::invalid(why)),
        };
        let tenant = self.tenant.name.as_str();
        let site_id = match named_site(&session) {
            Some(id) => Some(id.to_string()),
            None => stripe_events::site_of_object(conn, tenant, &session.id)?,
        };
        let Some(site_id) = site_id else {
            return match payment_first {
                Some(signup) => self.create_paid_site(conn, event, &session, signup),
                None => Ok(Outcome::ignored(
                    "not a berth checkout: no client_reference_id, metadata.berth_site_id or metadata.site_name",
                )),
            };
        };
        sites::lock(conn, &site_id)?;
        let Some(site) = sites::get(conn, &site_id)?.filter(|s| s.tenant == tenant) else {
            return Ok(Outcome::deferred(format!(
                "tenant {tenant} has no site {site_id}; replay the event once it exists"
            )));
        };
        if let Some(stale) = stale(&site, event) {
            return Ok(stale);
        }
        if matches!(site.state, SiteState::Deprovisioning | SiteState::Deleted) {
            return Ok(Outcome::new(
                stripe_events::IGNORED,
                format!(
                    "a checkout for a site that is {}: nothing changed (refund it?)",
                    site.state
                ),
                Some(&site.id),
            ));
        }

        let mut notes = Vec::new();
        let mut changes = PaymentChanges {
            stripe_event_at: Some(event.created_at_ms()),
            ..Default::default()
        };
        changes.stripe_customer_id = session.customer.as_ref().map(|c| c.id().to_owned());
        if let Some(subscription) = &session.subscription {
            let subscription = subscription.id();
            if let Some(old) = site
                .stripe_subscription_id
                .as_deref()
                .filter(|old| *old != subscription)
            {
                notes.push(format!("replaces subscription {old}"));
            }
            changes.stripe_subscription_id = Some(subscription.to_owned());
        }
        if let Some((key, name)) = self.checkout_plan(&session) {
            if site.plan.as_deref() != Some(key.as_str()) {
                notes.push(format!("plan {name}"));
                changes.plan = Some(key);
            }
        }
        let paid = event.kind == CHECKOUT_ASYNC_SUCCEEDED
            || (event.kind == CHECKOUT_COMPLETED && session.is_paid());
        let waiting = site.state == SiteState::PendingPayment;
        let failed = event.kind == CHECKOUT_ASYNC_FAILED;
        if failed && waiting {
            changes.last_error = Some(Some("the payment did not go through".into()));
        }
        if paid && waiting {
            changes.last_error = Some(None);
        }
        if paid && site.paid_at.is_none() {
            changes.paid_at = Some(event.created_at_ms());
        }
        sites::record_payment(conn, &site.id, changes)?;

        let state = site.state;
        notes.insert(
            0,
            match (paid, failed) {
                (true, _) if waiting => {
                    self.provision(conn, &site.id, &[SiteState::PendingPayment])?;
                    "paid: provisioning".to_owned()
                }
                (true, _) => format!("payment recorded; the site is already {state}"),
                (_, true) if waiting => {
                    "the payment did not go through; the site keeps waiting for payment".to_owned()
                }
                (_, true) => format!(
                    "the payment did not go through; the site is {state}, so nothing changes"
                ),
                _ => format!(
                    "checkout complete, payment {}: waiting for it to clear",
                    session.payment_status
                ),
            },
        );
        if let Some(subscription) = &session.subscription {
            notes.extend(self.apply_deferred(conn, subscription.id())?);
        }
        Ok(Outcome::applied(&site.id, notes.join("; ")))
    }

    /// The plan a checkout asks for: `metadata.plan` (a plan name or key), else the expanded line
    /// item's price. Returns the plan's key and name.
    fn checkout_plan(&self, session: &CheckoutSession) -> Option<(String, String)> {
        let wanted = session
            .metadata
            .get("plan")
            .map(String::as_str)
            .or_else(|| session.price_id())?;
        self.tenant
            .plan(wanted)
            .map(|(key, plan)| (key.clone(), plan.name.clone()))
    }
}
