//! State shared by every HTTP function: built once in `main` (serve), cloned per request.

use std::sync::Arc;
use std::time::Duration;

use meshpay_chain::{ChainsConfig, FeeEstimator};
use meshpay_store::Store;
use time::OffsetDateTime;

/// The application's notion of "now" (quote expiry); a seam so tests can pin time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// Wall-clock UTC.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Environment variable overriding [`ApiConfig::quote_ttl`] (whole seconds).
pub const QUOTE_TTL_ENV: &str = "MESHPAY_QUOTE_TTL_SECONDS";

/// Tunables of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long a quote can be authorized after it was made (default 60 s): fees move, so a
    /// quote must not be honoured for long.
    pub quote_ttl: Duration,
}

impl ApiConfig {
    pub const DEFAULT_QUOTE_TTL: Duration = Duration::from_secs(60);
    /// Longest TTL accepted from configuration.
    pub const MAX_QUOTE_TTL: Duration = Duration::from_secs(3600);

    /// Reads [`QUOTE_TTL_ENV`] (1..=3600 s) or uses the defaults.
    pub fn from_env() -> Result<Self, ApiConfigError> {
        let quote_ttl = match std::env::var(QUOTE_TTL_ENV) {
            Err(_) => Self::DEFAULT_QUOTE_TTL,
            Ok(text) => {
                let secs: u64 = text
                    .trim()
                    .parse()
                    .map_err(|_| ApiConfigError::QuoteTtl(text.clone()))?;
                let ttl = Duration::from_secs(secs);
                if secs == 0 || ttl > Self::MAX_QUOTE_TTL {
                    return Err(ApiConfigError::QuoteTtl(text));
                }
                ttl
            }
        };
        Ok(Self { quote_ttl })
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            quote_ttl: Self::DEFAULT_QUOTE_TTL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiConfigError {
    #[error("{QUOTE_TTL_ENV} must be a whole number of seconds between 1 and 3600, got {0:?}")]
    QuoteTtl(String),
}

/// Everything a handler needs. Cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub chains: Arc<ChainsConfig>,
    pub fees: Arc<dyn FeeEstimator>,
    pub clock: Arc<dyn Clock>,
    pub config: ApiConfig,
}

impl AppState {
    pub fn new(store: Store, chains: Arc<ChainsConfig>, fees: Arc<dyn FeeEstimator>) -> Self {
        Self {
            store,
            chains,
            fees,
            clock: Arc::new(SystemClock),
            config: ApiConfig::default(),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_config(mut self, config: ApiConfig) -> Self {
        self.config = config;
        self
    }
}
