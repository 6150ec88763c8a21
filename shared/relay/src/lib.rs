//! meshpay-relay: the broadcast step's engine. Turns an authorized payment into exactly one
//! signed transaction on chain.
//!
//! - [`Relay::broadcast`]: the algorithm (module `broadcast`): plan (fees, gas, nonce floor) →
//!   reserve the nonce (short transaction) → sign with no lock held → store raw bytes,
//!   authorized → broadcast (short transaction) → send → classify. A redelivered message signs
//!   a reserved nonce again, or re-sends the stored bytes.
//! - [`transfer`]: native and ERC-20 `transfer` calls, EIP-1559 signing.
//! - [`fees`]: capped EIP-1559 fees and gas limits with margin.
//! - [`fee_policy`] and [`Relay::reprice`]: same-nonce replacement (fee bump within the held
//!   ceiling, or a cancellation), `stalled` when the fee market is above the quote.
//! - [`wallets`]: the hot-wallet pool of a chain and how a payment picks a wallet.
//! - JSON-RPC: [`meshpay_chain::rpc`] ([`ChainRpc`], [`AlloyRpc`], [`classify_send`]).
//! - [`fault`]: the crash-test hook (`MESHPAY_FAULT`, dev/test builds only).
//! - [`Relay::heal_wallet`] / [`Relay::heal_wallets`]: re-send stored transactions the chain
//!   has not seen (lost sends); the reconcile timer runs the latter with a budget.
//! - [`Relay::fill_stale_gaps`]: fill a quiet wallet's stale nonce gap with a 0-value
//!   self-transfer (the reconcile timer).
//! - [`LazyRelay`]: one relay per process, built from its [`RelaySetup`] (the process's store,
//!   chains, signers file) on first use and shared by the functions that need it (broadcast,
//!   reconcile).
//!
//! # Nonces
//! Per (chain, hot wallet) in PostgreSQL (`meshpay_store::transactions`): allocated under the
//! wallet row lock in a short transaction that also stores the payment's reservation (every
//! field of the transaction to sign), so a nonce never exists without either signed bytes that
//! can be re-sent or a reservation its payment's next delivery signs again; a signing failure
//! hands it back. At most [`RelayConfig::max_in_flight_per_wallet`] nonces of a wallet are ahead
//! of the chain's pending nonce. The chain's pending nonce is a floor (raised to on
//! allocation and after "nonce too low"); a refused transaction's nonce is handed back (counter
//! rewound, or recorded as a gap the next allocation fills), so the counter cannot drift above
//! the chain over a hole (OpenZeppelin relayer #683/#818/#843).

mod broadcast;
pub mod config;
mod error;
pub mod fault;
pub mod fee_policy;
pub mod fees;
mod fill;
mod heal;
mod lazy;
mod replace;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod transfer;
mod wallet_tx;
pub mod wallets;

use std::collections::HashMap;
use std::sync::Arc;

use alloy::network::TxSigner;
use alloy::primitives::{Address, B256};
use meshpay_chain::{Chain, ChainsConfig};
use meshpay_domain::{PaymentId, PaymentStatus};
use meshpay_signer::SignerSecrets;
use meshpay_store::Store;

pub use config::{RelayConfig, RelaySettingError, SignersConfigError, SignersFile, WalletEntry};
pub use error::{RelayConfigError, RelayError};
pub use fault::{FAULT_ENV, Fault, FaultMode, FaultPoint};
pub use fill::GapFillReport;
pub use heal::{HealBudget, HealReport, WalletHeal};
pub use lazy::{LazyRelay, RelaySetup};
pub use meshpay_chain::rpc::{AlloyRpc, ChainRpc, RpcFailure, SendClass, classify_send};
pub use replace::{Replacement, RepriceMode, RepriceOutcome};
pub use wallet_tx::WalletSend;
pub use wallets::{DynTxSigner, WalletPool};

/// Which delivery of the queue message this is (the trigger's `DequeueCount`, 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub dequeue_count: u64,
}

impl Delivery {
    pub const FIRST: Delivery = Delivery { dequeue_count: 1 };

    pub fn new(dequeue_count: Option<u64>) -> Self {
        Delivery {
            dequeue_count: dequeue_count.unwrap_or(1).max(1),
        }
    }
}

/// How the node acknowledged our transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// `eth_sendRawTransaction` returned the hash.
    Accepted,
    /// "already known": it was in the pool from an earlier send.
    AlreadyKnown,
    /// "nonce too low" and the chain knows our hash: mined (or pending) from an earlier send.
    OnChain,
    /// Refused as a same-nonce replacement ("replacement transaction underpriced", ...) while
    /// the node knows our hash: the pooled transaction on our nonce is this one.
    Known,
}

/// A payment's transaction that a node has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentTransaction {
    pub payment_id: PaymentId,
    pub chain: String,
    pub from: Address,
    pub nonce: u64,
    pub tx_hash: B256,
    /// 1 for the payment's first transaction.
    pub attempt: i32,
    pub ack: Ack,
}

/// Why a message needed no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    UnknownPayment,
    /// Neither authorized nor broadcast (cancelled, failed, already confirmed, ...).
    Status(PaymentStatus),
    /// Broadcast, but no live transaction is stored (not ours, or a manual edit).
    NoLiveTransaction,
}

