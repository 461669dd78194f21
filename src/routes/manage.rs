//! A site's customer API (SPEC §7): its content, its versions and rollback, under
//! `/t/{tenant}/sites/{id}/…`, with the site's manage token (or an admin token that sees the
//! tenant). Operators reach the same through `/admin/sites/{id}/…`, which call the functions
//! here, so both answer alike.
//!
//! A change is accepted in one transaction with the job that deploys it (`202`); the site keeps
//! serving its live version until the new one is ready. The customer's HTML is only ever
//! returned inside JSON here: this is the API origin, and customer HTML is never served on it.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{get, options, post, put, web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::site_caller;
use super::error::ApiError;
use super::params::TenantSitePath;
use super::registry::Routes;
use super::request::json_ok;
use super::schemas::{AdminErrors, ContentForm, ContentJson, ContentMultipart, ErrorBody};
use super::state::AppState;
use crate::adapters::db::is_unique_violation;
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::sites::{self, Rename, SiteRow};
use crate::adapters::db::versions::{self, Change, Proposal, VersionRow};
use crate::domain::job::{Deploy, Provision};
use crate::domain::{Author, Hostname, SiteId, SiteState};
use crate::services::signup::{check_rename, check_update, html_field};
use crate::services::tenants::Tenant;

pub fn routes(routes: &mut Routes) {
    routes
        .add(get_content)
        .add(put_content)
        .add(list_versions)
        .add(rollback)
        .add(put_name)
        .add(page)
        .add(script)
        .add(preflight_content)
        .add(preflight_versions)
        .add(preflight_rollback)
        .add(preflight_name);
}

/// CORS preflights of the customer API, for a manage page a tenant hosts on one of its
/// `allowed_origins`: that origin may call the API with `Authorization`.
macro_rules! preflights {
    ($($name:ident = $path:literal, $methods:literal, $summary:literal;)+) => {$(
        #[doc = $summary]
        #[utoipa::path(
            tag = "manage",
            params(TenantSitePath),
            responses(
                (status = 204, description = "Origins in the tenant's `allowed_origins` get the CORS headers; others none"),
                (status = 404, description = "No such tenant (`unknown_tenant`), or not a site id (`site_not_found`)", body = ErrorBody),
            )
        )]
        #[options($path)]
        pub(crate) async fn $name(
            req: HttpRequest,
            path: web::Path<TenantSitePath>,
            state: web::Data<AppState>,
        ) -> HttpResponse {
            if SiteId::parse(&path.id).is_err() {
                return super::params::site_not_found(&path.id).error_response();
            }
            super::cors::preflight(
                &req,
                &state,
                &path.tenant,
                $methods,
                "authorization, content-type",
                super::cors::MANAGE_EXPOSE,
            )
        }
    )+};
}

preflights! {
    preflight_content = "/t/{tenant}/sites/{id}/content", "GET, PUT", "CORS preflight of the site's content.";
    preflight_versions = "/t/{tenant}/sites/{id}/versions", "GET", "CORS preflight of the site's versions.";
    preflight_rollback = "/t/{tenant}/sites/{id}/rollback", "POST", "CORS preflight of a rollback.";
    preflight_name = "/t/{tenant}/sites/{id}/name", "PUT", "CORS preflight of a new name.";
}

const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'";

/// The customer's manage page. It holds no data: its script reads the manage token from the
/// link's fragment and calls this API with it.
#[utoipa::path(
    operation_id = "manage_page",
    tag = "manage",
    params(TenantSitePath),
    responses(
        (status = 200, description = "The manage page (it holds no data)", content_type = "text/html"),
        UnknownSite,
        (status = 500, description = "berth failed on its side (`internal_error`)", body = ErrorBody),
    ),
)]
#[get("/t/{tenant}/sites/{id}/manage")]
pub(crate) async fn page(
    path: web::Path<TenantSitePath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    tenant_site(&state, path.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((actix_web::http::header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .insert_header((actix_web::http::header::REFERRER_POLICY, "no-referrer"))
        .body(include_str!("manage/page.html")))
}

/// The manage page's script.
#[utoipa::path(
    operation_id = "manage_script",
    tag = "manage",
    responses((status = 200, description = "The manage page's script", content_type = "text/javascript")),
)]
#[get("/manage.js")]
pub(crate) async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .body(include_str!("manage/page.js"))
}

