//! The notify dispatcher's queries.
//!
//! 1. [`Store::fan_out_webhook_events`]: `webhook` outbox rows → one event (the exact body to
//!    sign) and one pending delivery per subscribed endpoint, and the outbox row marked
//!    dispatched, all in one transaction. One fan-out runs at a time (a transaction-scoped
//!    advisory lock): with concurrent fan-outs skipping each other's rows, event N+1 of a payment
//!    could become a delivery before event N and be sent first.
//! 2. [`Store::claim_webhook_deliveries`]: due deliveries whose endpoint is live and that have no
//!    earlier pending delivery for the same (endpoint, payment), locked with `SKIP LOCKED`,
//!    bounded per endpoint (a slow endpoint cannot take a whole batch: other merchants' events
//!    go out in the same run), and leased: `attempts + 1`, `next_attempt_at = now + lease`. If
//!    the process dies mid-request the delivery is due again after the lease.
//! 3. [`Store::record_webhook_attempt`]: the attempt log row and the delivery's new state, only
//!    if the delivery is still at the claimed attempt (a late writer whose lease expired and whose
//!    delivery was claimed again changes nothing but the log).

use std::time::Duration;

use meshpay_domain::{MerchantId, PaymentId};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{WebhookDeliveryId, WebhookEndpointId, WebhookEventId};
use crate::Store;
use crate::error::{Result, StoreError};
use crate::outbox::topics;
use crate::payments::{Payment, select_payment};

/// Key of the transaction-scoped advisory lock serializing fan-outs ("meshwhk1").
const FAN_OUT_LOCK: i64 = 0x6d65_7368_7768_6b31;
/// Longest stored error text and response excerpt (characters).
const MAX_ERROR_CHARS: usize = 1000;
const MAX_EXCERPT_CHARS: usize = 1024;

/// A `webhook` outbox row awaiting fan-out. `payload` is what the transition wrote:
/// `{type, payment_id, status, version}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingWebhookEvent {
    pub outbox_id: i64,
    pub merchant_id: Option<MerchantId>,
    pub payment_id: Option<PaymentId>,
    pub payload: serde_json::Value,
    /// When the state change was committed (about): the event's timestamp.
    pub created_at: OffsetDateTime,
}

/// An event ready to send: its type and the exact body that will be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEvent {
    pub event_type: String,
    pub body: String,
}

/// What one fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOut {
    /// Outbox rows consumed (with or without subscribers).
    pub outbox_rows: u32,
    /// Events stored (rows with at least one subscribed endpoint).
    pub events: u32,
    pub deliveries: u32,
    /// Rows that could not be rendered (marked dispatched with an error, never retried).
    pub skipped: u32,
    /// Another dispatcher was fanning out; nothing was done.
    pub busy: bool,
}

/// A leased delivery, with everything needed to send it.
#[derive(Clone)]
pub struct ClaimedDelivery {
    pub id: WebhookDeliveryId,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    pub event_id: WebhookEventId,
    pub event_type: String,
    pub endpoint_id: WebhookEndpointId,
    pub url: String,
    pub secret_ciphertext: Vec<u8>,
    pub body: String,
    pub payment_id: Option<PaymentId>,
    /// The trace of the state change the event announces (see `outbox.traceparent`).
    pub traceparent: Option<String>,
}

impl std::fmt::Debug for ClaimedDelivery {
    /// Without the (sealed) secret and the body.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("endpoint_id", &self.endpoint_id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Bounds of one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimits {
    /// Deliveries per claim.
    pub batch: u32,
    /// Deliveries per endpoint per claim.
    pub per_endpoint: u32,
    /// How long a claimed delivery is hidden from other claimers (longer than a request).
    pub lease: Duration,
}

/// The outcome of one attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub delivery_id: WebhookDeliveryId,
    pub attempt: i32,
    pub started_at: OffsetDateTime,
    pub duration_ms: u32,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// What happens to the delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptVerdict {
    Succeeded,
    /// Due again after this delay.
    RetryIn(Duration),
    /// No attempts left: the delivery fails.
    GiveUp,
    /// The endpoint answered 410 Gone: it is disabled and all its pending deliveries fail.
    DisableEndpoint {
        reason: String,
    },
}

fn millis(d: Duration) -> Result<i64> {
    i64::try_from(d.as_millis()).map_err(|_| StoreError::Invalid("duration too large".into()))
}

