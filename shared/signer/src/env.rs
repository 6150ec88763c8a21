//! The hot-wallet keys named by the app settings the Azure deployment writes
//! (`infra/bicep/main.bicep`), as [`KeyVaultConfig`]s:
//!
//! | setting | meaning |
//! |---|---|
//! | `MESHPAY_KEYVAULT_URL` | `https://<vault>.vault.azure.net/` |
//! | `MESHPAY_WALLET_KEYS` | comma-separated key names, e.g. `hot-wallet-0,hot-wallet-1` |
//! | `AZURE_CLIENT_ID` | client id of the app's user-assigned managed identity |
//!
//! The credential is the managed identity unless the caller chooses another one
//! ([`KeyVaultWallets::with_credential`]: an operator's `az login`).

use crate::{CredentialConfig, KeyVaultConfig, RetryConfig, SignerConfig};

/// Key Vault URL setting.
pub const KEYVAULT_URL_ENV: &str = "MESHPAY_KEYVAULT_URL";
/// Comma-separated key names setting.
pub const WALLET_KEYS_ENV: &str = "MESHPAY_WALLET_KEYS";
/// Client id of the user-assigned managed identity (the name azure_identity's credentials use).
pub const CLIENT_ID_ENV: &str = "AZURE_CLIENT_ID";

/// Why the settings do not describe a set of Key Vault keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvConfigError {
    /// A required setting is unset or blank.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// The vault URL is not an `https://` URL.
    #[error("{KEYVAULT_URL_ENV} must be an https:// URL, got {0:?}")]
    VaultUrl(String),
    /// A key name Key Vault would not accept (1-127 of `[0-9A-Za-z-]`).
    #[error("{WALLET_KEYS_ENV}: {0:?} is not a Key Vault key name (1-127 letters, digits, '-')")]
    KeyName(String),
    /// The same key listed twice: it would be one wallet counted twice.
    #[error("{WALLET_KEYS_ENV} lists {0:?} twice")]
    DuplicateKey(String),
}

/// The hot-wallet keys of one vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVaultWallets {
    /// `https://<vault>.vault.azure.net/`.
    pub vault_url: String,
    /// Key names, in the order configured.
    pub key_names: Vec<String>,
    /// How to obtain Entra ID tokens.
    pub credential: CredentialConfig,
}

impl KeyVaultWallets {
    /// [`KEYVAULT_URL_ENV`], [`WALLET_KEYS_ENV`] and [`CLIENT_ID_ENV`] read through `get` (the
    /// binary's flags and settings, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, EnvConfigError> {
        let non_blank = |name: &'static str| {
            get(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let vault_url =
            non_blank(KEYVAULT_URL_ENV).ok_or(EnvConfigError::Missing(KEYVAULT_URL_ENV))?;
        if !vault_url.starts_with("https://") || vault_url.contains(char::is_whitespace) {
            return Err(EnvConfigError::VaultUrl(vault_url));
        }
        let keys = non_blank(WALLET_KEYS_ENV).ok_or(EnvConfigError::Missing(WALLET_KEYS_ENV))?;
        let key_names = parse_key_names(&keys)?;
        let credential = CredentialConfig::ManagedIdentity {
            client_id: non_blank(CLIENT_ID_ENV),
        };
        Ok(Self {
            vault_url,
            key_names,
            credential,
        })
    }

    /// The same keys reached with another credential.
    pub fn with_credential(self, credential: CredentialConfig) -> Self {
        Self { credential, ..self }
    }

    /// One signer configuration per key (current key version, default retries, no chain id).
    pub fn key_configs(&self) -> Vec<KeyVaultConfig> {
        self.key_names
            .iter()
            .map(|key_name| KeyVaultConfig {
                vault_url: self.vault_url.clone(),
                key_name: key_name.clone(),
                key_version: None,
                credential: self.credential.clone(),
                chain_id: None,
                retry: RetryConfig::default(),
            })
            .collect()
    }

    /// [`key_configs`](Self::key_configs) as [`SignerConfig`]s.
    pub fn signer_configs(&self) -> Vec<SignerConfig> {
        self.key_configs()
            .into_iter()
            .map(SignerConfig::KeyVault)
            .collect()
    }
}

