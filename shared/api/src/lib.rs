//! meshpay-api: HTTP plumbing shared by meshpay's HTTP functions.
//!
//! - [`state`]: [`AppState`] (store, chains, fee estimator, clock, config).
//! - [`auth`]: `Authorization: Bearer` → [`Auth<S>`] with the scope `S` checked by type.
//! - [`error`]: [`ApiError`] → RFC 9457 `application/problem+json` with a stable `code`.
//! - [`json`]: [`ApiJson`], strict JSON bodies (64 KiB limit, unknown fields rejected).
//! - [`merchant_data`]: bounds of the merchant's own `reference` and `metadata`.
//! - [`rate_limit`]: token buckets per API key and per merchant (per process).
//! - [`query`]: [`ApiQuery`], query strings with problem+json rejections.
//! - [`path`]: [`PathId`], ids in the path; malformed ids are 404s.
//! - [`pagination`]: `limit` validation and opaque keyset cursors.
//! - [`views`]: the JSON shapes of quotes, payments and balances.
//! - [`openapi`]: the bearer security scheme, default problem response and metadata schema of
//!   the generated spec.

pub mod auth;
pub mod error;
pub mod idempotency;
pub mod json;
pub mod merchant_data;
pub mod money;
pub mod openapi;
pub mod pagination;
pub mod path;
pub mod query;
pub mod rate_limit;
pub mod state;
pub mod store_error;
pub mod views;

pub use auth::{Auth, AuthGuard, PaymentsRead, PaymentsWrite, QuotesWrite, RequiredScope};
pub use auth::{InvoicesRead, InvoicesWrite};
pub use error::{ApiError, ErrorCode, PROBLEM_JSON, Problem};
pub use json::{ApiJson, BODY_LIMIT_BYTES};
pub use path::PathId;
pub use query::ApiQuery;
pub use rate_limit::RateLimitConfig;
pub use state::{ApiConfig, ApiConfigError, AppState, Clock, DB_ACQUIRE_TIMEOUT, SystemClock};
pub use store_error::from_store;
