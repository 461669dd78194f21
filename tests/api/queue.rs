//! The job queue as operators watch it: the backlog in the admin API and in metrics.

use serde_json::Value;

use crate::helpers::{TestApp, ADMIN_TOKEN};

async fn backlog(app: &TestApp) -> Value {
    let response = app
        .admin(reqwest::Method::GET, "/admin/jobs", ADMIN_TOKEN)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["backlog"].clone()
}

#[tokio::test]
async fn the_backlog_shows_queued_jobs_per_kind_until_they_run() {
    let app = TestApp::spawn().await;
    app.signup("queued-one").await;
    app.signup("queued-two").await;

    let waiting = backlog(&app).await;
    assert_eq!(waiting["queued"], 2, "{waiting}");
    assert_eq!(waiting["running"], 0);
    assert_eq!(waiting["by_kind"][0]["kind"], "provision");
    assert_eq!(waiting["by_kind"][0]["queued"], 2);
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"berth_jobs{kind="provision",state="queued"} 2"#),
        "{metrics}"
    );

    app.drain_jobs().await;
    let done = backlog(&app).await;
    assert_eq!(done["queued"], 0, "{done}");
    assert_eq!(done["oldest_due_secs"], 0.0);
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"berth_jobs{kind="provision",state="queued"} 0"#),
        "{metrics}"
    );
}
