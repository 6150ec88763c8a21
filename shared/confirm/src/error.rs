//! The steps' error: every variant means "not done, let the queue deliver the message again"
//! (the next delivery resumes from what the database says). Outcomes that complete a message
//! (confirmed, failed with a reason, waiting, nothing to do) are not errors.

use meshpay_chain::rpc::RpcFailure;
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
    /// A queue message of a version this build does not understand: failing the invocation lets
    /// the host poison it instead of acting on fields it may misread.
    #[error("unsupported message version {found} (expected {expected})")]
    UnsupportedMessageVersion { found: u8, expected: u8 },
}

impl From<sqlx::Error> for ConfirmError {
    fn from(error: sqlx::Error) -> Self {
        ConfirmError::Store(StoreError::from(error))
    }
}
