//! The test harness: a real `Application` on port 0 against a fresh database (a temporary SQLite
//! file, or a new PostgreSQL database when `BERTH_TEST_DATABASE_URL` is set) and a job queue
//! stepped by hand. The SMTP server the email tests talk to is in `smtp_server`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::configuration::Mode;
use berth::configuration::{
    EmailTransport, Rate, RuntimeKind, Settings, StripeSettings, TenantSettings,
};
use berth::domain::Secret;
use berth::jobs::{self, JobContext, Worker};
use berth::startup::{Application, Clients};
use diesel::{Connection, PgConnection, RunQueryDsl};
use tempfile::TempDir;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const ACME_TOKEN: &str = "test-acme-token-0";
/// Tenant default's Stripe webhook secret (test only).
pub const STRIPE_SECRET: &str = "whsec_test_default_5b1f0c3e9a7d2b4c6e8f";
/// Tenant acme's Stripe webhook secret (test only).
pub const ACME_STRIPE_SECRET: &str = "whsec_test_acme_0d2e4f6a8b1c3e5f7a9b";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh database for one test: a new SQLite file under the given folder, or a new PostgreSQL
/// database (from `BERTH_TEST_DATABASE_URL`) that is dropped when this value is.
pub struct TestDatabase {
    url: String,
    /// The server to drop the database on, and its name (PostgreSQL only).
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn new(dir: &Path) -> Self {
        match std::env::var("BERTH_TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => {
                let name = format!("berth_test_{}", rand_suffix());
                // Before this process's first connection, or OpenSSL's exit handler can crash
                // the test binary as it exits (it did, once, after every test had passed).
                berth::adapters::db::prepare_postgres_tls();
                let mut admin = PgConnection::establish(&base)
                    .expect("BERTH_TEST_DATABASE_URL must be reachable");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .unwrap();
                // Connection options (`?sslmode=require`) carry over to the new database.
                let (server, options) = base.split_once('?').unwrap_or((&base, ""));
                let (prefix, _) = server
                    .rsplit_once('/')
                    .expect("a postgres URL ends with /dbname");
                let options = if options.is_empty() {
                    String::new()
                } else {
                    format!("?{options}")
                };
                Self {
                    url: format!("{prefix}/{name}{options}"),
                    postgres: Some((base, name)),
                }
            }
            _ => Self {
                url: format!("sqlite://{}", dir.join("berth.db").display()),
                postgres: None,
            },
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((base, name)) = &self.postgres else {
            return;
        };
        // FORCE ends the connections the application's pool (or a killed process) left open.
        let dropped = PgConnection::establish(base)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .map_err(|e| e.to_string())
            });
        if let Err(error) = dropped {
            eprintln!("warning: test database {name} was not dropped: {error}");
        }
    }
}

fn rand_suffix() -> String {
    berth::domain::JobId::generate().as_str()[4..].to_owned()
}

/// Settings for tests on `database`: loopback on port 0, generous rate limits, fast retries.
pub fn test_settings(dir: &Path, database: &TestDatabase) -> Settings {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.server.sites_listen = "127.0.0.1:0".parse().unwrap();
    settings.server.admin_token = Secret::new(ADMIN_TOKEN);
    settings.database.url = Secret::new(database.url());
    settings.email.transport = EmailTransport::File;
    settings.email.dir = dir.join("outbox");
    let lots = Rate::per_second(10_000, 10_000);
    settings.rate_limits.signup_per_ip = lots;
    settings.rate_limits.signup_per_email = lots;
    settings.rate_limits.signup_per_tenant = lots;
    settings.rate_limits.admin_per_token = lots;
    settings.rate_limits.stripe_per_tenant = lots;
    settings.rate_limits.stripe_invalid_per_ip = lots;
    settings.rate_limits.admin_failures_per_ip = lots;
    settings.jobs.base_delay_secs = 0;
    settings.jobs.max_attempts = 3;
    settings.jobs.lease_secs = 5;
    settings.jobs.poll_interval_ms = 50;
    settings.tenants[0].stripe.webhook_secrets = vec![Secret::new(STRIPE_SECRET)];
    let acme = TenantSettings {
        name: "acme".into(),
        base_domain: "acme.test".into(),
        admin_token: Secret::new(ACME_TOKEN),
        allowed_origins: vec!["https://shop.acme.test".into()],
        stripe: StripeSettings {
            webhook_secrets: vec![Secret::new(ACME_STRIPE_SECRET)],
            ..StripeSettings::default()
        },
        ..TenantSettings::default()
    };
    settings.tenants.push(acme);
    settings
}

/// Tenant `kube`: static sites on the kubernetes runtime, under `kube.test`.
pub fn kube_tenant() -> TenantSettings {
    TenantSettings {
        name: "kube".into(),
        base_domain: "kube.test".into(),
        runtime: RuntimeKind::Kubernetes,
        ..TenantSettings::default()
    }
}

