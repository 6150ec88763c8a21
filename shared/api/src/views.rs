//! JSON shapes of quotes, payments and balances, shared by the functions that return them, the
//! OpenAPI document and the API client (`meshpay-client` reads them back). Amounts are
//! `{value, base_units}` strings, never numbers.
//!
//! Network fees are always in the chain's native asset. For a token payment the merchant is
//! therefore debited in two assets; `total_debit` lists every asset with its amount.

use meshpay_chain::ChainsConfig;
use meshpay_domain::{Amount, AssetId, Charges, PaymentStatus};
use meshpay_store::transactions::{AttemptStatus, TxAttempt};
use meshpay_store::{Balance, Payment, Quote};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::ApiError;

/// An amount in an asset's units and in base units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"value": "250.00", "base_units": "250000000"}))]
pub struct Money {
    /// Decimal string in the asset's units ("250.00").
    pub value: String,
    /// Integer string in base units ("250000000").
    pub base_units: String,
}

/// An amount of a named asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssetAmount {
    /// Asset symbol on the quote's chain ("USDC", "ETH").
    pub asset: String,
    pub amount: Money,
}

/// The network fee: the most the transfer can cost (`gas_limit × max_fee_per_gas`), held in
/// full; the unused part is released at settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NetworkFee {
    /// Always the chain's native asset.
    pub asset: String,
    /// The maximum, held at authorization.
    pub amount: Money,
    /// Payments only: what the chain actually charged (receipt `gasUsed × effectiveGasPrice`),
    /// never more than `amount`. Present once the payment settled, or failed after its
    /// transaction was mined (a reverted transaction still costs gas); only this is debited, the
    /// rest of `amount` is released. Absent while in flight and when nothing was mined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<Money>,
    /// Integer string.
    pub gas_limit: String,
    /// Integer string, wei.
    pub max_fee_per_gas_wei: String,
    /// Integer string, wei.
    pub max_priority_fee_per_gas_wei: String,
}

/// The merchant's service fee, in the payment's asset (rounded up to a whole base unit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceFee {
    pub asset: String,
    /// Basis points (1/100 of a percent).
    pub bps: u16,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Fees {
    pub network: NetworkFee,
    pub service: ServiceFee,
}

/// A quote: a priced offer valid until `expires_at`, usable by one payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    /// `quo_…`
    pub id: String,
    pub chain: String,
    pub asset: String,
    pub amount: Money,
    /// EIP-55 checksummed address.
    pub recipient: String,
    pub fees: Fees,
    /// Everything debited from the merchant's balances, per asset (payment asset first).
    pub total_debit: Vec<AssetAmount>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// The payment that used this quote (`pay_…`), if any.
    pub payment_id: Option<String>,
}

/// Payment lifecycle: authorized → broadcast → confirmed → settled, or failed / cancelled.
/// `stalled`: broadcast, but the fee market is above the quoted maximum (see `status_reason`);
/// it returns to `broadcast` when fees allow. `cancelling`: a cancellation was sent on the
/// payment's nonce; it ends `cancelled` when that is mined, or `confirmed` if the payment's
/// own transaction wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatusView {
    Quoted,
    Authorized,
    Broadcast,
    Stalled,
    Cancelling,
    Confirmed,
    Settled,
    Failed,
    Expired,
    Cancelled,
}

