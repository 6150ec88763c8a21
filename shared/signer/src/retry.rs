//! Bounded retries of Key Vault calls: 429 `Throttled`, 408/5xx, I/O errors and per-attempt
//! timeouts are retried with exponential backoff that honours `Retry-After`.
//!
//! The SDK's own retry policy is switched off for clients built here
//! ([`key_client_options`](crate::key_client_options)): it sleeps for any `Retry-After` the
//! service names, however long, and has no per-attempt timeout. Signing is safe to repeat
//! (a second ECDSA signature over the same digest is just as valid), so every failure class
//! above is retried for `sign` as well as `get_key`.

use crate::KeyVaultSignerError;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{
    HeaderName, Headers, RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS,
};
use meshpay_domain::ErrorChain;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// Retry limits for Key Vault calls (`[signer.retry]` in configuration).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubled for each further retry.
    pub initial_backoff_ms: u64,
    /// Longest pause between attempts. A `Retry-After` longer than this ends the call with
    /// [`KeyVaultSignerError::RetryAfterTooLong`] instead of sleeping.
    pub max_backoff_ms: u64,
    /// Limit of one attempt (request, token acquisition and response).
    pub attempt_timeout_ms: u64,
}

impl Default for RetryConfig {
    /// Key Vault's throttling guidance: back off 1, 2, 4, 8, 16 s.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 16_000,
            attempt_timeout_ms: 10_000,
        }
    }
}

impl RetryConfig {
    /// True when every limit is the default (a written config then leaves `[retry]` out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The pause before retry number `retry` (1 = first retry), or `None` when the service's
    /// `retry_after` exceeds `max_backoff_ms`. `jitter` in [0, 1] spreads concurrent callers:
    /// the backoff is drawn from [backoff/2, backoff]. Never shorter than `retry_after`.
    pub fn delay_before_retry(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        let max_backoff = Duration::from_millis(self.max_backoff_ms);
        if retry_after.is_some_and(|wait| wait > max_backoff) {
            return None;
        }
        let doublings = retry.saturating_sub(1).min(31);
        let backoff = Duration::from_millis(self.initial_backoff_ms)
            .saturating_mul(1 << doublings)
            .min(max_backoff);
        let jittered = backoff.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        Some(jittered.max(retry_after.unwrap_or_default()))
    }

    fn attempt_timeout(&self) -> Duration {
        Duration::from_millis(self.attempt_timeout_ms)
    }
}

/// One failed attempt, classified.
struct Failure {
    error: KeyVaultSignerError,
    retryable: bool,
    retry_after: Option<Duration>,
}

/// Runs `call` until it succeeds, fails terminally or the retry budget is spent.
pub(crate) async fn with_retry<T, F, Fut>(
    config: &RetryConfig,
    operation: &'static str,
    mut call: F,
) -> Result<T, KeyVaultSignerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = azure_core::Result<T>>,
{
    let max_attempts = config.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let failure = match tokio::time::timeout(config.attempt_timeout(), call()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => classify(operation, error),
            Err(_elapsed) => Failure {
                error: KeyVaultSignerError::Timeout {
                    operation,
                    timeout_ms: config.attempt_timeout_ms,
                },
                retryable: true,
                retry_after: None,
            },
        };
        if !failure.retryable {
            return Err(failure.error);
        }
        if attempt >= max_attempts {
            return Err(KeyVaultSignerError::RetriesExhausted {
                operation,
                attempts: attempt,
                last: Box::new(failure.error),
            });
        }
        let jitter = rand::thread_rng().r#gen::<f64>();
        let Some(delay) = config.delay_before_retry(attempt, failure.retry_after, jitter) else {
            return Err(KeyVaultSignerError::RetryAfterTooLong {
                operation,
                retry_after_ms: failure
                    .retry_after
                    .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX)),
                max_backoff_ms: config.max_backoff_ms,
            });
        };
        tracing::warn!(
            operation,
            attempt,
            delay_ms = delay.as_millis() as u64,
            error = %ErrorChain(&failure.error),
            "Key Vault call failed, retrying"
        );
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// Retryable: 408, 429, 500, 502, 503, 504 and transport errors (the same set as the SDK's
/// default policy). Everything else (401 after the challenge, 403, 404, 400, credential
/// failures) needs configuration changes, not time.
fn classify(operation: &'static str, error: azure_core::Error) -> Failure {
    let (retryable, retry_after) = match error.kind() {
        ErrorKind::HttpResponse {
            status,
            raw_response,
            ..
        } => {
            let retryable = matches!(u16::from(*status), 408 | 429 | 500 | 502 | 503 | 504);
            let retry_after = raw_response
                .as_ref()
                .and_then(|raw| retry_after(raw.headers()));
            (retryable, retry_after)
        }
        ErrorKind::Io | ErrorKind::Connection => (true, None),
        _ => (false, None),
    };
    Failure {
        error: KeyVaultSignerError::Request {
            operation,
            source: error,
        },
        retryable,
        retry_after,
    }
}

