//! `POST /signup` and `POST /t/{tenant}/signup`: rate limits → parse → built-in validation →
//! policy plugins → uniqueness → one transaction storing the site and its first job → `201`
//! (or `303` to the status page for a browser form post).
//!
//! The per-IP and per-tenant limits count every request. The per-email limit counts only
//! submissions that would create a site: built-in validation and every policy passed and the
//! name is free. It keys on the validated address, normalised (see
//! [`EmailAddress::rate_limit_key`](crate::domain::EmailAddress::rate_limit_key)), so nobody
//! can fill it with junk or lock a customer out with refused signups in their name.

pub(crate) mod body;
pub(crate) mod page;

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{get, options, post, web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use super::registry::{twin_routes, Routes};
use super::request::prefers_html;
use super::schemas::{ErrorBody, SignupForm, SignupJson, SignupMultipart};
use super::state::AppState;
use crate::adapters::db::jobs::Enqueue;
use crate::adapters::db::{is_unique_violation, sites};
use crate::domain::job::Provision;
use crate::domain::{Author, SiteId, SiteName, SiteState};
use crate::routes::client_ip::client_ip;
use crate::routes::error::ApiError;
use crate::routes::rate_limit::ip_key;
use crate::services::signup::{run_policies, validate, RawForm, Signup};
use crate::services::tenants::Tenant;

pub fn routes(routes: &mut Routes) {
    routes
        .add(page_default)
        .add(page_tenant)
        .add(signup_default)
        .add(preflight_default)
        .add(signup_tenant)
        .add(preflight_tenant);
}

/// What both signup routes say of themselves.
const SIGNUP: &str =
    "Validates the submission (built-in rules, then the tenant's policy plugins), \
stores the site and queues its provisioning in one transaction. A browser's form post (`Accept` \
prefers HTML) is sent on to the status page with `303`; other clients get `201` with the site. \
Unknown fields are ignored; the tenant's honeypot field (`website` by default) must be absent or \
empty, or the signup is dropped behind a decoy `201`.";

/// What a signup can get.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum SignupAnswers {
    #[response(
        status = 201,
        description = "Site created; provisioning (or waiting for payment) has started",
        headers(("Location" = String, description = "The site's status page"))
    )]
    Created(Created),
    #[response(
        status = 303,
        description = "A browser's form post: the status page is at `Location`",
        headers(("Location" = String, description = "The site's status page"))
    )]
    SeeOther,
    #[response(
        status = 400,
        description = "A malformed body, a missing or duplicated field (`malformed_body`, `missing_field`, `duplicate_field`)"
    )]
    BadRequest(ErrorBody),
    #[response(status = 404, description = "No such tenant (`unknown_tenant`)")]
    UnknownTenant(ErrorBody),
    #[response(
        status = 408,
        description = "The body did not arrive within `server.body_timeout_secs`"
    )]
    Timeout(ErrorBody),
    #[response(status = 409, description = "The name is taken (`name_taken`)")]
    Taken(ErrorBody),
    #[response(
        status = 413,
        description = "The body is over the tenant's `html_max_bytes` plus 16 KiB"
    )]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Not one of the three body types")]
    UnsupportedType(ErrorBody),
    #[response(
        status = 422,
        description = "Built-in validation failed (`invalid_fields`, with `fields`) or a policy refused the site (`policy_rejected`, with `reasons`)"
    )]
    Refused(ErrorBody),
    #[response(
        status = 429,
        description = "Too many signups from this address, for this email or for this tenant (`rate_limited`)",
        headers(("Retry-After" = u64, description = "Seconds until a signup can succeed"))
    )]
    RateLimited(ErrorBody),
    #[response(
        status = 500,
        description = "berth failed on its side (`internal_error`); the cause is logged, not shown"
    )]
    Internal(ErrorBody),
}

twin_routes! {
    #[utoipa::path(
        tag = "signup",
        description = SIGNUP,
        request_body(content(
            (SignupForm = "application/x-www-form-urlencoded"),
            (SignupMultipart = "multipart/form-data"),
            (SignupJson = "application/json"),
        )),
    )]
    responses(SignupAnswers);
    #[post("/signup")]
    /// Sign up on tenant `default`.
    signup_default;
    #[post("/t/{tenant}/signup")]
    /// Sign up on a tenant.
    signup_tenant;
    async fn(
        tenant,
        req: HttpRequest,
        payload: web::Payload,
        state: web::Data<AppState>,
    ) -> HttpResponse {
        signup(req, payload, state, tenant).await
    }
}

