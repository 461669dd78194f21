//! Durable Stripe event ingestion: events per second with one commit per event versus group
//! commit (berth's `EventWriter`), on SQLite and (with `--postgres URL`) PostgreSQL, at each
//! concurrency given. Every event is stored exactly as a webhook delivery stores it: the raw
//! event row and its processing job, committed durably (SQLite WAL with `synchronous=FULL`,
//! PostgreSQL with its defaults) before the caller is answered.
//!
//!     cargo bench --bench ingest -- --concurrency 1,8,64 --seconds 5 \
//!         [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--dir DIR]
//!
//! The SQLite files go in `--dir` (default: the current directory) — put them on the disk you
//! want to measure: a tmpfs makes fsync free and the numbers meaningless. For PostgreSQL a
//! throwaway database is created and dropped. Numbers are reported, never asserted.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::adapters::db::jobs::Enqueue;
use berth::adapters::db::stripe_events::NewStripeEvent;
use berth::adapters::db::{now_ms, Db};
use berth::configuration::{DatabaseSettings, JobSettings};
use berth::domain::job::ProcessStripeEvent;
use berth::domain::EventId;
use berth::domain::Secret;
use berth::services::stripe::ingest::{store_one, writers_for, Delivery, EventWriter};
use clap::Parser;
use diesel::{Connection, PgConnection, RunQueryDsl};

#[derive(Parser)]
#[command(about = "Durable Stripe event ingestion: one commit per event vs group commit")]
struct Args {
    /// Concurrent deliveries, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// A PostgreSQL server URL (a role that may CREATE DATABASE); without it, SQLite only.
    #[arg(long, env = "BERTH_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Where the SQLite files go.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    OneCommitPerEvent,
    GroupCommit,
}

struct Measured {
    events: u64,
    commits: u64,
    elapsed: Duration,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

const PAYLOAD: &str = include_str!("../webhooks/stripe/invoice.paid.json");

fn delivery(jobs: &JobSettings, n: u64) -> Delivery {
    let id = EventId::generate();
    let stripe_id = format!("evt_bench{n}{}", &id.as_str()[6..]);
    let payload = PAYLOAD.replacen("evt_1SXdQq2eZvKYlo2CvN2mB5cX", &stripe_id, 1);
    Delivery {
        job: ProcessStripeEvent {
            event_id: id.to_string(),
        }
        .to_new_job(jobs),
        event: NewStripeEvent {
            id: id.to_string(),
            tenant: "default".into(),
            stripe_event_id: stripe_id,
            event_type: "invoice.paid".into(),
            created_at: now_ms(),
            livemode: false,
            api_version: Some("2026-10-28.endive".into()),
            object_id: Some("in_1SXa0c2eZvKYlo2Cw2Rt5YhN".into()),
            customer_id: Some("cus_TSx1rEhAl9BjkQ".into()),
            subscription_id: Some("sub_1SVtEh2eZvKYlo2CfSg3Uy0Q".into()),
            payload,
            outcome: "received".into(),
            received_at: now_ms(),
        },
    }
}

/// The writer tasks berth runs with the default pool size.
fn group_writers(db: &Db) -> usize {
    writers_for(db.backend(), DatabaseSettings::default().max_connections)
}

async fn measure(db: Db, mode: Mode, concurrency: usize, seconds: f64) -> Measured {
    let jobs = JobSettings::default();
    let writer = EventWriter::start(db.clone(), group_writers(&db));
    let stop = Arc::new(AtomicBool::new(false));
    let stored = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (db, writer, stop, stored, jobs) = (
            db.clone(),
            writer.clone(),
            stop.clone(),
            stored.clone(),
            jobs.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = (worker as u64) << 40;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let delivery = delivery(&jobs, n);
                let result = match mode {
                    Mode::OneCommitPerEvent => store_one(&db, delivery).await,
                    Mode::GroupCommit => writer.store(delivery).await,
                };
                result.expect("storing an event works");
                stored.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a delivery task panicked");
    }
    let elapsed = started.elapsed();
    let events = stored.load(Ordering::Relaxed);
    Measured {
        events,
        commits: match mode {
            Mode::OneCommitPerEvent => events,
            Mode::GroupCommit => writer.commits(),
        },
        elapsed,
    }
}

/// A fresh, migrated database for one measurement, and what it takes to drop it.
struct Fresh {
    db: Db,
    drop_pg: Option<(String, String)>,
}

async fn fresh(backend: &str, args: &Args, concurrency: usize, run: usize) -> Fresh {
    let pool = concurrency.clamp(2, 64) as u32;
    let (url, drop_pg) = match backend {
        "sqlite" => {
            let path = args
                .dir
                .join(format!("berth-bench-{}-{run}.db", std::process::id()));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            (format!("sqlite://{}", path.display()), None)
        }
        _ => {
            let base = args.postgres.clone().expect("postgres URL");
            let name = format!("berth_bench_{}_{run}", std::process::id());
            let mut admin =
                PgConnection::establish(&base).expect("the PostgreSQL URL must be reachable");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&mut admin)
                .unwrap();
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .unwrap();
            let (prefix, _) = base
                .rsplit_once('/')
                .expect("a postgres URL ends with /dbname");
            (format!("{prefix}/{name}"), Some((base, name)))
        }
    };
    let db = Db::connect(&DatabaseSettings {
        url: Secret::new(url),
        max_connections: pool,
        busy_timeout_ms: 60_000,
    })
    .expect("connect");
    db.migrate().await.expect("migrate");
    Fresh { db, drop_pg }
}

