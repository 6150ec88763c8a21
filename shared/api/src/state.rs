//! State shared by every HTTP function: built once in `main` (serve), cloned per request.

use std::sync::Arc;
use std::time::Duration;

use meshpay_chain::{ChainsConfig, ConfigError, FeeEstimator, RpcFeeEstimator};
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
    #[error("{DATABASE_URL_ENV} is not set")]
    DatabaseUrlMissing,
    #[error("{DB_MAX_CONNECTIONS_ENV} must be a number between 1 and 100, got {0:?}")]
    MaxConnections(String),
    /// The URL did not parse (its text is not repeated here: it holds a password).
    #[error("{DATABASE_URL_ENV} is not a valid PostgreSQL URL")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error(transparent)]
    Chains(#[from] ConfigError),
}

/// PostgreSQL connection string.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
/// Pool size per process (default 5): Functions scale out by instances, and the server's
/// connection limit is shared by all of them.
pub const DB_MAX_CONNECTIONS_ENV: &str = "MESHPAY_DB_MAX_CONNECTIONS";
const DEFAULT_DB_MAX_CONNECTIONS: u32 = 5;
/// Per JSON-RPC call during quoting.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Fee estimates are reused for this long per chain (about a block).
const FEE_CACHE_TTL: Duration = Duration::from_secs(2);
/// Longest wait for a pooled database connection before answering 503.
const DB_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Production wiring from the environment: `DATABASE_URL`, `MESHPAY_CHAINS_CONFIG`,
    /// optional `MESHPAY_DB_MAX_CONNECTIONS` and `MESHPAY_QUOTE_TTL_SECONDS`. No I/O besides
    /// reading the chains file: the pool connects on first use, so the handler is ready at once
    /// and a database outage shows up as 503s, not as a process that cannot start.
    pub fn from_env() -> Result<Self, ApiConfigError> {
        let config = ApiConfig::from_env()?;
        let chains = Arc::new(ChainsConfig::from_env()?);
        let url =
            std::env::var(DATABASE_URL_ENV).map_err(|_| ApiConfigError::DatabaseUrlMissing)?;
        let max_connections = match std::env::var(DB_MAX_CONNECTIONS_ENV) {
            Err(_) => DEFAULT_DB_MAX_CONNECTIONS,
            Ok(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or(ApiConfigError::MaxConnections(text))?,
        };
        Self::lazy(&url, max_connections, chains).map(|state| state.with_config(config))
    }

    /// A state whose pool connects on first use, with the RPC fee estimator: what `serve`
    /// runs with. Also usable where no database is reachable (registration tests): requests
    /// then fail with 503, nothing else does.
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
        let fees = Arc::new(RpcFeeEstimator::new(&chains, RPC_TIMEOUT, FEE_CACHE_TTL));
        Ok(Self::new(Store::from_pool(pool), chains, fees))
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
