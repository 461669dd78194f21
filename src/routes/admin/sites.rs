//! `/admin/sites`: list, get, retry, suspend, resume, delete.

use actix_web::http::StatusCode;
use actix_web::{delete, get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{BadFilter, SiteNotFound};
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::jobs::{JobRow, NewJob};
use crate::adapters::db::sites::{self, SiteRow, Transition};
use crate::adapters::db::{jobs, DbConnection};
use crate::configuration::JobSettings;
use crate::domain::job::{Deprovision, Provision, Suspend};
use crate::domain::{SiteId, SiteState};
use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::params::{site_not_found, SiteIdPath};
use crate::routes::registry::Routes;
use crate::routes::request::json_ok;
use crate::routes::schemas::{AdminErrors, ErrorBody};
use crate::routes::state::AppState;

pub fn routes(routes: &mut Routes) {
    routes
        .add(list)
        .add(get)
        .add(retry)
        .add(suspend)
        .add(resume)
        .add(remove);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this tenant's sites (a tenant's token sees only its own anyway).
    #[param(pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
    tenant: Option<String>,
    /// Only sites in this state.
    #[param(value_type = Option<SiteState>)]
    state: Option<String>,
    /// How many, newest first.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SiteOut {
    #[serde(flatten)]
    site: SiteRow,
    url: String,
    status_url: String,
}

fn site_out(state: &AppState, site: SiteRow) -> SiteOut {
    let (url, status_url) = match state.tenants.get().find(&site.tenant) {
        Some(tenant) => (tenant.site_url(&site.hostname), tenant.status_url(&site.id)),
        None => (String::new(), String::new()),
    };
    SiteOut {
        site,
        url,
        status_url,
    }
}

/// Lists sites, newest first.
#[utoipa::path(
    operation_id = "list_sites",
    tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Sites, newest first", body = SiteList),
        BadFilter,
        AdminErrors,
    )
)]
#[get("/admin/sites")]
pub(crate) async fn list(
    admin: Admin,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    super::tenant_param(query.tenant.as_deref())?;
    let limit = super::limit(query.limit)?;
    let tenant = admin.tenant_filter(query.tenant.as_deref())?;
    if let Some(site_state) = &query.state {
        site_state
            .parse::<SiteState>()
            .map_err(|e| ApiError::bad_request("invalid_state", e))?;
    }
    let rows = state
        .db
        .run(move |c| sites::list(c, tenant.as_deref(), query.state.as_deref(), limit))
        .await?;
    let sites: Vec<_> = rows.into_iter().map(|s| site_out(&state, s)).collect();
    Ok(json_ok(
        StatusCode::OK,
        &serde_json::json!({ "sites": sites }),
    ))
}

/// Loads a site the caller may see: `404` for an unknown id, `403` for another tenant's site.
pub(super) async fn load(
    admin: &Admin,
    state: &AppState,
    id: &SiteId,
) -> Result<SiteRow, ApiError> {
    super::load_owned(
        admin,
        state,
        id.as_str(),
        site_not_found,
        sites::get,
        |site| &site.tenant,
    )
    .await
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SiteDetail {
    #[serde(flatten)]
    site: SiteOut,
    email: String,
    jobs: Vec<JobRow>,
}

/// One site, with its email and its latest jobs.
#[utoipa::path(
    operation_id = "get_site",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    responses(
        (status = 200, description = "The site, its email and its recent jobs", body = SiteDetail),
        SiteNotFound,
        AdminErrors,
    )
)]
#[get("/admin/sites/{id}")]
pub(crate) async fn get(
    admin: Admin,
    path: SiteIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = load(&admin, &state, &path.id).await?;
    let site_id = site.id.clone();
    let jobs = state
        .db
        .run(move |c| jobs::list(c, None, Some(&site_id), 50))
        .await?;
    let email = site.email.clone();
    Ok(json_ok(
        StatusCode::OK,
        &SiteDetail {
            site: site_out(&state, site),
            email,
            jobs,
        },
    ))
}

