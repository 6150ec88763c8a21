//! When to renew the database token: pure functions of the token's expiry and the clock, so the
//! schedule is unit-tested without waiting.

use std::time::Duration;

use time::OffsetDateTime;

/// Timing of token renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Renew this long before the token expires. azure_identity's cache hands out a new token
    /// only within 5 minutes of expiry, so a larger margin would just get the cached one again.
    pub margin: Duration,
    /// Shortest wait between two renewals (a token that is already inside the margin, e.g. one
    /// the cache keeps returning, must not make the task spin).
    pub min_delay: Duration,
    /// Longest wait: re-checks at least this often, so a timer that stalled while the host was
    /// suspended cannot carry an expired token for long.
    pub max_delay: Duration,
    /// First wait after a failed renewal; doubled per further failure ...
    pub retry_initial: Duration,
    /// ... up to this.
    pub retry_max: Duration,
    /// One token request may take this long (the credential retries internally).
    pub fetch_timeout: Duration,
    /// Lazy pools only: how long start-up waits for the first token before going on without
    /// one (database calls then fail until the retries get a token).
    pub first_token_timeout: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            margin: Duration::from_secs(5 * 60),
            min_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(30 * 60),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(30),
            first_token_timeout: Duration::from_secs(10),
        }
    }
}

/// How long to wait, from `now`, before renewing a token that expires at `expires_on`:
/// `margin` before expiry; inside the margin (or past expiry) half the time left; always
/// between `min_delay` and `max_delay`.
pub fn refresh_delay(
    expires_on: OffsetDateTime,
    now: OffsetDateTime,
    policy: &RefreshPolicy,
) -> Duration {
    // A negative remainder (expired, or clocks disagree) counts as zero.
    let remaining = Duration::try_from(expires_on - now).unwrap_or(Duration::ZERO);
    let delay = if remaining > policy.margin {
        remaining - policy.margin
    } else {
        remaining / 2
    };
    // max then min (not clamp): a policy with min > max must not panic.
    delay.max(policy.min_delay).min(policy.max_delay)
}

/// Wait after the `failures`-th consecutive failed renewal (1 = the first): exponential from
/// `retry_initial`, capped at `retry_max`.
pub fn retry_delay(failures: u32, policy: &RefreshPolicy) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u32::MAX);
    policy
        .retry_initial
        .saturating_mul(factor)
        .min(policy.retry_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-06-01 12:00:00 UTC);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn in_secs(n: i64) -> OffsetDateTime {
        NOW + time::Duration::seconds(n)
    }

    #[test]
    fn an_hour_token_is_renewed_five_minutes_before_it_expires() {
        let policy = RefreshPolicy::default();
        // A re-check at max_delay (the cache returns the same token), then the renewal.
        let first = refresh_delay(in_secs(3600), NOW, &policy);
        assert_eq!(first, secs(30 * 60));
        let second = refresh_delay(in_secs(3600), in_secs(30 * 60), &policy);
        assert_eq!(first + second, secs(3600 - 300));
    }

    #[test]
    fn a_twenty_minute_token_is_renewed_five_minutes_before_it_expires() {
        let delay = refresh_delay(in_secs(1200), NOW, &RefreshPolicy::default());
        assert_eq!(delay, secs(1200 - 300));
    }

    #[test]
    fn a_long_lived_token_is_rechecked_after_max_delay() {
        // Managed-identity tokens can live 24 h.
        let delay = refresh_delay(in_secs(24 * 3600), NOW, &RefreshPolicy::default());
        assert_eq!(delay, secs(30 * 60));
    }

    #[test]
    fn a_token_just_outside_the_margin_is_renewed_after_min_delay() {
        let delay = refresh_delay(in_secs(300 + 1), NOW, &RefreshPolicy::default());
        assert_eq!(delay, secs(5));
    }

    #[test]
    fn a_token_inside_the_margin_is_renewed_after_half_its_remaining_life() {
        let delay = refresh_delay(in_secs(120), NOW, &RefreshPolicy::default());
        assert_eq!(delay, secs(60));
    }

    #[test]
    fn an_expired_token_is_renewed_after_min_delay_not_at_once() {
        let policy = RefreshPolicy::default();
        assert_eq!(refresh_delay(in_secs(-600), NOW, &policy), secs(5));
        assert_eq!(refresh_delay(NOW, NOW, &policy), secs(5));
        assert_eq!(refresh_delay(in_secs(4), NOW, &policy), secs(5));
    }

    #[test]
    fn sub_second_precision_is_kept() {
        let expires = NOW + time::Duration::milliseconds(1_200_500);
        let delay = refresh_delay(expires, NOW, &RefreshPolicy::default());
        assert_eq!(delay, Duration::from_millis(900_500));
    }

    #[test]
    fn an_inconsistent_policy_does_not_panic() {
        let policy = RefreshPolicy {
            min_delay: secs(100),
            max_delay: secs(10),
            ..RefreshPolicy::default()
        };
        assert_eq!(refresh_delay(in_secs(3600), NOW, &policy), secs(10));
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let policy = RefreshPolicy::default();
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n, &policy).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn retry_delay_saturates_instead_of_overflowing() {
        let policy = RefreshPolicy::default();
        assert_eq!(retry_delay(0, &policy), secs(1));
        assert_eq!(retry_delay(32, &policy), secs(60));
        assert_eq!(retry_delay(u32::MAX, &policy), secs(60));
    }
}
