//! `GET /openapi.json`: the OpenAPI 3 document of the whole HTTP API. Its paths come from the
//! list that registers the routes (`routes::every_route`), so it cannot drift from them.

use actix_web::{get, HttpResponse};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::admin;
use super::registry::Routes;
use crate::db::jobs::JobRow;
use crate::db::stripe_events::StripeEventRow;
use crate::error::{FieldError, PolicyReason};

pub fn routes(routes: &mut Routes) {
    routes.add(document);
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

/// The whole document: the parts declared here, and every registered route with the schemas
/// it refers to.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let mut routes = Routes::describing();
    super::every_route(&mut routes);
    let (paths, schemas) = routes.into_parts();
    doc.paths = paths;
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    doc
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(tag = "operations", responses((status = 200, description = "OpenAPI 3 document")))]
#[get("/openapi.json")]
pub(crate) async fn document() -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_string(&openapi()).expect("the document serialises to JSON")
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}