/// Runs an admin action as one transaction: state change, version bump and job.
async fn act(
    admin: Admin,
    state: &AppState,
    id: &SiteId,
    action: &'static str,
    from: &'static [SiteState],
    to: SiteState,
    job: fn(&SiteRow, &JobSettings) -> Option<NewJob>,
) -> Result<HttpResponse, ApiError> {
    let site = load(&admin, state, id).await?;
    let settings = state.settings.get().jobs.clone();
    let result = state
        .db
        .write(move |c: &mut DbConnection| sites::act(c, &site.id, from, to, |s| job(s, &settings)))
        .await?;
    match result {
        Transition::Done(site) => {
            state.wake.notify_one();
            tracing::info!(site.id = %site.id, tenant = %site.tenant, action, site.state = %site.state, "admin action");
            Ok(json_ok(StatusCode::ACCEPTED, &site_out(state, *site)))
        }
        Transition::NotFound => Err(ApiError::not_found("site_not_found", "no such site")),
        Transition::WrongState(current) => {
            let allowed: Vec<_> = from.iter().map(|s| s.as_str()).collect();
            Err(ApiError::conflict(
                "invalid_state",
                format!(
                    "cannot {action} a site that is {current}; it must be {}",
                    allowed.join(" or ")
                ),
            ))
        }
    }
}

fn provision(site: &SiteRow, settings: &JobSettings) -> Option<NewJob> {
    Some(
        Provision {
            site_id: site.id.clone(),
            version: site.version,
        }
        .to_new_job(settings),
    )
}

/// A failed site starts provisioning again.
#[utoipa::path(
    operation_id = "retry_site",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    responses(
        (status = 202, description = "failed → provisioning; the job is queued", body = SiteOut),
        SiteNotFound,
        (
            status = 409,
            description = "The site is not `failed` (`invalid_state`)",
            body = ErrorBody
        ),
        AdminErrors,
    )
)]
#[post("/admin/sites/{id}/retry")]
pub(crate) async fn retry(
    admin: Admin,
    path: SiteIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    act(
        admin,
        &state,
        &path.id,
        "retry",
        &[SiteState::Failed],
        SiteState::Provisioning,
        provision,
    )
    .await
}

/// Stops serving at once; the job then scales the workload to zero.
#[utoipa::path(
    operation_id = "suspend_site",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    responses(
        (
            status = 202,
            description = "ready|provisioning → suspended; the job is queued",
            body = SiteOut
        ),
        SiteNotFound,
        (
            status = 409,
            description = "The site is not `ready` or `provisioning` (`invalid_state`)",
            body = ErrorBody
        ),
        AdminErrors,
    )
)]
#[post("/admin/sites/{id}/suspend")]
pub(crate) async fn suspend(
    admin: Admin,
    path: SiteIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    act(
        admin,
        &state,
        &path.id,
        "suspend",
        &[SiteState::Ready, SiteState::Provisioning],
        SiteState::Suspended,
        |site, settings| {
            Some(
                Suspend {
                    site_id: site.id.clone(),
                    version: site.version,
                }
                .to_new_job(settings),
            )
        },
    )
    .await
}

/// Brings a suspended site back through provisioning (applying scales it back up).
#[utoipa::path(
    operation_id = "resume_site",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    responses(
        (
            status = 202,
            description = "suspended → provisioning → ready; the job is queued",
            body = SiteOut
        ),
        SiteNotFound,
        (
            status = 409,
            description = "The site is not `suspended` (`invalid_state`)",
            body = ErrorBody
        ),
        AdminErrors,
    )
)]
#[post("/admin/sites/{id}/resume")]
pub(crate) async fn resume(
    admin: Admin,
    path: SiteIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    act(
        admin,
        &state,
        &path.id,
        "resume",
        &[SiteState::Suspended],
        SiteState::Provisioning,
        provision,
    )
    .await
}

/// Deprovisions the site: workload, then the DNS record berth owns, then `deleted`.
#[utoipa::path(
    operation_id = "delete_site",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    responses(
        (
            status = 202,
            description = "→ deprovisioning → deleted; the job is queued. The site stays readable, as `deleted` once the job is done",
            body = SiteOut
        ),
        SiteNotFound,
        (status = 409, description = "Already deleted (`invalid_state`)", body = ErrorBody),
        AdminErrors,
    )
)]
#[delete("/admin/sites/{id}")]
pub(crate) async fn remove(
    admin: Admin,
    path: SiteIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    act(
        admin,
        &state,
        &path.id,
        "delete",
        &SiteState::DELETABLE,
        SiteState::Deprovisioning,
        |site, settings| {
            Some(
                Deprovision {
                    site_id: site.id.clone(),
                    version: site.version,
                }
                .to_new_job(settings),
            )
        },
    )
    .await
}

// The body of `GET /admin/sites` (no doc comment: it would become the schema description).
#[derive(Serialize, ToSchema)]
pub struct SiteList {
    sites: Vec<SiteOut>,
}
