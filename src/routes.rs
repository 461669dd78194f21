//! HTTP routes of the API listener. The sites listener (customer sites) lives in
//! `runtime::local` and never shares this origin.

mod admin;
mod health;
mod metrics;
pub(crate) mod openapi;
mod params;
pub(crate) mod registry;
mod signup;
mod status;
mod webhooks;

pub use signup::body::parse_with_content_type as parse_signup_body;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::configuration::Settings;
use crate::db::Db;
use crate::error::{extractor_error, ApiError};
use crate::policy::PolicyEngine;
use crate::rate_limit::RateLimits;
use crate::stripe::ingest::EventWriter;
use crate::tenants::{Tenant, Tenants};
use registry::Routes;

/// What handlers share.
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub tenants: Arc<Tenants>,
    pub limits: Arc<RateLimits>,
    pub policies: Arc<PolicyEngine>,
    /// Stores verified Stripe deliveries with group commit.
    pub events: EventWriter,
    /// Wakes the worker when a handler enqueues a job.
    pub wake: Arc<Notify>,
}

impl AppState {
    pub fn tenant(&self, name: &str) -> Result<Arc<Tenant>, ApiError> {
        self.tenants.find(name).ok_or_else(|| {
            ApiError::not_found(
                "unknown_tenant",
                format!("there is no tenant named {name:?}"),
            )
        })
    }
}

/// Every API route, plus JSON errors for actix's extractors and unknown paths.
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(|e, _| extractor_error(e.to_string())))
        .app_data(web::QueryConfig::default().error_handler(|e, _| extractor_error(e.to_string())))
        .app_data(
            web::JsonConfig::default()
                .limit(1024 * 1024)
                .error_handler(|e, _| extractor_error(e.to_string())),
        );
    let mut routes = Routes::serving(cfg);
    every_route(&mut routes);
    routes.finish();
}

/// The one list of the API listener's routes: what [`api`] registers and what
/// `/openapi.json` describes.
fn every_route(routes: &mut Routes) {
    health::routes(routes);
    metrics::routes(routes);
    signup::routes(routes);
    status::routes(routes);
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

/// True when the client would rather have HTML than JSON (a browser).
pub fn prefers_html(req: &HttpRequest) -> bool {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let quality = |wanted: &str| -> f32 {
        accept
            .split(',')
            .filter_map(|part| {
                let mut pieces = part.split(';').map(str::trim);
                let media = pieces.next()?;
                let q = pieces
                    .find_map(|p| p.strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (media.eq_ignore_ascii_case(wanted)).then_some(q)
            })
            .fold(0.0, f32::max)
    };
    let html = quality("text/html");
    html > 0.0 && html >= quality("application/json")
}

/// Reads the whole body, refusing (413) anything over `limit` bytes before buffering it, and
/// (408) a body that takes longer than `server.body_timeout_secs` to arrive.
pub async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let secs = req
        .app_data::<web::Data<AppState>>()
        .map_or(30, |state| state.settings.server.body_timeout_secs);
    tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        read_body(req, payload, limit),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ApiError::RequestTimeout(format!(
            "the request body did not arrive within {secs} s"
        )))
    })
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large =
        || ApiError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "malformed_body",
                format!("cannot read the request body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub fn json_ok<T: serde::Serialize>(status: actix_web::http::StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn browsers_prefer_html_and_api_clients_json() {
        let browser = TestRequest::default()
            .insert_header((
                header::ACCEPT,
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ))
            .to_http_request();
        assert!(prefers_html(&browser));
        let api = TestRequest::default()
            .insert_header((header::ACCEPT, "application/json"))
            .to_http_request();
        assert!(!prefers_html(&api));
        let both = TestRequest::default()
            .insert_header((header::ACCEPT, "text/html;q=0.5, application/json"))
            .to_http_request();
        assert!(!prefers_html(&both));
        assert!(!prefers_html(&TestRequest::default().to_http_request()));
    }
}
