//! The emails berth sends a customer, by stable name (tenants override their templates by it).

/// The notice sent when a site is live.
pub const SITE_READY: &str = "site_ready";
/// The notice sent when a paid checkout's name was taken or refused: the customer chooses
/// another on the manage page.
pub const NAME_NEEDED: &str = "name_needed";
/// The notice an operator sends with a new manage token (the old link stopped working).
pub const MANAGE_LINK: &str = "manage_link";
/// Every notice berth sends; tenants may override their templates.
pub const NOTICES: &[&str] = &[SITE_READY, NAME_NEEDED, MANAGE_LINK];
