use berth::faults::Fault;
use reqwest::Method;

use crate::helpers::{TestApp, ADMIN_TOKEN};

#[tokio::test]
async fn a_ready_site_is_served_sandboxed_on_the_sites_listener_only() {
    let app = TestApp::spawn().await;
    let site = app.signup("live-shop").await;
    // Not served before it is ready.
    assert_eq!(app.get_site("live-shop.localhost").await.status(), 404);
    app.drain_jobs().await;
    assert_eq!(
        app.status("default", site["id"].as_str().unwrap()).await["state"],
        "ready"
    );

    let response = app
        .get_site(&format!("live-shop.localhost:{}", app.sites_port))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-security-policy"], "sandbox");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.text().await.unwrap(), "<h1>Hello</h1>");

    let elsewhere = app.get_site("other-shop.localhost").await;
    assert_eq!(elsewhere.status(), 404);
    assert_eq!(elsewhere.headers()["content-security-policy"], "sandbox");

    // The API origin never serves customer HTML, whatever the Host.
    let on_api = app
        .client
        .get(app.url("/"))
        .header("host", "live-shop.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(on_api.status(), 404);
    assert!(!on_api.text().await.unwrap().contains("Hello"));
}

#[tokio::test]
async fn provisioning_sends_one_readiness_email_with_both_parts_and_links() {
    let app = TestApp::spawn().await;
    let site = app.signup("mail-shop").await;
    let id = site["id"].as_str().unwrap();
    app.drain_jobs().await;
    app.drain_jobs().await;
    let files = app.outbox_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let email = crate::helpers::unfold_qp(&std::fs::read_to_string(&files[0]).unwrap());
    assert!(
        email.contains(&format!("Message-ID: <site_ready.{id}@localhost>")),
        "{email}"
    );
    assert!(email.contains("To: ann@example.com"));
    assert!(email.contains("Content-Type: text/plain"));
    assert!(email.contains("Content-Type: text/html"));
    assert!(email.contains(&format!("http://mail-shop.localhost:{}/", app.sites_port)));
    assert!(email.contains(&format!("/t/default/sites/{id}")));
}

#[tokio::test]
async fn a_failing_step_is_retried_then_the_site_fails_and_an_operator_can_retry_it() {
    let app = TestApp::spawn().await;
    app.context()
        .faults
        .set("provision.apply", Some(Fault::Error));
    let site = app.signup("flaky-shop").await;
    let id = site["id"].as_str().unwrap();
    // max_attempts = 3 and no backoff in tests: three attempts, then failed.
    assert_eq!(app.drain_jobs().await, 3);
    let status = app.status("default", id).await;
    assert_eq!(status["state"], "failed");

    let detail = app.site_detail(id).await;
    assert!(
        detail["last_error"]
            .as_str()
            .unwrap()
            .contains("injected an error"),
        "{detail}"
    );
    assert_eq!(detail["jobs"][0]["state"], "failed");
    assert_eq!(detail["jobs"][0]["attempts"], 3);
    assert!(app.outbox_files().is_empty());

    app.context().faults.set("provision.apply", None);
    let retried = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/retry"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(retried.status(), 202);
    app.drain_jobs().await;
    assert_eq!(app.status("default", id).await["state"], "ready");
    assert_eq!(app.outbox_files().len(), 1);
}

#[tokio::test]
async fn suspend_stops_serving_and_resume_brings_the_site_back_without_a_second_email() {
    let app = TestApp::spawn().await;
    let site = app.signup("pause-shop").await;
    let id = site["id"].as_str().unwrap();
    app.drain_jobs().await;
    assert_eq!(app.get_site("pause-shop.localhost").await.status(), 200);

    let suspended = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/suspend"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(suspended.status(), 202);
    assert_eq!(
        app.get_site("pause-shop.localhost").await.status(),
        503,
        "suspension is immediate: visitors are told the site is paused"
    );
    app.drain_jobs().await;
    assert_eq!(app.status("default", id).await["state"], "suspended");

    let again = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/suspend"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(again.status(), 409);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_state");

    let resumed = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/resume"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(resumed.status(), 202);
    app.drain_jobs().await;
    assert_eq!(app.status("default", id).await["state"], "ready");
    assert_eq!(app.get_site("pause-shop.localhost").await.status(), 200);
    assert_eq!(
        app.outbox_files().len(),
        1,
        "resuming sends no second readiness email"
    );
}

