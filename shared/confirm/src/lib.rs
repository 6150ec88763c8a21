//! meshpay-confirm: what happens after a payment's transaction is sent.
//!
//! - [`Pipeline::confirm`] (function `confirm`, queue `payments-confirm`): the polling path.
//!   Reads the receipt and the chain head; a payment is confirmed when the receipt proves the
//!   transfer ([`receipt`]) and its block is final ([`finality`]); reverted → failed, hold
//!   released, reason recorded; dropped from the pool → the stored raw bytes are re-sent; not
//!   final yet → the message writes a fresh copy of itself (see "Retry later" below).
//! - [`Pipeline::settle`] (function `settle`, queue `payments-settle`): re-checks that the
//!   confirming block is still canonical, then posts the settlement (the store's `Settle`
//!   transition captures the hold: merchant debited, fees to their accounts, outflow credited;
//!   unique per payment). A block that left the chain → `Reorg` (back to broadcast) and a new
//!   confirm message.
//! - [`Pipeline::reconcile`] (function `reconcile`, a timer): bounded sweep for payments stuck
//!   without a pending message, plus the ledger invariants.
//! - [`webhook`]: chain webhook signatures and hints (function `confirm-webhook`).
//!
//! # Retry later
//! The host's queue output binding cannot delay a message, and failing the invocation to get
//! the host's `visibilityTimeout` retry would burn `maxDequeueCount` (then poison a healthy
//! payment). So a check that is not final yet keeps polling *inside* the invocation (every
//! `cadence::next_check`: from `poll_interval_min` up to `poll_interval` as the transaction ages; at most `invocation_wait`, which is also the effective visibility delay),
//! then writes a fresh message to `payments-confirm` (dequeue count starts over) carrying the
//! chain's `(poller, seq)`. The database lease (`meshpay_store::confirmations`) keeps one
//! chain per payment and bounds its total wait (`max_chain_wait`); a chain that ends without a
//! decision records why, and the reconcile timer starts a new one later.

pub mod books;
pub mod cadence;
pub mod config;
mod confirm;
mod error;
pub mod finality;
pub mod message;
pub mod receipt;
mod reconcile;
mod settle;
pub mod wake;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use meshpay_chain::rpc::BooksRpc;
use meshpay_chain::{Chain, ChainsConfig};
use meshpay_store::Store;

pub use config::{ConfigError, ConfirmConfig, ReconcileConfig, WebhookConfig};
pub use confirm::{ConfirmOutcome, Ignored};
pub use error::ConfirmError;
pub use meshpay_chain::rpc::{AlloyRpc, ConfirmRpc};
pub use meshpay_store::confirmations::{CheckOutcome, QueueDelivery};
pub use message::ConfirmMessage;
pub use reconcile::{Flag, HaltedWalletFlag, ReconcileReport, RunClock};
pub use settle::SettleOutcome;

/// Pause before a failed hint subscription is opened again, doubled after each failure in a
/// row up to the ceiling (the database may be down for a while).
const HINT_RESUBSCRIBE: std::time::Duration = std::time::Duration::from_secs(1);
const HINT_RESUBSCRIBE_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// The confirm, settle and reconcile engine: cheap to share (`Arc<Pipeline>`), one per process.
pub struct Pipeline {
    store: Store,
    chains: Arc<ChainsConfig>,
    rpcs: HashMap<String, Arc<dyn ConfirmRpc>>,
    /// The books check's reads (pinned to a block).
    books_rpcs: HashMap<String, Arc<dyn BooksRpc>>,
    /// Each chain's shared head reader (none when `config.head_poll` is off).
    heads: HashMap<String, Arc<wake::HeadWatch>>,
    /// The polling chains running in this process, woken by hints.
    wakers: Arc<wake::Wakers>,
    config: ConfirmConfig,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("chains", &self.rpcs.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// One HTTP JSON-RPC client per configured chain (no I/O until first use).
    pub fn new(store: Store, chains: Arc<ChainsConfig>, config: ConfirmConfig) -> Self {
        let mut rpcs: HashMap<String, Arc<dyn ConfirmRpc>> = HashMap::new();
        let mut books_rpcs: HashMap<String, Arc<dyn BooksRpc>> = HashMap::new();
        for chain in chains.chains() {
            let rpc = Arc::new(
                AlloyRpc::new(chain.rpc_url.clone(), config.rpc_timeout).for_chain(&chain.name),
            );
            rpcs.insert(chain.name.clone(), rpc.clone());
            books_rpcs.insert(chain.name.clone(), rpc);
        }
        let mut pipeline = Pipeline {
            store,
            chains,
            rpcs: HashMap::new(),
            books_rpcs,
            heads: HashMap::new(),
            wakers: Arc::default(),
            config,
        };
        for (chain, rpc) in rpcs {
            pipeline = pipeline.with_rpc(&chain, rpc);
        }
        pipeline
    }

    /// Replaces a chain's RPC (tests put a scripted or faulty node here); its head reader
    /// reads through it too.
    pub fn with_rpc(mut self, chain: &str, rpc: Arc<dyn ConfirmRpc>) -> Self {
        if let Some(interval) = self.config.head_poll {
            self.heads.insert(
                chain.to_owned(),
                wake::HeadWatch::new(rpc.clone(), interval),
            );
        }
        self.rpcs.insert(chain.to_owned(), rpc);
        self
    }

    /// Wakes the polling chain of `payment` if one runs in this process (it checks the chain
    /// at once, see [`wake`]); `true` if one did. Hints from other instances arrive through
    /// [`Pipeline::listen_for_hints`].
    pub fn wake(&self, payment: meshpay_domain::PaymentId) -> bool {
        self.wakers.wake(payment)
    }

    /// Wakes this process's polling chains named by confirm hints from any instance
    /// (`Store::hint_confirmations`), until the returned task is aborted. A lost subscription
    /// is opened again after a pause; hints sent meanwhile are lost, which only costs latency
    /// (each chain's cadence still checks).
    pub fn listen_for_hints(&self) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let wakers = self.wakers.clone();
        tokio::spawn(async move {
            let mut retry = HINT_RESUBSCRIBE;
            loop {
                match store.listen_confirm_hints().await {
                    Ok(mut hints) => {
                        retry = HINT_RESUBSCRIBE;
                        loop {
                            match hints.next().await {
                                Ok(Some(payment)) => {
                                    let woke = wakers.wake(payment);
                                    tracing::debug!(%payment, woke, "confirm hint");
                                }
                                Ok(None) => {
                                    tracing::warn!("confirm hint subscription lost; reconnected");
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "confirm hint subscription failed");
                                    break;
                                }
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "confirm hint subscription not opened");
                    }
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(HINT_RESUBSCRIBE_MAX);
            }
        })
    }

    /// Replaces a chain's RPC of the books check.
    pub fn with_books_rpc(mut self, chain: &str, rpc: Arc<dyn BooksRpc>) -> Self {
        self.books_rpcs.insert(chain.to_owned(), rpc);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &ConfirmConfig {
        &self.config
    }

    fn chain(&self, name: &str) -> Result<(&Chain, &Arc<dyn ConfirmRpc>), ConfirmError> {
        let chain = self
            .chains
            .chain(name)
            .ok_or_else(|| ConfirmError::UnknownChain(name.to_owned()))?;
        let rpc = self
            .rpcs
            .get(name)
            .ok_or_else(|| ConfirmError::NoRpc(name.to_owned()))?;
        Ok((chain, rpc))
    }
}
