//! Payments parked for an operator ([`Store::flag_for_review`]: `payment_confirmations.last_outcome
//! = 'needs_review'`): the operator's list, and clearing the flag once the cause is fixed so
//! reconcile nudges the payment again and the steps may move it on.

use meshpay_domain::{MerchantId, PaymentId, PaymentStatus};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::convert;
use crate::error::Result;

/// One parked payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    pub payment_id: PaymentId,
    pub merchant_id: MerchantId,
    pub status: PaymentStatus,
    /// The chain part of the payment's asset (`anvil` of `anvil:USDC`).
    pub chain: String,
    pub reason: Option<String>,
    /// When it was flagged (the flag's `last_checked_at`).
    pub flagged_at: Option<OffsetDateTime>,
}

/// What [`Store::clear_review`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearedReview {
    pub reason: Option<String>,
    pub flagged_at: Option<OffsetDateTime>,
}

type ReviewRow = (
    Uuid,
    Uuid,
    String,
    String,
    Option<String>,
    Option<OffsetDateTime>,
);

impl Store {
    /// Non-terminal payments flagged for review, newest flag first, at most `limit`.
    pub async fn list_review(&self, limit: u32) -> Result<Vec<ReviewItem>> {
        let rows: Vec<ReviewRow> = sqlx::query_as(
            "SELECT p.id, p.merchant_id, p.status, p.asset, c.last_detail, c.last_checked_at
               FROM payment_confirmations c JOIN payments p ON p.id = c.payment_id
              WHERE c.last_outcome = 'needs_review'
                AND p.status NOT IN ('settled', 'failed', 'cancelled')
              ORDER BY c.last_checked_at DESC NULLS LAST, p.id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, merchant, status, asset, reason, flagged_at)| {
                Ok(ReviewItem {
                    payment_id: PaymentId::from_uuid(id),
                    merchant_id: MerchantId::from_uuid(merchant),
                    status: convert::status(&status)?,
                    chain: asset
                        .split_once(':')
                        .map_or(asset.as_str(), |(c, _)| c)
                        .to_owned(),
                    reason,
                    flagged_at,
                })
            })
            .collect()
    }

    /// Clears the payment's review flag; `None` when it was not flagged. The outcome and its
    /// reason are reset (the caller reports the returned reason); the observed inclusion, lease
    /// and counters are kept so the confirm step still sees reorgs.
    pub async fn clear_review(&self, payment: PaymentId) -> Result<Option<ClearedReview>> {
        let row: Option<(Option<String>, Option<OffsetDateTime>)> = sqlx::query_as(
            "UPDATE payment_confirmations c SET last_outcome = NULL, last_detail = NULL,
                    updated_at = now()
               FROM (SELECT payment_id, last_detail, last_checked_at FROM payment_confirmations
                      WHERE payment_id = $1 AND last_outcome = 'needs_review' FOR UPDATE) old
              WHERE c.payment_id = old.payment_id
              RETURNING old.last_detail, old.last_checked_at",
        )
        .bind(payment.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(reason, flagged_at)| ClearedReview { reason, flagged_at }))
    }
}
