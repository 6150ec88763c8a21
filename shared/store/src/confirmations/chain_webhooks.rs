//! Chain webhooks: replay dedupe and the tx-hash → payment lookup a hint needs.

use std::time::Duration;

use meshpay_domain::{B256, PaymentId, PaymentStatus};
use uuid::Uuid;

use super::ms;
use crate::Store;
use crate::convert;
use crate::error::Result;

impl Store {
    /// Payments whose transactions (any attempt) have one of `hashes`, with their status.
    pub async fn payments_by_tx_hashes(
        &self,
        hashes: &[B256],
    ) -> Result<Vec<(PaymentId, PaymentStatus, B256)>> {
        let texts: Vec<String> = hashes.iter().map(ToString::to_string).collect();
        let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT DISTINCT p.id, p.status, t.tx_hash FROM payment_transactions t
               JOIN payments p ON p.id = t.payment_id
              WHERE t.tx_hash = ANY($1) ORDER BY p.id",
        )
        .bind(&texts)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, status, hash)| {
                Ok((
                    PaymentId::from_uuid(id),
                    convert::status(&status)?,
                    convert::b256(&hash)?,
                ))
            })
            .collect()
    }

    /// Remembers a chain webhook. `false`: this `(source, id)` was seen before (a replay).
    pub async fn record_chain_webhook(
        &self,
        source: &str,
        webhook_id: &str,
        tx_hashes: usize,
        enqueued: usize,
    ) -> Result<bool> {
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let inserted = sqlx::query(
            "INSERT INTO chain_webhook_receipts (source, webhook_id, tx_hashes, enqueued)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(source)
        .bind(webhook_id)
        .bind(count(tx_hashes))
        .bind(count(enqueued))
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Deletes at most `limit` webhook receipts older than `older_than`; returns how many.
    pub async fn prune_chain_webhooks(&self, older_than: Duration, limit: u32) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM chain_webhook_receipts WHERE (source, webhook_id) IN (
                 SELECT source, webhook_id FROM chain_webhook_receipts
                  WHERE received_at < now() - $1 * interval '1 millisecond'
                  ORDER BY received_at LIMIT $2)",
        )
        .bind(ms(older_than)?)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
