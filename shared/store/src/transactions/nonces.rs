//! Per (chain, hot wallet) nonce counters: allocation under the wallet's row lock, resync to
//! the chain's pending nonce.

use meshpay_domain::Address;
use sqlx::PgConnection;

use super::{checksum, i64_of, u64_of};
use crate::Store;
use crate::error::Result;

/// How [`allocate_nonce`] chose the nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceSource {
    /// The wallet's counter.
    Counter,
    /// The chain's pending nonce was above the counter (the wallet was used elsewhere, or the
    /// counter is new): the counter jumped to it.
    ChainFloor,
    /// A nonce handed back by a failed payment, reused to close the hole.
    Gap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceAllocation {
    pub nonce: u64,
    pub source: NonceSource,
    /// Nonces allocated on this wallet but not yet seen by the chain, this one included.
    pub in_flight: u64,
}

/// A wallet's nonce state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletNonce {
    pub chain: String,
    pub address: Address,
    pub next_nonce: u64,
    pub chain_nonce: u64,
    /// Handed-back nonces waiting to be reused, ascending.
    pub gaps: Vec<u64>,
}

/// Hands out the wallet's next nonce under its row lock (held until the caller's transaction
/// ends). `chain_floor` is the chain's pending nonce for the wallet, read just before: the
/// nonce is never below it. Handed-back gaps at or above the floor are reused first.
pub async fn allocate_nonce(
    conn: &mut PgConnection,
    chain: &str,
    wallet: Address,
    chain_floor: u64,
) -> Result<NonceAllocation> {
    let address = checksum(wallet);
    let floor = i64_of(chain_floor, "chain nonce")?;
    // Creates the counter (at 0: the floor below lifts it) on first use; either way the upsert
    // locks the row.
    let (next, _): (i64, i64) = sqlx::query_as(
        "INSERT INTO wallet_nonces (chain, address, next_nonce, chain_nonce) VALUES ($1, $2, 0, $3)
         ON CONFLICT (chain, address) DO UPDATE
             SET chain_nonce = greatest(wallet_nonces.chain_nonce, EXCLUDED.chain_nonce),
                 updated_at = now()
         RETURNING next_nonce, chain_nonce",
    )
    .bind(chain)
    .bind(&address)
    .bind(floor)
    .fetch_one(&mut *conn)
    .await?;
    // Gaps below the floor were consumed on chain (by another sender of the wallet): forget
    // them, then take the lowest remaining one.
    let gap: Option<i64> = sqlx::query_scalar(
        "WITH stale AS (
             DELETE FROM wallet_nonce_gaps WHERE chain = $1 AND address = $2 AND nonce < $3
         ), lowest AS (
             SELECT nonce FROM wallet_nonce_gaps
              WHERE chain = $1 AND address = $2 AND nonce >= $3 AND nonce < $4
              ORDER BY nonce LIMIT 1
         )
         DELETE FROM wallet_nonce_gaps g USING lowest
          WHERE g.chain = $1 AND g.address = $2 AND g.nonce = lowest.nonce
         RETURNING g.nonce",
    )
    .bind(chain)
    .bind(&address)
    .bind(floor)
    .bind(next)
    .fetch_optional(&mut *conn)
    .await?;
    let (nonce, source, new_next) = match gap {
        Some(gap) => (gap, NonceSource::Gap, next),
        None if floor > next => (floor, NonceSource::ChainFloor, floor + 1),
        None => (next, NonceSource::Counter, next + 1),
    };
    sqlx::query(
        "UPDATE wallet_nonces SET next_nonce = $3, updated_at = now()
          WHERE chain = $1 AND address = $2",
    )
    .bind(chain)
    .bind(&address)
    .bind(new_next)
    .execute(&mut *conn)
    .await?;
    Ok(NonceAllocation {
        nonce: u64_of(nonce, "nonce")?,
        source,
        in_flight: u64_of(new_next - floor.min(new_next), "in flight")?,
    })
}

/// Raises the wallet's counter to the chain's pending nonce (after "nonce too low": the chain
/// is ahead of us) and forgets gaps the chain has consumed. Never lowers the counter.
pub async fn resync_nonce(
    conn: &mut PgConnection,
    chain: &str,
    wallet: Address,
    chain_floor: u64,
) -> Result<()> {
    let address = checksum(wallet);
    let floor = i64_of(chain_floor, "chain nonce")?;
    sqlx::query(
        "UPDATE wallet_nonces
            SET next_nonce = greatest(next_nonce, $3), chain_nonce = greatest(chain_nonce, $3),
                updated_at = now()
          WHERE chain = $1 AND address = $2",
    )
    .bind(chain)
    .bind(&address)
    .bind(floor)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM wallet_nonce_gaps WHERE chain = $1 AND address = $2 AND nonce < $3")
        .bind(chain)
        .bind(&address)
        .bind(floor)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// The wallet's counter and gaps (`None` before its first allocation).
    pub async fn wallet_nonce(&self, chain: &str, wallet: Address) -> Result<Option<WalletNonce>> {
        let address = checksum(wallet);
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT next_nonce, chain_nonce FROM wallet_nonces WHERE chain = $1 AND address = $2",
        )
        .bind(chain)
        .bind(&address)
        .fetch_optional(&self.pool)
        .await?;
        let Some((next, chain_nonce)) = row else {
            return Ok(None);
        };
        let gaps: Vec<i64> = sqlx::query_scalar(
            "SELECT nonce FROM wallet_nonce_gaps WHERE chain = $1 AND address = $2 ORDER BY nonce",
        )
        .bind(chain)
        .bind(&address)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(WalletNonce {
            chain: chain.to_owned(),
            address: wallet,
            next_nonce: u64_of(next, "next_nonce")?,
            chain_nonce: u64_of(chain_nonce, "chain_nonce")?,
            gaps: gaps
                .into_iter()
                .map(|g| u64_of(g, "gap"))
                .collect::<Result<_>>()?,
        }))
    }
}
