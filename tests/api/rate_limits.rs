use berth::configuration::Rate;

use crate::helpers::{TestApp, ADMIN_TOKEN};

async fn signup_from(
    app: &TestApp,
    name: &str,
    email: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url("/signup")).form(&[
        ("name", name),
        ("email", email),
        ("html", "x"),
    ]);
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn signups_per_ip_are_limited_with_a_retry_after() {
    let app = TestApp::spawn_with(|s| s.rate_limits.signup_per_ip = Rate::per_minute(1, 2)).await;
    assert_eq!(
        signup_from(&app, "ip-one", "a@example.com", None)
            .await
            .status(),
        201
    );
    assert_eq!(
        signup_from(&app, "ip-two", "b@example.com", None)
            .await
            .status(),
        201
    );
    let limited = signup_from(&app, "ip-three", "c@example.com", Some("198.51.100.1")).await;
    assert_eq!(
        limited.status(),
        429,
        "X-Forwarded-For from an untrusted peer is ignored"
    );
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(app.count_sites().await, 2);
}

#[tokio::test]
async fn forwarded_for_is_honoured_from_trusted_proxies() {
    let app = TestApp::spawn_with(|s| {
        s.rate_limits.signup_per_ip = Rate::per_minute(1, 1);
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    assert_eq!(
        signup_from(&app, "xff-one", "a@example.com", Some("198.51.100.1"))
            .await
            .status(),
        201
    );
    assert_eq!(
        signup_from(&app, "xff-two", "b@example.com", Some("198.51.100.2"))
            .await
            .status(),
        201
    );
    assert_eq!(
        signup_from(&app, "xff-three", "c@example.com", Some("198.51.100.1"))
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn signups_per_email_and_per_tenant_are_limited() {
    let app = TestApp::spawn_with(|s| s.rate_limits.signup_per_email = Rate::per_hour(1, 1)).await;
    assert_eq!(
        signup_from(&app, "mail-one", "same@example.com", None)
            .await
            .status(),
        201
    );
    assert_eq!(
        signup_from(&app, "mail-two", "SAME@example.com", None)
            .await
            .status(),
        429
    );

    let app = TestApp::spawn_with(|s| s.rate_limits.signup_per_tenant = Rate::per_hour(1, 1)).await;
    assert_eq!(
        signup_from(&app, "tenant-one", "a@example.com", None)
            .await
            .status(),
        201
    );
    assert_eq!(
        signup_from(&app, "tenant-two", "b@example.com", None)
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn admin_requests_are_limited_per_token() {
    let app = TestApp::spawn_with(|s| s.rate_limits.admin_per_token = Rate::per_minute(1, 2)).await;
    for _ in 0..2 {
        assert_eq!(
            app.admin(reqwest::Method::GET, "/admin/sites", ADMIN_TOKEN)
                .await
                .status(),
            200
        );
    }
    let limited = app
        .admin(reqwest::Method::GET, "/admin/sites", ADMIN_TOKEN)
        .await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let other = app
        .admin(
            reqwest::Method::GET,
            "/admin/sites",
            crate::helpers::ACME_TOKEN,
        )
        .await;
    assert_eq!(other.status(), 200, "another token has its own budget");
}

#[tokio::test]
async fn refused_signups_never_lock_a_customer_out_of_the_per_email_limit() {
    let app = TestApp::spawn_with(|s| s.rate_limits.signup_per_email = Rate::per_hour(1, 1)).await;
    app.signup("taken-name").await;
    let victim = "victim@example.com";
    // Someone signs up in the victim's name again and again, each time refused.
    let refused = [
        ("Not A Name!", 422, "invalid name"),
        ("www", 422, "reserved name"),
        ("taken-name", 409, "taken name"),
    ];
    for _ in 0..3 {
        for (name, status, why) in refused {
            let response = signup_from(&app, name, victim, None).await;
            assert_eq!(response.status(), status, "{why}");
        }
    }
    // The victim's own signup is the first that counts.
    assert_eq!(
        signup_from(&app, "victim-shop", victim, None)
            .await
            .status(),
        201
    );
    // The limit still holds for the address, however it is spelled.
    let again = signup_from(&app, "victim-shop-2", "Victim+2@EXAMPLE.com", None).await;
    assert_eq!(again.status(), 429);
}

#[tokio::test]
async fn an_invalid_email_is_refused_as_invalid_however_often_and_never_counted() {
    let app = TestApp::spawn_with(|s| s.rate_limits.signup_per_email = Rate::per_hour(1, 1)).await;
    // About 110 KB of "email": under the body limit, far over any address.
    let junk = format!("{}@example.com", "a".repeat(110 * 1024));
    for i in 0..3 {
        let response = signup_from(&app, &format!("junk-{i}"), &junk, None).await;
        assert_eq!(response.status(), 422, "attempt {i}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["fields"][0]["field"], "email");
    }
    assert_eq!(app.count_sites().await, 0);
}

#[tokio::test]
async fn wrong_admin_tokens_are_limited_per_address_and_then_even_a_right_one_waits() {
    let app = TestApp::spawn_with(|s| {
        s.rate_limits.admin_failures_per_ip = Rate::per_hour(1, 3);
    })
    .await;
    let get = |token: &'static str| app.admin(reqwest::Method::GET, "/admin/sites", token);
    assert_eq!(
        get(ADMIN_TOKEN).await.status(),
        200,
        "right tokens are free"
    );
    for guess in 0..3 {
        assert_eq!(get("guess-0123456789abcdef").await.status(), 401, "{guess}");
    }
    let limited = get("guess-0123456789abcdef").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Over the budget, no token is looked at: a lucky guess would get no further.
    assert_eq!(get(ADMIN_TOKEN).await.status(), 429);
}
