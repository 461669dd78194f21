//! The provider against a Cloudflare fake on loopback: what it sends, in what order, and what it
//! leaves alone. Waits are recorded, never slept.

#[path = "../../../../tests/api/cloudflare_fake.rs"]
mod fake;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use wiremock::ResponseTemplate;

use self::fake::{failure, CloudflareFake};
use super::*;
use crate::configuration::{DnsProviderKind, DnsSettings};
use crate::domain::Secret;
use crate::error::is_permanent;

const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const TOKEN: &str = "cf-test-token-Zk3q";
const NAME: &str = "shop.example.com";

fn site() -> DnsRecord {
    DnsRecord {
        hostname: NAME.into(),
        target: "203.0.113.7".into(),
        tenant: "acme".into(),
        site_id: "site_0123456789abcdefghjkmnpqrs".into(),
    }
}

fn marker() -> String {
    site().owner_tag()
}

/// The body berth sends to create or correct the record of [`site`] as an `A` record.
fn wanted_a_record() -> serde_json::Value {
    json!({
        "type": "A",
        "name": NAME,
        "content": "203.0.113.7",
        "proxied": false,
        "ttl": 300,
        "comment": "berth:acme/site_0123456789abcdefghjkmnpqrs",
    })
}

/// A provider for `fake`, with its own budget and a pause that records instead of sleeping.
struct Harness {
    fake: CloudflareFake,
    dns: Cloudflare,
    waits: Arc<Mutex<Vec<Duration>>>,
}

fn settings(fake: &CloudflareFake, kind: RecordType) -> DnsSettings {
    DnsSettings {
        provider: DnsProviderKind::Cloudflare,
        api_token: Secret::new(TOKEN),
        zone_id: ZONE.into(),
        api_base: fake.api_base(),
        record_type: kind,
        target: String::new(),
        proxied: false,
        ttl: 300,
        timeout_secs: 5,
    }
}

fn recording_pause() -> (Pause, Arc<Mutex<Vec<Duration>>>) {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let seen = waits.clone();
    let pause: Pause = Arc::new(move |wait| {
        seen.lock().unwrap().push(wait);
        Box::pin(async {})
    });
    (pause, waits)
}

async fn harness_with(kind: RecordType, tweak: impl FnOnce(&mut DnsSettings)) -> Harness {
    harness_budgeted(kind, tweak, Budget::new(1_000, 100), RetryPolicy::default()).await
}

async fn harness_budgeted(
    kind: RecordType,
    tweak: impl FnOnce(&mut DnsSettings),
    budget: Budget,
    retry: RetryPolicy,
) -> Harness {
    let fake = CloudflareFake::start(ZONE, TOKEN).await;
    let mut settings = settings(&fake, kind);
    tweak(&mut settings);
    let (pause, waits) = recording_pause();
    let dns = Cloudflare::with("acme", &settings, Arc::new(budget), retry, pause).unwrap();
    Harness { fake, dns, waits }
}

impl Harness {
    /// Upserts the site, which must fail: whether the failure is permanent, and its message.
    async fn upsert_fails(&self) -> (bool, String) {
        let error = self.dns.upsert(&site()).await.unwrap_err();
        (is_permanent(&error), format!("{error:#}"))
    }
}

async fn harness() -> Harness {
    harness_with(RecordType::A, |_| {}).await
}

fn list_call(kind: Option<&str>) -> String {
    let kind = kind.map(|k| format!("&type={k}")).unwrap_or_default();
    format!("GET /zones/{ZONE}/dns_records?name={NAME}{kind}&page=1&per_page=100")
}

fn records_path() -> String {
    format!("/zones/{ZONE}/dns_records")
}

#[tokio::test]
async fn a_missing_record_is_created_with_the_ownership_marker() {
    let h = harness().await;
    h.dns.upsert(&site()).await.unwrap();

    assert_eq!(
        h.fake.calls().await,
        [list_call(Some("A")), format!("POST {}", records_path())]
    );
    assert_eq!(h.fake.bodies("POST").await, [wanted_a_record()]);
    for request in h.fake.requests().await {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {TOKEN}").as_str()
        );
    }
    assert_eq!(h.fake.records().len(), 1);
}

#[tokio::test]
async fn a_proxied_record_gets_the_automatic_ttl() {
    let h = harness_with(RecordType::Cname, |s| {
        s.proxied = true;
        s.ttl = 300;
    })
    .await;
    let record = DnsRecord {
        target: "lb.example.net".into(),
        ..site()
    };
    h.dns.upsert(&record).await.unwrap();
    let body = &h.fake.bodies("POST").await[0];
    assert_eq!(body["type"], "CNAME");
    assert_eq!(body["content"], "lb.example.net");
    assert_eq!(body["proxied"], true);
    assert_eq!(body["ttl"], 1);
}

