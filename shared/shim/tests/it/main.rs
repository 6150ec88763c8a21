//! Integration tests of meshpay-shim: fixtures, the service via `oneshot`, one real socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod envelope;
mod fixtures;
mod fuzz;
mod http;
mod registry;
mod socket;
mod support;
