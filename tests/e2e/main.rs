//! End-to-end tests of the root package: `meshpay` as a process (through devhost, or its admin
//! commands) against real PostgreSQL, Azurite and anvil, and the deployment package. One test
//! binary; the stack, fixtures and API client come from meshpay-testkit. The binaries must be
//! built first (`cargo build --workspace --bins`; `make test` does).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_review;
mod appinsights;
mod authz;
mod books;
mod broadcast;
mod chains_check;
mod confirm_settle;
mod contract;
mod foundation;
mod invoices;
mod invoices_cases;
mod invoices_hints;
mod invoices_support;
mod key_lifecycle;
mod lagging_rpc;
mod package;
mod payments_api;
mod replacement;
mod support;
mod sweep;
mod telemetry;
mod webhooks;
