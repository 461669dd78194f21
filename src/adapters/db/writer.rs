//! The one write path: every write transaction of the process runs on one connection, in one
//! thread, and concurrent writes share commits.
//!
//! Why: SQLite has one write lock. With writers spread over a pool, a writer that finds the lock
//! taken sleeps in SQLite's busy handler (in growing steps) while the disk sits idle, and every
//! write pays a commit (an fsync) of its own. Here a writer hands its transaction body to the
//! writer thread and waits; the thread takes every body waiting at that moment, runs each in a
//! savepoint of one transaction (so one body's error rolls back only its own writes), commits
//! once, and only then answers each waiter. Nobody is answered before the commit that holds
//! their writes is durable (SQLite `synchronous=FULL`, PostgreSQL's durable defaults), so a
//! returned `Ok` still means "on disk"; throughput comes from sharing each fsync, never from
//! acknowledging early. PostgreSQL gets the same path: there it turns the worker's many small
//! transactions (claims, Stripe events applied one per tenant at a time, outcomes) into few
//! commits, and jobs that wait their turn hold no pooled connection that requests need.
//!
//! A body must be pure database work: it holds the write path while it runs.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::connection::SimpleConnection;
use tokio::sync::oneshot;

use super::DbConnection;

/// The most transaction bodies one commit takes.
const MAX_BATCH: usize = 512;
/// A batch stops taking new bodies once it has run this long, so the first waiter of a busy
/// batch is answered soon.
const MAX_BATCH_TIME: Duration = Duration::from_millis(5);

/// A transaction body waiting for the writer thread, with the channel to answer its waiter.
trait Pending: Send {
    /// Runs the body in a savepoint of the open transaction. `Err` means the savepoint could not
    /// be closed, so the transaction itself is lost (the batch must roll back).
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Result<Box<dyn Answer>, Box<dyn Answer>>;
    /// Answers without running (the transaction could not begin).
    fn refuse(self: Box<Self>, why: &str);
    /// When the body was handed to the writer.
    fn queued(&self) -> Instant;
}

/// A body that ran, waiting for its batch's commit.
trait Answer: Send {
    /// `Ok` once the batch is committed, `Err` with the reason when it is not.
    fn send(self: Box<Self>, committed: Result<(), &str>);
}

struct Body<F, T> {
    f: F,
    answer: oneshot::Sender<anyhow::Result<T>>,
    queued: Instant,
}

struct Ran<T> {
    result: anyhow::Result<T>,
    answer: oneshot::Sender<anyhow::Result<T>>,
}

impl<F, T> Pending for Body<F, T>
where
    F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Result<Box<dyn Answer>, Box<dyn Answer>> {
        let Body { f, answer, .. } = *self;
        match in_savepoint(conn, f) {
            Ok(result) => Ok(Box::new(Ran { result, answer })),
            Err(lost) => Err(Box::new(Ran {
                result: Err(lost),
                answer,
            })),
        }
    }

    fn refuse(self: Box<Self>, why: &str) {
        // A waiter that gave up (its request was dropped) is no concern, here and below.
        let _ = self.answer.send(Err(anyhow::anyhow!("{why}")));
    }

    fn queued(&self) -> Instant {
        self.queued
    }
}

impl<T: Send> Answer for Ran<T> {
    fn send(self: Box<Self>, committed: Result<(), &str>) {
        let result = match (self.result, committed) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(why)) => Err(anyhow::anyhow!("the commit failed: {why}")),
            (Err(error), _) => Err(error),
        };
        let _ = self.answer.send(result);
    }
}

/// The handle to the writer thread. The thread ends when the last handle is dropped.
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Pending>>,
}

impl Writer {
    /// Starts the writer thread with a connection from `connect` (called again to reconnect
    /// when the connection breaks); `begin` is the statement that opens a write transaction
    /// (`BEGIN IMMEDIATE` on SQLite, so the lock is taken up front).
    pub(super) fn start(
        connect: impl Fn() -> anyhow::Result<DbConnection> + Send + 'static,
        begin: &'static str,
    ) -> anyhow::Result<Self> {
        let conn = connect()?;
        let (queue, waiting) = mpsc::channel::<Box<dyn Pending>>();
        std::thread::Builder::new()
            .name("berth-db-writer".into())
            .spawn(move || write_batches(conn, connect, begin, waiting))
            .context("failed to start the database writer thread")?;
        Ok(Self { queue })
    }

