//! The relay's error: every variant means "not done, retry the message" (the queue redelivers
//! it and the next delivery resumes from what the database says). Outcomes that complete the
//! message (sent, failed with a reason, nothing to do) are [`crate::BroadcastOutcome`]s.

use alloy::primitives::{Address, B256};
use meshpay_chain::AddressError;
use meshpay_signer::SignerBuildError;
use meshpay_store::StoreError;

use meshpay_chain::rpc::{RpcFailure, SendClass};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A chain call before signing (fees, gas, nonce floor) failed.
    #[error("chain RPC failed: {0}")]
    Rpc(#[from] RpcFailure),
    /// `eth_sendRawTransaction` failed without a final answer (see [`SendClass`]); the stored
    /// bytes are re-sent on the next delivery.
    #[error("send not acknowledged ({class}): {failure}")]
    Send {
        class: SendClass,
        failure: RpcFailure,
    },
    /// The signer failed (Key Vault throttled or unreachable, ...): nothing was stored.
    #[error("signing failed: {0}")]
    Sign(#[source] alloy::signers::Error),
    /// The signature does not recover to the hot wallet: a key configured for the wrong
    /// address. Nothing is stored or sent.
    #[error("signature recovers to {recovered:?}, not to hot wallet {expected}")]
    SignatureMismatch {
        expected: Address,
        recovered: Option<Address>,
    },
    /// The wallet already has this many transactions the chain has not seen: something is
    /// stuck (a lost send, a fee spike), so no further nonce is handed out on it for now.
    #[error("hot wallet {wallet} has {in_flight} transactions in flight (limit {limit})")]
    WalletBacklog {
        wallet: Address,
        in_flight: u64,
        limit: u64,
    },
    /// Every hot wallet of the chain is halted: no new payment can be signed there.
    #[error("every hot wallet on {0} is halted")]
    AllWalletsHalted(String),
    /// The payment was replaced too often (each time its nonce was taken by another sender).
    #[error("payment has had {0} transactions; not signing another")]
    TooManyAttempts(i32),
    /// The transfer now needs more gas than the quote held for: not signed (retried; the last
    /// delivery fails the payment, which is safe because nothing was signed).
    #[error(
        "the transfer now needs a gas limit of {needed}, above the quoted {quoted}: the held \
         network fee would not cover it, so it is not signed"
    )]
    GasAboveQuote { needed: u64, quoted: u64 },
    /// The transaction about to be signed could cost more than the merchant's hold (a bug or
    /// inconsistent payment row): never signed.
    #[error("worst-case network fee {worst_case} exceeds the held {held}; not signing")]
    FeeAboveHold {
        worst_case: meshpay_domain::Amount,
        held: meshpay_domain::Amount,
    },
    /// Another broadcaster changed the payment while we worked on it.
    #[error("payment changed concurrently")]
    Contended,
    /// The relay's configuration does not cover what the payment needs, or could not be built.
    #[error("configuration: {0}")]
    Config(#[source] Box<RelayConfigError>),
    /// A payment's stored signed bytes do not decode (a manual edit, or a bug): never re-sent.
    #[error("stored transaction {0} does not decode")]
    CorruptStoredTransaction(B256),
    /// The test hook `MESHPAY_FAULT` fired.
    #[error("injected fault: {0}")]
    InjectedFault(&'static str),
}

impl From<RelayConfigError> for RelayError {
    fn from(error: RelayConfigError) -> Self {
        RelayError::Config(Box::new(error))
    }
}

/// Commits and rollbacks fail like any other database call.
impl From<sqlx::Error> for RelayError {
    fn from(error: sqlx::Error) -> Self {
        RelayError::Store(StoreError::from(error))
    }
}

/// Why the relay cannot serve a chain or wallet: its chains and signers do not match, or a
/// signer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RelayConfigError {
    #[error("chain {0} is not configured")]
    UnknownChain(String),
    #[error("no signer for {0}")]
    NoSigner(Address),
    #[error("signer for {address} is not a hot wallet of chain {chain}")]
    NotAHotWallet { address: Address, chain: String },
    #[error("chain {0} has no hot wallet signer")]
    NoHotWalletSigner(String),
    #[error("signer for {address} names unknown chain {chain:?}")]
    SignerChainUnknown { address: String, chain: String },
    #[error("signer address {address}: {source}")]
    SignerAddress {
        address: String,
        #[source]
        source: AddressError,
    },
    #[error("dev-only signer for {address} refused on chain {chain} (chain id {chain_id})")]
    DevSignerOnLiveChain {
        address: Address,
        chain: String,
        chain_id: u64,
    },
    #[error("signer for {address}: {source}")]
    SignerBuild {
        address: Address,
        #[source]
        source: SignerBuildError,
    },
    #[error("signer configured for {expected} signs as {actual}")]
    SignerMismatch { expected: Address, actual: Address },
}
