//! Stripe webhooks: realistically shaped events (the payloads in `webhooks/stripe/`), signed with
//! berth's signer (checked against stripe-python's vectors in the unit tests), delivered
//! duplicated, concurrently and out of order, plus everything a forged or broken delivery can be.

use berth::configuration::{PlanSettings, Rate, Settings};
use berth::domain::Secret;
use berth::faults::Fault;
use berth::services::stripe::signature::sign;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{TestApp, ACME_STRIPE_SECRET, ACME_TOKEN, ADMIN_TOKEN, STRIPE_SECRET};

const STARTER: &str = "price_1SVt9f2eZvKYlo2Cq7Hn3Wb1";
const PRO: &str = "price_1SVtA42eZvKYlo2CmR8Kp0Xz";
const CHECKOUT_URL: &str = "https://buy.stripe.com/test_28o5mQ3xY";
const DAY: i64 = 86_400;

fn now() -> i64 {
    berth::adapters::db::now_ms() / 1000
}

/// An example payload from `webhooks/stripe/`, with a fresh event id.
fn example(name: &str) -> Value {
    let path = format!("{}/webhooks/stripe/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["id"] = json!(format!(
        "evt_test{}",
        &berth::domain::JobId::generate().as_str()[4..]
    ));
    event
}

/// `example(name)` created at `created` (Unix seconds).
fn event_at(name: &str, created: i64) -> Value {
    let mut event = example(name);
    event["created"] = json!(created);
    event
}

fn checkout_for(site_id: &str, created: i64) -> Value {
    let mut event = event_at("checkout.session.completed", created);
    event["data"]["object"]["client_reference_id"] = json!(site_id);
    event
}

/// Sets `data.object.<field>` (and keeps the references of one checkout and subscription apart
/// when a test needs several).
fn with(mut event: Value, field: &str, value: Value) -> Value {
    event["data"]["object"][field] = value;
    event
}

/// Settings for a tenant that takes payment first, with two plans.
fn paid(settings: &mut Settings) {
    let tenant = &mut settings.tenants[0];
    tenant.payment_required = true;
    tenant.checkout_url = CHECKOUT_URL.into();
    for (price, name) in [(STARTER, "starter"), (PRO, "pro")] {
        tenant.plans.insert(
            price.into(),
            PlanSettings {
                name: name.into(),
                cpu: "250m".into(),
                memory: "256Mi".into(),
            },
        );
    }
}

impl TestApp {
    /// Signs `event` for tenant default as Stripe would, now, and delivers it.
    async fn deliver(&self, event: &Value) -> reqwest::Response {
        self.deliver_to("/webhooks/stripe", STRIPE_SECRET, event)
            .await
    }

    async fn deliver_to(&self, path: &str, secret: &str, event: &Value) -> reqwest::Response {
        let body = serde_json::to_string_pretty(event).unwrap();
        let signature = sign(body.as_bytes(), secret, now());
        self.post_stripe(path, &body, Some(&signature)).await
    }

    /// Delivers `event`, expects `200`, and processes the queue.
    async fn apply(&self, event: &Value) {
        let response = self.deliver(event).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        self.drain_jobs().await;
    }

    async fn events(&self, query: &str) -> Vec<Value> {
        let body = self
            .admin_json(&format!("/admin/events{query}"), ADMIN_TOKEN)
            .await;
        body["events"].as_array().unwrap().clone()
    }

    /// The stored event with this Stripe id.
    async fn event(&self, stripe_id: &Value) -> Value {
        self.events("")
            .await
            .into_iter()
            .find(|e| &e["stripe_event_id"] == stripe_id)
            .unwrap_or_else(|| panic!("no stored event {stripe_id}"))
    }

    async fn site(&self, id: &str) -> Value {
        self.admin_json(&format!("/admin/sites/{id}"), ADMIN_TOKEN)
            .await
    }

    /// An admin GET's JSON body, expecting `200`.
    async fn admin_json(&self, path: &str, token: &str) -> Value {
        let response = self.admin(Method::GET, path, token).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    async fn jobs_of_kind(&self, kind: &str) -> Vec<Value> {
        let body = self.admin_json("/admin/jobs?limit=1000", ADMIN_TOKEN).await;
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == kind)
            .cloned()
            .collect()
    }

    /// A paid site that went through checkout and is ready; returns its id.
    async fn paid_site(&self, name: &str, paid_at: i64) -> String {
        let site = self.signup(name).await;
        assert_eq!(site["state"], "pending_payment");
        let id = site["id"].as_str().unwrap().to_owned();
        self.apply(&checkout_for(&id, paid_at)).await;
        assert_eq!(self.status("default", &id).await["state"], "ready");
        id
    }
}

// --- Verification -------------------------------------------------------------------------

