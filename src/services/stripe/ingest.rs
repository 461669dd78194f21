//! Durable ingestion of verified deliveries, with group commit.
//!
//! A delivery is acknowledged only after its event row and its processing job are committed
//! together (SQLite with `synchronous=FULL`, PostgreSQL with its durable defaults), so an
//! acknowledged event survives a crash or a power cut. A durable commit costs about one fsync;
//! rather than pay one per event, a writer task takes every delivery waiting at that moment (up
//! to [`MAX_BATCH`]), commits them all in one transaction (a few statements, however many
//! deliveries) and only then answers each waiter. Under load, deliveries that arrive while a
//! commit is in flight form the next batch, so throughput grows with concurrency while each
//! delivery waits at most about two commits. Durability is unchanged: nobody is answered before
//! the commit that holds their event.
//!
//! SQLite has one writer at a time anyway, so it gets one writer task. PostgreSQL overlaps the
//! WAL flushes of concurrent commits by itself, so it gets a few writer tasks (see
//! [`writers_for`]), each batching: one serial writer would leave that parallelism unused.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::adapters::db::jobs::{self, NewJob};
use crate::adapters::db::stripe_events::{self, NewStripeEvent};
use crate::adapters::db::{Backend, Db, DbConnection};

/// The most deliveries one commit takes.
pub const MAX_BATCH: usize = 256;

/// A verified event and the job that will process it: stored together or not at all.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: NewStripeEvent,
    pub job: NewJob,
}

/// What storing a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The event and its job are committed.
    New,
    /// The tenant already had this event; nothing was written.
    Duplicate,
}

struct Waiter {
    delivery: Delivery,
    reply: oneshot::Sender<anyhow::Result<Stored>>,
}

/// How many writer tasks suit a database with a pool of `pool_size` connections: one for
/// SQLite, up to four (half the pool, so jobs and requests keep theirs) for PostgreSQL.
pub fn writers_for(backend: Backend, pool_size: u32) -> usize {
    match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => (pool_size / 2).clamp(1, 4) as usize,
    }
}

/// The handle to the writer tasks. Cheap to clone; the tasks end when the last handle is dropped.
#[derive(Clone)]
pub struct EventWriter {
    queue: mpsc::Sender<Waiter>,
    commits: Arc<AtomicU64>,
}

impl EventWriter {
    /// Starts `writers` writer tasks (at least one) on the current tokio runtime.
    pub fn start(db: Db, writers: usize) -> Self {
        let (queue, waiting) = mpsc::channel(4 * MAX_BATCH);
        let waiting = Arc::new(tokio::sync::Mutex::new(waiting));
        let commits = Arc::new(AtomicU64::new(0));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(db.clone(), waiting.clone(), commits.clone()));
        }
        Self { queue, commits }
    }

    /// How many shared commits the writer has made (the benchmark reports events per commit).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stores the delivery durably (shared commit); returns once it is on disk.
    pub async fn store(&self, delivery: Delivery) -> anyhow::Result<Stored> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Waiter { delivery, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the event writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the event writer stopped before answering"))?
    }
}

/// Stores one delivery in a transaction of its own: one commit per event. The baseline the
/// benchmark measures group commit against, and the fallback when a shared commit fails.
pub async fn store_one(db: &Db, delivery: Delivery) -> anyhow::Result<Stored> {
    db.write_in_parallel(move |c| insert(c, &delivery)).await
}

/// Stores a batch with one multi-row insert for the events and one for their jobs, so that a
/// shared commit costs a few statements, not two per delivery. A delivery whose event is already
/// stored, or given earlier in the same batch, is a duplicate.
fn insert_batch(conn: &mut DbConnection, batch: &[Delivery]) -> anyhow::Result<Vec<Stored>> {
    let mut seen = HashSet::new();
    let fresh: Vec<&NewStripeEvent> = batch
        .iter()
        .map(|d| &d.event)
        .filter(|e| seen.insert((e.tenant.as_str(), e.stripe_event_id.as_str())))
        .collect();
    let inserted: HashSet<String> = stripe_events::insert_new_many(conn, &fresh)?
        .into_iter()
        .collect();
    let jobs: Vec<&NewJob> = batch
        .iter()
        .filter(|d| inserted.contains(&d.event.id))
        .map(|d| &d.job)
        .collect();
    jobs::insert_many(conn, &jobs)?;
    Ok(batch
        .iter()
        .map(|d| {
            if inserted.contains(&d.event.id) {
                Stored::New
            } else {
                Stored::Duplicate
            }
        })
        .collect())
}

fn insert(conn: &mut DbConnection, delivery: &Delivery) -> anyhow::Result<Stored> {
    if stripe_events::insert_new(conn, &delivery.event)? {
        jobs::insert(conn, &delivery.job)?;
        Ok(Stored::New)
    } else {
        Ok(Stored::Duplicate)
    }
}

/// One writer: takes what is waiting (while it holds the queue, the other writers wait for
/// their turn to take), commits it, answers, and again.
async fn write_batches(
    db: Db,
    waiting: Arc<tokio::sync::Mutex<mpsc::Receiver<Waiter>>>,
    commits: Arc<AtomicU64>,
) {
    loop {
        let batch = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(waiter) => batch.push(waiter),
                    Err(_) => break,
                }
            }
            batch
        };
        commit(&db, batch).await;
        commits.fetch_add(1, Ordering::Relaxed);
    }
}

#[tracing::instrument(name = "stripe_ingest_commit", skip_all, fields(batch = batch.len()))]
async fn commit(db: &Db, batch: Vec<Waiter>) {
    metrics::histogram!("berth_stripe_ingest_batch_size").record(batch.len() as f64);
    let (deliveries, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|w| (w.delivery, w.reply)).unzip();
    let deliveries = Arc::new(deliveries);
    let shared = deliveries.clone();
    let result = db.write(move |c| insert_batch(c, &shared)).await;
    match result {
        Ok(stored) => {
            for (reply, stored) in replies.into_iter().zip(stored) {
                // A waiter that gave up (its client hung up) is no concern: the event is stored.
                let _ = reply.send(Ok(stored));
            }
        }
        Err(error) if replies.len() == 1 => {
            let _ = replies.into_iter().next().expect("one").send(Err(error));
        }
        Err(error) => {
            // One bad delivery must not fail the others: commit them one at a time.
            tracing::warn!(
                error = format!("{error:#}"),
                batch = replies.len(),
                "a shared commit failed; storing its events one by one"
            );
            let deliveries = Arc::try_unwrap(deliveries).unwrap_or_else(|shared| (*shared).clone());
            for (reply, delivery) in replies.into_iter().zip(deliveries) {
                let _ = reply.send(store_one(db, delivery).await);
            }
        }
    }
}
