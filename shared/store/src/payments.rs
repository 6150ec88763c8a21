//! Payments: reads (tenant-scoped and pipeline), listing with keyset pagination, history.

use meshpay_domain::{
    Address, Amount, B256, Charges, MerchantId, PaymentId, PaymentStatus, QuoteId,
};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::error::{Result, StoreError};
use crate::quotes::{TERMS_COLUMNS, TermsRow};
use crate::{convert, keyset};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub merchant_id: MerchantId,
    pub quote_id: QuoteId,
    pub status: PaymentStatus,
    /// Optimistic-concurrency version: 1 at authorization, +1 per status change.
    pub version: i64,
    pub charges: Charges,
    pub recipient: Address,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    pub reference: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub hot_wallet: Option<Address>,
    pub tx_hash: Option<B256>,
    pub nonce: Option<u64>,
    pub block_hash: Option<B256>,
    pub block_number: Option<u64>,
    pub failure_reason: Option<String>,
    /// Why the payment is in its current in-flight status (`stalled`: the fee market is above
    /// the quoted maximum); `None` once it moves on.
    pub status_reason: Option<String>,
    /// The network fee the chain charged (receipt `gasUsed × effectiveGasPrice`, native asset),
    /// recorded when the payment settled or failed after its transaction was mined; at most
    /// `charges.network_fee` (the held maximum), whose unused rest was released.
    pub network_fee_actual: Option<Amount>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Payment {
    pub fn chain(&self) -> &str {
        self.charges.asset.chain()
    }
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    merchant_id: Uuid,
    quote_id: Uuid,
    status: String,
    version: i64,
    #[sqlx(flatten)]
    terms: TermsRow,
    reference: Option<String>,
    metadata: Option<serde_json::Value>,
    hot_wallet: Option<String>,
    tx_hash: Option<String>,
    nonce: Option<i64>,
    block_hash: Option<String>,
    block_number: Option<i64>,
    failure_reason: Option<String>,
    status_reason: Option<String>,
    network_fee_actual: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl PaymentRow {
    fn into_payment(self) -> Result<Payment> {
        let terms = self.terms.into_terms()?;
        Ok(Payment {
            id: PaymentId::from_uuid(self.id),
            merchant_id: MerchantId::from_uuid(self.merchant_id),
            quote_id: QuoteId::from_uuid(self.quote_id),
            status: convert::status(&self.status)?,
            version: self.version,
            charges: terms.charges,
            recipient: terms.recipient,
            gas_limit: terms.gas_limit,
            max_fee_per_gas: terms.max_fee_per_gas,
            max_priority_fee_per_gas: terms.max_priority_fee_per_gas,
            reference: self.reference,
            metadata: self.metadata,
            hot_wallet: self
                .hot_wallet
                .as_deref()
                .map(convert::address)
                .transpose()?,
            tx_hash: self.tx_hash.as_deref().map(convert::b256).transpose()?,
            nonce: self
                .nonce
                .map(|n| convert::u64_from_i64(n, "nonce"))
                .transpose()?,
            block_hash: self.block_hash.as_deref().map(convert::b256).transpose()?,
            block_number: self
                .block_number
                .map(|n| convert::u64_from_i64(n, "block_number"))
                .transpose()?,
            failure_reason: self.failure_reason,
            status_reason: self.status_reason,
            network_fee_actual: self
                .network_fee_actual
                .as_deref()
                .map(convert::amount)
                .transpose()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn select_sql(filter: &str) -> String {
    format!(
        "SELECT id, merchant_id, quote_id, status, version, {TERMS_COLUMNS}, reference, metadata,
                hot_wallet, tx_hash, nonce, block_hash, block_number, failure_reason,
                status_reason, network_fee_actual::text AS network_fee_actual, created_at, updated_at
         FROM payments {filter}"
    )
}

/// Reads one payment; `merchant_id: None` is the pipeline's unscoped read.
pub(crate) async fn select_payment(
    conn: &mut PgConnection,
    merchant_id: Option<MerchantId>,
    id: PaymentId,
) -> Result<Option<Payment>> {
    let sql = select_sql("WHERE id = $1 AND ($2::uuid IS NULL OR merchant_id = $2)");
    let row: Option<PaymentRow> = sqlx::query_as(&sql)
        .bind(id.as_uuid())
        .bind(merchant_id.map(|m| m.as_uuid()))
        .fetch_optional(conn)
        .await?;
    row.map(PaymentRow::into_payment).transpose()
}

/// `GET /payments` parameters.
#[derive(Debug, Clone, Default)]
pub struct ListPayments {
    pub status: Option<PaymentStatus>,
    /// 1..=[`ListPayments::MAX_LIMIT`]; larger values are clamped.
    pub limit: u32,
    /// Keyset cursor: only payments older than this one (the previous page's `next_cursor`).
    pub before: Option<PaymentId>,
}

impl ListPayments {
    pub const MAX_LIMIT: u32 = 100;
}

#[derive(Debug, Clone)]
pub struct PaymentPage {
    /// Newest first.
    pub items: Vec<Payment>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next_cursor: Option<PaymentId>,
}

/// One row of a payment's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEventRecord {
    pub version: i64,
    pub event: String,
    pub from_status: PaymentStatus,
    pub to_status: PaymentStatus,
    pub reason: Option<String>,
    pub data: serde_json::Value,
    pub created_at: OffsetDateTime,
}

/// (version, event, from_status, to_status, reason, data, created_at)
type EventDbRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    serde_json::Value,
    OffsetDateTime,
);

impl Store {
    /// The merchant's payment, or `None` (also when it belongs to another merchant).
    pub async fn get_payment(
        &self,
        merchant_id: MerchantId,
        id: PaymentId,
    ) -> Result<Option<Payment>> {
        let mut conn = self.pool.acquire().await?;
        select_payment(&mut conn, Some(merchant_id), id).await
    }

    /// Any merchant's payment: for pipeline steps that only know the payment id.
    pub async fn get_payment_unscoped(&self, id: PaymentId) -> Result<Option<Payment>> {
        let mut conn = self.pool.acquire().await?;
        select_payment(&mut conn, None, id).await
    }

    /// The merchant's payments, newest first, keyset-paginated by id (UUIDv7 is time-ordered).
    pub async fn list_payments(
        &self,
        merchant_id: MerchantId,
        params: &ListPayments,
    ) -> Result<PaymentPage> {
        let limit = params.limit.clamp(1, ListPayments::MAX_LIMIT);
        let sql = select_sql(
            "WHERE merchant_id = $1 AND ($2::text IS NULL OR status = $2)
               AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        );
        // One extra row tells whether another page exists.
        let rows: Vec<PaymentRow> = sqlx::query_as(&sql)
            .bind(merchant_id.as_uuid())
            .bind(params.status.map(|s| s.as_str()))
            .bind(params.before.map(|p| p.as_uuid()))
            .bind(keyset::rows_to_read(limit))
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .into_iter()
            .map(PaymentRow::into_payment)
            .collect::<Result<Vec<_>>>()?;
        let (items, next_cursor) = keyset::split(items, limit, |p| p.id);
        Ok(PaymentPage { items, next_cursor })
    }

    /// The payment's history, oldest first (empty for an unknown payment).
    pub async fn payment_events(&self, id: PaymentId) -> Result<Vec<PaymentEventRecord>> {
        let rows: Vec<EventDbRow> = sqlx::query_as(
            "SELECT version, event, from_status, to_status, reason, data, created_at
                 FROM payment_events WHERE payment_id = $1 ORDER BY version",
        )
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(version, event, from, to, reason, data, created_at)| {
                Ok(PaymentEventRecord {
                    version,
                    event,
                    from_status: convert::status(&from)?,
                    to_status: convert::status(&to)?,
                    reason,
                    data,
                    created_at,
                })
            })
            .collect()
    }
}

/// Errors when a payment the caller just changed has vanished (cannot happen: no deletes).
pub(crate) fn vanished() -> StoreError {
    StoreError::Corrupt("payment disappeared inside its own transaction".into())
}
