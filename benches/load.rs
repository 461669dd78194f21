//! The whole `berth serve` under load, as users run it: the release binary (API and worker in one
//! process, the embedded default with the example policies, local runtime) on loopback, driven
//! over HTTP. Every scenario runs on a fresh database, for each binary given, alternating the
//! baseline and the candidate in the same run; the report puts them side by side with the ratio
//! candidate / baseline.
//!
//!     cargo build --release
//!     cargo bench --bench load -- [--baseline PREVIOUS_BERTH] [--candidate BERTH] \
//!         [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--dir DIR] \
//!         [--seconds 10] [--steady-seconds 60] [--drain-sizes 1000,100000] \
//!         [--scenarios stripe,steady,drain,signups] [--postgres-only] [--history N]
//!
//! Scenarios:
//! - `stripe`: signed Stripe deliveries at `--connections` (64) for `--seconds`, worker on: a mix
//!   of `checkout.session.completed` for sites created first by signups to a tenant with
//!   `payment_required = true`, `customer.subscription.updated` and event types berth ignores.
//!   Events/s, p50/p99 of the 200s, events per commit (`berth_stripe_ingest_batch_size` from
//!   `/metrics`) and how long after the load every stored event is processed.
//! - `steady`: the same mix paced at `--steady-rate` (1,000/s, open loop) for `--steady-seconds`;
//!   the backlog of unprocessed events sampled every second, and the time to empty it afterwards.
//! - `drain`: N events of an unknown type stored by `berth serve --no-worker`, then berth started
//!   with the worker: jobs/s until every `stripe_event` job has succeeded, at each size, and the
//!   per-job cost of the largest size over the smallest.
//! - `signups`: JSON signups with unique names at `--connections` for `--seconds`, example
//!   policies on: accepted signups/s, p50/p99, the time from each `201` to the site being `ready`
//!   and how long until all are ready.
//!
//! The SQLite files go in a new directory under `--dir` (default: the current directory) — put
//! it on the disk you want to measure: a tmpfs makes fsync free and the numbers meaningless. With
//! `--postgres` a throwaway database is created and dropped on that server for each run.
//! `--history N` first writes N succeeded jobs and N applied events into each fresh database, to
//! show that a long history does not slow claims or ingestion. Numbers are reported, never
//! asserted. Only what every version of berth has is relied on: the
//! HTTP API, the database schema of `migrations/` and the batch-size histogram.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::{mpsc, Semaphore};

#[derive(Parser)]
#[command(about = "The whole `berth serve` under load, baseline beside candidate")]
struct Args {
    /// A second `berth` binary to compare with (e.g. the previous main's release build).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// The `berth` binary under test; default: this build's release binary.
    #[arg(long)]
    candidate: Option<PathBuf>,
    /// A PostgreSQL server URL (a role that may CREATE DATABASE); without it, SQLite only.
    #[arg(long, env = "BERTH_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Where the directory of SQLite files, logs and outboxes goes (a real disk).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Seconds of load in the `stripe` and `signups` scenarios.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of paced load in the `steady` scenario.
    #[arg(long, default_value_t = 60.0)]
    steady_seconds: f64,
    /// Events per second in the `steady` scenario.
    #[arg(long, default_value_t = 1000.0)]
    steady_rate: f64,
    /// Backlog sizes of the `drain` scenario, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    drain_sizes: Vec<u64>,
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "stripe,steady,drain,signups"
    )]
    scenarios: Vec<Scenario>,
    /// Concurrent connections of the closed-loop scenarios.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Paid-tenant sites created before the Stripe scenarios (their checkouts cycle over them).
    #[arg(long, default_value_t = 1000)]
    sites: u64,
    /// Only PostgreSQL (with `--postgres`): skip the SQLite runs.
    #[arg(long)]
    postgres_only: bool,
    /// Rows of history (succeeded jobs and applied Stripe events, a day old) written into
    /// each fresh database before its load: claims and ingestion should not care.
    #[arg(long, default_value_t = 0)]
    history: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Stripe,
    Steady,
    Drain,
    Signups,
}

/// The webhook secret of tenant `default` in every run.
const SECRET: &str = "whsec_load_benchmark_not_a_real_secret";
/// Open-loop requests allowed in flight before pacing has to wait for answers.
const MAX_IN_FLIGHT: usize = 2048;
/// How long a backlog may take to empty before the run gives up waiting.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(600);

const BACKLOG_SQL: &str = "SELECT COUNT(*) AS n FROM stripe_events WHERE outcome = 'received'";
const EVENT_JOBS_LEFT_SQL: &str =
    "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'stripe_event' AND state IN ('queued', 'running')";
const READY_SQL: &str = "SELECT COUNT(*) AS n FROM sites WHERE state = 'ready'";

// ---------------------------------------------------------------------------------------------
// Binaries, backends and fresh databases

struct Binary {
    label: &'static str,
    path: PathBuf,
    /// Settings this binary knows beyond what every version has (a version that predates a key
    /// refuses it as unknown), to lift its per-client limits out of the load generator's way.
    extra_env: Vec<(String, String)>,
}