#[tokio::test]
async fn forged_stale_or_garbled_deliveries_get_400_and_store_nothing() {
    let app = TestApp::spawn().await;
    let event = example("checkout.session.completed");
    let body = serde_json::to_string(&event).unwrap();
    let t = now();
    let good = sign(body.as_bytes(), STRIPE_SECRET, t);
    let v1 = good.split_once("v1=").unwrap().1.to_owned();
    let tampered = body.replace("\"paid\"", "\"unpaid\"");
    let cases: Vec<(&str, String, Option<String>, &str)> = vec![
        (
            "a tampered body",
            tampered,
            Some(good.clone()),
            "invalid_signature",
        ),
        (
            "the wrong secret",
            body.clone(),
            Some(sign(body.as_bytes(), "whsec_wrong", t)),
            "invalid_signature",
        ),
        (
            "another tenant's secret",
            body.clone(),
            Some(sign(body.as_bytes(), ACME_STRIPE_SECRET, t)),
            "invalid_signature",
        ),
        (
            "ten minutes old",
            body.clone(),
            Some(sign(body.as_bytes(), STRIPE_SECRET, t - 600)),
            "timestamp_out_of_tolerance",
        ),
        (
            "ten minutes ahead",
            body.clone(),
            Some(sign(body.as_bytes(), STRIPE_SECRET, t + 600)),
            "timestamp_out_of_tolerance",
        ),
        ("no header", body.clone(), None, "missing_signature"),
        (
            "an empty header",
            body.clone(),
            Some(String::new()),
            "malformed_signature",
        ),
        (
            "a truncated signature",
            body.clone(),
            Some(format!("t={t},v1={}", &v1[..40])),
            "malformed_signature",
        ),
        (
            "an empty v1",
            body.clone(),
            Some(format!("t={t},v1=")),
            "malformed_signature",
        ),
        (
            "the timestamp twice",
            body.clone(),
            Some(format!("t={t},t={},v1={v1}", t + 1)),
            "malformed_signature",
        ),
        (
            "garbage",
            body.clone(),
            Some("t=;;v1==".into()),
            "malformed_signature",
        ),
        (
            "only a v0",
            body.clone(),
            Some(format!("t={t},v0={v1}")),
            "no_v1_signature",
        ),
        (
            "signed, but not JSON",
            "not json".into(),
            Some(sign(b"not json", STRIPE_SECRET, t)),
            "malformed_event",
        ),
        (
            "signed, but not an event",
            "{\"hello\":1}".into(),
            Some(sign(b"{\"hello\":1}", STRIPE_SECRET, t)),
            "malformed_event",
        ),
    ];
    for (why, body, signature, code) in cases {
        let response = app
            .post_stripe("/webhooks/stripe", &body, signature.as_deref())
            .await;
        assert_eq!(response.status(), 400, "{why}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{why}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains(STRIPE_SECRET) && !message.contains(&v1),
            "{why}: {message}"
        );
    }

    let twice = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", &good)
        .header("stripe-signature", &good)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400, "two Stripe-Signature headers");

    assert!(app.events("").await.is_empty(), "nothing was stored");
    assert_eq!(app.drain_jobs().await, 0, "nothing was queued");
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains(
            "berth_stripe_webhooks_total{tenant=\"default\",outcome=\"invalid_signature\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_secret_of_a_rotation_is_accepted_and_each_tenant_has_its_own() {
    let app = TestApp::spawn_with(|s| {
        s.tenants[0].stripe.webhook_secrets =
            vec![Secret::new("whsec_new_one"), Secret::new("whsec_old_one")];
    })
    .await;
    let body = serde_json::to_string(&example("invoice.paid")).unwrap();
    let t = now();
    let old = sign(body.as_bytes(), "whsec_old_one", t);
    let new = sign(body.as_bytes(), "whsec_new_one", t);
    let both = format!("{old},v1={}", new.split_once("v1=").unwrap().1);
    for header in [&old, &new, &both] {
        let response = app
            .post_stripe("/webhooks/stripe", &body, Some(header))
            .await;
        assert_eq!(response.status(), 200, "{header}");
    }
    assert_eq!(
        app.events("").await.len(),
        1,
        "one event, delivered three times"
    );

    let to_acme = app
        .deliver_to(
            "/t/acme/webhooks/stripe",
            ACME_STRIPE_SECRET,
            &example("invoice.paid"),
        )
        .await;
    assert_eq!(to_acme.status(), 200);
    let wrong_tenant = app
        .deliver_to(
            "/t/acme/webhooks/stripe",
            "whsec_new_one",
            &example("invoice.paid"),
        )
        .await;
    assert_eq!(wrong_tenant.status(), 400);
    let nobody = app
        .deliver_to(
            "/t/nobody/webhooks/stripe",
            ACME_STRIPE_SECRET,
            &example("invoice.paid"),
        )
        .await;
    assert_eq!(nobody.status(), 404);
}

#[tokio::test]
async fn a_tenant_without_webhook_secrets_refuses_every_delivery() {
    let app = TestApp::spawn_with(|s| s.tenants[0].stripe.webhook_secrets.clear()).await;
    let response = app.deliver(&example("invoice.paid")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "webhooks_not_configured");
}

