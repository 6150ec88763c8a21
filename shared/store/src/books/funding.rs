//! Money into a hot wallet that meshpay did not send: the opening balances (recorded once, at
//! the block the books start from) and operator top-ups (verified on chain by the caller).

use meshpay_domain::{Address, Amount, AssetId, B256};
use uuid::Uuid;

use super::{WalletBooks, i64_of};
use crate::Store;
use crate::error::{Result, StoreError};
use crate::ledger::{WalletPosting, post_wallet};

/// A wallet's books from `block` on: its nonce and balance per asset after that block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOpening {
    pub chain: String,
    pub wallet: Address,
    pub block: u64,
    pub block_hash: B256,
    pub nonce: u64,
    pub balances: Vec<(AssetId, Amount)>,
}

/// A verified transfer into a hot wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopup {
    pub chain: String,
    pub wallet: Address,
    pub asset: AssetId,
    pub amount: Amount,
    pub block_number: u64,
    pub tx_hash: B256,
    /// The ERC-20 Transfer log's index, `None` for the native value of the transaction.
    pub log_index: Option<u64>,
}

/// Result of [`Store::record_topup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopupOutcome {
    pub id: Uuid,
    pub ledger_transaction_id: Uuid,
    /// `false`: this transfer was recorded before (an idempotent replay).
    pub created: bool,
    /// The transfer's block is at or before the wallet's opening block: the opening balance
    /// already holds it, so the books do not count it twice.
    pub in_opening: bool,
}

impl Store {
    /// Starts a wallet's books (idempotent: the first opening stays). Each non-zero balance is a
    /// `wallet_opening` posting.
    pub async fn open_wallet_books(&self, opening: &NewOpening) -> Result<WalletBooks> {
        let mut tx = self.pool.begin().await?;
        let wallet = opening.wallet.to_string();
        let nonce = i64_of(opening.nonce, "nonce")?;
        let inserted = sqlx::query(
            "INSERT INTO hot_wallet_books (chain, address, opening_block, opening_block_hash,
                                           opening_nonce, next_nonce)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (chain, address) DO NOTHING",
        )
        .bind(&opening.chain)
        .bind(&wallet)
        .bind(i64_of(opening.block, "block")?)
        .bind(opening.block_hash.to_string())
        .bind(nonce)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            for (asset, amount) in &opening.balances {
                let ledger_tx = if amount.is_zero() {
                    None
                } else {
                    let details = serde_json::json!({
                        "chain": opening.chain, "wallet": wallet, "asset": asset,
                        "block": opening.block, "amount": amount,
                    });
                    let reference = format!("opening:{}:{wallet}:{asset}", opening.chain);
                    Some(
                        post_wallet(
                            &mut tx,
                            WalletPosting::Opening,
                            asset,
                            *amount,
                            &reference,
                            &details,
                        )
                        .await?,
                    )
                };
                sqlx::query(
                    "INSERT INTO hot_wallet_funding (id, chain, address, asset, kind, amount,
                                                     block_number, ledger_transaction_id)
                     VALUES ($1, $2, $3, $4, 'opening', $5::numeric, $6, $7)",
                )
                .bind(Uuid::now_v7())
                .bind(&opening.chain)
                .bind(&wallet)
                .bind(asset.to_string())
                .bind(amount.to_string())
                .bind(i64_of(opening.block, "block")?)
                .bind(ledger_tx)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.wallet_books(&opening.chain, opening.wallet)
            .await?
            .ok_or_else(|| StoreError::Corrupt("wallet books vanished after opening".into()))
    }

    /// Records a top-up as a `wallet_topup` posting, idempotent per (chain, transaction, log).
    /// The wallet's books must be open (a top-up before the first reconcile run is in the
    /// opening balance anyway). The same transfer recorded with other figures is refused.
    pub async fn record_topup(&self, topup: &NewTopup) -> Result<TopupOutcome> {
        if topup.amount.is_zero() {
            return Err(StoreError::Invalid("a top-up must be positive".into()));
        }
        let Some(books) = self.wallet_books(&topup.chain, topup.wallet).await? else {
            return Err(StoreError::Invalid(format!(
                "the books of {} on {} are not open yet: run reconcile once first",
                topup.wallet, topup.chain
            )));
        };
        let log_index = match topup.log_index {
            Some(i) => i64_of(i, "log index")?,
            None => -1,
        };
        let wallet = topup.wallet.to_string();
        let tx_hash = topup.tx_hash.to_string();
        let mut tx = self.pool.begin().await?;
        let existing: Option<(Uuid, String, String, String, Option<Uuid>, i64)> = sqlx::query_as(
            "SELECT id, address, asset, amount::text, ledger_transaction_id, block_number
             FROM hot_wallet_funding
             WHERE kind = 'topup' AND chain = $1 AND tx_hash = $2 AND log_index = $3 FOR UPDATE",
        )
        .bind(&topup.chain)
        .bind(&tx_hash)
        .bind(log_index)
        .fetch_optional(&mut *tx)
        .await?;
        let in_opening = topup.block_number <= books.opening_block;
        if let Some((id, address, asset, amount, ledger_tx, _)) = existing {
            if address != wallet
                || asset != topup.asset.to_string()
                || amount != topup.amount.to_string()
            {
                return Err(StoreError::ReferenceReused);
            }
            let ledger_transaction_id = ledger_tx
                .ok_or_else(|| StoreError::Corrupt("top-up without its posting".into()))?;
            return Ok(TopupOutcome {
                id,
                ledger_transaction_id,
                created: false,
                in_opening,
            });
        }
        let details = serde_json::json!({
            "chain": topup.chain, "wallet": wallet, "asset": topup.asset,
            "tx_hash": tx_hash, "log_index": topup.log_index, "block": topup.block_number,
            "amount": topup.amount, "in_opening": in_opening,
        });
        let reference = format!("topup:{}:{tx_hash}:{log_index}", topup.chain);
        let ledger_transaction_id = post_wallet(
            &mut tx,
            WalletPosting::Topup,
            &topup.asset,
            topup.amount,
            &reference,
            &details,
        )
        .await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO hot_wallet_funding (id, chain, address, asset, kind, amount, block_number,
                                             tx_hash, log_index, ledger_transaction_id)
             VALUES ($1, $2, $3, $4, 'topup', $5::numeric, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(&topup.chain)
        .bind(&wallet)
        .bind(topup.asset.to_string())
        .bind(topup.amount.to_string())
        .bind(i64_of(topup.block_number, "block")?)
        .bind(&tx_hash)
        .bind(log_index)
        .bind(ledger_transaction_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TopupOutcome {
            id,
            ledger_transaction_id,
            created: true,
            in_opening,
        })
    }
}
