//! Tests against the real `berth` binary: SIGKILL mid-provisioning, graceful SIGTERM, two
//! workers sharing one database, and the command line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{eml_files, eventually, free_port, wait_for_port, TestDatabase, ADMIN_TOKEN};

struct Berth {
    child: Option<Child>,
    api: String,
    log: PathBuf,
}

/// A config file for a `berth serve` process on fixed free ports.
fn write_config(dir: &Path, database_url: &str, name: &str, extra: &str) -> (PathBuf, u16) {
    let port = free_port();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
sites_listen = "127.0.0.1:{sites}"

[database]
url = "{database_url}"

[email]
dir = "{outbox}"

[rate_limits]
signup_per_ip = {{ per_second = 1000, burst = 1000 }}
signup_per_email = {{ per_second = 1000, burst = 1000 }}

[jobs]
poll_interval_ms = 100
base_delay_secs = 1
{extra}
"#,
        sites = free_port(),
        outbox = dir.join("outbox").display(),
    );
    // A short lease lets a restarted process take over a killed one's jobs quickly; tests that
    // do not kill anything may ask for a longer one.
    let config = if extra.contains("lease_secs") {
        config
    } else {
        config.replace("[jobs]\n", "[jobs]\nlease_secs = 5\n")
    };
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    (path, port)
}

/// A database, the config file of a `berth serve` on it and its log, in `dir`: for tests that
/// run one process after another on the same files.
fn one_berth(dir: &Path) -> (TestDatabase, String, PathBuf, u16, PathBuf) {
    let database = TestDatabase::new(dir);
    let url = database.url().to_owned();
    let (config, port) = write_config(dir, &url, "berth", "");
    (database, url, config, port, dir.join("berth.log"))
}

impl Berth {
    fn start(config: &Path, port: u16, log: PathBuf, env: &[(&str, &str)]) -> Self {
        Self::start_with(config, port, log, env, &[])
    }

