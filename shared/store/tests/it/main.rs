//! meshpay-store integration tests: each test gets a fresh migrated database (meshpay-testkit)
//! and ends by checking the ledger invariants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_keys;
mod authorize;
mod books;
mod concurrency;
mod ledger;
mod native_book;
mod network_fee;
mod nonce_holders;
mod operations;
mod payin_hints;
mod payin_reviews;
mod payments;
mod review;
mod support;
