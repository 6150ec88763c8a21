//! meshpay-webhooks integration tests: the dispatcher and the store's webhook queries on a
//! fresh PostgreSQL database per test, sending to a local merchant endpoint on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod dispatch;
mod support;