/// A path that names no site of the tenant.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum UnknownSite {
    #[response(
        status = 404,
        description = "No such tenant (`unknown_tenant`) or site (`site_not_found`)"
    )]
    NotFound(ErrorBody),
}

/// The refusals of the customer API and its `/admin/sites/{id}/…` twin, besides the site lookup
/// and the token's: one list each, so both document the same.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum ContentRefusals {
    #[response(status = 409, description = "The site has no HTML (`no_content`)")]
    NoContent(ErrorBody),
}

#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum UpdateRefusals {
    #[response(
        status = 400,
        description = "A malformed body or no `html` field (`malformed_body`, `missing_field`, `duplicate_field`)"
    )]
    BadRequest(ErrorBody),
    #[response(
        status = 408,
        description = "The body did not arrive within `server.body_timeout_secs`"
    )]
    Timeout(ErrorBody),
    #[response(
        status = 409,
        description = "The site is not `ready` or `suspended` (`invalid_state`), or has no HTML (`no_content`)"
    )]
    Conflict(ErrorBody),
    #[response(
        status = 413,
        description = "The body is over the tenant's `html_max_bytes` plus 16 KiB"
    )]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not one of the three body types")]
    UnsupportedType(ErrorBody),
    #[response(
        status = 422,
        description = "Built-in validation (`invalid_fields`) or a policy (`policy_rejected`) refused the HTML, as at signup"
    )]
    Refused(ErrorBody),
}

/// (Its `404` differs between the two paths: each lists its own, with `version_not_found`.)
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum RollbackRefusals {
    #[response(
        status = 400,
        description = "A malformed body (`bad_request`, `invalid_version`)"
    )]
    BadRequest(ErrorBody),
    #[response(
        status = 409,
        description = "The site is not `ready` or `suspended` (`invalid_state`), has no HTML (`no_content`), or the version failed to deploy (`version_failed`)"
    )]
    Conflict(ErrorBody),
}

#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum RenameRefusals {
    #[response(status = 400, description = "A malformed body (`bad_request`)")]
    BadRequest(ErrorBody),
    #[response(
        status = 409,
        description = "The name is taken (`name_taken`), or the site is not a rejected, paid-for one (`invalid_state`)"
    )]
    Conflict(ErrorBody),
    #[response(
        status = 422,
        description = "Built-in validation (`invalid_fields`) or a policy (`policy_rejected`) refused the name, as at signup"
    )]
    Refused(ErrorBody),
}

/// The site of the path, when it is the tenant's: `404` otherwise.
async fn tenant_site(
    state: &AppState,
    path: TenantSitePath,
) -> Result<(Arc<Tenant>, SiteRow), ApiError> {
    let tenant = state.tenant(&path.tenant)?;
    let not_found = || super::params::site_not_found(&path.id);
    let id = SiteId::parse(&path.id).map_err(|_| not_found())?;
    let site = state
        .db
        .run(move |c| sites::get(c, id.as_str()))
        .await?
        .filter(|site| site.tenant == tenant.name.as_str())
        .ok_or_else(not_found)?;
    Ok((tenant, site))
}

/// The site's content: the HTML of its target version (the live one, or the one on its way).
#[derive(Serialize, ToSchema)]
pub(crate) struct Content {
    /// The version `html` is.
    version: i64,
    /// The version the site serves now.
    live_version: Option<i64>,
    sha256: String,
    html: String,
}

/// The site's versions, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct Versions {
    live_version: Option<i64>,
    /// The version being deployed, or the live one when nothing is.
    target_version: Option<i64>,
    versions: Vec<VersionRow>,
}

/// A change accepted: the version that is now the target, and the site's pointers.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    site_id: String,
    state: SiteState,
    live_version: Option<i64>,
    target_version: Option<i64>,
    version: VersionRow,
    status_url: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackRequest {
    /// The version to serve again.
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "version_number")]
    version: i64,
}

