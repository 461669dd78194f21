//! The background work berth does, as data: each kind of job is a payload with a stable name,
//! stored in the `jobs` table. Services and routes enqueue them in the same transaction as the
//! change that calls for them; [`crate::jobs`] holds what each one does when it runs.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A kind of job: its payload and the stable name stored in the `kind` column.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name stored in the `kind` column.
    const KIND: &'static str;

    /// The site the job is about, stored beside it for the admin API.
    fn site_id(&self) -> Option<&str> {
        None
    }
}

/// Bring a site up (a new one, a retry, a resume): workload, readiness, DNS, then `ready`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Provision {
    pub site_id: String,
    /// The site version this job was enqueued for; a newer action makes it stand down.
    pub version: i64,
}

impl Job for Provision {
    const KIND: &'static str = "provision";

    fn site_id(&self) -> Option<&str> {
        Some(&self.site_id)
    }
}

/// Deploy a ready site's target version of its content (an update or a rollback) while the
/// live one keeps serving, then switch: the site's `live_version` moves in the same
/// transaction that records the new version live.
#[derive(Debug, Serialize, Deserialize)]
pub struct Deploy {
    pub site_id: String,
    /// The site version this job was enqueued for; a newer action makes it stand down.
    pub version: i64,
}

impl Job for Deploy {
    const KIND: &'static str = "deploy";

    fn site_id(&self) -> Option<&str> {
        Some(&self.site_id)
    }
}

/// One step of a fleet rollout's driver: settle the sites of the wave under way, then start the
/// next wave or end the rollout, and enqueue the next step (with the next `tick`) a moment
/// later. A step whose `tick` is not the rollout's stands down, so a step that runs twice (a
/// retry after a crash) acts once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rollout {
    pub rollout_id: String,
    pub tick: i64,
}

impl Job for Rollout {
    const KIND: &'static str = "rollout";
}

/// Take a site down for good: workload, DNS record, then `deleted`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Deprovision {
    pub site_id: String,
    pub version: i64,
}

impl Job for Deprovision {
    const KIND: &'static str = "deprovision";

    fn site_id(&self) -> Option<&str> {
        Some(&self.site_id)
    }
}

/// Scale a site to zero and stop serving it, keeping its data.
#[derive(Debug, Serialize, Deserialize)]
pub struct Suspend {
    pub site_id: String,
    pub version: i64,
}

impl Job for Suspend {
    const KIND: &'static str = "suspend";

    fn site_id(&self) -> Option<&str> {
        Some(&self.site_id)
    }
}

/// Send one notice about a site; its outbox row records the send, and a retry reuses the same
/// Message-ID.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendEmail {
    pub site_id: String,
    pub notice: String,
    /// The outbox row's key, for a notice that may go more than once (a new manage link, once
    /// per new token); `None`: the notice itself, sent once per site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<String>,
}

impl SendEmail {
    /// Where the outbox keeps this send.
    pub fn outbox_key(&self) -> &str {
        self.outbox.as_deref().unwrap_or(&self.notice)
    }
}

impl Job for SendEmail {
    const KIND: &'static str = "send_email";

    fn site_id(&self) -> Option<&str> {
        Some(&self.site_id)
    }
}

/// Apply one stored Stripe event to the tenant's sites.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProcessStripeEvent {
    /// berth's id of the stored event (`event_…`), not Stripe's.
    pub event_id: String,
}

impl Job for ProcessStripeEvent {
    const KIND: &'static str = "stripe_event";
}

/// Suspend a site whose subscription stayed unpaid past the grace period.
#[derive(Debug, Serialize, Deserialize)]
pub struct SuspendOverdue {
    pub site_id: String,
    /// The site's `payment_overdue_since` this job was enqueued for.
    pub overdue_since: i64,
}

impl Job for SuspendOverdue {
    const KIND: &'static str = "suspend_overdue";

    fn site_id(&self) -> Option<&str> {
        Some(&self.site_id)
    }
}