#[tokio::test]
async fn deliveries_are_rate_limited_per_tenant_and_oversized_bodies_refused() {
    let app =
        TestApp::spawn_with(|s| s.rate_limits.stripe_per_tenant = Rate::per_minute(1, 2)).await;
    for _ in 0..2 {
        assert_eq!(app.deliver(&example("invoice.paid")).await.status(), 200);
    }
    let limited = app.deliver(&example("invoice.paid")).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let other_tenant = app
        .deliver_to(
            "/t/acme/webhooks/stripe",
            ACME_STRIPE_SECRET,
            &example("invoice.paid"),
        )
        .await;
    assert_eq!(other_tenant.status(), 200, "limits are per tenant");

    let app = TestApp::spawn().await;
    let mut huge = example("invoice.paid");
    huge["data"]["object"]["description"] = json!("x".repeat(1024 * 1024));
    let response = app.deliver(&huge).await;
    assert_eq!(response.status(), 413);
    assert!(app.events("").await.is_empty());
}

#[tokio::test]
async fn unsigned_deliveries_never_use_up_the_tenant_limit_and_are_limited_per_address() {
    let app = TestApp::spawn_with(|s| {
        s.rate_limits.stripe_per_tenant = Rate::per_minute(1, 5);
        s.rate_limits.stripe_invalid_per_ip = Rate::per_minute(1, 3);
    })
    .await;
    let garbage = serde_json::to_string(&example("invoice.paid")).unwrap();
    let forged = sign(garbage.as_bytes(), "whsec_not_the_tenant_s", now());
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response = app
            .post_stripe("/webhooks/stripe", &garbage, Some(&forged))
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..3], [400, 400, 400], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");

    // Stripe's real deliveries (from that very address, too) all get through: the tenant's
    // budget of 5 is whole, and only verified deliveries spend it.
    for i in 0..5 {
        let response = app.deliver(&example("invoice.paid")).await;
        assert_eq!(response.status(), 200, "real delivery {i}");
    }
    assert_eq!(app.deliver(&example("invoice.paid")).await.status(), 429);
    assert_eq!(app.events("").await.len(), 5);
}

// --- Durable, idempotent storage ----------------------------------------------------------

#[tokio::test]
async fn a_redelivered_event_gets_200_and_stores_nothing_new() {
    let app = TestApp::spawn().await;
    let event = example("customer.subscription.updated.active");
    let first = app.deliver(&event).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first, json!({"received": true, "duplicate": false}));
    // Stripe signs every retry afresh: same body, new timestamp.
    let again = app.deliver(&event).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["duplicate"], true);

    assert_eq!(app.events("").await.len(), 1);
    assert_eq!(app.jobs_of_kind("stripe_event").await.len(), 1);
}

#[tokio::test]
async fn the_same_event_delivered_concurrently_is_stored_once() {
    let app = TestApp::spawn().await;
    let event = example("invoice.paid");
    let body = serde_json::to_string(&event).unwrap();
    let signature = sign(body.as_bytes(), STRIPE_SECRET, now());
    let deliveries = (0..12).map(|_| app.post_stripe("/webhooks/stripe", &body, Some(&signature)));
    let responses = futures_util::future::join_all(deliveries).await;
    let mut fresh = 0;
    for response in responses {
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        fresh += usize::from(body["duplicate"] == false);
    }
    assert_eq!(fresh, 1, "exactly one delivery stored the event");
    assert_eq!(app.events("").await.len(), 1);
    assert_eq!(app.jobs_of_kind("stripe_event").await.len(), 1);
}