/// A version number: an integer, however JSON spells it (`2` or `2.0`).
fn version_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    crate::domain::whole_number::of(&number)
        .ok_or_else(|| D::Error::custom("version must be a whole number"))
}

pub(crate) async fn content(state: &AppState, site: SiteRow) -> Result<HttpResponse, ApiError> {
    let Some(number) = site.target_version else {
        return Err(no_content());
    };
    let id = site.id.clone();
    let found = state
        .db
        .run(move |c| versions::get_with_html(c, &id, number))
        .await?;
    let Some((version, html)) = found else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "version {number} of site {} is missing",
            site.id
        )));
    };
    Ok(json_ok(
        StatusCode::OK,
        &Content {
            version: number,
            live_version: site.live_version,
            sha256: version.sha256,
            html,
        },
    ))
}

pub(crate) async fn versions_of(state: &AppState, site: SiteRow) -> Result<HttpResponse, ApiError> {
    let id = site.id.clone();
    let versions = state.db.run(move |c| versions::list(c, &id)).await?;
    Ok(json_ok(
        StatusCode::OK,
        &Versions {
            live_version: site.live_version,
            target_version: site.target_version,
            versions,
        },
    ))
}

/// Reads new HTML from the body (the signup's body types, field `html`), checks it as a signup's
/// would be, and proposes it as the site's next version.
pub(crate) async fn update(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    tenant: &Tenant,
    site: SiteRow,
    by: Author,
) -> Result<HttpResponse, ApiError> {
    if site.target_version.is_none() {
        return Err(no_content());
    }
    let kind = super::signup::body::kind_of(req)?;
    let limit = tenant.settings.html_max_bytes + 16 * 1024;
    let raw = super::request::read_limited(req, payload, limit).await?;
    let form = super::signup::body::parse(req, kind, raw).await?;
    let html = html_field(&form)?;
    let html = check_update(&state.policies, tenant, &site, html).await?;
    propose(state, tenant, &site.id, by, Requested::Content(html)).await
}

pub(crate) async fn roll_back(
    state: &AppState,
    tenant: &Tenant,
    site: SiteRow,
    by: Author,
    request: RollbackRequest,
) -> Result<HttpResponse, ApiError> {
    if request.version < 1 {
        return Err(ApiError::bad_request(
            "invalid_version",
            "version must be a version number (1 or more)",
        ));
    }
    propose(
        state,
        tenant,
        &site.id,
        by,
        Requested::Rollback(request.version),
    )
    .await
}

/// A change as a request carries it, to hand to the write.
enum Requested {
    Content(String),
    Rollback(i64),
}

/// Proposes the change in one write, and answers what happened.
async fn propose(
    state: &AppState,
    tenant: &Tenant,
    site_id: &str,
    by: Author,
    requested: Requested,
) -> Result<HttpResponse, ApiError> {
    let jobs = state.settings.get().jobs.clone();
    let kept = i64::from(tenant.settings.versions_kept);
    let id = site_id.to_owned();
    let proposal = state
        .db
        .write(move |c| {
            let change = match &requested {
                Requested::Content(html) => Change::Content { html, by },
                Requested::Rollback(to) => Change::Rollback { to: *to },
            };
            versions::propose(c, &id, change, kept, |site| {
                Deploy {
                    site_id: site.id.clone(),
                    version: site.version,
                }
                .to_new_job(&jobs)
            })
        })
        .await?;
    match proposal {
        Proposal::Accepted { site, version } => {
            state.wake.notify_one();
            tracing::info!(
                site.id = %site.id,
                tenant = %site.tenant,
                version = version.number,
                by = %by,
                version.state = %version.state,
                "content change accepted"
            );
            Ok(json_ok(
                StatusCode::ACCEPTED,
                &Accepted {
                    status_url: tenant.status_url(&site.id),
                    site_id: site.id,
                    state: site.state,
                    live_version: site.live_version,
                    target_version: site.target_version,
                    version,
                },
            ))
        }
        Proposal::NotFound => Err(super::params::site_not_found(site_id)),
        Proposal::WrongState(current) => Err(ApiError::conflict(
            "invalid_state",
            format!("the site is {current}; its content can change when it is ready or suspended"),
        )),
        Proposal::NoContent => Err(no_content()),
        Proposal::UnknownVersion => Err(ApiError::not_found(
            "version_not_found",
            format!(
                "the site has no such version; GET its versions to see the {} kept",
                tenant.settings.versions_kept
            ),
        )),
        Proposal::FailedVersion(error) => Err(ApiError::conflict(
            "version_failed",
            format!(
                "that version failed to deploy ({}); choose one that was live",
                error.as_deref().unwrap_or("no error recorded")
            ),
        )),
    }
}

