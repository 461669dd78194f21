//! The worker: claims due jobs in batches under a lease (one write claims as many jobs as there
//! are free slots), runs them while one heartbeat extends every lease it holds, and records each
//! outcome (done, retry later with backoff, or failed for good) through the shared write path,
//! so outcomes that finish together share a commit. On shutdown it stops claiming, gives
//! running jobs a grace period, and releases the leases of those that did not finish.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{backoff, JobContext, Registry};
use crate::adapters::db::{jobs, now_ms, Db};

/// The most jobs one claim takes (bounded by the free slots).
const CLAIM_BATCH: usize = 64;
/// While a backlog drains, how long a claim waits for more free slots when it has few.
const GATHER: Duration = Duration::from_millis(1);

/// Adds free slots to `permits`, up to a claim's batch.
fn take_free(slots: &Arc<Semaphore>, permits: &mut Vec<OwnedSemaphorePermit>) {
    while permits.len() < CLAIM_BATCH {
        match slots.clone().try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
}

/// Below this many free slots, a claim during a backlog waits [`GATHER`] for more: a quarter of
/// a batch, or of the slots when there are fewer.
fn batch_floor(concurrency: usize) -> usize {
    (CLAIM_BATCH.min(concurrency) / 4).max(1)
}

pub struct Worker {
    ctx: Arc<JobContext>,
    registry: Arc<Registry>,
    /// This process's lease-owner name: host, pid and a random suffix.
    owner: Arc<str>,
    /// The ids of the jobs this worker runs now, whose leases the heartbeat extends.
    running: Arc<Mutex<HashSet<String>>>,
    successes: Successes,
}

impl Worker {
    pub fn new(ctx: Arc<JobContext>, registry: Registry) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "berth".into());
        let owner = format!(
            "{host}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let owner: Arc<str> = owner.into();
        Self {
            successes: Successes::start(ctx.db.clone(), owner.clone()),
            ctx,
            registry: Arc::new(registry),
            owner,
            running: Arc::default(),
        }
    }

    fn lease_ms(&self) -> i64 {
        (self.ctx.settings.get().jobs.lease_secs * 1000) as i64
    }

    /// Claims up to `limit` due jobs in one write.
    async fn claim(&self, limit: usize) -> anyhow::Result<Vec<jobs::JobRow>> {
        let (owner, lease_ms) = (self.owner.clone(), self.lease_ms());
        self.ctx
            .db
            .write(move |c| jobs::claim(c, &owner, lease_ms, limit))
            .await
            .context("claiming jobs failed")
    }

    fn execution(&self, job: jobs::JobRow) -> Execution {
        Execution {
            ctx: self.ctx.clone(),
            registry: self.registry.clone(),
            owner: self.owner.clone(),
            running: self.running.clone(),
            successes: self.successes.clone(),
            job,
        }
    }

    /// Runs every job that is due now, one at a time, until none is left; returns how many ran.
    /// Tests use it to step the queue deterministically.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let slot = Arc::new(Semaphore::new(1));
        let mut ran = 0;
        while let Some(job) = self.claim(1).await?.pop() {
            self.execution(job)
                .run(slot.clone().acquire_owned().await.expect("open"))
                .await;
            ran += 1;
        }
        Ok(ran)
    }

    /// How long an idle worker waits before it looks again (`jobs.poll_interval_ms`, as now
    /// configured: a reload changes it).
    fn poll(&self) -> Duration {
        Duration::from_millis(self.ctx.settings.get().jobs.poll_interval_ms)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        // The worker's size is fixed for its life; its timings follow reloads.
        let settings = &self.ctx.settings.get().jobs;
        let slots = Arc::new(Semaphore::new(settings.concurrency));
        let mut running = JoinSet::new();
        let heartbeat = AbortOnDrop(self.heartbeat());
        let retention = AbortOnDrop(self.retention());
        let listener = match self.ctx.db.listen_for_jobs(self.ctx.wake.clone()) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "no job notifications; the worker polls"
                );
                None
            }
        };
        tracing::info!(worker = %self.owner, concurrency = settings.concurrency, "job worker started");

        // Whether the last claim found more due jobs than it had slots for (a backlog).
        let mut backlog = false;
        loop {
            while running.try_join_next().is_some() {}
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
                _ = shutdown.cancelled() => break,
            };
            // Take every free slot (up to a batch): one claim, one shared commit, many jobs.
            let mut permits = vec![first];
            take_free(&slots, &mut permits);
            // Draining a backlog, a claim for the one slot that just freed costs as much as a
            // claim for many: give a few more running jobs a moment to finish first.
            if backlog && permits.len() < batch_floor(settings.concurrency) {
                tokio::time::sleep(GATHER).await;
                take_free(&slots, &mut permits);
            }
            let wanted = permits.len();
            match self.claim(wanted).await {
                Ok(claimed) => {
                    let got = claimed.len();
                    backlog = got == wanted;
                    for (job, permit) in claimed.into_iter().zip(permits) {
                        running.spawn(self.execution(job).run(permit));
                    }
                    if got < wanted {
                        // Nothing more is due: wait for a new job, or the next poll.
                        tokio::select! {
                            _ = tokio::time::sleep(self.poll()) => {}
                            _ = self.ctx.wake.notified() => {}
                            _ = shutdown.cancelled() => break,
                        }
                    }
                }
                Err(error) => {
                    drop(permits);
                    backlog = false;
                    tracing::error!(
                        error = format!("{error:#}"),
                        "failed to claim jobs; retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll() * 4) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }

        let grace = Duration::from_secs(self.ctx.settings.get().jobs.shutdown_grace_secs);
        let in_flight = running.len();
        if in_flight > 0 {
            tracing::info!(
                jobs = in_flight,
                grace_secs = grace.as_secs(),
                "waiting for running jobs"
            );
        }
        let drained = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        drop((heartbeat, retention, listener));
        let owner = self.owner.clone();
        match self
            .ctx
            .db
            .write(move |c| jobs::release_all(c, &owner))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "released the leases of unfinished jobs"),
            Err(error) => tracing::error!(
                error = format!("{error:#}"),
                "failed to release job leases; they will expire"
            ),
        }
        tracing::info!(worker = %self.owner, "job worker stopped");
    }

    /// Prunes history past its retention, now and every few minutes.
    fn retention(&self) -> tokio::task::JoinHandle<()> {
        let (db, settings): (Db, _) = (self.ctx.db.clone(), self.ctx.settings.clone());
        tokio::spawn(async move {
            loop {
                let now = settings.get();
                let (job_days, event_days) =
                    (now.jobs.retention_days, now.stripe.event_retention_days);
                if let Err(error) = super::retention::sweep(&db, job_days, event_days).await {
                    tracing::warn!(error = format!("{error:#}"), "pruning old history failed");
                }
                tokio::time::sleep(super::retention::EVERY).await;
            }
        })
    }

    /// Extends the leases of every job this worker runs, in one write every third of a lease.
    fn heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let (db, settings): (Db, _) = (self.ctx.db.clone(), self.ctx.settings.clone());
        let (running, owner) = (self.running.clone(), self.owner.clone());
        tokio::spawn(async move {
            loop {
                // Every third of a lease, as now configured.
                let lease_ms = (settings.get().jobs.lease_secs * 1000) as i64;
                tokio::time::sleep(Duration::from_millis((lease_ms / 3) as u64)).await;
                let ids: Vec<String> = running
                    .lock()
                    .expect("not poisoned")
                    .iter()
                    .cloned()
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                let owner = owner.clone();
                match db
                    .write(move |c| jobs::heartbeat(c, &ids, &owner, lease_ms))
                    .await
                {
                    Ok(lost) => {
                        // A job that finished meanwhile is not lost: only one still running is.
                        let running = running.lock().expect("not poisoned");
                        for id in lost.iter().filter(|id| running.contains(*id)) {
                            tracing::warn!(job.id = %id, "job lease lost to another worker");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "lease heartbeat failed")
                    }
                }
            }
        })
    }
}

