//! Suspends a site whose subscription stayed past due (or unpaid) for the tenant's grace period.
//! Enqueued when the subscription becomes overdue, due when the grace period ends; it stands
//! down when the customer paid meanwhile (the site's overdue mark is gone or newer).

use super::{BackgroundJob, JobContext};
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::sites::{self, PaymentChanges, Transition, SUSPENDED_FOR_PAYMENT};
use crate::domain::job::{Suspend, SuspendOverdue};
use crate::domain::SiteState;

impl BackgroundJob for SuspendOverdue {
    async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let (id, since, jobs) = (
            self.site_id.clone(),
            self.overdue_since,
            ctx.settings.get().jobs.clone(),
        );
        let suspended = ctx
            .db
            .write(move |c| {
                sites::lock(c, &id)?;
                let overdue = sites::get(c, &id)?.and_then(|s| s.payment_overdue_since);
                if overdue != Some(since) {
                    return Ok(false);
                }
                let transition = sites::act(
                    c,
                    &id,
                    &[SiteState::Ready, SiteState::Provisioning],
                    SiteState::Suspended,
                    |site| {
                        Some(
                            Suspend {
                                site_id: site.id.clone(),
                                version: site.version,
                            }
                            .to_new_job(&jobs),
                        )
                    },
                )?;
                if !matches!(transition, Transition::Done(_)) {
                    return Ok(false);
                }
                sites::record_payment(
                    c,
                    &id,
                    PaymentChanges {
                        suspended_for: Some(Some(SUSPENDED_FOR_PAYMENT.to_owned())),
                        ..Default::default()
                    },
                )?;
                Ok(true)
            })
            .await?;
        if suspended {
            ctx.wake.notify_one();
            tracing::info!(site.id = %self.site_id, "site suspended: its subscription stayed unpaid past the grace period");
        } else {
            tracing::info!(site.id = %self.site_id, "no suspension: the site was paid for or moved on");
        }
        Ok(())
    }
}
