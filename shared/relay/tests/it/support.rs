//! The relay's fixtures live in the crate (`meshpay_relay::testing`, feature `test-util`) so
//! the throughput bench uses the same ones.

pub use meshpay_relay::testing::*;
