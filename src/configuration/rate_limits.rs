//! `[rate_limits]`: how often signups, Stripe deliveries and admin requests may come, per key.

use serde::{Deserialize, Serialize};

use super::error::{invalid, ConfigError};

/// A rate: exactly one of `per_second`, `per_minute`, `per_hour`, plus a `burst`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
    pub burst: u32,
}

impl Rate {
    pub const fn per_second(n: u32, burst: u32) -> Self {
        Self {
            per_second: Some(n),
            per_minute: None,
            per_hour: None,
            burst,
        }
    }
    pub const fn per_minute(n: u32, burst: u32) -> Self {
        Self {
            per_second: None,
            per_minute: Some(n),
            per_hour: None,
            burst,
        }
    }
    pub const fn per_hour(n: u32, burst: u32) -> Self {
        Self {
            per_second: None,
            per_minute: None,
            per_hour: Some(n),
            burst,
        }
    }

    /// The time it takes to earn back one request.
    pub fn replenish_interval(&self) -> Result<std::time::Duration, String> {
        let periods = [
            (self.per_second, 1u64),
            (self.per_minute, 60),
            (self.per_hour, 3600),
        ];
        let given: Vec<_> = periods
            .iter()
            .filter_map(|(n, s)| n.map(|n| (n, *s)))
            .collect();
        match given.as_slice() {
            [(0, _)] => Err("the rate must be above 0".into()),
            [(n, secs)] if self.burst > 0 => Ok(std::time::Duration::from_secs(*secs) / *n),
            [_] => Err("burst must be at least 1".into()),
            _ => Err("give exactly one of per_second, per_minute or per_hour".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub signup_per_ip: Rate,
    pub signup_per_email: Rate,
    pub signup_per_tenant: Rate,
    pub stripe_per_tenant: Rate,
    pub admin_per_token: Rate,
    /// Stripe deliveries whose signature does not verify, per client IP (only those count).
    pub stripe_invalid_per_ip: Rate,
    /// Admin requests with a missing or wrong token, per client IP (only those count); over
    /// it, even a right token is refused until the bucket refills.
    pub admin_failures_per_ip: Rate,
    /// Keys kept per limiter before idle ones are evicted; bounds memory under a flood.
    pub max_keys: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            signup_per_ip: Rate::per_minute(10, 5),
            signup_per_email: Rate::per_hour(5, 3),
            signup_per_tenant: Rate::per_second(50, 100),
            stripe_per_tenant: Rate::per_second(200, 500),
            admin_per_token: Rate::per_second(20, 50),
            stripe_invalid_per_ip: Rate::per_minute(30, 20),
            admin_failures_per_ip: Rate::per_minute(5, 10),
            max_keys: 100_000,
        }
    }
}

impl RateLimitSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let rates = [
            ("signup_per_ip", &self.signup_per_ip),
            ("signup_per_email", &self.signup_per_email),
            ("signup_per_tenant", &self.signup_per_tenant),
            ("stripe_per_tenant", &self.stripe_per_tenant),
            ("admin_per_token", &self.admin_per_token),
            ("stripe_invalid_per_ip", &self.stripe_invalid_per_ip),
            ("admin_failures_per_ip", &self.admin_failures_per_ip),
        ];
        for (name, rate) in rates {
            rate.replenish_interval()
                .map_err(|m| invalid(format!("rate_limits.{name}"), m))?;
        }
        Ok(())
    }
}
