//! State shared by every HTTP function: built once in `main` (serve), cloned per request.

use std::sync::Arc;
use std::time::Duration;

use meshpay_chain::{ChainsConfig, FeeEstimator, RpcFeeEstimator};
use meshpay_store::Store;

use crate::auth::AuthGuard;
use crate::rate_limit::{RateLimitConfig, RateLimitConfigError};
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
    /// Requests per second per key and per merchant, in this instance.
    pub rate_limits: RateLimitConfig,
}

impl ApiConfig {
    pub const DEFAULT_QUOTE_TTL: Duration = Duration::from_secs(60);
    /// Longest TTL accepted from configuration.
    pub const MAX_QUOTE_TTL: Duration = Duration::from_secs(3600);

    /// [`QUOTE_TTL_ENV`] (1..=3600 s) read through `get`, or the defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ApiConfigError> {
        let quote_ttl = match get(QUOTE_TTL_ENV) {
            None => Self::DEFAULT_QUOTE_TTL,
            Some(text) => {
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
        let rate_limits = RateLimitConfig::from_lookup(&get)?;
        Ok(Self {
            quote_ttl,
            rate_limits,
        })
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            quote_ttl: Self::DEFAULT_QUOTE_TTL,
            rate_limits: RateLimitConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiConfigError {
    #[error("{QUOTE_TTL_ENV} must be a whole number of seconds between 1 and 3600, got {0:?}")]
    QuoteTtl(String),
    #[error(transparent)]
    RateLimit(#[from] RateLimitConfigError),
    /// The URL did not parse (its text is not repeated here: it holds a password).
    #[error("{DATABASE_URL_ENV} is not a valid PostgreSQL URL")]
    DatabaseUrl(#[source] sqlx::Error),
}

/// PostgreSQL connection string.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
/// Per JSON-RPC call during quoting.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Fee estimates are reused for this long per chain (about a block).
const FEE_CACHE_TTL: Duration = Duration::from_secs(2);
/// Longest wait for a pooled database connection before answering 503.
pub const DB_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a handler needs. Cheap to clone (handles and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub chains: Arc<ChainsConfig>,
    pub fees: Arc<dyn FeeEstimator>,
    pub clock: Arc<dyn Clock>,
    pub config: ApiConfig,
    /// Unknown-key cache and rate limits of this process (built from `config`).
    pub guard: Arc<AuthGuard>,
}

impl AppState {
    pub fn new(store: Store, chains: Arc<ChainsConfig>, fees: Arc<dyn FeeEstimator>) -> Self {
        Self {
            store,
            chains,
            fees,
            clock: Arc::new(SystemClock),
            guard: Arc::new(AuthGuard::new(ApiConfig::default().rate_limits)),
            config: ApiConfig::default(),
        }
    }

    /// [`AppState::with_rpc_fees`] on a password-less pool to `database_url` that connects on
    /// first use: usable where no database is reachable (registration tests), where requests
    /// then fail with 503 and nothing else does.
    pub fn lazy(
        database_url: &str,
        max_connections: u32,
        chains: Arc<ChainsConfig>,
    ) -> Result<Self, ApiConfigError> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(DB_ACQUIRE_TIMEOUT)
            .connect_lazy(database_url)
            .map_err(ApiConfigError::DatabaseUrl)?;
        Ok(Self::with_rpc_fees(Store::from_pool(pool), chains))
    }

    /// `store` and `chains` with the RPC fee estimator: what `serve` runs with (its store's
    /// pool connects on first use, so a database outage shows up as 503s, not as a process
    /// that cannot start).
    pub fn with_rpc_fees(store: Store, chains: Arc<ChainsConfig>) -> Self {
        let fees = Arc::new(RpcFeeEstimator::new(&chains, RPC_TIMEOUT, FEE_CACHE_TTL));
        Self::new(store, chains, fees)
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_config(mut self, config: ApiConfig) -> Self {
        self.guard = Arc::new(AuthGuard::new(config.rate_limits));
        self.config = config;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote_ttl(value: Option<&str>) -> Result<Duration, ApiConfigError> {
        ApiConfig::from_lookup(|name| {
            (name == QUOTE_TTL_ENV)
                .then(|| value.map(str::to_owned))
                .flatten()
        })
        .map(|config| config.quote_ttl)
    }

    #[test]
    fn quote_ttl_defaults_to_a_minute_and_accepts_whole_seconds_up_to_an_hour() {
        assert_eq!(quote_ttl(None).unwrap(), Duration::from_secs(60));
        assert_eq!(quote_ttl(Some(" 90 ")).unwrap(), Duration::from_secs(90));
        assert_eq!(quote_ttl(Some("3600")).unwrap(), Duration::from_secs(3600));
    }

    #[test]
    fn a_quote_ttl_out_of_range_is_refused_with_the_setting_named() {
        for bad in ["0", "3601", "1m", ""] {
            let error = quote_ttl(Some(bad)).unwrap_err().to_string();
            assert!(error.contains(QUOTE_TTL_ENV), "{bad:?}: {error}");
        }
    }
}
