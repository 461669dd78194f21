//! `/admin/t/{tenant}/rollout`: how many of a tenant's live sites run another workload spec than
//! the configuration gives them now, and the rollout that moves them (SPEC §7).

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::UnknownTenant;
use crate::routes::auth::TenantAdmin;
use crate::routes::error::ApiError;
use crate::routes::params::TenantPath;
use crate::routes::registry::Routes;
use crate::routes::request::json_ok;
use crate::routes::schemas::{AdminErrors, ErrorBody};
use crate::routes::state::AppState;
use crate::services::rollouts::{self, Action, Controlled, Drift, RolloutView, Started};

pub fn routes(routes: &mut Routes) {
    routes
        .add(status)
        .add(start)
        .add(pause)
        .add(resume)
        .add(cancel);
}

/// A tenant's drift and its newest rollout.
#[derive(Serialize, ToSchema)]
pub(crate) struct RolloutStatus {
    tenant: String,
    drift: Drift,
    /// The newest rollout, under way or ended; `null` before the first.
    rollout: Option<RolloutView>,
}

/// How many live sites differ from what the configuration would apply now, and the newest
/// rollout with its progress.
#[utoipa::path(
    operation_id = "get_rollout",
    tag = "admin",
    security(("bearer" = [])),
    params(TenantPath),
    responses(
        (status = 200, description = "The drift and the newest rollout", body = RolloutStatus),
        UnknownTenant,
        AdminErrors,
    )
)]
#[get("/admin/t/{tenant}/rollout")]
pub(crate) async fn status(
    admin: TenantAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tenant = admin.tenant;
    let drift = rollouts::drift(&state.db, &tenant).await?;
    let rollout = rollouts::latest(&state.db, tenant.name.as_str()).await?;
    Ok(json_ok(
        StatusCode::OK,
        &RolloutStatus {
            tenant: tenant.name.to_string(),
            drift,
            rollout,
        },
    ))
}

/// How a rollout goes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolloutRequest {
    /// Sites deployed at once, in each wave (1 to 100).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100, default = 1)]
    max_parallel: Option<serde_json::Number>,
    /// Failed sites after which the rollout stops (1 to 10000).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000, default = 1)]
    max_failures: Option<serde_json::Number>,
}

/// A whole number from 1 to `max` (JSON may spell it `2` or `2.0`), 1 when absent.
fn bounded(name: &str, asked: Option<&serde_json::Number>, max: i64) -> Result<i32, ApiError> {
    let Some(asked) = asked else {
        return Ok(1);
    };
    match crate::domain::whole_number::of(asked) {
        Some(n) if (1..=max).contains(&n) => Ok(n as i32),
        _ => Err(ApiError::bad_request(
            "invalid_rollout",
            format!("{name} must be a whole number from 1 to {max}, not {asked}"),
        )),
    }
}

/// Why a rollout does not start.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum StartRefusals {
    #[response(
        status = 400,
        description = "`max_parallel` or `max_failures` out of range, or an unknown field (`invalid_rollout`)"
    )]
    Invalid(ErrorBody),
    #[response(
        status = 409,
        description = "The tenant has a rollout running or paused (`rollout_in_progress`), or every ready site already runs what the configuration gives it (`no_drift`)"
    )]
    Conflict(ErrorBody),
}

