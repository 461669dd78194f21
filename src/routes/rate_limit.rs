//! Keyed rate limits (governor): signup per client IP, per email and per tenant; Stripe webhooks
//! per tenant; admin API per token; and, per client IP, failures only: deliveries whose
//! signature does not verify and admin requests with a wrong token. Limits are per process (per
//! replica).
//!
//! Memory stays bounded under a flood of distinct keys: idle keys (whose bucket is full again)
//! are evicted when a limiter reaches `max_keys`, and if a flood keeps every key busy the
//! limiter starts afresh rather than grow (counted in `berth_rate_limit_resets_total`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::configuration::{Rate, RateLimitSettings};
use crate::routes::error::ApiError;

pub struct KeyedLimiter {
    name: &'static str,
    quota: Quota,
    max_keys: usize,
    limiter: RwLock<Arc<DefaultKeyedRateLimiter<String>>>,
}

impl KeyedLimiter {
    pub fn new(name: &'static str, rate: &Rate, max_keys: usize) -> Self {
        let interval = rate
            .replenish_interval()
            .expect("rates are validated at load");
        let burst = NonZeroU32::new(rate.burst).expect("burst is validated at load");
        let quota = Quota::with_period(interval)
            .expect("non-zero period")
            .allow_burst(burst);
        Self {
            name,
            quota,
            max_keys: max_keys.max(1),
            limiter: RwLock::new(Arc::new(RateLimiter::keyed(quota))),
        }
    }

    fn current(&self) -> Arc<DefaultKeyedRateLimiter<String>> {
        self.limiter.read().expect("limiter lock").clone()
    }