    /// `berth serve` with extra arguments (`--no-worker`, `--worker-only`).
    fn start_with(
        config: &Path,
        port: u16,
        log: PathBuf,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .args(args)
            .env("BERTH_SERVER__ADMIN_TOKEN", ADMIN_TOKEN)
            .env("BERTH_LOG__FORMAT", "json")
            .env_remove("BERTH_FAILPOINTS")
            .envs(env.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port);
        Self {
            child: Some(child),
            api: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn kill_9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "berth did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn signup(client: &reqwest::Client, api: &str, name: &str) -> String {
    let response = client
        .post(format!("{api}/signup"))
        .form(&[
            ("name", name),
            ("email", "ann@example.com"),
            ("html", "<p>hi</p>"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// An admin GET's JSON body, expecting `200`.
async fn admin_json(client: &reqwest::Client, api: &str, path: &str) -> serde_json::Value {
    let response = client
        .get(format!("{api}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn site(client: &reqwest::Client, api: &str, id: &str) -> serde_json::Value {
    admin_json(client, api, &format!("/admin/sites/{id}")).await
}

async fn wait_for_state(
    client: &reqwest::Client,
    api: &str,
    id: &str,
    state: &str,
) -> serde_json::Value {
    eventually(60, &format!("site {id} to be {state}"), || async {
        let site = site(client, api, id).await;
        (site["state"] == state).then_some(site)
    })
    .await
}

#[tokio::test]
async fn a_site_killed_mid_provisioning_is_ready_after_a_restart_with_one_email() {
    let dir = tempfile::tempdir().unwrap();
    let (_database, _, config, port, log) = one_berth(dir.path());
    let client = fresh_client();

    let mut first = Berth::start(
        &config,
        port,
        log.clone(),
        &[("BERTH_FAILPOINTS", "provision.after_apply=pause(60000)")],
    );
    let id = signup(&client, &first.api, "crash-shop").await;
    eventually(30, "provisioning to be under way", || async {
        let site = site(&client, &first.api, &id).await;
        (site["step"] == "applying the workload").then_some(())
    })
    .await;
    first.kill_9();

    let second = Berth::start(&config, port, log.clone(), &[]);
    wait_for_state(&client, &second.api, &id, "ready").await;
    // The site turns ready inside the job; the job is marked succeeded just after.
    let provision = eventually(30, "the provision job to succeed", || async {
        let provision = crate::helpers::job_of(&site(&client, &second.api, &id).await, "provision");
        (provision["state"] == "succeeded").then_some(provision)
    })
    .await;
    assert_eq!(
        provision["attempts"], 2,
        "the killed attempt counts, then the job ran again"
    );
    eventually(30, "the readiness email", || async {
        (!eml_files(&dir.path().join("outbox")).is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        eml_files(&dir.path().join("outbox")).len(),
        1,
        "exactly one email"
    );

    let log = second.log_text();
    assert!(
        log.contains("\"request_id\""),
        "JSON logs carry the request id"
    );
    for private in [ADMIN_TOKEN, "ann@example.com", "<p>hi</p>"] {
        assert!(!log.contains(private), "{private} reached the logs");
    }
}

#[tokio::test]
async fn every_acknowledged_stripe_delivery_survives_a_kill_9() {
    const SECRET: &str = "whsec_test_process_7c1d";
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(dir.path());
    let url = database.url().to_owned();
    let (config, port) = write_config(dir.path(), &url, "berth", "");
    let secrets = format!("[\"{SECRET}\"]");
    let env = [(
        "BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS",
        secrets.as_str(),
    )];
    let mut first = Berth::start(&config, port, dir.path().join("berth.log"), &env);

    // Many concurrent deliveries; berth is killed once some are acknowledged, others in flight.
    let template: serde_json::Value =
        serde_json::from_str(include_str!("../../webhooks/stripe/invoice.paid.json")).unwrap();
    let (done, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..120 {
        let mut event = template.clone();
        let id = format!("evt_kill9_{n}");
        event["id"] = serde_json::json!(id);
        let body = serde_json::to_string(&event).unwrap();
        let signature = berth::services::stripe::signature::sign(
            body.as_bytes(),
            SECRET,
            berth::adapters::db::now_ms() / 1000,
        );
        let (client, api, done) = (fresh_client(), first.api.clone(), done.clone());
        tokio::spawn(async move {
            let response = client
                .post(format!("{api}/webhooks/stripe"))
                .header("stripe-signature", signature)
                .body(body)
                .send()
                .await;
            let acked = response.is_ok_and(|r| r.status() == 200);
            let _ = done.send((id, acked));
        });
    }
    drop(done);
    let mut acked = Vec::new();
    let mut answered = 0;
    while let Some((id, ok)) = outcomes.recv().await {
        answered += 1;
        if ok {
            acked.push(id);
        }
        if acked.len() == 40 && first.child.is_some() {
            first.kill_9();
        }
    }
    assert_eq!(answered, 120);
    assert!(acked.len() >= 40, "{} acknowledged", acked.len());

    let second = Berth::start(&config, port, dir.path().join("berth-2.log"), &env);
    let client = fresh_client();
    let stored = admin_json(&client, &second.api, "/admin/events?limit=1000").await;
    let stored: Vec<&str> = stored["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stripe_event_id"].as_str().unwrap())
        .collect();
    for id in &acked {
        assert!(stored.contains(&id.as_str()), "acknowledged {id} was lost");
    }
}

#[tokio::test]
async fn a_crash_between_sending_and_recording_an_email_does_not_duplicate_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_database, _, config, port, log) = one_berth(dir.path());
    let client = fresh_client();
    let outbox = dir.path().join("outbox");

    let mut first = Berth::start(
        &config,
        port,
        log.clone(),
        &[("BERTH_FAILPOINTS", "send_email.after_send=pause(60000)")],
    );
    let id = signup(&client, &first.api, "twice-shop").await;
    eventually(30, "the email to be written", || async {
        (!eml_files(&outbox).is_empty()).then_some(())
    })
    .await;
    first.kill_9();

    let second = Berth::start(&config, port, log, &[]);
    eventually(60, "the email job to finish", || async {
        let site = site(&client, &second.api, &id).await;
        let jobs = site["jobs"].as_array().unwrap().clone();
        jobs.iter()
            .any(|j| j["kind"] == "send_email" && j["state"] == "succeeded")
            .then_some(())
    })
    .await;
    let files = eml_files(&outbox);
    assert_eq!(
        files.len(),
        1,
        "the resend rewrote the same message: {files:?}"
    );
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_releases_unfinished_leases() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(dir.path());
    let url = database.url().to_owned();
    let (config, port) = write_config(dir.path(), &url, "berth", "shutdown_grace_secs = 1\n");
    let client = fresh_client();
    let log = dir.path().join("berth.log");

    let mut first = Berth::start(
        &config,
        port,
        log.clone(),
        &[("BERTH_FAILPOINTS", "provision.after_apply=pause(60000)")],
    );
    let id = signup(&client, &first.api, "term-shop").await;
    eventually(30, "provisioning to be under way", || async {
        (site(&client, &first.api, &id).await["step"] == "applying the workload").then_some(())
    })
    .await;
    let status = first.terminate();
    assert!(status.success(), "exit status {status:?}");
    let text = first.log_text();
    assert!(
        text.contains("released the leases of unfinished jobs"),
        "{text}"
    );

    let second = Berth::start(&config, port, log, &[]);
    let ready = wait_for_state(&client, &second.api, &id, "ready").await;
    let provision = crate::helpers::job_of(&ready, "provision");
    assert_eq!(
        provision["attempts"], 1,
        "a released lease does not count as an attempt"
    );
}

#[tokio::test]
async fn a_kill_9_amid_a_large_batch_of_job_outcomes_applies_every_payment_once() {
    const SECRET: &str = "whsec_test_outcomes_52e0";
    const SITES: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(dir.path());
    let url = database.url().to_owned();
    let (config, port) = write_config(dir.path(), &url, "berth", "lease_secs = 5\n");
    let secrets = format!("[\"{SECRET}\"]");
    let env = [
        ("BERTH_TENANTS__DEFAULT__PAYMENT_REQUIRED", "true"),
        (
            "BERTH_TENANTS__DEFAULT__CHECKOUT_URL",
            "https://buy.stripe.com/test_berth",
        ),
        (
            "BERTH_RATE_LIMITS__SIGNUP_PER_TENANT",
            "{ per_second = 10000, burst = 10000 }",
        ),
        (
            "BERTH_RATE_LIMITS__ADMIN_PER_TOKEN",
            "{ per_second = 10000, burst = 10000 }",
        ),
        (
            "BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS",
            secrets.as_str(),
        ),
    ];
    let client = fresh_client();

    // A backlog: sites waiting for payment, and a paid checkout for each, queued with no worker.
    let mut ingest = Berth::start_with(
        &config,
        port,
        dir.path().join("ingest.log"),
        &env,
        &["--no-worker"],
    );
    let template: serde_json::Value = serde_json::from_str(include_str!(
        "../../webhooks/stripe/checkout.session.completed.json"
    ))
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..SITES {
        let id = signup(&client, &ingest.api, &format!("paid-{n}")).await;
        let mut event = template.clone();
        event["id"] = serde_json::json!(format!("evt_outcomes_{n}"));
        event["data"]["object"]["client_reference_id"] = serde_json::json!(id);
        event["data"]["object"]["subscription"] = serde_json::json!(format!("sub_outcomes_{n}"));
        let body = serde_json::to_string(&event).unwrap();
        let signature = berth::services::stripe::signature::sign(
            body.as_bytes(),
            SECRET,
            berth::adapters::db::now_ms() / 1000,
        );
        let response = client
            .post(format!("{}/webhooks/stripe", ingest.api))
            .header("stripe-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        ids.push(id);
    }
    ingest.kill_9();

    // The worker starts on the backlog and is killed while outcomes are being recorded.
    let mut first = Berth::start(&config, port, dir.path().join("first.log"), &env);
    eventually(
        60,
        "the worker to be part-way through the backlog",
        || async {
            let events = admin_json(
                &client,
                &first.api,
                "/admin/events?outcome=applied&limit=1000",
            )
            .await;
            (events["events"].as_array().unwrap().len() >= SITES / 10).then_some(())
        },
    )
    .await;
    first.kill_9();

    let second = Berth::start(&config, port, dir.path().join("second.log"), &env);
    for id in &ids {
        wait_for_state(&client, &second.api, id, "ready").await;
    }
    let events = admin_json(&client, &second.api, "/admin/events?limit=1000").await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), SITES);
    for event in events {
        assert_eq!(event["outcome"], "applied", "{event}");
    }
    // Each payment took effect once: one provision job per site, and one email.
    let jobs = admin_json(&client, &second.api, "/admin/jobs?limit=1000").await;
    let provisions: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "provision")
        .map(|j| j["site_id"].as_str().unwrap())
        .collect();
    for id in &ids {
        let n = provisions.iter().filter(|p| **p == id.as_str()).count();
        assert_eq!(n, 1, "site {id} has {n} provision jobs");
    }
    // A site's readiness email is a job of its own, after the site is ready.
    let outbox = dir.path().join("outbox");
    eventually(120, "every readiness email", || async {
        (eml_files(&outbox).len() >= SITES).then_some(())
    })
    .await;
    assert_eq!(eml_files(&outbox).len(), SITES);
}

#[tokio::test]
async fn two_processes_sharing_a_database_never_run_the_same_job_twice() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(dir.path());
    let url = database.url().to_owned();
    let (config_a, port_a) =
        write_config(dir.path(), &url, "a", "concurrency = 4\nlease_secs = 60\n");
    let (config_b, port_b) =
        write_config(dir.path(), &url, "b", "concurrency = 4\nlease_secs = 60\n");
    let migrate = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--config")
        .arg(&config_a)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let a = Berth::start(&config_a, port_a, dir.path().join("a.log"), &[]);
    let b = Berth::start(&config_b, port_b, dir.path().join("b.log"), &[]);
    let client = fresh_client();

    let mut ids = Vec::new();
    for i in 0..24 {
        let api = if i % 2 == 0 { &a.api } else { &b.api };
        ids.push(signup(&client, api, &format!("shared-{i}")).await);
    }
    for id in &ids {
        wait_for_state(&client, &a.api, id, "ready").await;
    }
    // Every job finished: none queued or running is left.
    let jobs: serde_json::Value = eventually(60, "every job to finish", || async {
        let jobs: serde_json::Value = client
            .get(format!("{}/admin/jobs?limit=1000", a.api))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let all = jobs["jobs"].as_array().unwrap();
        let done = all.len() == ids.len() * 2
            && all
                .iter()
                .all(|j| j["state"] == "succeeded" || j["state"] == "failed");
        done.then_some(jobs)
    })
    .await;
    assert_eq!(
        eml_files(&dir.path().join("outbox")).len(),
        ids.len(),
        "one email per site"
    );
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(
        jobs.len(),
        ids.len() * 2,
        "one provision and one email job per site"
    );
    for job in jobs {
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "claimed more than once: {job}");
    }
    let (log_a, log_b) = (a.log_text(), b.log_text());
    assert!(log_a.contains("job done") || log_b.contains("job done"));
}

/// A job enqueued by one process runs in a worker of another without waiting for that worker's
/// poll: on PostgreSQL the enqueuing commit notifies every listening worker, so the worker here
/// polls only once an hour. (SQLite has no notifications: there the other process finds the job
/// at its next poll, which the test makes short.)
#[tokio::test]
async fn a_job_enqueued_by_one_process_runs_in_another_without_waiting_for_its_poll() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(dir.path());
    let url = database.url().to_owned();
    let poll_ms = if url.starts_with("postgres") {
        3_600_000
    } else {
        200
    };
    let (config_api, port_api) = write_config(dir.path(), &url, "api", "");
    let (config_worker, port_worker) = write_config(dir.path(), &url, "worker", "");
    let worker_config = std::fs::read_to_string(&config_worker).unwrap();
    std::fs::write(
        &config_worker,
        worker_config.replace(
            "poll_interval_ms = 100",
            &format!("poll_interval_ms = {poll_ms}"),
        ),
    )
    .unwrap();
    let migrate = berth_cli(&["--config", config_api.to_str().unwrap(), "migrate"], &[]);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let api = Berth::start_with(
        &config_api,
        port_api,
        dir.path().join("api.log"),
        &[],
        &["--no-worker"],
    );
    let worker = Berth::start_with(
        &config_worker,
        port_worker,
        dir.path().join("worker.log"),
        &[],
        &["--worker-only"],
    );
    let client = fresh_client();

    let id = signup(&client, &api.api, "woken").await;
    wait_for_state(&client, &api.api, &id, "ready").await;
    assert!(
        worker.log_text().contains("job done"),
        "the worker process ran the job: {}",
        worker.log_text()
    );
}

/// No pooled connections: a process is killed and restarted on the same port.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

fn berth_cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:9999\"\n[[tenants]]\nname = \"default\"\nadmin_token = \"file-secret-0123456789\"\n").unwrap();
    let out = berth_cli(
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[("BERTH_SERVER__ADMIN_TOKEN", "env-secret-0123456789")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("listen = \"127.0.0.1:9999\""), "{stdout}");
    assert!(stdout.contains("[redacted]"));
    assert!(
        !stdout.contains("file-secret") && !stdout.contains("env-secret"),
        "{stdout}"
    );

    let empty = berth_cli(&["config", "check"], &[]);
    assert!(
        empty.status.success(),
        "no file at all is the embedded default"
    );
}

#[test]
fn config_check_never_prints_a_secret_it_cannot_use() {
    let secret = "whsec_live_7c1e9a3b5d2f4068";
    let out = berth_cli(
        &["config", "check"],
        &[("BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS", secret)],
    );
    assert_eq!(out.status.code(), Some(2));
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(stderr.contains("stripe.webhook_secrets"), "{stderr}");
    assert!(
        !stderr.contains(secret) && !stdout.contains(secret),
        "{stderr}{stdout}"
    );

    let token = "tok-never-shown-0123456789";
    let stderr = refused_config(&format!("[server]\nadmin_token = {token}\n"));
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains(token), "{stderr}");
}

/// `berth config check` on a file holding `contents`, which it must refuse (status 2); its
/// standard error.
fn refused_config(contents: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.toml");
    std::fs::write(&path, contents).unwrap();
    let out = berth_cli(
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_wrong_key_or_value_is_reported_by_name() {
    let stderr = refused_config("[email]\ntransprot = \"smtp\"\n");
    assert!(stderr.contains("email.transprot: unknown key"), "{stderr}");

    let out = berth_cli(&["config", "check"], &[("BERTH_JOBS__CONCURRENCY", "many")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("jobs.concurrency"));
}

#[test]
fn migrate_applies_migrations_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(dir.path());
    let url = database.url().to_owned();
    let first = berth_cli(&["migrate"], &[("BERTH_DATABASE__URL", &url)]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8(first.stdout).unwrap().contains("applied"));
    let second = berth_cli(&["migrate"], &[("BERTH_DATABASE__URL", &url)]);
    assert!(String::from_utf8(second.stdout)
        .unwrap()
        .contains("up to date"));
}

#[tokio::test]
async fn a_fresh_install_runs_the_example_policies_on_tenant_default() {
    // An empty working directory: the example policies come from the binary itself.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("berth.log")).unwrap();
    // No configuration file at all: the embedded default.
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("BERTH_CONFIG")
        .env("BERTH_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "BERTH_SERVER__SITES_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_port(port);
    let client = fresh_client();
    let post = |name: &'static str, html: &'static str| {
        let client = client.clone();
        async move {
            client
                .post(format!("http://127.0.0.1:{port}/signup"))
                .form(&[("name", name), ("email", "ann@example.com"), ("html", html)])
                .send()
                .await
                .unwrap()
        }
    };
    // Each example policy refuses what it is there for, and says it was the one.
    for (plugin, name, html) in [
        ("reserved-names", "support", "<p>hi</p>"),
        ("brand-guard", "paypa1-shop", "<p>hi</p>"),
        ("digit-limit", "shop83472910", "<p>hi</p>"),
        ("html-guard", "honest-shop", "<script>x</script>"),
    ] {
        let refused = post(name, html).await;
        assert_eq!(refused.status(), 422, "{plugin}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["reasons"][0]["plugin"], plugin, "{body}");
    }
    assert_eq!(
        post("honest-shop", "<h1>Hello from my shop</h1>")
            .await
            .status(),
        201
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        dir.path().join("berth.db").exists(),
        "the embedded default keeps its database in the working directory"
    );
}

#[test]
fn render_prints_every_object_of_a_site_as_yaml_without_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        "[kubernetes]\ntls_issuer = \"letsencrypt\"\n[[tenants]]\nname = \"shops\"\nbase_domain = \"shops.example\"\nruntime = \"kubernetes\"\nplans = { price_1 = { name = \"pro\", cpu = \"1\", memory = \"1Gi\" } }\n",
    )
    .unwrap();
    let html = dir.path().join("index.html");
    std::fs::write(&html, "<h1>Rendered</h1>").unwrap();
    let config = config.to_str().unwrap();
    let args = [
        "--config",
        config,
        "render",
        "--tenant",
        "shops",
        "--name",
        "my-shop",
        "--plan",
        "pro",
        "--html",
        html.to_str().unwrap(),
    ];
    let out = berth_cli(&args, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let documents: Vec<serde_json::Value> = yaml
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let kinds: Vec<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"Namespace"));
    assert_eq!(kinds.last(), Some(&"Ingress"));
    let namespace = documents[0]["metadata"]["name"].as_str().unwrap();
    assert!(namespace.starts_with("berth-shops-my-shop-"), "{namespace}");
    let config_map = documents.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(config_map["data"]["index.html"], "<h1>Rendered</h1>");
    let deployment = documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let resources = &deployment["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(resources["limits"]["cpu"], "1");
    let ingress = documents.iter().find(|d| d["kind"] == "Ingress").unwrap();
    assert_eq!(ingress["spec"]["rules"][0]["host"], "my-shop.shops.example");
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );

    // The same arguments print the same bytes; no --html gives a placeholder page.
    let again = berth_cli(&args, &[]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), yaml);
    let placeholder = berth_cli(
        &[
            "--config", config, "render", "--tenant", "shops", "--name", "my-shop",
        ],
        &[],
    );
    assert!(placeholder.status.success());
    assert!(String::from_utf8_lossy(&placeholder.stdout).contains("Placeholder page"));
}

#[test]
fn render_refuses_bad_arguments_with_status_2() {
    for (args, why, says) in [
        (
            vec!["render", "--tenant", "nope", "--name", "my-shop"],
            "an unknown tenant",
            "no tenant named nope",
        ),
        (
            vec!["render", "--tenant", "default", "--name", "My Shop"],
            "a name that is not a DNS label",
            "--name",
        ),
        (
            vec![
                "render",
                "--tenant",
                "default",
                "--name",
                "my-shop",
                "--html",
                "/nonexistent.html",
            ],
            "an unreadable --html",
            "cannot read --html",
        ),
    ] {
        let out = berth_cli(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{why}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{why}: {stderr}");
    }
    let unknown_plan = berth_cli(
        &[
            "render", "--tenant", "default", "--name", "my-shop", "--plan", "gold",
        ],
        &[],
    );
    assert_eq!(unknown_plan.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown_plan.stderr).contains("plan \"gold\""));
}

/// Starting on a fresh database logs no error (a pool connection used to race the others for
/// SQLite's switch to WAL and lose with "database is locked" before r2d2 retried).
#[tokio::test]
async fn a_start_on_a_fresh_database_logs_no_error() {
    for attempt in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::new(dir.path());
        let url = database.url().to_owned();
        let (config, port) = write_config(dir.path(), &url, "berth", "");
        let mut berth = Berth::start(&config, port, dir.path().join("berth.log"), &[]);
        let client = fresh_client();
        signup(&client, &berth.api, &format!("fresh-shop-{attempt}")).await;
        assert!(berth.terminate().success());
        let text = berth.log_text();
        assert!(text.contains("database migrated"), "{text}");
        assert!(
            !text.contains("\"level\":\"ERROR\"") && !text.contains("database is locked"),
            "attempt {attempt}: {text}"
        );
    }
}

