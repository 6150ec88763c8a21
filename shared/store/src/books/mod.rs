//! The hot wallets' books against the chain (reconcile's books check): per (chain, wallet) the
//! opening balance and nonce, operator top-ups, which transaction consumed each nonce since the
//! opening, the balance the books expect at a block, and the discrepancies found.
//!
//! - [`funding`]: the opening ([`Store::open_wallet_books`]) and top-ups
//!   ([`Store::record_topup`]), each a ledger posting `funding` → `hot_wallets`.
//! - [`nonces`]: the nonce walk's records ([`Store::record_consumed_nonce`]; a gap fill's fee
//!   is posted in the same transaction) and the candidates meshpay sent on a nonce.
//! - [`expected`]: what the books say a wallet holds after a block.
//! - [`discrepancies`]: open, refreshed, resolved.
//! - [`inclusions`]: the payments that ended on a receipt and the finished sweeps, which a run
//!   re-checks.
//!
//! Concurrency: a run checks a wallet under [`Store::lock_wallet_books`] (a transaction-level
//! advisory lock), so two runs check it one after the other and see the same books.

pub mod discrepancies;
pub mod expected;
pub mod funding;
pub mod inclusions;
pub mod nonces;

use meshpay_domain::{Address, B256};
use sqlx::{Postgres, Transaction};

use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};

pub use discrepancies::{Discrepancy, DiscrepancyFilter, FoundDiscrepancy, Recorded};
pub use expected::ExpectedBalance;
pub use funding::{NewOpening, NewTopup, TopupOutcome};
pub use inclusions::{InclusionMove, InclusionRef, Mined};
pub use nonces::{ConsumedNonce, NonceCandidate, NonceSource, TokenTransfer, UnknownTx};

/// A hot wallet the books follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletBooks {
    pub chain: String,
    pub address: Address,
    pub opening_block: u64,
    pub opening_block_hash: B256,
    pub opening_nonce: u64,
    /// The lowest nonce whose consuming transaction is not recorded yet.
    pub next_nonce: u64,
}

/// Held while a run checks one wallet; dropping it (or [`BooksLock::release`]) lets the next
/// run in.
pub struct BooksLock {
    tx: Transaction<'static, Postgres>,
}

impl std::fmt::Debug for BooksLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BooksLock").finish_non_exhaustive()
    }
}

impl BooksLock {
    pub async fn release(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

pub(crate) fn i64_of(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| StoreError::Invalid(format!("{what} out of range: {n}")))
}

type BooksRow = (String, String, i64, String, i64, i64);

fn books_from(row: BooksRow) -> Result<WalletBooks> {
    let (chain, address, block, hash, opening_nonce, next_nonce) = row;
    Ok(WalletBooks {
        chain,
        address: convert::address(&address)?,
        opening_block: convert::u64_from_i64(block, "opening_block")?,
        opening_block_hash: convert::b256(&hash)?,
        opening_nonce: convert::u64_from_i64(opening_nonce, "opening_nonce")?,
        next_nonce: convert::u64_from_i64(next_nonce, "next_nonce")?,
    })
}

impl Store {
    /// Waits (at most `lock_timeout` of the session, 30 s here) for the wallet's books lock.
    pub async fn lock_wallet_books(&self, chain: &str, wallet: Address) -> Result<BooksLock> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '30s'")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('meshpay-books'), hashtext($1))")
            .bind(format!("{chain}/{wallet}"))
            .execute(&mut *tx)
            .await?;
        Ok(BooksLock { tx })
    }

    /// The wallet's books, `None` before its opening.
    pub async fn wallet_books(&self, chain: &str, wallet: Address) -> Result<Option<WalletBooks>> {
        let row: Option<BooksRow> = sqlx::query_as(
            "SELECT chain, address, opening_block, opening_block_hash, opening_nonce, next_nonce
             FROM hot_wallet_books WHERE chain = $1 AND address = $2",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(books_from).transpose()
    }

    /// Records the block at which the books were last compared with the chain.
    pub async fn record_books_checked(
        &self,
        chain: &str,
        wallet: Address,
        block: u64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE hot_wallet_books SET checked_block = $3, checked_at = now()
             WHERE chain = $1 AND address = $2",
        )
        .bind(chain)
        .bind(wallet.to_string())
        .bind(i64_of(block, "block")?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
