//! Gap fills: a 0-value transfer from a hot wallet to itself on a handed-back nonce that no
//! payment reused (a stale gap), so a quiet wallet's later nonces can be mined. Stored like a
//! payment's attempt (signed bytes, send marks) but belonging to no payment.

use std::time::Duration;

use meshpay_domain::{Address, B256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::send_log::SendLog;
use super::{checksum, i64_of, u64_of};
use crate::error::{Result, StoreError};
use crate::{Store, convert};

/// A handed-back nonce old enough to be filled by reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleGap {
    pub wallet: Address,
    pub nonce: u64,
}

/// A signed gap fill to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewGapFill {
    pub chain: String,
    pub wallet: Address,
    pub nonce: u64,
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    pub tx_hash: B256,
    pub raw: Vec<u8>,
}

/// A stored gap fill.
#[derive(Clone, PartialEq, Eq)]
pub struct GapFill {
    pub id: Uuid,
    pub chain: String,
    pub wallet: Address,
    pub nonce: u64,
    pub tx_hash: B256,
    pub raw: Vec<u8>,
}

// The raw bytes are long: print their size.
impl std::fmt::Debug for NewGapFill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewGapFill")
            .field("chain", &self.chain)
            .field("wallet", &self.wallet)
            .field("nonce", &self.nonce)
            .field("tx_hash", &self.tx_hash)
            .field("raw_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for GapFill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GapFill")
            .field("chain", &self.chain)
            .field("wallet", &self.wallet)
            .field("nonce", &self.nonce)
            .field("tx_hash", &self.tx_hash)
            .field("raw_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// Takes the gap at `nonce` off the wallet's list for a fill, under the wallet's row lock (held
/// until the caller's transaction ends, which also stores the fill: [`insert_gap_fill`]).
/// `false`: it is no longer a gap to fill (reused by a payment meanwhile, or at or below the
/// chain's pending nonce `chain_floor`, i.e. consumed; gaps below the floor are forgotten).
/// Refused ([`StoreError::WalletHalted`]) on a halted wallet.
pub async fn claim_gap(
    conn: &mut PgConnection,
    chain: &str,
    wallet: Address,
    nonce: u64,
    chain_floor: u64,
) -> Result<bool> {
    let address = checksum(wallet);
    let floor = i64_of(chain_floor, "chain nonce")?;
    let halted: Option<Option<String>> = sqlx::query_scalar(
        "SELECT halted_reason FROM wallet_nonces WHERE chain = $1 AND address = $2 FOR UPDATE",
    )
    .bind(chain)
    .bind(&address)
    .fetch_optional(&mut *conn)
    .await?;
    match halted {
        None => return Ok(false),
        Some(Some(reason)) => {
            return Err(StoreError::WalletHalted {
                chain: chain.to_owned(),
                wallet,
                reason,
            });
        }
        Some(None) => {}
    }
    sqlx::query("DELETE FROM wallet_nonce_gaps WHERE chain = $1 AND address = $2 AND nonce < $3")
        .bind(chain)
        .bind(&address)
        .bind(floor)
        .execute(&mut *conn)
        .await?;
    let claimed: Option<i64> = sqlx::query_scalar(
        "DELETE FROM wallet_nonce_gaps g
          WHERE g.chain = $1 AND g.address = $2 AND g.nonce = $3 AND g.nonce >= $4
            AND NOT EXISTS (SELECT 1 FROM payment_transactions t
                             WHERE t.chain = g.chain AND t.from_address = g.address
                               AND t.nonce = g.nonce AND t.status IN ('signed', 'sent'))
         RETURNING g.nonce",
    )
    .bind(chain)
    .bind(&address)
    .bind(i64_of(nonce, "nonce")?)
    .bind(floor)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(claimed.is_some())
}

/// Stores a signed gap fill (status `signed`), in the transaction of its [`claim_gap`].
pub async fn insert_gap_fill(conn: &mut PgConnection, new: &NewGapFill) -> Result<GapFill> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO wallet_gap_fills (id, chain, address, nonce, gas_limit, max_fee_per_gas,
             max_priority_fee_per_gas, tx_hash, raw_tx, status)
         VALUES ($1, $2, $3, $4, $5, $6::numeric, $7::numeric, $8, $9, 'signed')",
    )
    .bind(id)
    .bind(&new.chain)
    .bind(checksum(new.wallet))
    .bind(i64_of(new.nonce, "nonce")?)
    .bind(i64_of(new.gas_limit, "gas_limit")?)
    .bind(new.max_fee_per_gas_wei.to_string())
    .bind(new.max_priority_fee_per_gas_wei.to_string())
    .bind(new.tx_hash.to_string())
    .bind(&new.raw)
    .execute(conn)
    .await?;
    Ok(GapFill {
        id,
        chain: new.chain.clone(),
        wallet: new.wallet,
        nonce: new.nonce,
        tx_hash: new.tx_hash,
        raw: new.raw.clone(),
    })
}

