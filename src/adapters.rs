//! Layer 1, the adapters: berth's side of everything outside the process. Each one turns the
//! outside world's protocol into plain calls and values from [`crate::domain`], and knows
//! nothing of the flows that use it.
//!
//! A new DNS provider goes in [`dns`] (implement `DnsProvider`), a new place to run sites in
//! [`runtime`] (implement `Runtime`), a new table in [`db`].

pub mod db;
pub mod dns;
pub mod mailer;
pub mod plugin_host;
pub mod runtime;
pub mod telemetry;