/// What a delivery achieved; each completes the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastOutcome {
    /// A node has the payment's transaction: the confirm step takes over.
    Sent(SentTransaction),
    /// The payment failed with this reason (its hold was released).
    Failed {
        payment_id: PaymentId,
        reason: String,
    },
    /// Neither sent nor failed: signed bytes of the payment may still be mined, so it stays
    /// `broadcast` with its nonce and hold, flagged for an operator with this reason (the
    /// reconcile timer reports it on every run).
    Parked {
        payment_id: PaymentId,
        reason: String,
    },
    Ignored {
        payment_id: PaymentId,
        reason: Ignored,
    },
    /// An in-flight payment's transaction was re-priced, replaced by its cancellation, or
    /// could not be (stalled), see [`Relay::reprice`].
    Repriced(RepriceOutcome),
}

/// One chain as the relay sees it.
pub(crate) struct ChainContext {
    pub chain: Chain,
    pub rpc: Arc<dyn ChainRpc>,
    pub wallets: WalletPool,
    pub fees: fees::FeeOracle,
}

/// The broadcast engine: cheap to share (`Arc<Relay>`), one per process.
pub struct Relay {
    store: Store,
    chains: HashMap<String, ChainContext>,
    config: RelayConfig,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("chains", &self.chains.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay without chains; add them with [`Relay::with_chain`].
    pub fn new(store: Store, config: RelayConfig) -> Relay {
        Relay {
            store,
            chains: HashMap::new(),
            config,
        }
    }

    /// Adds a chain with its RPC and the signers of its hot wallets. Every signer must be one of
    /// the chain's configured `hot_wallets` (the API quotes from that list).
    pub fn with_chain(
        mut self,
        chain: Chain,
        rpc: Arc<dyn ChainRpc>,
        signers: Vec<DynTxSigner>,
    ) -> Result<Relay, RelayError> {
        let name = chain.name.clone();
        for signer in &signers {
            let address = TxSigner::address(signer.as_ref());
            if !chain.hot_wallets.contains(&address) {
                return Err(RelayConfigError::NotAHotWallet {
                    address,
                    chain: name,
                }
                .into());
            }
        }
        let wallets = WalletPool::new(signers)
            .ok_or_else(|| RelayConfigError::NoHotWalletSigner(name.clone()))?;
        let fees = fees::FeeOracle::new(chain.max_fee_per_gas_cap_wei, self.config.fee_cache_ttl);
        self.chains.insert(
            name,
            ChainContext {
                chain,
                rpc,
                wallets,
                fees,
            },
        );
        Ok(self)
    }

    /// Builds every chain of `chains` that has signers in `signers` (HTTP RPC, signers built
    /// from their configs; a Key Vault signer reads its public key here).
    pub async fn from_config(
        store: Store,
        chains: &ChainsConfig,
        signers: &SignersFile,
        secrets: &SignerSecrets,
        config: RelayConfig,
    ) -> Result<Relay, RelayError> {
        let mut relay = Relay::new(store, config);
        for chain in chains.chains() {
            let mut built: Vec<DynTxSigner> = Vec::new();
            for entry in signers.wallets.iter().filter(|w| w.chain == chain.name) {
                built.push(build_signer(chain, entry, secrets).await?);
            }
            if built.is_empty() {
                tracing::warn!(chain = %chain.name, "no signers configured: payments on this chain are not broadcast");
                continue;
            }
            let rpc = Arc::new(
                AlloyRpc::new(chain.rpc_url.clone(), relay.config.rpc_timeout)
                    .for_chain(&chain.name),
            );
            relay = relay.with_chain(chain.clone(), rpc, built)?;
        }
        if let Some(orphan) = signers
            .wallets
            .iter()
            .find(|w| chains.chain(&w.chain).is_none())
        {
            return Err(RelayConfigError::SignerChainUnknown {
                address: orphan.address.clone(),
                chain: orphan.chain.clone(),
            }
            .into());
        }
        Ok(relay)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// The hot wallets the relay can sign for on `chain`.
    pub fn wallets(&self, chain: &str) -> Option<&WalletPool> {
        self.chains.get(chain).map(|c| &c.wallets)
    }
}

async fn build_signer(
    chain: &Chain,
    entry: &config::WalletEntry,
    secrets: &SignerSecrets,
) -> Result<DynTxSigner, RelayError> {
    let expected = meshpay_chain::parse_address(&entry.address).map_err(|source| {
        RelayConfigError::SignerAddress {
            address: entry.address.clone(),
            source,
        }
    })?;
    if entry.signer.is_dev_only() && chain.chain_id != config::DEV_CHAIN_ID {
        return Err(RelayConfigError::DevSignerOnLiveChain {
            address: expected,
            chain: chain.name.clone(),
            chain_id: chain.chain_id,
        }
        .into());
    }
    let signer =
        entry
            .signer
            .build(secrets)
            .await
            .map_err(|source| RelayConfigError::SignerBuild {
                address: expected,
                source,
            })?;
    let actual = alloy::signers::Signer::address(&signer);
    if actual != expected {
        return Err(RelayConfigError::SignerMismatch { expected, actual }.into());
    }
    Ok(Arc::new(signer))
}
