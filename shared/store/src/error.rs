//! The store's one error type. Business outcomes are variants of their own (the API maps each to
//! a problem+json `code`); database failures are wrapped, never stringified.

use meshpay_domain::{Address, Amount, AssetId, IllegalTransition, PaymentId};

/// Which merchant limit a payment would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// `max_per_payment`: the payment's amount alone is too large.
    PerPayment,
    /// `daily_max`: today's (UTC) authorized volume plus this payment is too large.
    Daily,
}

impl LimitKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitKind::PerPayment => "per_payment",
            LimitKind::Daily => "daily",
        }
    }
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist *for this merchant* (another tenant's rows are reported the same
    /// way, so existence never leaks).
    #[error("not found")]
    NotFound,
    #[error("quote has expired")]
    QuoteExpired,
    #[error("quote has already been used by a payment")]
    QuoteAlreadyUsed,
    /// Amounts are base units of `asset`.
    #[error("insufficient funds in {asset}: {available} available, {required} required")]
    InsufficientFunds {
        asset: AssetId,
        available: Amount,
        required: Amount,
    },
    /// `limit` is in base units of `asset`.
    #[error("{which} limit of {limit} exceeded for {asset}")]
    LimitExceeded {
        which: LimitKind,
        asset: AssetId,
        limit: Amount,
    },
    /// The merchant already has `limit` payments that are not finished (authorized, in flight
    /// or parked): a runaway client cannot tie up every hot wallet and all its balance.
    #[error("the merchant already has {limit} open payments")]
    OpenPaymentsCap { limit: u32 },
    /// The merchant is suspended: no key of it works and none of its payments is sent.
    #[error("merchant is suspended")]
    MerchantSuspended,
    /// The Idempotency-Key was used before with a different request.
    #[error("idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// Another request with this Idempotency-Key is still running (we waited `lock_timeout`).
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyInFlight,
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    #[error(transparent)]
    IllegalInvoiceTransition(#[from] meshpay_domain::IllegalInvoiceTransition),
    /// Optimistic concurrency: the payment changed since it was read (`expected` version).
    #[error("payment was modified concurrently (expected version {expected})")]
    Conflict { expected: i64 },
    /// A funding reference was used before for a different merchant, asset or amount.
    #[error("ledger reference was already used with different details")]
    ReferenceReused,
    /// The wallet is halted (see [`crate::transactions::halt_wallet`]): no nonce is handed out
    /// on it until an operator resumes it.
    #[error("hot wallet {wallet} on {chain} is halted: {reason}")]
    WalletHalted {
        chain: String,
        wallet: Address,
        reason: String,
    },
    /// The wallet's counter is below the chain's pending nonce: nonces meshpay never handed
    /// out were used. Nothing was written; the caller halts the wallet.
    #[error(
        "hot wallet {wallet} on {chain}: the chain's pending nonce {chain_nonce} is above the \
         counter {next_nonce} (the key was used outside meshpay, or committed broadcasts were lost)"
    )]
    WalletBehindChain {
        chain: String,
        wallet: Address,
        next_nonce: u64,
        chain_nonce: u64,
    },
    /// Input the store refuses (inconsistent quote totals, empty scopes, ...): a caller bug or
    /// bad CLI input.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The chain charged more network fee than the payment held for it (its transaction was
    /// priced above the quote). Nothing is posted: taking the difference would overdraw the
    /// hold, so the payment waits for an operator. Amounts are native-asset base units.
    #[error(
        "payment {payment}: the chain charged a network fee of {charged}, more than the {held} held"
    )]
    NetworkFeeExceedsHold {
        payment: PaymentId,
        charged: Amount,
        held: Amount,
    },
    /// `check_ledger_invariants` found problems (each string names one).
    #[error("ledger invariants violated: {}", .0.join("; "))]
    InvariantViolated(Vec<String>),
    /// A stored value did not parse back (a bug or a manual edit).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// PostgreSQL error codes the store reacts to.
pub(crate) mod pg_code {
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
}

impl StoreError {
    /// The database error code, if this is a database error.
    pub fn db_code(&self) -> Option<String> {
        match self {
            StoreError::Db(e) => e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned()),
            _ => None,
        }
    }

    /// Transient failures a caller may retry as-is (connection problems, serialization failures,
    /// deadlocks, a lock wait that timed out, an in-flight idempotent request).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::IdempotencyInFlight => true,
            StoreError::Db(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => true,
            StoreError::Db(_) => matches!(
                self.db_code().as_deref(),
                Some(
                    pg_code::SERIALIZATION_FAILURE
                        | pg_code::DEADLOCK_DETECTED
                        | pg_code::LOCK_NOT_AVAILABLE
                )
            ),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
