//! Keyed rate limits of the sign-in routes (per client IP, per (account, client IP), per IP for
//! registration): GCRA token buckets from the `governor` crate, kept in memory.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter as Gcra};

/// How many checks pass between two sweeps of idle keys, so the map stays bounded by the keys
/// seen within one refill period rather than growing with every address ever seen.
const SWEEP_EVERY: u64 = 4096;

/// A token bucket per key: `burst` attempts at once, refilled at `per_minute`. In-memory on
/// purpose: a limit per process is enough to make online guessing impractical, and needs no round
/// trip on the sign-in path.
pub struct RateLimiter<C: Clock = DefaultClock> {
    buckets: Gcra<String, DashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    checks: AtomicU64,
}

fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl RateLimiter<DefaultClock> {
    /// `per_minute` attempts a minute with a burst of as many.
    pub fn new(per_minute: u32) -> Self {
        Self::with_burst(per_minute, per_minute)
    }

    pub fn with_burst(per_minute: u32, burst: u32) -> Self {
        Self::with_clock(per_minute, burst, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    pub fn with_clock(per_minute: u32, burst: u32, clock: C) -> Self {
        let quota = Quota::per_minute(at_least_one(per_minute)).allow_burst(at_least_one(burst));
        Self {
            buckets: Gcra::dashmap_with_clock(quota, clock.clone()),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Records an attempt for `key`; `Err(seconds)` when over the limit, with the time to wait
    /// (at least 1, for `Retry-After`).
    pub fn check(&self, key: &str) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.buckets.retain_recent();
            self.buckets.shrink_to_fit();
        }
        self.buckets
            .check_key(&key.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                // Rounded up: a client that waits exactly this long must get through.
                (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn attempts_over_the_burst_are_refused_with_a_wait() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            assert!(limiter.check("ip:1").is_ok());
        }
        let wait = limiter.check("ip:1").unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(
            limiter.check("ip:2").is_ok(),
            "keys are limited independently"
        );
    }

    #[test]
    fn the_bucket_refills_at_the_rate_per_minute() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(30, 30, clock.clone());
        for _ in 0..30 {
            assert!(limiter.check("ip").is_ok());
        }
        assert_eq!(limiter.check("ip"), Err(2), "one token every 2 s");
        clock.advance(Duration::from_secs(2));
        assert!(limiter.check("ip").is_ok());
        assert!(limiter.check("ip").is_err());
    }

    #[test]
    fn a_zero_limit_still_lets_one_attempt_through() {
        let limiter = RateLimiter::new(0);
        assert!(limiter.check("k").is_ok());
        assert!(limiter.check("k").is_err());
    }
}
