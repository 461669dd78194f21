//! Storage: one diesel code path over SQLite (the embedded default) and PostgreSQL.
//!
//! Durability rules: SQLite runs in WAL mode with `synchronous=FULL` and a busy timeout;
//! PostgreSQL keeps its durable defaults. Every write transaction goes through [`Db::write`]: one
//! connection per process that runs the transactions waiting at a moment together and commits
//! them once (see `writer`), opening each batch with `BEGIN IMMEDIATE` on SQLite so the lock is
//! taken up front. Stripe ingestion, which batches its own deliveries, may write beside it on
//! PostgreSQL ([`Db::write_in_parallel`]). Reads use the pool ([`Db::run`]). A write returning
//! `Ok` means it is on disk. Functions in the submodules that write expect to be called inside
//! one of these. On SQLite a thread of its own copies the write-ahead log back into the
//! database file (`checkpoint`), so no commit waits for that; statements diesel would prepare
//! on every run are kept prepared (`cached`).

mod cached;
mod checkpoint;
pub mod jobs;
pub mod keys;
pub mod listen;
pub mod outbox;
pub mod plugins;
pub mod rollouts;
pub mod schema;
pub mod sites;
mod states;
pub mod stripe_events;
pub mod versions;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection, Pool};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::configuration::DatabaseSettings;

pub(crate) const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend. Queries written once with diesel's DSL run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How much of a SQLite database each connection maps into memory: reads then copy no page
/// out of the kernel's cache (after every commit, each pooled connection would otherwise read
/// again, with a system call a page, whatever it reads next).
const MMAP_BYTES: u64 = 256 << 20;

/// The page cache of the SQLite connection all writes go through (the others keep SQLite's
/// default of 2 MiB).
const WRITER_CACHE_BYTES: u64 = 64 << 20;

/// Opens connections from a `sqlite://PATH` or `postgres://…` URL, setting SQLite's
/// per-connection pragmas on each new connection. WAL mode is a property of the database file,
/// set once by [`Db::connect`] before any of these connections exist.
#[derive(Debug, Clone)]
struct Manager {
    backend: Backend,
    /// The URL or path handed to the driver. Never logged: it can hold a password.
    target: String,
    busy_timeout_ms: u32,
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match self.backend {
            Backend::Postgres => PgConnection::establish(&self.target)
                .map(DbConnection::Postgresql)
                .map_err(r2d2::Error::ConnectionError),
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.target)
                    .map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {};
                     PRAGMA synchronous = FULL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA mmap_size = {MMAP_BYTES};",
                    self.busy_timeout_ms
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

impl Manager {
    /// A connection of its own, outside the pool (the writer, the checkpointer, the listener).
    fn open(&self) -> anyhow::Result<DbConnection> {
        self.connect().context("failed to connect to the database")
    }
}

/// The connection pool for reads, and the one write path. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    manager: Manager,
    writer: Arc<writer::Writer>,
    /// SQLite only: copies the write-ahead log back into the database file (see `checkpoint`).
    _checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    backend: Backend,
}