#[tokio::test]
async fn concurrent_deliveries_are_all_stored_with_their_jobs() {
    let app = TestApp::spawn().await;
    let events: Vec<Value> = (0..60).map(|_| example("invoice.payment_failed")).collect();
    let responses = futures_util::future::join_all(events.iter().map(|e| app.deliver(e))).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(app.events("?limit=1000").await.len(), 60);
    assert_eq!(app.jobs_of_kind("stripe_event").await.len(), 60);
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("berth_stripe_ingest_batch_size"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_event_types_are_stored_acknowledged_and_ignored() {
    let app = TestApp::spawn().await;
    let event = json!({
        "id": "evt_1SXq2r2eZvKYlo2CbVwx9YtZ",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": now(),
        "data": {"object": {"id": "cus_TSx1rEhAl9BjkQ", "object": "customer", "email": "ann@example.com"}},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": "customer.updated"
    });
    app.apply(&event).await;
    let stored = app.event(&event["id"]).await;
    assert_eq!(stored["outcome"], "ignored");
    assert_eq!(stored["event_type"], "customer.updated");
    assert_eq!(stored["api_version"], "2026-10-28.endive");
    assert_eq!(
        stored["created_at"],
        event["created"].as_i64().unwrap() * 1000
    );
    assert!(
        stored.get("payload").is_none(),
        "listings leave the raw payload out"
    );
}

// --- Paid tenants: pending_payment → paid → provisioning → ready ----------------------------

#[tokio::test]
async fn a_paid_signup_waits_for_payment_with_a_checkout_link_carrying_its_id() {
    let app = TestApp::spawn_with(paid).await;
    let site = app.signup("paid-shop").await;
    assert_eq!(site["state"], "pending_payment");
    let id = site["id"].as_str().unwrap();
    app.drain_jobs().await;
    let status = app.status("default", id).await;
    assert_eq!(
        status["state"], "pending_payment",
        "nothing happens before payment"
    );
    let link = format!("{CHECKOUT_URL}?client_reference_id={id}");
    assert_eq!(status["checkout_url"], link);

    let page = app.get_text(&format!("/t/default/sites/{id}")).await;
    assert!(page.contains("Waiting for payment"), "{page}");
    assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
    assert!(page.contains("Pay now"));
    assert!(!page.contains("ann@example.com"));
}

#[tokio::test]
async fn a_completed_checkout_provisions_the_waiting_site_and_links_the_subscription() {
    let app = TestApp::spawn_with(paid).await;
    let site = app.signup("paid-shop").await;
    let id = site["id"].as_str().unwrap();
    let event = with(checkout_for(id, now()), "metadata", json!({"plan": "pro"}));
    let response = app.deliver(&event).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.event(&event["id"]).await["outcome"],
        "received",
        "acknowledged before processing"
    );

    app.drain_jobs().await;
    assert_eq!(app.status("default", id).await["state"], "ready");
    assert_eq!(app.outbox_files().len(), 1, "one readiness email");
    let detail = app.site(id).await;
    assert_eq!(detail["stripe_customer_id"], "cus_TSx1rEhAl9BjkQ");
    assert_eq!(
        detail["stripe_subscription_id"],
        "sub_1SVtEh2eZvKYlo2CfSg3Uy0Q"
    );
    assert_eq!(detail["plan"], PRO);
    let stored = app.event(&event["id"]).await;
    assert_eq!(stored["outcome"], "applied");
    assert_eq!(stored["site_id"], id);
    assert!(
        stored["detail"].as_str().unwrap().contains("provisioning"),
        "{stored}"
    );
    assert_eq!(app.get_site("paid-shop.localhost").await.status(), 200);

    // Another event for the same checkout changes nothing.
    let succeeded = event_at("checkout.session.async_payment_succeeded", now());
    app.apply(&with(succeeded, "client_reference_id", json!(id)))
        .await;
    assert_eq!(app.status("default", id).await["state"], "ready");
    assert_eq!(app.outbox_files().len(), 1);
}

#[tokio::test]
async fn a_checkout_can_name_its_site_in_metadata() {
    let app = TestApp::spawn_with(paid).await;
    let id = app.signup("meta-shop").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let event = with(
        with(
            example("checkout.session.completed"),
            "client_reference_id",
            Value::Null,
        ),
        "metadata",
        json!({"berth_site_id": id}),
    );
    app.apply(&event).await;
    assert_eq!(app.status("default", &id).await["state"], "ready");
}

#[tokio::test]
async fn an_asynchronous_payment_keeps_the_site_waiting_until_it_clears() {
    let app = TestApp::spawn_with(paid).await;
    let id = app.signup("sepa-shop").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = now() - 3 * DAY;
    let unpaid = with(
        event_at("checkout.session.completed.unpaid", t),
        "client_reference_id",
        json!(id),
    );
    app.apply(&unpaid).await;
    assert_eq!(app.status("default", &id).await["state"], "pending_payment");
    assert!(app.event(&unpaid["id"]).await["detail"]
        .as_str()
        .unwrap()
        .contains("waiting"));

    let failed = with(
        event_at("checkout.session.async_payment_failed", t + DAY),
        "client_reference_id",
        json!(id),
    );
    app.apply(&failed).await;
    assert_eq!(app.status("default", &id).await["state"], "pending_payment");
    let page = app.get_text(&format!("/t/default/sites/{id}")).await;
    assert!(page.contains("did not go through"), "{page}");

    let succeeded = with(
        event_at("checkout.session.async_payment_succeeded", t + 2 * DAY),
        "client_reference_id",
        json!(id),
    );
    app.apply(&succeeded).await;
    assert_eq!(app.status("default", &id).await["state"], "ready");
    assert!(app.site(&id).await["last_error"].is_null());
}

// --- Payment first ------------------------------------------------------------------------

#[tokio::test]
async fn a_payment_first_checkout_creates_the_site_through_the_signup_pipeline() {
    let app = TestApp::spawn_with(paid).await;
    let event = with(
        event_at("checkout.session.completed.payment-first", now()),
        "metadata",
        json!({"site_name": "corner-bakery", "plan": "starter"}),
    );
    app.apply(&event).await;
    let stored = app.event(&event["id"]).await;
    assert_eq!(stored["outcome"], "applied", "{stored}");
    let id = stored["site_id"].as_str().unwrap();
    let site = app.site(id).await;
    assert_eq!(site["name"], "corner-bakery");
    assert_eq!(site["state"], "ready");
    assert_eq!(site["email"], "dan@example.com");
    assert_eq!(site["plan"], STARTER, "metadata.plan names the plan");
    assert_eq!(site["stripe_customer_id"], "cus_TSyQ4kP2mW9xLd");
    assert_eq!(
        site["stripe_subscription_id"],
        "sub_1SVuK02eZvKYlo2CpFt7Qw3e"
    );
    assert_eq!(app.outbox_files().len(), 1);
    assert_eq!(app.get_site("corner-bakery.localhost").await.status(), 200);

    // Stripe sends a second event for the same session: it finds the site, creates none.
    let mut again = event_at("checkout.session.async_payment_succeeded", now());
    again["data"]["object"] = event["data"]["object"].clone();
    app.apply(&again).await;
    assert_eq!(app.event(&again["id"]).await["site_id"], id);
    assert_eq!(app.count_sites().await, 1);

    // Its subscription's events find it.
    let past_due = event_at("customer.subscription.updated.past_due", now());
    let past_due = with(past_due, "id", json!("sub_1SVuK02eZvKYlo2CpFt7Qw3e"));
    app.apply(&past_due).await;
    assert_eq!(app.event(&past_due["id"]).await["site_id"], id);
    assert!(!app.site(id).await["payment_overdue_since"].is_null());
}

#[tokio::test]
async fn a_payment_first_checkout_that_fails_validation_is_rejected_and_reported() {
    let app = TestApp::spawn_with(paid).await;
    app.signup("taken-shop").await;
    let first = |name: &str, session: &str, subscription: &str| {
        let event = event_at("checkout.session.completed.payment-first", now());
        let event = with(event, "id", json!(session));
        let event = with(event, "subscription", json!(subscription));
        with(event, "metadata", json!({"site_name": name}))
    };

    // The name belongs to another site: stored as a rejected site, which holds no name.
    let taken = first("taken-shop", "cs_test_taken", "sub_taken");
    app.apply(&taken).await;
    let stored = app.event(&taken["id"]).await;
    assert_eq!(stored["outcome"], "rejected");
    let rejected = app.site(stored["site_id"].as_str().unwrap()).await;
    assert_eq!(rejected["state"], "rejected");
    assert!(
        rejected["last_error"]
            .as_str()
            .unwrap()
            .contains("already taken"),
        "{rejected}"
    );

    // Built-in validation, as for a signup: nothing can be stored under these names.
    for (name, session, needle) in [
        ("Corner Bakery!", "cs_test_invalid", "name (invalid)"),
        ("www", "cs_test_reserved", "reserved"),
    ] {
        let event = first(name, session, &format!("sub_{session}"));
        app.apply(&event).await;
        let stored = app.event(&event["id"]).await;
        assert_eq!(stored["outcome"], "rejected", "{name}");
        assert!(stored["site_id"].is_null());
        assert!(
            stored["detail"].as_str().unwrap().contains(needle),
            "{stored}"
        );
    }
    assert_eq!(
        app.count_sites().await,
        2,
        "the first site and the rejected one"
    );
    let rejected: Vec<Value> = app.events("?outcome=rejected").await;
    assert_eq!(rejected.len(), 3);
}

#[tokio::test]
async fn a_paid_checkout_whose_name_is_taken_is_emailed_a_manage_link_and_provisions_under_another_name(
) {
    let app = TestApp::spawn_with(paid).await;
    let other = app.signup("taken-shop").await;
    let event = event_at("checkout.session.completed.payment-first", now());
    let event = with(event, "id", json!("cs_test_rename"));
    let event = with(event, "metadata", json!({"site_name": "taken-shop"}));
    app.apply(&event).await;
    let id = app.event(&event["id"]).await["site_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.site(&id).await["state"], "rejected");

    // The customer is told, with the manage link.
    let email = app
        .outbox_files()
        .into_iter()
        .find(|f| f.to_string_lossy().contains("name_needed."))
        .expect("a name_needed email");
    let email = crate::helpers::unfold_qp(&std::fs::read_to_string(email).unwrap());
    assert!(email.contains("To: dan@example.com"), "{email}");
    assert!(
        email.contains("taken-shop.localhost is already taken"),
        "{email}"
    );
    let link = format!("/t/default/sites/{id}/manage#token=");
    let at = email
        .find(&link)
        .unwrap_or_else(|| panic!("{link} missing:\n{email}"));
    let token = &email[at + link.len()..at + link.len() + 68];
    let status = app.status("default", &id).await;
    assert!(status["reason"].as_str().unwrap().contains("already taken"));

    let rename = |name: &str, site: &str| {
        app.client
            .put(app.url(&format!("/t/default/sites/{site}/name")))
            .bearer_auth(token)
            .json(&json!({ "name": name }))
            .send()
    };
    for (name, status, code) in [
        ("taken-shop", 409, "name_taken"),
        ("www", 422, "invalid_fields"),
        ("Not A Name", 422, "invalid_fields"),
    ] {
        let response = rename(name, &id).await.unwrap();
        assert_eq!(response.status(), status, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
    }
    // Only a rejected, paid-for site takes another name.
    let other_id = other["id"].as_str().unwrap();
    let response = app
        .client
        .put(app.url(&format!("/t/default/sites/{other_id}/name")))
        .bearer_auth(other["manage_token"].as_str().unwrap())
        .json(&json!({"name": "another-shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(app.site(&id).await["state"], "rejected", "nothing changed");

    let response = rename("fresh-shop", &id).await.unwrap();
    assert_eq!(response.status(), 202);
    let renamed: Value = response.json().await.unwrap();
    assert_eq!(renamed["state"], "provisioning", "the checkout was paid");
    assert_eq!(renamed["hostname"], "fresh-shop.localhost");
    app.drain_jobs().await;
    let site = app.site(&id).await;
    assert_eq!(site["state"], "ready", "{site}");
    assert_eq!(site["name"], "fresh-shop");
    assert!(site["last_error"].is_null());
    assert_eq!(
        site["stripe_customer_id"], "cus_TSyQ4kP2mW9xLd",
        "the payment stays attached"
    );
    assert!(!site["paid_at"].is_null());
    assert_eq!(app.get_site("fresh-shop.localhost").await.status(), 200);
    // The same token keeps managing the site.
    let versions = app
        .client
        .get(app.url(&format!("/t/default/sites/{id}/versions")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.status(), 200);
}

#[tokio::test]
async fn a_passing_error_in_the_payment_first_pipeline_retries_and_never_rejects_the_paid_site() {
    let app = TestApp::spawn_with(paid).await;
    let faults = &app.context().faults;
    faults.set("payment_first.policies", Some(Fault::Error));
    let event = with(
        event_at("checkout.session.completed.payment-first", now()),
        "metadata",
        json!({"site_name": "steady-bakery"}),
    );
    app.apply(&event).await;
    // Every attempt failed; the event waits, and no site was stored as rejected.
    let stored = app.event(&event["id"]).await;
    assert_eq!(stored["outcome"], "received", "{stored}");
    assert!(stored["site_id"].is_null());
    assert_eq!(app.count_sites().await, 0);
    let jobs = app.jobs_of_kind("stripe_event").await;
    assert_eq!(jobs[0]["state"], "failed", "{jobs:?}");
    assert_eq!(jobs[0]["attempts"], 3, "{jobs:?}");

    // Once the cause is gone, a replay creates the paid site.
    faults.set("payment_first.policies", None);
    let replay = app
        .admin(
            Method::POST,
            &format!("/admin/events/{}/replay", stored["id"].as_str().unwrap()),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(replay.status(), 202);
    app.drain_jobs().await;
    let stored = app.event(&event["id"]).await;
    assert_eq!(stored["outcome"], "applied", "{stored}");
    let site = app.site(stored["site_id"].as_str().unwrap()).await;
    assert_eq!(site["name"], "steady-bakery");
    assert_eq!(site["state"], "ready");
}

#[tokio::test]
async fn a_checkout_that_is_not_berth_s_is_ignored() {
    let app = TestApp::spawn().await;
    let event = with(
        example("checkout.session.completed"),
        "client_reference_id",
        json!("order-4711"),
    );
    app.apply(&event).await;
    let stored = app.event(&event["id"]).await;
    assert_eq!(stored["outcome"], "ignored");
    assert_eq!(app.count_sites().await, 0);
}

// --- Subscriptions: grace, suspension, resumption, plan, deletion ---------------------------

#[tokio::test]
async fn a_past_due_subscription_suspends_the_site_after_the_grace_period() {
    let app = TestApp::spawn_with(paid).await;
    let id = app.paid_site("late-shop", now() - 10 * DAY).await;

    // Overdue for a day, grace is three: not yet, but the suspension is scheduled.
    let recent = event_at("customer.subscription.updated.past_due", now() - DAY);
    app.apply(&recent).await;
    assert_eq!(app.status("default", &id).await["state"], "ready");
    let scheduled = app.jobs_of_kind("suspend_overdue").await;
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0]["state"], "queued");
    let overdue_since = recent["created"].as_i64().unwrap() * 1000;
    assert_eq!(
        scheduled[0]["run_at"],
        overdue_since + 3 * DAY * 1000,
        "due when the grace period ends"
    );
    assert_eq!(app.site(&id).await["payment_overdue_since"], overdue_since);
}

#[tokio::test]
async fn a_site_overdue_past_its_grace_period_is_suspended_and_paying_resumes_it() {
    let app = TestApp::spawn_with(paid).await;
    let id = app.paid_site("broke-shop", now() - 10 * DAY).await;
    let overdue = event_at("customer.subscription.updated.past_due", now() - 4 * DAY);
    app.apply(&overdue).await;
    let site = app.site(&id).await;
    assert_eq!(site["state"], "suspended");
    assert_eq!(site["suspended_for"], "payment");
    assert_eq!(app.get_site("broke-shop.localhost").await.status(), 503);

    let failed = event_at("invoice.payment_failed", now() - 3 * DAY);
    app.apply(&failed).await;
    assert_eq!(app.event(&failed["id"]).await["outcome"], "applied");

    let paid = event_at("invoice.paid", now() - 60);
    app.apply(&paid).await;
    let site = app.site(&id).await;
    assert_eq!(site["state"], "ready", "{site}");
    assert!(site["payment_overdue_since"].is_null() && site["suspended_for"].is_null());
    assert_eq!(app.get_site("broke-shop.localhost").await.status(), 200);
    assert_eq!(
        app.outbox_files().len(),
        1,
        "resuming sends no second email"
    );
}

#[tokio::test]
async fn paying_within_the_grace_period_cancels_the_suspension() {
    let app = TestApp::spawn_with(paid).await;
    let id = app.paid_site("saved-shop", now() - 10 * DAY).await;
    app.apply(&event_at(
        "customer.subscription.updated.past_due",
        now() - DAY,
    ))
    .await;
    assert!(!app.site(&id).await["payment_overdue_since"].is_null());
    app.apply(&event_at("customer.subscription.updated.active", now()))
        .await;
    let site = app.site(&id).await;
    assert_eq!(site["state"], "ready");
    assert!(
        site["payment_overdue_since"].is_null(),
        "the scheduled suspension will stand down"
    );
}

#[tokio::test]
async fn an_operator_s_suspension_is_not_lifted_by_a_payment() {
    let app = TestApp::spawn_with(paid).await;
    let id = app.paid_site("abuse-shop", now() - 10 * DAY).await;
    let suspended = app
        .admin(
            Method::POST,
            &format!("/admin/sites/{id}/suspend"),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(suspended.status(), 202);
    app.apply(&event_at("invoice.paid", now())).await;
    app.apply(&event_at("customer.subscription.updated.active", now()))
        .await;
    assert_eq!(app.status("default", &id).await["state"], "suspended");
}

#[tokio::test]
async fn a_plan_change_re_applies_the_site_with_the_new_plan() {
    let app = TestApp::spawn_with(paid).await;
    let id = app.paid_site("grow-shop", now() - 10 * DAY).await;
    app.apply(&event_at(
        "customer.subscription.updated.plan-change",
        now(),
    ))
    .await;
    let site = app.site(&id).await;
    assert_eq!(site["plan"], PRO);
    assert_eq!(site["state"], "ready");
    let provisions = app.site(&id).await["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "provision")
        .count();
    assert_eq!(provisions, 2, "the workload was applied again");
    assert_eq!(app.outbox_files().len(), 1);
}

#[tokio::test]
async fn a_deleted_subscription_deprovisions_the_site_whatever_its_age() {
    let app = TestApp::spawn_with(paid).await;
    let id = app.paid_site("gone-shop", now() - 10 * DAY).await;
    app.apply(&event_at("invoice.paid", now())).await;
    // Older than the invoice just applied, yet final.
    let deleted = event_at("customer.subscription.deleted", now() - DAY);
    app.apply(&deleted).await;
    assert_eq!(app.status("default", &id).await["state"], "deleted");
    assert_eq!(app.get_site("gone-shop.localhost").await.status(), 404);
    assert_eq!(app.event(&deleted["id"]).await["outcome"], "applied");

    // A payment that arrives for the deleted site changes nothing; the event says so.
    let late = with(checkout_for(&id, now()), "subscription", json!("sub_new"));
    app.apply(&late).await;
    let stored = app.event(&late["id"]).await;
    assert_eq!(stored["outcome"], "ignored", "{stored}");
    assert!(stored["detail"].as_str().unwrap().contains("deleted"));
    assert_eq!(
        app.site(&id).await["stripe_subscription_id"],
        "sub_1SVtEh2eZvKYlo2CfSg3Uy0Q"
    );
    app.signup("gone-shop").await;
}

// --- Order --------------------------------------------------------------------------------

#[tokio::test]
async fn a_stale_event_never_moves_a_site_backwards() {
    let app = TestApp::spawn_with(paid).await;
    let t = now() - 10 * DAY;
    let id = app.paid_site("steady-shop", t).await;
    app.apply(&event_at("customer.subscription.updated.active", t + 200))
        .await;
    // Older news, arriving late: the subscription was past due before it was active again.
    let late = event_at("customer.subscription.updated.past_due", t + 100);
    app.apply(&late).await;
    let stored = app.event(&late["id"]).await;
    assert_eq!(stored["outcome"], "stale");
    let site = app.site(&id).await;
    assert_eq!(site["state"], "ready");
    assert!(site["payment_overdue_since"].is_null());
    assert!(app.jobs_of_kind("suspend_overdue").await.is_empty());

    // A late checkout for the site changes nothing either.
    let old_checkout = checkout_for(&id, t - 50);
    app.apply(&old_checkout).await;
    assert_eq!(app.event(&old_checkout["id"]).await["outcome"], "stale");
}

#[tokio::test]
async fn events_that_arrive_before_their_checkout_wait_and_then_apply_in_created_order() {
    let app = TestApp::spawn_with(paid).await;
    let id = app.signup("early-shop").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = now() - 10 * DAY;
    // Delivered newest first, all before the checkout that links the subscription.
    let early = [
        event_at("customer.subscription.updated.active", t + 200),
        event_at("invoice.paid", t + 200),
        event_at("customer.subscription.updated.past_due", t + 100),
        event_at("invoice.payment_failed", t + 100),
    ];
    for event in &early {
        app.apply(event).await;
        assert_eq!(app.event(&event["id"]).await["outcome"], "deferred");
    }
    assert_eq!(app.events("?outcome=deferred").await.len(), 4);
    assert_eq!(app.status("default", &id).await["state"], "pending_payment");

    app.apply(&checkout_for(&id, t)).await;
    // Applied oldest first: the failure and past_due are not stale after the newer news, and
    // the site ends paid up.
    for event in &early {
        let stored = app.event(&event["id"]).await;
        assert_eq!(stored["outcome"], "applied", "{stored}");
        assert_eq!(stored["site_id"], id.as_str());
    }
    let site = app.site(&id).await;
    assert_eq!(site["state"], "ready");
    assert!(site["payment_overdue_since"].is_null());
    let overdue = app.jobs_of_kind("suspend_overdue").await;
    assert_eq!(overdue.len(), 1, "the past_due scheduled a suspension");
    assert_eq!(
        overdue[0]["state"], "succeeded",
        "which stood down: paid since"
    );
}

#[tokio::test]
async fn a_checkout_for_an_unknown_site_waits_for_that_site_not_for_its_subscription() {
    let app = TestApp::spawn_with(paid).await;
    let nowhere = checkout_for("site_00000000000000000000000000", now() - DAY);
    app.apply(&nowhere).await;
    let stored = app.event(&nowhere["id"]).await;
    assert_eq!(stored["outcome"], "deferred");
    assert!(stored["detail"]
        .as_str()
        .unwrap()
        .contains("site_00000000000000000000000000"));

    // Another checkout links the same subscription to a real site: the waiting checkout is not
    // taken for one of the subscription's events.
    let id = app.paid_site("real-shop", now()).await;
    assert_eq!(app.event(&nowhere["id"]).await["outcome"], "deferred");
    assert_eq!(app.site(&id).await["state"], "ready");
}

#[tokio::test]
async fn an_event_for_an_unknown_customer_is_kept_reported_and_replayable() {
    let app = TestApp::spawn().await;
    let event = with(
        event_at("customer.subscription.updated.past_due", now()),
        "id",
        json!("sub_nobody"),
    );
    app.apply(&event).await;
    let stored = app.event(&event["id"]).await;
    assert_eq!(stored["outcome"], "deferred");
    assert!(
        stored["detail"].as_str().unwrap().contains("sub_nobody"),
        "{stored}"
    );
    let metrics = app.get_text("/metrics").await;
    // Gauges are process-wide and other tests scrape too: check the series, not its value.
    assert!(
        metrics.contains("berth_stripe_events_deferred{tenant=\"default\"}"),
        "{metrics}"
    );

    let detail = app
        .admin_json(
            &format!("/admin/events/{}", stored["id"].as_str().unwrap()),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(detail["payload"]["data"]["object"]["id"], "sub_nobody");

    let replayed = app
        .admin(
            Method::POST,
            &format!("/admin/events/{}/replay", stored["id"].as_str().unwrap()),
            ADMIN_TOKEN,
        )
        .await;
    assert_eq!(replayed.status(), 202);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(replayed["outcome"], "received");
    app.drain_jobs().await;
    assert_eq!(
        app.event(&event["id"]).await["outcome"],
        "deferred",
        "still nobody's"
    );
}

// --- Admin --------------------------------------------------------------------------------

#[tokio::test]
async fn the_events_api_follows_the_admin_token_rules() {
    let app = TestApp::spawn().await;
    app.apply(&example("invoice.paid")).await;
    let acme_event = example("invoice.paid");
    let response = app
        .deliver_to("/t/acme/webhooks/stripe", ACME_STRIPE_SECRET, &acme_event)
        .await;
    assert_eq!(response.status(), 200);
    app.drain_jobs().await;

    assert_eq!(app.events("").await.len(), 2);
    assert_eq!(app.events("?tenant=acme").await.len(), 1);
    let own = app.admin_json("/admin/events", ACME_TOKEN).await;
    let own = own["events"].as_array().unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["tenant"], "acme");
    assert_eq!(
        app.admin(Method::GET, "/admin/events?tenant=default", ACME_TOKEN)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/events", "wrong")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.admin(Method::GET, "/admin/events?outcome=bogus", ADMIN_TOKEN)
            .await
            .status(),
        400
    );

    let default_id = app.events("?tenant=default").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/admin/events/{default_id}/replay");
    assert_eq!(
        app.admin(Method::POST, &path, ACME_TOKEN).await.status(),
        403
    );
    assert_eq!(
        app.admin(
            Method::GET,
            &format!("/admin/events/{default_id}"),
            ACME_TOKEN
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        app.admin(Method::POST, &path, ADMIN_TOKEN).await.status(),
        202
    );
    assert_eq!(
        app.admin(Method::POST, "/admin/events/event_nope/replay", ADMIN_TOKEN)
            .await
            .status(),
        404
    );
    let acme_id = own[0]["id"].as_str().unwrap();
    assert_eq!(
        app.admin(
            Method::POST,
            &format!("/admin/events/{acme_id}/replay"),
            ACME_TOKEN
        )
        .await
        .status(),
        202
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_webhook_and_event_routes() {
    let app = TestApp::spawn().await;
    let doc: Value = serde_json::from_str(&app.get_text("/openapi.json").await).unwrap();
    for path in [
        "/webhooks/stripe",
        "/t/{tenant}/webhooks/stripe",
        "/admin/events",
        "/admin/events/{id}",
        "/admin/events/{id}/replay",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is missing");
    }
}
