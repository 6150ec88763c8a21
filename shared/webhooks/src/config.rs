//! Configuration, read once at start-up, and the services built from it.
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | `MESHPAY_WEBHOOK_SECRET_KEY` | required | 32 bytes, base64: seals endpoint secrets at rest |
//! | `MESHPAY_WEBHOOK_URL_POLICY` | `public` | `allow-private` (development only): http and private/loopback addresses |
//! | `MESHPAY_WEBHOOK_RETRY_SCHEDULE` | `0,5s,5m,30m,2h,5h,10h,14h,20h,24h` | attempt offsets from the first attempt |
//! | `MESHPAY_WEBHOOK_TIMEOUT_SECONDS` | `10` | whole-request timeout, 1 to 30 |
//!
//! The secret key has no default: a missing key stops start-up rather than silently storing
//! secrets under a well-known key. Only `local.settings.json` carries a development key.

use std::sync::Arc;
use std::time::Duration;

use meshpay_chain::ChainsConfig;
use meshpay_store::Store;

use crate::cipher::{CipherError, SecretCipher};
use crate::client::{ClientConfig, DeliveryClient};
use crate::dispatch::{DispatchLimits, Dispatcher};
use crate::retry::{RetrySchedule, ScheduleError};
use crate::url_policy::UrlPolicy;

pub const SECRET_KEY_ENV: &str = "MESHPAY_WEBHOOK_SECRET_KEY";
pub const URL_POLICY_ENV: &str = "MESHPAY_WEBHOOK_URL_POLICY";
pub const RETRY_SCHEDULE_ENV: &str = "MESHPAY_WEBHOOK_RETRY_SCHEDULE";
pub const TIMEOUT_ENV: &str = "MESHPAY_WEBHOOK_TIMEOUT_SECONDS";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{SECRET_KEY_ENV} is not set (32 random bytes, base64; e.g. `openssl rand -base64 32`)"
    )]
    SecretKeyMissing,
    #[error("{SECRET_KEY_ENV}: {0}")]
    SecretKey(#[source] CipherError),
    #[error("{URL_POLICY_ENV} must be `public` or `allow-private`, got {0:?}")]
    UrlPolicy(String),
    #[error("{RETRY_SCHEDULE_ENV}: {0}")]
    RetrySchedule(#[source] ScheduleError),
    #[error("{TIMEOUT_ENV} must be a whole number of seconds from 1 to 30, got {0:?}")]
    Timeout(String),
    #[error("the webhook HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
}

/// Everything configurable about webhooks.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    pub url_policy: UrlPolicy,
    pub cipher: Arc<SecretCipher>,
    pub retry: RetrySchedule,
    pub client: ClientConfig,
    pub limits: DispatchLimits,
}

impl WebhooksConfig {
    /// Defaults (production URL policy, the standard schedule) around a key.
    pub fn new(cipher: SecretCipher) -> Self {
        WebhooksConfig {
            url_policy: UrlPolicy::PublicHttps,
            cipher: Arc::new(cipher),
            retry: RetrySchedule::standard(),
            client: ClientConfig::default(),
            limits: DispatchLimits::default(),
        }
    }

    /// The settings in the module docs, read through `get` (the binary's settings, or a map in
    /// tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let key = get(SECRET_KEY_ENV)
            .filter(|k| !k.trim().is_empty())
            .ok_or(ConfigError::SecretKeyMissing)?;
        let cipher = SecretCipher::from_base64(&key).map_err(ConfigError::SecretKey)?;
        let mut config = Self::new(cipher);
        if let Some(policy) = get(URL_POLICY_ENV) {
            config.url_policy = UrlPolicy::parse(&policy).ok_or(ConfigError::UrlPolicy(policy))?;
        }
        if let Some(schedule) = get(RETRY_SCHEDULE_ENV) {
            config.retry = RetrySchedule::parse(&schedule).map_err(ConfigError::RetrySchedule)?;
        }
        if let Some(text) = get(TIMEOUT_ENV) {
            let secs: u64 = text
                .trim()
                .parse()
                .ok()
                .filter(|s| (1..=30).contains(s))
                .ok_or(ConfigError::Timeout(text))?;
            config.client.timeout = Duration::from_secs(secs);
            config.client.connect_timeout =
                config.client.connect_timeout.min(config.client.timeout);
        }
        Ok(config)
    }
}

/// What the functions share: the URL policy and cipher (endpoints API) and the dispatcher
/// (notify).
#[derive(Debug, Clone)]
pub struct WebhookServices {
    pub url_policy: UrlPolicy,
    pub cipher: Arc<SecretCipher>,
    pub dispatcher: Arc<Dispatcher>,
}

impl WebhookServices {
    pub fn new(
        config: WebhooksConfig,
        store: Store,
        chains: Arc<ChainsConfig>,
    ) -> Result<Self, ConfigError> {
        let client =
            DeliveryClient::new(config.url_policy, config.client).map_err(ConfigError::Client)?;
        let dispatcher = Dispatcher::new(
            store,
            chains,
            client,
            config.cipher.clone(),
            config.retry,
            config.limits,
        );
        Ok(WebhookServices {
            url_policy: config.url_policy,
            cipher: config.cipher,
            dispatcher: Arc::new(dispatcher),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use meshpay_testkit::settings::lookup;

    fn key() -> String {
        base64::engine::general_purpose::STANDARD.encode([5u8; 32])
    }

    #[test]
    fn the_secret_key_is_required_and_everything_else_defaults_to_production() {
        assert!(matches!(
            WebhooksConfig::from_lookup(lookup(&[])),
            Err(ConfigError::SecretKeyMissing)
        ));
        let config = WebhooksConfig::from_lookup(lookup(&[(SECRET_KEY_ENV, &key())])).unwrap();
        assert_eq!(config.url_policy, UrlPolicy::PublicHttps);
        assert_eq!(config.retry, RetrySchedule::standard());
        assert_eq!(config.client.timeout, Duration::from_secs(10));
    }

    #[test]
    fn settings_override_policy_schedule_and_timeout_and_bad_values_are_errors() {
        let key = key();
        let config = WebhooksConfig::from_lookup(lookup(&[
            (SECRET_KEY_ENV, &key),
            (URL_POLICY_ENV, "allow-private"),
            (RETRY_SCHEDULE_ENV, "0,1s,2s"),
            (TIMEOUT_ENV, "2"),
        ]))
        .unwrap();
        assert_eq!(config.url_policy, UrlPolicy::AllowPrivate);
        assert_eq!(config.retry.max_attempts(), 3);
        assert_eq!(config.client.timeout, Duration::from_secs(2));
        for (name, value) in [
            (URL_POLICY_ENV, "open"),
            (RETRY_SCHEDULE_ENV, "5s"),
            (TIMEOUT_ENV, "0"),
            (TIMEOUT_ENV, "600"),
            (SECRET_KEY_ENV, "c2hvcnQ="),
        ] {
            let mut pairs = vec![(SECRET_KEY_ENV, key.as_str())];
            pairs.retain(|(k, _)| *k != name);
            pairs.push((name, value));
            assert!(
                WebhooksConfig::from_lookup(lookup(&pairs)).is_err(),
                "{name}={value}"
            );
        }
    }
}
