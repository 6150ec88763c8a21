//! `POST /payments`: idempotent authorization of a quote, in ONE database transaction.
//!
//! 1. Claim the Idempotency-Key: `INSERT … ON CONFLICT DO NOTHING`. The row is ours until we
//!    commit; a concurrent request with the same key blocks on the primary key (bounded by
//!    `lock_timeout` → [`StoreError::IdempotencyInFlight`]) and, once we commit, finds our
//!    completed row and replays our response. If we roll back, it proceeds as if first.
//!    Same key + different request hash → [`StoreError::IdempotencyKeyReused`].
//! 2. Lock the quote (`FOR UPDATE`): it must be the merchant's, unused and unexpired (by the
//!    database clock).
//! 3. Per-payment limit; lock the merchant's accounts for every debited asset (id order); daily
//!    limit (today's volume, read *under* the lock, so concurrent authorizations cannot both
//!    squeeze under it); available balance ≥ debit, else [`StoreError::InsufficientFunds`].
//! 4. Insert the payment (`authorized`, version 1), place the holds (available → held), append
//!    the `quoted → authorized` event, write the outbox (broadcast message + webhook event), mark
//!    the quote used, store the rendered response under the key. Commit.
//!
//! Only successful authorizations are stored for replay: a business error rolls everything
//! back, key included, so the client may retry the same key later (e.g. after funding). This
//! is the IETF idempotency-key draft's and Stripe API v2's behaviour; a 2xx is replayed
//! byte-for-byte (status and body), as Stripe does.

use meshpay_domain::{
    Address, Amount, AssetId, EventKind, IdempotencyKey, MerchantId, PaymentId, PaymentMessage,
    PaymentStatus, QuoteId,
};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::Store;
use crate::convert;
use crate::error::{LimitKind, Result, StoreError, pg_code};
use crate::ledger;
use crate::outbox::{self, NewOutboxMessage, topics};
use crate::payments::Payment;
use crate::quotes::{Quote, select_quote};
use crate::transition::{EventRow, insert_event, webhook_event};

#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub merchant_id: MerchantId,
    pub idempotency_key: IdempotencyKey,
    /// Fingerprint of the request body: [`request_fingerprint`].
    pub request_hash: [u8; 32],
    pub quote_id: QuoteId,
    /// The merchant's own reference (≤ 255 bytes).
    pub reference: Option<String>,
    pub metadata: Option<serde_json::Value>,
    /// The hot wallet to send from, if chosen at authorization (else the broadcast step picks).
    pub hot_wallet: Option<Address>,
}

/// An HTTP response as stored for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone)]
pub enum AuthorizeOutcome {
    /// This call authorized the payment; `response` is what `render` produced (now stored).
    Created {
        payment: Box<Payment>,
        response: StoredResponse,
    },
    /// An earlier call with the same key and request did; this is its response.
    Replayed {
        payment_id: Option<PaymentId>,
        response: StoredResponse,
    },
}

impl AuthorizeOutcome {
    pub fn response(&self) -> &StoredResponse {
        match self {
            AuthorizeOutcome::Created { response, .. }
            | AuthorizeOutcome::Replayed { response, .. } => response,
        }
    }

    pub fn payment_id(&self) -> Option<PaymentId> {
        match self {
            AuthorizeOutcome::Created { payment, .. } => Some(payment.id),
            AuthorizeOutcome::Replayed { payment_id, .. } => *payment_id,
        }
    }
}

/// SHA-256 of the request body in canonical JSON (object keys sorted at every level), so the
/// same request with keys in another order is still "the same request".
pub fn request_fingerprint(body: &serde_json::Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    canonical_json(body, &mut hasher);
    hasher.finalize().into()
}

fn canonical_json(value: &serde_json::Value, out: &mut Sha256) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.update(b"{");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                out.update(
                    serde_json::Value::String(key.clone())
                        .to_string()
                        .as_bytes(),
                );
                out.update(b":");
                if let Some(v) = map.get(key) {
                    canonical_json(v, out);
                }
            }
            out.update(b"}");
        }
        serde_json::Value::Array(items) => {
            out.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                canonical_json(item, out);
            }
            out.update(b"]");
        }
        scalar => out.update(scalar.to_string().as_bytes()),
    }
}

