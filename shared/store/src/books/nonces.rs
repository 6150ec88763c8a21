//! The nonce walk's records: which transaction consumed each nonce of a hot wallet, found at a
//! final block, and the transactions meshpay itself signed on a nonce (payment attempts of any
//! kind, gap fills and sweeps).

use meshpay_domain::{Address, Amount, AssetId, B256, PaymentId, U256};
use uuid::Uuid;

use super::i64_of;
use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};
use crate::ledger::{WalletPosting, post_wallet};

/// Who sent the transaction that consumed a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceSource {
    Payment(PaymentId),
    GapFill(Uuid),
    /// A sweep of deposit addresses (`meshpay_store::sweeps`).
    Sweep(Uuid),
    /// Not meshpay: the key was used outside it.
    Unknown,
}

/// A transaction meshpay signed on a nonce, with the native value it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceCandidate {
    pub tx_hash: B256,
    pub source: NonceSource,
    pub value: U256,
}

/// An ERC-20 Transfer out of the wallet, from a receipt's logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenTransfer {
    pub contract: Address,
    /// The configured asset of that contract, if any.
    pub asset: Option<AssetId>,
    pub to: Address,
    pub amount: Amount,
}

/// The transaction that consumed a nonce, as a final block shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedNonce {
    pub nonce: u64,
    pub tx_hash: B256,
    pub block_number: u64,
    pub block_hash: B256,
    pub source: NonceSource,
    pub success: bool,
    /// Native value sent (0 when it reverted), wei.
    pub value: U256,
    /// Network fee charged, wei.
    pub fee: U256,
    pub to: Option<Address>,
    pub token_transfers: Vec<TokenTransfer>,
}

/// A transaction meshpay did not send, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnknownTx {
    pub nonce: u64,
    pub tx_hash: B256,
    pub block_number: u64,
    pub to: Option<Address>,
    pub success: bool,
    pub value: Amount,
    pub fee: Amount,
    pub token_transfers: Vec<TokenTransfer>,
}

type UnknownRow = (
    i64,
    String,
    i64,
    Option<String>,
    bool,
    String,
    String,
    serde_json::Value,
);