#[tokio::test]
async fn a_stale_job_stands_down_after_a_newer_action() {
    let app = TestApp::spawn().await;
    let site = app.signup("racy-shop").await;
    let id = site["id"].as_str().unwrap();
    // Deleted before its provision job ran: the job must not bring it to life.
    app.delete_site("default", id).await;
    assert_eq!(app.get_site("racy-shop.localhost").await.status(), 404);
    assert!(app.outbox_files().is_empty());
}

#[tokio::test]
async fn deleting_a_site_frees_its_name() {
    let app = TestApp::spawn().await;
    let site = app.signup("gone-shop").await;
    let id = site["id"].as_str().unwrap();
    app.drain_jobs().await;
    assert_eq!(
        app.admin(Method::DELETE, &format!("/admin/sites/{id}"), ADMIN_TOKEN)
            .await
            .status(),
        202
    );
    assert_eq!(app.status("default", id).await["state"], "deprovisioning");
    app.drain_jobs().await;
    assert_eq!(app.status("default", id).await["state"], "deleted");
    assert_eq!(app.get_site("gone-shop.localhost").await.status(), 404);
    let again = app
        .admin(Method::DELETE, &format!("/admin/sites/{id}"), ADMIN_TOKEN)
        .await;
    assert_eq!(again.status(), 409);
    app.signup("gone-shop").await;
}

/// Signs `name` up with provisioning failing, runs its jobs to the end and lifts the fault:
/// the site is failed. Returns its id.
async fn failed_provision(app: &TestApp, name: &str) -> String {
    app.context()
        .faults
        .set("provision.apply", Some(Fault::Error));
    let site = app.signup(name).await;
    let id = site["id"].as_str().unwrap().to_owned();
    app.drain_jobs().await;
    assert_eq!(app.status("default", &id).await["state"], "failed");
    app.context().faults.set("provision.apply", None);
    id
}

/// The failed jobs, as `GET /admin/jobs?state=failed` lists them.
async fn failed_jobs(app: &TestApp) -> Vec<serde_json::Value> {
    let body: serde_json::Value = app
        .admin(Method::GET, "/admin/jobs?state=failed", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    body["jobs"].as_array().unwrap().clone()
}

/// `POST /admin/jobs/{id}/retry`.
async fn retry_job(app: &TestApp, job_id: &str) -> reqwest::Response {
    app.admin(
        Method::POST,
        &format!("/admin/jobs/{job_id}/retry"),
        ADMIN_TOKEN,
    )
    .await
}

#[tokio::test]
async fn re_running_a_failed_provision_job_provisions_the_site() {
    let app = TestApp::spawn().await;
    let id = failed_provision(&app, "rerun-shop").await;
    let failed = failed_jobs(&app).await;
    let job_id = failed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(retry_job(&app, &job_id).await.status(), 202);
    app.drain_jobs().await;
    assert_eq!(app.status("default", &id).await["state"], "ready");
    assert_eq!(app.outbox_files().len(), 1);
}

#[tokio::test]
async fn a_permanent_error_fails_the_job_at_once() {
    let app = TestApp::spawn().await;
    app.context()
        .faults
        .set("provision.apply", Some(Fault::Permanent));
    let (_, detail) = app.signup_failing_at_once("doomed-shop").await;
    assert!(
        detail["last_error"].as_str().unwrap().contains("permanent"),
        "{detail}"
    );
}

/// Once a site has moved on (its failed provision retried through the site, and now ready),
/// its old failed job is shown as superseded and cannot be retried: running it again would
/// mark it succeeded while doing nothing the site needs.
#[tokio::test]
async fn a_failed_job_of_a_site_that_moved_on_is_superseded_not_retryable() {
    let app = TestApp::spawn().await;
    let id = failed_provision(&app, "moved-shop").await;
    let before = failed_jobs(&app).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0]["superseded"], false);
    let job_id = before[0]["id"].as_str().unwrap().to_owned();

    let retried = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/retry"),
            ADMIN_TOKEN,
        )
        .await;
    assert!(retried.status().is_success(), "{}", retried.status());
    app.drain_jobs().await;
    assert_eq!(app.status("default", &id).await["state"], "ready");

    // The site's retry queued a job of its own; the old one stays failed, and superseded.
    let after = failed_jobs(&app).await;
    let old = after
        .iter()
        .find(|j| j["id"] == job_id.as_str())
        .expect("the old job is still listed as failed");
    assert_eq!(old["superseded"], true, "{old}");
    let again = retry_job(&app, &job_id).await;
    assert_eq!(again.status(), 409);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "superseded");
}
