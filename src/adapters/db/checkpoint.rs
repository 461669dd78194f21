//! SQLite WAL checkpoints, mostly off the write path.
//!
//! By default the connection whose commit takes the write-ahead log past 1,000 pages copies the
//! log back into the database file (and syncs it) inside that commit. For berth that is the one
//! writer thread, so every writer of the process waited for each checkpoint: a profile of Stripe
//! ingestion at load showed it at a sixth of the writer's time. Here a thread with a connection
//! of its own runs a `PASSIVE` checkpoint every [`INTERVAL`]: it copies what no reader still
//! needs while the writer goes on committing, and takes no lock a writer waits for.
//!
//! That alone would let the log grow without end under steady load: SQLite starts the log
//! afresh only when a write begins after a checkpoint that copied all of it, and with the writer
//! committing all the time, this thread never catches up with the last frame. So the writer
//! still checkpoints, at [`WRITER_CHECKPOINT_FRAMES`]: by then this thread has copied almost
//! everything, the writer's own checkpoint finishes the little left, and its next transaction
//! starts the log at the beginning. The log stays under about 64 MiB; durability is untouched
//! (a commit is on disk once its log frames are synced, before any checkpoint).

use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};

use super::DbConnection;

/// How often the log is copied back. Often enough that the writer's own checkpoint finds
/// little left to copy; a checkpoint with nothing new to copy costs almost nothing.
const INTERVAL: Duration = Duration::from_millis(100);

/// The log length (in pages of 4 KiB) at which a commit of the writer finishes the checkpoint
/// and the log starts again: `PRAGMA wal_autocheckpoint` of the writer's connection.
pub(super) const WRITER_CHECKPOINT_FRAMES: u32 = 16384;

/// What `PRAGMA wal_checkpoint` reports.
#[derive(QueryableByName)]
struct Checkpoint {
    #[diesel(sql_type = BigInt)]
    busy: i64,
    /// Frames in the log.
    #[diesel(sql_type = BigInt)]
    log: i64,
    /// Frames of the log now in the database file.
    #[diesel(sql_type = BigInt)]
    checkpointed: i64,
}

/// The handle to the checkpoint thread, which ends (after one last checkpoint) when the last
/// handle is dropped.
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    pub(super) fn start(conn: DbConnection) -> anyhow::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        std::thread::Builder::new()
            .name("berth-db-checkpoint".into())
            .spawn(move || checkpoint_until_stopped(conn, stopped))
            .context("failed to start the database checkpoint thread")?;
        Ok(Self { _stop: stop })
    }
}

fn checkpoint_until_stopped(mut conn: DbConnection, stopped: mpsc::Receiver<()>) {
    let mut failing = false;
    loop {
        let last = !matches!(
            stopped.recv_timeout(INTERVAL),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        match diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result::<Checkpoint>(&mut conn)
        {
            Ok(done) => {
                failing = false;
                metrics::gauge!("berth_sqlite_wal_frames").set(done.log as f64);
                metrics::gauge!("berth_sqlite_wal_frames_behind")
                    .set((done.log - done.checkpointed).max(0) as f64);
                if done.busy != 0 {
                    tracing::debug!("a WAL checkpoint was blocked; it runs again shortly");
                }
            }
            // Said once per run of failures, not twice a second.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(error = %error, "a SQLite WAL checkpoint failed; retrying");
            }
            Err(_) => {}
        }
        if last {
            return;
        }
    }
}