twin_routes! {
    #[utoipa::path(tag = "signup")]
    responses((
        status = 200,
        description = "The signup page: the tenant's name, logo and colour, its fields and plans, no script",
        content_type = "text/html"
    ));
    #[get("/signup")]
    /// The signup page of tenant `default`, hosted by berth.
    page_default + responses((
        status = 404,
        description = "No tenant `default` in this configuration (`unknown_tenant`)",
        body = ErrorBody
    ),);
    #[get("/t/{tenant}/signup")]
    /// A tenant's signup page, hosted by berth.
    page_tenant + responses((
        status = 404,
        description = "No such tenant (`unknown_tenant`)",
        body = ErrorBody
    ),);
    async fn(tenant, state: web::Data<AppState>) -> HttpResponse {
        match state.tenant(tenant) {
            Ok(tenant) => page::blank(&tenant),
            Err(error) => error.error_response(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "id": "site_01jd8x3v5c6b7n8m9k0a1s2d3f",
    "tenant": "default",
    "name": "my-shop",
    "hostname": "my-shop.localhost",
    "state": "provisioning",
    "status_url": "http://127.0.0.1:8080/t/default/sites/site_01jd8x3v5c6b7n8m9k0a1s2d3f",
    "manage_token": "bmt_3f0c9a…",
    "manage_url": "http://127.0.0.1:8080/t/default/sites/site_01jd8x3v5c6b7n8m9k0a1s2d3f/manage#token=bmt_3f0c9a…"
}))]
pub(crate) struct Created {
    id: String,
    tenant: String,
    name: String,
    hostname: String,
    state: SiteState,
    status_url: String,
    /// The site's manage token, shown this once (berth keeps only its hash): `Authorization:
    /// Bearer` for the site's customer API.
    manage_token: String,
    /// The manage page, with the token in the fragment.
    manage_url: String,
}

/// The handler proper; CORS headers go on every answer, errors included.
async fn signup(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    tenant: &str,
) -> HttpResponse {
    let tenant = match state.tenant(tenant) {
        Ok(tenant) => tenant,
        Err(error) => return error.error_response(),
    };
    let mut typed = None;
    let mut response = match accept(&req, payload, &state, &tenant, &mut typed).await {
        Ok(response) => response,
        Err(error) => {
            metrics::counter!("berth_signups_total", "tenant" => tenant.name.to_string(), "outcome" => error.code())
                .increment(1);
            if prefers_html(&req) {
                let referer = req
                    .headers()
                    .get(header::REFERER)
                    .and_then(|v| v.to_str().ok());
                page::refused(&tenant, &typed.unwrap_or_default(), &error, referer)
            } else {
                error.error_response()
            }
        }
    };
    super::cors::allow(
        req.headers(),
        &tenant,
        response.headers_mut(),
        SIGNUP_EXPOSE,
    );
    response
}

#[tracing::instrument(name = "signup", skip_all, fields(tenant = %tenant.name, site.id, site.name))]
async fn accept(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    tenant: &Arc<Tenant>,
    typed: &mut Option<page::Typed>,
) -> Result<HttpResponse, ApiError> {
    if let Some(ip) = client_ip(req, &state.settings.get().server.trusted_proxies) {
        state.limits.get().signup_per_ip.check(&ip_key(ip))?;
    }
    state
        .limits
        .get()
        .signup_per_tenant
        .check(tenant.name.as_str())?;

    let kind = body::kind_of(req)?;
    let limit = tenant.settings.html_max_bytes + 16 * 1024;
    let raw = super::request::read_limited(req, payload, limit).await?;
    let form = body::parse(req, kind, raw).await?;
    if prefers_html(req) {
        *typed = Some(page::Typed::of(&form));
    }

    if form
        .get(&tenant.settings.honeypot_field)
        .is_some_and(|v| !v.iter().all(u8::is_ascii_whitespace))
    {
        metrics::counter!("berth_honeypot_total", "tenant" => tenant.name.to_string()).increment(1);
        tracing::info!("honeypot field filled in; dropping the signup silently");
        return Ok(respond(req, tenant, decoy(state, tenant, &form)));
    }
    let mut signup = validate(tenant, &form)?;
    tracing::Span::current().record("site.name", signup.name.as_str());
    tokio::select! {
        checked = run_policies(&state.policies, tenant, &mut signup) => checked?,
        () = crate::routes::connections::client_gone(req) => {
            tracing::info!("client gone; policies stopped");
            return Err(ApiError::ClientGone);
        }
    }
    refuse_taken(state, tenant, &signup).await?;
    state
        .limits
        .get()
        .signup_per_email
        .check(&signup.email.rate_limit_key())?;

    let site_id = SiteId::generate();
    tracing::Span::current().record("site.id", site_id.as_str());
    let created = store(state, tenant, &site_id, signup).await?;
    metrics::counter!("berth_signups_total", "tenant" => tenant.name.to_string(), "outcome" => "created").increment(1);
    tracing::info!(site.hostname = %created.hostname, site.state = %created.state, "site created");
    Ok(respond(req, tenant, created))
}