/// Re-applies the drifted ready sites in waves of `max_parallel`, each watched until ready; a
/// site that fails goes back to its previous spec, and the rollout stops once `max_failures`
/// sites failed. It applies the configuration as it is now.
#[utoipa::path(
    operation_id = "start_rollout",
    tag = "admin",
    security(("bearer" = [])),
    params(TenantPath),
    request_body = RolloutRequest,
    responses(
        (status = 202, description = "The rollout started", body = RolloutView),
        StartRefusals,
        UnknownTenant,
        AdminErrors,
    )
)]
#[post("/admin/t/{tenant}/rollout")]
pub(crate) async fn start(
    admin: TenantAdmin<web::Json<RolloutRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let TenantAdmin {
        tenant,
        input: body,
    } = admin;
    let max_parallel = bounded("max_parallel", body.max_parallel.as_ref(), 100)?;
    let max_failures = bounded("max_failures", body.max_failures.as_ref(), 10_000)?;
    let started = rollouts::start(
        &state.db,
        &tenant,
        max_parallel,
        max_failures,
        &state.settings.get().jobs,
    )
    .await?;
    match started {
        Started::Started(view) => {
            state.wake.notify_one();
            tracing::info!(tenant = %tenant.name, rollout.id = %view.rollout.id, sites = view.total, max_parallel, max_failures, "rollout started");
            Ok(json_ok(StatusCode::ACCEPTED, &view))
        }
        Started::Busy(active) => Err(ApiError::conflict(
            "rollout_in_progress",
            format!(
                "rollout {} of tenant {} is {}; pause, resume or cancel it first",
                active.id, tenant.name, active.state
            ),
        )),
        Started::NothingToDo => Err(ApiError::conflict(
            "no_drift",
            format!(
                "every ready site of tenant {} runs what the configuration gives it",
                tenant.name
            ),
        )),
    }
}

/// Why an operator's pause, resume or cancel did nothing.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum ControlRefusals {
    #[response(
        status = 404,
        description = "No such tenant (`unknown_tenant`), or it has no rollout running or paused (`no_rollout`)"
    )]
    NotFound(ErrorBody),
    #[response(
        status = 409,
        description = "The rollout is not in a state the action applies to (`invalid_state`): pausing a paused one, resuming a running one"
    )]
    WrongState(ErrorBody),
}

async fn control(
    admin: TenantAdmin,
    state: &AppState,
    action: Action,
) -> Result<HttpResponse, ApiError> {
    let tenant = admin.tenant;
    let controlled = rollouts::control(
        &state.db,
        tenant.name.as_str(),
        action,
        &state.settings.get().jobs,
    )
    .await?;
    match controlled {
        Controlled::Done(view) => {
            state.wake.notify_one();
            tracing::info!(tenant = %tenant.name, rollout.id = %view.rollout.id, action = action.as_str(), rollout.state = %view.rollout.state, "rollout changed by an operator");
            Ok(json_ok(StatusCode::OK, &view))
        }
        Controlled::NoneActive => Err(ApiError::not_found(
            "no_rollout",
            format!("tenant {} has no rollout running or paused", tenant.name),
        )),
        Controlled::WrongState(current) => Err(ApiError::conflict(
            "invalid_state",
            format!("cannot {} a rollout that is {current}", action.as_str()),
        )),
    }
}

/// Holds the rollout after the wave under way: no new wave starts until it is resumed.
#[utoipa::path(
    operation_id = "pause_rollout",
    tag = "admin",
    security(("bearer" = [])),
    params(TenantPath),
    responses(
        (status = 200, description = "The rollout, paused", body = RolloutView),
        ControlRefusals,
        AdminErrors,
    )
)]
#[post("/admin/t/{tenant}/rollout/pause")]
pub(crate) async fn pause(
    admin: TenantAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    control(admin, &state, Action::Pause).await
}

/// Goes on with a paused rollout from where it stopped.
#[utoipa::path(
    operation_id = "resume_rollout",
    tag = "admin",
    security(("bearer" = [])),
    params(TenantPath),
    responses(
        (status = 200, description = "The rollout, running again", body = RolloutView),
        ControlRefusals,
        AdminErrors,
    )
)]
#[post("/admin/t/{tenant}/rollout/resume")]
pub(crate) async fn resume(
    admin: TenantAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    control(admin, &state, Action::Resume).await
}

/// Ends the rollout: sites already deploying finish, the rest stay on their spec.
#[utoipa::path(
    operation_id = "cancel_rollout",
    tag = "admin",
    security(("bearer" = [])),
    params(TenantPath),
    responses(
        (status = 200, description = "The rollout, cancelled", body = RolloutView),
        ControlRefusals,
        AdminErrors,
    )
)]
#[post("/admin/t/{tenant}/rollout/cancel")]
pub(crate) async fn cancel(
    admin: TenantAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    control(admin, &state, Action::Cancel).await
}