/// Records successes in batches: one statement marks done every job that succeeded since the
/// last one (most outcomes are successes, and each would otherwise pay a statement of its own).
#[derive(Clone)]
struct Successes {
    queue: mpsc::UnboundedSender<(String, oneshot::Sender<anyhow::Result<bool>>)>,
}

/// The most successes one statement records.
const SUCCESS_BATCH: usize = 512;

impl Successes {
    fn start(db: Db, owner: Arc<str>) -> Self {
        let (queue, mut waiting) =
            mpsc::unbounded_channel::<(String, oneshot::Sender<anyhow::Result<bool>>)>();
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut batch = vec![first];
                while batch.len() < SUCCESS_BATCH {
                    match waiting.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
                let owner = owner.clone();
                let recorded = db.write(move |c| jobs::succeed_many(c, &ids, &owner)).await;
                for (id, reply) in batch {
                    let _ = reply.send(match &recorded {
                        Ok(marked) => Ok(marked.contains(&id)),
                        Err(error) => Err(anyhow::anyhow!("{error:#}")),
                    });
                }
            }
        });
        Self { queue }
    }

    /// Marks the job done; `false` means the lease was lost and nothing was written.
    async fn record(&self, id: String) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((id, reply))
            .map_err(|_| anyhow::anyhow!("the outcome writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the outcome writer stopped before answering"))?
    }
}

