//! The settled payments a reconcile run re-checks against the chain: those inside the depth
//! window, least recently checked first.

use meshpay_domain::{Address, Amount, B256, PaymentId, U256};

use super::i64_of;
use crate::Store;
use crate::convert;
use crate::error::Result;
use crate::ledger::{WalletPosting, post_wallet};

/// A settled payment's recorded inclusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledRef {
    pub payment_id: PaymentId,
    pub wallet: Option<Address>,
    pub tx_hash: B256,
    pub block_number: u64,
    pub block_hash: B256,
}

impl Store {
    /// Up to `limit` payments of `chain` settled in a block at or above `from_block`, the least
    /// recently re-checked first.
    pub async fn settled_sample(
        &self,
        chain: &str,
        from_block: u64,
        limit: u32,
    ) -> Result<Vec<SettledRef>> {
        let rows: Vec<(uuid::Uuid, Option<String>, String, i64, String)> = sqlx::query_as(
            "SELECT p.id, p.hot_wallet, p.tx_hash, p.block_number, p.block_hash
             FROM payments p LEFT JOIN settled_rechecks r ON r.payment_id = p.id
             WHERE p.status = 'settled' AND p.chain = $1 AND p.block_number >= $2
               AND p.tx_hash IS NOT NULL AND p.block_hash IS NOT NULL
             ORDER BY r.checked_at ASC NULLS FIRST, p.block_number DESC LIMIT $3",
        )
        .bind(chain)
        .bind(i64_of(from_block, "block")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, wallet, hash, block, block_hash)| {
                Ok(SettledRef {
                    payment_id: PaymentId::from_uuid(id),
                    wallet: wallet.as_deref().map(convert::address).transpose()?,
                    tx_hash: convert::b256(&hash)?,
                    block_number: convert::u64_from_i64(block, "block_number")?,
                    block_hash: convert::b256(&block_hash)?,
                })
            })
            .collect()
    }

    /// Records a re-check's outcome (`canonical`, `reorged`, `inconclusive`).
    pub async fn record_settled_recheck(&self, payment: PaymentId, outcome: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settled_rechecks (payment_id, checked_at, outcome) VALUES ($1, now(), $2)
             ON CONFLICT (payment_id) DO UPDATE SET checked_at = now(), outcome = $2",
        )
        .bind(payment.as_uuid())
        .bind(outcome)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A settled payment's transaction found again in another canonical block after a reorg:
    /// the recorded inclusion follows the chain (the payment's state does not change; the
    /// reorg itself is kept in its confirm record). When that block charged another fee than
    /// the books hold for the payment, the difference is posted (`fee_adjustment`, between
    /// `hot_wallets` and `network_fees`: the operator's, the merchant was charged at settlement)
    /// once per (payment, block). Returns the adjustment (charged - posted, signed text) if any.
    pub async fn move_settled_inclusion(
        &self,
        payment: PaymentId,
        block_number: u64,
        block_hash: B256,
        fee_charged: U256,
    ) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT p.network_fee_asset,
                    (coalesce((SELECT sum(e.amount) FROM ledger_transactions t
                                 JOIN ledger_entries e ON e.transaction_id = t.id
                                 JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'network_fees'
                               WHERE t.payment_id = p.id
                                  OR (t.kind = 'fee_adjustment'
                                      AND t.reference LIKE 'fee_adjustment:' || p.id::text || ':%')), 0))::text
             FROM payments p WHERE p.id = $1 AND p.status = 'settled' FOR UPDATE",
        )
        .bind(payment.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((fee_asset, posted)) = row else {
            return Ok(None);
        };
        let posted = convert::amount(&posted)?.base_units();
        let mut adjustment = None;
        if posted != fee_charged {
            let increase = fee_charged > posted;
            let delta = if increase {
                fee_charged - posted
            } else {
                posted - fee_charged
            };
            let details = serde_json::json!({
                "payment_id": payment, "block_number": block_number, "block_hash": block_hash,
                "posted": posted.to_string(), "charged": fee_charged.to_string(),
            });
            post_wallet(
                &mut tx,
                WalletPosting::FeeAdjustment { increase },
                &convert::asset(&fee_asset)?,
                Amount::from_base_units(delta),
                &format!("fee_adjustment:{}:{block_hash}", payment.as_uuid()),
                &details,
            )
            .await?;
            adjustment = Some(if increase {
                delta.to_string()
            } else {
                format!("-{delta}")
            });
        }
        sqlx::query(
            "UPDATE payments SET block_number = $2, block_hash = $3, updated_at = now() WHERE id = $1",
        )
        .bind(payment.as_uuid())
        .bind(i64_of(block_number, "block")?)
        .bind(block_hash.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(adjustment)
    }

    /// The stored raw bytes of a payment's transaction with this hash (to send them again).
    pub async fn raw_transaction(&self, tx_hash: B256) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT raw_tx FROM payment_transactions WHERE tx_hash = $1")
                .bind(tx_hash.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(raw,)| raw))
    }
}