type KeyRow = (
    Vec<u8>,
    String,
    Option<uuid::Uuid>,
    Option<i16>,
    Option<serde_json::Value>,
);

/// Claims the key; `Some(outcome)` when an earlier request already answered it.
async fn claim_key(
    conn: &mut PgConnection,
    req: &AuthorizeRequest,
) -> Result<Option<AuthorizeOutcome>> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (merchant_id, key, request_sha256, state)
         VALUES ($1, $2, $3, 'in_flight') ON CONFLICT (merchant_id, key) DO NOTHING",
    )
    .bind(req.merchant_id.as_uuid())
    .bind(req.idempotency_key.as_str())
    .bind(&req.request_hash[..])
    .execute(&mut *conn)
    .await
    .map_err(|e| match StoreError::from(e) {
        err if err.db_code().as_deref() == Some(pg_code::LOCK_NOT_AVAILABLE) => {
            StoreError::IdempotencyInFlight
        }
        err => err,
    })?;
    if claimed.rows_affected() == 1 {
        return Ok(None);
    }
    let (hash, state, payment, status, body): KeyRow = sqlx::query_as(
        "SELECT request_sha256, state, payment_id, response_status, response_body
         FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
    )
    .bind(req.merchant_id.as_uuid())
    .bind(req.idempotency_key.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if hash.as_slice() != req.request_hash.as_slice() {
        return Err(StoreError::IdempotencyKeyReused);
    }
    match (state.as_str(), status, body) {
        ("completed", Some(status), Some(body)) => {
            let status = u16::try_from(status)
                .map_err(|_| convert::corrupt("response status", &status.to_string()))?;
            Ok(Some(AuthorizeOutcome::Replayed {
                payment_id: payment.map(PaymentId::from_uuid),
                response: StoredResponse { status, body },
            }))
        }
        _ => Err(StoreError::IdempotencyInFlight),
    }
}

/// The merchant's limits for one asset: (max_per_payment, daily_max).
async fn load_limits(
    conn: &mut PgConnection,
    merchant: MerchantId,
    asset: &AssetId,
) -> Result<(Option<Amount>, Option<Amount>)> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT max_per_payment::text, daily_max::text FROM merchant_limits
         WHERE merchant_id = $1 AND asset = $2",
    )
    .bind(merchant.as_uuid())
    .bind(asset.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((per_payment, daily)) = row else {
        return Ok((None, None));
    };
    Ok((
        per_payment.as_deref().map(convert::amount).transpose()?,
        daily.as_deref().map(convert::amount).transpose()?,
    ))
}

/// Today's (UTC, database clock) volume plus `amount` must stay within `limit`. Callers hold the
/// merchant's account locks for `asset`, which serializes this read-then-insert per merchant.
async fn check_daily_limit(
    conn: &mut PgConnection,
    merchant: MerchantId,
    asset: &AssetId,
    amount: Amount,
    limit: Amount,
) -> Result<()> {
    let (used,): (String,) = sqlx::query_as(
        "SELECT coalesce(sum(amount), 0)::text FROM payments
         WHERE merchant_id = $1 AND asset = $2
           AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           AND status NOT IN ('cancelled', 'failed', 'expired')",
    )
    .bind(merchant.as_uuid())
    .bind(asset.to_string())
    .fetch_one(&mut *conn)
    .await?;
    match convert::amount(&used)?.checked_add(amount) {
        Some(total) if total <= limit => Ok(()),
        _ => Err(StoreError::LimitExceeded {
            which: LimitKind::Daily,
            asset: asset.clone(),
            limit,
        }),
    }
}

/// Open payments per merchant when the merchant has no cap of its own
/// (`merchants.max_open_payments`).
pub const DEFAULT_MAX_OPEN_PAYMENTS: u32 = 1000;

