//! What the nodes answered to an attempt's sends.

use uuid::Uuid;

use super::{TxAttempt, live_attempt, lock_payment};
use crate::Store;
use crate::error::Result;

impl Store {
    /// Records, before the bytes go out, that `attempt` is about to be sent: under the payment's
    /// row lock, and only while the payment is in flight (`broadcast`, `stalled`, `cancelling`) with `attempt` as its live
    /// transaction (`false`: it is not, send nothing). A crash after the send and before its
    /// answer is recorded leaves the mark, so nothing may later treat the bytes as never
    /// public. An earlier mark still standing (its send's answer was never recorded) turns into
    /// `exposed_at`.
    pub async fn begin_send(&self, attempt: &TxAttempt) -> Result<bool> {
        let mut db = self.pool.begin().await?;
        let Some((status, _)) = lock_payment(&mut db, attempt.payment_id).await? else {
            return Ok(false);
        };
        if !status.is_in_flight() {
            return Ok(false);
        }
        let live = live_attempt(&mut db, attempt.payment_id).await?;
        if live.is_none_or(|live| live.id != attempt.id) {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE payment_transactions
                SET exposed_at = coalesce(exposed_at, send_started_at), send_started_at = now()
              WHERE id = $1",
        )
        .bind(attempt.id)
        .execute(&mut *db)
        .await?;
        db.commit().await?;
        Ok(true)
    }

    /// Records one `eth_sendRawTransaction` of an attempt whose answer was not a refusal:
    /// `Ok` = a node has it (status `sent`), `Err(message)` = the outcome is unknown (timeout,
    /// 5xx, unrecognised error: the node may have it). Either way the bytes count as exposed
    /// ([`TxAttempt::may_be_public`]). A node's outright refusal is [`Store::record_refusal`].
    ///
    /// [`TxAttempt::may_be_public`]: super::TxAttempt::may_be_public
    pub async fn record_send(&self, attempt: Uuid, outcome: Result<(), &str>) -> Result<()> {
        let (accepted, error) = match outcome {
            Ok(()) => (true, None),
            Err(message) => (false, Some(message)),
        };
        sqlx::query(
            "UPDATE payment_transactions
                SET send_count = send_count + 1, last_sent_at = now(),
                    first_sent_at = CASE WHEN $2 THEN coalesce(first_sent_at, now()) ELSE first_sent_at END,
                    exposed_at = coalesce(exposed_at, send_started_at, now()),
                    send_started_at = NULL,
                    status = CASE WHEN $2 AND status = 'signed' THEN 'sent' ELSE status END,
                    last_error = CASE WHEN $2 THEN NULL ELSE $3 END
              WHERE id = $1",
        )
        .bind(attempt)
        .bind(accepted)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a send the node refused outright (it answered with a reason, so it does not hold
    /// the bytes): counted, error kept, status and exposure unchanged; the send's
    /// [`Store::begin_send`] mark is cleared.
    pub async fn record_refusal(&self, attempt: Uuid, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE payment_transactions
                SET send_count = send_count + 1, last_sent_at = now(), last_error = $2,
                    send_started_at = NULL
              WHERE id = $1",
        )
        .bind(attempt)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
