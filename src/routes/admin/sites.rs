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
    /// Only sites whose hostname, name or email contains this text (any case; spaces around it
    /// do not count).
    #[param(min_length = 1, max_length = 254, pattern = r"^[^\u0000]+$")]
    q: Option<String>,
    /// Whether deleted sites are listed when no `state` is asked for.
    #[param(default = true)]
    include_deleted: Option<bool>,
    /// The next page: the `next` of the page before (a site id).
    #[param(pattern = r"^site_[0-9a-hjkmnp-tv-z]{26}$")]
    before: Option<String>,
    /// How many, newest first.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SiteOut {
    #[serde(flatten)]
    site: SiteRow,
    email: String,
    url: String,
    status_url: String,
}

fn site_out(state: &AppState, site: SiteRow) -> SiteOut {
    let (url, status_url) = match state.tenants.get().find(&site.tenant) {
        Some(tenant) => (tenant.site_url(&site.hostname), tenant.status_url(&site.id)),
        None => (String::new(), String::new()),
    };
    SiteOut {
        email: site.email.clone(),
        site,
        url,
        status_url,
    }
}

/// Lists sites, newest first, a page at a time.
#[utoipa::path(
    operation_id = "list_sites",
    tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Sites, newest first, and where the next page starts", body = SiteList),
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
    let search = match query.q.as_deref() {
        None => None,
        Some(q) if q.is_empty() || q.chars().count() > 254 => {
            return Err(ApiError::bad_request(
                "invalid_search",
                "q must have 1 to 254 characters",
            ))
        }
        // No site's hostname, name or email holds a NUL, and PostgreSQL text cannot.
        Some(q) if q.contains('\0') => {
            return Err(ApiError::bad_request(
                "invalid_search",
                "q must not contain a NUL character",
            ))
        }
        Some(q) => Some(q.trim().to_lowercase()).filter(|q| !q.is_empty()),
    };
    let mut filter = sites::SiteFilter {
        tenant,
        state: query.state,
        include_deleted: query.include_deleted.unwrap_or(true),
        search,
        after: None,
    };
    let cursor = match &query.before {
        Some(id) => Some(SiteId::parse(id).map_err(|_| {
            ApiError::bad_request("invalid_cursor", "before must be a site id, a page's next")
        })?),
        None => None,
    };
    let unknown_cursor = || {
        ApiError::bad_request(
            "invalid_cursor",
            format!(
                "before: no site {}; list from the first page again",
                query.before.as_deref().unwrap_or_default()
            ),
        )
    };
    let page = state
        .db
        .run(move |c| {
            if let Some(before) = cursor {
                // Another tenant's site is as unknown to a tenant's token as a made-up id.
                match sites::get(c, before.as_str())? {
                    Some(site) if filter.tenant.as_ref().is_none_or(|t| *t == site.tenant) => {
                        filter.after = Some((site.created_at, site.id))
                    }
                    _ => return Ok(None),
                }
            }
            let mut rows = sites::list(c, &filter, limit + 1)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            Ok(Some((rows, more)))
        })
        .await?;
    let (rows, more) = page.ok_or_else(unknown_cursor)?;
    let next = more.then(|| rows.last().map(|s| s.id.clone())).flatten();
    let sites: Vec<_> = rows.into_iter().map(|s| site_out(&state, s)).collect();
    Ok(json_ok(StatusCode::OK, &SiteList { sites, next }))
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
    Ok(json_ok(
        StatusCode::OK,
        &SiteDetail {
            site: site_out(&state, site),
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
    /// Pass as `before` for the next page; `null` on the last page.
    next: Option<String>,
}
