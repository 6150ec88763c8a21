//! What the pool is opened with: [`DbConfig`], parsed from the settings below by
//! [`DbConfig::from_lookup`] (the caller supplies the lookup; this crate never reads the
//! process environment).
//!
//! | setting | values |
//! |---|---|
//! | `DATABASE_URL` | `postgres://user@host:5432/db?sslmode=verify-full` (with `entra`: no password; the user is the identity's PostgreSQL role) |
//! | `MESHPAY_DB_AUTH` | `password` (default: the URL as is, `PGPASSWORD` honoured) or `entra` |
//! | `MESHPAY_DB_CREDENTIAL` | with `entra`: `managed-identity` (default) or `azure-cli` (an operator's `az login`) |
//! | `AZURE_CLIENT_ID` | with `managed-identity`: the user-assigned identity's client id (unset: system-assigned) |
//! | `MESHPAY_DB_MAX_CONNECTIONS` | pool size per process, 1..=100 (default 5) |
//!
//! URLs are never logged: [`DbConfig`]'s `Debug` shows no password.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::entra::{EntraCredential, at_least_require_tls, verify_full_tls};

pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
pub const DB_AUTH_ENV: &str = "MESHPAY_DB_AUTH";
pub const DB_CREDENTIAL_ENV: &str = "MESHPAY_DB_CREDENTIAL";
pub const CLIENT_ID_ENV: &str = "AZURE_CLIENT_ID";
pub const DB_MAX_CONNECTIONS_ENV: &str = "MESHPAY_DB_MAX_CONNECTIONS";
/// Small: Functions scale out by instances, and the server's connection limit is shared.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 5;
pub const MAX_CONNECTIONS_LIMIT: u32 = 100;
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the pool authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbAuth {
    /// `DATABASE_URL` as is (its password, or `PGPASSWORD`).
    Password,
    /// An Entra ID access token from this credential as the password.
    Entra(EntraCredential),
}

#[derive(Debug, thiserror::Error)]
pub enum DbConfigError {
    #[error("{DATABASE_URL_ENV} is not set")]
    UrlMissing,
    /// The URL's text is not repeated: it may hold a password.
    #[error("{DATABASE_URL_ENV} is not a valid PostgreSQL URL")]
    Url(#[source] sqlx::Error),
    #[error("{DB_AUTH_ENV} must be `password` or `entra`, got {0:?}")]
    Auth(String),
    #[error("{DB_CREDENTIAL_ENV} must be `managed-identity` or `azure-cli`, got {0:?}")]
    Credential(String),
    #[error(
        "{DB_MAX_CONNECTIONS_ENV} must be a number between 1 and {MAX_CONNECTIONS_LIMIT}, got {0:?}"
    )]
    MaxConnections(String),
}

/// Everything needed to open the pool. `Debug` leaves the password out.
#[derive(Clone)]
pub struct DbConfig {
    pub(crate) options: PgConnectOptions,
    pub auth: DbAuth,
    pub max_connections: u32,
    /// Longest wait for a pooled connection.
    pub acquire_timeout: Duration,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.options.get_host())
            .field("port", &self.options.get_port())
            .field("username", &self.options.get_username())
            .field("database", &self.options.get_database())
            .field("ssl_mode", &self.options.get_ssl_mode())
            .field("auth", &self.auth)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl DbConfig {
    /// The settings in the module docs, read through `get`; `url` (a CLI flag) overrides
    /// `DATABASE_URL`. Empty values count as unset.
    pub fn from_lookup(
        url: Option<&str>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<DbConfig, DbConfigError> {
        let get = |name: &str| get(name).filter(|value| !value.trim().is_empty());
        let url = match url {
            Some(url) => url.to_owned(),
            None => get(DATABASE_URL_ENV).ok_or(DbConfigError::UrlMissing)?,
        };
        let auth = match get(DB_AUTH_ENV) {
            None => DbAuth::Password,
            Some(text) => match text.trim().to_ascii_lowercase().as_str() {
                "password" => DbAuth::Password,
                "entra" => DbAuth::Entra(match get(DB_CREDENTIAL_ENV) {
                    None => managed_identity(get(CLIENT_ID_ENV)),
                    Some(kind) => match kind.trim().to_ascii_lowercase().as_str() {
                        "managed-identity" => managed_identity(get(CLIENT_ID_ENV)),
                        "azure-cli" => EntraCredential::AzureCli,
                        _ => return Err(DbConfigError::Credential(kind)),
                    },
                }),
                _ => return Err(DbConfigError::Auth(text)),
            },
        };
        let max_connections = match get(DB_MAX_CONNECTIONS_ENV) {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=MAX_CONNECTIONS_LIMIT).contains(n))
                .ok_or(DbConfigError::MaxConnections(text))?,
        };
        Ok(DbConfig::new(&url, auth)?.with_max_connections(max_connections))
    }

    /// `url` with `auth`, the default pool size and acquire timeout. An Entra login is always
    /// `verify-full`, whatever the URL's `sslmode`: this is the path every setting takes.
    pub fn new(url: &str, auth: DbAuth) -> Result<DbConfig, DbConfigError> {
        let options = PgConnectOptions::from_str(url).map_err(DbConfigError::Url)?;
        let options = match auth {
            DbAuth::Entra(_) => verify_full_tls(options),
            DbAuth::Password => options,
        };
        Ok(DbConfig::from_connect_options(options, auth))
    }

    /// Options built by the caller, who owns their TLS settings (tests against a local server
    /// with a self-signed certificate); an Entra login is still raised to at least `require`.
    pub fn from_connect_options(options: PgConnectOptions, auth: DbAuth) -> DbConfig {
        let options = match auth {
            DbAuth::Entra(_) => at_least_require_tls(options),
            DbAuth::Password => options,
        };
        DbConfig {
            options,
            auth,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
        }
    }

    pub fn with_max_connections(mut self, max_connections: u32) -> DbConfig {
        self.max_connections = max_connections;
        self
    }

    pub fn with_acquire_timeout(mut self, acquire_timeout: Duration) -> DbConfig {
        self.acquire_timeout = acquire_timeout;
        self
    }

    /// The options from the URL (with `entra`: TLS raised, no token yet).
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }

    pub(crate) fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
    }
}

