//! Layer 4, the HTTP edge: the API listener's routes, and what every request passes through
//! (client addresses, connection and rate limits, the admin token, the public error shape). The
//! sites listener (customer sites) lives in `adapters::runtime::local` and never shares this
//! origin. A new route goes in the module of its audience (`signup`, `status`, `webhooks`,
//! `admin`) and is listed in its `routes` function; the registry documents it.

mod admin;
pub mod auth;
pub mod client_ip;
pub mod connections;
pub mod cors;
pub mod error;
mod health;
pub(crate) mod manage;
mod metrics;
pub(crate) mod openapi;
mod params;
pub mod rate_limit;
pub(crate) mod registry;
pub mod request;
mod schemas;
mod signup;
pub mod state;
mod status;
mod webhooks;

pub use signup::body::parse_with_content_type as parse_signup_body;

use actix_web::{web, HttpResponse};

use error::{extractor_error, ApiError};
use registry::Routes;

/// Every API route, plus JSON errors for actix's extractors and unknown paths.
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(|e, _| extractor_error(e.to_string())))
        .app_data(web::QueryConfig::default().error_handler(|e, _| extractor_error(e.to_string())))
        .app_data(
            web::JsonConfig::default()
                .limit(1024 * 1024)
                .error_handler(|e, _| extractor_error(e.to_string())),
        );
    cfg.app_data(web::Data::new(openapi::Document(document)));
    let mut routes = Routes::serving(cfg);
    every_route(&mut routes);
    routes.finish();
}

/// The OpenAPI document of every route in [`every_route`], built once.
pub fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut routes = Routes::describing();
        every_route(&mut routes);
        openapi::document_json(routes).to_string()
    })
}

/// The one list of the API listener's routes: what [`api`] registers and what
/// `/openapi.json` describes.
fn every_route(routes: &mut Routes) {
    health::routes(routes);
    metrics::routes(routes);
    signup::routes(routes);
    status::routes(routes);
    manage::routes(routes);
    webhooks::routes(routes);
    admin::routes(routes);
    openapi::routes(routes);
}

/// Every `(METHOD, path)` the API listener serves, read from the list that registers them.
pub fn registered() -> Vec<(String, String)> {
    let mut routes = Routes::describing();
    every_route(&mut routes);
    routes.list()
}

/// The routes a `--worker-only` process still serves: probes and metrics.
pub fn probes(cfg: &mut web::ServiceConfig) {
    let mut routes = Routes::serving(cfg);
    health::routes(&mut routes);
    metrics::routes(&mut routes);
    routes.finish();
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("not_found", "no such endpoint"))
}
