//! `POST /webhooks/stripe` (tenant `default`) and `POST /t/{tenant}/webhooks/stripe`:
//! `Stripe-Signature` → raw body → verification → rate limit → envelope → durable store with its
//! job → `200`. Anything wrong with the request is a `400` (or `404`, `413`, `429`) and stores
//! nothing; a redelivered event gets `200` and stores nothing new.
//!
//! Only verified deliveries count toward the tenant's `stripe_per_tenant` limit, so nobody
//! without the secret can use it up. A delivery that fails verification is charged to its
//! client IP (`stripe_invalid_per_ip`); past that budget such failures get `429` instead of
//! `400`. A delivery that verifies is never refused for its address.

use std::sync::Arc;

use actix_web::http::header::HeaderName;
use actix_web::{post, web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use super::registry::{twin_routes, Routes};
use super::schemas::{ErrorBody, StripeEventIn};
use super::state::AppState;
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::now_ms;
use crate::adapters::db::stripe_events::{self, NewStripeEvent};
use crate::domain::job::ProcessStripeEvent;
use crate::domain::EventId;
use crate::routes::client_ip::client_ip;
use crate::routes::error::ApiError;
use crate::routes::rate_limit::ip_key;
use crate::services::stripe::event::Event;
use crate::services::stripe::ingest::{Delivery, Stored};
use crate::services::stripe::signature::{SignatureError, SignatureHeader};
use crate::services::tenants::Tenant;

/// The largest event body accepted. Stripe's events are far smaller (lists in events are
/// truncated), so a larger body is not Stripe's.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

const STRIPE_SIGNATURE: HeaderName = HeaderName::from_static("stripe-signature");

pub fn routes(routes: &mut Routes) {
    routes.add(stripe_default).add(stripe_tenant);
}

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Received {
    received: bool,
    /// The tenant already had this event; nothing new was stored.
    duplicate: bool,
}

/// What both webhook routes say of themselves.
const DELIVERY: &str =
    "A Stripe webhook delivery. The body is verified against `Stripe-Signature` \
with the tenant's webhook secrets, then stored durably with its processing job before the `200`; \
a redelivered event gets `200` and stores nothing new. Anything wrong stores nothing.";

/// What a delivery can get.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum DeliveryAnswers {
    #[response(
        status = 200,
        description = "Stored durably (or already stored) with its processing job"
    )]
    Received(Received),
    #[response(
        status = 400,
        description = "A missing, repeated, malformed or invalid signature, a timestamp out of tolerance, or a body that is not a Stripe event; nothing stored"
    )]
    Refused(ErrorBody),
    #[response(status = 404, description = "No such tenant (`unknown_tenant`)")]
    UnknownTenant(ErrorBody),
    #[response(
        status = 408,
        description = "The body did not arrive within `server.body_timeout_secs`"
    )]
    Timeout(ErrorBody),
    #[response(status = 413, description = "The body is over 1 MiB")]
    TooLarge(ErrorBody),
    #[response(
        status = 429,
        description = "Too many deliveries for this tenant, or too many invalid ones from this address (`rate_limited`)",
        headers(("Retry-After" = u64, description = "Seconds until a delivery can succeed"))
    )]
    RateLimited(ErrorBody),
    #[response(
        status = 500,
        description = "berth failed on its side (`internal_error`); Stripe retries"
    )]
    Internal(ErrorBody),
}

/// The signature header Stripe sends.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct SignatureParam {
    /// `t=<Unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, with one `v1` per secret Stripe
    /// signs with.
    #[param(
        rename = "Stripe-Signature",
        pattern = r"^t=[0-9]{1,12}(,v[0-9]=[0-9a-f]{64})+$"
    )]
    stripe_signature: String,
}

twin_routes! {
    #[utoipa::path(
        tag = "webhooks",
        description = DELIVERY,
        request_body(
            content = StripeEventIn,
            content_type = "application/json",
            description = "The event exactly as Stripe sent it"
        ),
    )]
    params(SignatureParam);
    responses(DeliveryAnswers);
    #[post("/webhooks/stripe")]
    /// A Stripe webhook delivery for tenant `default`.
    stripe_default;
    #[post("/t/{tenant}/webhooks/stripe")]
    /// A Stripe webhook delivery for a tenant.
    stripe_tenant;
    async fn(
        tenant,
        req: HttpRequest,
        payload: web::Payload,
        state: web::Data<AppState>,
    ) -> HttpResponse {
        receive(req, payload, state, tenant).await
    }
}