/// Limits newer versions have that one loopback client running the load would hit.
const NEWER_LIMITS: [(&str, &str); 2] = [
    ("BERTH_SERVER__MAX_CONNECTIONS_PER_IP", "100000"),
    (
        "BERTH_RATE_LIMITS__STRIPE_INVALID_PER_IP",
        "{ per_second = 1000000, burst = 1000000 }",
    ),
];

/// The settings of `NEWER_LIMITS` that `binary` accepts (`berth config check` with each one).
fn known_limits(binary: &Path) -> Vec<(String, String)> {
    NEWER_LIMITS
        .iter()
        .filter(|(key, value)| {
            std::process::Command::new(binary)
                .args(["config", "check"])
                .env(key, value)
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// This build's release `berth`: the one cargo built beside the bench, else the target dir's.
fn default_candidate() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_berth") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("release").join("berth")
}

fn binaries(args: &Args) -> Vec<Binary> {
    let candidate = args.candidate.clone().unwrap_or_else(default_candidate);
    assert!(
        candidate.is_file(),
        "no berth binary at {}: run `cargo build --release` first (or give --candidate)",
        candidate.display()
    );
    let mut binaries = Vec::new();
    if let Some(baseline) = &args.baseline {
        assert!(
            baseline.is_file(),
            "no baseline binary at {}",
            baseline.display()
        );
        binaries.push(Binary {
            label: "baseline",
            extra_env: known_limits(baseline),
            path: baseline.clone(),
        });
    }
    binaries.push(Binary {
        label: "candidate",
        extra_env: known_limits(&candidate),
        path: candidate,
    });
    binaries
}

#[derive(Clone)]
enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    fn label(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// One run's database: a SQLite file or a throwaway PostgreSQL database.
struct Database {
    url: String,
    backend: Backend,
    pg_name: Option<String>,
}

impl Database {
    fn create(backend: &Backend, dir: &Path, run: usize) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}", dir.join(format!("run-{run}.db")).display()),
                backend: backend.clone(),
                pg_name: None,
            },
            Backend::Postgres(server) => {
                let name = format!("berth_load_{}_{run}", std::process::id());
                let mut admin =
                    PgConnection::establish(server).expect("the PostgreSQL URL must be reachable");
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut admin)
                    .expect("drop an old bench database");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create the bench database");
                let (prefix, _) = server
                    .rsplit_once('/')
                    .expect("a postgres URL ends with /dbname");
                Self {
                    url: format!("{prefix}/{name}"),
                    backend: backend.clone(),
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A connection of the bench's own, to watch what berth stored (open it once berth migrated).
    fn probe(&self) -> Probe {
        let conn = match self.backend {
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                let mut conn = SqliteConnection::establish(path).expect("open the SQLite file");
                diesel::sql_query("PRAGMA busy_timeout = 60000")
                    .execute(&mut conn)
                    .expect("set busy_timeout");
                ProbeConn::Sqlite(conn)
            }
            Backend::Postgres(_) => ProbeConn::Postgres(
                PgConnection::establish(&self.url).expect("connect to the bench database"),
            ),
        };
        Probe(Arc::new(Mutex::new(conn)))
    }

    /// Drops the PostgreSQL database (the SQLite files go with the run directory).
    fn finish(self) {
        if let (Backend::Postgres(server), Some(name)) = (&self.backend, &self.pg_name) {
            let mut admin = PgConnection::establish(server).expect("reach PostgreSQL");
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin);
        }
    }
}

enum ProbeConn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Runs one diesel query on whichever backend the probe holds.
macro_rules! on_probe {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            ProbeConn::Sqlite($c) => $body,
            ProbeConn::Postgres($c) => $body,
        }
    };
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct ReadySite {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    updated_at: i64,
}

#[derive(diesel::QueryableByName)]
struct Span {
    #[diesel(sql_type = Nullable<BigInt>)]
    first: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    last: Option<i64>,
}

#[derive(Clone)]
struct Probe(Arc<Mutex<ProbeConn>>);

