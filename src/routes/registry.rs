//! The one list of the API's routes. Each route module hands its handlers to [`Routes::add`],
//! which registers the handler with actix and records its path, methods, operation and schemas
//! for the OpenAPI document; the document is built by running the same list without actix. So a
//! route cannot be served without being documented, nor documented without being served.
//!
//! Handlers carry actix's route attribute (`#[get("/healthz")]`) under `#[utoipa::path]`, which
//! reads its path and method from it: each path is written once.

use std::collections::BTreeMap;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::web;
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::RefOr;

use crate::routes::error::ApiError;

/// What a handler must be to join the list: an actix service that describes itself.
pub trait Route:
    HttpServiceFactory
    + utoipa::Path
    + utoipa::__dev::SchemaReferences
    + for<'t> utoipa::__dev::Tags<'t>
    + 'static
{
}

impl<T> Route for T where
    T: HttpServiceFactory
        + utoipa::Path
        + utoipa::__dev::SchemaReferences
        + for<'t> utoipa::__dev::Tags<'t>
        + 'static
{
}

/// Registers routes (when given actix's configuration) and records what the document says of
/// them.
#[derive(Default)]
pub struct Routes<'a> {
    cfg: Option<&'a mut web::ServiceConfig>,
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
    /// Each path's methods, in the order they were added.
    methods: BTreeMap<String, Vec<HttpMethod>>,
}

impl<'a> Routes<'a> {
    /// Routes that register with actix as they are added.
    pub fn serving(cfg: &'a mut web::ServiceConfig) -> Self {
        Self {
            cfg: Some(cfg),
            ..Self::default()
        }
    }

    /// Routes that are only described (for the document and its tests).
    pub fn describing() -> Self {
        Self::default()
    }

    pub fn add<R: Route>(&mut self, route: R) -> &mut Self {
        let path = R::path();
        let methods = R::methods();
        let mut operation = R::operation();
        // An operation that names no security scheme is public, and says so.
        operation
            .security
            .get_or_insert_with(|| vec![SecurityRequirement::default()]);
        let tags = <R as utoipa::__dev::Tags>::tags();
        if !tags.is_empty() {
            operation
                .tags
                .get_or_insert_with(Vec::new)
                .extend(tags.iter().map(ToString::to_string));
        }
        R::schemas(&mut self.schemas);
        self.paths
            .add_path_operation(&path, methods.clone(), operation);
        self.methods.entry(path).or_default().extend(methods);
        if let Some(cfg) = self.cfg.as_deref_mut() {
            cfg.service(route);
        }
        self
    }

    /// Every (method, path) added, methods in upper case.
    pub fn list(&self) -> Vec<(String, String)> {
        self.methods
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .iter()
                    .map(move |m| (method_name(m).to_owned(), path.clone()))
            })
            .collect()
    }

    /// The document's paths and the schemas they refer to.
    pub fn into_parts(self) -> (Paths, Vec<(String, RefOr<Schema>)>) {
        (self.paths, self.schemas)
    }

    /// After the last route: any other method on a known path gets `405` with `Allow` listing
    /// the methods it has. (actix tries each path's routes first, by method, then this one.)
    pub fn finish(&mut self) {
        let Some(cfg) = self.cfg.as_deref_mut() else {
            return;
        };
        for (path, methods) in &self.methods {
            let mut names: Vec<&str> = methods.iter().map(method_name).collect();
            names.sort_unstable();
            names.dedup();
            let allow = names.join(", ");
            cfg.service(web::resource(path.as_str()).to(move || {
                let allow = allow.clone();
                async move { Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed(allow)) }
            }));
        }
    }
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => Method::GET.as_str(),
        HttpMethod::Put => Method::PUT.as_str(),
        HttpMethod::Post => Method::POST.as_str(),
        HttpMethod::Delete => Method::DELETE.as_str(),
        HttpMethod::Options => Method::OPTIONS.as_str(),
        HttpMethod::Head => Method::HEAD.as_str(),
        HttpMethod::Patch => Method::PATCH.as_str(),
        HttpMethod::Trace => Method::TRACE.as_str(),
    }
}

/// Declares twin routes, tenant `default`'s short path and its `/t/{tenant}/…` twin, with one
/// body and one OpenAPI description (`#[utoipa::path(…)]` without its `params` and
/// `responses`, which come next). Each route keeps its own route attribute, doc comment (its
/// summary, written under the route) and name (its operation id), and may add responses of its
/// own after `+`. The twin's
/// parameters start with `{tenant}`. The body sees the tenant's name as the first identifier
/// of `async fn(…)`, a `&str`.
macro_rules! twin_routes {
    (
        #[utoipa::path($($description:tt)*)]
        $(params($($param:path),+ $(,)?);)?
        responses($($response:tt)*);
        #[$default_method:ident($default_route:literal)]
        $(#[doc = $default_doc:literal])*
        $default:ident $(+ responses($($default_response:tt)*))?;
        #[$twin_method:ident($twin_route:literal)]
        $(#[doc = $twin_doc:literal])*
        $twin:ident $(+ responses($($twin_response:tt)*))?;
        async fn($tenant:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $out:ty $body:block
    ) => {
        $(#[doc = $default_doc])*
        #[utoipa::path(
            $(params($($param),+),)?
            responses($($($default_response)*)? $($response)*),
            $($description)*
        )]
        #[$default_method($default_route)]
        pub(crate) async fn $default($($arg: $ty),*) -> $out {
            let $tenant: &str = "default";
            $body
        }

        $(#[doc = $twin_doc])*
        #[utoipa::path(
            params(crate::routes::params::TenantPath $($(, $param)+)?),
            responses($($($twin_response)*)? $($response)*),
            $($description)*
        )]
        #[$twin_method($twin_route)]
        pub(crate) async fn $twin(
            $($arg: $ty,)*
            path: ::actix_web::web::Path<crate::routes::params::TenantPath>,
        ) -> $out {
            let $tenant: &str = &path.tenant;
            $body
        }
    };
}
pub(crate) use twin_routes;
