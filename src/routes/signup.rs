//! `POST /signup` and `POST /t/{tenant}/signup`: rate limits → parse → built-in validation →
//! policy plugins → uniqueness → one transaction storing the site and its first job → `201`
//! (or `303` to the status page for a browser form post).

pub(crate) mod body;

use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use self::body::RawForm;
use super::{prefers_html, AppState};
use crate::client_ip::client_ip;
use crate::db::{now_ms, sites};
use crate::domain::{EmailAddress, Hostname, SiteId, SiteName, SiteState};
use crate::error::{ApiError, FieldError};
use crate::jobs::{BackgroundJob, Provision};
use crate::policy::{Hook, Submission, Verdict};
use crate::rate_limit::ip_key;
use crate::tenants::Tenant;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/signup")
            .route(web::post().to(signup_default))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight_default)),
    )
    .service(
        web::resource("/t/{tenant}/signup")
            .route(web::post().to(signup_tenant))
            .route(web::method(actix_web::http::Method::OPTIONS).to(preflight_tenant)),
    );
}

/// Sign up on tenant `default`.
#[utoipa::path(post, path = "/signup", tag = "signup", request_body(content((crate::routes::openapi::SignupIn = "application/x-www-form-urlencoded"), (crate::routes::openapi::SignupIn = "multipart/form-data"), (crate::routes::openapi::SignupIn = "application/json"))), responses((status = 201, description = "Site created", body = Created), (status = 303, description = "A browser form post: see the status page"), (status = 400, description = "Malformed body, missing or duplicated field", body = crate::routes::openapi::ErrorBody), (status = 404, description = "Unknown tenant", body = crate::routes::openapi::ErrorBody), (status = 409, description = "Name taken", body = crate::routes::openapi::ErrorBody), (status = 413, description = "Body over the limit", body = crate::routes::openapi::ErrorBody), (status = 415, description = "Unsupported content type", body = crate::routes::openapi::ErrorBody), (status = 422, description = "invalid_fields or policy_rejected", body = crate::routes::openapi::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::routes::openapi::ErrorBody)))]
pub(crate) async fn signup_default(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    signup(req, payload, state, "default").await
}

/// Sign up on a tenant.
#[utoipa::path(post, path = "/t/{tenant}/signup", tag = "signup", params(("tenant" = String, Path, description = "Tenant name")), request_body(content((crate::routes::openapi::SignupIn = "application/x-www-form-urlencoded"), (crate::routes::openapi::SignupIn = "multipart/form-data"), (crate::routes::openapi::SignupIn = "application/json"))), responses((status = 201, description = "Site created", body = Created), (status = 303, description = "A browser form post: see the status page"), (status = 400, description = "Malformed body, missing or duplicated field", body = crate::routes::openapi::ErrorBody), (status = 404, description = "Unknown tenant", body = crate::routes::openapi::ErrorBody), (status = 409, description = "Name taken", body = crate::routes::openapi::ErrorBody), (status = 413, description = "Body over the limit", body = crate::routes::openapi::ErrorBody), (status = 415, description = "Unsupported content type", body = crate::routes::openapi::ErrorBody), (status = 422, description = "invalid_fields or policy_rejected", body = crate::routes::openapi::ErrorBody), (status = 429, description = "Rate limited; see Retry-After", body = crate::routes::openapi::ErrorBody)))]
pub(crate) async fn signup_tenant(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
) -> HttpResponse {
    signup(req, payload, state, &tenant).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Created {
    id: String,
    tenant: String,
    name: String,
    hostname: String,
    state: SiteState,
    status_url: String,
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
    let mut response = match accept(&req, payload, &state, &tenant).await {
        Ok(response) => response,
        Err(error) => {
            metrics::counter!("berth_signups_total", "tenant" => tenant.name.to_string(), "outcome" => error.code())
                .increment(1);
            error.error_response()
        }
    };
    add_cors(&req, &tenant, &mut response);
    response
}

#[tracing::instrument(name = "signup", skip_all, fields(tenant = %tenant.name, site.id, site.name))]
async fn accept(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    tenant: &Arc<Tenant>,
) -> Result<HttpResponse, ApiError> {
    if let Some(ip) = client_ip(req, &state.settings.server.trusted_proxies) {
        state.limits.signup_per_ip.check(&ip_key(ip))?;
    }
    state.limits.signup_per_tenant.check(tenant.name.as_str())?;

    let kind = body::kind_of(req)?;
    let limit = tenant.settings.html_max_bytes + 16 * 1024;
    let raw = body::read_limited(req, payload, limit).await?;
    let form = body::parse(req, kind, raw).await?;

    if form
        .get(&tenant.settings.honeypot_field)
        .is_some_and(|v| !v.iter().all(u8::is_ascii_whitespace))
    {
        metrics::counter!("berth_honeypot_total", "tenant" => tenant.name.to_string()).increment(1);
        tracing::info!("honeypot field filled in; dropping the signup silently");
        return Ok(respond(req, tenant, decoy(tenant, &form)));
    }
    if let Some(email) = form.get("email").and_then(|e| std::str::from_utf8(e).ok()) {
        state
            .limits
            .signup_per_email
            .check(&email.trim().to_lowercase())?;
    }

    let mut signup = validate(tenant, &form)?;
    tracing::Span::current().record("site.name", signup.name.as_str());
    run_policies(state, tenant, &mut signup).await?;

    let site_id = SiteId::generate();
    tracing::Span::current().record("site.id", site_id.as_str());
    let created = store(state, tenant, &site_id, signup).await?;
    metrics::counter!("berth_signups_total", "tenant" => tenant.name.to_string(), "outcome" => "created").increment(1);
    tracing::info!(site.hostname = %created.hostname, site.state = %created.state, "site created");
    Ok(respond(req, tenant, created))
}

/// A signup that passed built-in validation.
struct Signup {
    name: SiteName,
    email: EmailAddress,
    html: Option<String>,
    /// The plan's key in the tenant's `plans`.
    plan: Option<String>,
}

fn text_field<'a>(
    form: &'a RawForm,
    field: &'static str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    let raw = form.get(field)?;
    match std::str::from_utf8(raw) {
        Ok(text) => Some(text),
        Err(_) => {
            errors.push(FieldError {
                field,
                code: "not_utf8",
                message: format!("{field} is not valid UTF-8"),
            });
            None
        }
    }
}

