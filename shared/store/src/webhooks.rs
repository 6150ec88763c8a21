//! Merchant webhooks: endpoints, the delivery log, and (in [`dispatch`]) the dispatcher's
//! queries: fan-out of `webhook` outbox rows into deliveries, claiming due deliveries with
//! `FOR UPDATE SKIP LOCKED`, recording attempts.
//!
//! The store keeps bytes and states only: signing, encryption of endpoint secrets, URL policy
//! and the retry schedule live in `meshpay-webhooks`. Endpoint secrets arrive here already
//! sealed (`secret_ciphertext`) and are never decrypted by the store.
//!
//! Tenant isolation: every merchant-facing read and write takes the merchant id; another
//! merchant's endpoint or delivery is `None`/`false`, like an unknown one.

pub mod dispatch;

use std::fmt;
use std::str::FromStr;

use meshpay_domain::{MerchantId, PaymentId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::error::{Result, StoreError};
use crate::{convert, keyset};

pub use dispatch::{
    AttemptRecord, AttemptVerdict, ClaimLimits, ClaimedDelivery, FanOut, PendingWebhookEvent,
    RenderedEvent,
};

/// A malformed prefixed webhook id (the domain's id error: ids share one implementation).
pub use meshpay_domain::IdError as WebhookIdError;

meshpay_domain::prefixed_id!(
    /// A merchant's webhook endpoint: `we_…`.
    WebhookEndpointId,
    "we"
);
meshpay_domain::prefixed_id!(
    /// An event, sent as the `webhook-id` header (stable across retries): `msg_…`.
    WebhookEventId,
    "msg"
);
meshpay_domain::prefixed_id!(
    /// One event for one endpoint: `wd_…`.
    WebhookDeliveryId,
    "wd"
);

/// A merchant may register at most this many live endpoints (a bound on fan-out per event).
pub const MAX_ENDPOINTS_PER_MERCHANT: u32 = 16;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Will be attempted at `next_attempt_at` (or is being attempted).
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Retries exhausted, or the endpoint was disabled (410) or deleted.
    Failed,
}

impl DeliveryStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "succeeded" => Ok(DeliveryStatus::Succeeded),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(StoreError::Invalid(format!(
                "unknown delivery status {other:?}"
            ))),
        }
    }
}

/// An endpoint to register. The caller picks the id because the sealed secret is bound to it
/// (associated data), so a ciphertext copied to another row does not open.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint<'a> {
    pub id: WebhookEndpointId,
    pub merchant_id: MerchantId,
    pub url: &'a str,
    /// `None`: every event type.
    pub event_types: Option<&'a [String]>,
    pub secret_ciphertext: &'a [u8],
}

/// A registered endpoint (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookEndpointId,
    pub merchant_id: MerchantId,
    pub url: String,
    pub event_types: Option<Vec<String>>,
    pub created_at: OffsetDateTime,
    pub disabled_at: Option<OffsetDateTime>,
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateEndpointOutcome {
    Created(WebhookEndpoint),
    /// The merchant already has [`MAX_ENDPOINTS_PER_MERCHANT`] endpoints.
    LimitReached,
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: Uuid,
    merchant_id: Uuid,
    url: String,
    event_types: Option<Vec<String>>,
    created_at: OffsetDateTime,
    disabled_at: Option<OffsetDateTime>,
    disabled_reason: Option<String>,
}

impl From<EndpointRow> for WebhookEndpoint {
    fn from(r: EndpointRow) -> Self {
        WebhookEndpoint {
            id: WebhookEndpointId::from_uuid(r.id),
            merchant_id: MerchantId::from_uuid(r.merchant_id),
            url: r.url,
            event_types: r.event_types,
            created_at: r.created_at,
            disabled_at: r.disabled_at,
            disabled_reason: r.disabled_reason,
        }
    }
}

const ENDPOINT_COLUMNS: &str =
    "id, merchant_id, url, event_types, created_at, disabled_at, disabled_reason";

/// `GET /webhook-deliveries` parameters.
#[derive(Debug, Clone, Default)]
pub struct ListDeliveries {
    pub status: Option<DeliveryStatus>,
    pub endpoint_id: Option<WebhookEndpointId>,
    /// 1..=100; larger values are clamped.
    pub limit: u32,
    /// Keyset cursor: only deliveries older than this one.
    pub before: Option<WebhookDeliveryId>,
}

