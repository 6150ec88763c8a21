//! What a request names by chain and asset symbol, resolved against the chains config, with the
//! problem+json a client gets when it names something the config does not have. Quotes and
//! invoices take the same `{chain, asset, amount}` and must refuse them the same way.

use meshpay_chain::{Chain, ChainsConfig};
use meshpay_domain::{Amount, Asset};

use crate::error::{ApiError, ErrorCode};

/// The configured chain called `name`; 422 `unsupported_chain` listing the supported ones.
pub fn chain<'a>(chains: &'a ChainsConfig, name: &str) -> Result<&'a Chain, ApiError> {
    chains.chain(name).ok_or_else(|| {
        let known: Vec<&str> = chains.chains().iter().map(|c| c.name.as_str()).collect();
        ApiError::new(
            ErrorCode::UnsupportedChain,
            format!(
                "chain `{name}` is not supported (supported: {})",
                known.join(", ")
            ),
        )
    })
}

/// The asset `symbol` of `chain` and `amount` (a decimal string in that asset's precision) in
/// its base units; 422 `unsupported_asset` or `validation_failed` naming the field.
pub fn asset_amount<'a>(
    chain: &'a Chain,
    symbol: &str,
    amount: &str,
) -> Result<(&'a Asset, Amount), ApiError> {
    let asset = chain.asset(symbol).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedAsset,
            format!(
                "asset `{symbol}` is not supported on chain {} (supported: {})",
                chain.name,
                chain.asset_symbols().join(", ")
            ),
        )
    })?;
    let amount = asset
        .parse_amount(amount)
        .map_err(|e| ApiError::validation(format!("amount: {e}")))?;
    Ok((asset, amount))
}