impl From<PaymentStatus> for PaymentStatusView {
    fn from(status: PaymentStatus) -> Self {
        match status {
            PaymentStatus::Quoted => Self::Quoted,
            PaymentStatus::Authorized => Self::Authorized,
            PaymentStatus::Broadcast => Self::Broadcast,
            PaymentStatus::Stalled => Self::Stalled,
            PaymentStatus::Cancelling => Self::Cancelling,
            PaymentStatus::Confirmed => Self::Confirmed,
            PaymentStatus::Settled => Self::Settled,
            PaymentStatus::Failed => Self::Failed,
            PaymentStatus::Expired => Self::Expired,
            PaymentStatus::Cancelled => Self::Cancelled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    /// `pay_…`
    pub id: String,
    /// `quo_…`
    pub quote_id: String,
    pub status: PaymentStatusView,
    /// Increases by one with every status change.
    pub version: i64,
    pub chain: String,
    pub asset: String,
    pub amount: Money,
    pub recipient: String,
    pub fees: Fees,
    pub total_debit: Vec<AssetAmount>,
    pub reference: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// The hot wallet sending the payment, once chosen.
    pub from: Option<String>,
    pub tx_hash: Option<String>,
    pub nonce: Option<u64>,
    pub block_number: Option<u64>,
    pub failure_reason: Option<String>,
    /// Why the payment is `stalled` ("fee market above the quoted maximum: ..."); absent in
    /// other statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Every signed transaction of the payment, first attempt first (empty before broadcast).
    /// `GET /api/payments/{id}` only: absent from lists and from other endpoints' answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<TransactionAttemptView>>,
}

/// Where a signed transaction of a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatusView {
    /// Signed and stored; no node has acknowledged it yet.
    Signed,
    /// A node accepted it.
    Sent,
    /// Refused by the node for good: the payment failed.
    Rejected,
    /// Its nonce was used by another transaction; a later attempt replaced it.
    Superseded,
    /// A later attempt on the same nonce replaced it (higher fees, or a cancellation); it may
    /// still be mined until the nonce is used.
    Replaced,
}

impl From<AttemptStatus> for AttemptStatusView {
    fn from(status: AttemptStatus) -> Self {
        match status {
            AttemptStatus::Signed => Self::Signed,
            AttemptStatus::Sent => Self::Sent,
            AttemptStatus::Rejected => Self::Rejected,
            AttemptStatus::Superseded => Self::Superseded,
            AttemptStatus::Replaced => Self::Replaced,
        }
    }
}

/// One signed transaction of a payment: its hash, nonce and fees (never the signed bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransactionAttemptView {
    /// 1 for the payment's first transaction.
    pub attempt: u32,
    pub tx_hash: String,
    pub nonce: u64,
    /// The hot wallet that signed it (EIP-55).
    pub from: String,
    /// Integer string, wei.
    pub max_fee_per_gas: String,
    /// Integer string, wei.
    pub max_priority_fee_per_gas: String,
    /// Integer string.
    pub gas_limit: String,
    pub status: AttemptStatusView,
    /// When a node first accepted it; absent until then.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<OffsetDateTime>,
}

impl From<&TxAttempt> for TransactionAttemptView {
    fn from(a: &TxAttempt) -> Self {
        TransactionAttemptView {
            attempt: a.attempt.unsigned_abs(),
            tx_hash: a.tx_hash.to_string(),
            nonce: a.nonce,
            from: a.from.to_checksum(None),
            max_fee_per_gas: a.max_fee_per_gas_wei.to_string(),
            max_priority_fee_per_gas: a.max_priority_fee_per_gas_wei.to_string(),
            gas_limit: a.gas_limit.to_string(),
            status: a.status.into(),
            sent_at: a.first_sent_at,
        }
    }
}

/// One page of payments, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentList {
    pub data: Vec<PaymentView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceView {
    pub chain: String,
    pub asset: String,
    /// Free to spend on new payments.
    pub available: Money,
    /// Reserved by authorized, not yet settled payments.
    pub held: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceList {
    pub data: Vec<BalanceView>,
}

/// Renders amounts of configured assets; an asset missing from the configuration (removed
/// while rows still use it) is an operator error and a 500.
pub struct Renderer<'a> {
    chains: &'a ChainsConfig,
}

impl<'a> Renderer<'a> {
    pub fn new(chains: &'a ChainsConfig) -> Self {
        Self { chains }
    }

    pub fn money(&self, asset: &AssetId, amount: Amount) -> Result<Money, ApiError> {
        let configured = self
            .chains
            .chain(asset.chain())
            .and_then(|c| c.asset(asset.symbol()))
            .ok_or_else(|| ApiError::internal("render", &UnconfiguredAsset(asset.to_string())))?;
        Ok(Money {
            value: configured.format_amount(amount),
            base_units: amount.to_string(),
        })
    }

