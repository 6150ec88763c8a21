//! The steps' error: every variant means "not done, let the queue deliver the message again"
//! (the next delivery resumes from what the database says). Outcomes that complete a message
//! (confirmed, failed with a reason, waiting, nothing to do) are not errors.

use meshpay_relay::RpcFailure;
use meshpay_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A chain call whose answer the step cannot do without (settle's canonical-block check).
    #[error("chain RPC failed: {0}")]
    Rpc(#[from] RpcFailure),
    /// The payment's chain or asset is not configured in this process.
    #[error("configuration: {0}")]
    Config(String),
    /// Another delivery kept changing the payment while this one worked on it.
    #[error("payment changed concurrently")]
    Contended,
}

impl From<sqlx::Error> for ConfirmError {
    fn from(error: sqlx::Error) -> Self {
        ConfirmError::Store(StoreError::from(error))
    }
}
