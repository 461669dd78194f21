//! What every handler shares: the database, settings, tenants, limits and the worker's wake-up.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::adapters::db::Db;
use crate::configuration::{Live, Settings};
use crate::routes::error::ApiError;
use crate::routes::rate_limit::RateLimits;
use crate::services::policy::PolicyEngine;
use crate::services::stripe::ingest::EventWriter;
use crate::services::tenants::{Tenant, Tenants};

/// What handlers share.
pub struct AppState {
    pub db: Db,
    /// The configuration and what is built from it: a reload swaps them.
    pub settings: Live<Settings>,
    pub tenants: Live<Tenants>,
    pub limits: Live<RateLimits>,
    /// Names the emails handlers enqueue (their Message-IDs).
    pub mailer: Live<crate::adapters::mailer::Mailer>,
    pub policies: Arc<PolicyEngine>,
    /// Stores verified Stripe deliveries with group commit.
    pub events: EventWriter,
    /// Wakes the worker when a handler enqueues a job.
    pub wake: Arc<Notify>,
    /// Derives sites' manage tokens.
    pub manage_key: Arc<crate::domain::manage_token::ManageKey>,
}

impl AppState {
    pub fn tenant(&self, name: &str) -> Result<Arc<Tenant>, ApiError> {
        self.tenants.get().find(name).ok_or_else(|| {
            ApiError::not_found(
                "unknown_tenant",
                format!("there is no tenant named {name:?}"),
            )
        })
    }
}
