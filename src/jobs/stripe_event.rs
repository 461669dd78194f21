//! Processes one stored Stripe event. A payment-first checkout goes through the signup pipeline
//! first (policy plugins run asynchronously); then everything the event does to its site, and
//! the record of its outcome, is one transaction (see `stripe::process`).

use super::{BackgroundJob, JobContext};
use crate::adapters::db::stripe_events;
use crate::domain::job::ProcessStripeEvent;
use crate::error::Permanent;
use crate::services::stripe::event::Event;
use crate::services::stripe::process::{self, Outcome, Processor};

impl BackgroundJob for ProcessStripeEvent {
    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let id = self.event_id.clone();
        let Some(row) = ctx.db.run(move |c| stripe_events::get(c, &id)).await? else {
            tracing::warn!(stripe.event = %self.event_id, "the stored event is gone; nothing to do");
            return Ok(());
        };
        if !row.is_pending() {
            return Ok(());
        }
        let tenant = ctx.tenants.get().find(&row.tenant).ok_or_else(|| {
            Permanent::new(format!("tenant {} is not in the configuration", row.tenant))
        })?;
        let event = match Event::parse(row.payload.as_bytes()) {
            Ok(event) => event,
            Err(why) => {
                let id = row.id.clone();
                ctx.db
                    .write(move |c| {
                        stripe_events::finish(c, &id, stripe_events::INVALID, &why, None)
                    })
                    .await?;
                return Ok(());
            }
        };
        let (stripe_id, kind) = (event.id.as_str().to_owned(), event.kind.clone());
        let payment_first = process::prepare(&event, &tenant, &ctx.policies, &ctx.faults).await?;
        let jobs = ctx.settings.get().jobs.clone();
        let (row_id, processing_tenant) = (row.id.clone(), tenant.clone());
        let (manage_key, mailer) = (ctx.manage_key.clone(), ctx.mailer.get().clone());
        let (outcome, event) = ctx
            .db
            .write(move |c| {
                let outcome = Processor {
                    tenant: &processing_tenant,
                    jobs: &jobs,
                    manage_key: &manage_key,
                    mailer: &mailer,
                }
                .apply(c, &row_id, &event, payment_first)?;
                // Handed back so that the parsed payload is freed here, not on the write path.
                Ok((outcome, event))
            })
            .await?;
        drop(event);
        let Some(outcome) = outcome else {
            return Ok(());
        };
        ctx.wake.notify_one();
        report(&row.tenant, &stripe_id, &kind, &outcome);
        Ok(())
    }

    async fn exhausted(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        let (id, detail) = (
            self.event_id.clone(),
            format!("processing failed: {error}; replay the event once the cause is fixed"),
        );
        ctx.db
            .write(move |c| stripe_events::note(c, &id, &detail))
            .await
    }
}

/// One log line and one count per processed event.
fn report(tenant: &str, stripe_id: &str, kind: &str, outcome: &Outcome) {
    let type_label = if process::HANDLED.contains(&kind) {
        kind.to_owned()
    } else {
        "other".to_owned()
    };
    metrics::counter!(
        "berth_stripe_events_total",
        "tenant" => tenant.to_owned(),
        "type" => type_label,
        "outcome" => outcome.label
    )
    .increment(1);
    let site = outcome.site_id.as_deref().unwrap_or("");
    match outcome.label {
        stripe_events::DEFERRED | stripe_events::REJECTED | stripe_events::INVALID => {
            tracing::warn!(
                tenant,
                stripe.event_id = stripe_id,
                stripe.event_type = kind,
                site.id = site,
                outcome = outcome.label,
                detail = %outcome.detail,
                "Stripe event kept but not applied"
            )
        }
        // Most of what Stripe sends is of no concern to berth: counted, logged only on request.
        stripe_events::IGNORED => tracing::debug!(
            tenant,
            stripe.event_id = stripe_id,
            stripe.event_type = kind,
            detail = %outcome.detail,
            "Stripe event ignored"
        ),
        _ => tracing::info!(
            tenant,
            stripe.event_id = stripe_id,
            stripe.event_type = kind,
            site.id = site,
            outcome = outcome.label,
            detail = %outcome.detail,
            "Stripe event processed"
        ),
    }
}
