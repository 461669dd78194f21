//! `customer.subscription.updated`, `customer.subscription.deleted`, `invoice.paid` and
//! `invoice.payment_failed` (the site is the one linked to the subscription), the overdue
//! suspension they schedule, and the deferred ones that a checkout applies once it links the site.

use super::shared::{
    http_date, record, stale, Outcome, Processor, INVOICE_PAID, INVOICE_PAYMENT_FAILED,
    SUBSCRIPTION_DELETED, SUBSCRIPTION_EVENTS, SUBSCRIPTION_UPDATED,
};
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::sites::{
    self, PaymentChanges, SiteRow, Transition, SUSPENDED_FOR_PAYMENT,
};
use crate::adapters::db::stripe_events;
use crate::adapters::db::{jobs, DbConnection};
use crate::domain::job::{Deprovision, SuspendOverdue};
use crate::domain::SiteState;
use crate::services::stripe::event::{Event, Invoice, Subscription};

impl Processor<'_> {
    /// Applies the subscription and invoice events of `subscription` that waited for its site,
    /// oldest first. (A deferred checkout waits for its own site, not for a subscription.)
    /// Returns a note for the checkout's own outcome.
    pub(super) fn apply_deferred(
        &self,
        conn: &mut DbConnection,
        subscription: &str,
    ) -> anyhow::Result<Option<String>> {
        let mut waiting = stripe_events::deferred_for_subscription(
            conn,
            self.tenant.name.as_str(),
            subscription,
        )?;
        waiting.retain(|row| SUBSCRIPTION_EVENTS.contains(&row.event_type.as_str()));
        if waiting.is_empty() {
            return Ok(None);
        }
        for row in &waiting {
            let outcome = match Event::parse(row.payload.as_bytes()) {
                Ok(event) => self.subscription_event(conn, &event)?,
                Err(why) => Outcome::invalid(why),
            };
            record(conn, &row.id, &outcome)?;
        }
        Ok(Some(format!(
            "applied {} event(s) that had waited for this site",
            waiting.len()
        )))
    }

    /// `customer.subscription.*` and `invoice.*`: the site is the one linked to the
    /// subscription; until a checkout links it, the event is deferred.
    pub(super) fn subscription_event(
        &self,
        conn: &mut DbConnection,
        event: &Event,
    ) -> anyhow::Result<Outcome> {
        let Some(subscription) = event.subscription_id() else {
            return Ok(Outcome::ignored(
                "not about a subscription (a one-off invoice?)",
            ));
        };
        let tenant = self.tenant.name.as_str();
        let Some(site) = sites::find_by_subscription(conn, tenant, subscription)? else {
            return Ok(Outcome::deferred(format!(
                "no site of tenant {tenant} has subscription {subscription} yet; applied when its checkout arrives"
            )));
        };
        sites::lock(conn, &site.id)?;
        let site = sites::get(conn, &site.id)?.unwrap_or(site);
        match event.kind.as_str() {
            SUBSCRIPTION_DELETED => self.subscription_deleted(conn, event, &site),
            _ if stale(&site, event).is_some() => Ok(stale(&site, event).expect("just checked")),
            SUBSCRIPTION_UPDATED => self.subscription_updated(conn, event, &site),
            INVOICE_PAID => self.invoice_paid(conn, event, &site),
            INVOICE_PAYMENT_FAILED => self.invoice_payment_failed(event, &site),
            other => Ok(Outcome::ignored(format!(
                "berth does not act on {other} events"
            ))),
        }
    }

    fn subscription_updated(
        &self,
        conn: &mut DbConnection,
        event: &Event,
        site: &SiteRow,
    ) -> anyhow::Result<Outcome> {
        let subscription: Subscription = match event.object() {
            Ok(s) => s,
            Err(why) => return Ok(Outcome::invalid(why)),
        };
        let mut notes = vec![format!("subscription {}", subscription.status)];
        let mut changes = PaymentChanges {
            stripe_event_at: Some(event.created_at_ms()),
            stripe_customer_id: Some(subscription.customer.id().to_owned()),
            ..Default::default()
        };
        let mut replan = false;
        if let Some(price) = subscription.price_id() {
            match self.tenant.settings.plans.get_key_value(price) {
                Some((key, plan)) if site.plan.as_deref() != Some(key.as_str()) => {
                    notes.push(format!("plan {}", plan.name));
                    changes.plan = Some(key.clone());
                    replan = true;
                }
                Some(_) => {}
                None => notes.push(format!(
                    "price {price} is not one of the tenant's plans; plan unchanged"
                )),
            }
        }
        let mut resume = false;
        match subscription.status.as_str() {
            "active" | "trialing" => {
                if site.payment_overdue_since.is_some() {
                    changes.payment_overdue_since = Some(None);
                    notes.push("no longer overdue".into());
                }
                resume = suspended_for_payment(site);
            }
            "past_due" | "unpaid" | "paused" => {
                let since = match site.payment_overdue_since {
                    Some(since) => since,
                    None => {
                        let since = event.created_at_ms();
                        changes.payment_overdue_since = Some(Some(since));
                        self.schedule_suspension(conn, &site.id, since)?;
                        since
                    }
                };
                if site.state != SiteState::Suspended {
                    notes.push(format!(
                        "suspended at {} unless paid by then",
                        http_date(since.saturating_add(self.grace_ms()))
                    ));
                }
            }
            _ => {}
        }
        sites::record_payment(conn, &site.id, changes)?;
        if resume {
            self.provision(conn, &site.id, &[SiteState::Suspended])?;
            notes.push("resumed".into());
        } else if replan && matches!(site.state, SiteState::Ready | SiteState::Provisioning) {
            self.provision(conn, &site.id, &[SiteState::Ready, SiteState::Provisioning])?;
            notes.push("re-applying the workload with the new plan".into());
        }
        Ok(Outcome::applied(&site.id, notes.join("; ")))
    }

    fn invoice_paid(
        &self,
        conn: &mut DbConnection,
        event: &Event,
        site: &SiteRow,
    ) -> anyhow::Result<Outcome> {
        let invoice: Invoice = match event.object() {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::invalid(why)),
        };
        let mut changes = PaymentChanges {
            stripe_event_at: Some(event.created_at_ms()),
            ..Default::default()
        };
        if site.payment_overdue_since.is_some() {
            changes.payment_overdue_since = Some(None);
        }
        sites::record_payment(conn, &site.id, changes)?;
        let mut detail = format!("invoice {} paid", invoice.id);
        if suspended_for_payment(site) {
            self.provision(conn, &site.id, &[SiteState::Suspended])?;
            detail.push_str("; resumed");
        }
        Ok(Outcome::applied(&site.id, detail))
    }

    /// Records the failure only: whether the site is suspended follows the subscription's status
    /// (`past_due`, then the grace period). It does not advance the site's event time, so the
    /// status change that Stripe sends alongside is never taken for stale.
    fn invoice_payment_failed(&self, event: &Event, site: &SiteRow) -> anyhow::Result<Outcome> {
        let invoice: Invoice = match event.object() {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::invalid(why)),
        };
        metrics::counter!("berth_stripe_payment_failures_total", "tenant" => self.tenant.name.to_string())
            .increment(1);
        tracing::warn!(site.id = %site.id, tenant = %site.tenant, stripe.invoice = %invoice.id, "a subscription payment failed");
        Ok(Outcome::applied(
            &site.id,
            format!(
                "invoice {} payment failed (attempt {}); the subscription's status decides suspension",
                invoice.id,
                invoice.attempt_count.unwrap_or(1)
            ),
        ))
    }

    /// Final: deprovisions the site whatever the event's age (a subscription never comes back).
    fn subscription_deleted(
        &self,
        conn: &mut DbConnection,
        event: &Event,
        site: &SiteRow,
    ) -> anyhow::Result<Outcome> {
        let at = event.created_at_ms().max(site.stripe_event_at.unwrap_or(0));
        sites::record_payment(
            conn,
            &site.id,
            PaymentChanges {
                stripe_event_at: Some(at),
                payment_overdue_since: Some(None),
                ..Default::default()
            },
        )?;
        let from: Vec<SiteState> = SiteState::DELETABLE
            .into_iter()
            .filter(|s| *s != SiteState::Deprovisioning)
            .collect();
        let transition = sites::act(conn, &site.id, &from, SiteState::Deprovisioning, |site| {
            Some(
                Deprovision {
                    site_id: site.id.clone(),
                    version: site.version,
                }
                .to_new_job(self.jobs),
            )
        })?;
        Ok(match transition {
            Transition::Done(_) => {
                Outcome::applied(&site.id, "subscription canceled: removing the site")
            }
            Transition::WrongState(state) => Outcome::new(
                stripe_events::IGNORED,
                format!("subscription canceled; the site is already {state}"),
                Some(&site.id),
            ),
            Transition::NotFound => Outcome::deferred("the site disappeared"),
        })
    }

    fn grace_ms(&self) -> i64 {
        i64::try_from(self.tenant.settings.grace_period_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX)
    }

    /// Enqueues the job that suspends the site when the grace period after `since` is over.
    fn schedule_suspension(
        &self,
        conn: &mut DbConnection,
        site_id: &str,
        since: i64,
    ) -> anyhow::Result<()> {
        let mut job = SuspendOverdue {
            site_id: site_id.to_owned(),
            overdue_since: since,
        }
        .to_new_job(self.jobs);
        job.run_at = since.saturating_add(self.grace_ms());
        jobs::insert(conn, &job)
    }
}

fn suspended_for_payment(site: &SiteRow) -> bool {
    site.state == SiteState::Suspended
        && site.suspended_for.as_deref() == Some(SUSPENDED_FOR_PAYMENT)
}
