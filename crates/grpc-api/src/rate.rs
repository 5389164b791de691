//! [`RateLimiter`]: a token bucket per key, per replica, in memory. [`TenantRateLimiter`]
//! keeps one tenant's burst from crowding out the others; [`ClientRateLimiter`] keeps one
//! client address from flooding the server before it has even authenticated.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::hash::Hash;
use std::net::IpAddr;

use connector_domain::TenantId;

/// Buckets kept at most; past it, full (idle) buckets are forgotten.
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Allows each key `per_second` requests a second on average, in bursts of up to `burst`.
#[derive(Debug)]
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// A bucket per tenant.
pub type TenantRateLimiter = RateLimiter<TenantId>;

/// A bucket per client address.
pub type ClientRateLimiter = RateLimiter<IpAddr>;

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter of `per_second` requests a second per key, bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The requests a second it allows.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Takes one request of `key` at `now`: `Err(wait)` when it must wait that long first.
    pub fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled = (bucket.tokens
            + now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second)
            .min(self.burst);
        bucket.at = now;
        if refilled >= 1.0 {
            bucket.tokens = refilled - 1.0;
            Ok(())
        } else {
            bucket.tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.per_second))
        }
    }

    /// [`RateLimiter::check_at`] now.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::parse("t", s).unwrap()
    }

    #[test]
    fn a_burst_is_allowed_then_the_rate_and_each_tenant_has_its_own_bucket() {
        let limiter = TenantRateLimiter::new(10, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(&t("acme"), start).is_ok());
        }
        let wait = limiter.check_at(&t("acme"), start).unwrap_err();
        assert!(
            wait <= Duration::from_millis(100) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(
            limiter.check_at(&t("globex"), start).is_ok(),
            "another tenant"
        );
        // A tenth of a second later one more request is allowed.
        assert!(
            limiter
                .check_at(&t("acme"), start + Duration::from_millis(101))
                .is_ok()
        );
    }
}
