//! Waking workers across processes on PostgreSQL: every commit that enqueues jobs sends
//! `NOTIFY berth_jobs` (see `jobs::insert`), and each worker keeps one connection that
//! `LISTEN`s and wakes its claim loop, so a job enqueued by any replica starts within moments
//! instead of at the next poll. Within one process the enqueuer wakes the worker directly; the
//! poll stays as the fallback for anything missed (a dropped listener connection, SQLite, which
//! has no notifications, or a retry whose time has come).
//!
//! diesel reads notifications without blocking, so the listener thread checks its socket every
//! [`CHECK_EVERY`]: one system call, no query.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::PgConnection;
use tokio::sync::Notify;

use super::DbConnection;

/// The channel of job notifications.
pub const JOBS_CHANNEL: &str = "berth_jobs";

/// How often the listener looks for notifications that arrived.
const CHECK_EVERY: Duration = Duration::from_millis(10);
/// How long the listener waits before connecting again after its connection failed.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);

/// Sends the job notification; delivered when the surrounding transaction commits, once per
/// transaction however many jobs it enqueued (PostgreSQL folds identical notifications).
pub(super) fn notify_jobs(pg: &mut PgConnection) -> diesel::QueryResult<()> {
    pg.batch_execute(&format!("NOTIFY {JOBS_CHANNEL}"))
}

/// The running listener; it stops when this is dropped.
pub struct Listener {
    stop: Arc<AtomicBool>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the listener thread: connections come from `connect`, and every notification on
/// [`JOBS_CHANNEL`] wakes `wake`.
pub(super) fn start(
    connect: impl Fn() -> anyhow::Result<DbConnection> + Send + 'static,
    wake: Arc<Notify>,
) -> anyhow::Result<Listener> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("berth-db-listen".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if let Err(error) = listen(&connect, &wake, &stopped) {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        retry_secs = RECONNECT_AFTER.as_secs(),
                        "the job notification listener lost its connection; workers poll until it is back"
                    );
                    std::thread::sleep(RECONNECT_AFTER);
                }
            }
        })?;
    Ok(Listener { stop })
}

/// Listens on one connection until `stop` is set (`Ok`) or the connection fails (`Err`).
fn listen(
    connect: &impl Fn() -> anyhow::Result<DbConnection>,
    wake: &Notify,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let DbConnection::Postgresql(mut pg) = connect()? else {
        anyhow::bail!("notifications need PostgreSQL");
    };
    pg.batch_execute(&format!("LISTEN {JOBS_CHANNEL}"))?;
    // Jobs enqueued while the listener was not listening are found by this claim.
    wake.notify_one();
    while !stop.load(Ordering::Relaxed) {
        let mut woken = false;
        for notification in pg.notifications_iter() {
            notification?;
            woken = true;
        }
        if woken {
            wake.notify_one();
        }
        std::thread::sleep(CHECK_EVERY);
    }
    Ok(())
}
