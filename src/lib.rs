//! berth: turns a signup or a Stripe payment into a live, isolated customer site.
#![forbid(unsafe_code)]

pub mod auth;
pub mod builtin_plugins;
pub mod cli;
pub mod client_ip;
pub mod configuration;
pub mod connections;
pub mod db;
pub mod dns;
pub mod domain;
pub mod error;
pub mod faults;
pub mod jobs;
pub mod mailer;
pub mod plugin_cli;
pub mod plugin_host;
pub mod policy;
pub mod rate_limit;
pub mod routes;
pub mod runtime;
pub mod secret;
pub mod signup;
pub mod startup;
pub mod stripe;
pub mod telemetry;
pub mod tenants;