fn managed_identity(client_id: Option<String>) -> EntraCredential {
    EntraCredential::ManagedIdentity {
        client_id: client_id.map(|id| id.trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sqlx::postgres::PgSslMode;

    use super::*;

    const URL: &str = "postgres://id-meshpay-prod@pg.example.com:5432/meshpay?sslmode=verify-full";

    fn parse(vars: &[(&str, &str)]) -> Result<DbConfig, DbConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DbConfig::from_lookup(None, |name| vars.get(name).cloned())
    }

    #[test]
    fn without_settings_the_url_is_used_as_is_with_five_connections() {
        let config = parse(&[(DATABASE_URL_ENV, "postgres://u:p@localhost/db")]).unwrap();
        assert_eq!(config.auth, DbAuth::Password);
        assert_eq!(config.max_connections, 5);
        assert!(matches!(
            config.connect_options().get_ssl_mode(),
            PgSslMode::Prefer
        ));
    }

    #[test]
    fn the_deployed_settings_select_the_user_assigned_managed_identity() {
        let config = parse(&[
            (DATABASE_URL_ENV, URL),
            (DB_AUTH_ENV, "entra"),
            (CLIENT_ID_ENV, "1b0c2a3e-0000-4000-8000-000000000001"),
            (DB_MAX_CONNECTIONS_ENV, "7"),
        ])
        .unwrap();
        assert_eq!(
            config.auth,
            DbAuth::Entra(EntraCredential::ManagedIdentity {
                client_id: Some("1b0c2a3e-0000-4000-8000-000000000001".into())
            })
        );
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.connect_options().get_username(), "id-meshpay-prod");
        assert!(matches!(
            config.connect_options().get_ssl_mode(),
            PgSslMode::VerifyFull
        ));
    }

    #[test]
    fn entra_without_client_id_uses_the_system_assigned_identity() {
        let config = parse(&[
            (DATABASE_URL_ENV, URL),
            (DB_AUTH_ENV, "Entra"),
            (CLIENT_ID_ENV, " "),
        ])
        .unwrap();
        assert_eq!(
            config.auth,
            DbAuth::Entra(EntraCredential::ManagedIdentity { client_id: None })
        );
    }

    #[test]
    fn an_operator_can_choose_the_azure_cli_credential() {
        let config = parse(&[
            (DATABASE_URL_ENV, URL),
            (DB_AUTH_ENV, "entra"),
            (DB_CREDENTIAL_ENV, "azure-cli"),
            (CLIENT_ID_ENV, "ignored"),
        ])
        .unwrap();
        assert_eq!(config.auth, DbAuth::Entra(EntraCredential::AzureCli));
    }

    #[test]
    fn entra_logins_always_verify_the_servers_name() {
        for mode in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            let url = format!("postgres://app@localhost/db?sslmode={mode}");
            let config = parse(&[(DATABASE_URL_ENV, &url), (DB_AUTH_ENV, "entra")]).unwrap();
            assert!(
                matches!(
                    config.connect_options().get_ssl_mode(),
                    PgSslMode::VerifyFull
                ),
                "{mode}"
            );
        }
    }

    #[test]
    fn a_url_flag_overrides_database_url() {
        let config = DbConfig::from_lookup(Some("postgres://flag@h/db"), |_| None).unwrap();
        assert_eq!(config.connect_options().get_username(), "flag");
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "DATABASE_URL is not set"),
            (
                &[(DATABASE_URL_ENV, "postgres://u@h:port/db")],
                "DATABASE_URL is not a valid",
            ),
            (
                &[(DATABASE_URL_ENV, URL), (DB_AUTH_ENV, "token")],
                "MESHPAY_DB_AUTH",
            ),
            (
                &[
                    (DATABASE_URL_ENV, URL),
                    (DB_AUTH_ENV, "entra"),
                    (DB_CREDENTIAL_ENV, "msi"),
                ],
                "MESHPAY_DB_CREDENTIAL",
            ),
            (
                &[(DATABASE_URL_ENV, URL), (DB_MAX_CONNECTIONS_ENV, "0")],
                "MESHPAY_DB_MAX_CONNECTIONS",
            ),
            (
                &[(DATABASE_URL_ENV, URL), (DB_MAX_CONNECTIONS_ENV, "101")],
                "MESHPAY_DB_MAX_CONNECTIONS",
            ),
            (
                &[(DATABASE_URL_ENV, URL), (DB_MAX_CONNECTIONS_ENV, "five")],
                "MESHPAY_DB_MAX_CONNECTIONS",
            ),
        ];
        for (vars, expected) in cases {
            let error = parse(vars).unwrap_err().to_string();
            assert!(error.contains(expected), "{vars:?}: {error}");
        }
    }

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let secret = "s3cr3t-pw";
        let url = format!("postgres://u:{secret}@localhost:5432/db");
        let config = parse(&[(DATABASE_URL_ENV, &url)]).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains(secret), "{debug}");
        assert!(debug.contains("localhost"), "{debug}");

        let bad = format!("postgres://u:{secret}@localhost:notaport/db");
        let error = parse(&[(DATABASE_URL_ENV, &bad)]).unwrap_err();
        assert!(!format!("{error} {error:?}").contains(secret));
    }
}