    fn fees(
        &self,
        charges: &Charges,
        gas_limit: u64,
        max_fee: u128,
        max_priority_fee: u128,
        network_fee_actual: Option<Amount>,
    ) -> Result<Fees, ApiError> {
        Ok(Fees {
            network: NetworkFee {
                asset: charges.network_fee_asset.symbol().to_owned(),
                amount: self.money(&charges.network_fee_asset, charges.network_fee)?,
                actual: network_fee_actual
                    .map(|fee| self.money(&charges.network_fee_asset, fee))
                    .transpose()?,
                gas_limit: gas_limit.to_string(),
                max_fee_per_gas_wei: max_fee.to_string(),
                max_priority_fee_per_gas_wei: max_priority_fee.to_string(),
            },
            service: ServiceFee {
                asset: charges.asset.symbol().to_owned(),
                bps: charges.service_fee_bps.get(),
                amount: self.money(&charges.asset, charges.service_fee)?,
            },
        })
    }

    /// Payment asset first, then the network-fee asset when it differs.
    fn total_debit(&self, charges: &Charges) -> Result<Vec<AssetAmount>, ApiError> {
        let mut debits = charges.debits();
        debits.sort_by_key(|(asset, _)| *asset != charges.asset);
        debits
            .into_iter()
            .map(|(asset, amount)| {
                Ok(AssetAmount {
                    asset: asset.symbol().to_owned(),
                    amount: self.money(&asset, amount)?,
                })
            })
            .collect()
    }

    pub fn quote(&self, quote: &Quote) -> Result<QuoteView, ApiError> {
        let c = &quote.charges;
        Ok(QuoteView {
            id: quote.id.to_string(),
            chain: c.asset.chain().to_owned(),
            asset: c.asset.symbol().to_owned(),
            amount: self.money(&c.asset, c.amount)?,
            recipient: quote.recipient.to_checksum(None),
            fees: self.fees(
                c,
                quote.gas_limit,
                quote.max_fee_per_gas,
                quote.max_priority_fee_per_gas,
                None,
            )?,
            total_debit: self.total_debit(c)?,
            created_at: quote.created_at,
            expires_at: quote.expires_at,
            payment_id: quote.used_by_payment.map(|p| p.to_string()),
        })
    }

    pub fn payment(&self, payment: &Payment) -> Result<PaymentView, ApiError> {
        let c = &payment.charges;
        Ok(PaymentView {
            id: payment.id.to_string(),
            quote_id: payment.quote_id.to_string(),
            status: payment.status.into(),
            version: payment.version,
            chain: c.asset.chain().to_owned(),
            asset: c.asset.symbol().to_owned(),
            amount: self.money(&c.asset, c.amount)?,
            recipient: payment.recipient.to_checksum(None),
            fees: self.fees(
                c,
                payment.gas_limit,
                payment.max_fee_per_gas,
                payment.max_priority_fee_per_gas,
                payment.network_fee_actual,
            )?,
            total_debit: self.total_debit(c)?,
            reference: payment.reference.clone(),
            metadata: payment.metadata.clone(),
            from: payment.hot_wallet.map(|a| a.to_checksum(None)),
            tx_hash: payment.tx_hash.map(|h| h.to_string()),
            nonce: payment.nonce,
            block_number: payment.block_number,
            failure_reason: payment.failure_reason.clone(),
            status_reason: payment.status_reason.clone(),
            created_at: payment.created_at,
            updated_at: payment.updated_at,
            attempts: None,
        })
    }

    /// [`Renderer::payment`] with the payment's transactions (`attempts`).
    pub fn payment_with_attempts(
        &self,
        payment: &Payment,
        attempts: &[TxAttempt],
    ) -> Result<PaymentView, ApiError> {
        let mut view = self.payment(payment)?;
        view.attempts = Some(attempts.iter().map(TransactionAttemptView::from).collect());
        Ok(view)
    }

    pub fn balance(&self, balance: &Balance) -> Result<BalanceView, ApiError> {
        Ok(BalanceView {
            chain: balance.asset.chain().to_owned(),
            asset: balance.asset.symbol().to_owned(),
            available: self.money(&balance.asset, balance.available)?,
            held: self.money(&balance.asset, balance.held)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("asset {0} is used by stored data but missing from the chains configuration")]
struct UnconfiguredAsset(String);