#[tokio::test]
async fn an_owned_record_that_is_right_is_left_as_it_is() {
    let h = harness().await;
    h.dns.upsert(&site()).await.unwrap();
    h.dns.upsert(&site()).await.unwrap();
    let calls = h.fake.calls().await;
    assert_eq!(calls.len(), 3, "list, create, list: {calls:?}");
    assert_eq!(calls[2], list_call(Some("A")));
}

#[tokio::test]
async fn an_owned_record_pointing_elsewhere_is_corrected_in_place() {
    let h = harness().await;
    let id = h.fake.add("A", NAME, "198.51.100.1", Some(&marker()));
    h.dns.upsert(&site()).await.unwrap();

    assert_eq!(
        h.fake.calls().await,
        [
            list_call(Some("A")),
            format!("PATCH {}/{id}", records_path())
        ]
    );
    assert_eq!(h.fake.bodies("PATCH").await, [wanted_a_record()]);
    let records = h.fake.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["content"], "203.0.113.7");
}

#[tokio::test]
async fn a_foreign_record_is_never_touched_and_the_job_fails_at_once() {
    let cases = [
        (None, "berth did not create it"),
        (Some("managed by hand"), "berth did not create it"),
        (
            Some("berth:acme/site_zzzzzzzzzzzzzzzzzzzzzzzzzz"),
            "berth site site_zzzzzzzzzzzzzzzzzzzzzzzzzz of tenant acme",
        ),
    ];
    for (comment, whose) in cases {
        let h = harness().await;
        let id = h.fake.add("A", NAME, "198.51.100.1", comment);
        let (permanent, message) = h.upsert_fails().await;
        assert!(permanent, "{message}");
        for part in ["DNS conflict", NAME, "198.51.100.1", &id, whose] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        assert_eq!(h.fake.calls().await, [list_call(Some("A"))], "only looked");

        let gone = h.dns.delete(&site()).await;
        assert!(gone.is_ok(), "deleting leaves it alone and succeeds");
        assert_eq!(
            h.fake.records().len(),
            1,
            "{comment:?} record is still there"
        );
        assert!(
            !h.fake.calls().await.iter().any(|c| c.starts_with("DELETE")),
            "no DELETE sent"
        );
    }
}

#[tokio::test]
async fn a_record_of_another_type_in_the_way_is_a_conflict_naming_it() {
    let h = harness().await;
    let id = h.fake.add("CNAME", NAME, "elsewhere.example.net", None);
    let (permanent, message) = h.upsert_fails().await;
    assert!(permanent, "{message}");
    assert!(
        message.contains(&format!("CNAME {NAME} -> elsewhere.example.net (id {id}")),
        "{message}"
    );
    assert!(
        message.contains("81053 An A, AAAA, or CNAME record with that host already exists."),
        "Cloudflare's refusal is quoted: {message}"
    );
    assert_eq!(
        h.fake.calls().await,
        [
            list_call(Some("A")),
            format!("POST {}", records_path()),
            list_call(None),
        ]
    );
    assert_eq!(h.fake.records().len(), 1);
}

#[tokio::test]
async fn the_sites_own_record_of_an_earlier_type_is_replaced() {
    let h = harness_with(RecordType::Cname, |_| {}).await;
    let old = h.fake.add("A", NAME, "198.51.100.1", Some(&marker()));
    let record = DnsRecord {
        target: "lb.example.net".into(),
        ..site()
    };
    h.dns.upsert(&record).await.unwrap();
    assert_eq!(
        h.fake.calls().await,
        [
            list_call(Some("CNAME")),
            format!("POST {}", records_path()),
            list_call(None),
            format!("DELETE {}/{old}", records_path()),
            list_call(Some("CNAME")),
            format!("POST {}", records_path()),
        ]
    );
    let records = h.fake.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["type"], "CNAME");
}

