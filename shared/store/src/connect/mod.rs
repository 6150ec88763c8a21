//! How meshpay opens its PostgreSQL pool: a plain connection string, or an Entra ID token as the
//! password ([`entra`]), renewed before it expires. Connection code, not a repository: the
//! table repositories are the other modules of this crate, all on the pool opened here.

mod config;
pub mod entra;

use std::time::Duration;

use sqlx::postgres::PgPool;

pub use config::{
    CLIENT_ID_ENV, DATABASE_URL_ENV, DB_AUTH_ENV, DB_CREDENTIAL_ENV, DB_MAX_CONNECTIONS_ENV,
    DEFAULT_MAX_CONNECTIONS, DbAuth, DbConfig, DbConfigError, MAX_CONNECTIONS_LIMIT,
};
pub use entra::{EntraCredential, EntraPool, POSTGRES_SCOPE, RefreshPolicy};

#[derive(Debug, thiserror::Error)]
pub enum DbConnectError {
    #[error("creating the Entra ID credential: {0}")]
    Credential(#[source] azure_core::Error),
    #[error("getting an Entra ID token for PostgreSQL: {0}")]
    Token(#[source] azure_core::Error),
    #[error("getting an Entra ID token for PostgreSQL took longer than {0:?}")]
    TokenTimeout(Duration),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// Eager pools connect before returning (CLI commands: fail fast); lazy pools connect on first
/// use (`serve`: the process starts even when the database is down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectMode {
    Eager,
    Lazy,
}

/// Opens the pool `config` describes (with `entra`: credential, first token, refresher).
pub async fn connect(config: &DbConfig, mode: ConnectMode) -> Result<PgPool, DbConnectError> {
    match &config.auth {
        DbAuth::Password => {
            let options = config.options.clone();
            match mode {
                ConnectMode::Eager => config
                    .pool_options()
                    .connect_with(options)
                    .await
                    .map_err(DbConnectError::Database),
                ConnectMode::Lazy => Ok(config.pool_options().connect_lazy_with(options)),
            }
        }
        DbAuth::Entra(kind) => {
            let credential = kind.build()?;
            let entra =
                entra::connect_entra(config, credential, RefreshPolicy::default(), mode).await?;
            Ok(entra.pool)
        }
    }
}
