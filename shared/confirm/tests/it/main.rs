//! meshpay-confirm integration tests: a real anvil (mining on demand) and a fresh PostgreSQL
//! database per test (meshpay-testkit), the real broadcast step in front; each test ends by
//! checking the ledger invariants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fees;
mod flows;
mod healing;
mod lease;
mod reconcile;
mod reorgs;
mod replacement;
mod review;
mod support;
mod wake;
