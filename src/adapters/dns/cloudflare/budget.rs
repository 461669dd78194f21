//! How many requests berth may send with one API token.
//!
//! Cloudflare allows 1,200 requests per 5 minutes per token, counted across everything that uses
//! it, and answers `429` (blocking every call for a while) past that. berth keeps well under: one
//! [`Budget`] per token for the whole process, shared by every job and every tenant that uses the
//! token, refilling 1,000 requests per 5 minutes with a burst of 100, so that no 5-minute window
//! sees more than 1,100 requests from this process. A `429` also pauses the token's budget for
//! its `retry-after`, so other jobs wait too instead of prolonging the block.
//!
//! Budgets are keyed by a hash of the token (with a per-process random key), never by the token.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::client::Pause;
use crate::domain::Secret;

/// Requests refilled per [`WINDOW`].
pub const REQUESTS_PER_WINDOW: u32 = 1_000;
/// Requests that may go out at once after a quiet spell.
pub const BURST: u32 = 100;
/// Cloudflare's counting window.
pub const WINDOW: Duration = Duration::from_secs(300);

// GCRA admits at most the burst plus the refill in any window: stay under Cloudflare's 1,200.
const _: () = assert!(BURST + REQUESTS_PER_WINDOW < 1_200);

pub struct Budget {
    limiter: DefaultDirectRateLimiter,
    /// Until when Cloudflare asked this token to stop (a `429` with `retry-after`).
    paused_until: Mutex<Option<Instant>>,
}

impl Budget {
    /// A budget of `per_window` requests per [`WINDOW`] with `burst`.
    pub fn new(per_window: u32, burst: u32) -> Self {
        let period = WINDOW / per_window.max(1);
        let quota = Quota::with_period(period)
            .expect("a non-zero period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"));
        Self {
            limiter: RateLimiter::direct(quota),
            paused_until: Mutex::new(None),
        }
    }

    /// Stops every request with this token until `until` (extends, never shortens, a pause).
    pub fn pause_until(&self, until: Instant) {
        let mut paused = self.paused_until.lock().expect("budget lock");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    /// The pause in force, if any: its end and how long until then.
    fn pause(&self) -> Option<(Instant, Duration)> {
        let paused = self.paused_until.lock().expect("budget lock");
        paused
            .map(|until| (until, until.saturating_duration_since(Instant::now())))
            .filter(|(_, left)| !left.is_zero())
    }

    /// Ends the pause that ended at `until`, unless a later `429` has extended it since.
    fn lift(&self, until: Instant) {
        let mut paused = self.paused_until.lock().expect("budget lock");
        if *paused == Some(until) {
            *paused = None;
        }
    }

    /// Takes one request from the budget, waiting (with `pause`) for at most `max_wait` in all;
    /// `Err` with the wait still needed when that is longer, sending nothing.
    pub async fn acquire(&self, max_wait: Duration, pause: &Pause) -> Result<(), Duration> {
        let mut waited = Duration::ZERO;
        if let Some((until, left)) = self.pause() {
            if left > max_wait {
                return Err(left);
            }
            pause(left).await;
            self.lift(until);
            waited += left;
        }
        loop {
            match self.limiter.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    if waited + wait > max_wait {
                        return Err(wait);
                    }
                    metrics::counter!("berth_cloudflare_budget_waits_total").increment(1);
                    pause(wait).await;
                    waited += wait;
                }
            }
        }
    }
}

/// The process-wide budget of `token`, created on first use.
pub fn for_token(token: &Secret) -> Arc<Budget> {
    static KEYS: LazyLock<std::hash::RandomState> = LazyLock::new(std::hash::RandomState::new);
    static BUDGETS: LazyLock<Mutex<HashMap<u64, Arc<Budget>>>> = LazyLock::new(Default::default);
    let key = KEYS.hash_one(token.expose());
    BUDGETS
        .lock()
        .expect("budgets lock")
        .entry(key)
        .or_insert_with(|| Arc::new(Budget::new(REQUESTS_PER_WINDOW, BURST)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_pause() -> Pause {
        Arc::new(|_| Box::pin(async {}))
    }

    #[test]
    fn one_token_has_one_budget_across_tenants() {
        let a = for_token(&Secret::new("token-one"));
        let b = for_token(&Secret::new("token-one"));
        let c = for_token(&Secret::new("token-two"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[tokio::test]
    async fn an_exhausted_budget_refuses_rather_than_waits_past_the_limit() {
        let budget = Budget::new(1, 2);
        let pause = no_pause();
        assert!(budget.acquire(Duration::ZERO, &pause).await.is_ok());
        assert!(budget.acquire(Duration::ZERO, &pause).await.is_ok());
        let wait = budget.acquire(Duration::ZERO, &pause).await.unwrap_err();
        assert!(wait > Duration::from_secs(200), "{wait:?}");
    }

    #[tokio::test]
    async fn a_pause_holds_every_request_until_it_ends() {
        let budget = Budget::new(1_000, 100);
        budget.pause_until(Instant::now() + Duration::from_secs(300));
        let wait = budget
            .acquire(Duration::from_secs(60), &no_pause())
            .await
            .unwrap_err();
        assert!(wait > Duration::from_secs(60), "{wait:?}");
        budget.pause_until(Instant::now());
        let (_, left) = budget.pause().unwrap();
        assert!(left > Duration::from_secs(200), "never shortened");
    }
}