/// One event for one endpoint, with its latest attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: WebhookDeliveryId,
    pub event_id: WebhookEventId,
    pub event_type: String,
    pub endpoint_id: WebhookEndpointId,
    pub payment_id: Option<PaymentId>,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// Only while pending.
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct DeliveryPage {
    /// Newest first.
    pub items: Vec<WebhookDelivery>,
    pub next_cursor: Option<WebhookDeliveryId>,
}

/// One attempt of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub attempt: i32,
    pub started_at: OffsetDateTime,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// A delivery with the body that is sent and every attempt, oldest first.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    pub delivery: WebhookDelivery,
    pub body: String,
    pub attempts: Vec<WebhookAttempt>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: Uuid,
    event_id: Uuid,
    event_type: String,
    endpoint_id: Uuid,
    payment_id: Option<Uuid>,
    status: String,
    attempts: i32,
    next_attempt_at: OffsetDateTime,
    last_attempt_at: Option<OffsetDateTime>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    created_at: OffsetDateTime,
    completed_at: Option<OffsetDateTime>,
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<WebhookDelivery> {
        let status: DeliveryStatus = self
            .status
            .parse()
            .map_err(|_| convert::corrupt("delivery status", &self.status))?;
        Ok(WebhookDelivery {
            id: WebhookDeliveryId::from_uuid(self.id),
            event_id: WebhookEventId::from_uuid(self.event_id),
            event_type: self.event_type,
            endpoint_id: WebhookEndpointId::from_uuid(self.endpoint_id),
            payment_id: self.payment_id.map(PaymentId::from_uuid),
            status,
            attempts: self.attempts,
            next_attempt_at: (status == DeliveryStatus::Pending).then_some(self.next_attempt_at),
            last_attempt_at: self.last_attempt_at,
            last_status_code: self.last_status_code,
            last_error: self.last_error,
            created_at: self.created_at,
            completed_at: self.completed_at,
        })
    }
}

const DELIVERY_COLUMNS: &str = "d.id, d.event_id, d.event_type, d.endpoint_id, d.payment_id, \
     d.status, d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status_code, \
     d.last_error, d.created_at, d.completed_at";