/// Built-in validation: every problem at once, each against its field.
fn validate(tenant: &Tenant, form: &RawForm) -> Result<Signup, ApiError> {
    let html_needed = tenant.settings.workload.kind == crate::configuration::WorkloadKind::Static;
    let mut missing: Vec<&str> = ["name", "email"]
        .into_iter()
        .filter(|f| form.get(f).is_none())
        .collect();
    if html_needed && form.get("html").is_none() {
        missing.push("html");
    }
    if !missing.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            format!(
                "missing required field{}: {}",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", ")
            ),
        ));
    }

    let mut errors = Vec::new();
    let name = text_field(form, "name", &mut errors)
        .map(str::trim)
        .and_then(|name| {
            let error = |code, message: String| FieldError {
                field: "name",
                code,
                message,
            };
            if name.is_empty() {
                errors.push(error("required", "name is required".into()));
                return None;
            }
            match SiteName::parse(name) {
                Ok(_) if tenant.is_reserved(name) => {
                    errors.push(error(
                        "reserved",
                        format!("{name:?} is reserved; choose another name"),
                    ));
                    None
                }
                Ok(parsed) => Some(parsed),
                Err(why) => {
                    errors.push(error("invalid", format!("name {why}")));
                    None
                }
            }
        });
    let email = text_field(form, "email", &mut errors)
        .map(str::trim)
        .and_then(|email| {
            let error = |code, message: String| FieldError {
                field: "email",
                code,
                message,
            };
            if email.is_empty() {
                errors.push(error("required", "email is required".into()));
                return None;
            }
            EmailAddress::parse(email)
                .map_err(|why| errors.push(error("invalid", format!("email {why}"))))
                .ok()
        });
    let html = text_field(form, "html", &mut errors).map(str::to_owned);
    if let Some(html) = &html {
        check_html(tenant, html, html_needed, &mut errors);
    }
    let plan = match text_field(form, "plan", &mut errors)
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(wanted) => match tenant.plan(wanted) {
            Some((key, _)) => Some(key.clone()),
            None => {
                let known: Vec<&str> = tenant
                    .settings
                    .plans
                    .values()
                    .map(|p| p.name.as_str())
                    .collect();
                errors.push(FieldError {
                    field: "plan",
                    code: "unknown_plan",
                    message: if known.is_empty() {
                        format!("unknown plan {wanted:?}; this site builder has no plans")
                    } else {
                        format!(
                            "unknown plan {wanted:?}; choose one of: {}",
                            known.join(", ")
                        )
                    },
                });
                None
            }
        },
    };
    match (name, email) {
        (Some(name), Some(email)) if errors.is_empty() => Ok(Signup {
            name,
            email,
            html,
            plan,
        }),
        _ => Err(ApiError::InvalidFields(errors)),
    }
}

/// The HTML rules that hold for every value, including one a plugin rewrote.
fn check_html(tenant: &Tenant, html: &str, needed: bool, errors: &mut Vec<FieldError>) {
    let max = tenant.settings.html_max_bytes;
    if html.len() > max {
        errors.push(FieldError {
            field: "html",
            code: "too_large",
            message: format!("html is {} bytes; the limit is {max} bytes", html.len()),
        });
    } else if needed && html.trim().is_empty() {
        errors.push(FieldError {
            field: "html",
            code: "required",
            message: "html is required".into(),
        });
    } else if html.contains('\0') {
        errors.push(FieldError {
            field: "html",
            code: "invalid",
            message: "html must not contain NUL bytes".into(),
        });
    }
}

