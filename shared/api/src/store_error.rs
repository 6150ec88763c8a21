//! StoreError → ApiError, in one place so every function answers a business outcome the same
//! way. Amounts in messages are formatted in the asset's units when the asset is configured.

use meshpay_chain::ChainsConfig;
use meshpay_domain::{Amount, AssetId};
use meshpay_store::StoreError;

use crate::error::{ApiError, ErrorCode};

/// Maps a store error; `what` names the resource for `not_found` ("quote", "payment").
pub fn from_store(error: StoreError, what: &str, chains: &ChainsConfig) -> ApiError {
    match error {
        StoreError::NotFound => ApiError::not_found(what),
        StoreError::QuoteExpired => ApiError::new(
            ErrorCode::QuoteExpired,
            "the quote has expired; request a new quote",
        ),
        StoreError::QuoteAlreadyUsed => ApiError::new(
            ErrorCode::QuoteAlreadyUsed,
            "the quote has already been used by a payment; request a new quote",
        ),
        StoreError::InsufficientFunds {
            asset,
            available,
            required,
        } => ApiError::new(
            ErrorCode::InsufficientFunds,
            format!(
                "available {asset} balance {} is less than the required {}",
                display_amount(chains, &asset, available),
                display_amount(chains, &asset, required),
            ),
        ),
        StoreError::LimitExceeded {
            which,
            asset,
            limit,
        } => ApiError::new(
            ErrorCode::LimitExceeded,
            format!(
                "the payment exceeds the merchant's {which} limit of {} {asset}",
                display_amount(chains, &asset, limit),
            ),
        ),
        StoreError::OpenPaymentsCap { limit } => ApiError::new(
            ErrorCode::TooManyOpenPayments,
            format!(
                "the merchant already has {limit} open payments; wait for some to finish or \
                 cancel unsent ones"
            ),
        ),
        StoreError::MerchantSuspended => ApiError::merchant_suspended(),
        StoreError::IdempotencyKeyReused => ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used with a different request body",
        ),
        StoreError::IdempotencyInFlight => ApiError::new(
            ErrorCode::IdempotencyKeyInFlight,
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
        .with_retry_after(1),
        StoreError::IllegalTransition(transition) => {
            ApiError::new(ErrorCode::InvalidState, transition.to_string())
        }
        StoreError::IllegalInvoiceTransition(transition) => {
            ApiError::new(ErrorCode::InvalidState, transition.to_string())
        }
        StoreError::Conflict { .. } => ApiError::new(
            ErrorCode::InvalidState,
            "the payment changed while this request was processed; read it and retry",
        ),
        other if other.is_retryable() => {
            tracing::warn!(error = %other, "store temporarily unavailable");
            ApiError::new(
                ErrorCode::UpstreamUnavailable,
                "the service is temporarily unavailable; retry shortly",
            )
            .with_retry_after(1)
        }
        other => ApiError::internal("store", &other),
    }
}

/// "250.00 (250000000 base units)" when the asset is configured, base units otherwise.
fn display_amount(chains: &ChainsConfig, asset: &AssetId, amount: Amount) -> String {
    chains
        .chain(asset.chain())
        .and_then(|c| c.asset(asset.symbol()))
        .map(|a| a.format_amount(amount))
        .unwrap_or_else(|| format!("{amount} base units"))
}
