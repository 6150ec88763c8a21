//! Test support for meshpay: real local services on free ports, one fresh database per test.
//! Used only as a dev-dependency.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod anvil; // owned by the stack helper
pub mod azurite; // owned by the devhost helper
pub mod devhost; // owned by the devhost helper
pub mod ports;
pub mod postgres; // owned by the stack helper
