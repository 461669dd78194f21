//! The pages a customer uses in a browser: the hosted signup page, and the same page when a
//! form post is refused (values kept, each problem where it belongs, the API's status code).

use berth::configuration::Rate;

use crate::helpers::TestApp;

const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A browser's form post of `fields` to `path`: status, headers and page.
async fn post_as_browser(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    post_as_browser_from(app, path, fields, None).await
}

/// [`post_as_browser`] from a page at `referer`.
async fn post_as_browser_from(
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
    referer: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = app.client.post(app.url(path)).header("accept", BROWSER);
    if let Some(referer) = referer {
        request = request.header("referer", referer);
    }
    let response = request.form(fields).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn each_tenant_has_a_hosted_signup_page_with_its_branding_and_no_script() {
    let app = TestApp::spawn_with(|s| {
        let acme = s.tenants.iter_mut().find(|t| t.name == "acme").unwrap();
        acme.display_name = "Acme <Stores>".into();
        acme.logo_url = "https://cdn.acme.test/logo.png".into();
        acme.accent_color = "#c0392b".into();
        acme.plans.insert(
            "price_basic".into(),
            berth::configuration::PlanSettings {
                name: "basic".into(),
                ..Default::default()
            },
        );
    })
    .await;
    let response = app
        .client
        .get(app.url("/t/acme/signup"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("default-src 'none'") && !policy.contains("script-src"),
        "{policy}"
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains("Create your site with Acme &lt;Stores&gt;"),
        "{page}"
    );
    assert!(page.contains(r#"src="https://cdn.acme.test/logo.png""#));
    assert!(page.contains("background:#c0392b"));
    assert!(page.contains(r#"action="/t/acme/signup""#));
    assert!(
        page.contains(r#"<option value="price_basic">basic</option>"#),
        "{page}"
    );
    // The same rules the server applies, as HTML's own hints, and the honeypot.
    assert!(page.contains(r#"minlength="3" maxlength="63""#));
    assert!(page.contains(r#"name="website""#));
    assert!(page.contains("name.acme.test"));
    assert!(!page.to_lowercase().contains("<script"));

    // Tenant `default` under its short path; an unknown tenant is a 404.
    let page = app.get_text("/signup").await;
    assert!(page.contains(r#"action="/signup""#) && page.contains("Create your site with default"));
    let missing = app
        .client
        .get(app.url("/t/nobody/signup"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_refused_browser_post_gets_the_form_again_with_its_values_and_problems() {
    let app = TestApp::spawn_with(|s| {
        s.tenants[0].policies = vec![crate::plugins::html_guard_binding()];
    })
    .await;
    // Built-in validation: the API's 422, each problem next to its field, the values kept
    // except the honeypot's.
    let (status, headers, page) = post_as_browser(
        &app,
        "/signup",
        &[
            ("name", "Bad Name!"),
            ("email", "not-an-address"),
            ("html", "<p>kept & shown</p>"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.contains(r#"value="Bad Name!""#), "{page}");
    assert!(page.contains(r#"value="not-an-address""#));
    assert!(
        page.contains("&lt;p&gt;kept &amp; shown&lt;/p&gt;</textarea>"),
        "{page}"
    );
    assert!(page.contains(r#"id="name-problem""#) && page.contains(r#"id="email-problem""#));
    assert!(page.contains("Please check the fields marked below."));

    // A policy's reasons, in the words the plugin gave them.
    let (status, _, page) = post_as_browser(
        &app,
        "/signup",
        &[
            ("name", "my-shop"),
            ("email", "ann@example.com"),
            ("html", "<p>hi</p><script>alert(1)</script>"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(page.contains("We could not create your site:"), "{page}");
    assert!(page.contains("&lt;script&gt; is not allowed"), "{page}");
    assert!(page.contains(r#"value="my-shop""#));

    // A taken name, next to the name field: the API's 409.
    let created = app
        .post_form(
            "/signup",
            &[
                ("name", "taken-shop"),
                ("email", "a@example.com"),
                ("html", "<p>x</p>"),
            ],
        )
        .await;
    assert_eq!(created.status(), 201);
    let (status, _, page) = post_as_browser(
        &app,
        "/signup",
        &[
            ("name", "taken-shop"),
            ("email", "b@example.com"),
            ("html", "<p>x</p>"),
        ],
    )
    .await;
    assert_eq!(status, 409);
    assert!(page.contains("already taken"), "{page}");
    assert!(page.contains(r#"id="name-problem""#));
    // The honeypot comes back empty, whatever was posted (a filled one never reaches this
    // page: it gets the decoy's answer).
    assert!(
        page.contains(r#"<input id="website" name="website" tabindex="-1" autocomplete="off">"#),
        "{page}"
    );

    // API clients keep their JSON.
    let json = app
        .post_form(
            "/signup",
            &[("name", "Bad Name!"), ("email", "x"), ("html", "<p>x</p>")],
        )
        .await;
    assert_eq!(json.status(), 422);
    let body: serde_json::Value = json.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_fields");
}

#[tokio::test]
async fn a_rate_limited_browser_post_is_told_when_to_try_again() {
    let app = TestApp::spawn_with(|s| s.rate_limits.signup_per_ip = Rate::per_hour(1, 1)).await;
    let fields = [
        ("name", "first-shop"),
        ("email", "a@example.com"),
        ("html", "<p>x</p>"),
    ];
    let (status, _, _) = post_as_browser(&app, "/signup", &fields).await;
    assert_eq!(status, 303);
    let (status, headers, page) = post_as_browser(&app, "/signup", &fields).await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
    assert!(page.contains("Please try again in 60 minutes."), "{page}");
    // The limit is checked before the body is read, so the form comes back empty (the
    // browser's own back button keeps what was typed), with a way back where the post came
    // from.
    let (status, _, page) = post_as_browser_from(
        &app,
        "/signup",
        &fields,
        Some("https://shop.example/join?plan=1"),
    )
    .await;
    assert_eq!(status, 429);
    assert!(
        page.contains(r#"href="https://shop.example/join?plan=1""#),
        "{page}"
    );
}

#[tokio::test]
async fn a_suspended_site_is_paused_for_its_visitors_and_its_status_page_says_what_next() {
    let app = TestApp::spawn().await;
    let site = app.signup("paused-shop").await;
    let id = site["id"].as_str().unwrap().to_owned();
    app.drain_jobs().await;
    assert_eq!(app.get_site("paused-shop.localhost").await.status(), 200);

    let suspended = app
        .admin(
            reqwest::Method::POST,
            &format!("/admin/sites/{id}/suspend"),
            crate::helpers::ADMIN_TOKEN,
        )
        .await;
    assert!(suspended.status().is_success(), "{}", suspended.status());
    app.drain_jobs().await;
    assert_eq!(app.status("default", &id).await["state"], "suspended");
    let visit = app.get_site("paused-shop.localhost").await;
    assert_eq!(visit.status(), 503);
    assert_eq!(visit.headers()["retry-after"], "3600");
    assert!(visit.text().await.unwrap().contains("This site is paused"));
    // A name nobody holds is still no site at all.
    assert_eq!(app.get_site("nobody-here.localhost").await.status(), 404);
    let page = app.get_text(&format!("/t/default/sites/{id}")).await;
    assert!(
        page.contains("Its visitors are told it is paused"),
        "{page}"
    );

    app.delete_site("default", &id).await;
    let page = app.get_text(&format!("/t/default/sites/{id}")).await;
    assert!(page.contains("You can sign up again"), "{page}");
    assert!(page.contains(r#"href="/signup""#), "{page}");
}