/// Another name for a site whose paid checkout named one that was taken or refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NameRequest {
    /// A DNS-1035 label of 3 to 63 characters (spaces around it are trimmed), not reserved by
    /// the tenant.
    #[schema(pattern = r"^\s*[a-z][-a-z0-9]{1,61}[a-z0-9]\s*$")]
    name: String,
}

/// A renamed site, on its way.
#[derive(Serialize, ToSchema)]
pub(crate) struct Renamed {
    site_id: String,
    name: String,
    hostname: String,
    /// `provisioning` (the checkout was paid) or `pending_payment` (its payment is clearing).
    state: SiteState,
    status_url: String,
}

fn not_renamable(state: SiteState) -> ApiError {
    ApiError::conflict(
        "invalid_state",
        format!(
            "the site is {state}; only a rejected site that a checkout paid for can take another name"
        ),
    )
}

/// Checks `request`'s name as a signup's (built-in rules, the tenant's policies, a free name)
/// and gives it to the rejected, paid-for site, which then provisions with its payment.
pub(crate) async fn rename(
    state: &AppState,
    tenant: &Tenant,
    site: SiteRow,
    by: Author,
    request: NameRequest,
) -> Result<HttpResponse, ApiError> {
    let has_payment = site.stripe_customer_id.is_some() || site.stripe_subscription_id.is_some();
    if site.state != SiteState::Rejected || !has_payment {
        return Err(not_renamable(site.state));
    }
    let html = match site.target_version {
        None => None,
        Some(number) => {
            let id = site.id.clone();
            state
                .db
                .run(move |c| versions::html(c, &id, number))
                .await?
        }
    };
    let (name, kept) =
        check_rename(&state.policies, tenant, &site, html.clone(), &request.name).await?;
    let hostname = Hostname::new(&name, &tenant.settings.base_domain).to_string();
    super::signup::refuse_taken_hostname(state, &hostname).await?;
    let rewritten = kept.filter(|kept| Some(kept) != html.as_ref());
    let jobs = state.settings.get().jobs.clone();
    let (id, new_name, new_hostname) = (site.id.clone(), name.to_string(), hostname.clone());
    let renamed = state
        .db
        .write(move |c| {
            sites::rename(
                c,
                &id,
                &new_name,
                &new_hostname,
                rewritten.as_deref(),
                |site| {
                    Provision {
                        site_id: site.id.clone(),
                        version: site.version,
                    }
                    .to_new_job(&jobs)
                },
            )
        })
        .await;
    match renamed {
        Ok(Rename::Done(site)) => {
            state.wake.notify_one();
            tracing::info!(site.id = %site.id, tenant = %site.tenant, site.name = %site.name, by = %by, site.state = %site.state, "rejected site renamed");
            Ok(json_ok(
                StatusCode::ACCEPTED,
                &Renamed {
                    status_url: tenant.status_url(&site.id),
                    site_id: site.id,
                    name: site.name,
                    hostname: site.hostname,
                    state: site.state,
                },
            ))
        }
        Ok(Rename::NotFound) => Err(super::params::site_not_found(&site.id)),
        Ok(Rename::NotRenamable(current)) => Err(not_renamable(current)),
        Err(error) if is_unique_violation(&error) => Err(super::signup::name_taken(&hostname)),
        Err(error) => Err(error.into()),
    }
}

fn no_content() -> ApiError {
    ApiError::conflict(
        "no_content",
        "this site runs a container image; it has no HTML to change",
    )
}

