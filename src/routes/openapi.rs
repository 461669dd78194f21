//! `GET /openapi.json`: the OpenAPI 3 document of the whole HTTP API. Its paths come from the
//! list that registers the routes (`routes::every_route`, handed in as a describing
//! [`Routes`]), so it cannot drift from them.

use actix_web::{get, web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::admin;
use super::registry::Routes;
use super::schemas::{
    ContentForm, ContentJson, ContentMultipart, ErrorBody, SignupForm, SignupJson, SignupMultipart,
    StripeEventIn,
};

pub fn routes(routes: &mut Routes) {
    routes.add(document);
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

/// What the signup and content schemas allow beyond their fields (both bodies are read by one
/// reader): berth ignores unknown fields, but reads each as one string (a JSON member may also
/// be `null`), so a repeated form field or a JSON member of another type is a `400`; multipart
/// part names must be header-safe. utoipa's attributes can only say "anything" or "nothing"
/// here.
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
            ("ContentJson", vec![Type::String, Type::Null]),
            ("ContentForm", vec![Type::String]),
            ("ContentMultipart", vec![Type::String]),
        ] {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
                let extra = ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter(types))
                    .build();
                object.additional_properties = Some(Box::new(AdditionalProperties::RefOr(
                    RefOr::T(Schema::Object(extra)),
                )));
                if name.ends_with("Multipart") {
                    // A part's name travels in a quoted header parameter: printable ASCII but `"`
                    // and `\` (an empty name is a part berth ignores, like any unknown one).
                    let names = ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(r#"^[ !#-\[\]-~]*$"#))
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
    // The bodies of responses declared as enums (`IntoResponses`), which utoipa does not collect,
    // and the request bodies `SignupExtras` amends (it runs before the routes add theirs).
    components(schemas(
        ErrorBody,
        SignupJson,
        SignupForm,
        SignupMultipart,
        ContentJson,
        ContentForm,
        ContentMultipart,
        StripeEventIn,
        admin::sites::SiteList,
        admin::jobs::JobList,
        admin::events::EventList,
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

/// Where the served document comes from: `routes::document`, which holds the route list and
/// builds the document on the first request for it, once.
pub struct Document(pub fn() -> &'static str);

/// The whole document: the parts declared here, and every route `routes` describes with the
/// schemas it refers to.
pub fn openapi(routes: Routes) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
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
pub fn document_json(routes: Routes) -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi(routes)).expect("the document serialises to JSON");
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
pub(crate) async fn document(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body((document.0)())
}
