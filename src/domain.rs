//! Layer 0, the domain: the values berth reasons about, with no I/O. Each validated type has a
//! private field and one fallible constructor: once a value has one of these types it is valid,
//! and nothing downstream checks it again. A new kind of background job starts here, in [`job`].

mod email_address;
mod hook;
mod ids;
pub mod job;
pub mod manage_token;
mod names;
pub mod notice;
pub mod quantity;
mod record_type;
pub mod secret;
mod states;
pub mod whole_number;

pub use email_address::EmailAddress;
pub use hook::Hook;
pub use ids::{EventId, JobId, RolloutId, SiteId};
pub use names::{validate_base_domain, Hostname, PluginName, SiteName, TenantName};
pub use record_type::RecordType;
pub use secret::Secret;
pub use states::{Author, JobState, RolloutSiteState, RolloutState, SiteState, VersionState};
