//! `[stripe]`: how long processed Stripe events are kept, and each tenant's own `stripe` table
//! (its webhook signing secrets and their tolerance).

use serde::{Deserialize, Serialize};

use super::error::{invalid, ConfigError};
use crate::domain::Secret;

/// How long processed Stripe events are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeRetentionSettings {
    /// Processed events (applied, ignored, stale, invalid) are deleted this long after they were
    /// processed; rejected and deferred ones stay until an operator acts. 0 keeps them forever.
    pub event_retention_days: u64,
}

impl Default for StripeRetentionSettings {
    fn default() -> Self {
        Self {
            event_retention_days: 90,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSettings {
    pub webhook_secrets: Vec<Secret>,
    pub tolerance_secs: u64,
}

impl Default for StripeSettings {
    fn default() -> Self {
        Self {
            webhook_secrets: Vec::new(),
            tolerance_secs: 300,
        }
    }
}

impl StripeSettings {
    /// A tenant's `stripe` table; `key` gives the key under the tenant.
    pub(super) fn validate(&self, key: impl Fn(&str) -> String) -> Result<(), ConfigError> {
        for (n, secret) in self.webhook_secrets.iter().enumerate() {
            if !secret.expose().starts_with("whsec_") {
                return Err(invalid(
                    key(&format!("stripe.webhook_secrets[{n}]")),
                    "is not a webhook signing secret (those start with whsec_)",
                ));
            }
        }
        if self.tolerance_secs == 0 {
            return Err(invalid(key("stripe.tolerance_secs"), "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::configuration::tests::load;

    #[test]
    fn stripe_settings_are_checked() {
        let err = load(
            "[[tenants]]\nname = \"default\"\nstripe = { webhook_secrets = [\"whsec_ok\", \"sk_live_oops\"] }\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("tenants[0].stripe.webhook_secrets[1]:"),
            "{err}"
        );
        assert!(
            !err.contains("sk_live_oops"),
            "the value is not echoed: {err}"
        );
        let err = load(
            "[[tenants]]\nname = \"default\"\nstripe = { tolerance_secs = 0 }\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("tenants[0].stripe.tolerance_secs:"),
            "{err}"
        );
        let err = load(
            "[[tenants]]\nname = \"default\"\npayment_required = true\ncheckout_url = \"buy.stripe.com/x\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("tenants[0].checkout_url:"), "{err}");
        let ok = load(
            "[[tenants]]\nname = \"default\"\npayment_required = true\ncheckout_url = \"https://buy.stripe.com/x\"\n",
            &[("BERTH_TENANTS__DEFAULT__STRIPE__WEBHOOK_SECRETS", "[\"whsec_a\", \"whsec_b\"]")],
        )
        .unwrap();
        assert_eq!(ok.tenants[0].stripe.webhook_secrets.len(), 2);
    }
}
