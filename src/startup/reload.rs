//! `SIGHUP`: read the configuration again and swap what a running process can take (tenants
//! with their templates, plans and policies, rate limits, email, job timings, tokens), keeping
//! everything running on any error.

use std::sync::Arc;

use crate::adapters::mailer::Mailer;
use crate::configuration::{keep_restart_only, restart_only, Live, RuntimeKind, Settings, Source};
use crate::routes::rate_limit::RateLimits;
use crate::services::policy::PolicyEngine;
use crate::services::tenants::Tenants;

/// Swaps a running application's configuration.
#[derive(Clone)]
pub struct Reloader {
    db: crate::adapters::db::Db,
    /// The settings as loaded, before berth filled in the ports it was given: what a changed
    /// file is compared with.
    configured: Live<Settings>,
    pub(super) settings: Live<Settings>,
    pub(super) tenants: Live<Tenants>,
    pub(super) limits: Live<RateLimits>,
    pub(super) mailer: Live<Mailer>,
    policies: Arc<PolicyEngine>,
    /// Whether this process opened the sites listener (a tenant on the local runtime needs it).
    serves_sites: bool,
    /// Whether this process serves the API (else there are no sites to serve).
    serves_api: bool,
}

impl Reloader {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        db: crate::adapters::db::Db,
        configured: Settings,
        settings: Live<Settings>,
        tenants: Live<Tenants>,
        limits: Live<RateLimits>,
        mailer: Live<Mailer>,
        policies: Arc<PolicyEngine>,
        serves_sites: bool,
        serves_api: bool,
    ) -> Self {
        Self {
            db,
            configured: Live::new(Arc::new(configured)),
            settings,
            tenants,
            limits,
            mailer,
            policies,
            serves_sites,
            serves_api,
        }
    }

    /// Takes `new` unless some part of it cannot be built (nothing changes then). Returns the
    /// keys that changed but need a restart; their running values stay.
    pub async fn reload(&self, new: Settings) -> anyhow::Result<Vec<&'static str>> {
        let configured = self.configured.get();
        let restart = restart_only(&configured, &new);
        let running = self.settings.get();
        let settings = keep_restart_only(&running, new.clone());
        if self.serves_api && !self.serves_sites {
            if let Some(local) = settings
                .tenants
                .iter()
                .find(|t| t.runtime == RuntimeKind::Local)
            {
                anyhow::bail!(
                    "tenant {} is on the local runtime, whose sites listener this process did not open; restart berth to open it",
                    local.name
                );
            }
        }
        let tenants = self.tenants.get().rebuild(&settings)?;
        let mailer = Mailer::new(&settings.email)?;
        self.policies.apply_configured(&settings).await?;
        let limits_changed = serde_json::to_value(&running.rate_limits)?
            != serde_json::to_value(&settings.rate_limits)?;
        if limits_changed {
            self.limits
                .set(Arc::new(RateLimits::new(&settings.rate_limits)));
        }
        self.tenants.set(Arc::new(tenants));
        self.mailer.set(Arc::new(mailer));
        self.settings.set(Arc::new(settings));
        self.configured
            .set(Arc::new(keep_restart_only(&configured, new)));
        // Live sites the old configuration could not build a spec for get one now.
        if let Err(error) =
            crate::services::rollouts::pin_unpinned(&self.db, &self.tenants.get()).await
        {
            tracing::warn!(
                error = format!("{error:#}"),
                "could not record the workload spec of live sites after the reload"
            );
        }
        Ok(restart)
    }

    /// Reads `source` again and reloads, logging what happened (the keys, never their values).
    pub async fn reload_from(&self, source: &Source) {
        let new = match source.load() {
            Ok(new) => new,
            Err(error) => {
                tracing::error!(error = %error, "configuration reload refused: the file is invalid; the running configuration stays");
                return;
            }
        };
        let redactor = new.clone();
        match self.reload(new).await {
            Ok(restart) => {
                tracing::info!("configuration reloaded");
                if !restart.is_empty() {
                    tracing::warn!(keys = ?restart, "these keys changed but only take effect when berth restarts; their running values stay");
                }
            }
            Err(error) => {
                let error = redactor.redact(&self.settings.get().redact(&format!("{error:#}")));
                tracing::error!(
                    error,
                    "configuration reload refused; the running configuration stays"
                );
            }
        }
    }
}