fn truncate(text: Option<&str>, max_chars: usize) -> Option<String> {
    text.map(|t| t.chars().take(max_chars).collect())
}

type OutboxRow = (
    i64,
    Option<Uuid>,
    Option<Uuid>,
    serde_json::Value,
    OffsetDateTime,
    Option<String>,
);

/// Fails every pending delivery of an endpoint (deleted or disabled), inside `conn`'s
/// transaction.
pub(crate) async fn fail_pending_of_endpoint(
    conn: &mut PgConnection,
    endpoint: WebhookEndpointId,
    why: &str,
) -> Result<u64> {
    let failed = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'failed', completed_at = now(),
             last_error = coalesce(last_error || '; ', '') || $2
         WHERE endpoint_id = $1 AND status = 'pending'",
    )
    .bind(endpoint.as_uuid())
    .bind(why)
    .execute(conn)
    .await?;
    Ok(failed.rows_affected())
}

/// Stores one event and its deliveries; returns the number of deliveries.
async fn insert_event(
    conn: &mut PgConnection,
    row: &PendingWebhookEvent,
    merchant: MerchantId,
    rendered: &RenderedEvent,
    traceparent: Option<&str>,
) -> Result<u32> {
    let endpoints: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM webhook_endpoints
         WHERE merchant_id = $1 AND deleted_at IS NULL AND disabled_at IS NULL
           AND (event_types IS NULL OR $2 = ANY (event_types))
         ORDER BY id",
    )
    .bind(merchant.as_uuid())
    .bind(&rendered.event_type)
    .fetch_all(&mut *conn)
    .await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let event = WebhookEventId::new();
    sqlx::query(
        "INSERT INTO webhook_events (id, outbox_id, merchant_id, payment_id, event_type, body,
             occurred_at, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (outbox_id) DO NOTHING",
    )
    .bind(event.as_uuid())
    .bind(row.outbox_id)
    .bind(merchant.as_uuid())
    .bind(row.payment_id.map(|p| p.as_uuid()))
    .bind(&rendered.event_type)
    .bind(&rendered.body)
    .bind(row.created_at)
    .bind(traceparent)
    .execute(&mut *conn)
    .await?;
    let endpoint_ids: Vec<Uuid> = endpoints.into_iter().map(|(id,)| id).collect();
    let delivery_ids: Vec<Uuid> = endpoint_ids
        .iter()
        .map(|_| WebhookDeliveryId::new().as_uuid())
        .collect();
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, merchant_id, payment_id,
             event_seq, event_type, status)
         SELECT d, $1, e, $2, $3, $4, $5, 'pending'
         FROM unnest($6::uuid[], $7::uuid[]) AS t(d, e)
         ON CONFLICT (event_id, endpoint_id) DO NOTHING",
    )
    .bind(event.as_uuid())
    .bind(merchant.as_uuid())
    .bind(row.payment_id.map(|p| p.as_uuid()))
    .bind(row.outbox_id)
    .bind(&rendered.event_type)
    .bind(&delivery_ids)
    .bind(&endpoint_ids)
    .execute(&mut *conn)
    .await?;
    u32::try_from(inserted.rows_affected())
        .map_err(|_| StoreError::Corrupt("delivery count out of range".into()))
}

