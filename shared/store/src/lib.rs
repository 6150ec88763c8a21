//! meshpay-store: PostgreSQL state of meshpay (sqlx, runtime-checked queries; migrations embedded
//! from `shared/store/migrations`).
//!
//! # Public API (stable; everything is a method of [`Store`] unless noted)
//!
//! ```text
//! Store::connect(url, max_connections) / Store::from_pool(pool) / .with_config(StoreConfig)
//! Store::connect_with(&DbConfig) / Store::connect_lazy_with(&DbConfig)   (DbConfig, Entra login: connect)
//! store.migrate()                                        MIGRATOR (static, for TestDb::create_migrated)
//! store.pool() -> &PgPool                                store.begin() -> sqlx::Transaction
//!
//! // merchants
//! create_merchant(&NewMerchant{name, service_fee_bps, limits}) -> Merchant
//! get_merchant(MerchantId) -> Option<Merchant>          set_limit(MerchantId, &AssetLimit)
//! // API keys ("mp_live_<16 hex>_<64 hex>", SHA-256 stored, constant-time check)
//! create_api_key(MerchantId, Scopes) -> CreatedApiKey{id, key: ApiKeySecret (expose() once), ..}
//! revoke_api_key(ApiKeyId) -> ApiKeyInfo                  authenticate(&str) -> Option<Principal>
//! // quotes (tenant-scoped: another merchant's quote is None)
//! insert_quote(&NewQuote{merchant_id, charges, recipient, gas_limit, max_fee_per_gas, ..}) -> Quote
//! get_quote(MerchantId, QuoteId) -> Option<Quote>
//! // payments
//! authorize_payment(&AuthorizeRequest, render: FnOnce(&Payment) -> StoredResponse) -> AuthorizeOutcome
//! request_fingerprint(&serde_json::Value) -> [u8; 32]    (free fn: AuthorizeRequest.request_hash)
//! get_payment(MerchantId, PaymentId) -> Option<Payment>  get_payment_unscoped(PaymentId)
//! list_payments(MerchantId, &ListPayments{status, limit, before}) -> PaymentPage{items, next_cursor}
//! payment_events(PaymentId) -> Vec<PaymentEventRecord>
//! cancel_payment(MerchantId, PaymentId) -> Payment
//! transition_payment(&Transition) -> Payment             apply_transition(&mut PgConnection, &Transition) (free fn)
//! // ledger
//! fund(MerchantId, &AssetId, Amount, reference) -> FundOutcome{transaction_id, created}
//! balances(MerchantId) -> Vec<Balance{asset, available, held}>
//! check_ledger_invariants() -> Result<(), StoreError::InvariantViolated(..)>
//! // outbox
//! claim_outbox(topic, limit, lease) -> Vec<OutboxMessage>   complete_outbox(id)   retry_outbox(id, delay, err)
//! outbox_for_payment(PaymentId) -> Vec<(topic, payload)>
//! ```
//!
//! Errors are [`StoreError`]; the API maps: `NotFound`→404, `QuoteExpired`/`QuoteAlreadyUsed`→409
//! (or 422), `InsufficientFunds`→402, `LimitExceeded`→422, `IdempotencyKeyReused`→422,
//! `IdempotencyInFlight`→409, `IllegalTransition`/`Conflict`→409, everything else →500.
//!
//! # Model
//! - A payment row is created `authorized` (the `quoted` state is the quote row) with version 1;
//!   every later change goes through [`apply_transition`] (optimistic version check, domain
//!   transition, ledger effect, event, outbox) in one transaction.
//! - Money: NUMERIC(78,0) base units, exchanged as text. Holds are double-entry postings between a
//!   merchant's `available` and `held` accounts; see [`ledger`] for the concurrency rules.
//! - A token payment debits two assets: token (amount + service fee) and native (network fee);
//!   see [`meshpay_domain::Charges`].
//! - Outbox: authorize writes `queue:payments-broadcast` (payload `PaymentMessage`) and a
//!   `webhook` event; every transition writes a `webhook` event plus the caller's messages.