/// The HTML of the site's newest accepted version.
#[utoipa::path(
    operation_id = "get_site_content",
    tag = "manage",
    security(("bearer" = [])),
    params(TenantSitePath),
    responses(
        (status = 200, description = "The HTML of the site's newest accepted version, in JSON", body = Content),
        ContentRefusals,
        UnknownSite,
        AdminErrors,
    )
)]
#[get("/t/{tenant}/sites/{id}/content")]
pub(crate) async fn get_content(
    req: HttpRequest,
    path: web::Path<TenantSitePath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, site) = tenant_site(&state, path.into_inner()).await?;
    site_caller(&req, &state, &site)?;
    content(&state, site).await
}

/// Publishes new HTML for the site.
#[utoipa::path(
    operation_id = "put_site_content",
    tag = "manage",
    description = "New HTML for the site, in any of the signup's body types (field `html`). The \
same built-in rules and html policies as at signup apply; the site keeps serving its live \
version until the new one is ready, then switches at once.",
    security(("bearer" = [])),
    params(TenantSitePath),
    request_body(content(
        (ContentForm = "application/x-www-form-urlencoded"),
        (ContentMultipart = "multipart/form-data"),
        (ContentJson = "application/json"),
    )),
    responses(
        (status = 202, description = "The new version is the site's target: deploying (a ready site) or live at once (a suspended one, deployed when it resumes)", body = Accepted),
        UpdateRefusals,
        UnknownSite,
        AdminErrors,
    )
)]
#[put("/t/{tenant}/sites/{id}/content")]
pub(crate) async fn put_content(
    req: HttpRequest,
    path: web::Path<TenantSitePath>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, site) = tenant_site(&state, path.into_inner()).await?;
    let by = site_caller(&req, &state, &site)?;
    update(&req, payload, &state, &tenant, site, by).await
}

/// The site's versions, newest first.
#[utoipa::path(
    operation_id = "list_site_versions",
    tag = "manage",
    security(("bearer" = [])),
    params(TenantSitePath),
    responses(
        (status = 200, description = "The versions kept, newest first", body = Versions),
        UnknownSite,
        AdminErrors,
    )
)]
#[get("/t/{tenant}/sites/{id}/versions")]
pub(crate) async fn list_versions(
    req: HttpRequest,
    path: web::Path<TenantSitePath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, site) = tenant_site(&state, path.into_inner()).await?;
    site_caller(&req, &state, &site)?;
    versions_of(&state, site).await
}

/// Gives a paid site whose name was refused another name.
#[utoipa::path(
    operation_id = "rename_site",
    tag = "manage",
    description = "Only for a `rejected` site that a checkout paid for (its name was taken or \
refused): the name goes through the signup's checks and the tenant's policies, and the site then \
provisions with its payment attached.",
    security(("bearer" = [])),
    params(TenantSitePath),
    request_body = NameRequest,
    responses(
        (status = 202, description = "Renamed; provisioning (or waiting for the payment to clear)", body = Renamed),
        RenameRefusals,
        UnknownSite,
        AdminErrors,
    )
)]
#[put("/t/{tenant}/sites/{id}/name")]
pub(crate) async fn put_name(
    req: HttpRequest,
    path: web::Path<TenantSitePath>,
    body: web::Json<NameRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, site) = tenant_site(&state, path.into_inner()).await?;
    let by = site_caller(&req, &state, &site)?;
    rename(&state, &tenant, site, by, body.into_inner()).await
}

/// Serves an earlier version again.
#[utoipa::path(
    operation_id = "roll_back_site",
    tag = "manage",
    description = "It is deployed like an update: the live \
version keeps serving until it is ready.",
    security(("bearer" = [])),
    params(TenantSitePath),
    request_body = RollbackRequest,
    responses(
        (status = 202, description = "The version is the site's target again", body = Accepted),
        RollbackRefusals,
        (status = 404, description = "No such tenant, site or version (`version_not_found`: never made, or no longer kept)", body = ErrorBody),
        AdminErrors,
    )
)]
#[post("/t/{tenant}/sites/{id}/rollback")]
pub(crate) async fn rollback(
    req: HttpRequest,
    path: web::Path<TenantSitePath>,
    body: web::Json<RollbackRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, site) = tenant_site(&state, path.into_inner()).await?;
    let by = site_caller(&req, &state, &site)?;
    roll_back(&state, &tenant, site, by, body.into_inner()).await
}
