//! Transactional outbox: messages written in the same transaction as the state change they
//! announce, dispatched afterwards at least once (consumers are idempotent).
//!
//! Topics: [`topics::PAYMENTS_BROADCAST`] (and other `queue:<name>` topics) carry a queue message
//! as payload; [`topics::WEBHOOK`] carries a merchant event `{type, payment_id, status, version}`.

use std::time::Duration;

use meshpay_domain::{MerchantId, PaymentId};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::error::{Result, StoreError};

pub mod topics {
    /// The `payments-broadcast` queue (payload: `meshpay_domain::PaymentMessage`).
    pub const PAYMENTS_BROADCAST: &str = "queue:payments-broadcast";
    pub const PAYMENTS_CONFIRM: &str = "queue:payments-confirm";
    pub const PAYMENTS_SETTLE: &str = "queue:payments-settle";
    /// Merchant webhook events (`payment.authorized`, ...), one per status change.
    pub const WEBHOOK: &str = "webhook";
}

/// A message to write with a state change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxMessage {
    pub topic: String,
    pub payload: serde_json::Value,
    /// Not dispatchable before this delay has passed.
    pub delay: Duration,
}

impl NewOutboxMessage {
    pub fn new(topic: &str, payload: serde_json::Value) -> Self {
        NewOutboxMessage {
            topic: topic.to_owned(),
            payload,
            delay: Duration::ZERO,
        }
    }
}

/// A claimed message.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub topic: String,
    pub merchant_id: Option<MerchantId>,
    pub payment_id: Option<PaymentId>,
    pub payload: serde_json::Value,
    /// Including this claim.
    pub attempts: i32,
    pub created_at: OffsetDateTime,
}

fn interval_ms(d: Duration) -> Result<i64> {
    i64::try_from(d.as_millis()).map_err(|_| StoreError::Invalid("duration too large".into()))
}

/// Writes `messages` in one statement.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    merchant: Option<MerchantId>,
    payment: Option<PaymentId>,
    messages: &[NewOutboxMessage],
) -> Result<()> {
    let topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
    let payloads: Vec<&serde_json::Value> = messages.iter().map(|m| &m.payload).collect();
    let delays = messages
        .iter()
        .map(|m| interval_ms(m.delay))
        .collect::<Result<Vec<i64>>>()?;
    sqlx::query(
        "INSERT INTO outbox (topic, merchant_id, payment_id, payload, available_at, traceparent)
         SELECT t, $1, $2, p, now() + d * interval '1 millisecond', $6
         FROM unnest($3::text[], $4::jsonb[], $5::bigint[]) WITH ORDINALITY AS m(t, p, d, n)
         ORDER BY n",
    )
    .bind(merchant.map(|x| x.as_uuid()))
    .bind(payment.map(|x| x.as_uuid()))
    .bind(&topics)
    .bind(&payloads)
    .bind(&delays)
    // The span of the step making the change: whoever acts on the row later continues it.
    .bind(meshpay_telemetry::current_traceparent())
    .execute(conn)
    .await?;
    Ok(())
}

type OutboxRow = (
    i64,
    String,
    Option<Uuid>,
    Option<Uuid>,
    serde_json::Value,
    i32,
    OffsetDateTime,
);

impl Store {
    /// Claims up to `limit` due messages of `topic` (oldest first), hiding them from other
    /// claimers for `lease`; unfinished claims reappear after it. Concurrent dispatchers skip each
    /// other's rows (`SKIP LOCKED`).
    pub async fn claim_outbox(
        &self,
        topic: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxMessage>> {
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "UPDATE outbox SET available_at = now() + $3 * interval '1 millisecond', attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE topic = $1 AND dispatched_at IS NULL AND available_at <= now()
                          ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id, topic, merchant_id, payment_id, payload, attempts, created_at",
        )
        .bind(topic)
        .bind(i64::from(limit.min(1000)))
        .bind(interval_ms(lease)?)
        .fetch_all(&self.pool)
        .await?;
        let mut messages: Vec<OutboxMessage> = rows
            .into_iter()
            .map(
                |(id, topic, merchant, payment, payload, attempts, created_at)| OutboxMessage {
                    id,
                    topic,
                    merchant_id: merchant.map(MerchantId::from_uuid),
                    payment_id: payment.map(PaymentId::from_uuid),
                    payload,
                    attempts,
                    created_at,
                },
            )
            .collect();
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    /// Marks a claimed message delivered.
    pub async fn complete_outbox(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE outbox SET dispatched_at = now(), last_error = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed delivery; the message becomes due again after `retry_in`.
    pub async fn retry_outbox(&self, id: i64, retry_in: Duration, error: &str) -> Result<()> {
        let error: String = error.chars().take(1000).collect();
        sqlx::query(
            "UPDATE outbox SET available_at = now() + $2 * interval '1 millisecond', last_error = $3
             WHERE id = $1 AND dispatched_at IS NULL",
        )
        .bind(id)
        .bind(interval_ms(retry_in)?)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every outbox message of a payment, oldest first (tests, support).
    pub async fn outbox_for_payment(
        &self,
        payment_id: PaymentId,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        let rows: Vec<(String, serde_json::Value)> =
            sqlx::query_as("SELECT topic, payload FROM outbox WHERE payment_id = $1 ORDER BY id")
                .bind(payment_id.as_uuid())
                .fetch_all(&self.pool)
                .await?;
        Ok(rows)
    }
}