async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    tenant: &str,
) -> HttpResponse {
    let tenant = match state.tenant(tenant) {
        Ok(tenant) => tenant,
        Err(error) => return error.error_response(),
    };
    let (outcome, response) = match accept(&req, payload, &state, &tenant).await {
        Ok(stored) => {
            let duplicate = stored == Stored::Duplicate;
            let outcome = if duplicate { "duplicate" } else { "stored" };
            let body = Received {
                received: true,
                duplicate,
            };
            (outcome, HttpResponse::Ok().json(body))
        }
        Err(error) => {
            if !matches!(error, ApiError::Internal(_)) {
                tracing::warn!(tenant = %tenant.name, reason = error.code(), "Stripe delivery refused");
            }
            (error.code(), error.error_response())
        }
    };
    metrics::counter!("berth_stripe_webhooks_total", "tenant" => tenant.name.to_string(), "outcome" => outcome)
        .increment(1);
    response
}

#[tracing::instrument(name = "stripe_webhook", skip_all, fields(tenant = %tenant.name, stripe.event_id, stripe.event_type))]
async fn accept(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    tenant: &Arc<Tenant>,
) -> Result<Stored, ApiError> {
    let body = match verified_body(req, payload, tenant).await {
        Ok(body) => body,
        Err(error) => {
            if let Some(ip) = client_ip(req, &state.settings.get().server.trusted_proxies) {
                state.limits.get().stripe_invalid_per_ip.fail(&ip_key(ip))?;
            }
            return Err(error);
        }
    };
    state
        .limits
        .get()
        .stripe_per_tenant
        .check(tenant.name.as_str())?;
    let event = Event::parse(&body).map_err(|why| ApiError::bad_request("malformed_event", why))?;
    let span = tracing::Span::current();
    span.record("stripe.event_id", event.id.as_str());
    span.record("stripe.event_type", event.kind.as_str());
    let payload = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("malformed_event", "the body is not UTF-8"))?;
    let stored = state
        .events
        .store(delivery(state, tenant, &event, payload))
        .await?;
    match stored {
        Stored::New => {
            state.wake.notify_one();
            tracing::info!("Stripe event stored");
        }
        Stored::Duplicate => tracing::info!("Stripe event redelivered; already stored"),
    }
    Ok(stored)
}

/// The raw body, once its signature verified against one of the tenant's secrets.
async fn verified_body(
    req: &HttpRequest,
    payload: web::Payload,
    tenant: &Tenant,
) -> Result<web::Bytes, ApiError> {
    let header = signature_header(req)?;
    let body = super::request::read_limited(req, payload, MAX_EVENT_BYTES).await?;
    let stripe = &tenant.settings.stripe;
    header
        .verify(
            &body,
            &stripe.webhook_secrets,
            stripe.tolerance_secs,
            now_ms() / 1000,
        )
        .map_err(|error| rejected(&error))?;
    Ok(body)
}

/// The one `Stripe-Signature` header, parsed. Absent, repeated or unreadable headers are `400`.
fn signature_header(req: &HttpRequest) -> Result<SignatureHeader, ApiError> {
    let mut values = req.headers().get_all(STRIPE_SIGNATURE);
    let Some(value) = values.next() else {
        return Err(ApiError::bad_request(
            "missing_signature",
            "the Stripe-Signature header is missing",
        ));
    };
    if values.next().is_some() {
        return Err(rejected(&SignatureError::Malformed(
            "it is given more than once",
        )));
    }
    let value = value
        .to_str()
        .map_err(|_| rejected(&SignatureError::Malformed("it is not visible ASCII")))?;
    SignatureHeader::parse(value).map_err(|e| rejected(&e))
}

fn rejected(error: &SignatureError) -> ApiError {
    ApiError::bad_request(error.code(), error.to_string())
}

/// The event row (outcome `received`) and the job that will process it.
fn delivery(state: &AppState, tenant: &Tenant, event: &Event, payload: String) -> Delivery {
    let id = EventId::generate();
    let job = ProcessStripeEvent {
        event_id: id.to_string(),
    }
    .to_new_job(&state.settings.get().jobs);
    Delivery {
        event: NewStripeEvent {
            id: id.to_string(),
            tenant: tenant.name.to_string(),
            stripe_event_id: event.id.as_str().to_owned(),
            event_type: event.kind.clone(),
            created_at: event.created_at_ms(),
            livemode: event.livemode,
            api_version: event.api_version.clone(),
            object_id: event.object_id().map(str::to_owned),
            customer_id: event.customer_id().map(str::to_owned),
            subscription_id: event.subscription_id().map(str::to_owned),
            payload,
            outcome: stripe_events::RECEIVED.to_owned(),
            received_at: now_ms(),
        },
        job,
    }
}
