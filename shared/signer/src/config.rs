//! [`SignerConfig`]: which signer a hot wallet uses, read from configuration.

use crate::{
    KeyVaultConfig, KeyVaultSigner, KeyVaultSignerError, LocalConfig, LocalKeyError, SignerSecrets,
    WalletSigner,
};
use serde::{Deserialize, Serialize};

/// `[signer]` of a hot wallet. `kind` is required: there is no default, so a production
/// configuration cannot fall back to a local key by omission.
///
/// ```toml
/// [signer]
/// kind = "key_vault"
/// vault_url = "https://meshpay-prod.vault.azure.net/"
/// key_name = "hot-wallet-1"
/// credential = { kind = "managed_identity" }
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignerConfig {
    /// Azure Key Vault / Managed HSM key.
    KeyVault(KeyVaultConfig),
    /// Key in process memory (dev stack).
    Local(LocalConfig),
}

/// Errors building a signer from [`SignerConfig`].
#[derive(Debug, thiserror::Error)]
pub enum SignerBuildError {
    /// The Key Vault signer could not be created.
    #[error(transparent)]
    KeyVault(#[from] KeyVaultSignerError),
    /// The local signer could not be created.
    #[error(transparent)]
    Local(#[from] LocalKeyError),
}

impl SignerConfig {
    /// True for configurations a production deployment must refuse: a local key, or Key Vault
    /// through a developer's CLI login.
    pub fn is_dev_only(&self) -> bool {
        match self {
            Self::KeyVault(config) => config.credential.is_dev_only(),
            Self::Local(_) => true,
        }
    }

    /// The settings whose values [`SignerConfig::build`] needs from [`SignerSecrets`].
    pub fn secret_names(&self) -> Vec<&str> {
        match self {
            Self::KeyVault(_) => Vec::new(),
            Self::Local(config) => config.secret_names(),
        }
    }

    /// Builds the signer; for Key Vault this reads the key (network).
    pub async fn build(&self, secrets: &SignerSecrets) -> Result<WalletSigner, SignerBuildError> {
        Ok(match self {
            Self::KeyVault(config) => KeyVaultSigner::from_config(config).await?.into(),
            Self::Local(config) => config.build_with_env(|name| secrets.get(name))?.into(),
        })
    }
}

#[cfg(test)]
mod tests;
