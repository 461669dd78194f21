use crate::helpers::TestApp;

#[tokio::test]
async fn a_form_signup_returns_201_with_the_site() {
    let app = TestApp::spawn().await;
    let response = app
        .post_form(
            "/signup",
            &[
                ("name", "my-shop"),
                ("email", "ann@example.com"),
                ("html", "<h1>Hi</h1>"),
            ],
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["tenant"], "default");
    assert_eq!(body["name"], "my-shop");
    assert_eq!(body["hostname"], "my-shop.localhost");
    assert_eq!(body["state"], "provisioning");
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("site_") && id.len() == 31, "{id}");
    assert_eq!(location, format!("/t/default/sites/{id}"));
    assert_eq!(body["status_url"], app.url(&location));
    let token = body["manage_token"].as_str().unwrap();
    assert!(token.starts_with("bmt_") && token.len() == 68, "{token}");
    assert_eq!(
        body["manage_url"],
        app.url(&format!("{location}/manage#token={token}"))
    );
    assert_eq!(
        body.as_object().unwrap().len(),
        8,
        "exactly the SPEC's fields: {body}"
    );
}

#[tokio::test]
async fn a_browser_form_post_is_redirected_to_the_status_page() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/signup"))
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .form(&[
            ("name", "my-shop"),
            ("email", "ann@example.com"),
            ("html", "<h1>Hi</h1>"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/t/default/sites/site_"), "{location}");
    let page = app.client.get(app.url(location)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("my-shop.localhost"));
}

#[tokio::test]
async fn a_multipart_signup_may_send_the_html_as_a_file() {
    let app = TestApp::spawn().await;
    let file = reqwest::multipart::Part::bytes(b"<h1>From a file</h1>".to_vec())
        .file_name("index.html")
        .mime_str("text/html")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("name", "file-shop")
        .text("email", "ann@example.com")
        .part("html", file);
    let response = app
        .client
        .post(app.url("/signup"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    app.drain_jobs().await;
    let site = app.get_site("file-shop.localhost").await;
    assert_eq!(site.text().await.unwrap(), "<h1>From a file</h1>");
}

#[tokio::test]
async fn a_json_signup_for_a_named_tenant_works() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/t/acme/signup",
            &serde_json::json!({"name": "json-shop", "email": "ann@example.com", "html": "<p>x</p>"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["hostname"], "json-shop.acme.test");
}

/// Every kind of bad input gets a precise 4xx and writes nothing.
#[tokio::test]
async fn bad_signups_get_a_precise_4xx_and_store_nothing() {
    let app = TestApp::spawn().await;
    let big_html = "x".repeat(100 * 1024 + 1);
    let huge_body = "x".repeat(200 * 1024);
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str, &'a str);
    let form = "application/x-www-form-urlencoded";
    let json = "application/json";
    let cases: Vec<Case> = vec![
        (
            "no content type",
            None,
            b"name=abc".to_vec(),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            "plain text",
            Some("text/plain"),
            b"name=abc".to_vec(),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            "garbled content type",
            Some("nonsense"),
            b"x".to_vec(),
            415,
            "unsupported_media_type",
            "",
        ),
        (
            "malformed JSON",
            Some(json),
            b"{\"name\":".to_vec(),
            400,
            "malformed_body",
            "",
        ),
        (
            "JSON array",
            Some(json),
            b"[]".to_vec(),
            400,
            "malformed_body",
            "",
        ),
        (
            "JSON number field",
            Some(json),
            br#"{"name":5,"email":"a@b.co","html":"x"}"#.to_vec(),
            400,
            "malformed_body",
            "",
        ),
        (
            "missing email",
            Some(form),
            b"name=abc&html=x".to_vec(),
            400,
            "missing_field",
            "",
        ),
        (
            "missing html for a static site",
            Some(form),
            b"name=abc&email=a%40b.co".to_vec(),
            400,
            "missing_field",
            "",
        ),
        (
            "field given twice",
            Some(form),
            b"name=abc&name=abd&email=a%40b.co&html=x".to_vec(),
            400,
            "duplicate_field",
            "",
        ),
        (
            "JSON field given twice (a parser keeping the last would take \"evil\")",
            Some(json),
            br#"{"name":"abc","email":"a@b.co","html":"x","name":"evil"}"#.to_vec(),
            400,
            "duplicate_field",
            "",
        ),
        (
            "an email the mailer could not send to",
            Some(json),
            br#"{"name":"abc","email":"\"a\\\"b\"@example.com","html":"x"}"#.to_vec(),
            422,
            "invalid_fields",
            "email",
        ),
        (
            "bad percent escape",
            Some(form),
            b"name=%zz&email=a%40b.co&html=x".to_vec(),
            400,
            "malformed_body",
            "",
        ),
        (
            "multipart without boundary",
            Some("multipart/form-data"),
            b"--x".to_vec(),
            400,
            "malformed_body",
            "",
        ),
        (
            "uppercase name",
            Some(form),
            b"name=MyShop&email=a%40b.co&html=x".to_vec(),
            422,
            "invalid_fields",
            "name",
        ),
        (
            "name too short",
            Some(form),
            b"name=ab&email=a%40b.co&html=x".to_vec(),
            422,
            "invalid_fields",
            "name",
        ),
        (
            "name starting with a digit",
            Some(form),
            b"name=1shop&email=a%40b.co&html=x".to_vec(),
            422,
            "invalid_fields",
            "name",
        ),
        (
            "reserved name",
            Some(form),
            b"name=admin&email=a%40b.co&html=x".to_vec(),
            422,
            "invalid_fields",
            "name",
        ),
        (
            "empty name",
            Some(form),
            b"name=&email=a%40b.co&html=x".to_vec(),
            422,
            "invalid_fields",
            "name",
        ),
        (
            "bad email",
            Some(form),
            b"name=abc&email=nope&html=x".to_vec(),
            422,
            "invalid_fields",
            "email",
        ),
        (
            "email with a header injection",
            Some(form),
            b"name=abc&email=a%40b.co%0d%0aBcc:x%40y.z&html=x".to_vec(),
            422,
            "invalid_fields",
            "email",
        ),
        (
            "html not UTF-8",
            Some(form),
            b"name=abc&email=a%40b.co&html=%ff%fe".to_vec(),
            422,
            "invalid_fields",
            "html",
        ),
        (
            "html over the limit",
            Some(form),
            format!("name=abc&email=a%40b.co&html={big_html}").into_bytes(),
            422,
            "invalid_fields",
            "html",
        ),
        (
            "unknown plan",
            Some(form),
            b"name=abc&email=a%40b.co&html=x&plan=gold".to_vec(),
            422,
            "invalid_fields",
            "plan",
        ),
        (
            "body over the limit",
            Some(form),
            format!("name=abc&email=a%40b.co&html={huge_body}").into_bytes(),
            413,
            "payload_too_large",
            "",
        ),
    ];
    for (why, content_type, body, status, code, field) in cases {
        let mut request = app.client.post(app.url("/signup")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{why}");
        let body: serde_json::Value = response
            .json()
            .await
            .unwrap_or_else(|_| panic!("{why}: body is not JSON"));
        assert_eq!(body["error"]["code"], code, "{why}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{why}: {body}"
        );
        if !field.is_empty() {
            assert_eq!(body["error"]["fields"][0]["field"], field, "{why}: {body}");
        }
    }
    assert_eq!(app.count_sites().await, 0, "a bad signup wrote something");
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let response = app
        .post_form(
            "/signup",
            &[
                ("name", "-x-"),
                ("email", "nope"),
                ("html", "x"),
                ("plan", "gold"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    let fields: Vec<_> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "email", "plan"]);
}

#[tokio::test]
async fn an_unknown_tenant_is_a_404() {
    let app = TestApp::spawn().await;
    let response = app.post_form("/t/nobody/signup", &[("name", "abc")]).await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_tenant");
}

#[tokio::test]
async fn a_taken_name_returns_409() {
    let app = TestApp::spawn().await;
    app.signup("taken").await;
    let response = app
        .post_form(
            "/signup",
            &[
                ("name", "taken"),
                ("email", "bob@example.com"),
                ("html", "x"),
            ],
        )
        .await;
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "name_taken");
}

#[tokio::test]
async fn twenty_concurrent_signups_of_one_name_give_one_201_and_nineteen_409s() {
    let app = TestApp::spawn().await;
    let requests = (0..20).map(|i| {
        let client = app.client.clone();
        let url = app.url("/signup");
        let email = format!("racer{i}@example.com");
        async move {
            client
                .post(url)
                .form(&[
                    ("name", "contested"),
                    ("email", email.as_str()),
                    ("html", "<p>mine</p>"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let mut statuses = futures_util::future::join_all(requests).await;
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(app.count_sites().await, 1);
}

#[tokio::test]
async fn a_filled_honeypot_looks_accepted_but_stores_nothing() {
    let app = TestApp::spawn().await;
    let response = app
        .post_form(
            "/signup",
            &[
                ("name", "bot-shop"),
                ("email", "bot@example.com"),
                ("html", "x"),
                ("website", "http://spam.example"),
            ],
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["name"], "bot-shop");
    assert_eq!(app.count_sites().await, 0);
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains("berth_honeypot_total"), "{metrics}");
    // The name is still free for a human.
    app.signup("bot-shop").await;
}

#[tokio::test]
async fn json_signups_from_allowed_origins_get_cors_headers() {
    let app = TestApp::spawn().await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/t/acme/signup"))
        .header("origin", "https://shop.acme.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://shop.acme.test"
    );
    assert!(preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("content-type"));

    let response = app
        .client
        .post(app.url("/t/acme/signup"))
        .header("origin", "https://shop.acme.test")
        .json(&serde_json::json!({"name": "cors-shop", "email": "a@b.co", "html": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://shop.acme.test"
    );

    let stranger = app
        .client
        .post(app.url("/t/acme/signup"))
        .header("origin", "https://evil.example")
        .json(&serde_json::json!({"name": "evil-shop", "email": "a@b.co", "html": "x"}))
        .send()
        .await
        .unwrap();
    assert!(stranger
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn the_status_page_shows_progress_but_never_the_email() {
    let app = TestApp::spawn().await;
    let site = app.signup("status-shop").await;
    let id = site["id"].as_str().unwrap();
    let page = app
        .client
        .get(app.url(&format!("/t/default/sites/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("http-equiv=\"refresh\""),
        "a provisioning page refreshes itself"
    );
    assert!(html.contains("provisioning"));
    assert!(!html.contains("ann@example.com"));

    let json = app.status("default", id).await;
    assert_eq!(json["state"], "provisioning");
    assert!(!json.to_string().contains("ann@example.com"));

    app.drain_jobs().await;
    let json = app.status("default", id).await;
    assert_eq!(json["state"], "ready");
    assert_eq!(
        json["url"],
        format!("http://status-shop.localhost:{}/", app.sites_port)
    );
    let html = app
        .client
        .get(app.url(&format!("/t/default/sites/{id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "a settled page stops refreshing"
    );
}

#[tokio::test]
async fn a_status_page_for_an_unknown_or_foreign_site_is_a_404() {
    let app = TestApp::spawn().await;
    let site = app.signup("mine").await;
    let id = site["id"].as_str().unwrap();
    for path in [
        format!("/t/acme/sites/{id}"),
        "/t/default/sites/site_00000000000000000000000000".to_owned(),
        "/t/default/sites/not-an-id".to_owned(),
    ] {
        let response = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "site_not_found");
    }
}
