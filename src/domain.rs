//! Domain types. Each has a private field and one fallible constructor: once a value has one of
//! these types it is valid, and nothing downstream checks it again.

mod email_address;
mod ids;
mod names;
mod site_state;

pub use email_address::EmailAddress;
pub use ids::{EventId, JobId, SiteId};
pub use names::{validate_base_domain, Hostname, PluginName, SiteName, TenantName};
pub use site_state::SiteState;