impl Probe {
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ProbeConn) -> T + Send + 'static,
    ) -> T {
        let conn = self.0.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock().expect("probe lock")))
            .await
            .expect("a probe query panicked")
    }

    async fn count(&self, sql: &'static str) -> i64 {
        self.with(move |conn| {
            on_probe!(conn, c => diesel::sql_query(sql).get_result::<Count>(c))
                .expect("count rows")
                .n
        })
        .await
    }

    /// Every ready site with the time it turned ready (its last update), in Unix ms.
    async fn ready_sites(&self) -> Vec<(String, i64)> {
        let sql = "SELECT id, updated_at FROM sites WHERE state = 'ready'";
        self.with(move |conn| {
            on_probe!(conn, c => diesel::sql_query(sql).load::<ReadySite>(c))
                .expect("read ready sites")
                .into_iter()
                .map(|s| (s.id, s.updated_at))
                .collect()
        })
        .await
    }

    /// When the first and the last `stripe_event` job finished, in Unix ms, and how many jobs
    /// finished at that first instant (one batch of outcomes).
    async fn event_jobs_span(&self) -> (i64, i64, i64) {
        self.with(|conn| {
            let span = on_probe!(conn, c => diesel::sql_query(
                "SELECT MIN(updated_at) AS first, MAX(updated_at) AS last FROM jobs \
                 WHERE kind = 'stripe_event' AND state = 'succeeded'"
            )
            .get_result::<Span>(c))
            .expect("read the job span");
            let first = span.first.unwrap_or(0);
            let at_first = on_probe!(conn, c => diesel::sql_query(format!(
                "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'stripe_event' \
                 AND state = 'succeeded' AND updated_at = {first}"
            ))
            .get_result::<Count>(c))
            .expect("count the first batch")
            .n;
            (first, span.last.unwrap_or(0), at_first)
        })
        .await
    }

    /// Writes `rows` succeeded jobs and as many applied events, finished a day ago, in one
    /// statement each (as years of a busy tenant's history would leave them).
    async fn seed_history(&self, rows: u64) {
        let at = unix_ms() - 24 * 3600 * 1000;
        self.with(move |conn| {
            let series = match conn {
                ProbeConn::Sqlite(_) => format!(
                    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {rows}) \
                     SELECT x FROM n"
                ),
                ProbeConn::Postgres(_) => format!("SELECT x FROM generate_series(1, {rows}) AS x"),
            };
            let jobs = format!(
                "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, \
                 created_at, updated_at) \
                 SELECT 'job_history_' || x, 'send_email', '{{}}', 'succeeded', 1, 12, \
                 {at} - x, {at} - x, {at} - x FROM ({series}) AS s"
            );
            let events = format!(
                "INSERT INTO stripe_events (id, tenant, stripe_event_id, event_type, created_at, \
                 livemode, payload, outcome, received_at, processed_at) \
                 SELECT 'event_history_' || x, 'default', 'evt_history_' || x, 'invoice.paid', \
                 {at} - x, false, '{{}}', 'applied', {at} - x, {at} - x FROM ({series}) AS s"
            );
            for sql in [jobs, events] {
                on_probe!(conn, c => diesel::sql_query(&sql).execute(c)).expect("write history");
            }
        })
        .await;
    }

    /// How long until `sql` counts zero rows, polling; `None` if it never does.
    async fn time_until_zero(&self, sql: &'static str) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < SETTLE_TIMEOUT {
            if self.count(sql).await == 0 {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The server under test

struct Berth {
    child: tokio::process::Child,
    api: String,
    log: PathBuf,
}

/// How one `berth serve` process is started.
struct Launch<'a> {
    binary: &'a Binary,
    database: &'a Database,
    dir: &'a Path,
    run: usize,
    worker: bool,
    payment_required: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The configuration of a run, all from the environment: rate limits far above the load.
fn environment(launch: &Launch, port: u16) -> Vec<(String, String)> {
    let unlimited = "{ per_second = 1000000, burst = 1000000 }".to_owned();
    let mut env = vec![
        ("BERTH_SERVER__LISTEN".into(), format!("127.0.0.1:{port}")),
        (
            "BERTH_SERVER__SITES_LISTEN".into(),
            format!("127.0.0.1:{}", free_port()),
        ),
        ("BERTH_DATABASE__URL".into(), launch.database.url.clone()),
        ("BERTH_EMAIL__TRANSPORT".into(), "file".into()),
        (
            "BERTH_EMAIL__DIR".into(),
            launch
                .dir
                .join(format!("outbox-{}", launch.run))
                .display()
                .to_string(),
        ),
        ("BERTH_LOG__LEVEL".into(), "warn".into()),
        ("BERTH_LOG__FORMAT".into(), "json".into()),
        ("RUST_LOG".into(), "warn".into()),
        (
            "BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS".into(),
            format!("[\"{SECRET}\"]"),
        ),
        (
            "BERTH_TENANTS__DEFAULT__PAYMENT_REQUIRED".into(),
            launch.payment_required.to_string(),
        ),
    ];
    if launch.payment_required {
        env.push((
            "BERTH_TENANTS__DEFAULT__CHECKOUT_URL".into(),
            "https://checkout.example/pay".into(),
        ));
    }
    for limit in [
        "SIGNUP_PER_IP",
        "SIGNUP_PER_EMAIL",
        "SIGNUP_PER_TENANT",
        "STRIPE_PER_TENANT",
        "ADMIN_PER_TOKEN",
    ] {
        env.push((format!("BERTH_RATE_LIMITS__{limit}"), unlimited.clone()));
    }
    env.extend(launch.binary.extra_env.iter().cloned());
    env
}

impl Berth {
    /// Starts `berth serve` from the repository root (so the embedded default finds the example
    /// policies) and waits for `/readyz`.
    async fn start(launch: Launch<'_>, client: &reqwest::Client) -> Self {
        let port = free_port();
        let log = launch.dir.join(format!(
            "berth-{}-{}.log",
            launch.run,
            if launch.worker { "serve" } else { "no-worker" }
        ));
        let out = std::fs::File::create(&log).expect("create the server log");
        let mut command = tokio::process::Command::new(&launch.binary.path);
        command
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("BERTH_CONFIG")
            .envs(environment(&launch, port))
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("clone the log handle"))
            .stderr(out)
            .kill_on_drop(true);
        if !launch.worker {
            command.arg("--no-worker");
        }
        let child = command.spawn().expect("start berth");
        let mut berth = Self {
            child,
            api: format!("http://127.0.0.1:{port}"),
            log,
        };
        berth.wait_ready(client).await;
        berth
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "berth exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                );
            }
            let ready = client.get(format!("{}/readyz", self.api)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "berth was not ready within 120 s:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then wait for it to exit (killed if it takes over a minute).
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let waited = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
        if waited.is_err() {
            eprintln!("  berth did not stop within 60 s of SIGTERM; killing it");
            let _ = self.child.kill().await;
        }
        for (message, n) in self.log_summary() {
            eprintln!("  berth logged x{n}: {message}");
        }
    }

    /// The distinct messages berth logged (warn and above), most frequent first.
    fn log_summary(&self) -> Vec<(String, usize)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for line in text.lines() {
            let message = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(entry) => format!(
                    "{} {}: {} {}",
                    entry["level"].as_str().unwrap_or("?"),
                    entry["target"].as_str().unwrap_or("?"),
                    entry["message"].as_str().unwrap_or("?"),
                    entry["outcome"].as_str().unwrap_or("")
                ),
                Err(_) => line.chars().take(160).collect(),
            };
            *counts.entry(message).or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts.truncate(5);
        counts
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `berth_stripe_ingest_batch_size` `(count, sum)`: commits and events committed so far.
    async fn batch_histogram(&self, client: &reqwest::Client) -> (f64, f64) {
        let text = match client.get(format!("{}/metrics", self.api)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let metric = |name: &str| -> f64 {
            text.lines()
                .filter(|l| l.split([' ', '{']).next() == Some(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            metric("berth_stripe_ingest_batch_size_count"),
            metric("berth_stripe_ingest_batch_size_sum"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Requests: signed Stripe deliveries and signups

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64
}

/// `Stripe-Signature` exactly as Stripe computes it: `t=…,v1=hex(HMAC-SHA256(secret, "t.body"))`.
fn sign(body: &str) -> String {
    let t = unix_ms() / 1000;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Event bodies from the examples in `webhooks/stripe/`, with placeholders for what varies.
struct Events {
    checkout: String,
    subscription: String,
    unknown: String,
}

fn template(json: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut event: serde_json::Value = serde_json::from_str(json).expect("an example event");
    event["id"] = "evt_load@@N@@".into();
    event["created"] = "@@CREATED@@".into();
    edit(&mut event);
    serde_json::to_string(&event).expect("serialise an event")
}

impl Events {
    fn new() -> Self {
        let checkout = template(
            include_str!("../webhooks/stripe/checkout.session.completed.json"),
            |e| {
                let session = &mut e["data"]["object"];
                session["id"] = "cs_test_load@@N@@".into();
                session["client_reference_id"] = "@@SITE@@".into();
                session["customer"] = "cus_load@@I@@".into();
                session["subscription"] = "sub_load@@I@@".into();
            },
        );
        let subscription = template(
            include_str!("../webhooks/stripe/customer.subscription.updated.active.json"),
            |e| {
                let subscription = &mut e["data"]["object"];
                subscription["id"] = "sub_load@@I@@".into();
                subscription["customer"] = "cus_load@@I@@".into();
            },
        );
        let unknown = template(include_str!("../webhooks/stripe/invoice.paid.json"), |e| {
            e["type"] = "payment_intent.created".into()
        });
        Self {
            checkout,
            subscription,
            unknown,
        }
    }

    fn fill(template: &str, n: u64, site: Option<(u64, &str)>) -> String {
        let body = template
            .replace("@@N@@", &n.to_string())
            .replace("\"@@CREATED@@\"", &(unix_ms() / 1000).to_string());
        match site {
            Some((i, id)) => body
                .replace("@@I@@", &i.to_string())
                .replace("@@SITE@@", id),
            None => body,
        }
    }

    /// The `n`th event of the realistic mix: a quarter checkouts (cycling over `sites`), a
    /// quarter subscription updates of the same sites, half event types berth ignores.
    fn mixed(&self, n: u64, sites: &[String]) -> String {
        let i = (n / 4) % sites.len().max(1) as u64;
        let site = sites.get(i as usize).map(|id| (i, id.as_str()));
        match (n % 4, site) {
            (0, Some(site)) => Self::fill(&self.checkout, n, Some(site)),
            (1, Some(site)) => Self::fill(&self.subscription, n, Some(site)),
            _ => self.unknown(n),
        }
    }

    fn unknown(&self, n: u64) -> String {
        Self::fill(&self.unknown, n, None)
    }
}

/// One request's result. `status` 0 is a transport error.
struct Sample {
    status: u16,
    latency: Duration,
    /// For a `201` signup: the site id and when the answer arrived (Unix ms).
    site: Option<(String, i64)>,
}

async fn post_event(client: &reqwest::Client, api: &str, body: String) -> Sample {
    let started = Instant::now();
    let response = client
        .post(format!("{api}/webhooks/stripe"))
        .header("Content-Type", "application/json; charset=utf-8")
        .header("Stripe-Signature", sign(&body))
        .body(body)
        .send()
        .await;
    let status = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    };
    Sample {
        status,
        latency: started.elapsed(),
        site: None,
    }
}

/// A name no example policy objects to: letters only (the digit limit), long enough that no
/// protected brand is one edit away.
fn site_name(n: u64) -> String {
    let mut suffix = String::new();
    let mut rest = n;
    for _ in 0..8 {
        suffix.push((b'a' + (rest % 26) as u8) as char);
        rest /= 26;
    }
    format!("load-{suffix}")
}

async fn post_signup(client: &reqwest::Client, api: &str, n: u64) -> Sample {
    let name = site_name(n);
    let body = serde_json::json!({
        "name": name,
        "email": format!("{name}@example.com"),
        "html": format!("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
            <title>{name}</title></head><body><h1>{name}</h1><p>Open every day.</p></body></html>"),
    });
    let started = Instant::now();
    let response = client
        .post(format!("{api}/signup"))
        .header("Accept", "application/json")
        .json(&body)
        .send()
        .await;
    let Ok(response) = response else {
        return Sample {
            status: 0,
            latency: started.elapsed(),
            site: None,
        };
    };
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    let latency = started.elapsed();
    let site = answer["id"].as_str().map(|id| (id.to_owned(), unix_ms()));
    Sample {
        status,
        latency,
        site,
    }
}

// ---------------------------------------------------------------------------------------------
// Load generators

/// What a load generator saw.
#[derive(Default)]
struct Tally {
    /// Latencies of the 2xx answers.
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    sites: Vec<(String, i64)>,
    elapsed: Duration,
}

impl Tally {
    fn add(&mut self, sample: Sample) {
        *self.statuses.entry(sample.status).or_default() += 1;
        if (200..300).contains(&sample.status) {
            self.latencies.push(sample.latency);
        }
        self.sites.extend(sample.site);
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.sites.extend(other.sites);
    }

    fn ok(&self) -> u64 {
        self.latencies.len() as u64
    }

    fn per_second(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile of the 2xx latencies, in ms.
    fn quantile_ms(&mut self, q: f64) -> f64 {
        self.latencies.sort_unstable();
        quantile(&self.latencies, q).as_secs_f64() * 1000.0
    }

    /// Answers other than 2xx, e.g. `429 x12, 500 x3` (`0` = connection error).
    fn failures(&self) -> Option<String> {
        let bad: Vec<String> = self
            .statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(s, n)| format!("{s} x{n}"))
            .collect();
        (!bad.is_empty()).then(|| bad.join(", "))
    }
}

fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// When a closed loop stops: after a time, or after a number of requests.
#[derive(Clone, Copy)]
enum Until {
    Elapsed(Duration),
    Requests(u64),
}

/// `connections` tasks, each sending its next request as soon as the previous one is answered.
async fn closed_loop<F, Fut>(connections: usize, until: Until, request: F) -> Tally
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Sample> + Send,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (request, next) = (request.clone(), next.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    if let Until::Elapsed(d) = until {
                        if started.elapsed() >= d {
                            break;
                        }
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if matches!(until, Until::Requests(limit) if n >= limit) {
                        break;
                    }
                    tally.add(request(n).await);
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await.expect("a load task panicked"));
    }
    total.elapsed = started.elapsed();
    total
}

/// Requests paced at `rate` per second for `duration`, whatever the answers (open loop).
/// Latency counts from when a request was due, so a stalled server cannot hide its stall.
async fn open_loop<F, Fut>(rate: f64, duration: Duration, request: F) -> Tally
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Sample> + Send + 'static,
{
    let request = Arc::new(request);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0u64;
    while started.elapsed() < duration {
        ticker.tick().await;
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let permit = in_flight.clone().acquire_owned().await.expect("open");
            let (request, tx) = (request.clone(), tx.clone());
            let scheduled = started + Duration::from_secs_f64(sent as f64 / rate);
            tokio::spawn(async move {
                let mut sample = request(sent).await;
                sample.latency = scheduled.elapsed();
                let _ = tx.send(sample);
                drop(permit);
            });
            sent += 1;
        }
    }
    drop(tx);
    let mut tally = Tally::default();
    while let Some(sample) = rx.recv().await {
        tally.add(sample);
    }
    tally.elapsed = duration;
    tally
}

/// Samples the count of `sql` every second until `stop` is set.
fn sample_every_second(probe: Probe, sql: &'static str, stop: Arc<AtomicBool>) -> Sampler {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        while !stop.load(Ordering::Relaxed) {
            ticker.tick().await;
            samples.push(probe.count(sql).await);
        }
        samples
    })
}

type Sampler = tokio::task::JoinHandle<Vec<i64>>;

// ---------------------------------------------------------------------------------------------
// Scenarios

/// What every scenario run shares.
struct Bench {
    args: Args,
    dir: PathBuf,
    client: reqwest::Client,
    events: Arc<Events>,
    runs: AtomicUsize,
}

/// One server on one fresh database, stopped and dropped by `finish`.
struct Run {
    berth: Berth,
    database: Database,
    probe: Probe,
}

impl Bench {
    async fn start(
        &self,
        backend: &Backend,
        binary: &Binary,
        worker: bool,
        payment_required: bool,
    ) -> Run {
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let database = Database::create(backend, &self.dir, run);
        let run = self
            .serve(database, binary, run, worker, payment_required)
            .await;
        if self.args.history > 0 {
            run.probe.seed_history(self.args.history).await;
        }
        run
    }

    async fn serve(
        &self,
        database: Database,
        binary: &Binary,
        run: usize,
        worker: bool,
        payment_required: bool,
    ) -> Run {
        let launch = Launch {
            binary,
            database: &database,
            dir: &self.dir,
            run,
            worker,
            payment_required,
        };
        let berth = Berth::start(launch, &self.client).await;
        let probe = database.probe();
        Run {
            berth,
            database,
            probe,
        }
    }

    /// Sites on the paid tenant for checkouts to pay for (left in `pending_payment`).
    async fn create_sites(&self, run: &Run) -> Arc<Vec<String>> {
        let (client, api) = (self.client.clone(), run.berth.api.clone());
        let tally = closed_loop(
            self.args.connections,
            Until::Requests(self.args.sites),
            move |n| {
                let (client, api) = (client.clone(), api.clone());
                async move { post_signup(&client, &api, n).await }
            },
        )
        .await;
        if let Some(failures) = tally.failures() {
            eprintln!("  creating sites: {failures}");
        }
        Arc::new(tally.sites.into_iter().map(|(id, _)| id).collect())
    }

    fn mixed_events(
        &self,
        run: &Run,
        sites: Arc<Vec<String>>,
    ) -> impl Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = Sample> + Send>> + Send + Sync + 'static
    {
        let (client, api, events) = (
            self.client.clone(),
            run.berth.api.clone(),
            self.events.clone(),
        );
        move |n| {
            let body = events.mixed(n, &sites);
            let (client, api) = (client.clone(), api.clone());
            Box::pin(async move { post_event(&client, &api, body).await })
        }
    }

    async fn stripe(&self, backend: &Backend, binary: &Binary) -> StripeResult {
        let run = self.start(backend, binary, true, true).await;
        let sites = self.create_sites(&run).await;
        let before = run.berth.batch_histogram(&self.client).await;
        let load = closed_loop(
            self.args.connections,
            Until::Elapsed(Duration::from_secs_f64(self.args.seconds)),
            self.mixed_events(&run, sites),
        )
        .await;
        let after = run.berth.batch_histogram(&self.client).await;
        let settle = run.probe.time_until_zero(BACKLOG_SQL).await;
        run.finish().await;
        StripeResult {
            load,
            commits: after.0 - before.0,
            committed: after.1 - before.1,
            settle,
        }
    }

    async fn steady(&self, backend: &Backend, binary: &Binary) -> SteadyResult {
        let run = self.start(backend, binary, true, true).await;
        let sites = self.create_sites(&run).await;
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_every_second(run.probe.clone(), BACKLOG_SQL, stop.clone());
        let load = open_loop(
            self.args.steady_rate,
            Duration::from_secs_f64(self.args.steady_seconds),
            self.mixed_events(&run, sites),
        )
        .await;
        let settle = run.probe.time_until_zero(BACKLOG_SQL).await;
        stop.store(true, Ordering::Relaxed);
        let backlog = sampler.await.expect("the sampler panicked");
        run.finish().await;
        SteadyResult {
            rate: self.args.steady_rate,
            load,
            max_backlog: backlog.into_iter().max().unwrap_or(0),
            settle,
        }
    }

    async fn drain(&self, backend: &Backend, binary: &Binary, size: u64) -> DrainResult {
        let filling = self.start(backend, binary, false, false).await;
        let (client, api, events) = (
            self.client.clone(),
            filling.berth.api.clone(),
            self.events.clone(),
        );
        let enqueued = closed_loop(self.args.connections, Until::Requests(size), move |n| {
            let body = events.unknown(n);
            let (client, api) = (client.clone(), api.clone());
            async move { post_event(&client, &api, body).await }
        })
        .await;
        if let Some(failures) = enqueued.failures() {
            eprintln!("  enqueueing: {failures}");
        }
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let database = filling.stop_server().await;
        let draining = self.serve(database, binary, run, true, false).await;
        let drained = draining.probe.time_until_zero(EVENT_JOBS_LEFT_SQL).await;
        let (first, last, first_batch) = draining.probe.event_jobs_span().await;
        draining.finish().await;
        DrainResult {
            size: enqueued.ok(),
            drained: drained.is_some(),
            after_first: enqueued.ok().saturating_sub(first_batch as u64),
            span: Duration::from_millis((last - first).max(0) as u64),
        }
    }

    async fn signups(&self, backend: &Backend, binary: &Binary) -> SignupResult {
        let run = self.start(backend, binary, true, false).await;
        let (client, api) = (self.client.clone(), run.berth.api.clone());
        let mut load = closed_loop(
            self.args.connections,
            Until::Elapsed(Duration::from_secs_f64(self.args.seconds)),
            move |n| {
                let (client, api) = (client.clone(), api.clone());
                async move { post_signup(&client, &api, n).await }
            },
        )
        .await;
        let load_stopped = unix_ms();
        let accepted = load.sites.len() as i64;
        let all_ready = wait_for_count(&run.probe, READY_SQL, accepted).await;
        let ready_at: HashMap<String, i64> = run.probe.ready_sites().await.into_iter().collect();
        run.finish().await;
        let mut delays: Vec<i64> = load
            .sites
            .iter()
            .filter_map(|(id, answered)| Some((ready_at.get(id)? - answered).max(0)))
            .collect();
        delays.sort_unstable();
        let last_ready = ready_at.values().copied().max().unwrap_or(load_stopped);
        SignupResult {
            per_second: load.per_second(),
            p50_ms: load.quantile_ms(0.50),
            p99_ms: load.quantile_ms(0.99),
            ready_p50_ms: quantile(&delays, 0.50) as f64,
            ready_p99_ms: quantile(&delays, 0.99) as f64,
            all_ready_after: all_ready.then(|| (last_ready - load_stopped).max(0) as f64 / 1000.0),
            failures: load.failures(),
        }
    }
}

/// Waits (up to the settle timeout) until `sql` counts `target`; whether it got there.
async fn wait_for_count(probe: &Probe, sql: &'static str, target: i64) -> bool {
    let started = Instant::now();
    while started.elapsed() < SETTLE_TIMEOUT {
        if probe.count(sql).await >= target {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

impl Run {
    async fn stop_server(self) -> Database {
        drop(self.probe);
        self.berth.stop().await;
        self.database
    }

    async fn finish(self) {
        self.stop_server().await.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Results and the report

/// A named figure of one run (`None`: not measured, e.g. a backlog that never emptied).
struct Figure {
    name: String,
    value: Option<f64>,
}

fn figure(name: impl Into<String>, value: Option<f64>) -> Figure {
    Figure {
        name: name.into(),
        value,
    }
}

/// `stripe`: deliveries at full speed with the worker applying them.
struct StripeResult {
    load: Tally,
    commits: f64,
    committed: f64,
    settle: Option<Duration>,
}

impl StripeResult {
    fn figures(&mut self) -> Vec<Figure> {
        vec![
            figure("events/s (200s)", Some(self.load.per_second())),
            figure("p50 ms", Some(self.load.quantile_ms(0.50))),
            figure("p99 ms", Some(self.load.quantile_ms(0.99))),
            figure(
                "events per commit",
                (self.commits > 0.0).then(|| self.committed / self.commits),
            ),
            figure(
                "processed all, s after load",
                self.settle.map(|d| d.as_secs_f64()),
            ),
        ]
    }
}

/// `steady`: a paced load and the backlog it leaves.
struct SteadyResult {
    rate: f64,
    load: Tally,
    max_backlog: i64,
    settle: Option<Duration>,
}

impl SteadyResult {
    fn figures(&mut self) -> Vec<Figure> {
        vec![
            figure("events/s answered 200", Some(self.load.per_second())),
            figure("p50 ms (from due time)", Some(self.load.quantile_ms(0.50))),
            figure("p99 ms (from due time)", Some(self.load.quantile_ms(0.99))),
            figure("max backlog, events", Some(self.max_backlog as f64)),
            figure(
                "max backlog, s worth",
                Some(self.max_backlog as f64 / self.rate),
            ),
            figure("empty, s after load", self.settle.map(|d| d.as_secs_f64())),
        ]
    }
}

/// `drain`: one backlog of trivial jobs worked off. Timed by the jobs' own finish times, from
/// the first batch of outcomes to the last, so start-up does not count.
struct DrainResult {
    size: u64,
    drained: bool,
    /// Jobs that finished after the first instant any finished.
    after_first: u64,
    span: Duration,
}

impl DrainResult {
    fn jobs_per_second(&self) -> Option<f64> {
        (self.drained && !self.span.is_zero() && self.after_first > 0)
            .then(|| self.after_first as f64 / self.span.as_secs_f64())
    }
}

/// `signups`: accepted signups at full speed and how soon their sites are ready.
struct SignupResult {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    ready_p50_ms: f64,
    ready_p99_ms: f64,
    all_ready_after: Option<f64>,
    failures: Option<String>,
}

impl SignupResult {
    fn figures(&self) -> Vec<Figure> {
        vec![
            figure("signups/s (201s)", Some(self.per_second)),
            figure("p50 ms", Some(self.p50_ms)),
            figure("p99 ms", Some(self.p99_ms)),
            figure("201 to ready p50 ms", Some(self.ready_p50_ms)),
            figure("201 to ready p99 ms", Some(self.ready_p99_ms)),
            figure("all ready, s after load", self.all_ready_after),
        ]
    }
}

/// Prints one scenario's table: a row per figure, a column per binary, then the ratio.
fn print_table(title: &str, labels: &[&str], columns: &[Vec<Figure>], notes: &[String]) {
    println!("\n{title}");
    print!("  {:<30}", "");
    for label in labels {
        print!("  {label:>12}");
    }
    if labels.len() == 2 {
        print!("  {:>8}", "cand/base");
    }
    println!();
    for (row, first) in columns[0].iter().enumerate() {
        print!("  {:<30}", first.name);
        let values: Vec<Option<f64>> = columns.iter().map(|c| c[row].value).collect();
        for value in &values {
            match value {
                Some(v) => print!("  {:>12}", format_value(*v)),
                None => print!("  {:>12}", "n/a"),
            }
        }
        if let [Some(base), Some(candidate)] = values[..] {
            if base != 0.0 {
                print!("  {:>8.2}x", candidate / base);
            }
        }
        println!();
    }
    for note in notes {
        println!("  {note}");
    }
}

fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn failure_notes(labels: &[&str], failures: Vec<Option<String>>) -> Vec<String> {
    labels
        .iter()
        .zip(failures)
        .filter_map(|(label, f)| Some(format!("{label}: non-2xx answers: {}", f?)))
        .collect()
}

async fn run_backend(bench: &Bench, backend: &Backend, binaries: &[Binary]) {
    let labels: Vec<&str> = binaries.iter().map(|b| b.label).collect();
    let name = backend.label();
    let args = &bench.args;
    let c = args.connections;
    if args.scenarios.contains(&Scenario::Stripe) {
        let mut results = Vec::new();
        for binary in binaries {
            eprintln!("{name}: stripe, {}", binary.label);
            results.push(bench.stripe(backend, binary).await);
        }
        let notes = failure_notes(&labels, results.iter().map(|r| r.load.failures()).collect());
        let columns: Vec<_> = results.iter_mut().map(StripeResult::figures).collect();
        let title = format!(
            "{name} · stripe: signed deliveries at {c} connections for {} s, worker on",
            args.seconds
        );
        print_table(&title, &labels, &columns, &notes);
    }
    if args.scenarios.contains(&Scenario::Steady) {
        let mut results = Vec::new();
        for binary in binaries {
            eprintln!("{name}: steady, {}", binary.label);
            results.push(bench.steady(backend, binary).await);
        }
        let notes = failure_notes(&labels, results.iter().map(|r| r.load.failures()).collect());
        let columns: Vec<_> = results.iter_mut().map(SteadyResult::figures).collect();
        let title = format!(
            "{name} · steady: {} events/s paced for {} s, backlog sampled every second",
            args.steady_rate, args.steady_seconds
        );
        print_table(&title, &labels, &columns, &notes);
    }
    if args.scenarios.contains(&Scenario::Drain) {
        let mut per_binary: Vec<Vec<DrainResult>> = binaries.iter().map(|_| Vec::new()).collect();
        for &size in &args.drain_sizes {
            for (binary, results) in binaries.iter().zip(&mut per_binary) {
                eprintln!("{name}: drain {size}, {}", binary.label);
                results.push(bench.drain(backend, binary, size).await);
            }
        }
        let columns: Vec<Vec<Figure>> = per_binary.iter().map(|r| drain_figures(r)).collect();
        let title = format!("{name} · drain: a backlog of trivial jobs (ignored Stripe events)");
        print_table(&title, &labels, &columns, &[]);
    }
    if args.scenarios.contains(&Scenario::Signups) {
        let mut results = Vec::new();
        for binary in binaries {
            eprintln!("{name}: signups, {}", binary.label);
            results.push(bench.signups(backend, binary).await);
        }
        let notes = failure_notes(
            &labels,
            results.iter().map(|r| r.failures.clone()).collect(),
        );
        let columns: Vec<_> = results.iter().map(SignupResult::figures).collect();
        let title = format!(
            "{name} · signups: JSON, example policies on, local runtime, {c} connections for {} s",
            args.seconds
        );
        print_table(&title, &labels, &columns, &notes);
    }
}

/// Jobs/s and ms per job at each size, then the per-job cost of the largest over the smallest.
fn drain_figures(results: &[DrainResult]) -> Vec<Figure> {
    let mut figures = Vec::new();
    for result in results {
        let rate = result.jobs_per_second();
        figures.push(figure(format!("jobs/s draining {}", result.size), rate));
        figures.push(figure(
            format!("ms per job at {}", result.size),
            rate.map(|r| 1000.0 / r),
        ));
    }
    let cost = |r: &DrainResult| r.jobs_per_second().map(|rate| 1.0 / rate);
    if let (Some(small), Some(large)) = (results.first(), results.last()) {
        if results.len() > 1 {
            let ratio = cost(small).zip(cost(large)).map(|(s, l)| l / s);
            figures.push(figure(
                format!("cost per job {} / {}", large.size, small.size),
                ratio,
            ));
        }
    }
    figures
}

/// Warns when the directory is on a tmpfs, where fsync costs nothing.
fn warn_if_tmpfs(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let fs_type = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            dir.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map(|(_, kind)| kind);
    if fs_type.as_deref() == Some("tmpfs") {
        eprintln!(
            "warning: {} is on a tmpfs: fsync is free there and the SQLite numbers mean nothing",
            dir.display()
        );
    }
}

#[tokio::main]
async fn main() {
    // Before this process's first PostgreSQL connection (see the function).
    berth::adapters::db::prepare_postgres_tls();
    let args = Args::parse();
    let binaries = binaries(&args);
    std::fs::create_dir_all(&args.dir).expect("create --dir");
    let dir = tempfile::Builder::new()
        .prefix("berth-load-")
        .tempdir_in(&args.dir)
        .expect("a run directory");
    let dir_path = dir
        .path()
        .canonicalize()
        .expect("an absolute run directory");
    warn_if_tmpfs(&dir_path);
    let mut backends = Vec::new();
    if !(args.postgres_only && args.postgres.is_some()) {
        backends.push(Backend::Sqlite);
    }
    if let Some(url) = &args.postgres {
        backends.push(Backend::Postgres(url.clone()));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client");
    println!("berth serve under load (release build, API + worker in one process, loopback)");
    for binary in &binaries {
        println!("  {:>9}: {}", binary.label, binary.path.display());
    }
    let bench = Bench {
        args,
        dir: dir_path,
        client,
        events: Arc::new(Events::new()),
        runs: AtomicUsize::new(0),
    };
    for backend in &backends {
        run_backend(&bench, backend, &binaries).await;
    }
}
