//! The Cloudflare DNS provider through the whole application: a tenant with
//! `dns.provider = "cloudflare"` pointed at a fake of the API on loopback.

use berth::configuration::DnsProviderKind;
use berth::domain::RecordType;
use berth::domain::Secret;

use crate::cloudflare_fake::{failure, CloudflareFake};
use crate::helpers::TestApp;

const ZONE: &str = "9a7806061c88ada191ed06f989cc3dac";
const TOKEN: &str = "e2e-cloudflare-token";

/// An app whose tenant `default` points `A` records at 203.0.113.10 through `fake`.
async fn app_with_cloudflare(fake: &CloudflareFake) -> TestApp {
    let api_base = fake.api_base();
    TestApp::spawn_with(|settings| {
        let dns = &mut settings.tenants[0].dns;
        dns.provider = DnsProviderKind::Cloudflare;
        dns.api_token = Secret::new(TOKEN);
        dns.zone_id = ZONE.into();
        dns.api_base = api_base;
        dns.record_type = RecordType::A;
        dns.target = "203.0.113.10".into();
        dns.proxied = false;
        dns.ttl = 120;
    })
    .await
}

#[tokio::test]
async fn a_signup_gets_a_marked_record_and_deleting_the_site_removes_it() {
    let fake = CloudflareFake::start(ZONE, TOKEN).await;
    let app = app_with_cloudflare(&fake).await;
    let site = app.signup("dns-shop").await;
    let id = site["id"].as_str().unwrap();
    app.drain_jobs().await;
    assert_eq!(app.status("default", id).await["state"], "ready");

    let records = fake.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["type"], "A");
    assert_eq!(records[0]["name"], "dns-shop.localhost");
    assert_eq!(records[0]["content"], "203.0.113.10");
    assert_eq!(records[0]["ttl"], 120);
    assert_eq!(records[0]["comment"], format!("berth:default/{id}"));
    for request in fake.requests().await {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {TOKEN}").as_str()
        );
    }

    app.delete_site("default", id).await;
    assert!(fake.records().is_empty());
    let calls = fake.calls().await;
    assert!(calls.last().unwrap().starts_with("DELETE "), "{calls:?}");
}

#[tokio::test]
async fn a_foreign_record_fails_the_site_with_the_conflict_and_is_kept() {
    let fake = CloudflareFake::start(ZONE, TOKEN).await;
    let foreign = fake.add(
        "A",
        "taken-shop.localhost",
        "198.51.100.9",
        Some("office VPN"),
    );
    let app = app_with_cloudflare(&fake).await;
    let (id, detail) = app.signup_failing_at_once("taken-shop").await;
    let error = detail["last_error"].as_str().unwrap();
    for part in [
        "DNS conflict",
        "taken-shop.localhost",
        "198.51.100.9",
        foreign.as_str(),
        "office VPN",
    ] {
        assert!(error.contains(part), "{part:?} missing from {error}");
    }
    assert_eq!(fake.records().len(), 1);
    assert_eq!(fake.records()[0]["comment"], "office VPN");
    assert!(app.outbox_files().is_empty(), "no readiness email");

    // Deleting the failed site leaves the foreign record alone.
    app.delete_site("default", &id).await;
    assert_eq!(fake.records().len(), 1);
    assert!(!fake.calls().await.iter().any(|c| c.starts_with("DELETE")));
}

#[tokio::test]
async fn a_refused_token_fails_the_site_at_once_with_a_clear_message() {
    let fake = CloudflareFake::start(ZONE, "the-right-token").await;
    let app = app_with_cloudflare(&fake).await;
    let (_, detail) = app.signup_failing_at_once("locked-shop").await;
    let error = detail["last_error"].as_str().unwrap();
    assert!(error.contains("10000 Authentication error"), "{error}");
    assert!(error.contains("dns.api_token"), "{error}");
    assert!(!error.contains(TOKEN), "{error}");
}

#[tokio::test]
async fn rate_limiting_is_retried_by_the_job_until_cloudflare_lets_it_through() {
    let fake = CloudflareFake::start(ZONE, TOKEN).await;
    let app = app_with_cloudflare(&fake).await;
    // Three 429s use up the first attempt's tries; the job's second attempt goes through.
    for _ in 0..3 {
        fake.fail_next(failure(429, 10429, "Rate limited").insert_header("retry-after", "0"));
    }
    let site = app.signup("patient-shop").await;
    let id = site["id"].as_str().unwrap();
    assert_eq!(app.drain_jobs().await, 3, "provision twice, then the email");
    assert_eq!(app.status("default", id).await["state"], "ready");
    assert_eq!(fake.records().len(), 1);
}
