//! Bounded growth: history past its retention is pruned, what waits for an operator stays.

use berth::jobs::retention::{sweep, Pruned};
use berth::services::stripe::signature::sign;
use diesel::RunQueryDsl;
use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN_TOKEN, STRIPE_SECRET};

const DAY_MS: i64 = 86_400_000;

/// Delivers an example event from `webhooks/stripe/` with a fresh id and another type.
async fn deliver(app: &TestApp, example: &str, id: &str, event_type: &str) {
    let path = format!(
        "{}/webhooks/stripe/{example}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["id"] = json!(id);
    event["type"] = json!(event_type);
    let body = serde_json::to_string(&event).unwrap();
    let signature = sign(
        body.as_bytes(),
        STRIPE_SECRET,
        berth::adapters::db::now_ms() / 1000,
    );
    let response = app
        .post_stripe("/webhooks/stripe", &body, Some(&signature))
        .await;
    assert_eq!(response.status(), 200);
}

/// Moves every stored job and event `days` into the past.
async fn age_everything(app: &TestApp, days: i64) {
    let by = days * DAY_MS;
    app.context()
        .db
        .write(move |c| {
            diesel::sql_query(format!(
                "UPDATE jobs SET run_at = run_at - {by}, created_at = created_at - {by}"
            ))
            .execute(c)?;
            diesel::sql_query(format!(
                "UPDATE stripe_events SET received_at = received_at - {by}, \
                 processed_at = processed_at - {by}"
            ))
            .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn listed(app: &TestApp, path: &str, key: &str) -> Vec<Value> {
    let response = app.admin(reqwest::Method::GET, path, ADMIN_TOKEN).await;
    let body: Value = response.json().await.unwrap();
    body[key].as_array().unwrap().clone()
}

#[tokio::test]
async fn history_past_its_retention_is_pruned_and_what_needs_an_operator_stays() {
    let app = TestApp::spawn().await;
    let site = app.signup("old-history").await;
    deliver(
        &app,
        "invoice.paid",
        "evt_retention_ignored",
        "customer.created",
    )
    .await;
    deliver(
        &app,
        "invoice.paid",
        "evt_retention_deferred",
        "invoice.paid",
    )
    .await;
    app.drain_jobs().await;
    let events = listed(&app, "/admin/events", "events").await;
    let outcome = |id: &str| {
        events
            .iter()
            .find(|e| e["stripe_event_id"] == id)
            .map(|e| e["outcome"].clone())
    };
    assert_eq!(outcome("evt_retention_ignored"), Some(json!("ignored")));
    assert_eq!(outcome("evt_retention_deferred"), Some(json!("deferred")));
    // One job an operator must look at: a failed one stays however old.
    let failed = site["id"].as_str().unwrap().to_owned();
    app.context()
        .db
        .write(move |c| {
            diesel::sql_query(format!(
                "UPDATE jobs SET state = 'failed' WHERE kind = 'provision' AND site_id = '{failed}'"
            ))
            .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    age_everything(&app, 100).await;
    // Recent history stays.
    app.signup("new-history").await;
    app.drain_jobs().await;

    let pruned = sweep(&app.context().db, 7, 90).await.unwrap();

    assert_eq!(
        pruned,
        Pruned {
            // The old email job and the two old event jobs; the failed provision job stays.
            jobs: 3,
            events: 1,
        }
    );
    let jobs = listed(&app, "/admin/jobs?limit=1000", "jobs").await;
    let old: Vec<&Value> = jobs.iter().filter(|j| j["site_id"] == site["id"]).collect();
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(old[0]["state"], "failed");
    assert_eq!(jobs.len(), 3, "the new site's two jobs stay: {jobs:?}");
    let events = listed(&app, "/admin/events", "events").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["stripe_event_id"], "evt_retention_deferred");
    // A second sweep finds nothing more.
    assert_eq!(
        sweep(&app.context().db, 7, 90).await.unwrap(),
        Pruned::default()
    );
}
