//! Conversions between database text and domain types. Money crosses the wire as text
//! (`$1::numeric`, `amount::text`) so no numeric/bigdecimal sqlx feature is needed and nothing
//! ever passes through a float.

use std::str::FromStr;

use meshpay_domain::{Address, Amount, AssetId, B256, FeeBps, PaymentStatus};

use crate::error::{Result, StoreError};

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

pub(crate) fn amount(text: &str) -> Result<Amount> {
    Amount::parse_base_units(text).map_err(|_| corrupt("amount", text))
}

pub(crate) fn asset(text: &str) -> Result<AssetId> {
    AssetId::from_str(text).map_err(|_| corrupt("asset", text))
}

pub(crate) fn address(text: &str) -> Result<Address> {
    Address::from_str(text).map_err(|_| corrupt("address", text))
}

pub(crate) fn b256(text: &str) -> Result<B256> {
    B256::from_str(text).map_err(|_| corrupt("hash", text))
}

pub(crate) fn status(text: &str) -> Result<PaymentStatus> {
    PaymentStatus::from_str(text).map_err(|_| corrupt("payment status", text))
}

pub(crate) fn fee_bps(value: i32) -> Result<FeeBps> {
    u32::try_from(value)
        .ok()
        .and_then(|v| FeeBps::new(v).ok())
        .ok_or_else(|| corrupt("service_fee_bps", &value.to_string()))
}

pub(crate) fn u128_text(text: &str) -> Result<u128> {
    text.parse().map_err(|_| corrupt("u128", text))
}

pub(crate) fn u64_from_i64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| corrupt(what, &value.to_string()))
}

/// Signed ledger amount text: `-123` or `123`.
pub(crate) fn neg(amount: Amount) -> String {
    format!("-{amount}")
}
