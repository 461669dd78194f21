//! The emails berth sends a customer, by stable name (tenants override their templates by it).

/// The notice sent when a site is live.
pub const SITE_READY: &str = "site_ready";
/// Every notice berth sends; tenants may override their templates.
pub const NOTICES: &[&str] = &[SITE_READY];