    /// Counts one request for `key`; `Err` is a ready-to-send `429` with `Retry-After`.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let mut limiter = self.current();
        if limiter.len() >= self.max_keys {
            limiter.retain_recent();
            if limiter.len() >= self.max_keys {
                let fresh = Arc::new(RateLimiter::keyed(self.quota));
                *self.limiter.write().expect("limiter lock") = fresh.clone();
                metrics::counter!("berth_rate_limit_resets_total", "limiter" => self.name)
                    .increment(1);
                tracing::warn!(
                    limiter = self.name,
                    max_keys = self.max_keys,
                    "rate limiter full of busy keys; starting afresh"
                );
                limiter = fresh;
            }
        }
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                metrics::counter!("berth_rate_limited_total", "limiter" => self.name).increment(1);
                Err(self.too_many(wait))
            }
        }
    }

    /// The `429` for a client that may retry after `wait`.
    fn too_many(&self, wait: Duration) -> ApiError {
        let retry_after_secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        ApiError::TooManyRequests {
            message: format!(
                "too many requests ({}); retry in {retry_after_secs} s",
                self.describe()
            ),
            retry_after_secs,
        }
    }

    fn describe(&self) -> &'static str {
        match self.name {
            "signup_per_ip" => "signups from this address",
            "signup_per_email" => "signups for this email address",
            "signup_per_tenant" => "signups for this site builder",
            "stripe_per_tenant" => "webhook deliveries for this tenant",
            "admin_per_token" => "admin requests with this token",
            "stripe_invalid_per_ip" => "webhook deliveries with a bad signature from this address",
            "admin_failures_per_ip" => "failed admin authentications from this address",
            _ => "requests",
        }
    }

    /// Drops idle keys and frees their memory; run periodically.
    pub fn sweep(&self) {
        let limiter = self.current();
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }

    pub fn len(&self) -> usize {
        self.current().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A limit on failures: only failures are charged, and a key over its budget is refused until
/// its bucket refills, before anything is checked (so a guess made while refused cannot
/// succeed). The refused keys are bounded like the limiter's.
pub struct FailureLimiter {
    limiter: KeyedLimiter,
    refused: Mutex<HashMap<String, Instant>>,
}

impl FailureLimiter {
    pub fn new(name: &'static str, rate: &Rate, max_keys: usize) -> Self {
        Self {
            limiter: KeyedLimiter::new(name, rate, max_keys),
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// `Err` (a `429`) while `key` is refused for too many failures.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let mut refused = self.refused.lock().expect("refused lock");
        let Some(until) = refused.get(key).copied() else {
            return Ok(());
        };
        let now = Instant::now();
        if until <= now {
            refused.remove(key);
            return Ok(());
        }
        let wait = until - now;
        metrics::counter!("berth_rate_limited_total", "limiter" => self.limiter.name).increment(1);
        Err(self.limiter.too_many(wait))
    }

    /// Charges one failure to `key`; `Err` (a `429`) when it went over the budget, from which
    /// moment the key is refused until its bucket refills.
    pub fn fail(&self, key: &str) -> Result<(), ApiError> {
        let error = match self.limiter.check(key) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = &error
        {
            let mut refused = self.refused.lock().expect("refused lock");
            if refused.len() >= self.limiter.max_keys {
                let now = Instant::now();
                refused.retain(|_, until| *until > now);
                if refused.len() >= self.limiter.max_keys {
                    refused.clear();
                }
            }
            let until = Instant::now() + Duration::from_secs(*retry_after_secs);
            refused.insert(key.to_owned(), until);
        }
        Err(error)
    }

    fn sweep(&self) {
        self.limiter.sweep();
        let now = Instant::now();
        let mut refused = self.refused.lock().expect("refused lock");
        refused.retain(|_, until| *until > now);
        refused.shrink_to_fit();
    }
}

pub struct RateLimits {
    pub signup_per_ip: KeyedLimiter,
    pub signup_per_email: KeyedLimiter,
    pub signup_per_tenant: KeyedLimiter,
    pub stripe_per_tenant: KeyedLimiter,
    pub admin_per_token: KeyedLimiter,
    pub stripe_invalid_per_ip: FailureLimiter,
    pub admin_failures_per_ip: FailureLimiter,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let max = settings.max_keys;
        Self {
            signup_per_ip: KeyedLimiter::new("signup_per_ip", &settings.signup_per_ip, max),
            signup_per_email: KeyedLimiter::new(
                "signup_per_email",
                &settings.signup_per_email,
                max,
            ),
            signup_per_tenant: KeyedLimiter::new(
                "signup_per_tenant",
                &settings.signup_per_tenant,
                max,
            ),
            stripe_per_tenant: KeyedLimiter::new(
                "stripe_per_tenant",
                &settings.stripe_per_tenant,
                max,
            ),
            admin_per_token: KeyedLimiter::new("admin_per_token", &settings.admin_per_token, max),
            stripe_invalid_per_ip: FailureLimiter::new(
                "stripe_invalid_per_ip",
                &settings.stripe_invalid_per_ip,
                max,
            ),
            admin_failures_per_ip: FailureLimiter::new(
                "admin_failures_per_ip",
                &settings.admin_failures_per_ip,
                max,
            ),
        }
    }

    pub fn sweep(&self) {
        for limiter in [
            &self.signup_per_ip,
            &self.signup_per_email,
            &self.signup_per_tenant,
            &self.stripe_per_tenant,
            &self.admin_per_token,
        ] {
            limiter.sweep();
        }
        self.stripe_invalid_per_ip.sweep();
        self.admin_failures_per_ip.sweep();
    }
}

/// The key for a client address: the address itself for IPv4, the /64 network for IPv6 (one
/// subscriber usually holds a whole /64).
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_limited_after_its_burst_with_a_retry_after() {
        let limiter = KeyedLimiter::new("signup_per_ip", &Rate::per_minute(1, 2), 100);
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        match limiter.check("a") {
            Err(ApiError::TooManyRequests {
                retry_after_secs, ..
            }) => {
                assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check("b").is_ok(), "other keys are unaffected");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_distinct_keys() {
        let max_keys = 1_000;
        // A slow rate: every flooded key stays busy, so eviction alone cannot keep up.
        let limiter = KeyedLimiter::new("signup_per_ip", &Rate::per_hour(1, 1), max_keys);
        for i in 0..200_000u32 {
            let _ = limiter.check(&format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
            assert!(
                limiter.len() <= max_keys,
                "limiter grew to {} keys",
                limiter.len()
            );
        }
    }

    #[test]
    fn idle_keys_are_evicted_before_a_reset() {
        let limiter = KeyedLimiter::new("signup_per_ip", &Rate::per_second(1_000_000, 1), 10);
        for i in 0..10 {
            limiter.check(&format!("k{i}")).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        limiter.check("busy").unwrap();
        assert!(limiter.len() <= 2, "idle keys were kept: {}", limiter.len());
    }

    #[test]
    fn a_failure_limit_charges_only_failures_and_then_refuses_before_checking() {
        let limiter = FailureLimiter::new("admin_failures_per_ip", &Rate::per_hour(1, 2), 100);
        for _ in 0..10 {
            assert!(limiter.check("a").is_ok(), "successes are never charged");
        }
        assert!(limiter.fail("a").is_ok());
        assert!(limiter.fail("a").is_ok());
        assert!(limiter.check("a").is_ok(), "still within the budget");
        assert!(matches!(
            limiter.fail("a"),
            Err(ApiError::TooManyRequests { .. })
        ));
        match limiter.check("a") {
            Err(ApiError::TooManyRequests {
                retry_after_secs, ..
            }) => assert!((1..=3600).contains(&retry_after_secs), "{retry_after_secs}"),
            other => panic!("a key over its failure budget was let through: {other:?}"),
        }
        assert!(limiter.check("b").is_ok(), "other keys are unaffected");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_eq!(ip_key("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
    }
}
