//! The dev chain's assets, as chains.dev.toml and every test configure them.

use meshpay_domain::AssetId;

/// The dev chain's name.
pub const CHAIN: &str = "anvil";

/// `anvil:<symbol>`.
pub fn asset(symbol: &str) -> AssetId {
    format!("{CHAIN}:{symbol}")
        .parse()
        .unwrap_or_else(|e| panic!("asset {symbol}: {e}"))
}

/// The dev chain's native asset (18 decimals).
pub fn eth() -> AssetId {
    asset("ETH")
}

/// DevUSDC (6 decimals).
pub fn usdc() -> AssetId {
    asset("USDC")
}

/// Decimals of a dev-chain asset symbol.
pub fn decimals(symbol: &str) -> u8 {
    if symbol == "USDC" { 6 } else { 18 }
}
