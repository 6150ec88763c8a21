//! meshpay-chain: the EVM chains meshpay pays on.
//!
//! - [`config`]: typed `chains.toml` (file named by `MESHPAY_CHAINS_CONFIG`), validated at load.
//! - [`l1_fee`]: the L1 data fee of OP-stack chains (held by quotes, posted from receipts).
//! - [`recipient`]: EIP-55 / zero-address / deny-list checks on payment recipients.
//! - [`fees`]: EIP-1559 fee estimation (capped per chain) and gas limits for quotes.
//! - [`redact`]: strips URLs (RPC endpoints carry API keys) from error text.
//! - [`token_check`]: a node's view of the configured tokens (`meshpay chains check --rpc-url`).
//! - [`rpc`]: the JSON-RPC client the broadcast and confirm steps share, its failures and their
//!   classification.

pub mod address;
pub mod config;
pub mod fees;
pub mod flushed;
pub mod l1_fee;
pub mod recipient;
pub mod redact;
pub mod rpc;
pub mod token_check;

pub use address::{AddressError, parse_address};
pub use config::{Chain, ChainProblem, ChainsConfig, ConfigError, DEV_CHAIN_ID};
pub use fees::{
    FeeError, FeeEstimate, FeeEstimator, FixedFeeEstimator, RpcFeeEstimator, TransferSpec,
};
pub use recipient::RecipientError;
pub use redact::redact_urls;

/// Re-exported so callers name the same primitive types.
pub use alloy::primitives::{Address, U256};
