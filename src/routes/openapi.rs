//! `GET /openapi.json`: the OpenAPI 3 document of the whole HTTP API, generated from the
//! handlers' annotations so it cannot drift from the routes.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{admin, health, metrics, signup, status, webhooks};
use crate::db::jobs::JobRow;
use crate::db::stripe_events::StripeEventRow;
use crate::error::{FieldError, PolicyReason};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(document);
}

/// Every error: `{"error": {"code", "message", …}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// Stable machine-readable code, e.g. `name_taken`.
    code: String,
    /// What went wrong, for people.
    message: String,
    /// With `invalid_fields`: each field that failed built-in validation.
    fields: Option<Vec<FieldError>>,
    /// With `policy_rejected`: each plugin's reason.
    reasons: Option<Vec<PolicyReason>>,
}

/// A signup, as form fields or a JSON object.
#[derive(Serialize, ToSchema)]
pub struct SignupIn {
    /// DNS-1035 label, 3–63 characters, not reserved by the tenant.
    name: String,
    email: String,
    /// UTF-8, at most the tenant's `html_max_bytes`; required for static sites. In a multipart
    /// form it may be a file.
    html: Option<String>,
    /// A plan name (or its price id) from the tenant's `plans`.
    plan: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SiteList {
    sites: Vec<admin::sites::SiteOut>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    jobs: Vec<JobRow>,
    backlog: crate::db::jobs::Backlog,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    events: Vec<StripeEventRow>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "berth", description = "Turns a signup or a Stripe payment into a live, isolated customer site."),
    paths(
        signup::signup_default,
        signup::signup_tenant,
        status::status,
        webhooks::stripe_default,
        webhooks::stripe_tenant,
        health::healthz,
        health::readyz,
        metrics::render,
        document,
        admin::sites::list,
        admin::sites::get,
        admin::sites::retry,
        admin::sites::suspend,
        admin::sites::resume,
        admin::sites::remove,
        admin::jobs::list,
        admin::jobs::retry,
        admin::plugins::upload,
        admin::plugins::list,
        admin::plugins::get,
        admin::plugins::remove,
        admin::plugins::test,
        admin::policies::list,
        admin::policies::replace,
        admin::events::list,
        admin::events::get,
        admin::events::replay,
    ),
    components(schemas(ErrorBody, SignupIn, SiteList, JobList, EventList)),
    modifiers(&BearerAuth),
    tags(
        (name = "signup", description = "Public: customers sign up and watch their site come up"),
        (name = "webhooks", description = "Public: Stripe posts signed events"),
        (name = "admin", description = "Operators, with a bearer token (global, or per tenant)"),
        (name = "plugins", description = "Operators: WebAssembly policy plugins and their bindings"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

/// The OpenAPI 3 document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3 document")))]
#[get("/openapi.json")]
pub(crate) async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
