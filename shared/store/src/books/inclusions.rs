//! What a reconcile run re-checks against the chain, inside the depth window and least recently
//! checked first: every payment that ended on a receipt (settled, cancelled by its mined
//! replacement, failed with a fee charged) and every finished sweep (confirmed, or failed:
//! reverted with its gas posted). And the move of a recorded inclusion to the block the chain
//! now has the same transaction in.

use meshpay_domain::{Address, Amount, AssetId, B256, PaymentId, PaymentStatus, U256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::i64_of;
use crate::Store;
use crate::convert;
use crate::error::Result;
use crate::ledger::{WalletPosting, post_wallet};
use crate::sweeps::{DepositFlow, SweepStatus};

/// Which payments ended on a receipt: the mined transaction on record is the one that ended
/// them. A payment that failed before mining may keep a block from a reorged confirmation; it
/// has no fee charged, so it is not one of them.
const ENDED_ON_RECEIPT: &str = "(p.status IN ('settled', 'cancelled')
                                  OR (p.status = 'failed' AND p.network_fee_actual IS NOT NULL))";

/// Whose mined transaction a recorded inclusion is, and the status its receipt ended it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mined {
    Payment {
        id: PaymentId,
        status: PaymentStatus,
    },
    Sweep {
        id: Uuid,
        status: SweepStatus,
    },
}

impl Mined {
    /// The discrepancy kind of a recorded inclusion whose block left the chain.
    pub const fn reorged_kind(&self) -> &'static str {
        match self {
            Mined::Payment {
                status: PaymentStatus::Settled,
                ..
            } => "settled_reorged",
            Mined::Payment { .. } => "receipt_reorged",
            Mined::Sweep { .. } => "sweep_reorged",
        }
    }

    pub fn payment_id(&self) -> Option<PaymentId> {
        match self {
            Mined::Payment { id, .. } => Some(*id),
            Mined::Sweep { .. } => None,
        }
    }
}

impl std::fmt::Display for Mined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mined::Payment { id, status } => write!(f, "{status} payment {id}"),
            Mined::Sweep { id, status } => write!(f, "{} sweep {id}", status.as_str()),
        }
    }
}

/// A recorded inclusion: the mined transaction and the block on record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionRef {
    pub mined: Mined,
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

type InclusionRow = (Uuid, String, Option<String>, String, i64, String);

fn inclusion_of(
    (id, status, wallet, hash, block, block_hash): InclusionRow,
    mined: impl FnOnce(Uuid, &str) -> Result<Mined>,
) -> Result<InclusionRef> {
    Ok(InclusionRef {
        mined: mined(id, &status)?,
        wallet: wallet.as_deref().map(convert::address).transpose()?,
        tx_hash: convert::b256(&hash)?,
        block_number: convert::u64_from_i64(block, "block_number")?,
        block_hash: convert::b256(&block_hash)?,
    })
}

impl Store {
    /// Up to `limit` payments of `chain` that ended on a receipt in a block at or above
    /// `from_block`, then up to `limit` finished sweeps there: first those whose last re-check
    /// did not find them canonical (reorged out, or the check was inconclusive), so a reorged
    /// transaction is followed on every run until it is back in a final block and its recorded
    /// block and fee have moved (not after every other one in the window has had its turn:
    /// minutes, with fees on record that the chain no longer charged); then the least recently
    /// re-checked.
    pub async fn inclusion_sample(
        &self,
        chain: &str,
        from_block: u64,
        limit: u32,
    ) -> Result<Vec<InclusionRef>> {
        let from = i64_of(from_block, "block")?;
        let payments: Vec<InclusionRow> = sqlx::query_as(&format!(
            "SELECT p.id, p.status, p.hot_wallet, p.tx_hash, p.block_number, p.block_hash
             FROM payments p LEFT JOIN settled_rechecks r ON r.payment_id = p.id
             WHERE {ENDED_ON_RECEIPT} AND p.chain = $1 AND p.block_number >= $2
               AND p.tx_hash IS NOT NULL AND p.block_hash IS NOT NULL
             ORDER BY r.outcome IS NOT DISTINCT FROM 'canonical', r.checked_at ASC NULLS FIRST,
                      p.block_number DESC LIMIT $3"
        ))
        .bind(chain)
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let sweeps: Vec<InclusionRow> = sqlx::query_as(
            "SELECT s.id, s.status, s.wallet, s.tx_hash, s.block_number, s.block_hash
             FROM sweeps s LEFT JOIN sweep_rechecks r ON r.sweep_id = s.id
             WHERE s.status IN ('confirmed', 'failed') AND s.chain = $1 AND s.block_number >= $2
               AND s.tx_hash IS NOT NULL AND s.block_hash IS NOT NULL
             ORDER BY r.outcome IS NOT DISTINCT FROM 'canonical', r.checked_at ASC NULLS FIRST,
                      s.block_number DESC LIMIT $3",
        )
        .bind(chain)
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let payments = payments.into_iter().map(|row| {
            inclusion_of(row, |id, status| {
                Ok(Mined::Payment {
                    id: PaymentId::from_uuid(id),
                    status: convert::status(status)?,
                })
            })
        });
        let sweeps = sweeps.into_iter().map(|row| {
            inclusion_of(row, |id, status| {
                Ok(Mined::Sweep {
                    id,
                    status: SweepStatus::parse(status)?,
                })
            })
        });
        payments.chain(sweeps).collect()
    }

