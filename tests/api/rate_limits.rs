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