impl Db {
    pub fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let url = settings.url.expose();
        let (backend, target) = if let Some(path) = url.strip_prefix("sqlite://") {
            anyhow::ensure!(
                !path.is_empty(),
                "database.url: sqlite:// needs a file path"
            );
            (Backend::Sqlite, path.to_owned())
        } else {
            (Backend::Postgres, url.to_owned())
        };
        let manager = Manager {
            backend,
            target,
            busy_timeout_ms: settings.busy_timeout_ms,
        };
        if backend == Backend::Postgres {
            prepare_postgres_tls();
        }
        if backend == Backend::Sqlite {
            // Switching to WAL takes the write lock. Done on every new connection, the pool's
            // connections (opened in parallel) raced for it on a fresh file, and the loser's
            // "database is locked" was logged as an error before r2d2 retried. The mode is
            // stored in the file, so one connection sets it, before the others open.
            let mut conn = SqliteConnection::establish(&manager.target)
                .context("failed to open the SQLite database")?;
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL;",
                manager.busy_timeout_ms
            ))
            .context("failed to put the SQLite database in WAL mode")?;
        }
        let begin = match backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let writer_manager = manager.clone();
        let writer = Arc::new(writer::Writer::start(
            move || {
                let mut conn = writer_manager.open()?;
                if writer_manager.backend == Backend::Sqlite {
                    // The checkpoint thread copies the log back as it grows (see `checkpoint`);
                    // every write goes through this one connection, and a page cache big enough
                    // for the indexes it touches saves reading pages back on each transaction.
                    conn.batch_execute(&format!(
                        "PRAGMA wal_autocheckpoint = {}; PRAGMA cache_size = -{};",
                        checkpoint::WRITER_CHECKPOINT_FRAMES,
                        WRITER_CACHE_BYTES >> 10
                    ))
                    .context("failed to configure the SQLite writer connection")?;
                }
                Ok(conn)
            },
            begin,
        )?);
        let checkpointer = match backend {
            Backend::Sqlite => Some(Arc::new(checkpoint::Checkpointer::start(manager.open()?)?)),
            Backend::Postgres => None,
        };
        let listen_manager = manager.clone();
        let pool = Pool::builder()
            .max_size(settings.max_connections)
            // A SQLite connection is a file handle: checking it with a query on every checkout
            // only costs time. A PostgreSQL connection can break while it sits in the pool.
            .test_on_check_out(backend == Backend::Postgres)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .context("failed to connect to the database")?;
        Ok(Self {
            pool,
            manager: listen_manager,
            writer,
            _checkpointer: checkpointer,
            backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// On PostgreSQL, wakes `wake` whenever any process commits new jobs (see `listen`), until
    /// the returned listener is dropped. `None` on SQLite, which has no notifications.
    pub fn listen_for_jobs(
        &self,
        wake: Arc<tokio::sync::Notify>,
    ) -> anyhow::Result<Option<listen::Listener>> {
        if self.backend == Backend::Sqlite {
            return Ok(None);
        }
        let manager = self.manager.clone();
        Ok(Some(listen::start(move || manager.open(), wake)?))
    }

    /// Runs `f` in a write transaction on the one write path, sharing its commit with the other
    /// writes waiting at that moment; returns `f`'s value once the commit is durable. When `f`
    /// returns `Err` (or panics), its writes are rolled back and nothing else is affected.
    /// `f` must be pure database work: every writer of the process waits while it runs.
    pub async fn write<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.write(f).await
    }

    /// Like [`Db::write`], for a caller that batches its own writes and gains from commits in
    /// parallel: on PostgreSQL a transaction on a pooled connection (its flushes overlap those
    /// of the write path), on SQLite the one write path (it has one write lock anyway).
    pub async fn write_in_parallel<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        match self.backend {
            Backend::Sqlite => self.write(f).await,
            Backend::Postgres => self.run(move |c| c.transaction(f)).await,
        }
    }

    /// Runs blocking diesel work (reads) on the blocking pool with a pooled connection.
    pub async fn run<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().context("no database connection available")?;
            f(&mut conn)
        })
        .await
        .context("database task panicked")?
    }

    /// Applies pending migrations; safe when several processes start at once.
    pub async fn migrate(&self) -> anyhow::Result<Vec<String>> {
        self.run(|conn| {
            let applied = match conn {
                DbConnection::Postgresql(pg) => {
                    // Serialise concurrent starts: only one process migrates at a time.
                    pg.batch_execute("SELECT pg_advisory_lock(7363746)")?;
                    let result = pg
                        .run_pending_migrations(POSTGRES_MIGRATIONS)
                        .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>());
                    pg.batch_execute("SELECT pg_advisory_unlock(7363746)")?;
                    result
                }
                DbConnection::Sqlite(lite) => {
                    let result = lite
                        .run_pending_migrations(SQLITE_MIGRATIONS)
                        .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
                        .map_err(|e| e.to_string());
                    match result {
                        Ok(applied) => Ok(applied),
                        // Another process may have applied them under our feet.
                        Err(_)
                            if !lite
                                .has_pending_migration(SQLITE_MIGRATIONS)
                                .unwrap_or(true) =>
                        {
                            Ok(Vec::new())
                        }
                        Err(e) => Err(e.into()),
                    }
                }
            };
            let applied =
                applied.map_err(|e| anyhow::anyhow!("failed to apply migrations: {e}"))?;
            versions::fill_missing_hashes(conn)?;
            Ok(applied)
        })
        .await
    }

    /// True when the database answers and has every migration applied.
    pub async fn is_ready(&self) -> bool {
        self.run(|conn| {
            let pending = match conn {
                DbConnection::Postgresql(pg) => pg.has_pending_migration(POSTGRES_MIGRATIONS),
                DbConnection::Sqlite(lite) => lite.has_pending_migration(SQLITE_MIGRATIONS),
            };
            pending.map_err(|e| anyhow::anyhow!("{e}"))
        })
        .await
        .is_ok_and(|pending| !pending)
    }
}

/// Milliseconds since the Unix epoch, the unit of every timestamp column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// True when `error` (anywhere in its chain) is a unique-constraint violation.
/// Call before the first PostgreSQL connection of a process (any connection: a test's or a
/// benchmark's own counts). libpq's TLS is the compiled-in OpenSSL, which by default frees its
/// state in an `atexit` handler; a thread still inside a TLS connection at that moment (the job
/// listener, a pooled connection) then crashes the exiting process. Initialising it first,
/// before libpq does, leaves that handler out. Later calls do nothing.
pub fn prepare_postgres_tls() {
    openssl_sys::init();
}

pub fn is_unique_violation(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<diesel::result::Error>(),
            Some(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use diesel::connection::SimpleConnection;
    use diesel::sql_types::BigInt;
    use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

    use super::Db;
    use crate::configuration::DatabaseSettings;
    use crate::domain::Secret;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// SQLite 3.47+ re-plans a statement whose `LIMIT ?` or partial-index parameter was bound
    /// again, unless the planner stability guarantee is on: every cached diesel statement with
    /// `.first()` would be parsed again on each run. `.cargo/config.toml` builds it in.
    #[test]
    fn the_bundled_sqlite_keeps_one_plan_per_prepared_statement() {
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory database");
        let found: Count = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM pragma_compile_options WHERE compile_options = 'ENABLE_QPSG'",
        )
        .get_result(&mut conn)
        .expect("compile options read");
        assert_eq!(found.n, 1, "SQLite was built without SQLITE_ENABLE_QPSG");
    }

    /// The writer commits without checkpointing; the checkpoint thread copies its log back
    /// into the database file while the process runs.
    #[tokio::test]
    async fn the_log_reaches_the_database_file_while_berth_runs() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("berth.db");
        let db = Db::connect(&DatabaseSettings {
            url: Secret::new(format!("sqlite://{}", path.display())),
            ..DatabaseSettings::default()
        })
        .expect("database opens");
        db.write(|c| Ok(c.batch_execute("CREATE TABLE notes (body TEXT NOT NULL)")?))
            .await
            .expect("table");
        let before = std::fs::metadata(&path).expect("database file").len();
        for _ in 0..50 {
            db.write(|c| Ok(c.batch_execute("INSERT INTO notes VALUES (hex(randomblob(2000)))")?))
                .await
                .expect("row");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&path).expect("database file").len() < before + 100_000 {
            assert!(
                Instant::now() < deadline,
                "the rows stayed in the write-ahead log"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
