//! Entra ID as the PostgreSQL password (Azure Database for PostgreSQL, managed identity): the
//! credential that gets the token, the first login, and a background task ([`refresher`]) that
//! swaps the token for new connections before it expires (on the schedule of [`schedule`]).
//! TLS is forced to at least `sslmode=require`: a token must not travel in clear. Tokens are
//! never logged.

pub mod refresher;
pub mod schedule;

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    AzureCliCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgSslMode};

pub use refresher::{Installed, TokenRefresher};
pub use schedule::{RefreshPolicy, refresh_delay, retry_delay};

use super::{ConnectMode, DbConfig, DbConnectError};

/// Entra ID scope of Azure Database for PostgreSQL (and MySQL).
pub const POSTGRES_SCOPE: &str = "https://ossrdbms-aad.database.windows.net/.default";

/// Which identity gets the token (chosen by configuration, never guessed: a fallback chain is
/// how the wrong identity ends up logged in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntraCredential {
    /// The app's managed identity; `client_id` selects a user-assigned one.
    ManagedIdentity { client_id: Option<String> },
    /// The operator's `az login` session (CLI commands run from a workstation).
    AzureCli,
}

impl EntraCredential {
    pub fn build(&self) -> Result<Arc<dyn TokenCredential>, DbConnectError> {
        let credential: Arc<dyn TokenCredential> = match self {
            EntraCredential::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                ManagedIdentityCredential::new(Some(options)).map_err(DbConnectError::Credential)?
            }
            EntraCredential::AzureCli => {
                AzureCliCredential::new(None).map_err(DbConnectError::Credential)?
            }
        };
        Ok(credential)
    }
}

/// A pool whose password is an Entra ID token, and the handle of its refresher.
#[derive(Debug, Clone)]
pub struct EntraPool {
    pub pool: PgPool,
    pub refresher: TokenRefresher,
}

/// The Entra path of [`super::connect`] with any credential and policy (tests use fakes). Eager: a
/// failed first token is an error. Lazy: waits at most `policy.first_token_timeout` for it,
/// then starts without a token and lets the refresher retry (calls fail until one arrives).
/// The refresher runs until `pool.close()`.
pub async fn connect_entra(
    config: &DbConfig,
    credential: Arc<dyn TokenCredential>,
    policy: RefreshPolicy,
    mode: ConnectMode,
) -> Result<EntraPool, DbConnectError> {
    let base = at_least_require_tls(config.options.clone());
    let (pool, first) = match mode {
        ConnectMode::Eager => {
            let token = refresher::fetch_token(&*credential, policy.fetch_timeout).await?;
            let pool = config
                .pool_options()
                .connect_with(refresher::with_token(&base, &token))
                .await
                .map_err(DbConnectError::Database)?;
            (pool, Some(token.expires_on))
        }
        ConnectMode::Lazy => {
            match refresher::fetch_token(&*credential, policy.first_token_timeout).await {
                Ok(token) => {
                    let options = refresher::with_token(&base, &token);
                    (
                        config.pool_options().connect_lazy_with(options),
                        Some(token.expires_on),
                    )
                }
                Err(error) => {
                    tracing::error!(%error, "no PostgreSQL token at start-up; retrying in the background");
                    (config.pool_options().connect_lazy_with(base.clone()), None)
                }
            }
        }
    };
    if let Some(expires_on) = first {
        tracing::info!(%expires_on, "PostgreSQL login with an Entra ID token");
    }
    let refresher = refresher::spawn(pool.clone(), base, credential, policy, first);
    Ok(EntraPool { pool, refresher })
}

/// An Entra ID token is a bearer credential for the database *and* names the server it is for:
/// sent to a server whose name was not verified (`require`, `verify-ca`, or a downgrade) it
/// can be replayed by whoever answered. Every Entra login is `verify-full`, whatever the URL says.
pub(crate) fn verify_full_tls(options: PgConnectOptions) -> PgConnectOptions {
    options.ssl_mode(PgSslMode::VerifyFull)
}

/// The floor for connect options built by hand ([`super::DbConfig::from_connect_options`]):
/// `disable`/`allow`/`prefer` could send the token unencrypted, so they become `require`.
pub(crate) fn at_least_require_tls(options: PgConnectOptions) -> PgConnectOptions {
    match options.get_ssl_mode() {
        PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer => {
            options.ssl_mode(PgSslMode::Require)
        }
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => options,
    }
}
