//! Bounded growth: succeeded jobs and processed Stripe events are deleted once they are older
//! than their retention period (`jobs.retention_days`, `stripe.event_retention_days`). Failed
//! jobs, and rejected or deferred events, stay until an operator acts.
//!
//! Deletion runs in small batches, each its own short write, so it never holds the write path
//! for long; the worker runs a sweep at start and then every few minutes.

use std::time::Duration;

use crate::adapters::db::{jobs, now_ms, stripe_events, Db};

/// Rows deleted per write.
const BATCH: i64 = 500;
/// How often the worker sweeps.
pub const EVERY: Duration = Duration::from_secs(300);

const DAY_MS: i64 = 24 * 3600 * 1000;

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub jobs: usize,
    pub events: usize,
}

/// Deletes what is past its retention; a retention of 0 days keeps everything.
pub async fn sweep(db: &Db, job_days: u64, event_days: u64) -> anyhow::Result<Pruned> {
    let mut pruned = Pruned::default();
    if job_days > 0 {
        let before = now_ms() - job_days as i64 * DAY_MS;
        pruned.jobs = in_batches(db, move |c| jobs::prune_succeeded(c, before, BATCH)).await?;
    }
    if event_days > 0 {
        let before = now_ms() - event_days as i64 * DAY_MS;
        pruned.events = in_batches(db, move |c| {
            stripe_events::prune_processed(c, before, BATCH)
        })
        .await?;
    }
    if pruned != Pruned::default() {
        tracing::info!(
            jobs = pruned.jobs,
            stripe_events = pruned.events,
            "pruned history past its retention"
        );
    }
    Ok(pruned)
}

/// Runs `delete` (one batch) until a batch deletes less than a full one; returns the total.
async fn in_batches(
    db: &Db,
    delete: impl Fn(&mut crate::adapters::db::DbConnection) -> anyhow::Result<usize>
        + Clone
        + Send
        + 'static,
) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let n = db.write(delete.clone()).await?;
        total += n;
        if n < BATCH as usize {
            return Ok(total);
        }
        // Let other writers in between batches.
        tokio::task::yield_now().await;
    }
}