    /// Records a re-check's outcome (`canonical`, `reorged`, `inconclusive`).
    pub async fn record_inclusion_recheck(&self, mined: &Mined, outcome: &str) -> Result<()> {
        let (sql, id) = match mined {
            Mined::Payment { id, .. } => (
                "INSERT INTO settled_rechecks (payment_id, checked_at, outcome) VALUES ($1, now(), $2)
                 ON CONFLICT (payment_id) DO UPDATE SET checked_at = now(), outcome = $2",
                id.as_uuid(),
            ),
            Mined::Sweep { id, .. } => (
                "INSERT INTO sweep_rechecks (sweep_id, checked_at, outcome) VALUES ($1, now(), $2)
                 ON CONFLICT (sweep_id) DO UPDATE SET checked_at = now(), outcome = $2",
                *id,
            ),
        };
        sqlx::query(sql)
            .bind(id)
            .bind(outcome)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The transaction of `recorded` found again in another canonical block after a reorg: the
    /// recorded inclusion follows the chain, in one transaction with its event (an appended
    /// `inclusion_moves` row). The status does not change: the same transaction was mined, so
    /// what it ended in still holds. When that block charged another fee than the books hold
    /// for it, the difference is posted (`fee_adjustment`, between `hot_wallets` and
    /// `network_fees`: the operator's; a merchant was charged when its payment ended) once per
    /// (payment or sweep, block). `native`: the chain's coin, which every fee is paid in.
    ///
    /// Only while it is still as re-checked (same status, same transaction and block on record,
    /// under its row lock): `None` when it changed since, so a concurrent run moves it once.
    pub async fn move_inclusion(
        &self,
        recorded: &InclusionRef,
        block_number: u64,
        block_hash: B256,
        fee_charged: U256,
        native: &AssetId,
    ) -> Result<Option<InclusionMove>> {
        let mut tx = self.pool.begin().await?;
        let (id, status) = match recorded.mined {
            Mined::Payment { id, status } => (id.as_uuid(), status.as_str()),
            Mined::Sweep { id, status } => (id, status.as_str()),
        };
        let (table, ended, ledger_reference) = match recorded.mined {
            Mined::Payment { .. } => ("payments", ENDED_ON_RECEIPT, "t.payment_id = p.id"),
            Mined::Sweep { .. } => ("sweeps", "true", "t.reference = 'sweep:' || p.id::text"),
        };
        // What the books hold as this transaction's fee: its own postings to `network_fees`
        // plus every adjustment made for it before.
        let posted: Option<(String,)> = sqlx::query_as(&format!(
            "SELECT (coalesce((SELECT sum(e.amount) FROM ledger_transactions t
                                 JOIN ledger_entries e ON e.transaction_id = t.id
                                 JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'network_fees'
                               WHERE {ledger_reference}
                                  OR (t.kind = 'fee_adjustment'
                                      AND t.reference LIKE 'fee_adjustment:' || p.id::text || ':%')), 0))::text
             FROM {table} p
             WHERE p.id = $1 AND p.status = $2 AND p.tx_hash = $3 AND p.block_hash = $4 AND {ended}
             FOR UPDATE"
        ))
        .bind(id)
        .bind(status)
        .bind(recorded.tx_hash.to_string())
        .bind(recorded.block_hash.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((posted,)) = posted else {
            return Ok(None);
        };
        let posted = convert::amount(&posted)?.base_units();
        let id_key = match recorded.mined {
            Mined::Payment { .. } => "payment_id",
            Mined::Sweep { .. } => "sweep_id",
        };
        let adjustment = post_fee_adjustment(
            &mut tx,
            (id_key, id),
            native,
            posted,
            fee_charged,
            (block_number, block_hash),
        )
        .await?;
        sqlx::query(&format!(
            "UPDATE {table} SET block_number = $2, block_hash = $3, updated_at = now() WHERE id = $1"
        ))
        .bind(id)
        .bind(i64_of(block_number, "block")?)
        .bind(block_hash.to_string())
        .execute(&mut *tx)
        .await?;
        let (payment_id, sweep_id) = match recorded.mined {
            Mined::Payment { .. } => (Some(id), None),
            Mined::Sweep { .. } => (None, Some(id)),
        };
        sqlx::query(
            "INSERT INTO inclusion_moves (payment_id, sweep_id, status, tx_hash, from_block,
                 from_block_hash, to_block, to_block_hash, fee_posted, fee_charged)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::numeric, $10::text::numeric)",
        )
        .bind(payment_id)
        .bind(sweep_id)
        .bind(status)
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

    /// The blocks a payment's or sweep's recorded inclusion moved through, oldest first:
    /// (from, to).
    pub async fn inclusion_moves(&self, mined: &Mined) -> Result<Vec<(u64, u64)>> {
        let (column, id) = match mined {
            Mined::Payment { id, .. } => ("payment_id", id.as_uuid()),
            Mined::Sweep { id, .. } => ("sweep_id", *id),
        };
        let rows: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT from_block, to_block FROM inclusion_moves WHERE {column} = $1 ORDER BY id"
        ))
        .bind(id)
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

    /// What a sweep's deposit addresses sent, as recorded from its receipt: per (deposit,
    /// token), ordered by both.
    pub async fn sweep_flows(&self, sweep: Uuid) -> Result<Vec<DepositFlow>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT deposit_address, token, amount::text FROM sweep_flows
              WHERE sweep_id = $1 AND amount > 0 ORDER BY deposit_address, token",
        )
        .bind(sweep)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|(deposit, token, amount)| {
                Ok(DepositFlow {
                    deposit: convert::address(deposit)?,
                    token: convert::address(token)?,
                    amount: convert::amount(amount)?,
                })
            })
            .collect()
    }

    /// The stored raw bytes of a payment's or sweep's transaction with this hash (to send them
    /// again).
    pub async fn raw_transaction(&self, tx_hash: B256) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT raw_tx FROM payment_transactions WHERE tx_hash = $1
             UNION ALL SELECT raw_tx FROM sweep_transactions WHERE tx_hash = $1 LIMIT 1",
        )
        .bind(tx_hash.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(raw,)| raw))
    }
}

/// Posts `charged − posted` of `native` for the payment or sweep `id` (named `id_key` in the
/// posting's details) at `block`, when not zero. Returns it as signed decimal text.
async fn post_fee_adjustment(
    conn: &mut PgConnection,
    (id_key, id): (&str, Uuid),
    native: &AssetId,
    posted: U256,
    charged: U256,
    (block_number, block_hash): (u64, B256),
) -> Result<Option<String>> {
    if posted == charged {
        return Ok(None);
    }
    let increase = charged > posted;
    let delta = if increase {
        charged - posted
    } else {
        posted - charged
    };
    let mut details = serde_json::json!({
        "block_number": block_number, "block_hash": block_hash,
        "posted": posted.to_string(), "charged": charged.to_string(),
    });
    details[id_key] = serde_json::json!(id);
    post_wallet(
        conn,
        WalletPosting::FeeAdjustment { increase },
        native,
        Amount::from_base_units(delta),
        &format!("fee_adjustment:{id}:{block_hash}"),
        &details,
    )
    .await?;
    Ok(Some(if increase {
        delta.to_string()
    } else {
        format!("-{delta}")
    }))
}
