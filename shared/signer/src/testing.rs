//! Test support (feature `test-util`): an in-process Key Vault double and the client-side
//! pieces that reach it through the real `KeyClient`. For tests and benchmarks only; the double
//! panics on broken invariants of its own (a lock poisoned by a failed test, a port it cannot
//! bind) rather than report them.
//!
//! ```ignore
//! let double = KeyVaultDouble::start(DoubleOptions::new()).await;
//! let signer = KeyVaultSigner::from_config_with(
//!     &config,
//!     Arc::new(FakeCredential::default()),
//!     Some(RedirectToDouble::transport(double.addr())),
//! )
//! .await?;
//! ```
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod double;
pub mod transport;

pub use double::{
    BadSignature, DoubleOptions, Fault, KeyVaultDouble, Seen, SignStats, ThrottleBursts,
};
pub use transport::{FakeCredential, RedirectToDouble};
