//! Invoices (pay-ins): created with an Idempotency-Key, read and cancelled by their merchant,
//! read by id alone for the public pay page; the payments detection records against them and
//! the ledger credits they lead to ([`detection`]).
//!
//! Every status change goes through [`apply`]: the domain's [`invoice_transition`] (or
//! [`cancel`]), an optimistic `UPDATE … WHERE version = expected`, an appended `invoice_events`
//! row and, when the status has one, a merchant webhook event in the outbox, in one transaction.
//!
//! [`invoice_transition`]: meshpay_domain::invoice_transition
//! [`cancel`]: meshpay_domain::invoice::cancel

pub mod detection;
pub mod hints;
pub mod reviews;

use meshpay_domain::invoice::cancel;
use meshpay_domain::{
    Address, Amount, AssetId, B256, FeeBps, IdempotencyKey, InvoiceId, InvoiceStatus, MerchantId,
};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::error::{Result, StoreError};
use crate::outbox::{self, NewOutboxMessage, topics};
use crate::{convert, keyset};

#[derive(Debug, Clone)]
pub struct NewInvoice {
    pub merchant_id: MerchantId,
    pub idempotency_key: IdempotencyKey,
    /// [`crate::request_fingerprint`] of the request body.
    pub request_hash: [u8; 32],
    pub asset: AssetId,
    pub amount: Amount,
    pub factory: Address,
    /// The id decides the salt and the salt the deposit address, so both come with the id.
    pub id: InvoiceId,
    pub salt: B256,
    pub deposit_address: Address,
    pub reference: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub id: InvoiceId,
    pub merchant_id: MerchantId,
    pub status: InvoiceStatus,
    pub version: i64,
    pub asset: AssetId,
    pub amount: Amount,
    pub amount_received: Amount,
    pub amount_final: Amount,
    pub service_fee_bps: FeeBps,
    pub factory: Address,
    pub salt: B256,
    pub deposit_address: Address,
    pub reference: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub late: bool,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Invoice {
    pub fn chain(&self) -> &str {
        self.asset.chain()
    }
}

/// Result of [`Store::create_invoice`].
#[derive(Debug, Clone)]
pub enum CreateInvoiceOutcome {
    Created(Invoice),
    /// The same key with the same body created this invoice earlier.
    Replayed(Invoice),
}

/// One transfer to a deposit address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePayment {
    pub tx_hash: B256,
    pub log_index: u64,
    /// The token contract (the zero address for the native coin).
    pub token: Address,
    /// `None`: a token the chain's configuration does not know (never credited).
    pub asset: Option<AssetId>,
    pub amount: Amount,
    pub block_number: u64,
    pub block_hash: B256,
    pub status: PaymentSeen,
    pub dust: bool,
    pub late: bool,
}

/// Where a transfer stands on the canonical chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentSeen {
    Seen,
    Final,
    Removed,
}

