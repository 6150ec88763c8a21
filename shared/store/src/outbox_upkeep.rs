//! The reconcile run's part of the outbox: queue messages (`queue:<name>` topics) that the
//! writing step's own output binding normally delivered are dispatched again when still
//! undelivered after a grace period, and dispatched rows of every topic are pruned after a
//! retention.
//!
//! Why dispatch at all: authorize commits the payment with its `queue:payments-broadcast` row
//! and then returns the same message to the host's output binding; a process that dies between
//! the commit and the host's enqueue loses the message, and the row is the only trace of it.
//! A row older than the grace whose payment is still `authorized` is handed to the reconcile
//! run's `broadcast` binding (at least once: the broadcast step is idempotent per payment);
//! rows of payments that moved on are marked dispatched without a message (the binding's
//! message was delivered).

use std::time::Duration;

use meshpay_domain::PaymentId;

use crate::Store;
use crate::error::{Result, StoreError};

fn ms(d: Duration) -> Result<i64> {
    i64::try_from(d.as_millis()).map_err(|_| StoreError::Invalid("duration too large".into()))
}

/// A queue message to send again.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxDispatch {
    pub id: i64,
    pub payment_id: Option<PaymentId>,
    pub payload: serde_json::Value,
}

impl Store {
    /// Marks up to `limit` undispatched rows of `topic` older than `grace` dispatched and
    /// returns those whose payment is still `authorized` (or that belong to no payment): the
    /// caller sends them. Concurrent runs skip each other's rows.
    pub async fn dispatch_outbox(
        &self,
        topic: &str,
        grace: Duration,
        limit: u32,
    ) -> Result<Vec<OutboxDispatch>> {
        let rows: Vec<(i64, Option<uuid::Uuid>, serde_json::Value, bool)> = sqlx::query_as(
            "WITH due AS (
               SELECT o.id FROM outbox o
               WHERE o.topic = $1 AND o.dispatched_at IS NULL
                 AND o.created_at < now() - $2 * interval '1 millisecond'
               ORDER BY o.id LIMIT $3 FOR UPDATE SKIP LOCKED)
             UPDATE outbox o SET dispatched_at = now(), attempts = o.attempts + 1
             FROM due WHERE o.id = due.id
             RETURNING o.id, o.payment_id, o.payload,
                       coalesce((SELECT p.status = 'authorized' FROM payments p WHERE p.id = o.payment_id), true)",
        )
        .bind(topic)
        .bind(ms(grace)?)
        .bind(i64::from(limit.min(1000)))
        .fetch_all(&self.pool)
        .await?;
        let mut due: Vec<OutboxDispatch> = rows
            .into_iter()
            .filter(|(_, _, _, send)| *send)
            .map(|(id, payment, payload, _)| OutboxDispatch {
                id,
                payment_id: payment.map(PaymentId::from_uuid),
                payload,
            })
            .collect();
        due.sort_by_key(|d| d.id);
        Ok(due)
    }

    /// Deletes up to `limit` rows dispatched more than `retention` ago (any topic).
    pub async fn prune_outbox(&self, retention: Duration, limit: u32) -> Result<u64> {
        let deleted = sqlx::query(
            "DELETE FROM outbox WHERE id IN (
               SELECT id FROM outbox
               WHERE dispatched_at IS NOT NULL
                 AND dispatched_at < now() - $1 * interval '1 millisecond'
               ORDER BY dispatched_at LIMIT $2)",
        )
        .bind(ms(retention)?)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }
}
