//! A site after creation (SPEC §7): its customer updates it and rolls it back with the manage
//! token, operators do the same with an admin token, and the site serves one version or the
//! next, never a mix or nothing.

use berth::faults::Fault;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{TestApp, ACME_TOKEN, ADMIN_TOKEN};

/// A ready site of tenant default with `html`; returns its id and manage token.
async fn ready_site(app: &TestApp, name: &str) -> (String, String) {
    let site = app.signup(name).await;
    let id = site["id"].as_str().unwrap().to_owned();
    let token = site["manage_token"].as_str().unwrap().to_owned();
    assert!(
        site["manage_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/t/default/sites/{id}/manage#token={token}")),
        "{site}"
    );
    app.drain_jobs().await;
    assert_eq!(app.status("default", &id).await["state"], "ready");
    (id, token)
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn put_html(app: &TestApp, id: &str, token: &str, html: &str) -> (u16, Value) {
    call(
        app,
        Method::PUT,
        &format!("/t/default/sites/{id}/content"),
        Some(token),
        Some(json!({ "html": html })),
    )
    .await
}

async fn served(app: &TestApp, host: &str) -> String {
    let response = app.get_site(host).await;
    assert_eq!(response.status(), 200, "{host} is served");
    response.text().await.unwrap()
}

async fn versions(app: &TestApp, id: &str, token: &str) -> Value {
    let (status, body) = call(
        app,
        Method::GET,
        &format!("/t/default/sites/{id}/versions"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `(version, state, by)` of each version, newest first.
fn summary(versions: &Value) -> Vec<(i64, String, String)> {
    versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["state"].as_str().unwrap().to_owned(),
                v["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn v(number: i64, state: &str, by: &str) -> (i64, String, String) {
    (number, state.to_owned(), by.to_owned())
}

#[tokio::test]
async fn a_customer_updates_and_rolls_back_their_site_while_it_keeps_serving() {
    let app = TestApp::spawn().await;
    let (id, token) = ready_site(&app, "live-shop").await;
    let host = "live-shop.localhost";
    assert_eq!(served(&app, host).await, "<h1>Hello</h1>");

    let (status, accepted) = put_html(&app, &id, &token, "<h1>Second</h1>").await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["version"]["version"], 2);
    assert_eq!(accepted["version"]["state"], "pending");
    assert_eq!(accepted["version"]["by"], "customer");
    assert_eq!(accepted["live_version"], 1);
    assert_eq!(accepted["target_version"], 2);
    use sha2::Digest;
    let sha256 = hex::encode(sha2::Sha256::digest(b"<h1>Second</h1>"));
    assert_eq!(accepted["version"]["sha256"], sha256.as_str());
    assert_eq!(accepted["version"]["size"], 15);
    // Accepted, not yet deployed: the site still serves the live version.
    assert_eq!(served(&app, host).await, "<h1>Hello</h1>");
    app.drain_jobs().await;
    assert_eq!(served(&app, host).await, "<h1>Second</h1>");
    let after_update = versions(&app, &id, &token).await;
    assert_eq!(after_update["live_version"], 2);
    assert_eq!(
        summary(&after_update),
        [v(2, "live", "customer"), v(1, "superseded", "customer")]
    );
    let status = app.status("default", &id).await;
    assert_eq!(status["live_version"], 2);
    assert_eq!(status["update_error"], Value::Null);

    let (code, content) = call(
        &app,
        Method::GET,
        &format!("/t/default/sites/{id}/content"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(content["html"], "<h1>Second</h1>");
    assert_eq!(content["version"], 2);

    let (status, rolled) = call(
        &app,
        Method::POST,
        &format!("/t/default/sites/{id}/rollback"),
        Some(&token),
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(status, 202, "{rolled}");
    assert_eq!(rolled["version"]["version"], 1);
    assert_eq!(served(&app, host).await, "<h1>Second</h1>");
    app.drain_jobs().await;
    assert_eq!(served(&app, host).await, "<h1>Hello</h1>");
    assert_eq!(
        summary(&versions(&app, &id, &token).await),
        [v(2, "superseded", "customer"), v(1, "live", "customer")]
    );
}

#[tokio::test]
async fn the_readiness_email_carries_the_manage_link_with_the_token_of_the_201() {
    let app = TestApp::spawn().await;
    let (id, token) = ready_site(&app, "mail-shop").await;
    let files = app.outbox_files();
    assert_eq!(files.len(), 1);
    let email = crate::helpers::unfold_qp(&std::fs::read_to_string(&files[0]).unwrap());
    let link = format!("/t/default/sites/{id}/manage#token={token}");
    assert!(email.contains(&link), "{link} missing from:\n{email}");
}

#[tokio::test]
async fn a_tenant_hosting_its_own_manage_page_links_it_with_the_site_id_and_token() {
    let app = TestApp::spawn_with(|s| {
        s.tenants[0].email_templates.insert(
            "site_ready".into(),
            berth::configuration::EmailTemplate {
                subject: None,
                text: Some(
                    "Manage it at https://shop.example.com/manage.html#site={{site_id}}&token={{manage_token}}\n"
                        .into(),
                ),
                html: None,
            },
        );
    })
    .await;
    let (id, token) = ready_site(&app, "own-page-shop").await;
    let email =
        crate::helpers::unfold_qp(&std::fs::read_to_string(&app.outbox_files()[0]).unwrap());
    let link = format!("https://shop.example.com/manage.html#site={id}&token={token}");
    assert!(email.contains(&link), "{link} missing from:\n{email}");
}

#[tokio::test]
async fn the_example_body_in_webhooks_publishes_a_new_version() {
    let app = TestApp::spawn().await;
    let (id, token) = ready_site(&app, "corner-bakery").await;
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/webhooks/content.json"
    ))
    .unwrap();
    let response = app
        .client
        .put(app.url(&format!("/t/default/sites/{id}/content")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.drain_jobs().await;
    assert!(served(&app, "corner-bakery.localhost")
        .await
        .contains("rye and spelt"));
}

#[tokio::test]
async fn a_newer_update_supersedes_one_that_has_not_gone_live() {
    let app = TestApp::spawn().await;
    let (id, token) = ready_site(&app, "quick-shop").await;
    assert_eq!(put_html(&app, &id, &token, "<p>two</p>").await.0, 202);
    assert_eq!(put_html(&app, &id, &token, "<p>three</p>").await.0, 202);
    app.drain_jobs().await;
    assert_eq!(served(&app, "quick-shop.localhost").await, "<p>three</p>");
    assert_eq!(
        summary(&versions(&app, &id, &token).await),
        [
            v(3, "live", "customer"),
            v(2, "superseded", "customer"),
            v(1, "superseded", "customer")
        ]
    );
}

#[tokio::test]
async fn only_the_sites_own_token_or_an_admin_token_of_its_tenant_may_change_it() {
    let app = TestApp::spawn().await;
    let (id, token) = ready_site(&app, "own-shop").await;
    let (other, other_token) = ready_site(&app, "other-shop").await;
    let path = format!("/t/default/sites/{id}/content");
    let body = Some(json!({"html": "<p>mine</p>"}));
    let cases: [(&str, Option<&str>, u16); 5] = [
        ("no token", None, 401),
        ("another site's token", Some(&other_token), 401),
        ("a made-up token", Some("bmt_0000"), 401),
        ("another tenant's admin token", Some(ACME_TOKEN), 403),
        ("the global admin token", Some(ADMIN_TOKEN), 202),
    ];
    for (what, token, expected) in cases {
        let (status, answer) = call(&app, Method::PUT, &path, token, body.clone()).await;
        assert_eq!(status, expected, "{what}: {answer}");
    }
    // The site's own token, under another tenant's path, names no site.
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/t/acme/sites/{id}/versions"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.drain_jobs().await;
    let listed = versions(&app, &id, &token).await;
    assert_eq!(summary(&listed)[0], v(2, "live", "operator"));
    assert_eq!(served(&app, "other-shop.localhost").await, "<h1>Hello</h1>");
    assert_eq!(
        versions(&app, &other, &other_token).await["live_version"],
        1
    );
}

#[tokio::test]
async fn an_operator_rotates_the_manage_token_and_the_old_one_stops_working() {
    let app = TestApp::spawn().await;
    let (id, old) = ready_site(&app, "rotate-shop").await;
    let response = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/manage-token"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(response.status(), 200);
    let issued: Value = response.json().await.unwrap();
    let new = issued["manage_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert!(issued["manage_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/manage#token={new}")));
    let path = format!("/t/default/sites/{id}/versions");
    assert_eq!(
        call(&app, Method::GET, &path, Some(&old), None).await.0,
        401
    );
    assert_eq!(call(&app, Method::GET, &path, Some(new), None).await.0, 200);
    assert_eq!(issued["emailed"], false);
    assert_eq!(
        app.outbox_files().len(),
        1,
        "only the readiness email so far"
    );

    // Asked to, berth emails each new link once (a job that runs again sends nothing more).
    let mut links = Vec::new();
    for _ in 0..2 {
        let response = app
            .admin(
                Method::POST,
                &format!("/admin/sites/{id}/manage-token?email=true"),
                ADMIN_TOKEN,
            )
            .await;
        assert_eq!(response.status(), 200);
        let issued: Value = response.json().await.unwrap();
        assert_eq!(issued["emailed"], true);
        links.push(issued["manage_url"].as_str().unwrap().to_owned());
        assert_eq!(app.drain_jobs().await, 1);
    }
    let files = app.outbox_files();
    assert_eq!(files.len(), 3, "{files:?}");
    let emails: Vec<String> = files
        .iter()
        .map(|f| crate::helpers::unfold_qp(&std::fs::read_to_string(f).unwrap()))
        .collect();
    for link in &links {
        let carrying: Vec<&String> = emails
            .iter()
            .filter(|e| e.contains(link.as_str()))
            .collect();
        assert_eq!(carrying.len(), 1, "one email carries {link}");
        assert!(carrying[0].contains("A new link to manage your site rotate-shop"));
    }
    let bad = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/manage-token?email=yes"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn refused_content_and_impossible_changes_get_precise_answers_and_change_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.tenants[0].policies = vec![crate::plugins::html_guard_binding()];
    })
    .await;
    let (id, token) = ready_site(&app, "strict-shop").await;
    let path = format!("/t/default/sites/{id}/content");

    let (status, body) = put_html(&app, &id, &token, "<script>alert(1)</script>").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "policy_rejected");
    assert_eq!(body["error"]["reasons"][0]["plugin"], "html-guard");

    let (status, body) = put_html(&app, &id, &token, "   ").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["code"], "required");

    let too_big = "x".repeat(100 * 1024 + 1);
    let (status, body) = put_html(&app, &id, &token, &too_big).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["code"], "too_large");

    let (status, body) = call(&app, Method::PUT, &path, Some(&token), Some(json!({}))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "missing_field");

    let rollback = format!("/t/default/sites/{id}/rollback");
    for (body, status, code) in [
        (json!({"version": 7}), 404, "version_not_found"),
        (json!({"version": 0}), 400, "invalid_version"),
    ] {
        let (got, answer) = call(&app, Method::POST, &rollback, Some(&token), Some(body)).await;
        assert_eq!(got, status, "{answer}");
        assert_eq!(answer["error"]["code"], code);
    }
    let (status, _) = call(
        &app,
        Method::POST,
        &rollback,
        Some(&token),
        Some(json!({"version": "one"})),
    )
    .await;
    assert_eq!(status, 400);

    // Nothing above made a version.
    assert_eq!(
        summary(&versions(&app, &id, &token).await),
        [v(1, "live", "customer")]
    );

    // A site that is still being set up takes no content change yet.
    let site = app.signup("young-shop").await;
    let (young, young_token) = (
        site["id"].as_str().unwrap(),
        site["manage_token"].as_str().unwrap(),
    );
    let (status, body) = put_html(&app, young, young_token, "<p>early</p>").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "invalid_state");
}

#[tokio::test]
async fn a_version_that_fails_to_deploy_leaves_the_previous_one_live_and_says_why() {
    let app = TestApp::spawn().await;
    let (id, token) = ready_site(&app, "failing-shop").await;
    app.context().faults.set("deploy.apply", Some(Fault::Error));
    assert_eq!(put_html(&app, &id, &token, "<p>broken</p>").await.0, 202);
    // Every attempt fails, and so does the job that applies the live version again (the
    // runtime is down): the live version stays what it was all along.
    app.drain_jobs().await;
    app.context().faults.set("deploy.apply", None);
    assert_eq!(
        served(&app, "failing-shop.localhost").await,
        "<h1>Hello</h1>"
    );
    let listed = versions(&app, &id, &token).await;
    assert_eq!(listed["live_version"], 1);
    assert_eq!(listed["target_version"], 1);
    assert_eq!(
        summary(&listed),
        [v(2, "failed", "customer"), v(1, "live", "customer")]
    );
    let error = listed["versions"][0]["error"].as_str().unwrap();
    assert!(error.contains("injected an error"), "{error}");
    let status = app.status("default", &id).await;
    assert_eq!(status["state"], "ready");
    assert!(status["update_error"]
        .as_str()
        .unwrap()
        .contains("injected an error"));

    let (code, body) = call(
        &app,
        Method::POST,
        &format!("/t/default/sites/{id}/rollback"),
        Some(&token),
        Some(json!({"version": 2})),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["error"]["code"], "version_failed");

    // The next update deploys as usual.
    assert_eq!(put_html(&app, &id, &token, "<p>fixed</p>").await.0, 202);
    app.drain_jobs().await;
    assert_eq!(served(&app, "failing-shop.localhost").await, "<p>fixed</p>");
    assert_eq!(
        app.status("default", &id).await["update_error"],
        Value::Null
    );
}

#[tokio::test]
async fn a_suspended_site_takes_new_content_and_serves_it_when_it_resumes() {
    let app = TestApp::spawn().await;
    let (id, token) = ready_site(&app, "paused-shop").await;
    let suspend = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/suspend"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(suspend.status(), 202);
    app.drain_jobs().await;
    let (status, accepted) = put_html(&app, &id, &token, "<p>back soon</p>").await;
    assert_eq!(status, 202);
    assert_eq!(accepted["version"]["state"], "live");
    assert_eq!(app.get_site("paused-shop.localhost").await.status(), 503);
    let resume = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/resume"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(resume.status(), 202);
    app.drain_jobs().await;
    assert_eq!(
        served(&app, "paused-shop.localhost").await,
        "<p>back soon</p>"
    );
}

#[tokio::test]
async fn only_the_newest_versions_kept_remain_and_operators_see_the_same_through_admin() {
    let app = TestApp::spawn_with(|s| s.tenants[0].versions_kept = 3).await;
    let (id, token) = ready_site(&app, "busy-shop").await;
    for n in 2..=5 {
        assert_eq!(
            put_html(&app, &id, &token, &format!("<p>{n}</p>")).await.0,
            202
        );
        app.drain_jobs().await;
    }
    let listed = versions(&app, &id, &token).await;
    assert_eq!(
        summary(&listed),
        [
            v(5, "live", "customer"),
            v(4, "superseded", "customer"),
            v(3, "superseded", "customer")
        ]
    );
    let admin = app
        .admin(
            Method::GET,
            &format!("/admin/sites/{id}/versions"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(admin.status(), 200);
    let admin: Value = admin.json().await.unwrap();
    assert_eq!(summary(&admin), summary(&listed));

    let rolled = app
        .client
        .post(app.url(&format!("/admin/sites/{id}/rollback")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"version": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(rolled.status(), 202);
    app.drain_jobs().await;
    assert_eq!(served(&app, "busy-shop.localhost").await, "<p>3</p>");
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("/t/default/sites/{id}/rollback"),
        Some(&token),
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(status, 404, "pruned: {body}");
}

#[tokio::test]
async fn the_manage_page_holds_no_data_and_reads_the_token_from_the_fragment() {
    let app = TestApp::spawn().await;
    let (id, _) = ready_site(&app, "page-shop").await;
    let response = app
        .client
        .get(app.url(&format!("/t/default/sites/{id}/manage")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let page = response.text().await.unwrap();
    assert!(!page.contains(&id), "the page is the same for every site");
    let script = app.get_text("/manage.js").await;
    assert!(script.contains("location.hash"));
    assert!(script.contains("Authorization"));
}

#[tokio::test]
async fn a_manage_page_on_an_allowed_origin_may_call_the_api_and_others_may_not() {
    const SHOP: &str = "https://shop.example.com";
    let app = TestApp::spawn_with(|s| s.tenants[0].allowed_origins = vec![SHOP.into()]).await;
    let (id, token) = ready_site(&app, "cors-shop").await;
    let request = |method: Method, path: String, origin: &'static str| {
        app.client
            .request(method, app.url(&path))
            .header("origin", origin)
    };
    let allowed = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for leaf in ["content", "versions", "rollback", "name"] {
        let path = format!("/t/default/sites/{id}/{leaf}");
        let preflight = request(Method::OPTIONS, path.clone(), SHOP)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 204, "{leaf}");
        assert_eq!(allowed(&preflight).as_deref(), Some(SHOP), "{leaf}");
        let headers = preflight.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap();
        assert!(headers.contains("authorization"), "{headers}");
        let other = request(Method::OPTIONS, path, "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 204);
        assert_eq!(
            allowed(&other),
            None,
            "an origin not allowed gets no CORS header"
        );
    }
    let versions = format!("/t/default/sites/{id}/versions");
    let read = request(Method::GET, versions.clone(), SHOP)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(allowed(&read).as_deref(), Some(SHOP));
    // Errors are readable too, so that the page can show them.
    let refused = request(Method::GET, versions.clone(), SHOP)
        .bearer_auth("bmt_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(allowed(&refused).as_deref(), Some(SHOP));
    let foreign = request(Method::GET, versions, "https://evil.example")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed(&foreign), None);
    let unknown = request(Method::OPTIONS, format!("/t/nope/sites/{id}/content"), SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let malformed = request(Method::OPTIONS, "/t/default/sites/x/content".into(), SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 404, "not a site id");
}