impl Store {
    /// Every transaction meshpay signed on `nonce` of the wallet.
    pub async fn nonce_candidates(
        &self,
        chain: &str,
        wallet: Address,
        nonce: u64,
    ) -> Result<Vec<NonceCandidate>> {
        type Row = (String, Option<Uuid>, Option<Uuid>, Option<Uuid>, String);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT tx_hash, payment_id, NULL::uuid, NULL::uuid, value::text FROM payment_transactions
              WHERE chain = $1 AND from_address = $2 AND nonce = $3
             UNION ALL
             SELECT tx_hash, NULL::uuid, id, NULL::uuid, '0' FROM wallet_gap_fills
              WHERE chain = $1 AND address = $2 AND nonce = $3
             UNION ALL
             SELECT t.tx_hash, NULL::uuid, NULL::uuid, s.id, '0' FROM sweep_transactions t
               JOIN sweeps s ON s.id = t.sweep_id
              WHERE s.chain = $1 AND s.wallet = $2 AND s.nonce = $3",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(i64_of(nonce, "nonce")?)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(hash, payment, fill, sweep, value)| {
                let source = match (payment, fill, sweep) {
                    (Some(p), _, _) => NonceSource::Payment(PaymentId::from_uuid(p)),
                    (None, Some(f), _) => NonceSource::GapFill(f),
                    (None, None, Some(s)) => NonceSource::Sweep(s),
                    (None, None, None) => {
                        return Err(StoreError::Corrupt("candidate without owner".into()));
                    }
                };
                Ok(NonceCandidate {
                    tx_hash: convert::b256(&hash)?,
                    source,
                    value: convert::amount(&value)?.base_units(),
                })
            })
            .collect()
    }

    /// Records the transaction that consumed the wallet's next nonce and moves the walk's cursor
    /// past it, in one transaction; a gap fill's fee is posted (`gap_fill_fee`, once per fill)
    /// in the same transaction. `false`: another run recorded this nonce first (nothing done).
    pub async fn record_consumed_nonce(
        &self,
        chain: &str,
        wallet: Address,
        native: &AssetId,
        consumed: &ConsumedNonce,
    ) -> Result<bool> {
        let nonce = i64_of(consumed.nonce, "nonce")?;
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE hot_wallet_books SET next_nonce = $3 + 1
             WHERE chain = $1 AND address = $2 AND next_nonce = $3",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(nonce)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Ok(false);
        }
        let (source, payment, fill, sweep) = match consumed.source {
            NonceSource::Payment(p) => ("payment", Some(p.as_uuid()), None, None),
            NonceSource::GapFill(f) => ("gap_fill", None, Some(f), None),
            NonceSource::Sweep(s) => ("sweep", None, None, Some(s)),
            NonceSource::Unknown => ("unknown", None, None, None),
        };
        let transfers = serde_json::to_value(&consumed.token_transfers)
            .map_err(|e| StoreError::Invalid(format!("token transfers: {e}")))?;
        sqlx::query(
            "INSERT INTO hot_wallet_nonces (chain, address, nonce, tx_hash, block_number, block_hash,
                 source, payment_id, gap_fill_id, success, value, fee, to_address, token_transfers,
                 sweep_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::numeric, $12::numeric, $13, $14,
                 $15)",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(nonce)
        .bind(consumed.tx_hash.to_string())
        .bind(i64_of(consumed.block_number, "block")?)
        .bind(consumed.block_hash.to_string())
        .bind(source)
        .bind(payment)
        .bind(fill)
        .bind(consumed.success)
        .bind(consumed.value.to_string())
        .bind(consumed.fee.to_string())
        .bind(consumed.to.map(|a| a.to_string()))
        .bind(transfers)
        .bind(sweep)
        .execute(&mut *tx)
        .await?;
        if let (Some(fill), false) = (fill, consumed.fee.is_zero()) {
            let details = serde_json::json!({
                "chain": chain, "wallet": wallet, "nonce": consumed.nonce,
                "tx_hash": consumed.tx_hash, "fee": consumed.fee.to_string(),
            });
            post_wallet(
                &mut tx,
                WalletPosting::GapFillFee,
                native,
                Amount::from_base_units(consumed.fee),
                &format!("gap_fill:{fill}"),
                &details,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets the recorded nonces from `from` on and moves the cursor back to it: the chain's
    /// nonce at a final block is below them (a reorg deeper than the finality rule, or another
    /// chain behind the same RPC URL). Postings already made stay (a gap fill's fee is posted
    /// once per fill, when it is seen again).
    pub async fn rewind_wallet_nonces(
        &self,
        chain: &str,
        wallet: Address,
        from: u64,
    ) -> Result<u64> {
        let from = i64_of(from, "nonce")?;
        let mut tx = self.pool.begin().await?;
        let forgotten = sqlx::query(
            "DELETE FROM hot_wallet_nonces WHERE chain = $1 AND address = $2 AND nonce >= $3",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(from)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE hot_wallet_books SET next_nonce = greatest(opening_nonce, $3)
             WHERE chain = $1 AND address = $2",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(from)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(forgotten)
    }

    /// The block of the recorded transaction on `nonce`, if recorded.
    pub async fn consumed_nonce_block(
        &self,
        chain: &str,
        wallet: Address,
        nonce: u64,
    ) -> Result<Option<u64>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT block_number FROM hot_wallet_nonces WHERE chain = $1 AND address = $2 AND nonce = $3",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(i64_of(nonce, "nonce")?)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(b,)| convert::u64_from_i64(b, "block_number"))
            .transpose()
    }

    /// How many nonces below `below` were consumed by meshpay's own transactions (and unknown
    /// ones an operator explained).
    pub async fn meshpay_nonces(&self, chain: &str, wallet: Address, below: u64) -> Result<u64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM hot_wallet_nonces
             WHERE chain = $1 AND address = $2 AND nonce < $3
               AND (source <> 'unknown' OR acknowledged_at IS NOT NULL)",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(i64_of(below, "nonce")?)
        .fetch_one(&self.pool)
        .await?;
        convert::u64_from_i64(n, "count")
    }

    /// The recorded transactions meshpay did not send and no operator explained yet, below
    /// nonce `below`.
    pub async fn unknown_transactions(
        &self,
        chain: &str,
        wallet: Address,
        below: u64,
    ) -> Result<Vec<UnknownTx>> {
        let rows: Vec<UnknownRow> = sqlx::query_as(
            "SELECT nonce, tx_hash, block_number, to_address, success, value::text, fee::text,
                    token_transfers
             FROM hot_wallet_nonces
             WHERE chain = $1 AND address = $2 AND nonce < $3 AND source = 'unknown'
               AND acknowledged_at IS NULL ORDER BY nonce",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(i64_of(below, "nonce")?)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(nonce, hash, block, to, success, value, fee, transfers)| {
                Ok(UnknownTx {
                    nonce: convert::u64_from_i64(nonce, "nonce")?,
                    tx_hash: convert::b256(&hash)?,
                    block_number: convert::u64_from_i64(block, "block_number")?,
                    to: to.as_deref().map(convert::address).transpose()?,
                    success,
                    value: convert::amount(&value)?,
                    fee: convert::amount(&fee)?,
                    token_transfers: serde_json::from_value(transfers)
                        .map_err(|e| StoreError::Corrupt(format!("token transfers: {e}")))?,
                })
            })
            .collect()
    }
}
