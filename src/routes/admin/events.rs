//! `/admin/events`: stored Stripe events with their outcome, and replay. A tenant token sees
//! only its tenant's events.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{BadFilter, EventNotFound};
use crate::adapters::db::jobs;
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::stripe_events::{self, StripeEventRow};
use crate::domain::job::ProcessStripeEvent;
use crate::domain::{EventId, SiteId};
use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::params::{event_not_found, EventIdPath};
use crate::routes::registry::Routes;
use crate::routes::request::json_ok;
use crate::routes::schemas::AdminErrors;
use crate::routes::state::AppState;

pub fn routes(routes: &mut Routes) {
    routes.add(list).add(get).add(replay);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this tenant's events (a tenant's token sees only its own anyway).
    #[param(pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
    tenant: Option<String>,
    /// Only events with this outcome.
    #[param(schema_with = outcomes)]
    outcome: Option<String>,
    /// Only events about this site.
    #[param(pattern = r"^site_[0-9a-hjkmnp-tv-z]{26}$")]
    site_id: Option<String>,
    /// How many, newest first.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

fn outcomes() -> utoipa::openapi::Object {
    super::one_of(&stripe_events::OUTCOMES)
}

/// Lists stored Stripe events, newest first, with their outcome.
#[utoipa::path(
    operation_id = "list_events",
    tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (
            status = 200,
            description = "Stripe events, newest first, with their outcome",
            body = EventList
        ),
        BadFilter,
        AdminErrors,
    )
)]
#[get("/admin/events")]
pub(crate) async fn list(
    admin: Admin,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    super::tenant_param(query.tenant.as_deref())?;
    if let Some(site_id) = &query.site_id {
        SiteId::parse(site_id).map_err(|why| ApiError::bad_request("invalid_site_id", why))?;
    }
    let limit = super::limit(query.limit)?;
    let tenant = admin.tenant_filter(query.tenant.as_deref())?;
    if let Some(outcome) = &query.outcome {
        if !stripe_events::OUTCOMES.contains(&outcome.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_outcome",
                format!(
                    "unknown outcome {outcome:?}; known: {}",
                    stripe_events::OUTCOMES.join(", ")
                ),
            ));
        }
    }
    let rows = state
        .db
        .run(move |c| {
            stripe_events::list(
                c,
                tenant.as_deref(),
                query.outcome.as_deref(),
                query.site_id.as_deref(),
                limit,
            )
        })
        .await?;
    Ok(json_ok(
        StatusCode::OK,
        &serde_json::json!({ "events": rows }),
    ))
}

/// Loads an event the caller may see: `404` for an unknown id, `403` for another tenant's.
async fn load(admin: &Admin, state: &AppState, id: &EventId) -> Result<StripeEventRow, ApiError> {
    super::load_owned(
        admin,
        state,
        id.as_str(),
        event_not_found,
        stripe_events::get,
        |event| &event.tenant,
    )
    .await
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventDetail {
    #[serde(flatten)]
    event: StripeEventRow,
    /// The body exactly as Stripe signed it.
    payload: serde_json::Value,
}

/// One stored Stripe event, with its payload as Stripe signed it.
#[utoipa::path(
    operation_id = "get_event",
    tag = "admin",
    security(("bearer" = [])),
    params(EventIdPath),
    responses(
        (status = 200, description = "The event with its raw payload", body = EventDetail),
        EventNotFound,
        AdminErrors,
    )
)]
#[get("/admin/events/{id}")]
pub(crate) async fn get(
    admin: Admin,
    path: EventIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let event = load(&admin, &state, &path.id).await?;
    let payload = serde_json::from_str(&event.payload)
        .unwrap_or_else(|_| serde_json::Value::String(event.payload.clone()));
    Ok(json_ok(StatusCode::OK, &EventDetail { event, payload }))
}

/// Processes the event again: its outcome goes back to `received` and a job is queued, in one
/// transaction. Safe for any event: a site never moves backwards, so replaying an old event
/// changes nothing, and a deferred one is applied if its site is known now.
#[utoipa::path(
    operation_id = "replay_event",
    tag = "admin",
    security(("bearer" = [])),
    params(EventIdPath),
    responses(
        (status = 202, description = "Queued for processing", body = StripeEventRow),
        EventNotFound,
        AdminErrors,
    )
)]
#[post("/admin/events/{id}/replay")]
pub(crate) async fn replay(
    admin: Admin,
    path: EventIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let event = load(&admin, &state, &path.id).await?;
    let job = ProcessStripeEvent {
        event_id: event.id.clone(),
    }
    .to_new_job(&state.settings.get().jobs);
    let id = event.id.clone();
    let replayed = state
        .db
        .write(move |c| {
            stripe_events::reset(c, &id)?;
            jobs::insert(c, &job)?;
            stripe_events::get(c, &id)
        })
        .await?;
    state.wake.notify_one();
    tracing::info!(tenant = %event.tenant, stripe.event_id = %event.stripe_event_id, stripe.event_type = %event.event_type, "Stripe event replayed by an operator");
    Ok(json_ok(StatusCode::ACCEPTED, &replayed))
}

// The body of `GET /admin/events` (no doc comment: it would become the schema description).
#[derive(Serialize, ToSchema)]
pub struct EventList {
    events: Vec<StripeEventRow>,
}
