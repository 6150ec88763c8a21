//! Per (chain, hot wallet) nonce counters: allocation under the wallet's row lock, resync to
//! the chain's pending nonce.

use meshpay_domain::Address;
use sqlx::PgConnection;

use time::OffsetDateTime;

use super::{checksum, i64_of, u64_of};
use crate::error::{Result, StoreError};
use crate::{Store, convert};

/// How [`allocate_nonce`] chose the nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceSource {
    /// The wallet's counter.
    Counter,
    /// The wallet's first allocation and the chain's pending nonce is above 0 (the wallet was
    /// used before meshpay): the new counter starts there. An existing counter below the chain
    /// never jumps: the wallet is halted instead ([`StoreError::WalletBehindChain`]).
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
    /// Why the wallet is halted, if it is ([`halt_wallet`]).
    pub halted: Option<String>,
}

/// A halted wallet, for reconcile's report and the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltedWallet {
    pub chain: String,
    pub address: Address,
    pub reason: String,
    pub since: OffsetDateTime,
}

/// Hands out the wallet's next nonce under its row lock (held until the caller's transaction
/// ends). `chain_floor` is the chain's pending nonce for the wallet, read just before: the
/// nonce is never below it. Handed-back gaps at or above the floor are reused first.
///
/// Refused ([`StoreError::WalletHalted`]) on a halted wallet, and
/// ([`StoreError::WalletBehindChain`]) when an existing counter is below `chain_floor`: the
/// caller rolls back and halts the wallet ([`halt_wallet`]) rather than jump over nonces it
/// cannot account for.
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
    // `xmax = 0`: the row was inserted by this statement (a new counter).
    let (next, created, halted): (i64, bool, Option<String>) = sqlx::query_as(
        "INSERT INTO wallet_nonces (chain, address, next_nonce, chain_nonce) VALUES ($1, $2, 0, $3)
         ON CONFLICT (chain, address) DO UPDATE
             SET chain_nonce = greatest(wallet_nonces.chain_nonce, EXCLUDED.chain_nonce),
                 updated_at = now()
         RETURNING next_nonce, xmax = 0, halted_reason",
    )
    .bind(chain)
    .bind(&address)
    .bind(floor)
    .fetch_one(&mut *conn)
    .await?;
    check_not_halted(chain, wallet, halted)?;
    if !created && floor > next {
        return Err(behind(chain, wallet, next, floor)?);
    }
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

/// Raises the wallet's recorded chain nonce to the chain's pending nonce (after "nonce too
/// low": the chain is ahead of the attempt) and forgets gaps the chain has consumed. Never
/// lowers the counter, and never raises it: a chain beyond every nonce handed out is
/// [`StoreError::WalletBehindChain`] (and a halted wallet [`StoreError::WalletHalted`]).
pub async fn resync_nonce(
    conn: &mut PgConnection,
    chain: &str,
    wallet: Address,
    chain_floor: u64,
) -> Result<()> {
    let address = checksum(wallet);
    let floor = i64_of(chain_floor, "chain nonce")?;
    let row: Option<(i64, Option<String>)> = sqlx::query_as(
        "SELECT next_nonce, halted_reason FROM wallet_nonces
          WHERE chain = $1 AND address = $2 FOR UPDATE",
    )
    .bind(chain)
    .bind(&address)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((next, halted)) = row {
        check_not_halted(chain, wallet, halted)?;
        if floor > next {
            return Err(behind(chain, wallet, next, floor)?);
        }
    }
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

fn check_not_halted(chain: &str, wallet: Address, halted: Option<String>) -> Result<()> {
    match halted {
        Some(reason) => Err(StoreError::WalletHalted {
            chain: chain.to_owned(),
            wallet,
            reason,
        }),
        None => Ok(()),
    }
}

fn behind(chain: &str, wallet: Address, next: i64, floor: i64) -> Result<StoreError> {
    Ok(StoreError::WalletBehindChain {
        chain: chain.to_owned(),
        wallet,
        next_nonce: u64_of(next, "next_nonce")?,
        chain_nonce: u64_of(floor, "chain nonce")?,
    })
}

/// Halts the wallet with `reason` (kept if it is already halted). Run in a transaction of its
/// own, after rolling back the one that found the cause (it holds the wallet's row lock).
pub async fn halt_wallet(
    conn: &mut PgConnection,
    chain: &str,
    wallet: Address,
    reason: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE wallet_nonces
            SET halted_at = coalesce(halted_at, now()),
                halted_reason = coalesce(halted_reason, $3), updated_at = now()
          WHERE chain = $1 AND address = $2",
    )
    .bind(chain)
    .bind(checksum(wallet))
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Halts the wallet, see [`halt_wallet`].
    pub async fn halt_wallet(&self, chain: &str, wallet: Address, reason: &str) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        halt_wallet(&mut conn, chain, wallet, reason).await
    }

    /// Every halted wallet (of `chain`, or of all chains), longest halted first.
    pub async fn halted_wallets(&self, chain: Option<&str>) -> Result<Vec<HaltedWallet>> {
        let rows: Vec<(String, String, String, OffsetDateTime)> = sqlx::query_as(
            "SELECT chain, address, halted_reason, halted_at FROM wallet_nonces
              WHERE halted_at IS NOT NULL AND ($1::text IS NULL OR chain = $1)
              ORDER BY halted_at, chain, address",
        )
        .bind(chain)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(chain, address, reason, since)| {
                Ok(HaltedWallet {
                    chain,
                    address: convert::address(&address)?,
                    reason,
                    since,
                })
            })
            .collect()
    }

    /// An operator's decision after a halt: the counter moves up to `chain_nonce` (the nonces
    /// below it are accepted as used) and the wallet hands out nonces again. `false`: the
    /// wallet was not halted (nothing changed).
    pub async fn resume_wallet(
        &self,
        chain: &str,
        wallet: Address,
        chain_nonce: u64,
    ) -> Result<bool> {
        let floor = i64_of(chain_nonce, "chain nonce")?;
        let updated = sqlx::query(
            "UPDATE wallet_nonces
                SET halted_at = NULL, halted_reason = NULL,
                    next_nonce = greatest(next_nonce, $3), chain_nonce = greatest(chain_nonce, $3),
                    updated_at = now()
              WHERE chain = $1 AND address = $2 AND halted_at IS NOT NULL",
        )
        .bind(chain)
        .bind(checksum(wallet))
        .bind(floor)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// The wallet's counter and gaps (`None` before its first allocation).
    pub async fn wallet_nonce(&self, chain: &str, wallet: Address) -> Result<Option<WalletNonce>> {
        let address = checksum(wallet);
        let row: Option<(i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT next_nonce, chain_nonce, halted_reason FROM wallet_nonces
              WHERE chain = $1 AND address = $2",
        )
        .bind(chain)
        .bind(&address)
        .fetch_optional(&self.pool)
        .await?;
        let Some((next, chain_nonce, halted)) = row else {
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
            halted,
        }))
    }
}