#[tokio::test]
async fn a_record_created_meanwhile_by_this_site_is_adopted() {
    let h = harness().await;
    // The create went through on an earlier attempt, but the answer was lost: Cloudflare now
    // says it exists, and the record is ours.
    h.fake
        .fail_next(ResponseTemplate::new(200).set_body_json(json!({
        "success": true, "errors": [], "messages": [], "result": [],
        "result_info": {"page": 1, "per_page": 100, "count": 0, "total_count": 0, "total_pages": 1}
    })));
    h.fake.add("A", NAME, "203.0.113.7", Some(&marker()));
    h.dns.upsert(&site()).await.unwrap();
    let calls = h.fake.calls().await;
    assert_eq!(calls[1], format!("POST {}", records_path()));
    assert_eq!(
        calls.len(),
        4,
        "list, create (81058), list by name, list: {calls:?}"
    );
    assert_eq!(h.fake.records().len(), 1, "no second record");
}

#[tokio::test]
async fn duplicates_of_the_sites_own_record_are_removed() {
    let h = harness().await;
    let keep = h.fake.add("A", NAME, "203.0.113.7", Some(&marker()));
    let extra = h.fake.add("A", NAME, "203.0.113.7", Some(&marker()));
    h.dns.upsert(&site()).await.unwrap();
    let records = h.fake.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], keep.as_str());
    assert!(h
        .fake
        .calls()
        .await
        .contains(&format!("DELETE {}/{extra}", records_path())));
}

#[tokio::test]
async fn delete_removes_only_the_sites_own_record_and_succeeds_when_it_is_gone() {
    let h = harness().await;
    let mine = h.fake.add("A", NAME, "203.0.113.7", Some(&marker()));
    h.fake
        .add("TXT", NAME, "\"verification=1\"", Some("managed by hand"));
    h.dns.delete(&site()).await.unwrap();
    assert_eq!(
        h.fake.calls().await,
        [list_call(None), format!("DELETE {}/{mine}", records_path())]
    );
    let left = h.fake.records();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["type"], "TXT");

    h.dns.delete(&site()).await.unwrap();
    assert_eq!(h.fake.calls().await.len(), 3, "one more list, nothing else");
}

#[tokio::test]
async fn a_record_deleted_by_someone_else_meanwhile_counts_as_deleted() {
    let h = harness().await;
    h.fake.add("A", NAME, "203.0.113.7", Some(&marker()));
    // The list sees it; by the time of the DELETE it is gone.
    h.fake.fail_next(ResponseTemplate::new(200).set_body_json(json!({
        "success": true, "errors": [], "messages": [],
        "result": [{"id": "0bad", "type": "A", "name": NAME, "content": "203.0.113.7", "proxied": false, "ttl": 300, "comment": marker()}],
        "result_info": {"page": 1, "per_page": 100, "count": 1, "total_count": 1, "total_pages": 1}
    })));
    h.dns.delete(&site()).await.unwrap();
}

