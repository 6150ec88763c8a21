//! meshpay-client: a typed client of the meshpay HTTP API, for the dev tool's demo and the
//! end-to-end tests.
//!
//! Answers are read into the API's own view types ([`QuoteView`], [`PaymentView`], ...), so a
//! change of the API's shape is a compile error here, not a silent drift. An error answer is a
//! [`ClientError::Problem`] carrying the RFC 9457 body with its stable `code`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshpay_client::ClientError> {
//! use meshpay_client::{ApiKey, Client, CreateQuote};
//! let key: ApiKey = "mp_test_...".parse()?;
//! let api = Client::new("http://127.0.0.1:7071/api", key)?;
//! let quote = api
//!     .create_quote(&CreateQuote::new("anvil", "USDC", "25.00", "0x90F7..."))
//!     .await?;
//! let payment = api.authorize("order-1", &quote.id.as_str().into()).await?;
//! # Ok(()) }
//! ```

mod client;
mod error;
mod key;
mod requests;

pub use client::{Client, IDEMPOTENCY_KEY, REQUEST_TIMEOUT, Reply};
pub use error::ClientError;
pub use key::ApiKey;
pub use meshpay_api::views::{
    AssetAmount, AttemptStatusView, BalanceList, BalanceView, Fees, Money, NetworkFee, PaymentList,
    PaymentStatusView, PaymentView, QuoteView, ServiceFee, TransactionAttemptView,
};
pub use meshpay_api::{ErrorCode, Problem};
pub use requests::{AuthorizePayment, CreateQuote, ListPayments};
