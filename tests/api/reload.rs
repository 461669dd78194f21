//! Reloading the configuration in a running application (what `SIGHUP` does under `berth
//! serve`; `process` sends the real signal): tenants, their rules and the rate limits change
//! without a restart, an invalid configuration changes nothing, and the keys only a restart
//! changes are named and keep their running values.

use berth::configuration::{PolicySettings, Rate, TenantSettings};
use serde_json::Value;

use crate::helpers::TestApp;

async fn sign_up(app: &TestApp, path: &str, name: &str) -> (u16, Value) {
    let response = app
        .post_json(
            path,
            &serde_json::json!({"name": name, "email": "ann@example.com", "html": "<p>hi</p>"}),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn newco() -> TenantSettings {
    TenantSettings {
        name: "newco".into(),
        base_domain: "newco.test".into(),
        ..TenantSettings::default()
    }
}

#[tokio::test]
async fn a_reload_changes_tenants_their_rules_and_the_rate_limits_without_a_restart() {
    let app = TestApp::spawn().await;
    assert_eq!(sign_up(&app, "/signup", "flagship").await.0, 201);
    assert_eq!(sign_up(&app, "/t/newco/signup", "first").await.0, 404);

    let restart = app
        .reload(|s| {
            s.tenants[0].reserved_names.push("premium".into());
            s.tenants.push(newco());
            s.rate_limits.signup_per_tenant = Rate::per_minute(2, 2);
        })
        .await
        .expect("the new configuration is taken");
    assert!(restart.is_empty(), "{restart:?}");

    let (status, body) = sign_up(&app, "/signup", "premium").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains(r#"\"premium\" is reserved"#),
        "{body}"
    );
    let (status, body) = sign_up(&app, "/t/newco/signup", "first").await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["status_url"].as_str().unwrap().contains("/t/newco/"),
        "{body}"
    );
    assert_eq!(sign_up(&app, "/t/newco/signup", "second").await.0, 201);
    assert_eq!(
        sign_up(&app, "/t/newco/signup", "third").await.0,
        429,
        "the new rate limit holds"
    );
    // A site of the new tenant is provisioned by the worker with the new tenant.
    app.drain_jobs().await;
    let id = body["id"].as_str().unwrap();
    assert_eq!(app.status("newco", id).await["state"], "ready");
}

#[tokio::test]
async fn an_invalid_configuration_changes_nothing() {
    let app = TestApp::spawn().await;
    let refused = app
        .reload(|s| {
            s.tenants.push(newco());
            s.tenants[0].reserved_names.push("premium".into());
            s.tenants[0].policies.push(PolicySettings {
                plugin: "gone".into(),
                file: "/nonexistent/gone.wasm".into(),
                hook: "name".into(),
                settings: serde_json::json!({}),
                on_error: Default::default(),
                mutating: false,
            });
        })
        .await
        .expect_err("a policy that cannot be read refuses the reload");
    assert!(
        format!("{refused:#}").contains("cannot read policy plugin gone"),
        "{refused:#}"
    );
    assert_eq!(
        sign_up(&app, "/signup", "premium").await.0,
        201,
        "old rules"
    );
    assert_eq!(
        sign_up(&app, "/t/newco/signup", "first").await.0,
        404,
        "old tenants"
    );
}

#[tokio::test]
async fn keys_that_need_a_restart_are_named_and_keep_their_running_values() {
    let app = TestApp::spawn().await;
    let running = app.context().settings.get();
    let restart = app
        .reload(|s| {
            s.database.max_connections += 1;
            s.jobs.concurrency += 1;
            s.jobs.max_attempts += 1;
        })
        .await
        .unwrap();
    assert_eq!(restart, ["database", "jobs.concurrency"]);
    let now = app.context().settings.get();
    assert_eq!(
        now.database.max_connections,
        running.database.max_connections
    );
    assert_eq!(now.jobs.concurrency, running.jobs.concurrency);
    assert_eq!(
        now.jobs.max_attempts,
        running.jobs.max_attempts + 1,
        "taken"
    );
    assert_eq!(sign_up(&app, "/signup", "still-serving").await.0, 201);
}