impl Store {
    /// Registers an endpoint, unless the merchant already has [`MAX_ENDPOINTS_PER_MERCHANT`].
    /// The merchant row is locked for the count, so concurrent creations cannot overshoot.
    /// `FOR NO KEY UPDATE`, not `FOR UPDATE`: it still serializes creations, but does not
    /// conflict with the `FOR KEY SHARE` lock every insert referencing the merchant takes (an
    /// authorization, a quote), so registering an endpoint never stalls payments.
    pub async fn create_webhook_endpoint(
        &self,
        new: &NewWebhookEndpoint<'_>,
    ) -> Result<CreateEndpointOutcome> {
        let mut tx = self.pool.begin().await?;
        let merchant: Option<(Uuid,)> =
            sqlx::query_as("SELECT id FROM merchants WHERE id = $1 FOR NO KEY UPDATE")
                .bind(new.merchant_id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        if merchant.is_none() {
            return Err(StoreError::NotFound);
        }
        let (live,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM webhook_endpoints WHERE merchant_id = $1 AND deleted_at IS NULL",
        )
        .bind(new.merchant_id.as_uuid())
        .fetch_one(&mut *tx)
        .await?;
        if live >= i64::from(MAX_ENDPOINTS_PER_MERCHANT) {
            return Ok(CreateEndpointOutcome::LimitReached);
        }
        let row: EndpointRow = sqlx::query_as(&format!(
            "INSERT INTO webhook_endpoints (id, merchant_id, url, event_types, secret_ciphertext)
             VALUES ($1, $2, $3, $4, $5) RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(new.id.as_uuid())
        .bind(new.merchant_id.as_uuid())
        .bind(new.url)
        .bind(new.event_types)
        .bind(new.secret_ciphertext)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CreateEndpointOutcome::Created(row.into()))
    }

    /// The merchant's live (not deleted) endpoints, newest first.
    pub async fn list_webhook_endpoints(
        &self,
        merchant_id: MerchantId,
    ) -> Result<Vec<WebhookEndpoint>> {
        let rows: Vec<EndpointRow> = sqlx::query_as(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
             WHERE merchant_id = $1 AND deleted_at IS NULL ORDER BY id DESC"
        ))
        .bind(merchant_id.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// One live endpoint of the merchant.
    pub async fn get_webhook_endpoint(
        &self,
        merchant_id: MerchantId,
        id: WebhookEndpointId,
    ) -> Result<Option<WebhookEndpoint>> {
        let row: Option<EndpointRow> = sqlx::query_as(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
             WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL"
        ))
        .bind(id.as_uuid())
        .bind(merchant_id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Into::into))
    }

    /// Deletes (soft) the merchant's endpoint and fails its pending deliveries, in one
    /// transaction. `false` when there is no such live endpoint for this merchant.
    pub async fn delete_webhook_endpoint(
        &self,
        merchant_id: MerchantId,
        id: WebhookEndpointId,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "UPDATE webhook_endpoints SET deleted_at = now()
             WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL",
        )
        .bind(id.as_uuid())
        .bind(merchant_id.as_uuid())
        .execute(&mut *tx)
        .await?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        dispatch::fail_pending_of_endpoint(&mut tx, id, "endpoint deleted").await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The merchant's deliveries, newest first, with keyset pagination.
    pub async fn list_webhook_deliveries(
        &self,
        merchant_id: MerchantId,
        params: &ListDeliveries,
    ) -> Result<DeliveryPage> {
        let limit = params.limit.clamp(1, 100);
        let rows: Vec<DeliveryRow> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d
             WHERE d.merchant_id = $1 AND ($2::text IS NULL OR d.status = $2)
               AND ($3::uuid IS NULL OR d.endpoint_id = $3)
               AND ($4::uuid IS NULL OR d.id < $4)
             ORDER BY d.id DESC LIMIT $5"
        ))
        .bind(merchant_id.as_uuid())
        .bind(params.status.map(DeliveryStatus::as_str))
        .bind(params.endpoint_id.map(|e| e.as_uuid()))
        .bind(params.before.map(|d| d.as_uuid()))
        // One extra row tells whether another page exists.
        .bind(keyset::rows_to_read(limit))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .into_iter()
            .map(DeliveryRow::into_delivery)
            .collect::<Result<Vec<_>>>()?;
        let (items, next_cursor) = keyset::split(items, limit, |d| d.id);
        Ok(DeliveryPage { items, next_cursor })
    }

    /// One delivery of the merchant with its body and attempt log.
    pub async fn get_webhook_delivery(
        &self,
        merchant_id: MerchantId,
        id: WebhookDeliveryId,
    ) -> Result<Option<DeliveryDetail>> {
        let row: Option<(DeliveryRow, String)> = sqlx::query_as::<_, DeliveryWithBody>(&format!(
            "SELECT {DELIVERY_COLUMNS}, ev.body FROM webhook_deliveries d
             JOIN webhook_events ev ON ev.id = d.event_id
             WHERE d.id = $1 AND d.merchant_id = $2"
        ))
        .bind(id.as_uuid())
        .bind(merchant_id.as_uuid())
        .fetch_optional(&self.pool)
        .await?
        .map(|r| (r.delivery, r.body));
        let Some((row, body)) = row else {
            return Ok(None);
        };
        let attempts: Vec<AttemptRow> = sqlx::query_as(
            "SELECT attempt, started_at, duration_ms, status_code, error, response_excerpt
             FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(id.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(DeliveryDetail {
            delivery: row.into_delivery()?,
            body,
            attempts: attempts.into_iter().map(Into::into).collect(),
        }))
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryWithBody {
    #[sqlx(flatten)]
    delivery: DeliveryRow,
    body: String,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt: i32,
    started_at: OffsetDateTime,
    duration_ms: i32,
    status_code: Option<i32>,
    error: Option<String>,
    response_excerpt: Option<String>,
}

impl From<AttemptRow> for WebhookAttempt {
    fn from(r: AttemptRow) -> Self {
        WebhookAttempt {
            attempt: r.attempt,
            started_at: r.started_at,
            duration_ms: r.duration_ms,
            status_code: r.status_code,
            error: r.error,
            response_excerpt: r.response_excerpt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_with_their_prefix_and_parse_only_that_form() {
        let id = WebhookEndpointId::new();
        let text = id.to_string();
        assert!(text.starts_with("we_"), "{text}");
        assert_eq!(text.parse::<WebhookEndpointId>(), Ok(id));
        assert!(text.parse::<WebhookDeliveryId>().is_err());
        assert!("we_123".parse::<WebhookEndpointId>().is_err());
        let msg = WebhookEventId::new().to_string();
        assert!(msg.starts_with("msg_") && msg.len() == 36, "{msg}");
    }

    #[test]
    fn delivery_status_round_trips_through_text() {
        for s in [
            DeliveryStatus::Pending,
            DeliveryStatus::Succeeded,
            DeliveryStatus::Failed,
        ] {
            assert_eq!(s.as_str().parse::<DeliveryStatus>().unwrap(), s);
        }
        assert!("done".parse::<DeliveryStatus>().is_err());
    }
}
