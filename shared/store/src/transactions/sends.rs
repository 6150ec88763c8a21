//! What the nodes answered to an attempt's sends.

use uuid::Uuid;

use crate::Store;
use crate::error::Result;

impl Store {
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
                    exposed_at = coalesce(exposed_at, now()),
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
    /// the bytes): counted, error kept, status and exposure unchanged.
    pub async fn record_refusal(&self, attempt: Uuid, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE payment_transactions
                SET send_count = send_count + 1, last_sent_at = now(), last_error = $2
              WHERE id = $1",
        )
        .bind(attempt)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
