use reqwest::Method;

use crate::helpers::{TestApp, ACME_TOKEN, ADMIN_TOKEN};

#[tokio::test]
async fn the_admin_api_needs_a_valid_bearer_token() {
    let app = TestApp::spawn().await;
    let none = app
        .client
        .get(app.url("/admin/sites"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = none.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(
        app.admin(Method::GET, "/admin/sites", "wrong")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/sites", "").await.status(),
        401
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/sites", ADMIN_TOKEN)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_global_token_lists_and_filters_every_tenant() {
    let app = TestApp::spawn().await;
    app.signup("one-shop").await;
    app.post_json(
        "/t/acme/signup",
        &serde_json::json!({"name": "two-shop", "email": "a@b.co", "html": "x"}),
    )
    .await;
    let all: serde_json::Value = app
        .admin(Method::GET, "/admin/sites", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["sites"].as_array().unwrap().len(), 2);
    let acme: serde_json::Value = app
        .admin(Method::GET, "/admin/sites?tenant=acme", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acme["sites"].as_array().unwrap().len(), 1);
    assert_eq!(acme["sites"][0]["name"], "two-shop");
    let ready: serde_json::Value = app
        .admin(Method::GET, "/admin/sites?state=ready", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert!(ready["sites"].as_array().unwrap().is_empty());
    let bad = app
        .admin(Method::GET, "/admin/sites?state=bogus", ADMIN_TOKEN)
        .await;
    assert_eq!(bad.status(), 400);
    let unknown_param = app
        .admin(Method::GET, "/admin/sites?colour=red", ADMIN_TOKEN)
        .await;
    assert_eq!(unknown_param.status(), 400);
}

/// The names of a `GET /admin/sites` answer, in order, and its `next`.
async fn listed(app: &TestApp, path: &str, token: &str) -> (Vec<String>, serde_json::Value) {
    let response = app.admin(Method::GET, path, token).await;
    assert_eq!(response.status(), 200, "{path}");
    let body: serde_json::Value = response.json().await.unwrap();
    let names = body["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    (names, body["next"].clone())
}

#[tokio::test]
async fn operators_search_page_and_hide_deleted_sites() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for (name, email) in [
        ("bakery", "Flour@Example.com"),
        ("book-shop", "ann@example.com"),
        ("cafe", "ann+cafe@example.com"),
        ("deli", "bob@example.org"),
        ("outlet", "c@example.net"),
    ] {
        let response = app
            .post_json(
                "/signup",
                &serde_json::json!({"name": name, "email": email, "html": "<p>hi</p>"}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let site: serde_json::Value = response.json().await.unwrap();
        ids.push(site["id"].as_str().unwrap().to_owned());
    }
    app.drain_jobs().await;
    app.delete_site("default", &ids[3]).await;

    // Newest first; a search matches the name, hostname or email in any case, and LIKE's
    // wildcards are only themselves.
    let (all, next) = listed(&app, "/admin/sites", ADMIN_TOKEN).await;
    assert_eq!(all, ["outlet", "deli", "cafe", "book-shop", "bakery"]);
    assert!(next.is_null(), "one page holds them all");
    let (by_email, _) = listed(&app, "/admin/sites?q=FLOUR%40example", ADMIN_TOKEN).await;
    assert_eq!(by_email, ["bakery"]);
    let (by_both, _) = listed(&app, "/admin/sites?q=ann", ADMIN_TOKEN).await;
    assert_eq!(by_both, ["cafe", "book-shop"]);
    let (by_host, _) = listed(&app, "/admin/sites?q=shop.localhost", ADMIN_TOKEN).await;
    assert_eq!(by_host, ["book-shop"]);
    let (wild, _) = listed(&app, "/admin/sites?q=%25", ADMIN_TOKEN).await;
    assert!(
        wild.is_empty(),
        "% is a character, not a wildcard: {wild:?}"
    );
    let (underscore, _) = listed(&app, "/admin/sites?q=_", ADMIN_TOKEN).await;
    assert!(underscore.is_empty(), "{underscore:?}");

    // Deleted sites are left out when asked, and listed when their state is asked for.
    let (live, _) = listed(&app, "/admin/sites?include_deleted=false", ADMIN_TOKEN).await;
    assert_eq!(live, ["outlet", "cafe", "book-shop", "bakery"]);
    let (deleted, _) = listed(
        &app,
        "/admin/sites?include_deleted=false&state=deleted",
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(deleted, ["deli"]);

    // Pages of two follow each other without a gap or a repeat, and the last says so.
    let mut pages = Vec::new();
    let mut path = "/admin/sites?limit=2&include_deleted=false".to_owned();
    loop {
        let (names, next) = listed(&app, &path, ADMIN_TOKEN).await;
        pages.push(names);
        match next.as_str() {
            Some(cursor) => {
                path = format!("/admin/sites?limit=2&include_deleted=false&before={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(
        pages,
        [vec!["outlet", "cafe"], vec!["book-shop", "bakery"]],
        "a full last page still ends the listing"
    );

    for (query, code) in [
        ("before=nonsense", "invalid_cursor"),
        ("before=site_00000000000000000000000000", "invalid_cursor"),
        ("include_deleted=maybe", "bad_request"),
        (&format!("q={}", "a".repeat(255)), "invalid_search"),
        ("q=", "invalid_search"),
        ("q=%00", "invalid_search"),
    ] {
        let response = app
            .admin(Method::GET, &format!("/admin/sites?{query}"), ADMIN_TOKEN)
            .await;
        assert_eq!(response.status(), 400, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
    // A tenant's token cannot page from another tenant's site (nor learn that it exists).
    let foreign = app
        .admin(
            Method::GET,
            &format!("/admin/sites?before={}", ids[0]),
            ACME_TOKEN,
        )
        .await;
    assert_eq!(foreign.status(), 400);
}

#[tokio::test]
async fn operators_list_the_tenants_they_may_see() {
    let app = TestApp::spawn_with(|settings| {
        settings.tenants[0].display_name = "Shops & Co".into();
        settings.tenants[1].stripe.webhook_secrets.clear();
    })
    .await;
    let all: serde_json::Value = app
        .admin(Method::GET, "/admin/tenants", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["scope"], "global");
    let tenants = all["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 2);
    assert_eq!(tenants[0]["name"], "acme");
    assert_eq!(tenants[0]["stripe"], false);
    assert_eq!(tenants[0]["display_name"], "acme");
    assert!(tenants[0]["signup_url"]
        .as_str()
        .unwrap()
        .ends_with("/t/acme/signup"));
    assert_eq!(tenants[1]["name"], "default");
    assert_eq!(tenants[1]["display_name"], "Shops & Co");
    assert_eq!(tenants[1]["stripe"], true);
    assert!(
        !all.to_string().contains("whsec_"),
        "no secret in the listing"
    );

    let own: serde_json::Value = app
        .admin(Method::GET, "/admin/tenants", ACME_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<_> = own["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme"], "a tenant's token sees its own tenant only");
    assert_eq!(own["scope"], "tenant");
}

#[tokio::test]
async fn a_tenant_token_sees_only_its_tenant() {
    let app = TestApp::spawn().await;
    let default_site = app.signup("default-shop").await;
    let response = app
        .post_json(
            "/t/acme/signup",
            &serde_json::json!({"name": "acme-shop", "email": "a@b.co", "html": "x"}),
        )
        .await;
    let acme_site: serde_json::Value = response.json().await.unwrap();

    let listed: serde_json::Value = app
        .admin(Method::GET, "/admin/sites", ACME_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<_> = listed["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme-shop"]);
    assert_eq!(
        app.admin(Method::GET, "/admin/sites?tenant=default", ACME_TOKEN)
            .await
            .status(),
        403
    );

    let own = app
        .admin(
            Method::GET,
            &format!("/admin/sites/{}", acme_site["id"].as_str().unwrap()),
            ACME_TOKEN,
        )
        .await;
    assert_eq!(own.status(), 200);
    let own: serde_json::Value = own.json().await.unwrap();
    assert_eq!(own["email"], "a@b.co", "operators see the customer's email");

    let foreign_id = default_site["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/admin/sites/{foreign_id}")),
        (Method::POST, format!("/admin/sites/{foreign_id}/suspend")),
        (Method::DELETE, format!("/admin/sites/{foreign_id}")),
        (Method::GET, "/admin/jobs".to_owned()),
    ] {
        let response = app.admin(method.clone(), &path, ACME_TOKEN).await;
        assert_eq!(response.status(), 403, "{method} {path}");
    }
    assert_eq!(
        app.status("default", foreign_id).await["state"],
        "provisioning",
        "nothing changed"
    );
}

#[tokio::test]
async fn unknown_sites_are_404s() {
    let app = TestApp::spawn().await;
    for path in [
        "/admin/sites/site_00000000000000000000000000",
        "/admin/sites/nonsense",
    ] {
        let response = app.admin(Method::GET, path, ADMIN_TOKEN).await;
        assert_eq!(response.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn failed_jobs_are_listed_and_can_be_retried() {
    let app = TestApp::spawn().await;
    app.context()
        .faults
        .set("send_email.after_send", Some(berth::faults::Fault::Error));
    let site = app.signup("job-shop").await;
    app.drain_jobs().await;
    let failed: serde_json::Value = app
        .admin(Method::GET, "/admin/jobs?state=failed", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    let jobs = failed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{failed}");
    assert_eq!(jobs[0]["kind"], "send_email");
    assert_eq!(jobs[0]["site_id"], site["id"]);
    // The message went out before the injected error, so retrying sends nothing new.
    let job_id = jobs[0]["id"].as_str().unwrap();
    app.context().faults.set("send_email.after_send", None);
    let retried = app
        .admin(
            Method::POST,
            &format!("/admin/jobs/{job_id}/retry"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(retried.status(), 202);
    assert_eq!(app.drain_jobs().await, 1);
    let again = app
        .admin(
            Method::POST,
            &format!("/admin/jobs/{job_id}/retry"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(again.status(), 409);
    assert_eq!(
        app.admin(Method::GET, "/admin/jobs?state=bogus", ADMIN_TOKEN)
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn the_dashboard_page_holds_no_data_and_locks_down_scripts() {
    let app = TestApp::spawn().await;
    app.signup("secret-shop").await;
    let page = app.client.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("/admin/dashboard.js"));
    assert!(
        !html.contains("secret-shop"),
        "data only comes through the token-protected API"
    );
    let script = app
        .client
        .get(app.url("/admin/dashboard.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().contains("Authorization"));
}

#[tokio::test]
async fn a_tenant_token_cannot_tell_which_other_tenants_exist() {
    let app = TestApp::spawn().await;
    let mut answers = Vec::new();
    for tenant in ["default", "no-such-tenant"] {
        for path in ["plugins", "policies"] {
            let response = app
                .admin(
                    Method::GET,
                    &format!("/admin/t/{tenant}/{path}"),
                    ACME_TOKEN,
                )
                .await;
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap();
            answers.push((status, body));
        }
    }
    for (status, body) in &answers {
        assert_eq!(*status, 403, "{body}");
        assert_eq!(
            body, &answers[0].1,
            "the same answer, existing tenant or not"
        );
    }
    // The global token sees every tenant, so it may learn which exist.
    let global = app
        .admin(Method::GET, "/admin/t/no-such-tenant/plugins", ADMIN_TOKEN)
        .await;
    assert_eq!(global.status(), 404);
}

#[tokio::test]
async fn metrics_can_be_kept_for_holders_of_the_metrics_token() {
    let token = "metrics-token-0123456789";
    let app =
        TestApp::spawn_with(|s| s.server.metrics_token = berth::domain::Secret::new(token)).await;
    let get = |auth: Option<&'static str>| {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        request.send()
    };
    let anonymous = get(None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let body = anonymous.text().await.unwrap();
    assert!(!body.contains("tenant="), "{body}");
    assert_eq!(get(Some(ADMIN_TOKEN)).await.unwrap().status(), 401);
    let scraped = get(Some(token)).await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("berth_sites"));
}

#[tokio::test]
async fn rollout_requests_get_precise_answers() {
    let app = TestApp::spawn().await;
    app.signup("steady-shop").await;
    app.drain_jobs().await;
    let post = |path: &'static str, token: &'static str, body: serde_json::Value| {
        let request = app
            .client
            .post(app.url(path))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_owned(),
                body,
            )
        }
    };
    let status: serde_json::Value = app
        .admin(Method::GET, "/admin/t/default/rollout", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["drift"]["ready"], 1, "{status}");
    assert_eq!(
        status["drift"]["drifted"], 0,
        "the local runtime never drifts: {status}"
    );
    assert_eq!(status["rollout"], serde_json::Value::Null);
    for (body, code) in [
        (serde_json::json!({"max_parallel": 0}), "invalid_rollout"),
        (
            serde_json::json!({"max_failures": 10001}),
            "invalid_rollout",
        ),
        (serde_json::json!({"max_parallel": 1.5}), "invalid_rollout"),
        (
            serde_json::json!({"max_parallel": 2.0, "max_failures": 3}),
            "no_drift",
        ),
        (serde_json::json!({}), "no_drift"),
    ] {
        let (_, got, answer) = post("/admin/t/default/rollout", ADMIN_TOKEN, body.clone()).await;
        assert_eq!(got, code, "{body} → {answer}");
    }
    let (status, code, _) = post(
        "/admin/t/default/rollout",
        ADMIN_TOKEN,
        serde_json::json!({"max_paralel": 2}),
    )
    .await;
    assert_eq!(status, 400, "unknown fields are refused ({code})");
    let (status, code, _) = post(
        "/admin/t/default/rollout/pause",
        ADMIN_TOKEN,
        serde_json::json!({}),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "no_rollout"));
    let (status, _, _) = post(
        "/admin/t/default/rollout",
        ACME_TOKEN,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, 403, "another tenant's token");
    let (status, code, _) = post("/admin/t/nope/rollout", ADMIN_TOKEN, serde_json::json!({})).await;
    assert_eq!((status, code.as_str()), (404, "unknown_tenant"));
}