/// The service's requested pause: `x-ms-retry-after-ms` / `retry-after-ms` (milliseconds) or
/// `Retry-After` in seconds. An HTTP-date `Retry-After` is ignored (Key Vault sends seconds);
/// the exponential backoff applies then.
pub(crate) fn retry_after(headers: &Headers) -> Option<Duration> {
    let number = |name: &HeaderName| headers.get_optional_str(name)?.trim().parse::<u64>().ok();
    number(&X_MS_RETRY_AFTER_MS)
        .or_else(|| number(&RETRY_AFTER_MS))
        .map(Duration::from_millis)
        .or_else(|| number(&RETRY_AFTER).map(Duration::from_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RetryConfig {
        RetryConfig {
            max_attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            attempt_timeout_ms: 50,
        }
    }

    #[test]
    fn backoff_doubles_per_retry_and_is_capped() {
        let config = config();
        let full = |retry| config.delay_before_retry(retry, None, 1.0);
        assert_eq!(full(1), Some(Duration::from_millis(100)));
        assert_eq!(full(2), Some(Duration::from_millis(200)));
        assert_eq!(full(4), Some(Duration::from_millis(800)));
        assert_eq!(full(5), Some(Duration::from_millis(1_000)));
        assert_eq!(
            full(40),
            Some(Duration::from_millis(1_000)),
            "no overflow for large retry numbers"
        );
    }

    #[test]
    fn jitter_draws_from_the_upper_half_of_the_backoff() {
        let config = config();
        assert_eq!(
            config.delay_before_retry(2, None, 0.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            config.delay_before_retry(2, None, 0.5),
            Some(Duration::from_millis(150))
        );
    }

    #[test]
    fn retry_after_is_never_cut_short() {
        let config = config();
        let delay = config.delay_before_retry(1, Some(Duration::from_millis(700)), 0.0);
        assert_eq!(delay, Some(Duration::from_millis(700)));
        let delay = config.delay_before_retry(4, Some(Duration::from_millis(10)), 1.0);
        assert_eq!(
            delay,
            Some(Duration::from_millis(800)),
            "backoff wins when longer"
        );
    }

    #[test]
    fn retry_after_beyond_the_budget_stops_retrying() {
        let config = config();
        assert_eq!(
            config.delay_before_retry(1, Some(Duration::from_secs(30)), 0.5),
            None
        );
    }

    #[test]
    fn retry_after_headers_are_read_in_seconds_or_milliseconds() {
        let mut headers = Headers::new();
        headers.insert(RETRY_AFTER, "3");
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(X_MS_RETRY_AFTER_MS, "250");
        assert_eq!(
            retry_after(&headers),
            Some(Duration::from_millis(250)),
            "ms header preferred"
        );
        let mut dated = Headers::new();
        dated.insert(RETRY_AFTER, "Fri, 01 Jan 2021 00:00:00 GMT");
        assert_eq!(retry_after(&dated), None);
    }

    #[tokio::test]
    async fn a_call_failing_with_a_terminal_error_is_tried_once() {
        let mut calls = 0;
        let result: Result<(), _> = with_retry(&config(), "sign", || {
            calls += 1;
            async {
                Err(azure_core::Error::with_message(
                    ErrorKind::Credential,
                    "no token",
                ))
            }
        })
        .await;
        assert!(matches!(result, Err(KeyVaultSignerError::Request { .. })));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn io_errors_are_retried_until_the_attempt_limit() {
        let mut config = config();
        config.initial_backoff_ms = 1;
        config.max_attempts = 3;
        let mut calls = 0;
        let result: Result<(), _> = with_retry(&config, "sign", || {
            calls += 1;
            async { Err(azure_core::Error::with_message(ErrorKind::Io, "reset")) }
        })
        .await;
        let error = result.expect_err("must give up");
        assert!(matches!(
            error,
            KeyVaultSignerError::RetriesExhausted { attempts: 3, .. }
        ));
        assert!(error.is_transient());
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn a_hanging_attempt_times_out_and_is_retried() {
        let mut config = config();
        config.initial_backoff_ms = 1;
        let mut calls = 0;
        let result = with_retry(&config, "get_key", || {
            calls += 1;
            let hang = calls == 1;
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok(7)
            }
        })
        .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls, 2);
    }
}