/// One claimed job on its way to an outcome.
struct Execution {
    ctx: Arc<JobContext>,
    registry: Arc<Registry>,
    owner: Arc<str>,
    running: Arc<Mutex<HashSet<String>>>,
    successes: Successes,
    job: jobs::JobRow,
}

impl Execution {
    /// Runs the job, frees its slot, then records the outcome. The slot is free before the
    /// outcome is durable so that the next claim shares the outcome's commit instead of waiting
    /// for it; if berth dies in between, the job's lease expires and it runs again, which an
    /// idempotent job turns into a no-op.
    async fn run(self, permit: OwnedSemaphorePermit) {
        let span = tracing::info_span!(
            "job",
            job.id = %self.job.id,
            job.kind = %self.job.kind,
            site.id = self.job.site_id.as_deref().unwrap_or(""),
            attempt = self.job.attempts,
        );
        let id = self.job.id.clone();
        let running = self.running.clone();
        running.lock().expect("not poisoned").insert(id.clone());
        async {
            let outcome = self.execute().await;
            drop(permit);
            self.finish(outcome).await;
        }
        .instrument(span)
        .await;
        running.lock().expect("not poisoned").remove(&id);
    }

    async fn execute(&self) -> Outcome {
        let job = &self.job;
        let lag_ms = (now_ms() - job.run_at).max(0);
        metrics::histogram!("berth_job_lag_seconds", "kind" => job.kind.clone())
            .record(lag_ms as f64 / 1000.0);

        let Some(handler) = self.registry.get(&job.kind) else {
            let error = format!("no handler for job kind {:?}", job.kind);
            tracing::error!(error, "job cannot run");
            return Outcome::Failed(error);
        };
        if job.attempts > job.max_attempts {
            let error = "the last attempt was cut off (the worker stopped or crashed)".to_owned();
            return self.exhaust(handler, error).await;
        }

        let started = Instant::now();
        let result = AssertUnwindSafe(handler(self.ctx.clone(), job.payload.clone(), None))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the job panicked")));
        let duration = started.elapsed();
        metrics::histogram!("berth_job_duration_seconds", "kind" => job.kind.clone())
            .record(duration.as_secs_f64());

        match result {
            Ok(()) => {
                tracing::info!(duration_ms = duration.as_millis() as u64, "job done");
                Outcome::Succeeded
            }
            Err(error) => {
                let permanent = crate::error::is_permanent(&error);
                let error = format!("{error:#}");
                if permanent || job.attempts >= job.max_attempts {
                    self.exhaust(handler, error).await
                } else {
                    let delay = backoff(&self.ctx.settings.get().jobs, job.attempts);
                    tracing::warn!(
                        error,
                        retry_in_ms = delay.as_millis() as u64,
                        attempts_left = job.max_attempts - job.attempts,
                        "job failed; will retry"
                    );
                    Outcome::Retry(now_ms() + delay.as_millis() as i64, error)
                }
            }
        }
    }

    /// Runs the job's failure hook; the job fails for good.
    async fn exhaust(&self, handler: super::Erased, error: String) -> Outcome {
        tracing::error!(error, attempts = self.job.attempts, "job failed for good");
        if let Err(hook) = handler(
            self.ctx.clone(),
            self.job.payload.clone(),
            Some(error.clone()),
        )
        .await
        {
            tracing::error!(
                error = format!("{hook:#}"),
                "the job's failure hook failed too"
            );
        }
        Outcome::Failed(error)
    }

    async fn finish(&self, outcome: Outcome) {
        let label = outcome.label();
        metrics::counter!("berth_jobs_total", "kind" => self.job.kind.clone(), "outcome" => label)
            .increment(1);
        let (id, owner) = (self.job.id.clone(), self.owner.clone());
        let recorded = match outcome {
            Outcome::Succeeded => self.successes.record(id).await,
            Outcome::Retry(at, error) => {
                let write = move |c: &mut _| jobs::retry_at(c, &id, &owner, at, &error);
                self.ctx.db.write(write).await
            }
            Outcome::Failed(error) => {
                let write = move |c: &mut _| jobs::fail(c, &id, &owner, &error);
                self.ctx.db.write(write).await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                outcome = label,
                "lease was lost before the outcome was recorded; another worker owns the job"
            ),
            Err(error) => tracing::error!(
                error = format!("{error:#}"),
                outcome = label,
                "failed to record the job's outcome; its lease will expire and it will run again"
            ),
        }
    }
}

enum Outcome {
    Succeeded,
    Retry(i64, String),
    Failed(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Retry(..) => "retried",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// Stops a background task of the worker when the worker stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