/// The tenant's policy plugins: the name hook, then the html hook. A rewrite replaces the HTML
/// and the built-in checks run again on it.
async fn run_policies(
    state: &AppState,
    tenant: &Tenant,
    signup: &mut Signup,
) -> Result<(), ApiError> {
    let submission = Submission {
        name: signup.name.as_str(),
        email: signup.email.as_str(),
        plan: signup.plan.as_deref(),
    };
    if let Verdict::Deny(reasons) = state
        .policies
        .check(tenant, Hook::Name, signup.name.as_str(), &submission)
        .await?
    {
        return Err(ApiError::PolicyRejected(reasons));
    }
    if let Some(html) = &signup.html {
        match state
            .policies
            .check(tenant, Hook::Html, html, &submission)
            .await?
        {
            Verdict::Deny(reasons) => return Err(ApiError::PolicyRejected(reasons)),
            Verdict::Allow {
                rewrite: Some(rewritten),
            } => {
                let mut errors = Vec::new();
                check_html(tenant, &rewritten, true, &mut errors);
                if !errors.is_empty() {
                    return Err(ApiError::InvalidFields(errors));
                }
                signup.html = Some(rewritten);
            }
            Verdict::Allow { rewrite: None } => {}
        }
    }
    Ok(())
}

/// Stores the site and, unless it waits for payment, its provision job: one transaction.
async fn store(
    state: &AppState,
    tenant: &Tenant,
    id: &SiteId,
    signup: Signup,
) -> Result<Created, ApiError> {
    let hostname = Hostname::new(&signup.name, &tenant.settings.base_domain);
    let site_state = if tenant.settings.payment_required {
        SiteState::PendingPayment
    } else {
        SiteState::Provisioning
    };
    let now = now_ms();
    let site = sites::NewSite {
        id: id.to_string(),
        tenant: tenant.name.to_string(),
        name: signup.name.to_string(),
        hostname: hostname.to_string(),
        email: signup.email.as_str().to_owned(),
        html: signup.html,
        plan: signup.plan,
        state: site_state.as_str().to_owned(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let job = (site_state == SiteState::Provisioning).then(|| {
        Provision {
            site_id: id.to_string(),
            version: 1,
        }
        .to_new_job(&state.settings.jobs)
    });
    let created = state
        .db
        .run(move |c| sites::create(c, &site, job.as_ref()))
        .await?;
    if !created {
        return Err(ApiError::conflict(
            "name_taken",
            format!("{hostname} is already taken; choose another name"),
        ));
    }
    state.wake.notify_one();
    Ok(Created {
        id: id.to_string(),
        tenant: tenant.name.to_string(),
        name: signup.name.to_string(),
        hostname: hostname.to_string(),
        state: site_state,
        status_url: tenant.status_url(id.as_str()),
    })
}

/// What a bot that filled in the honeypot sees: a plausible answer for a site that does not exist.
fn decoy(tenant: &Tenant, form: &RawForm) -> Created {
    let name = form
        .get("name")
        .and_then(|n| std::str::from_utf8(n).ok())
        .and_then(|n| SiteName::parse(n.trim()).ok())
        .map_or_else(|| "site".to_owned(), |n| n.to_string());
    let id = SiteId::generate();
    Created {
        hostname: format!("{name}.{}", tenant.settings.base_domain),
        status_url: tenant.status_url(id.as_str()),
        id: id.to_string(),
        tenant: tenant.name.to_string(),
        name,
        state: SiteState::Provisioning,
    }
}

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

fn allowed_origin<'a>(req: &'a HttpRequest, tenant: &Tenant) -> Option<&'a str> {
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    tenant
        .settings
        .allowed_origins
        .iter()
        .any(|o| o == origin)
        .then_some(origin)
}

fn add_cors(req: &HttpRequest, tenant: &Tenant, response: &mut HttpResponse) {
    if let Some(origin) = allowed_origin(req, tenant) {
        let headers = response.headers_mut();
        if let Ok(value) = header::HeaderValue::from_str(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::HeaderValue::from_static("location, retry-after"),
        );
        headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    }
}

async fn preflight_default(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    preflight(&req, &state, "default")
}

async fn preflight_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    tenant: web::Path<String>,
) -> HttpResponse {
    preflight(&req, &state, &tenant)
}

/// Answers a CORS preflight: allowed origins may POST JSON; others get no CORS headers.
fn preflight(req: &HttpRequest, state: &AppState, tenant: &str) -> HttpResponse {
    let tenant = match state.tenant(tenant) {
        Ok(tenant) => tenant,
        Err(error) => return error.error_response(),
    };
    let mut response = HttpResponse::NoContent().finish();
    if allowed_origin(req, &tenant).is_some() {
        add_cors(req, &tenant, &mut response);
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::HeaderValue::from_static("POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::HeaderValue::from_static("content-type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            header::HeaderValue::from_static("600"),
        );
    }
    response
}
