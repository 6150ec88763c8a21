//! The steps' error: every variant means "not done, let the queue deliver the message again"
//! (the next delivery resumes from what the database says). Outcomes that complete a message
//! (confirmed, failed with a reason, waiting, nothing to do) are not errors.

use meshpay_chain::rpc::RpcFailure;
use meshpay_domain::PaymentId;
use meshpay_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A chain call whose answer the step cannot do without (settle's canonical-block check).
    #[error("chain RPC failed: {0}")]
    Rpc(#[from] RpcFailure),
    /// The payment's chain is not configured in this process.
    #[error("configuration: chain {0} is not configured")]
    UnknownChain(String),
    /// The payment's chain is configured without an RPC client.
    #[error("configuration: no RPC for chain {0}")]
    NoRpc(String),
    /// A confirmed payment without its transaction or block: a row edited by hand, or a bug.
    #[error("confirmed payment {0} has no transaction or block recorded")]
    ConfirmationMissing(PaymentId),
    /// The step's output messages could not be written (our own types: a bug worth a retry).
    #[error("writing the output messages: {0}")]
    Output(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The node's answers do not show what happened (a receipt missing while its block is
    /// still canonical: a lagging backend); nothing was changed, the message is retried.
    #[error("inconclusive: {0}")]
    Inconclusive(String),
    /// Another delivery kept changing the payment while this one worked on it.
    #[error("payment changed concurrently")]
    Contended,
}

impl From<sqlx::Error> for ConfirmError {
    fn from(error: sqlx::Error) -> Self {
        ConfirmError::Store(StoreError::from(error))
    }
}
