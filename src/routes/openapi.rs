//! `GET /openapi.json`: the OpenAPI 3 document of the whole HTTP API. Its paths come from the
//! list that registers the routes (`routes::every_route`), so it cannot drift from them.

use actix_web::{get, HttpResponse};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

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

/// What any admin request can get besides its own answers.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum AdminErrors {
    #[response(
        status = 401,
        description = "No token, or a wrong one (`unauthorized`)",
        headers(("WWW-Authenticate" = String, description = "`Bearer`"))
    )]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "A tenant's token, for another tenant's resource or for one that needs the global token (`forbidden`)"
    )]
    Forbidden(ErrorBody),
    #[response(
        status = 429,
        description = "Too many requests with this token, or too many wrong tokens from this address (`rate_limited`)",
        headers(("Retry-After" = u64, description = "Seconds until a request can succeed"))
    )]
    RateLimited(ErrorBody),
    #[response(
        status = 500,
        description = "berth failed on its side (`internal_error`); the cause is logged, not shown"
    )]
    Internal(ErrorBody),
}

/// The signup fields, as one schema per body type: the same fields in each, but a client
/// generated from the document needs a type per content type to choose the encoding.
macro_rules! signup_body {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Serialize, ToSchema)]
        #[schema(example = json!({"name": "my-shop", "email": "ann@example.com", "html": "<h1>Hi</h1>"}))]
        pub struct $name {
            /// A DNS-1035 label of 3 to 63 characters (spaces around it are trimmed), not
            /// reserved by the tenant.
            #[schema(pattern = r"^\s*[a-z][-a-z0-9]{1,61}[a-z0-9]\s*$")]
            name: String,
            /// Where the readiness email goes; never shown on the status page.
            #[schema(format = Email, max_length = 254)]
            email: String,
            /// The page, UTF-8, at most the tenant's `html_max_bytes` (100 KiB by default), not
            /// blank. Required for static sites (the default workload).
            #[schema(min_length = 1, max_length = 102400)]
            html: String,
            /// A plan name (or its price id) from the tenant's `plans`.
            plan: Option<String>,
        }
    };
}

signup_body!(
    SignupJson,
    "A signup as a JSON object (values are strings, or `null` for absent)."
);
signup_body!(SignupForm, "A signup as URL-encoded form fields.");
signup_body!(
    SignupMultipart,
    "A signup as a multipart form; `html` may be sent as a file."
);

/// A Stripe event as Stripe signs and sends it. berth reads the envelope below; other members
/// are kept as they are.
#[derive(serde::Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "evt_1QeXampleCheckout",
    "object": "event",
    "type": "checkout.session.completed",
    "created": 1764547200,
    "livemode": false,
    "api_version": "2025-03-31.basil",
    "data": {"object": {"object": "checkout.session", "client_reference_id": "site_01jd8x3v5c6b7n8m9k0a1s2d3f"}}
}))]
#[allow(dead_code)]
pub struct StripeEventIn {
    /// Stripe's event id.
    #[schema(pattern = r"^evt_[A-Za-z0-9_]{1,255}$")]
    id: String,
    /// The event type, e.g. `checkout.session.completed`.
    #[schema(rename = "type", pattern = r"^[A-Za-z0-9._]{1,128}$")]
    kind: String,
    /// Always `event`.
    object: Option<String>,
    /// When Stripe created it, in Unix seconds.
    #[schema(minimum = 1)]
    created: i64,
    #[serde(default)]
    livemode: bool,
    api_version: Option<String>,
    data: Option<StripeEventData>,
}

#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct StripeEventData {
    /// The object the event is about (a checkout session, an invoice, a subscription…).
    #[schema(value_type = Object)]
    object: serde_json::Value,
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
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "bearer",
            bearer(
                "An admin token: the global one (`server.admin_token`), or a tenant's \
                 (`admin_token` of its `[[tenants]]` entry), which sees only that tenant.",
            ),
        );
        components.add_security_scheme(
            "metrics",
            bearer("`server.metrics_token`, when it is set; `/metrics` is open otherwise."),
        );
    }
}

/// What the signup schemas allow beyond their fields: berth ignores unknown fields, but reads
/// each as one string (a JSON member may also be `null`), so a repeated form field or a JSON
/// member of another type is a `400`; multipart part names must be header-safe. utoipa's
/// attributes can only say "anything" or "nothing" here.
struct SignupExtras;

impl Modify for SignupExtras {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AdditionalProperties, Schema, SchemaType, Type};
        use utoipa::openapi::{ObjectBuilder, RefOr};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, types) in [
            ("SignupJson", vec![Type::String, Type::Null]),
            ("SignupForm", vec![Type::String]),
            ("SignupMultipart", vec![Type::String]),
        ] {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
                let extra = ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter(types))
                    .build();
                object.additional_properties = Some(Box::new(AdditionalProperties::RefOr(
                    RefOr::T(Schema::Object(extra)),
                )));
                if name == "SignupMultipart" {
                    // A part's name travels in a quoted header parameter: printable ASCII but `"`
                    // and `\`.
                    let names = ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(r#"^[ !#-\[\]-~]+$"#))
                        .build();
                    object.property_names = Some(Box::new(Schema::Object(names)));
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "berth",
        description = "Turns a signup or a Stripe payment into a live, isolated customer site.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "The berth that serves this document")),
    // The bodies of responses declared as enums (`IntoResponses`), which utoipa does not collect.
    components(schemas(
        ErrorBody,
        SignupJson,
        SignupForm,
        SignupMultipart,
        StripeEventIn,
        SiteList,
        JobList,
        EventList,
        super::signup::Created,
        super::webhooks::Received
    )),
    modifiers(&BearerAuth, &SignupExtras),
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

/// The document as served. utoipa 5.5 writes a link's `operationId`, `operationRef` and
/// `requestBody` in snake case; they are renamed here.
pub fn document_json() -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi()).expect("the document serialises to JSON");
    let operations = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let responses = operation
            .get_mut("responses")
            .and_then(|r| r.as_object_mut());
        for response in responses.into_iter().flat_map(|r| r.values_mut()) {
            let links = response.get_mut("links").and_then(|l| l.as_object_mut());
            for link in links.into_iter().flat_map(|l| l.values_mut()) {
                let Some(link) = link.as_object_mut() else {
                    continue;
                };
                for (snake, camel) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(value) = link.remove(snake) {
                        link.insert(camel.to_owned(), value);
                    }
                }
            }
        }
    }
    doc
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json")),
)]
#[get("/openapi.json")]
pub(crate) async fn document() -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| document_json().to_string());
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}