pub struct TestApp {
    pub address: String,
    pub sites_port: u16,
    pub client: reqwest::Client,
    /// Holds the test's files (SQLite database, outbox) until the app is dropped.
    _dir: TempDir,
    /// Dropped after the application's shutdown is signalled (fields drop after `Drop::drop`).
    _database: TestDatabase,
    pub outbox: PathBuf,
    ctx: Arc<JobContext>,
    worker: Worker,
    shutdown: tokio_util::sync::CancellationToken,
    reloader: berth::startup::Reloader,
    /// The settings as configured (before berth filled in its ports), as last reloaded.
    configured: std::sync::Mutex<Settings>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the API (worker off: tests step jobs with `drain_jobs`) after `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_with_clients(Clients::default(), tweak).await
    }

    /// Like `spawn_with`, with tenant `kube` on the kubernetes runtime, talking to `client`.
    pub async fn spawn_with_kube(client: kube::Client, tweak: impl FnOnce(&mut Settings)) -> Self {
        let clients = Clients {
            kubernetes: Some(client),
        };
        Self::spawn_with_clients(clients, |settings| {
            settings.tenants.push(kube_tenant());
            settings.kubernetes.request_timeout_secs = 1;
            settings.kubernetes.delete_timeout_secs = 2;
            settings.jobs.ready_timeout_secs = 2;
            tweak(settings);
        })
        .await
    }

    async fn spawn_with_clients(clients: Clients, tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::new(dir.path());
        let mut settings = test_settings(dir.path(), &database);
        tweak(&mut settings);
        let app = Application::build_with(
            settings.clone(),
            Mode {
                api: true,
                worker: false,
            },
            clients,
        )
        .await
        .expect("the application builds");
        let address = format!("http://127.0.0.1:{}", app.api_port());
        let sites_port = app.sites_port().expect("local runtime serves sites");
        let ctx = app.job_context();
        let shutdown = app.shutdown_token();
        let reloader = app.reloader();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            address,
            sites_port,
            client,
            outbox: settings.email.dir.clone(),
            _dir: dir,
            _database: database,
            worker: Worker::new(ctx.clone(), jobs::registry()),
            ctx,
            shutdown,
            reloader,
            configured: std::sync::Mutex::new(settings),
        }
    }

    /// The settings as configured now.
    pub fn configured(&self) -> Settings {
        self.configured.lock().unwrap().clone()
    }

    /// Reloads the configuration with `tweak` applied to the current one, as `SIGHUP` does;
    /// returns the changed keys that need a restart.
    pub async fn reload(
        &self,
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Vec<&'static str>> {
        let mut settings = self.configured();
        tweak(&mut settings);
        let restart = self.reloader.reload(settings.clone()).await?;
        *self.configured.lock().unwrap() = settings;
        Ok(restart)
    }

    pub fn context(&self) -> &JobContext {
        &self.ctx
    }

    /// Runs every due job until none is left.
    pub async fn drain_jobs(&self) -> usize {
        self.worker.drain().await.expect("draining jobs works")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` on the API and returns the body as text (any status).
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Posts a Stripe delivery to `path` with `signature` as the `Stripe-Signature` header.
    pub async fn post_stripe(
        &self,
        path: &str,
        body: &str,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        request.send().await.unwrap()
    }

    /// A valid signup of `name` for tenant default; returns the created site's JSON.
    pub async fn signup(&self, name: &str) -> serde_json::Value {
        let response = self
            .post_form(
                "/signup",
                &[
                    ("name", name),
                    ("email", "ann@example.com"),
                    ("html", "<h1>Hello</h1>"),
                ],
            )
            .await;
        assert_eq!(response.status(), 201, "signup of {name} failed");
        response.json().await.unwrap()
    }

    pub async fn status(&self, tenant: &str, id: &str) -> serde_json::Value {
        let response = self
            .client
            .get(self.url(&format!("/t/{tenant}/sites/{id}")))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `GET /admin/sites/{id}` with the global token: the site with its email and jobs.
    pub async fn site_detail(&self, id: &str) -> serde_json::Value {
        let response = self
            .admin(
                reqwest::Method::GET,
                &format!("/admin/sites/{id}"),
                ADMIN_TOKEN,
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Signs `name` up and runs its jobs, which must fail the site at once (one attempt, no
    /// retries); returns the site id and its admin detail (`last_error`, `jobs`).
    pub async fn signup_failing_at_once(&self, name: &str) -> (String, serde_json::Value) {
        let site = self.signup(name).await;
        let id = site["id"].as_str().unwrap().to_owned();
        assert_eq!(self.drain_jobs().await, 1, "failed at once, no retries");
        let detail = self.site_detail(&id).await;
        assert_eq!(detail["state"], "failed");
        assert_eq!(detail["jobs"][0]["attempts"], 1);
        (id, detail)
    }

    /// Deletes a site through the admin API and runs its deprovision job to the end.
    pub async fn delete_site(&self, tenant: &str, id: &str) {
        let deleted = self
            .admin(
                reqwest::Method::DELETE,
                &format!("/admin/sites/{id}"),
                ADMIN_TOKEN,
            )
            .await;
        assert_eq!(deleted.status(), 202);
        self.drain_jobs().await;
        assert_eq!(self.status(tenant, id).await["state"], "deleted");
    }

    /// GET on the sites listener with the given Host header.
    pub async fn get_site(&self, host: &str) -> reqwest::Response {
        self.client
            .get(format!("http://127.0.0.1:{}/", self.sites_port))
            .header("host", host)
            .send()
            .await
            .unwrap()
    }

    pub fn outbox_files(&self) -> Vec<PathBuf> {
        eml_files(&self.outbox)
    }

    pub async fn count_sites(&self) -> i64 {
        self.ctx
            .db
            .run(|c| {
                Ok(berth::adapters::db::sites::count_by_state(c)?
                    .iter()
                    .map(|(_, n)| n)
                    .sum())
            })
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Undoes quoted-printable soft line breaks and `=3D`, so tests can search message bodies.
pub fn unfold_qp(raw: &str) -> String {
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    files
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first job of `kind` in a site's admin detail (`GET /admin/sites/{id}`), newest first.
pub fn job_of(site: &serde_json::Value, kind: &str) -> serde_json::Value {
    site["jobs"]
        .as_array()
        .expect("the site detail lists its jobs")
        .iter()
        .find(|j| j["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} job in {site}"))
        .clone()
}
