//! Relay configuration: tunables, and which key signs for which hot wallet.
//!
//! The signers file (its path is the binary's `MESHPAY_SIGNERS_CONFIG` setting) maps each hot wallet of `chains.toml`
//! to a `meshpay-signer` configuration; the signer's address must equal the listed address:
//!
//! ```toml
//! [[wallets]]
//! chain = "anvil"
//! address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
//! signer = { kind = "local", key = { source = "anvil_mnemonic", index = 1 } }
//!
//! [[wallets]]
//! chain = "mainnet"
//! address = "0x…"
//! signer = { kind = "key_vault", vault_url = "https://….vault.azure.net/", key_name = "hot-1", credential = { kind = "managed_identity" } }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshpay_signer::SignerConfig;
use meshpay_store::transactions::TxTimeouts;
use serde::{Deserialize, Serialize};

use crate::fault::Fault;

pub use meshpay_chain::DEV_CHAIN_ID;

/// Tunables of the broadcast step.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Bound on every JSON-RPC call.
    pub rpc_timeout: Duration,
    /// How long a fee estimate is reused for further payments of the chain.
    pub fee_cache_ttl: Duration,
    /// The queue's delivery limit (host.json `maxDequeueCount`): on the last delivery, a payment
    /// that can still fail safely (nothing sent, or refused by the node) fails with its reason
    /// instead of leaving the message to the poison queue.
    pub max_deliveries: u64,
    /// The in-flight window: most nonces a wallet may have ahead of the chain's pending nonce
    /// (reserved and being signed, stored and not yet sent, or lost). Beyond it a new
    /// payment's delivery allocates nothing and is retried (a gap is always filled).
    pub max_in_flight_per_wallet: u64,
    /// Bounds on the broadcast step's database transactions (lock wait, statement time).
    pub db_timeouts: TxTimeouts,
    /// Most transactions one payment may get (a new one each time its nonce was consumed by
    /// another sender).
    pub max_attempts: i32,
    /// A handed-back nonce no payment reused for this long is filled by reconcile with a
    /// 0-value self-transfer ([`crate::Relay::fill_stale_gaps`]).
    pub gap_fill_after: Duration,
    /// A wallet whose oldest unconfirmed transaction was signed longer ago than this is
    /// treated as stuck: new payments go to a healthy wallet while there is one.
    pub wallet_stuck_after: Duration,
    /// A pending transaction that waited this long is re-priced when the fee estimate is above
    /// what it pays or when it is next in line on its wallet and still not mined (one below
    /// the next base fee is re-priced at once), see
    /// [`crate::fee_policy`].
    pub replace_after: Duration,
    /// Test hook ([`Fault`]).
    pub fault: Option<Fault>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            rpc_timeout: Duration::from_secs(10),
            fee_cache_ttl: Duration::from_secs(1),
            max_deliveries: 5,
            max_in_flight_per_wallet: 64,
            db_timeouts: TxTimeouts {
                lock: Duration::from_secs(2),
                statement: Duration::from_secs(5),
            },
            max_attempts: 5,
            gap_fill_after: Duration::from_secs(5 * 60),
            wallet_stuck_after: Duration::from_secs(10 * 60),
            replace_after: Duration::from_secs(60),
            fault: None,
        }
    }
}

/// Setting of [`RelayConfig::gap_fill_after`] (seconds, default 300).
pub const GAP_FILL_AFTER_ENV: &str = "MESHPAY_GAP_FILL_AFTER_SECS";
/// Setting of [`RelayConfig::wallet_stuck_after`] (seconds, default 600).
pub const WALLET_STUCK_AFTER_ENV: &str = "MESHPAY_WALLET_STUCK_AFTER_SECS";

/// Setting of [`RelayConfig::max_in_flight_per_wallet`] (default 64).
pub const WALLET_MAX_IN_FLIGHT_ENV: &str = "MESHPAY_WALLET_MAX_IN_FLIGHT";
/// Setting of [`RelayConfig::replace_after`] (seconds, default 60).
pub const REPLACE_AFTER_ENV: &str = "MESHPAY_REPLACE_AFTER_SECS";

/// A relay setting that is not a number in its range.
#[derive(Debug, thiserror::Error)]
#[error("{name} must be a whole number from {min} to {max}, not {value:?}")]
pub struct RelaySettingError {
    pub name: &'static str,
    pub value: String,
    pub min: u64,
    pub max: u64,
}