fn parse_key_names(list: &str) -> Result<Vec<String>, EnvConfigError> {
    let mut names: Vec<String> = Vec::new();
    // A trailing comma (`a,b,`) is tolerated; an empty name in the middle is not.
    let trimmed = list.trim().trim_end_matches(',');
    for name in trimmed.split(',').map(str::trim) {
        let valid = (1..=127).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(EnvConfigError::KeyName(name.to_owned()));
        }
        // Key Vault names are case-insensitive.
        if names.iter().any(|seen| seen.eq_ignore_ascii_case(name)) {
            return Err(EnvConfigError::DuplicateKey(name.to_owned()));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_testkit::settings::lookup;

    const VAULT: &str = "https://kv-prod-abc.vault.azure.net/";

    #[test]
    fn deployment_settings_become_one_managed_identity_config_per_key() {
        let wallets = KeyVaultWallets::from_lookup(lookup(&[
            (KEYVAULT_URL_ENV, VAULT),
            (WALLET_KEYS_ENV, "hot-wallet-0, hot-wallet-1"),
            (CLIENT_ID_ENV, "6a1d1e4c-0000-4000-8000-000000000001"),
        ]))
        .unwrap();
        let configs = wallets.key_configs();
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[0].key_name, "hot-wallet-0");
        assert_eq!(configs[1].key_name, "hot-wallet-1");
        for config in &configs {
            assert_eq!(config.vault_url, VAULT);
            assert_eq!(
                config.key_version, None,
                "the current version is pinned at start"
            );
            assert_eq!(
                config.credential,
                CredentialConfig::ManagedIdentity {
                    client_id: Some("6a1d1e4c-0000-4000-8000-000000000001".into())
                }
            );
            assert!(!config.credential.is_dev_only());
        }
        assert!(matches!(
            wallets.signer_configs()[1],
            SignerConfig::KeyVault(ref c) if c.key_name == "hot-wallet-1"
        ));
    }

    #[test]
    fn without_a_client_id_the_system_assigned_identity_is_used() {
        let wallets = KeyVaultWallets::from_lookup(lookup(&[
            (KEYVAULT_URL_ENV, VAULT),
            (WALLET_KEYS_ENV, "hot-wallet-0"),
            (CLIENT_ID_ENV, "  "),
        ]))
        .unwrap();
        assert_eq!(
            wallets.credential,
            CredentialConfig::ManagedIdentity { client_id: None }
        );
    }

    #[test]
    fn an_operator_credential_replaces_the_managed_identity() {
        let wallets = KeyVaultWallets::from_lookup(lookup(&[
            (KEYVAULT_URL_ENV, VAULT),
            (WALLET_KEYS_ENV, "hot-wallet-0,"),
        ]))
        .unwrap()
        .with_credential(CredentialConfig::AzureCli { tenant_id: None });
        assert_eq!(wallets.key_names, ["hot-wallet-0"]);
        assert!(wallets.key_configs()[0].credential.is_dev_only());
    }

    #[test]
    fn missing_or_malformed_settings_are_named() {
        let missing_url = KeyVaultWallets::from_lookup(lookup(&[(WALLET_KEYS_ENV, "a")]));
        assert_eq!(missing_url, Err(EnvConfigError::Missing(KEYVAULT_URL_ENV)));
        let missing_keys = KeyVaultWallets::from_lookup(lookup(&[(KEYVAULT_URL_ENV, VAULT)]));
        assert_eq!(missing_keys, Err(EnvConfigError::Missing(WALLET_KEYS_ENV)));
        let http = KeyVaultWallets::from_lookup(lookup(&[
            (KEYVAULT_URL_ENV, "http://kv.vault.azure.net/"),
            (WALLET_KEYS_ENV, "a"),
        ]));
        assert!(matches!(http, Err(EnvConfigError::VaultUrl(_))));
        for bad in ["a,,b", "hot_wallet", "a b", ","] {
            let result = KeyVaultWallets::from_lookup(lookup(&[
                (KEYVAULT_URL_ENV, VAULT),
                (WALLET_KEYS_ENV, bad),
            ]));
            assert!(
                matches!(result, Err(EnvConfigError::KeyName(_))),
                "{bad:?} gave {result:?}"
            );
        }
        let twice = KeyVaultWallets::from_lookup(lookup(&[
            (KEYVAULT_URL_ENV, VAULT),
            (WALLET_KEYS_ENV, "hot-1,HOT-1"),
        ]));
        assert_eq!(twice, Err(EnvConfigError::DuplicateKey("HOT-1".into())));
    }
}