pub mod api_keys;
pub mod authorize;
pub mod books;
pub mod confirmations;
pub mod connect;
mod convert;
pub mod error;
pub mod invoices;
mod keyset;
pub mod ledger;
pub mod merchants;
pub mod operations;
pub mod outbox;
mod outbox_upkeep;
pub mod payments;
pub mod quotes;
pub mod replacements;
pub mod review;
pub mod sweeps;
pub mod transactions;
pub mod transition;
pub mod webhooks;

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

pub use api_keys::{
    ApiKeyInfo, ApiKeyListing, ApiKeySecret, CreatedApiKey, KEY_PREFIX, KeyCheck, KeyOptions,
    Principal, RotatedApiKey,
};
pub use authorize::{
    AuthorizeOutcome, AuthorizeRequest, DEFAULT_MAX_OPEN_PAYMENTS, StoredResponse,
    request_fingerprint,
};
pub use connect::{ConnectMode, DbAuth, DbConfig, DbConfigError, DbConnectError, EntraCredential};
pub use error::{LimitKind, Result, StoreError};
pub use invoices::reviews::{RetryOutcome, ReversalReview};
pub use invoices::{
    CreateInvoiceOutcome, Invoice, InvoicePage, InvoicePayment, ListInvoices, NewInvoice,
    PaymentSeen,
};
pub use ledger::{Balance, FundOutcome};
pub use merchants::{AssetLimit, Merchant, NewMerchant};
pub use operations::{AuditEntry, AuditRecord, MerchantControls, PruneReport};
pub use outbox::{NewOutboxMessage, OutboxMessage, topics};
pub use outbox_upkeep::OutboxDispatch;
pub use payments::{ListPayments, Payment, PaymentEventRecord, PaymentPage};
pub use quotes::{NewQuote, Quote};
pub use transition::{PaymentPatch, Transition, apply_transition, webhook_event_type};

/// The embedded migrations (`shared/store/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Tunables.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Longest wait for a row lock inside `authorize_payment` (mostly: a concurrent request with
    /// the same Idempotency-Key) before giving up with `IdempotencyInFlight` / a retryable error.
    pub lock_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            lock_timeout: Duration::from_secs(5),
        }
    }
}

/// Handle to the database: cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    config: StoreConfig,
}

impl Store {
    /// Connects a pool of at most `max_connections` (keep it small per instance: Azure Functions
    /// scale out by instances, and the server's connection limit is shared).
    pub async fn connect(database_url: &str, max_connections: u32) -> Result<Store> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(database_url)
            .await?;
        Ok(Store::from_pool(pool))
    }

    /// Connects as `config` says (`DATABASE_URL` as is, or an Entra ID token renewed in the
    /// background; see [`connect`]) before returning: for CLI commands and steps that want to
    /// fail fast.
    pub async fn connect_with(config: &DbConfig) -> std::result::Result<Store, DbConnectError> {
        let pool = connect::connect(config, ConnectMode::Eager).await?;
        Ok(Store::from_pool(pool))
    }

    /// Like [`Store::connect_with`], but the pool connects on first use (`serve`: a database
    /// outage shows up as failed calls, not as a process that cannot start). With Entra ID it
    /// still waits briefly for the first token.
    pub async fn connect_lazy_with(
        config: &DbConfig,
    ) -> std::result::Result<Store, DbConnectError> {
        let pool = connect::connect(config, ConnectMode::Lazy).await?;
        Ok(Store::from_pool(pool))
    }

    pub fn from_pool(pool: PgPool) -> Store {
        Store {
            pool,
            config: StoreConfig::default(),
        }
    }

    pub fn with_config(mut self, config: StoreConfig) -> Store {
        self.config = config;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations (idempotent; concurrent runners serialize on sqlx's lock).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// A transaction for composing writes with [`apply_transition`].
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }
}
