//! The payments a reconcile run re-checks against the chain: every payment that ended on a
//! receipt (settled, cancelled by its mined replacement, failed with a fee charged) inside the
//! depth window, least recently checked first; and the move of a recorded inclusion to the
//! block the chain now has the same transaction in.

use meshpay_domain::{Address, Amount, B256, PaymentId, PaymentStatus, U256};

use super::i64_of;
use crate::Store;
use crate::convert;
use crate::error::Result;
use crate::ledger::{WalletPosting, post_wallet};

/// Which payments ended on a receipt: the mined transaction on record is the one that ended
/// them. A payment that failed before mining may keep a block from a reorged confirmation; it
/// has no fee charged, so it is not one of them.
const ENDED_ON_RECEIPT: &str = "(p.status IN ('settled', 'cancelled')
                                  OR (p.status = 'failed' AND p.network_fee_actual IS NOT NULL))";

/// A recorded inclusion: the payment's mined transaction and the block on record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionRef {
    pub payment_id: PaymentId,
    /// The status the receipt ended it in.
    pub status: PaymentStatus,
    pub wallet: Option<Address>,
    pub tx_hash: B256,
    pub block_number: u64,
    pub block_hash: B256,
}

/// A recorded inclusion moved to another block, with the fee difference posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionMove {
    pub from_block: u64,
    pub to_block: u64,
    /// Charged in the new block − held by the books (signed base units), when they differ.
    pub fee_adjustment: Option<String>,
}

type InclusionRow = (uuid::Uuid, String, Option<String>, String, i64, String);

impl Store {
    /// Up to `limit` payments of `chain` that ended on a receipt in a block at or above
    /// `from_block`, the least recently re-checked first.
    pub async fn inclusion_sample(
        &self,
        chain: &str,
        from_block: u64,
        limit: u32,
    ) -> Result<Vec<InclusionRef>> {
        let rows: Vec<InclusionRow> = sqlx::query_as(&format!(
            "SELECT p.id, p.status, p.hot_wallet, p.tx_hash, p.block_number, p.block_hash
             FROM payments p LEFT JOIN settled_rechecks r ON r.payment_id = p.id
             WHERE {ENDED_ON_RECEIPT} AND p.chain = $1 AND p.block_number >= $2
               AND p.tx_hash IS NOT NULL AND p.block_hash IS NOT NULL
             ORDER BY r.checked_at ASC NULLS FIRST, p.block_number DESC LIMIT $3"
        ))
        .bind(chain)
        .bind(i64_of(from_block, "block")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, status, wallet, hash, block, block_hash)| {
                Ok(InclusionRef {
                    payment_id: PaymentId::from_uuid(id),
                    status: convert::status(&status)?,
                    wallet: wallet.as_deref().map(convert::address).transpose()?,
                    tx_hash: convert::b256(&hash)?,
                    block_number: convert::u64_from_i64(block, "block_number")?,
                    block_hash: convert::b256(&block_hash)?,
                })
            })
            .collect()
    }

    /// Records a re-check's outcome (`canonical`, `reorged`, `inconclusive`).
    pub async fn record_inclusion_recheck(&self, payment: PaymentId, outcome: &str) -> Result<()> {
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

    /// The transaction of `recorded` found again in another canonical block after a reorg: the
    /// recorded inclusion follows the chain, in one transaction with its event (an appended
    /// `payment_inclusion_moves` row). The payment's status does not change. When that block
    /// charged another fee than the books hold for the payment, the difference is posted
    /// (`fee_adjustment`, between `hot_wallets` and `network_fees`: the operator's, the merchant
    /// was charged when the payment ended) once per (payment, block).
    ///
    /// Only while the payment is still as re-checked (same status, same block on record, under
    /// its row lock): `None` when it changed since, so a concurrent run moves it once.
    pub async fn move_inclusion(
        &self,
        recorded: &InclusionRef,
        block_number: u64,
        block_hash: B256,
        fee_charged: U256,
    ) -> Result<Option<InclusionMove>> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, String)> = sqlx::query_as(&format!(
            "SELECT p.network_fee_asset,
                    (coalesce((SELECT sum(e.amount) FROM ledger_transactions t
                                 JOIN ledger_entries e ON e.transaction_id = t.id
                                 JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'network_fees'
                               WHERE t.payment_id = p.id
                                  OR (t.kind = 'fee_adjustment'
                                      AND t.reference LIKE 'fee_adjustment:' || p.id::text || ':%')), 0))::text
             FROM payments p
             WHERE p.id = $1 AND p.status = $2 AND p.tx_hash = $3 AND p.block_hash = $4
               AND {ENDED_ON_RECEIPT}
             FOR UPDATE"
        ))
        .bind(recorded.payment_id.as_uuid())
        .bind(recorded.status.as_str())
        .bind(recorded.tx_hash.to_string())
        .bind(recorded.block_hash.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((fee_asset, posted)) = row else {
            return Ok(None);
        };
        let payment = recorded.payment_id;
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
        sqlx::query(
            "INSERT INTO payment_inclusion_moves (payment_id, status, tx_hash, from_block,
                 from_block_hash, to_block, to_block_hash, fee_posted, fee_charged)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::numeric, $9::text::numeric)",
        )
        .bind(payment.as_uuid())
        .bind(recorded.status.as_str())
        .bind(recorded.tx_hash.to_string())
        .bind(i64_of(recorded.block_number, "block")?)
        .bind(recorded.block_hash.to_string())
        .bind(i64_of(block_number, "block")?)
        .bind(block_hash.to_string())
        .bind(posted.to_string())
        .bind(fee_charged.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(InclusionMove {
            from_block: recorded.block_number,
            to_block: block_number,
            fee_adjustment: adjustment,
        }))
    }

    /// The blocks a payment's recorded inclusion moved through, oldest first: (from, to).
    pub async fn inclusion_moves(&self, payment: PaymentId) -> Result<Vec<(u64, u64)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT from_block, to_block FROM payment_inclusion_moves
              WHERE payment_id = $1 ORDER BY created_at, to_block",
        )
        .bind(payment.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(from, to)| {
                Ok((
                    convert::u64_from_i64(from, "block")?,
                    convert::u64_from_i64(to, "block")?,
                ))
            })
            .collect()
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
