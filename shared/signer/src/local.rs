//! The dev-only local signer: alloy's `PrivateKeySigner` with its key from the anvil dev
//! mnemonic, a hex key in an environment variable, or an encrypted keystore file.

use alloy::primitives::ChainId;
use alloy::signers::Signer;
use alloy::signers::local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The mnemonic anvil (and hardhat) derive their funded dev accounts from. Public knowledge:
/// anything it controls on a real chain is lost.
pub const ANVIL_DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// `[signer]` with `kind = "local"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Where the private key comes from (`[signer.key]`).
    pub key: LocalKeySource,
    /// EIP-155 chain id applied to transactions, if this signer serves one chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<ChainId>,
}

/// `[signer.key]`: `source = "anvil_mnemonic" | "hex_key_env" | "keystore"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum LocalKeySource {
    /// Account `index` of [`ANVIL_DEV_MNEMONIC`] (path m/44'/60'/0'/0/index, as anvil).
    AnvilMnemonic {
        /// Account index; anvil funds 0..=9 by default.
        index: u32,
    },
    /// A 32-byte hex private key (with or without 0x) read from environment variable `var`.
    HexKeyEnv {
        /// Name of the environment variable (the key itself never goes in a config file).
        var: String,
    },
    /// An encrypted JSON keystore (Web3 Secret Storage), its password from `password_env`.
    Keystore {
        /// Path of the keystore file.
        path: PathBuf,
        /// Name of the environment variable holding the password.
        password_env: String,
    },
}

/// Errors building a [`LocalConfig`] signer. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum LocalKeyError {
    /// The environment variable is unset or not UTF-8.
    #[error("environment variable {var} is not set")]
    MissingEnv {
        /// Its name.
        var: String,
    },
    /// The variable does not hold a valid secp256k1 private key in hex (the value and the
    /// parser's message are withheld: they would leak key characters).
    #[error("environment variable {var} does not hold a 32-byte hex secp256k1 private key")]
    InvalidHexKey {
        /// Its name.
        var: String,
    },
    /// Deriving from the mnemonic failed.
    #[error("could not derive account {index} from the anvil dev mnemonic")]
    Mnemonic {
        /// The account index.
        index: u32,
        /// The derivation error.
        #[source]
        source: alloy::signers::local::LocalSignerError,
    },
    /// The keystore could not be read or decrypted.
    #[error("could not decrypt keystore {path}")]
    Keystore {
        /// The keystore path.
        path: PathBuf,
        /// The keystore error (I/O, wrong password, bad format).
        #[source]
        source: alloy::signers::local::LocalSignerError,
    },
}

impl LocalConfig {
    /// The settings holding this signer's secret (none for the anvil mnemonic).
    pub fn secret_names(&self) -> Vec<&str> {
        match &self.key {
            LocalKeySource::AnvilMnemonic { .. } => Vec::new(),
            LocalKeySource::HexKeyEnv { var } => vec![var.as_str()],
            LocalKeySource::Keystore { password_env, .. } => vec![password_env.as_str()],
        }
    }

    /// Builds the signer, reading the settings it names through `env` (keystore decryption is
    /// CPU-heavy: call at startup, not per request).
    pub fn build_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<PrivateKeySigner, LocalKeyError> {
        let secret = |var: &str| {
            env(var)
                .map(Zeroizing::new)
                .ok_or_else(|| LocalKeyError::MissingEnv {
                    var: var.to_owned(),
                })
        };
        let signer = match &self.key {
            LocalKeySource::AnvilMnemonic { index } => anvil_dev_account(*index)?,
            LocalKeySource::HexKeyEnv { var } => hex_key(var, &secret(var)?)?,
            LocalKeySource::Keystore { path, password_env } => {
                let password = secret(password_env)?;
                PrivateKeySigner::decrypt_keystore(path, password.as_bytes()).map_err(|source| {
                    LocalKeyError::Keystore {
                        path: path.clone(),
                        source,
                    }
                })?
            }
        };
        Ok(signer.with_chain_id(self.chain_id))
    }
}

/// Account `index` of the anvil dev mnemonic.
pub fn anvil_dev_account(index: u32) -> Result<PrivateKeySigner, LocalKeyError> {
    MnemonicBuilder::<English>::default()
        .phrase(ANVIL_DEV_MNEMONIC)
        .index(index)
        .and_then(|builder| builder.build())
        .map_err(|source| LocalKeyError::Mnemonic { index, source })
}

/// The private key in `value` (hex, optional 0x); `var` names its source in errors.
fn hex_key(var: &str, value: &str) -> Result<PrivateKeySigner, LocalKeyError> {
    let digits = value.trim();
    let digits = digits.strip_prefix("0x").unwrap_or(digits);
    let mut key = Zeroizing::new([0u8; 32]);
    alloy::hex::decode_to_slice(digits, key.as_mut_slice()).map_err(|_| {
        LocalKeyError::InvalidHexKey {
            var: var.to_owned(),
        }
    })?;
    PrivateKeySigner::from_slice(key.as_slice()).map_err(|_| LocalKeyError::InvalidHexKey {
        var: var.to_owned(),
    })
}
