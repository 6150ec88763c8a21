//! meshpay-signer: hot-wallet signers behind alloy's `Signer` and `TxSigner`.
//!
//! - [`KeyVaultSigner`]: ES256K signatures from an Azure Key Vault / Managed HSM P-256K key,
//!   normalized to low s with the y-parity recovered ([`ecdsa`]), retried on throttling
//!   ([`RetryConfig`]), credentials chosen by [`CredentialConfig`].
//! - [`LocalConfig`]: alloy's `PrivateKeySigner` for the dev stack (anvil mnemonic, hex key
//!   from a setting, keystore); the settings' values come from the caller ([`SignerSecrets`]).
//! - [`WalletSigner`] / [`SignerConfig`]: either, chosen by an explicit `kind`;
//!   [`SignerConfig::is_dev_only`] lets the binary refuse dev keys in production.
//! - `testing` (feature `test-util`): a Key Vault double for tests and benchmarks.

mod config;
mod credential;
pub mod ecdsa;
pub mod env;
mod error;
mod key_vault;
mod local;
mod retry;
mod secrets;
#[cfg(feature = "test-util")]
pub mod testing;
mod wallet;

pub use config::{SignerBuildError, SignerConfig};
pub use credential::CredentialConfig;
pub use env::{EnvConfigError, KeyVaultWallets};
pub use error::KeyVaultSignerError;
pub use key_vault::{KeyVaultConfig, KeyVaultSigner, key_client_options};
pub use local::{
    ANVIL_DEV_MNEMONIC, LocalConfig, LocalKeyError, LocalKeySource, anvil_dev_account,
};
pub use retry::RetryConfig;
pub use secrets::SignerSecrets;
pub use wallet::WalletSigner;
