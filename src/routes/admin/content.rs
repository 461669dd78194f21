//! `/admin/sites/{id}/…` for a site's content: what its customer does with the manage token
//! (content, versions, rollback; answered by `routes::manage`), as an operator, and issuing a
//! new manage token.

use actix_web::http::StatusCode;
use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sites::load;
use super::SiteNotFound;
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::{jobs, outbox, sites};
use crate::domain::job::SendEmail;
use crate::domain::notice::MANAGE_LINK;
use crate::domain::Author;
use crate::domain::SiteState;
use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::manage::{
    self, Accepted, Content, ContentRefusals, NameRequest, RenameRefusals, Renamed,
    RollbackRefusals, RollbackRequest, UpdateRefusals, Versions,
};
use crate::routes::params::SiteIdPath;
use crate::routes::registry::Routes;
use crate::routes::request::json_ok;
use crate::routes::schemas::{AdminErrors, ContentForm, ContentJson, ContentMultipart, ErrorBody};
use crate::routes::state::AppState;

pub fn routes(routes: &mut Routes) {
    routes
        .add(get_content)
        .add(put_content)
        .add(list_versions)
        .add(rollback)
        .add(put_name)
        .add(rotate_manage_token);
}

/// The HTML of the site's newest accepted version, as its customer sees it.
#[utoipa::path(
    operation_id = "admin_get_site_content",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    responses(
        (status = 200, description = "The HTML of the site's newest accepted version, in JSON", body = Content),
        ContentRefusals,
        SiteNotFound,
        AdminErrors,
    )
)]
#[get("/admin/sites/{id}/content")]
pub(crate) async fn get_content(
    admin: Admin,
    path: SiteIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = load(&admin, &state, &path.id).await?;
    manage::content(&state, site).await
}

/// New HTML for the site, made by an operator; otherwise as `PUT /t/{tenant}/sites/{id}/content`.
#[utoipa::path(
    operation_id = "admin_put_site_content",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    request_body(content(
        (ContentForm = "application/x-www-form-urlencoded"),
        (ContentMultipart = "multipart/form-data"),
        (ContentJson = "application/json"),
    )),
    responses(
        (status = 202, description = "The new version is the site's target: deploying (a ready site) or live at once (a suspended one, deployed when it resumes)", body = Accepted),
        UpdateRefusals,
        SiteNotFound,
        AdminErrors,
    )
)]
#[put("/admin/sites/{id}/content")]
pub(crate) async fn put_content(
    req: HttpRequest,
    admin: Admin,
    path: SiteIdPath,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = load(&admin, &state, &path.id).await?;
    let tenant = state.tenant(&site.tenant)?;
    manage::update(&req, payload, &state, &tenant, site, Author::Operator).await
}

/// The site's versions, newest first.
#[utoipa::path(
    operation_id = "admin_list_site_versions",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    responses(
        (status = 200, description = "The versions kept, newest first", body = Versions),
        SiteNotFound,
        AdminErrors,
    )
)]
#[get("/admin/sites/{id}/versions")]
pub(crate) async fn list_versions(
    admin: Admin,
    path: SiteIdPath,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = load(&admin, &state, &path.id).await?;
    manage::versions_of(&state, site).await
}

/// Serves an earlier version again, as an operator.
#[utoipa::path(
    operation_id = "admin_roll_back_site",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    request_body = RollbackRequest,
    responses(
        (status = 202, description = "The version is the site's target again", body = Accepted),
        RollbackRefusals,
        (status = 404, description = "No such site (`site_not_found`) or version (`version_not_found`)", body = ErrorBody),
        AdminErrors,
    )
)]
#[post("/admin/sites/{id}/rollback")]
pub(crate) async fn rollback(
    admin: Admin,
    path: SiteIdPath,
    body: web::Json<RollbackRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = load(&admin, &state, &path.id).await?;
    let tenant = state.tenant(&site.tenant)?;
    manage::roll_back(&state, &tenant, site, Author::Operator, body.into_inner()).await
}

/// Gives a paid site whose name was refused another name, as an operator; otherwise as
/// `PUT /t/{tenant}/sites/{id}/name`.
#[utoipa::path(
    operation_id = "admin_rename_site",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath),
    request_body = NameRequest,
    responses(
        (status = 202, description = "Renamed; provisioning (or waiting for the payment to clear)", body = Renamed),
        RenameRefusals,
        SiteNotFound,
        AdminErrors,
    )
)]
#[put("/admin/sites/{id}/name")]
pub(crate) async fn put_name(
    admin: Admin,
    path: SiteIdPath,
    body: web::Json<NameRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = load(&admin, &state, &path.id).await?;
    let tenant = state.tenant(&site.tenant)?;
    manage::rename(&state, &tenant, site, Author::Operator, body.into_inner()).await
}

/// A new manage token, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct IssuedToken {
    site_id: String,
    manage_token: String,
    /// The manage page, with the token in the fragment.
    manage_url: String,
    /// Whether an email with the new link is on its way to the site's customer.
    emailed: bool,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct RotateQuery {
    /// Also email the new link to the site's customer (`manage_link` notice).
    #[param(default = false)]
    email: Option<bool>,
}

/// Issues the site a new manage token; the old one stops working at once. Hand the customer the
/// `manage_url`: berth keeps only the token's hash and cannot show it again.
#[utoipa::path(
    operation_id = "rotate_manage_token",
    tag = "admin",
    security(("bearer" = [])),
    params(SiteIdPath, RotateQuery),
    responses(
        (status = 200, description = "The new token (the old one no longer works)", body = IssuedToken),
        (status = 400, description = "An unknown query parameter, or `email` not `true` or `false`", body = ErrorBody),
        (status = 409, description = "An email was asked for a deleted site (`invalid_state`)", body = ErrorBody),
        SiteNotFound,
        AdminErrors,
    )
)]
#[post("/admin/sites/{id}/manage-token")]
pub(crate) async fn rotate_manage_token(
    admin: Admin,
    path: SiteIdPath,
    query: web::Query<RotateQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let site = load(&admin, &state, &path.id).await?;
    let tenant = state.tenant(&site.tenant)?;
    let emailed = query.email.unwrap_or(false);
    if emailed && site.state == SiteState::Deleted {
        return Err(ApiError::conflict(
            "invalid_state",
            "the site is deleted; there is nothing to manage",
        ));
    }
    let token = state.manage_key.issue(&site.id);
    let (id, nonce, hash) = (site.id.clone(), token.nonce.clone(), token.hash.clone());
    // One email per new token: its outbox row is named by the token's nonce.
    let key = format!("{MANAGE_LINK}.{}", &nonce[..nonce.len().min(16)]);
    let message_id = state.mailer.get().message_id(&key, &site.id);
    let job = SendEmail {
        site_id: site.id.clone(),
        notice: MANAGE_LINK.to_owned(),
        outbox: Some(key.clone()),
    }
    .to_new_job(&state.settings.get().jobs);
    state
        .db
        .write(move |c| {
            sites::set_manage_token(c, &id, &nonce, &hash)?;
            if emailed && outbox::add(c, &id, &key, &message_id)? {
                jobs::insert(c, &job)?;
            }
            Ok(())
        })
        .await?;
    if emailed {
        state.wake.notify_one();
    }
    tracing::info!(site.id = %site.id, tenant = %site.tenant, emailed, "manage token rotated");
    Ok(json_ok(
        StatusCode::OK,
        &IssuedToken {
            manage_url: tenant.manage_url(&site.id, token.token.expose()),
            manage_token: token.token.expose().to_owned(),
            site_id: site.id,
            emailed,
        },
    ))
}