impl Store {
    /// Fans out up to `limit` `webhook` outbox rows, oldest first (see the module docs).
    /// `render` turns a row and its payment (as it is now) into the event to send; `None`
    /// skips the row for good (it is logged in the outbox's `last_error`).
    pub async fn fan_out_webhook_events<F>(&self, limit: u32, mut render: F) -> Result<FanOut>
    where
        F: FnMut(&PendingWebhookEvent, Option<&Payment>) -> Option<RenderedEvent>,
    {
        let mut tx = self.pool.begin().await?;
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
            .bind(FAN_OUT_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(FanOut {
                busy: true,
                ..FanOut::default()
            });
        }
        // No `available_at` filter: the order of fan-out must be the order of the state
        // changes, whatever any delay says.
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, merchant_id, payment_id, payload, created_at, traceparent FROM outbox
             WHERE topic = $1 AND dispatched_at IS NULL ORDER BY id LIMIT $2",
        )
        .bind(topics::WEBHOOK)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&mut *tx)
        .await?;
        let mut report = FanOut::default();
        for (outbox_id, merchant, payment, payload, created_at, traceparent) in rows {
            let row = PendingWebhookEvent {
                outbox_id,
                merchant_id: merchant.map(MerchantId::from_uuid),
                payment_id: payment.map(PaymentId::from_uuid),
                payload,
                created_at,
            };
            report.outbox_rows += 1;
            let payment = match row.payment_id {
                Some(id) => select_payment(&mut tx, None, id).await?,
                None => None,
            };
            let rendered = render(&row, payment.as_ref());
            let error = match (row.merchant_id, rendered) {
                (Some(merchant), Some(rendered)) => {
                    let n =
                        insert_event(&mut tx, &row, merchant, &rendered, traceparent.as_deref())
                            .await?;
                    if n > 0 {
                        report.events += 1;
                        report.deliveries += n;
                    }
                    None
                }
                (None, _) => Some("webhook event without a merchant"),
                (_, None) => Some("webhook event could not be rendered"),
            };
            if error.is_some() {
                report.skipped += 1;
            }
            sqlx::query("UPDATE outbox SET dispatched_at = now(), last_error = $2 WHERE id = $1")
                .bind(outbox_id)
                .bind(error)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Claims due deliveries (see the module docs), oldest due first.
    pub async fn claim_webhook_deliveries(
        &self,
        limits: ClaimLimits,
    ) -> Result<Vec<ClaimedDelivery>> {
        self.claim_webhook_deliveries_except(limits, &[]).await
    }

    /// [`Store::claim_webhook_deliveries`] without the endpoints in `skip` (the dispatcher's
    /// endpoints already at their in-flight cap).
    pub async fn claim_webhook_deliveries_except(
        &self,
        limits: ClaimLimits,
        skip: &[WebhookEndpointId],
    ) -> Result<Vec<ClaimedDelivery>> {
        let skip: Vec<Uuid> = skip.iter().map(|e| e.as_uuid()).collect();
        let rows: Vec<ClaimRow> = sqlx::query_as(
            // Per live endpoint, its oldest due deliveries that are the first pending one of
            // their payment, locked as they are read and at most `$2` of them: an index walk
            // that stops after the endpoint's share, so a claim costs about its own size, never
            // the backlog's. The order check is a `min` (an index probe on all three columns of
            // `webhook_deliveries_order` whatever the statistics say): as `NOT EXISTS`, with
            // statistics taken while nothing was pending, the planner scanned the whole pending
            // set for every candidate and one claim ran for minutes.
            "WITH picked AS (
                 SELECT c.id FROM webhook_endpoints e
                 CROSS JOIN LATERAL (
                     SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                     WHERE d.endpoint_id = e.id AND d.status = 'pending'
                       AND d.next_attempt_at <= now()
                       AND (d.payment_id IS NULL OR d.event_seq = (
                           SELECT min(p.event_seq) FROM webhook_deliveries p
                           WHERE p.endpoint_id = d.endpoint_id AND p.payment_id = d.payment_id
                             AND p.status = 'pending'))
                     ORDER BY d.next_attempt_at, d.id
                     LIMIT $2
                     FOR UPDATE OF d SKIP LOCKED
                 ) c
                 WHERE e.disabled_at IS NULL AND e.deleted_at IS NULL AND e.id <> ALL ($4)
                 ORDER BY c.next_attempt_at, c.id
                 LIMIT $1
             )
             UPDATE webhook_deliveries d
                SET attempts = d.attempts + 1,
                    next_attempt_at = now() + $3 * interval '1 millisecond'
               FROM picked, webhook_endpoints e, webhook_events ev
              WHERE d.id = picked.id AND e.id = d.endpoint_id AND ev.id = d.event_id
             RETURNING d.id, d.attempts, d.event_id, d.event_type, d.endpoint_id, e.url,
                       e.secret_ciphertext, ev.body, d.payment_id, ev.traceparent",
        )
        .bind(i64::from(limits.batch.clamp(1, 1000)))
        .bind(i64::from(limits.per_endpoint.max(1)))
        .bind(millis(limits.lease)?)
        .bind(&skip)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed: Vec<ClaimedDelivery> = rows
            .into_iter()
            .map(|r| ClaimedDelivery {
                id: WebhookDeliveryId::from_uuid(r.id),
                attempt: r.attempts,
                event_id: WebhookEventId::from_uuid(r.event_id),
                event_type: r.event_type,
                endpoint_id: WebhookEndpointId::from_uuid(r.endpoint_id),
                url: r.url,
                secret_ciphertext: r.secret_ciphertext,
                body: r.body,
                payment_id: r.payment_id.map(PaymentId::from_uuid),
                traceparent: r.traceparent,
            })
            .collect();
        // RETURNING has no order; ids are time-ordered, so this is creation order.
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// Records an attempt and moves the delivery on (see the module docs). `false` when the
    /// delivery had moved past this attempt (only the log row was written).
    pub async fn record_webhook_attempt(
        &self,
        record: &AttemptRecord,
        verdict: &AttemptVerdict,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let error = truncate(record.error.as_deref(), MAX_ERROR_CHARS);
        let code = record.status_code.map(i32::from);
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms,
                 status_code, error, response_excerpt)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(record.delivery_id.as_uuid())
        .bind(record.attempt)
        .bind(record.started_at)
        .bind(i32::try_from(record.duration_ms).unwrap_or(i32::MAX))
        .bind(code)
        .bind(error.as_deref())
        .bind(truncate(
            record.response_excerpt.as_deref(),
            MAX_EXCERPT_CHARS,
        ))
        .execute(&mut *tx)
        .await?;
        let (status, retry_ms) = match verdict {
            AttemptVerdict::Succeeded => ("succeeded", None),
            AttemptVerdict::RetryIn(delay) => ("pending", Some(millis(*delay)?)),
            AttemptVerdict::GiveUp | AttemptVerdict::DisableEndpoint { .. } => ("failed", None),
        };
        let endpoint: Option<(Uuid,)> = sqlx::query_as(
            "UPDATE webhook_deliveries SET status = $3,
                 next_attempt_at = CASE WHEN $4::bigint IS NULL THEN next_attempt_at
                                        ELSE now() + $4 * interval '1 millisecond' END,
                 completed_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END,
                 last_attempt_at = $5, last_status_code = $6, last_error = $7
             WHERE id = $1 AND attempts = $2 AND status = 'pending'
             RETURNING endpoint_id",
        )
        .bind(record.delivery_id.as_uuid())
        .bind(record.attempt)
        .bind(status)
        .bind(retry_ms)
        .bind(record.started_at)
        .bind(code)
        .bind(error.as_deref())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((endpoint,)) = endpoint else {
            tx.commit().await?;
            return Ok(false);
        };
        if let AttemptVerdict::DisableEndpoint { reason } = verdict {
            let endpoint = WebhookEndpointId::from_uuid(endpoint);
            sqlx::query(
                "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2
                 WHERE id = $1 AND disabled_at IS NULL",
            )
            .bind(endpoint.as_uuid())
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            fail_pending_of_endpoint(&mut tx, endpoint, &format!("endpoint disabled: {reason}"))
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes up to `limit` finished deliveries completed more than `retention` ago (with their
    /// attempts), then events left without deliveries: the log must not grow without bound.
    /// Returns the number of deliveries deleted.
    pub async fn prune_webhook_history(&self, retention: Duration, limit: u32) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM webhook_deliveries
             WHERE status <> 'pending' AND completed_at < now() - $1 * interval '1 millisecond'
             ORDER BY completed_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(millis(retention)?)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = ids.into_iter().map(|(id,)| id).collect();
        sqlx::query("DELETE FROM webhook_attempts WHERE delivery_id = ANY ($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        let deleted =
            sqlx::query("DELETE FROM webhook_deliveries WHERE id = ANY ($1) RETURNING event_id")
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
        sqlx::query(
            "DELETE FROM webhook_events ev
             WHERE ev.created_at < now() - $1 * interval '1 millisecond'
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = ev.id)
               AND ev.id IN (SELECT id FROM webhook_events
                             WHERE created_at < now() - $1 * interval '1 millisecond'
                             ORDER BY created_at LIMIT $2)",
        )
        .bind(millis(retention)?)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: Uuid,
    attempts: i32,
    event_id: Uuid,
    event_type: String,
    endpoint_id: Uuid,
    url: String,
    secret_ciphertext: Vec<u8>,
    body: String,
    payment_id: Option<Uuid>,
    traceparent: Option<String>,
}
