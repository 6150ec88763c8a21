//! What holds each nonce of a wallet that the chain has not reached: the bytes wallet healing
//! re-sends when the chain's pending nonce is below the counter (a lost send, or a reorg that
//! removed mined transactions which nodes did not return to their pools).

use meshpay_domain::Address;
use uuid::Uuid;

use super::attempts::{ATTEMPT_COLUMNS, AttemptRow};
use super::{TxAttempt, checksum, i64_of, u64_of};
use crate::Store;
use crate::convert;
use crate::error::Result;
use crate::sweeps::SweepTx;

/// The stored transaction to re-send for one nonce.
#[derive(Debug, Clone)]
pub enum NonceHolder {
    /// An in-flight payment's live attempt: re-sent under [`Store::begin_send`].
    Live(TxAttempt),
    /// The attempt a final (or `confirmed`) payment's receipt named: exactly the bytes that were
    /// mined, never another attempt of that nonce, so re-sending cannot pay twice.
    Mined(TxAttempt),
    /// A sweep's mined transaction, or its live one while the sweep is in flight.
    Sweep { nonce: u64, tx: SweepTx },
}

impl NonceHolder {
    pub fn nonce(&self) -> u64 {
        match self {
            NonceHolder::Live(attempt) | NonceHolder::Mined(attempt) => attempt.nonce,
            NonceHolder::Sweep { nonce, .. } => *nonce,
        }
    }
}

impl Store {
    /// The payment attempts and sweep transactions holding the wallet's nonces at or above
    /// `from_nonce`, lowest nonce first, at most `limit` (gap fills are
    /// [`Store::gap_fills_from`]). A payment that is no longer in flight contributes only the
    /// attempt its receipt named, and only when it ended on that receipt: `confirmed`,
    /// `settled`, `cancelled`, or `failed` with a network fee charged (reverted on chain). A
    /// failure before mining contributes nothing, even with a block left from a reorged
    /// confirmation (the payment no longer holds funds for it).
    pub async fn nonce_holders_from(
        &self,
        chain: &str,
        wallet: Address,
        from_nonce: u64,
        limit: u32,
    ) -> Result<Vec<NonceHolder>> {
        let limit = i64::from(limit.min(1000));
        let from = i64_of(from_nonce, "nonce")?;
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS}, mined FROM (
               SELECT t.*, p.status NOT IN ('broadcast', 'stalled', 'cancelling') AS mined
                 FROM payment_transactions t JOIN payments p ON p.id = t.payment_id
                WHERE t.chain = $1 AND t.from_address = $2 AND t.nonce >= $3
                  AND ((p.status IN ('broadcast', 'stalled', 'cancelling')
                        AND t.status IN ('signed', 'sent'))
                    OR (p.block_number IS NOT NULL AND p.tx_hash = t.tx_hash
                        AND (p.status IN ('confirmed', 'settled', 'cancelled')
                             OR (p.status = 'failed' AND p.network_fee_actual IS NOT NULL))))
             ) held ORDER BY nonce LIMIT $4"
        );
        let rows: Vec<HeldRow> = sqlx::query_as(&sql)
            .bind(chain)
            .bind(checksum(wallet))
            .bind(from)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut holders = rows
            .into_iter()
            .map(|row| {
                let attempt = row.attempt.into_attempt()?;
                Ok(if row.mined {
                    NonceHolder::Mined(attempt)
                } else {
                    NonceHolder::Live(attempt)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        type SweepRow = (i64, Uuid, Uuid, String, Vec<u8>, String, String, String);
        let sweeps: Vec<SweepRow> = sqlx::query_as(
            "SELECT s.nonce, t.id, t.sweep_id, t.tx_hash, t.raw_tx, t.max_fee_per_gas::text,
                    t.max_priority_fee_per_gas::text, t.status
               FROM sweep_transactions t JOIN sweeps s ON s.id = t.sweep_id
              WHERE s.chain = $1 AND s.wallet = $2 AND s.nonce >= $3
                AND ((s.block_number IS NOT NULL AND s.tx_hash = t.tx_hash)
                  OR (s.status = 'broadcast' AND s.tx_hash IS NULL
                      AND t.status IN ('signed', 'sent')))
              ORDER BY s.nonce LIMIT $4",
        )
        .bind(chain)
        .bind(checksum(wallet))
        .bind(from)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        for (nonce, id, sweep_id, hash, raw, fee, tip, status) in sweeps {
            holders.push(NonceHolder::Sweep {
                nonce: u64_of(nonce, "sweep nonce")?,
                tx: SweepTx {
                    id,
                    sweep_id,
                    tx_hash: convert::b256(&hash)?,
                    raw,
                    max_fee_per_gas_wei: convert::u128_text(&fee)?,
                    max_priority_fee_per_gas_wei: convert::u128_text(&tip)?,
                    live: status != "replaced",
                },
            });
        }
        holders.sort_by_key(NonceHolder::nonce);
        holders.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(holders)
    }

    /// Records a re-send of a mined attempt's bytes (after a reorg removed them): counted only.
    /// The payment's status, the attempt's status and its last error stay as they are.
    pub async fn record_mined_resend(&self, attempt: Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE payment_transactions SET send_count = send_count + 1, last_sent_at = now()
              WHERE id = $1",
        )
        .bind(attempt)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct HeldRow {
    #[sqlx(flatten)]
    attempt: AttemptRow,
    mined: bool,
}
