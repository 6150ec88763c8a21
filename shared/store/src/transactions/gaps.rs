//! Handing back the nonce of a transaction no node accepted: the counter moves back, or the
//! nonce becomes a gap the next allocation fills.

use meshpay_domain::{Address, PaymentId};
use sqlx::PgConnection;

use super::{checksum, i64_of};
use crate::error::{Result, StoreError};

/// What [`release_nonce`] did with a nonce handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceRelease {
    /// It was the latest allocation: the counter moved back.
    Rewound,
    /// Later nonces exist: it was recorded as a gap for the next allocation to fill.
    Gap,
    /// The chain's pending nonce is already past it: nothing to hand back.
    Consumed,
}

/// Hands back the nonce of a transaction no node accepted (its payment is failing in the same
/// transaction), so the wallet's sequence keeps no hole: the counter moves back when it was the
/// latest allocation, else the nonce becomes a gap the next allocation fills. The caller must
/// hold the payment's lock and must have marked the attempt `rejected`.
pub async fn release_nonce(
    conn: &mut PgConnection,
    chain: &str,
    wallet: Address,
    nonce: u64,
    chain_floor: u64,
    released_by: PaymentId,
) -> Result<NonceRelease> {
    let address = checksum(wallet);
    let nonce_i = i64_of(nonce, "nonce")?;
    if nonce < chain_floor {
        return Ok(NonceRelease::Consumed);
    }
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT next_nonce FROM wallet_nonces WHERE chain = $1 AND address = $2 FOR UPDATE",
    )
    .bind(chain)
    .bind(&address)
    .fetch_optional(&mut *conn)
    .await?;
    let next =
        next.ok_or_else(|| StoreError::Corrupt(format!("no nonce counter for {chain}/{address}")))?;
    if nonce_i >= next {
        return Err(StoreError::Corrupt(format!(
            "nonce {nonce} of {chain}/{address} was never allocated (next is {next})"
        )));
    }
    if nonce_i + 1 == next {
        // Pull the counter back over this nonce and over any gaps directly below it.
        let mut new_next = nonce_i;
        let gaps: Vec<i64> = sqlx::query_scalar(
            "SELECT nonce FROM wallet_nonce_gaps WHERE chain = $1 AND address = $2 AND nonce < $3
              ORDER BY nonce DESC",
        )
        .bind(chain)
        .bind(&address)
        .bind(nonce_i)
        .fetch_all(&mut *conn)
        .await?;
        for gap in gaps {
            if gap + 1 != new_next {
                break;
            }
            new_next = gap;
        }
        sqlx::query(
            "DELETE FROM wallet_nonce_gaps WHERE chain = $1 AND address = $2 AND nonce >= $3",
        )
        .bind(chain)
        .bind(&address)
        .bind(new_next)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE wallet_nonces SET next_nonce = $3, updated_at = now()
              WHERE chain = $1 AND address = $2",
        )
        .bind(chain)
        .bind(&address)
        .bind(new_next)
        .execute(&mut *conn)
        .await?;
        return Ok(NonceRelease::Rewound);
    }
    sqlx::query(
        "INSERT INTO wallet_nonce_gaps (chain, address, nonce, released_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(chain)
    .bind(&address)
    .bind(nonce_i)
    .bind(released_by.as_uuid())
    .execute(&mut *conn)
    .await?;
    Ok(NonceRelease::Gap)
}