#[tokio::test]
async fn listings_follow_every_page() {
    let h = harness().await;
    h.fake.max_per_page(2);
    for i in 1..=4 {
        h.fake.add("TXT", NAME, &format!("\"note {i}\""), None);
    }
    let mine = h.fake.add("A", NAME, "203.0.113.7", Some(&marker()));
    h.dns.delete(&site()).await.unwrap();
    let calls = h.fake.calls().await;
    assert_eq!(
        calls,
        [
            list_call(None),
            format!("GET /zones/{ZONE}/dns_records?name={NAME}&page=2&per_page=100"),
            format!("GET /zones/{ZONE}/dns_records?name={NAME}&page=3&per_page=100"),
            format!("DELETE {}/{mine}", records_path()),
        ]
    );
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_goes_ahead() {
    let h = harness().await;
    h.fake.fail_next(
        failure(
            429,
            10429,
            "Rate limited. Please wait and consider throttling your request speed",
        )
        .insert_header("retry-after", "7"),
    );
    h.dns.upsert(&site()).await.unwrap();
    let calls = h.fake.calls().await;
    assert_eq!(calls[0], calls[1], "the list was sent again");
    assert_eq!(calls.len(), 3);
    let waits = h.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(
        waits[0] > Duration::from_secs(6) && waits[0] <= Duration::from_secs(7),
        "{waits:?}"
    );
}

#[tokio::test]
async fn a_long_retry_after_fails_the_call_for_a_later_retry_and_holds_the_token() {
    let h = harness().await;
    h.fake.fail_next(
        failure(429, 10100, "More than 1200 requests per 300 seconds reached. Please wait and consider throttling your request speed")
            .insert_header("retry-after", "300"),
    );
    let (permanent, message) = h.upsert_fails().await;
    assert!(!permanent, "a later attempt will do: {message}");
    assert!(message.contains("rate limit"), "{message}");
    assert!(
        h.waits.lock().unwrap().is_empty(),
        "no inline wait of 5 minutes"
    );

    // The token is paused: the next call does not even reach Cloudflare.
    let (permanent, _) = h.upsert_fails().await;
    assert!(!permanent);
    assert_eq!(h.fake.calls().await.len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let h = harness().await;
    h.fake.fail_next(failure(502, 10002, "Bad gateway"));
    h.fake
        .fail_next(ResponseTemplate::new(503).set_body_string("<html>unavailable</html>"));
    h.dns.upsert(&site()).await.unwrap();
    assert_eq!(
        h.fake.calls().await.len(),
        4,
        "two failed lists, list, create"
    );
    let waits = h.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert!(waits[1] >= waits[0] / 2, "backoff grows: {waits:?}");
}

#[tokio::test]
async fn server_errors_that_persist_become_an_ordinary_job_error() {
    let h = harness().await;
    for _ in 0..3 {
        h.fake
            .fail_next(failure(500, 10001, "Internal server error"));
    }
    let (permanent, message) = h.upsert_fails().await;
    assert!(!permanent, "the job retries later: {message}");
    assert!(message.contains("after 3 tries"), "{message}");
    assert!(message.contains("HTTP 500"), "{message}");
    assert!(message.contains("10001 Internal server error"), "{message}");
    assert_eq!(h.fake.calls().await.len(), 3);
}

#[tokio::test]
async fn an_unreachable_api_is_retried_then_an_ordinary_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = harness_with(RecordType::A, |s| {
        s.api_base = format!("http://127.0.0.1:{port}/client/v4");
    })
    .await;
    let (permanent, message) = h.upsert_fails().await;
    assert!(!permanent, "{message}");
    assert!(message.contains("could not connect"), "{message}");
    assert_eq!(
        h.waits.lock().unwrap().len(),
        2,
        "two backoffs between three tries"
    );
}

#[tokio::test]
async fn refused_credentials_fail_the_job_at_once_without_showing_the_token() {
    let cases = [
        (
            failure(403, 10000, "Authentication error"),
            "10000 Authentication error",
        ),
        (
            failure(400, 9109, "Invalid access token"),
            "9109 Invalid access token",
        ),
        (
            failure(401, 10001, "Unable to authenticate request"),
            "10001",
        ),
        (failure(403, 9999, "Permission denied"), "HTTP 403"),
    ];
    for (answer, shown) in cases {
        let h = harness().await;
        h.fake.fail_next(answer);
        let (permanent, message) = h.upsert_fails().await;
        assert!(permanent, "{message}");
        assert!(message.contains(shown), "{shown} missing from: {message}");
        assert!(message.contains("dns.api_token"), "{message}");
        assert!(!message.contains(TOKEN), "the token leaked: {message}");
        assert_eq!(h.fake.calls().await.len(), 1, "no retry");
    }
}

#[tokio::test]
async fn a_wrong_token_is_refused_by_the_fake_and_reported() {
    let h = harness_with(RecordType::A, |s| {
        s.api_token = Secret::new("not-the-token")
    })
    .await;
    let (permanent, message) = h.upsert_fails().await;
    assert!(permanent, "{message}");
    assert!(!message.contains("not-the-token"), "{message}");
}

#[tokio::test]
async fn a_wrong_zone_fails_at_once_with_a_hint() {
    let h = harness_with(RecordType::A, |s| s.zone_id = "0000".into()).await;
    let (permanent, message) = h.upsert_fails().await;
    assert!(permanent, "{message}");
    assert!(message.contains("7003"), "{message}");
    assert!(message.contains("dns.zone_id"), "{message}");
}

#[tokio::test]
async fn a_target_unfit_for_the_record_type_fails_before_any_request() {
    let h = harness_with(RecordType::Cname, |_| {}).await;
    let (permanent, message) = h.upsert_fails().await;
    assert!(permanent);
    assert!(message.contains("needs a hostname"), "{message}");
    assert!(h.fake.calls().await.is_empty());
}

#[tokio::test]
async fn a_spent_budget_sends_nothing_and_leaves_the_retry_to_the_job() {
    let retry = RetryPolicy {
        max_wait: Duration::from_secs(1),
        ..RetryPolicy::default()
    };
    let h = harness_budgeted(RecordType::A, |_| {}, Budget::new(1, 1), retry).await;
    let (permanent, message) = h.upsert_fails().await;
    assert!(!permanent, "{message}");
    assert!(message.contains("budget"), "{message}");
    assert_eq!(
        h.fake.calls().await,
        [list_call(Some("A"))],
        "the list only; the create waits"
    );
}
