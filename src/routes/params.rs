//! The path parameters of the API, each with the constraint the document gives it. Ids and plugin
//! names are read into their domain types here, so handlers get a `SiteId`, not a string to
//! check. A value outside the pattern never names anything, so it gets the same `404` as an
//! unknown one (or, for a plugin name, the `400` of a malformed one).
//!
//! An extractor's error is answered before the handler runs. A handler that must answer
//! something else first (a `409`, say) takes `Result<…, ApiError>` and uses `?` where the value
//! is needed.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::error::PathError;
use actix_web::{FromRequest, HttpRequest};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::domain::{EventId, JobId, PluginName, SiteId};
use crate::routes::error::ApiError;

/// `{tenant}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// A tenant's name (a DNS-1035 label).
    #[param(pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", example = "default")]
    pub tenant: String,
}

/// `{tenant}` and a site's `{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantSitePath {
    /// A tenant's name (a DNS-1035 label).
    #[param(pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", example = "default")]
    pub tenant: String,
    /// A site's id: `site_` and 26 base32 characters.
    #[param(
        pattern = r"^site_[0-9a-hjkmnp-tv-z]{26}$",
        example = "site_01jd8x3v5c6b7n8m9k0a1s2d3f"
    )]
    pub id: String,
}

/// A plugin's `{name}` (the path's `{tenant}` is [`TenantPath`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PluginNamePath {
    /// The plugin's name within its tenant (a DNS-1035 label).
    #[param(
        value_type = String,
        pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
        example = "digit-limit"
    )]
    pub name: PluginName,
}

/// A site's `{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SiteIdPath {
    /// A site's id: `site_` and 26 base32 characters.
    #[param(
        value_type = String,
        pattern = r"^site_[0-9a-hjkmnp-tv-z]{26}$",
        example = "site_01jd8x3v5c6b7n8m9k0a1s2d3f"
    )]
    pub id: SiteId,
}

/// A job's `{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobIdPath {
    /// A job's id: `job_` and 26 base32 characters.
    #[param(
        value_type = String,
        pattern = r"^job_[0-9a-hjkmnp-tv-z]{26}$",
        example = "job_01jd8x3v5c6b7n8m9k0a1s2d3f"
    )]
    pub id: JobId,
}

/// A stored Stripe event's `{id}` (berth's, not Stripe's).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventIdPath {
    /// berth's event id: `event_` and 26 base32 characters.
    #[param(
        value_type = String,
        pattern = r"^event_[0-9a-hjkmnp-tv-z]{26}$",
        example = "event_01jd8x3v5c6b7n8m9k0a1s2d3f"
    )]
    pub id: EventId,
}

/// The answer for a site id that names no site (or none the caller may see).
pub fn site_not_found(id: &str) -> ApiError {
    ApiError::not_found("site_not_found", format!("no site with id {id:?}"))
}

/// The answer for a job id that names no job.
pub fn job_not_found(id: &str) -> ApiError {
    ApiError::not_found("job_not_found", format!("no job with id {id:?}"))
}

/// The answer for an event id that names no stored event.
pub fn event_not_found(id: &str) -> ApiError {
    ApiError::not_found("event_not_found", format!("no event with id {id:?}"))
}

fn plugin_name(name: &str) -> Result<PluginName, ApiError> {
    PluginName::parse(name)
        .map_err(|e| ApiError::bad_request("invalid_name", format!("plugin name {e}")))
}

/// The segments berth's admin routes name, decoded as `web::Path` decodes them.
#[derive(Deserialize)]
struct Segments {
    tenant: Option<String>,
    id: Option<String>,
    name: Option<String>,
}

/// The path's `{tenant}`, `{id}` or `{name}` segment (`""` if the route has none).
pub fn segment(req: &HttpRequest, name: &str) -> Result<String, ApiError> {
    let segments: Segments = req
        .match_info()
        .load()
        .map_err(|e| ApiError::bad_request("bad_request", PathError::Deserialize(e).to_string()))?;
    let value = match name {
        "tenant" => segments.tenant,
        "id" => segments.id,
        "name" => segments.name,
        _ => None,
    };
    Ok(value.unwrap_or_default())
}

/// Each typed path parameter reads its segment with its parser.
macro_rules! from_segment {
    ($($path:ident { $field:ident } = $parse:expr;)+) => {$(
        impl FromRequest for $path {
            type Error = ApiError;
            type Future = Ready<Result<Self, ApiError>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let parse: fn(&str) -> Result<_, ApiError> = $parse;
                ready(segment(req, stringify!($field)).and_then(|raw| {
                    Ok(Self {
                        $field: parse(&raw)?,
                    })
                }))
            }
        }
    )+};
}

from_segment! {
    PluginNamePath { name } = plugin_name;
    SiteIdPath { id } = |raw| SiteId::parse(raw).map_err(|_| site_not_found(raw));
    JobIdPath { id } = |raw| JobId::parse(raw).map_err(|_| job_not_found(raw));
    EventIdPath { id } = |raw| EventId::parse(raw).map_err(|_| event_not_found(raw));
}