/// The merchant's open (not finished) payments must stay below its cap; a suspended merchant
/// authorizes nothing. Read under the merchant's account locks: every payment debits its
/// chain's native asset, so this is exact per chain (concurrent requests on different chains
/// can overshoot by their number).
async fn check_open_payments(conn: &mut PgConnection, merchant: MerchantId) -> Result<()> {
    let (open, cap, suspended): (i64, Option<i32>, bool) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM payments WHERE merchant_id = $1
                   AND status NOT IN ('settled', 'failed', 'cancelled', 'expired')),
                m.max_open_payments, m.suspended_at IS NOT NULL
         FROM merchants m WHERE m.id = $1",
    )
    .bind(merchant.as_uuid())
    .fetch_one(&mut *conn)
    .await?;
    if suspended {
        return Err(StoreError::MerchantSuspended);
    }
    let limit = cap
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(DEFAULT_MAX_OPEN_PAYMENTS);
    if open >= i64::from(limit) {
        return Err(StoreError::OpenPaymentsCap { limit });
    }
    Ok(())
}

/// Inserts the payment row from the quote's terms; returns created_at.
async fn insert_payment(
    conn: &mut PgConnection,
    id: PaymentId,
    quote: &Quote,
    req: &AuthorizeRequest,
) -> Result<OffsetDateTime> {
    let (created_at,): (OffsetDateTime,) = sqlx::query_as(
        "INSERT INTO payments (id, merchant_id, quote_id, status, version, chain, asset, amount,
             recipient, service_fee_bps, service_fee, network_fee_asset, network_fee, total_debit,
             gas_limit, max_fee_per_gas, max_priority_fee_per_gas, reference, metadata,
             idempotency_key, hot_wallet)
         SELECT $1, $2, q.id, 'authorized', 1, q.chain, q.asset, q.amount, q.recipient,
             q.service_fee_bps, q.service_fee, q.network_fee_asset, q.network_fee, q.total_debit,
             q.gas_limit, q.max_fee_per_gas, q.max_priority_fee_per_gas, $4, $5, $6, $7
         FROM quotes q WHERE q.id = $3
         RETURNING created_at",
    )
    .bind(id.as_uuid())
    .bind(req.merchant_id.as_uuid())
    .bind(quote.id.as_uuid())
    .bind(req.reference.as_deref())
    .bind(req.metadata.as_ref())
    .bind(req.idempotency_key.as_str())
    .bind(req.hot_wallet.map(|a| a.to_checksum(None)))
    .fetch_one(conn)
    .await?;
    Ok(created_at)
}

