//! Reversals parked for an operator: a reorg removed a credited payment, but the merchant had
//! already spent the credit, so taking it back would overdraw their available balance. The
//! invoice moves back all the same; the reversal waits here, visible, instead of failing every
//! detection run. Ways out: [`Store::retry_invoice_reversal`] (posts it once the balance covers
//! it) or [`Store::close_invoice_reversal_review`] (closed with the operator's note, nothing
//! posted). A payment that becomes final again closes its review by itself.

use meshpay_domain::{Amount, InvoiceId};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{Invoice, select_for_update};
use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};
use crate::ledger::{PayinPosting, post_invoice_reversal};

/// The note of a review closed because its payment is final again.
const FINAL_AGAIN: &str = "the payment is final again: nothing to reverse";

/// A parked reversal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalReview {
    pub id: i64,
    pub invoice: InvoiceId,
    /// The credit's ledger reference.
    pub reference: String,
    pub asset: String,
    /// The payment's amount.
    pub amount: Amount,
    /// What the reversal takes from the merchant's available balance.
    pub required: Amount,
    /// The merchant's available balance when last tried.
    pub available: Amount,
    pub reason: String,
    pub parked_at: OffsetDateTime,
    pub resolved_at: Option<OffsetDateTime>,
    /// `reversed`, `closed` (by an operator) or `final_again`.
    pub resolution: Option<String>,
    pub note: Option<String>,
}

/// What [`Store::retry_invoice_reversal`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Posted now; the review is resolved as `reversed`.
    Reversed,
    /// Still not covered: the review stays open with the new figures.
    StillShort { available: Amount, required: Amount },
}

type ReviewRow = (
    i64,
    uuid::Uuid,
    String,
    String,
    String,
    String,
    String,
    String,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<String>,
    Option<String>,
);

const REVIEW_COLUMNS: &str = "id, invoice_id, reference, asset, amount::text, required::text, \
     available::text, reason, parked_at, resolved_at, resolution, note";

fn review(row: ReviewRow) -> Result<ReversalReview> {
    let (
        id,
        invoice,
        reference,
        asset,
        amount,
        required,
        available,
        reason,
        parked_at,
        resolved_at,
        resolution,
        note,
    ) = row;
    Ok(ReversalReview {
        id,
        invoice: InvoiceId::from_uuid(invoice),
        reference,
        asset,
        amount: convert::amount(&amount)?,
        required: convert::amount(&required)?,
        available: convert::amount(&available)?,
        reason,
        parked_at,
        resolved_at,
        resolution,
        note,
    })
}

/// Parks the reversal of `reference` (one open review per reference; a repeat refreshes the
/// figures). Returns the review's id.
pub(crate) async fn park(
    conn: &mut PgConnection,
    invoice: &Invoice,
    reference: &str,
    amount: Amount,
    required: Amount,
    available: Amount,
) -> Result<i64> {
    let reason = format!(
        "a reorg removed this credited payment, but the merchant's available balance \
         ({available}) no longer covers the reversal ({required} base units of {})",
        invoice.asset
    );
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO invoice_reversal_reviews
             (invoice_id, reference, asset, amount, required, available, reason)
         VALUES ($1, $2, $3, $4::numeric, $5::numeric, $6::numeric, $7)
         ON CONFLICT (reference) WHERE resolved_at IS NULL
         DO UPDATE SET available = EXCLUDED.available, reason = EXCLUDED.reason
         RETURNING id",
    )
    .bind(invoice.id.as_uuid())
    .bind(reference)
    .bind(invoice.asset.to_string())
    .bind(amount.to_string())
    .bind(required.to_string())
    .bind(available.to_string())
    .bind(reason)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// Whether a review holds `reference`'s reversal: one open, or one an operator resolved (a
