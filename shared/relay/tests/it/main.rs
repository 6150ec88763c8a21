//! meshpay-relay integration tests: a real anvil and a fresh PostgreSQL database per test
//! (meshpay-testkit); each test ends by checking the ledger invariants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod broadcast;
mod errors;
mod faulty;
mod gaps;
mod lagging;
mod nonces;
mod quote_bound;
mod routing;
mod same_nonce;
mod signing;
mod support;
mod underpriced;
