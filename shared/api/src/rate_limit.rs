//! Token buckets per API key and per merchant, in this process. Each instance keeps its own
//! buckets, so with N instances a client can reach N times the configured rate: the limits here
//! protect the database and hot wallets of one instance from one client; a global per-client
//! or per-IP limit belongs in front of the app (Front Door WAF rate-limit rules or APIM's
//! `rate-limit-by-key`), see docs/DEPLOY.md.
//!
//! Integer arithmetic: tokens are counted in billionths so refill by elapsed nanoseconds is
//! exact; a bucket holds at most one second of its rate (the burst).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use meshpay_domain::{ApiKeyId, MerchantId};

const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Buckets kept before idle (full) ones are dropped: bounds memory under key churn.
const MAX_BUCKETS: usize = 50_000;

/// `MESHPAY_RATE_LIMIT_PER_SEC`: per-key default (a key's own `--rate-limit` overrides it).
pub const KEY_RATE_ENV: &str = "MESHPAY_RATE_LIMIT_PER_SEC";
/// `MESHPAY_MERCHANT_RATE_LIMIT_PER_SEC`: all of a merchant's keys together.
pub const MERCHANT_RATE_ENV: &str = "MESHPAY_MERCHANT_RATE_LIMIT_PER_SEC";

/// Requests per second, per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub per_key_per_sec: u32,
    pub per_merchant_per_sec: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_key_per_sec: 25,
            per_merchant_per_sec: 50,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{name} must be a whole number of requests per second between 1 and 100000, got {value:?}")]
pub struct RateLimitConfigError {
    pub name: &'static str,
    pub value: String,
}

impl RateLimitConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, RateLimitConfigError> {
        let default = Self::default();
        let read = |name: &'static str, default: u32| match get(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or(RateLimitConfigError { name, value }),
        };
        Ok(Self {
            per_key_per_sec: read(KEY_RATE_ENV, default.per_key_per_sec)?,
            per_merchant_per_sec: read(MERCHANT_RATE_ENV, default.per_merchant_per_sec)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    Key(ApiKeyId),
    Merchant(MerchantId),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Billionths of a token.
    nanotokens: u128,
    at: Instant,
    rate: u32,
}

impl Bucket {
    fn full(rate: u32, now: Instant) -> Self {
        Self {
            nanotokens: capacity(rate),
            at: now,
            rate,
        }
    }

    /// Refills to `now` at `rate` (a changed rate applies from now on).
    fn refill(&mut self, rate: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_nanos();
        self.nanotokens = self
            .nanotokens
            .saturating_add(elapsed.saturating_mul(u128::from(self.rate)))
            .min(capacity(rate));
        self.at = now;
        self.rate = rate;
    }

    /// How long until one whole token is there (zero when it is).
    fn wait(&self) -> Duration {
        let missing = NANOS_PER_SEC.saturating_sub(self.nanotokens);
        let nanos = missing.div_ceil(u128::from(self.rate.max(1)));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn is_full(&self) -> bool {
        self.nanotokens >= capacity(self.rate)
    }
}

fn capacity(rate: u32) -> u128 {
    u128::from(rate.max(1)) * NANOS_PER_SEC
}

/// The buckets of one process.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<Subject, Bucket>>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from the key's bucket (at `key_rate`, or the default) and one from the
    /// merchant's, or neither: `Err(wait)` says when both will have one again.
    pub fn acquire(
        &self,
        key: ApiKeyId,
        key_rate: Option<u32>,
        merchant: MerchantId,
        now: Instant,
    ) -> Result<(), Duration> {
        let key_rate = key_rate.unwrap_or(self.config.per_key_per_sec).max(1);
        let merchant_rate = self.config.per_merchant_per_sec.max(1);
        // A poisoned lock only means another request panicked mid-update: the buckets are
        // still usable numbers.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, bucket| {
                let mut probe = *bucket;
                probe.refill(bucket.rate, now);
                !probe.is_full()
            });
        }
        let mut wait = Duration::ZERO;
        for (subject, rate) in [
            (Subject::Key(key), key_rate),
            (Subject::Merchant(merchant), merchant_rate),
        ] {
            let bucket = buckets
                .entry(subject)
                .or_insert_with(|| Bucket::full(rate, now));
            bucket.refill(rate, now);
            wait = wait.max(bucket.wait());
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for subject in [Subject::Key(key), Subject::Merchant(merchant)] {
            if let Some(bucket) = buckets.get_mut(&subject) {
                bucket.nanotokens -= NANOS_PER_SEC;
            }
        }
        Ok(())
    }
}