impl PaymentSeen {
    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentSeen::Seen => "seen",
            PaymentSeen::Final => "final",
            PaymentSeen::Removed => "removed",
        }
    }

    fn parse(text: &str) -> Result<PaymentSeen> {
        match text {
            "seen" => Ok(PaymentSeen::Seen),
            "final" => Ok(PaymentSeen::Final),
            "removed" => Ok(PaymentSeen::Removed),
            other => Err(convert::corrupt("invoice payment status", other)),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListInvoices {
    pub status: Option<InvoiceStatus>,
    pub limit: u32,
    /// Keyset position: invoices created before this one.
    pub before: Option<(OffsetDateTime, InvoiceId)>,
}

#[derive(Debug, Clone)]
pub struct InvoicePage {
    pub items: Vec<Invoice>,
    pub next_cursor: Option<(OffsetDateTime, InvoiceId)>,
}

pub(crate) const COLUMNS: &str = "id, merchant_id, status, version, asset, amount::text, \
    amount_received::text, amount_final::text, service_fee_bps, factory, salt, deposit_address, \
    reference, metadata, late, expires_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct InvoiceRow {
    id: Uuid,
    merchant_id: Uuid,
    status: String,
    version: i64,
    asset: String,
    amount: String,
    amount_received: String,
    amount_final: String,
    service_fee_bps: i32,
    factory: String,
    salt: Vec<u8>,
    deposit_address: String,
    reference: Option<String>,
    metadata: Option<serde_json::Value>,
    late: bool,
    expires_at: OffsetDateTime,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<InvoiceRow> for Invoice {
    type Error = StoreError;
    fn try_from(row: InvoiceRow) -> Result<Invoice> {
        Ok(Invoice {
            id: InvoiceId::from_uuid(row.id),
            merchant_id: MerchantId::from_uuid(row.merchant_id),
            status: row
                .status
                .parse()
                .map_err(|_| convert::corrupt("invoice status", &row.status))?,
            version: row.version,
            asset: convert::asset(&row.asset)?,
            amount: convert::amount(&row.amount)?,
            amount_received: convert::amount(&row.amount_received)?,
            amount_final: convert::amount(&row.amount_final)?,
            service_fee_bps: convert::fee_bps(row.service_fee_bps)?,
            factory: convert::address(&row.factory)?,
            salt: B256::try_from(row.salt.as_slice())
                .map_err(|_| convert::corrupt("invoice salt", &alloy_hex(&row.salt)))?,
            deposit_address: convert::address(&row.deposit_address)?,
            reference: row.reference,
            metadata: row.metadata,
            late: row.late,
            expires_at: row.expires_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn alloy_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type PaymentRow = (
    String,
    i64,
    String,
    Option<String>,
    String,
    i64,
    String,
    String,
    bool,
    bool,
);

impl Store {
    /// Creates the invoice, or replays it: the same key with the same body returns the invoice
    /// it created ([`CreateInvoiceOutcome::Replayed`]); with another body it is
    /// [`StoreError::IdempotencyKeyReused`]. A concurrent duplicate waits on the unique key.
    pub async fn create_invoice(&self, new: &NewInvoice) -> Result<CreateInvoiceOutcome> {
        let mut tx = self.pool.begin().await?;
        let fee_bps: Option<(i32,)> =
            sqlx::query_as("SELECT service_fee_bps FROM merchants WHERE id = $1")
                .bind(new.merchant_id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        let (fee_bps,) = fee_bps.ok_or(StoreError::NotFound)?;
        let inserted: Option<InvoiceRow> = sqlx::query_as(&format!(
            "INSERT INTO invoices (id, merchant_id, status, version, chain, asset, amount,
                 service_fee_bps, factory, salt, deposit_address, reference, metadata,
                 idempotency_key, request_sha256, expires_at)
             VALUES ($1, $2, 'open', 1, $3, $4, $5::numeric, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (merchant_id, idempotency_key) DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .bind(new.id.as_uuid())
        .bind(new.merchant_id.as_uuid())
        .bind(new.asset.chain())
        .bind(new.asset.to_string())
        .bind(new.amount.to_string())
        .bind(fee_bps)
        .bind(new.factory.to_checksum(None))
        .bind(new.salt.as_slice())
        .bind(new.deposit_address.to_checksum(None))
        .bind(new.reference.as_deref())
        .bind(new.metadata.as_ref())
        .bind(new.idempotency_key.as_str())
        .bind(&new.request_hash[..])
        .bind(new.expires_at)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match inserted {
            Some(row) => {
                let invoice = Invoice::try_from(row)?;
                insert_event(
                    &mut tx,
                    &invoice,
                    InvoiceStatus::Open,
                    serde_json::json!({}),
                )
                .await?;
                CreateInvoiceOutcome::Created(invoice)
            }
            None => {
                let (hash, row): (Vec<u8>, Uuid) = sqlx::query_as(
                    "SELECT request_sha256, id FROM invoices WHERE merchant_id = $1 AND idempotency_key = $2",
                )
                .bind(new.merchant_id.as_uuid())
                .bind(new.idempotency_key.as_str())
                .fetch_one(&mut *tx)
                .await?;
                if hash.as_slice() != new.request_hash.as_slice() {
                    return Err(StoreError::IdempotencyKeyReused);
                }
                let invoice = select(&mut tx, InvoiceId::from_uuid(row)).await?;
                CreateInvoiceOutcome::Replayed(invoice.ok_or(StoreError::NotFound)?)
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// The merchant's invoice (another merchant's is `None`, like an unknown one).
    pub async fn get_invoice(
        &self,
        merchant: MerchantId,
        id: InvoiceId,
    ) -> Result<Option<Invoice>> {
        let mut conn = self.pool.acquire().await?;
        Ok(select(&mut conn, id)
            .await?
            .filter(|invoice| invoice.merchant_id == merchant))
    }

    /// An invoice by its unguessable id alone: for the public pay page.
    pub async fn get_invoice_public(&self, id: InvoiceId) -> Result<Option<Invoice>> {
        let mut conn = self.pool.acquire().await?;
        select(&mut conn, id).await
    }

    /// A page of the merchant's invoices, newest first.
    pub async fn list_invoices(
        &self,
        merchant: MerchantId,
        query: &ListInvoices,
    ) -> Result<InvoicePage> {
        let (before_at, before_id) = query
            .before
            .map(|(at, id)| (Some(at), Some(id.as_uuid())))
            .unwrap_or((None, None));
        let rows: Vec<InvoiceRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM invoices
             WHERE merchant_id = $1
               AND ($2::text IS NULL OR status = $2)
               AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
             ORDER BY created_at DESC, id DESC LIMIT $5"
        ))
        .bind(merchant.as_uuid())
        .bind(query.status.map(InvoiceStatus::as_str))
        .bind(before_at)
        .bind(before_id)
        .bind(keyset::rows_to_read(query.limit))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .into_iter()
            .map(Invoice::try_from)
            .collect::<Result<Vec<_>>>()?;
        let (items, next_cursor) = keyset::split(items, query.limit, |i| (i.created_at, i.id));
        Ok(InvoicePage { items, next_cursor })
    }

    /// Cancels the merchant's invoice; only an open one with nothing received (not even a
    /// transfer still waiting for finality, nor an unrecognized token).
    pub async fn cancel_invoice(&self, merchant: MerchantId, id: InvoiceId) -> Result<Invoice> {
        let mut tx = self.pool.begin().await?;
        let invoice = select_for_update(&mut tx, id)
            .await?
            .filter(|invoice| invoice.merchant_id == merchant)
            .ok_or(StoreError::NotFound)?;
        let (transfers,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM invoice_payments WHERE invoice_id = $1 AND status <> 'removed'",
        )
        .bind(id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        let received = meshpay_domain::Received {
            seen: if transfers > 0 {
                Amount::from(1u64)
            } else {
                invoice.amount_received
            },
            final_: invoice.amount_final,
            late: invoice.late,
        };
        let to = cancel(invoice.status, received)?;
        let invoice = apply(
            &mut tx,
            &invoice,
            to,
            &invoice_totals(&invoice),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(invoice)
    }

    /// Every transfer seen to the invoice's deposit address, oldest first.
    pub async fn invoice_payments(&self, id: InvoiceId) -> Result<Vec<InvoicePayment>> {
        let rows: Vec<PaymentRow> = sqlx::query_as(
            "SELECT tx_hash, log_index, token, asset, amount::text, block_number, block_hash,
                    status, dust, late
             FROM invoice_payments WHERE invoice_id = $1 ORDER BY block_number, log_index",
        )
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(payment_from_row).collect()
    }
}

fn payment_from_row(row: PaymentRow) -> Result<InvoicePayment> {
    let (tx_hash, log_index, token, asset, amount, block_number, block_hash, status, dust, late) =
        row;
    Ok(InvoicePayment {
        tx_hash: convert::b256(&tx_hash)?,
        log_index: convert::u64_from_i64(log_index, "log index")?,
        token: convert::address(&token)?,
        asset: asset.as_deref().map(convert::asset).transpose()?,
        amount: convert::amount(&amount)?,
        block_number: convert::u64_from_i64(block_number, "block number")?,
        block_hash: convert::b256(&block_hash)?,
        status: PaymentSeen::parse(&status)?,
        dust,
        late,
    })
}

pub(crate) async fn select(conn: &mut PgConnection, id: InvoiceId) -> Result<Option<Invoice>> {
    let row: Option<InvoiceRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM invoices WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&mut *conn)
            .await?;
    row.map(Invoice::try_from).transpose()
}

pub(crate) async fn select_for_update(
    conn: &mut PgConnection,
    id: InvoiceId,
) -> Result<Option<Invoice>> {
    let row: Option<InvoiceRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invoices WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Invoice::try_from).transpose()
}

/// The amounts an invoice row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub received: Amount,
    pub final_: Amount,
    pub late: bool,
}

fn invoice_totals(invoice: &Invoice) -> Totals {
    Totals {
        received: invoice.amount_received,
        final_: invoice.amount_final,
        late: invoice.late,
    }
}

/// Persists a legal move of `invoice` (as read, at its version) to `to` with `totals`: the
/// optimistic update, its event, and the webhook event a new status announces.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    invoice: &Invoice,
    to: InvoiceStatus,
    totals: &Totals,
    data: serde_json::Value,
) -> Result<Invoice> {
    let row: Option<InvoiceRow> = sqlx::query_as(&format!(
        "UPDATE invoices SET status = $3, version = version + 1, amount_received = $4::numeric,
                amount_final = $5::numeric, late = $6, refresh_due = false, updated_at = now()
         WHERE id = $1 AND version = $2
         RETURNING {COLUMNS}"
    ))
    .bind(invoice.id.as_uuid())
    .bind(invoice.version)
    .bind(to.as_str())
    .bind(totals.received.to_string())
    .bind(totals.final_.to_string())
    .bind(totals.late)
    .fetch_optional(&mut *conn)
    .await?;
    let updated = Invoice::try_from(row.ok_or(StoreError::Conflict {
        expected: invoice.version,
    })?)?;
    insert_event(conn, &updated, invoice.status, data).await?;
    if let Some(event) = to.webhook_event().filter(|_| to != invoice.status) {
        let message = NewOutboxMessage::new(
            topics::WEBHOOK,
            serde_json::json!({
                "type": event,
                "invoice_id": updated.id,
                "status": updated.status,
                "version": updated.version,
                "data": invoice_event_payload(&updated),
            }),
        );
        outbox::insert(conn, Some(invoice.merchant_id), None, &[message]).await?;
    }
    Ok(updated)
}

/// The `data` of an `invoice.*` webhook: what a merchant needs to act, amounts in base units.
fn invoice_event_payload(invoice: &Invoice) -> serde_json::Value {
    serde_json::json!({
        "object": "invoice",
        "id": invoice.id,
        "status": invoice.status,
        "chain": invoice.chain(),
        "asset": invoice.asset.symbol(),
        "amount": invoice.amount.to_string(),
        "amount_received": invoice.amount_received.to_string(),
        "amount_final": invoice.amount_final.to_string(),
        "late": invoice.late,
        "reference": invoice.reference,
        "deposit_address": invoice.deposit_address.to_checksum(None),
    })
}

async fn insert_event(
    conn: &mut PgConnection,
    invoice: &Invoice,
    from: InvoiceStatus,
    data: serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO invoice_events (invoice_id, version, from_status, to_status, data)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(invoice.id.as_uuid())
    .bind(invoice.version)
    .bind(from.as_str())
    .bind(invoice.status.as_str())
    .bind(data)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