    /// Runs `f` in a write transaction shared with the other writes waiting now; returns its
    /// value once the transaction is committed. When `f` fails, its writes are rolled back and
    /// its error returned; the others' writes are unaffected.
    pub(super) async fn write<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Box::new(Body {
                f,
                answer,
                queued: Instant::now(),
            }))
            .map_err(|_| anyhow::anyhow!("the database writer has stopped"))?;
        answered
            .await
            .map_err(|_| anyhow::anyhow!("the database writer stopped before answering"))?
    }
}

/// Opens a write transaction; when that fails (the server restarted, the connection broke),
/// connects again once and retries.
fn begin_or_reconnect(
    conn: &mut DbConnection,
    connect: &impl Fn() -> anyhow::Result<DbConnection>,
    begin: &str,
) -> anyhow::Result<()> {
    if conn.batch_execute(begin).is_ok() {
        return Ok(());
    }
    // Whatever state the old connection is in, it holds no transaction of ours.
    let _ = conn.batch_execute("ROLLBACK");
    if conn.batch_execute(begin).is_ok() {
        return Ok(());
    }
    tracing::warn!("the database writer's connection failed; connecting again");
    *conn = connect()?;
    Ok(conn.batch_execute(begin)?)
}

/// Runs `f` between `SAVEPOINT` and `RELEASE`, or rolls back to the savepoint when it fails or
/// panics. The outer `Err` means the savepoint could not be opened or closed: the transaction
/// is lost.
fn in_savepoint<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> anyhow::Result<T>,
) -> anyhow::Result<anyhow::Result<T>> {
    conn.batch_execute("SAVEPOINT berth_write")
        .context("failed to open a savepoint")?;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a database write panicked")));
    let end = if result.is_ok() {
        "RELEASE berth_write"
    } else {
        "ROLLBACK TO berth_write; RELEASE berth_write"
    };
    conn.batch_execute(end)
        .context("failed to close a savepoint")?;
    Ok(result)
}

/// The writer thread: one transaction per batch of waiting bodies.
fn write_batches(
    mut conn: DbConnection,
    connect: impl Fn() -> anyhow::Result<DbConnection>,
    begin: &'static str,
    waiting: mpsc::Receiver<Box<dyn Pending>>,
) {
    while let Ok(first) = waiting.recv() {
        if let Err(error) = begin_or_reconnect(&mut conn, &connect, begin) {
            first.refuse(&format!("failed to begin a write transaction: {error:#}"));
            continue;
        }
        let started = Instant::now();
        let mut ran: Vec<Box<dyn Answer>> = Vec::new();
        let mut lost = false;
        let mut next = Some(first);
        while let Some(body) = next.take() {
            metrics::histogram!("berth_writer_wait_seconds", "writer" => "db")
                .record(body.queued().elapsed().as_secs_f64());
            match body.run(&mut conn) {
                Ok(answer) => ran.push(answer),
                Err(answer) => {
                    ran.push(answer);
                    lost = true;
                    break;
                }
            }
            if ran.len() < MAX_BATCH && started.elapsed() < MAX_BATCH_TIME {
                next = waiting.try_recv().ok();
            }
        }
        let ran_for = started.elapsed();
        let committed = if lost {
            let _ = conn.batch_execute("ROLLBACK");
            Err("the transaction was lost (a savepoint could not be closed)".to_owned())
        } else {
            conn.batch_execute("COMMIT").map_err(|error| {
                let _ = conn.batch_execute("ROLLBACK");
                error.to_string()
            })
        };
        metrics::histogram!("berth_writer_run_seconds", "writer" => "db")
            .record(ran_for.as_secs_f64());
        metrics::histogram!("berth_writer_commit_seconds", "writer" => "db")
            .record((started.elapsed() - ran_for).as_secs_f64());
        metrics::counter!("berth_writer_commits_total", "writer" => "db").increment(1);
        metrics::histogram!("berth_writer_batch_size", "writer" => "db").record(ran.len() as f64);
        if let Err(why) = &committed {
            tracing::error!(error = %why, batch = ran.len(), "a shared commit failed");
        }
        for answer in ran {
            answer.send(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}