impl RelayConfig {
    /// The defaults, with the gap-fill and stuck-wallet ages and the in-flight window from the
    /// settings `lookup` gives.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RelayConfig, RelaySettingError> {
        let defaults = RelayConfig::default();
        let number = |name: &'static str, default: u64, max: u64| match lookup(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(RelaySettingError {
                    name,
                    value: text,
                    min: 1,
                    max,
                }),
        };
        let secs = |name: &'static str, default: Duration| {
            number(name, default.as_secs(), 7 * 86_400).map(Duration::from_secs)
        };
        Ok(RelayConfig {
            gap_fill_after: secs(GAP_FILL_AFTER_ENV, defaults.gap_fill_after)?,
            wallet_stuck_after: secs(WALLET_STUCK_AFTER_ENV, defaults.wallet_stuck_after)?,
            max_in_flight_per_wallet: number(
                WALLET_MAX_IN_FLIGHT_ENV,
                defaults.max_in_flight_per_wallet,
                10_000,
            )?,
            replace_after: secs(REPLACE_AFTER_ENV, defaults.replace_after)?,
            ..defaults
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignersConfigError {
    #[error("cannot read signers config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signers config is not valid: {0}")]
    Parse(#[from] toml::de::Error),
}

/// The signers file: parsed by the broadcast step, written by `meshpay wallets`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignersFile {
    #[serde(default)]
    pub wallets: Vec<WalletEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WalletEntry {
    pub chain: String,
    /// EIP-55 address the signer must produce.
    pub address: String,
    pub signer: SignerConfig,
}

impl SignersFile {
    pub fn load(path: &Path) -> Result<Self, SignersConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignersConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    pub fn from_toml_str(text: &str) -> Result<Self, SignersConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// The settings holding the file's local keys or keystore passwords (read by the binary
    /// into a `SignerSecrets`).
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.wallets
            .iter()
            .flat_map(|wallet| wallet.signer.secret_names())
    }

    /// The file's TOML text, readable by [`SignersFile::from_toml_str`].
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signers_file_maps_wallets_to_signer_configs() {
        let file = SignersFile::from_toml_str(
            r#"
            [[wallets]]
            chain = "anvil"
            address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            signer = { kind = "local", key = { source = "anvil_mnemonic", index = 1 } }
            "#,
        )
        .unwrap();
        assert_eq!(file.wallets.len(), 1);
        assert!(file.wallets[0].signer.is_dev_only());
    }

    #[test]
    fn a_written_signers_file_reads_back_as_the_same_file() {
        use meshpay_signer::{
            CredentialConfig, KeyVaultConfig, LocalConfig, LocalKeySource, RetryConfig,
        };
        let file = SignersFile {
            wallets: vec![
                WalletEntry {
                    chain: "anvil".into(),
                    address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
                    signer: SignerConfig::Local(LocalConfig {
                        key: LocalKeySource::AnvilMnemonic { index: 1 },
                        chain_id: None,
                    }),
                },
                WalletEntry {
                    chain: "base".into(),
                    address: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC".into(),
                    signer: SignerConfig::KeyVault(KeyVaultConfig {
                        vault_url: "https://meshpay-prod.vault.azure.net/".into(),
                        key_name: "hot-1".into(),
                        key_version: Some("0a0a0a0a".into()),
                        credential: CredentialConfig::ManagedIdentity {
                            client_id: Some("6a1d1e4c-0000-4000-8000-000000000001".into()),
                        },
                        chain_id: Some(8453),
                        retry: RetryConfig {
                            max_attempts: 3,
                            ..RetryConfig::default()
                        },
                    }),
                },
            ],
        };
        let text = file.to_toml_string().unwrap();
        assert_eq!(SignersFile::from_toml_str(&text).unwrap(), file, "{text}");
    }

    #[test]
    fn default_retry_limits_are_left_out_of_a_written_file() {
        let file = SignersFile::from_toml_str(
            r#"
            [[wallets]]
            chain = "base"
            address = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
            signer = { kind = "key_vault", vault_url = "https://kv.vault.azure.net/", key_name = "hot-1", credential = { kind = "managed_identity" } }
            "#,
        )
        .unwrap();
        let text = file.to_toml_string().unwrap();
        assert!(!text.contains("retry"), "{text}");
        assert!(!text.contains("key_version"), "{text}");
        assert!(!text.contains("client_id"), "{text}");
    }

    #[test]
    fn gap_fill_and_stuck_ages_come_from_settings_within_range() {
        let config = RelayConfig::from_lookup(|name| match name {
            GAP_FILL_AFTER_ENV => Some("120".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.gap_fill_after, Duration::from_secs(120));
        assert_eq!(config.wallet_stuck_after, Duration::from_secs(600));
        let error = RelayConfig::from_lookup(|name| {
            (name == WALLET_STUCK_AFTER_ENV).then(|| "0".to_owned())
        })
        .unwrap_err();
        assert_eq!(error.name, WALLET_STUCK_AFTER_ENV);
    }

    #[test]
    fn the_in_flight_window_comes_from_its_setting_within_range() {
        let config = RelayConfig::from_lookup(|name| {
            (name == WALLET_MAX_IN_FLIGHT_ENV).then(|| " 16 ".to_owned())
        })
        .unwrap();
        assert_eq!(config.max_in_flight_per_wallet, 16);
        assert_eq!(
            RelayConfig::from_lookup(|_| None)
                .unwrap()
                .max_in_flight_per_wallet,
            64
        );
        for bad in ["0", "10001", "-1", "many"] {
            let error = RelayConfig::from_lookup(|name| {
                (name == WALLET_MAX_IN_FLIGHT_ENV).then(|| bad.to_owned())
            })
            .unwrap_err();
            assert_eq!(error.name, WALLET_MAX_IN_FLIGHT_ENV, "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let error = SignersFile::from_toml_str(
            r#"
            [[wallets]]
            chain = "anvil"
            address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            key = "0xac09"
            signer = { kind = "local", key = { source = "anvil_mnemonic", index = 1 } }
            "#,
        );
        assert!(error.is_err());
    }
}
