//! berth: turns a signup or a Stripe payment into a live, isolated customer site.
//!
//! The modules are layers, and each one imports only from the layers below it (the `layers` test
//! checks this on every build, so it stays that way):
//!
//! | layer | modules | what lives there |
//! |---|---|---|
//! | 0 | [`domain`], [`configuration`], [`error`], [`faults`] | plain data and rules: names, states, job payloads, settings, error kinds |
//! | 1 | [`adapters`] | the outside world: the database, DNS providers, runtimes, SMTP, the Wasm host, telemetry |
//! | 2 | [`services`] | the flows: the signup pipeline, policy, Stripe processing, tenants |
//! | 3 | [`jobs`] | the durable background work that carries the flows out |
//! | 4 | [`routes`], [`cli`] | the edges: HTTP handlers and the command line |
//! | 5 | [`startup`] | wires everything into one running program |
//!
//! A signup: `routes::signup` → `services::signup` (validation, `services::policy` →
//! `adapters::plugin_host`) → `adapters::db` (site + `Provision` job in one transaction) →
//! `jobs::provision` → `adapters::runtime`, `adapters::dns`, `adapters::mailer`.
//! A Stripe event: `routes::webhooks` → `services::stripe::ingest` (stored with a
//! `ProcessStripeEvent` job) → `jobs::stripe_event` → `services::stripe::process` → site rows and
//! follow-up jobs in `adapters::db`.
#![forbid(unsafe_code)]

pub mod configuration;
pub mod domain;
pub mod error;
pub mod faults;

pub mod adapters;

pub mod services;

pub mod jobs;

pub mod cli;
pub mod routes;

pub mod startup;
