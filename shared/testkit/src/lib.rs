//! Test support for meshpay: real local services on free ports, one fresh database per test,
//! and the fixtures every test suite shares (assets, merchants, payments, the API client, the
//! whole stack). Used only as a dev-dependency.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod anvil;
pub mod api;
pub mod appinsights;
pub mod assets;
pub mod azurite;
pub mod browser;
pub mod chains;
pub mod devhost;
pub mod hex;
pub mod merchant;
pub mod otlp;
pub mod payment;
pub mod ports;
pub mod postgres;
pub mod router;
pub mod rpc_proxy;
pub mod settings;
pub mod stack;