impl Store {
    /// Authorizes `req.quote_id` for `req.merchant_id` (see the module docs for the steps).
    /// `render` turns the new payment into the HTTP response to return and store for replays.
    pub async fn authorize_payment<F>(
        &self,
        req: &AuthorizeRequest,
        render: F,
    ) -> Result<AuthorizeOutcome>
    where
        F: FnOnce(&Payment) -> StoredResponse,
    {
        if req.reference.as_ref().is_some_and(|r| r.len() > 255) {
            return Err(StoreError::Invalid(
                "reference must be at most 255 bytes".into(),
            ));
        }
        let mut tx = self.pool.begin().await?;
        // Bounds every lock wait of this transaction (a duplicate request's wait above all);
        // `set_config(…, true)` = SET LOCAL, and the same round trip reads the database clock.
        let (_, now): (String, OffsetDateTime) =
            sqlx::query_as("SELECT set_config('lock_timeout', $1, true), now()")
                .bind(format!("{}ms", self.config.lock_timeout.as_millis()))
                .fetch_one(&mut *tx)
                .await?;
        if let Some(replayed) = claim_key(&mut tx, req).await? {
            return Ok(replayed);
        }
        let quote = select_quote(&mut tx, req.merchant_id, req.quote_id, true)
            .await?
            .ok_or(StoreError::NotFound)?;
        if quote.used_by_payment.is_some() {
            return Err(StoreError::QuoteAlreadyUsed);
        }
        if quote.expires_at <= now {
            return Err(StoreError::QuoteExpired);
        }
        let c = &quote.charges;
        let (per_payment, daily) = load_limits(&mut tx, req.merchant_id, &c.asset).await?;
        if let Some(limit) = per_payment.filter(|limit| c.amount > *limit) {
            let which = LimitKind::PerPayment;
            return Err(StoreError::LimitExceeded {
                which,
                asset: c.asset.clone(),
                limit,
            });
        }
        let debits = c.debits();
        let assets: Vec<AssetId> = debits.iter().map(|(a, _)| a.clone()).collect();
        let pairs =
            ledger::lock_merchant_accounts(&mut tx, req.merchant_id, &assets, false).await?;
        if let Some(limit) = daily {
            check_daily_limit(&mut tx, req.merchant_id, &c.asset, c.amount, limit).await?;
        }
        check_open_payments(&mut tx, req.merchant_id).await?;

        let id = PaymentId::new();
        let created_at = insert_payment(&mut tx, id, &quote, req).await?;
        ledger::place_holds(&mut tx, req.merchant_id, id, &debits, &pairs).await?;
        let data = serde_json::json!({ "quote_id": quote.id });
        let event = EventRow {
            payment: id,
            version: 1,
            event: EventKind::Authorize,
            from: PaymentStatus::Quoted,
            to: PaymentStatus::Authorized,
            reason: None,
            data: &data,
        };
        insert_event(&mut tx, &event).await?;
        meshpay_telemetry::span::record(meshpay_telemetry::span::attr::PAYMENT_ID, id.to_string());
        meshpay_telemetry::metrics::payment_transition(
            PaymentStatus::Quoted.as_str(),
            PaymentStatus::Authorized.as_str(),
        );
        let broadcast = serde_json::to_value(PaymentMessage::new(id))
            .map_err(|e| StoreError::Invalid(format!("broadcast message: {e}")))?;
        let messages = [
            NewOutboxMessage::new(topics::PAYMENTS_BROADCAST, broadcast),
            webhook_event(id, PaymentStatus::Authorized, 1),
        ];
        outbox::insert(&mut tx, Some(req.merchant_id), Some(id), &messages).await?;
        sqlx::query("UPDATE quotes SET used_by_payment = $2 WHERE id = $1")
            .bind(quote.id.as_uuid())
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;

        let payment = Payment {
            id,
            merchant_id: req.merchant_id,
            quote_id: quote.id,
            status: PaymentStatus::Authorized,
            version: 1,
            charges: quote.charges.clone(),
            recipient: quote.recipient,
            gas_limit: quote.gas_limit,
            max_fee_per_gas: quote.max_fee_per_gas,
            max_priority_fee_per_gas: quote.max_priority_fee_per_gas,
            reference: req.reference.clone(),
            metadata: req.metadata.clone(),
            hot_wallet: req.hot_wallet,
            tx_hash: None,
            nonce: None,
            block_hash: None,
            block_number: None,
            failure_reason: None,
            status_reason: None,
            network_fee_actual: None,
            created_at,
            updated_at: created_at,
        };
        let response = render(&payment);
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', payment_id = $3, response_status = $4,
                 response_body = $5, completed_at = now()
             WHERE merchant_id = $1 AND key = $2",
        )
        .bind(req.merchant_id.as_uuid())
        .bind(req.idempotency_key.as_str())
        .bind(id.as_uuid())
        .bind(i16::try_from(response.status).map_err(|_| StoreError::Invalid("HTTP status".into()))?)
        .bind(&response.body)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuthorizeOutcome::Created {
            payment: Box::new(payment),
            response,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_key_order_but_not_values() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"quote_id":"q","metadata":{"b":1,"a":[1,2]}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"metadata":{"a":[1,2],"b":1},"quote_id":"q"}"#).unwrap();
        let c: serde_json::Value =
            serde_json::from_str(r#"{"metadata":{"a":[2,1],"b":1},"quote_id":"q"}"#).unwrap();
        assert_eq!(request_fingerprint(&a), request_fingerprint(&b));
        assert_ne!(request_fingerprint(&a), request_fingerprint(&c));
        assert_ne!(
            request_fingerprint(&serde_json::json!("1")),
            request_fingerprint(&serde_json::json!(1))
        );
    }
}
