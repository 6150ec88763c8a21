//! Which hot wallets a new payment should avoid, from stored state only (no RPC per payment).

use std::time::Duration;

use meshpay_domain::Address;

use crate::error::{Result, StoreError};
use crate::{Store, convert};

/// Why a wallet is not healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletHealth {
    /// Halted by an incident: hands out no nonce until an operator resumes it.
    Halted,
    /// Its oldest transaction not seen mined was signed longer ago than the caller's limit:
    /// its head nonce is not advancing (under-priced, lost, or waiting behind a hole), so a new
    /// payment would queue behind it.
    Stuck,
}

impl Store {
    /// The chain's wallets that are halted or stuck (see [`WalletHealth`]): a `broadcast`
    /// payment's live transaction signed more than `stuck_after` ago and not yet seen in a
    /// block by the confirm step. A halted wallet is listed once, as halted.
    pub async fn unhealthy_wallets(
        &self,
        chain: &str,
        stuck_after: Duration,
    ) -> Result<Vec<(Address, WalletHealth)>> {
        let age = i64::try_from(stuck_after.as_millis())
            .map_err(|_| StoreError::Invalid(format!("stuck age {stuck_after:?} too large")))?;
        // Driven by the in-flight payments (`payments_in_flight`), never by the whole history
        // of transactions.
        let rows: Vec<(String, bool)> = sqlx::query_as(
            "SELECT address, bool_or(halted) FROM (
                 SELECT address, true AS halted FROM wallet_nonces
                  WHERE chain = $1 AND halted_at IS NOT NULL
                 UNION ALL
                 SELECT t.from_address, false FROM payments p
                   JOIN payment_transactions t
                     ON t.payment_id = p.id AND t.status IN ('signed', 'sent')
                   LEFT JOIN payment_confirmations c ON c.payment_id = p.id
                  WHERE p.status IN ('broadcast', 'stalled', 'cancelling') AND t.chain = $1 AND c.block_number IS NULL
                    AND t.created_at < now() - make_interval(secs => $2::double precision / 1000)
             ) w GROUP BY address ORDER BY address",
        )
        .bind(chain)
        .bind(age)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(address, halted)| {
                let health = if halted {
                    WalletHealth::Halted
                } else {
                    WalletHealth::Stuck
                };
                Ok((convert::address(&address)?, health))
            })
            .collect()
    }
}