#[tokio::test]
async fn an_update_killed_mid_deploy_goes_live_after_a_restart_and_the_old_one_stays_live_until_then(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_database, _, config, port, log) = one_berth(dir.path());
    let client = fresh_client();

    let mut first = Berth::start(
        &config,
        port,
        log.clone(),
        &[("BERTH_FAILPOINTS", "deploy.before_switch=pause(60000)")],
    );
    let created: serde_json::Value = client
        .post(format!("{}/signup", first.api))
        .header("accept", "application/json")
        .form(&[
            ("name", "update-shop"),
            ("email", "ann@example.com"),
            ("html", "<p>one</p>"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let token = created["manage_token"].as_str().unwrap().to_owned();
    wait_for_state(&client, &first.api, &id, "ready").await;
    let updated = client
        .put(format!("{}/t/default/sites/{id}/content", first.api))
        .bearer_auth(&token)
        .json(&serde_json::json!({"html": "<p>two</p>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 202);
    eventually(30, "the deploy to reach its switch", || async {
        let site = site(&client, &first.api, &id).await;
        (site["step"] == "deploying version 2").then_some(())
    })
    .await;
    let versions = |api: String| {
        let (client, id, token) = (client.clone(), id.clone(), token.clone());
        async move {
            let response = client
                .get(format!("{api}/t/default/sites/{id}/versions"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    assert_eq!(versions(first.api.clone()).await["live_version"], 1);
    first.kill_9();

    let second = Berth::start(&config, port, log.clone(), &[]);
    let listed = eventually(30, "version 2 to go live", || async {
        let listed = versions(second.api.clone()).await;
        (listed["live_version"] == 2).then_some(listed)
    })
    .await;
    let states: Vec<(i64, &str)> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [(2, "live"), (1, "superseded")]);
    let deploy = eventually(30, "the deploy job to succeed", || async {
        let deploy = crate::helpers::job_of(&site(&client, &second.api, &id).await, "deploy");
        (deploy["state"] == "succeeded").then_some(deploy)
    })
    .await;
    assert_eq!(
        deploy["attempts"], 2,
        "the killed attempt counts, then it ran again"
    );
    let log = second.log_text();
    assert!(!log.contains(&token), "the manage token reached the logs");
}

/// Records an earlier workload spec for every live site, as sites applied under an earlier
/// template have (the local runtime has no template of its own to change).
async fn pin_to_an_earlier_spec(database_url: &str) {
    use diesel::RunQueryDsl;
    let db = berth::adapters::db::Db::connect(&berth::configuration::DatabaseSettings {
        url: berth::domain::Secret::new(database_url),
        ..Default::default()
    })
    .unwrap();
    db.write(|c| {
        diesel::sql_query(
            "UPDATE sites SET applied_spec = 'earlier', target_spec = 'earlier' \
             WHERE state = 'ready'",
        )
        .execute(c)?;
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_rollout_killed_mid_wave_resumes_after_a_restart_and_deploys_each_site_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_database, url, config, port, log) = one_berth(dir.path());
    let client = fresh_client();

    let mut first = Berth::start(
        &config,
        port,
        log.clone(),
        &[("BERTH_FAILPOINTS", "deploy.apply=pause(60000)")],
    );
    let mut ids = Vec::new();
    for name in ["roll-one", "roll-two", "roll-three"] {
        ids.push(signup(&client, &first.api, name).await);
    }
    for id in &ids {
        wait_for_state(&client, &first.api, id, "ready").await;
    }
    pin_to_an_earlier_spec(&url).await;
    let status = admin_json(&client, &first.api, "/admin/t/default/rollout").await;
    assert_eq!(status["drift"]["drifted"], 3, "{status}");
    let started = client
        .post(format!("{}/admin/t/default/rollout", first.api))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"max_parallel": 2, "max_failures": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    eventually(30, "the first wave to be deploying", || async {
        let status = admin_json(&client, &first.api, "/admin/t/default/rollout").await;
        let rollout = &status["rollout"];
        (rollout["wave"] == 1 && rollout["progress"]["applying"] == 2).then_some(())
    })
    .await;
    eventually(30, "both deploys to be under way", || async {
        let mut deploying = 0;
        for id in &ids {
            let site = site(&client, &first.api, id).await;
            if site["step"] == "applying a new workload spec" {
                deploying += 1;
            }
        }
        (deploying == 2).then_some(())
    })
    .await;
    first.kill_9();

    let second = Berth::start(&config, port, log.clone(), &[]);
    let ended = eventually(60, "the rollout to complete", || async {
        let status = admin_json(&client, &second.api, "/admin/t/default/rollout").await;
        (status["rollout"]["state"] == "completed").then_some(status)
    })
    .await;
    assert_eq!(
        ended["rollout"]["progress"],
        serde_json::json!({"pending": 0, "applying": 0, "done": 3, "failed": 0, "skipped": 0}),
        "{ended}"
    );
    assert_eq!(ended["rollout"]["wave"], 2, "{ended}");
    assert_eq!(ended["drift"]["drifted"], 0, "{ended}");
    let mut attempts = Vec::new();
    for id in &ids {
        let detail = site(&client, &second.api, id).await;
        assert_eq!(detail["state"], "ready");
        let deploys: Vec<&serde_json::Value> = detail["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|job| job["kind"] == "deploy")
            .collect();
        assert_eq!(deploys.len(), 1, "one deploy per site: {detail}");
        assert_eq!(deploys[0]["state"], "succeeded");
        attempts.push(deploys[0]["attempts"].as_i64().unwrap());
    }
    attempts.sort();
    assert_eq!(
        attempts,
        [1, 2, 2],
        "the two killed deploys ran again, once"
    );
}

#[tokio::test]
async fn sighup_reloads_the_configuration_and_an_invalid_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(dir.path());
    let (config, port) = write_config(dir.path(), database.url(), "berth", "");
    let client = fresh_client();
    let berth = Berth::start(&config, port, dir.path().join("berth.log"), &[]);
    let pid = berth.child.as_ref().unwrap().id().to_string();
    let hangup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
    };
    signup(&client, &berth.api, "before-reload").await;

    let original = std::fs::read_to_string(&config).unwrap();
    let stricter = original.replace(
        "signup_per_email = { per_second = 1000, burst = 1000 }",
        "signup_per_email = { per_minute = 1, burst = 1 }",
    );
    assert_ne!(stricter, original);
    std::fs::write(&config, &stricter).unwrap();
    hangup();
    eventually(30, "the reload", || async {
        berth
            .log_text()
            .contains("configuration reloaded")
            .then_some(())
    })
    .await;
    signup(&client, &berth.api, "first-after").await;
    let limited = client
        .post(format!("{}/signup", berth.api))
        .form(&[
            ("name", "second-after"),
            ("email", "ann@example.com"),
            ("html", "<p>hi</p>"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        limited.status(),
        429,
        "the new limit holds without a restart"
    );

    std::fs::write(
        &config,
        stricter.replace("[jobs]", "[jobs]\nmax_attempts = \"many\""),
    )
    .unwrap();
    hangup();
    let refused = eventually(30, "the refusal", || async {
        let log = berth.log_text();
        log.lines()
            .find(|line| line.contains("configuration reload refused"))
            .map(str::to_owned)
    })
    .await;
    assert!(refused.contains("jobs.max_attempts"), "{refused}");
    assert!(
        !refused.contains("many"),
        "no value reaches the log: {refused}"
    );
    let health = client
        .get(format!("{}/healthz", berth.api))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        200,
        "still serving on the running configuration"
    );
}