/// Whole seconds for `Retry-After` (rounded up, at least 1).
pub fn retry_after_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_key: u32, per_merchant: u32) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            per_key_per_sec: per_key,
            per_merchant_per_sec: per_merchant,
        })
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_for_the_refill() {
        let limiter = limiter(3, 100);
        let (key, merchant, t0) = (ApiKeyId::new(), MerchantId::new(), Instant::now());
        for _ in 0..3 {
            assert_eq!(limiter.acquire(key, None, merchant, t0), Ok(()));
        }
        let wait = limiter.acquire(key, None, merchant, t0).unwrap_err();
        assert_eq!(wait, Duration::from_nanos(333_333_334));
        assert_eq!(retry_after_secs(wait), 1);
        let later = t0 + Duration::from_millis(334);
        assert_eq!(limiter.acquire(key, None, merchant, later), Ok(()));
        assert!(limiter.acquire(key, None, merchant, later).is_err());
    }

    #[test]
    fn a_keys_own_rate_overrides_the_default() {
        let limiter = limiter(1, 100);
        let (key, merchant, t0) = (ApiKeyId::new(), MerchantId::new(), Instant::now());
        for _ in 0..10 {
            assert_eq!(limiter.acquire(key, Some(10), merchant, t0), Ok(()));
        }
        assert!(limiter.acquire(key, Some(10), merchant, t0).is_err());
    }

    #[test]
    fn the_merchant_bucket_binds_all_its_keys_together() {
        let limiter = limiter(10, 4);
        let (a, b, merchant, t0) = (
            ApiKeyId::new(),
            ApiKeyId::new(),
            MerchantId::new(),
            Instant::now(),
        );
        for _ in 0..2 {
            assert_eq!(limiter.acquire(a, None, merchant, t0), Ok(()));
            assert_eq!(limiter.acquire(b, None, merchant, t0), Ok(()));
        }
        assert!(limiter.acquire(a, None, merchant, t0).is_err());
        assert!(limiter.acquire(b, None, merchant, t0).is_err());
        // Another merchant is not affected.
        assert_eq!(
            limiter.acquire(ApiKeyId::new(), None, MerchantId::new(), t0),
            Ok(())
        );
    }

    #[test]
    fn a_refused_request_takes_no_token_from_the_other_bucket() {
        let limiter = limiter(1, 2);
        let (a, b, merchant, t0) = (
            ApiKeyId::new(),
            ApiKeyId::new(),
            MerchantId::new(),
            Instant::now(),
        );
        assert_eq!(limiter.acquire(a, None, merchant, t0), Ok(()));
        // `a` is empty: refused without spending the merchant's second token...
        assert!(limiter.acquire(a, None, merchant, t0).is_err());
        // ...which `b` still gets.
        assert_eq!(limiter.acquire(b, None, merchant, t0), Ok(()));
    }

    #[test]
    fn rate_settings_are_read_and_bounded() {
        let config =
            RateLimitConfig::from_lookup(|name| (name == KEY_RATE_ENV).then(|| "7".to_owned()))
                .unwrap();
        assert_eq!(config.per_key_per_sec, 7);
        assert_eq!(
            config.per_merchant_per_sec,
            RateLimitConfig::default().per_merchant_per_sec
        );
        for bad in ["0", "x", "100001"] {
            let error = RateLimitConfig::from_lookup(|name| {
                (name == MERCHANT_RATE_ENV).then(|| bad.to_owned())
            })
            .unwrap_err();
            assert!(error.to_string().contains(MERCHANT_RATE_ENV), "{error}");
        }
    }
}