/// A `409` when the name is taken, before the signup counts toward the per-email limit. The
/// store checks again, in its transaction, for a race of concurrent signups.
async fn refuse_taken(state: &AppState, tenant: &Tenant, signup: &Signup) -> Result<(), ApiError> {
    let hostname = crate::domain::Hostname::new(&signup.name, &tenant.settings.base_domain);
    refuse_taken_hostname(state, &hostname.to_string()).await
}

/// `409 name_taken` when a live site holds `hostname` (checked before the write, whose unique
/// index has the last word: see [`name_taken`]).
pub(super) async fn refuse_taken_hostname(
    state: &AppState,
    hostname: &str,
) -> Result<(), ApiError> {
    let lookup = hostname.to_owned();
    if state
        .db
        .run(move |c| sites::hostname_taken(c, &lookup))
        .await?
    {
        return Err(name_taken(hostname));
    }
    Ok(())
}

/// The answer for a name a live site holds.
pub(super) fn name_taken(hostname: &str) -> ApiError {
    ApiError::conflict(
        "name_taken",
        format!("{hostname} is already taken; choose another name"),
    )
}

/// Stores the site and, unless it waits for payment, its provision job: one transaction.
async fn store(
    state: &AppState,
    tenant: &Tenant,
    id: &SiteId,
    signup: Signup,
) -> Result<Created, ApiError> {
    let site_state = if tenant.settings.payment_required {
        SiteState::PendingPayment
    } else {
        SiteState::Provisioning
    };
    let token = state.manage_key.issue(id.as_str());
    let site = signup.into_new_site(tenant, id, site_state, Author::Customer, &token);
    let job = (site_state == SiteState::Provisioning).then(|| {
        Provision {
            site_id: id.to_string(),
            version: 1,
        }
        .to_new_job(&state.settings.get().jobs)
    });
    let (name, hostname) = (site.name.clone(), site.hostname.clone());
    match state
        .db
        .write(move |c| sites::create(c, &site, job.as_ref()))
        .await
    {
        Ok(()) => {}
        Err(error) if is_unique_violation(&error) => return Err(name_taken(&hostname)),
        Err(error) => return Err(error.into()),
    }
    state.wake.notify_one();
    Ok(Created {
        id: id.to_string(),
        tenant: tenant.name.to_string(),
        name,
        hostname,
        state: site_state,
        status_url: tenant.status_url(id.as_str()),
        manage_url: tenant.manage_url(id.as_str(), token.token.expose()),
        manage_token: token.token.expose().to_owned(),
    })
}

/// What a bot that filled in the honeypot sees: a plausible answer for a site that does not exist.
fn decoy(state: &AppState, tenant: &Tenant, form: &RawForm) -> Created {
    let name = form
        .get("name")
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| SiteName::parse(n.trim()).ok())
        .map_or_else(|| "site".to_owned(), |n| n.to_string());
    let id = SiteId::generate();
    let token = state.manage_key.issue(id.as_str());
    Created {
        hostname: format!("{name}.{}", tenant.settings.base_domain),
        status_url: tenant.status_url(id.as_str()),
        manage_url: tenant.manage_url(id.as_str(), token.token.expose()),
        manage_token: token.token.expose().to_owned(),
        id: id.to_string(),
        tenant: tenant.name.to_string(),
        name,
        state: SiteState::Provisioning,
    }
}

/// What a signup's answer exposes to an allowed origin.
const SIGNUP_EXPOSE: &str = "location, retry-after";

fn respond(req: &HttpRequest, tenant: &Tenant, created: Created) -> HttpResponse {
    if prefers_html(req) {
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, tenant.status_path(&created.id)))
            .finish()
    } else {
        HttpResponse::build(StatusCode::CREATED)
            .insert_header((header::LOCATION, tenant.status_path(&created.id)))
            .json(created)
    }
}

twin_routes! {
    #[utoipa::path(tag = "signup")]
    responses((
        status = 204,
        description = "Allowed origins get the CORS headers; others none"
    ));
    #[options("/signup")]
    /// CORS preflight for tenant `default`: allowed origins may POST JSON.
    preflight_default + responses((
        status = 404,
        description = "No tenant `default` in this configuration (`unknown_tenant`)",
        body = ErrorBody
    ),);
    #[options("/t/{tenant}/signup")]
    /// CORS preflight for a tenant: allowed origins may POST JSON.
    preflight_tenant + responses((
        status = 404,
        description = "No such tenant (`unknown_tenant`)",
        body = ErrorBody
    ),);
    async fn(tenant, req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
        super::cors::preflight(&req, &state, tenant, "POST", "content-type", SIGNUP_EXPOSE)
    }
}