impl Fresh {
    fn finish(self, args: &Args, run: usize) {
        drop(self.db);
        match self.drop_pg {
            Some((base, name)) => {
                let mut admin = PgConnection::establish(&base).unwrap();
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
            None => {
                let path = args
                    .dir
                    .join(format!("berth-bench-{}-{run}.db", std::process::id()));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
        }
    }
}

async fn durability(db: &Db) -> String {
    db.run(|c| {
        use diesel::sql_types::Text;
        #[derive(diesel::QueryableByName)]
        struct Setting {
            #[diesel(sql_type = Text)]
            value: String,
        }
        let setting =
            |c: &mut berth::adapters::db::DbConnection, sql: &str| -> anyhow::Result<String> {
                Ok(diesel::sql_query(sql).get_result::<Setting>(c)?.value)
            };
        Ok(match c {
            berth::adapters::db::DbConnection::Sqlite(_) => format!(
                "journal_mode={}, synchronous={} (2 = FULL)",
                setting(c, "SELECT journal_mode AS value FROM pragma_journal_mode")?,
                setting(
                    c,
                    "SELECT CAST(synchronous AS TEXT) AS value FROM pragma_synchronous"
                )?
            ),
            berth::adapters::db::DbConnection::Postgresql(_) => format!(
                "synchronous_commit={}, fsync={}",
                setting(
                    c,
                    "SELECT setting AS value FROM pg_settings WHERE name = 'synchronous_commit'"
                )?,
                setting(
                    c,
                    "SELECT setting AS value FROM pg_settings WHERE name = 'fsync'"
                )?
            ),
        })
    })
    .await
    .unwrap_or_else(|e| format!("unknown ({e:#})"))
}

#[tokio::main]
async fn main() {
    // Before this process's first PostgreSQL connection (see the function).
    berth::adapters::db::prepare_postgres_tls();
    let args = Args::parse();
    let mut backends = vec!["sqlite"];
    if args.postgres.is_some() {
        backends.push("postgres");
    }
    println!(
        "durable Stripe event ingestion (event row + job per event), {:.1} s per measurement",
        args.seconds
    );
    let mut run = 0;
    for backend in backends {
        let probe = fresh(backend, &args, 2, run).await;
        println!(
            "\n{backend}: {}; group commit with {} writer task(s), one commit per event with a pool \
             of one connection per concurrent delivery (at most 64)",
            durability(&probe.db).await,
            group_writers(&probe.db)
        );
        probe.finish(&args, run);
        println!(
            "{:>11}  {:>22}  {:>22}  {:>7}  {:>16}",
            "concurrency", "one commit per event", "group commit", "ratio", "events/commit"
        );
        for &concurrency in &args.concurrency {
            let mut results = Vec::new();
            for mode in [Mode::OneCommitPerEvent, Mode::GroupCommit] {
                run += 1;
                let fresh = fresh(backend, &args, concurrency, run).await;
                results.push(measure(fresh.db.clone(), mode, concurrency, args.seconds).await);
                fresh.finish(&args, run);
            }
            let (one, group) = (&results[0], &results[1]);
            println!(
                "{:>11}  {:>16.0} ev/s  {:>16.0} ev/s  {:>6.1}x  {:>16.1}",
                concurrency,
                one.per_second(),
                group.per_second(),
                group.per_second() / one.per_second(),
                group.events as f64 / group.commits.max(1) as f64
            );
        }
    }
}
