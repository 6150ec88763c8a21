//! The send bookkeeping of wallet transactions that belong to no payment (gap fills, sweep
//! attempts): each send's start is recorded before the bytes go out, and its answer after, so a
//! process that dies between the two leaves the bytes marked as possibly public.
//!
//! A payment's attempts keep their own bookkeeping ([`crate::Store::begin_send`]): it runs under
//! the payment's row lock and also records the first acceptance.

use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

/// A table whose rows carry the send columns (`send_started_at`, `exposed_at`, `send_count`,
/// `last_sent_at`, `last_error`, `status` with `signed` → `sent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendLog {
    GapFills,
    SweepTransactions,
}

impl SendLog {
    const fn table(self) -> &'static str {
        match self {
            SendLog::GapFills => "wallet_gap_fills",
            SendLog::SweepTransactions => "sweep_transactions",
        }
    }

    /// Records, before the bytes go out, that row `id` is about to be sent (an earlier start
    /// whose answer was never recorded turns into `exposed_at`).
    pub(crate) async fn begin(self, pool: &PgPool, id: Uuid) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE {}
                SET exposed_at = coalesce(exposed_at, send_started_at), send_started_at = now()
              WHERE id = $1",
            self.table()
        ))
        .bind(id)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Records one send of row `id`: `Ok` = a node has it (`signed` becomes `sent`),
    /// `Err(message)` = refused or unknown. `exposed`: the bytes may be in a pool (accepted, or
    /// an unknown outcome).
    pub(crate) async fn record(
        self,
        pool: &PgPool,
        id: Uuid,
        outcome: std::result::Result<(), &str>,
        exposed: bool,
    ) -> Result<()> {
        let (accepted, error) = match outcome {
            Ok(()) => (true, None),
            Err(message) => (false, Some(message)),
        };
        sqlx::query(&format!(
            "UPDATE {}
                SET send_count = send_count + 1, last_sent_at = now(),
                    exposed_at = CASE WHEN $3 THEN coalesce(exposed_at, send_started_at, now())
                                      ELSE exposed_at END,
                    send_started_at = NULL,
                    status = CASE WHEN $2 AND status = 'signed' THEN 'sent' ELSE status END,
                    last_error = CASE WHEN $2 THEN NULL ELSE $4 END
              WHERE id = $1",
            self.table()
        ))
        .bind(id)
        .bind(accepted)
        .bind(exposed || accepted)
        .bind(error)
        .execute(pool)
        .await?;
        Ok(())
    }
}