impl Store {
    /// Gaps of the chain's wallets handed back more than `older_than` ago, on wallets that are
    /// not halted and with no live payment transaction at their nonce; lowest nonce of each
    /// wallet first, at most `limit`.
    pub async fn stale_gaps(
        &self,
        chain: &str,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<StaleGap>> {
        let age = i64::try_from(older_than.as_millis())
            .map_err(|_| StoreError::Invalid(format!("gap age {older_than:?} too large")))?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT g.address, g.nonce FROM wallet_nonce_gaps g
               JOIN wallet_nonces w ON w.chain = g.chain AND w.address = g.address
              WHERE g.chain = $1 AND w.halted_at IS NULL
                AND g.created_at < now() - make_interval(secs => $2::double precision / 1000)
                AND NOT EXISTS (SELECT 1 FROM payment_transactions t
                                 WHERE t.chain = g.chain AND t.from_address = g.address
                                   AND t.nonce = g.nonce AND t.status IN ('signed', 'sent'))
              ORDER BY g.nonce, g.address LIMIT $3",
        )
        .bind(chain)
        .bind(age)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(address, nonce)| {
                Ok(StaleGap {
                    wallet: convert::address(&address)?,
                    nonce: u64_of(nonce, "gap nonce")?,
                })
            })
            .collect()
    }

    /// The wallet's stored gap fills at or above `chain_floor` (the chain has not used their
    /// nonce yet), lowest nonce first: re-sent like a payment's lost send.
    pub async fn gap_fills_from(
        &self,
        chain: &str,
        wallet: Address,
        chain_floor: u64,
    ) -> Result<Vec<GapFill>> {
        let rows: Vec<(Uuid, i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, nonce, tx_hash, raw_tx FROM wallet_gap_fills
              WHERE chain = $1 AND address = $2 AND nonce >= $3 ORDER BY nonce",
        )
        .bind(chain)
        .bind(checksum(wallet))
        .bind(i64_of(chain_floor, "chain nonce")?)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, nonce, hash, raw)| {
                Ok(GapFill {
                    id,
                    chain: chain.to_owned(),
                    wallet,
                    nonce: u64_of(nonce, "nonce")?,
                    tx_hash: convert::b256(&hash)?,
                    raw,
                })
            })
            .collect()
    }

    /// Records, before the bytes go out, that the fill is about to be sent (an earlier start
    /// whose answer was never recorded turns into `exposed_at`), as [`Store::begin_send`] does
    /// for a payment's attempt.
    pub async fn begin_fill_send(&self, fill: Uuid) -> Result<()> {
        SendLog::GapFills.begin(&self.pool, fill).await
    }

    /// Records one send of a fill: `Ok` = a node has it, `Err(message)` = refused or unknown.
    /// `exposed`: the bytes may be in a pool (accepted, or an unknown outcome).
    pub async fn record_fill_send(
        &self,
        fill: Uuid,
        outcome: Result<(), &str>,
        exposed: bool,
    ) -> Result<()> {
        SendLog::GapFills
            .record(&self.pool, fill, outcome, exposed)
            .await
    }
}
