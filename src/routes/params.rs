//! The path parameters of the API, each with the constraint the document gives it. A value
//! outside the pattern never names anything, so it gets the same `404` (or `400` for a plugin
//! name) as an unknown one.

use serde::Deserialize;
use utoipa::IntoParams;

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

/// `{tenant}` and a plugin's `{name}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PluginPath {
    /// A tenant's name (a DNS-1035 label).
    #[param(pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", example = "default")]
    pub tenant: String,
    /// The plugin's name within its tenant (a DNS-1035 label).
    #[param(
        pattern = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
        example = "digit-limit"
    )]
    pub name: String,
}

/// A site's `{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SiteIdPath {
    /// A site's id: `site_` and 26 base32 characters.
    #[param(
        pattern = r"^site_[0-9a-hjkmnp-tv-z]{26}$",
        example = "site_01jd8x3v5c6b7n8m9k0a1s2d3f"
    )]
    pub id: String,
}

/// A job's `{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobIdPath {
    /// A job's id: `job_` and 26 base32 characters.
    #[param(
        pattern = r"^job_[0-9a-hjkmnp-tv-z]{26}$",
        example = "job_01jd8x3v5c6b7n8m9k0a1s2d3f"
    )]
    pub id: String,
}

/// A stored Stripe event's `{id}` (berth's, not Stripe's).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventIdPath {
    /// berth's event id: `event_` and 26 base32 characters.
    #[param(
        pattern = r"^event_[0-9a-hjkmnp-tv-z]{26}$",
        example = "event_01jd8x3v5c6b7n8m9k0a1s2d3f"
    )]
    pub id: String,
}