/// review closed because the payment was final again does not: if a later reorg removes it
/// again, the reversal is due again).
pub(crate) async fn holds(conn: &mut PgConnection, reference: &str) -> Result<bool> {
    let row: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM invoice_reversal_reviews
          WHERE reference = $1 AND resolution IS DISTINCT FROM 'final_again' LIMIT 1",
    )
    .bind(reference)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

/// Closes the open review of `reference`, if any: its payment is final again, so there is
/// nothing to reverse.
pub(crate) async fn close_final_again(conn: &mut PgConnection, reference: &str) -> Result<()> {
    sqlx::query(
        "UPDATE invoice_reversal_reviews
            SET resolved_at = now(), resolution = 'final_again', note = $2
          WHERE reference = $1 AND resolved_at IS NULL",
    )
    .bind(reference)
    .bind(FINAL_AGAIN)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// Parked reversals, newest first (`open_only`: unresolved ones).
    pub async fn invoice_reversal_reviews(&self, open_only: bool) -> Result<Vec<ReversalReview>> {
        let rows: Vec<ReviewRow> = sqlx::query_as(&format!(
            "SELECT {REVIEW_COLUMNS} FROM invoice_reversal_reviews
             WHERE NOT $1 OR resolved_at IS NULL ORDER BY id DESC LIMIT 1000"
        ))
        .bind(open_only)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(review).collect()
    }

    /// Tries the parked reversal `id` again (after the merchant's balance was topped up, say):
    /// posted and resolved when the balance covers it, otherwise left open with the new figures.
    /// [`StoreError::NotFound`] for an unknown or resolved review.
    pub async fn retry_invoice_reversal(&self, id: i64) -> Result<RetryOutcome> {
        let mut tx = self.pool.begin().await?;
        let row: Option<ReviewRow> = sqlx::query_as(&format!(
            "SELECT {REVIEW_COLUMNS} FROM invoice_reversal_reviews
             WHERE id = $1 AND resolved_at IS NULL FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let parked = review(row.ok_or(StoreError::NotFound)?)?;
        let invoice = select_for_update(&mut tx, parked.invoice)
            .await?
            .ok_or(StoreError::NotFound)?;
        let posting = PayinPosting {
            merchant: invoice.merchant_id,
            asset: &invoice.asset,
            amount: parked.amount,
            fee_bps: invoice.service_fee_bps,
            reference: &parked.reference,
        };
        let outcome = match post_invoice_reversal(&mut tx, &posting).await {
            Ok(_) => {
                sqlx::query(
                    "UPDATE invoice_reversal_reviews
                        SET resolved_at = now(), resolution = 'reversed',
                            note = 'reversal posted by an operator retry'
                      WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                RetryOutcome::Reversed
            }
            Err(StoreError::InsufficientFunds {
                available,
                required,
                ..
            }) => {
                // The failed posting is rolled back with the transaction; only the figures are
                // refreshed, in a transaction of their own.
                tx.rollback().await?;
                sqlx::query(
                    "UPDATE invoice_reversal_reviews SET available = $2::numeric WHERE id = $1",
                )
                .bind(id)
                .bind(available.to_string())
                .execute(&self.pool)
                .await?;
                return Ok(RetryOutcome::StillShort {
                    available,
                    required,
                });
            }
            Err(error) => return Err(error),
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Closes the open review `id` with the operator's `note`; nothing is posted (the credit
    /// stays: settled with the merchant outside the ledger, say). `false` when it is not open.
    pub async fn close_invoice_reversal_review(&self, id: i64, note: &str) -> Result<bool> {
        let note = note.trim();
        if note.is_empty() || note.len() > 2000 {
            return Err(StoreError::Invalid("a note of 1 to 2000 characters".into()));
        }
        let done = sqlx::query(
            "UPDATE invoice_reversal_reviews
                SET resolved_at = now(), resolution = 'closed', note = $2
              WHERE id = $1 AND resolved_at IS NULL",
        )
        .bind(id)
        .bind(note)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
