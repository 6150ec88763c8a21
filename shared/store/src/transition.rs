//! The one way a stored payment changes status: [`apply_transition`] (inside a caller's
//! transaction) or [`Store::transition_payment`] (its own transaction).
//!
//! One transaction: optimistic version check (`UPDATE … WHERE version = expected`), the domain's
//! [`transition`], the event's ledger effect (release or capture of the holds), an appended
//! `payment_events` row, a `webhook` outbox event plus the caller's outbox messages.
//!
//! Settling, and failing after the transaction was mined, resolve the holds with the network fee
//! the chain actually charged (carried by the event): that fee is posted and recorded on the
//! payment (`network_fee_actual`), the unused rest of the held fee released. A fee above the
//! hold is refused before anything is written ([`StoreError::NetworkFeeExceedsHold`]).

use meshpay_domain::{
    Address, B256, EventKind, HoldEffect, HoldResolution, MerchantId, PaymentEvent, PaymentId,
    PaymentStatus, ResolveError, transition,
};
use sqlx::PgConnection;

use crate::Store;
use crate::error::{Result, StoreError};
use crate::ledger::{self, HoldOutcome};
use crate::outbox::{self, NewOutboxMessage, topics};
use crate::payments::{Payment, select_payment, vanished};

/// Fields the pipeline fills in along with a status change (`None` = leave as is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentPatch {
    pub hot_wallet: Option<Address>,
    pub tx_hash: Option<B256>,
    pub nonce: Option<u64>,
    pub block_hash: Option<B256>,
    pub block_number: Option<u64>,
}

/// A requested status change.
#[derive(Debug, Clone)]
pub struct Transition {
    pub payment_id: PaymentId,
    /// `Some` for tenant-facing calls (another merchant's payment is NotFound); `None` for the
    /// pipeline.
    pub merchant_id: Option<MerchantId>,
    /// The version the caller read; a different current version is [`StoreError::Conflict`].
    pub expected_version: i64,
    pub event: PaymentEvent,
    pub patch: PaymentPatch,
    /// Stored with the event (tx hash, block, RPC error, ...).
    pub data: serde_json::Value,
    /// Extra messages to write atomically (e.g. the next step's queue message).
    pub outbox: Vec<NewOutboxMessage>,
}

impl Transition {
    pub fn new(payment_id: PaymentId, expected_version: i64, event: PaymentEvent) -> Self {
        Transition {
            payment_id,
            merchant_id: None,
            expected_version,
            event,
            patch: PaymentPatch::default(),
            data: serde_json::json!({}),
            outbox: Vec::new(),
        }
    }
}

/// The webhook event type for a status (`payment.settled`).
pub fn webhook_event_type(status: PaymentStatus) -> String {
    format!("payment.{status}")
}

pub(crate) fn webhook_event(
    payment: PaymentId,
    status: PaymentStatus,
    version: i64,
) -> NewOutboxMessage {
    NewOutboxMessage::new(
        topics::WEBHOOK,
        serde_json::json!({
            "type": webhook_event_type(status),
            "payment_id": payment,
            "status": status,
            "version": version,
        }),
    )
}

/// One `payment_events` row.
pub(crate) struct EventRow<'a> {
    pub payment: PaymentId,
    pub version: i64,
    pub event: EventKind,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    pub reason: Option<&'a str>,
    pub data: &'a serde_json::Value,
}

pub(crate) async fn insert_event(conn: &mut PgConnection, e: &EventRow<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO payment_events (payment_id, version, event, from_status, to_status, reason, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(e.payment.as_uuid())
    .bind(e.version)
    .bind(e.event.as_str())
    .bind(e.from.as_str())
    .bind(e.to.as_str())
    .bind(e.reason)
    .bind(e.data)
    .execute(conn)
    .await?;
    Ok(())
}

fn opt_i64(value: Option<u64>, what: &str) -> Result<Option<i64>> {
    value
        .map(|v| i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} too large"))))
        .transpose()
}

/// How `effect` resolves the payment's holds (`None`: they stay as they are).
fn hold_resolution(
    payment: &Payment,
    effect: HoldEffect,
) -> Result<Option<(HoldOutcome, HoldResolution)>> {
    let c = &payment.charges;
    let refused = |error: ResolveError| match error {
        ResolveError::NetworkFeeExceedsHold { charged, held } => {
            StoreError::NetworkFeeExceedsHold {
                payment: payment.id,
                charged,
                held,
            }
        }
        ResolveError::Inconsistent(asset) => StoreError::Corrupt(format!(
            "charges of {} do not add up in {asset}",
            payment.id
        )),
    };
    Ok(match effect {
        HoldEffect::Keep => None,
        // Only `authorize_payment` creates payments (and their holds); a stored payment is never
        // `quoted`, so `transition` has already refused `Authorize`.
        HoldEffect::Place => {
            return Err(StoreError::Corrupt(
                "hold placement outside authorize".into(),
            ));
        }
        HoldEffect::Release => Some((HoldOutcome::Released, c.release_all())),
        HoldEffect::ChargeNetworkFee { network_fee } => Some((
            HoldOutcome::FeeCharged,
            c.charge_network_fee(network_fee).map_err(refused)?,
        )),
        HoldEffect::Capture { network_fee } => Some((
            HoldOutcome::Captured,
            c.settle(network_fee).map_err(refused)?,
        )),
    })
}

/// Applies `t` inside the caller's transaction (so later steps can add their own writes, e.g. a
/// nonce allocation, atomically). Returns the updated payment.
pub async fn apply_transition(conn: &mut PgConnection, t: &Transition) -> Result<Payment> {
    let current = select_payment(conn, t.merchant_id, t.payment_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    if current.version != t.expected_version {
        return Err(StoreError::Conflict {
            expected: t.expected_version,
        });
    }
    let to = transition(current.status, &t.event)?;
    // Decided before any write: a refused fee leaves nothing behind.
    let resolution = hold_resolution(&current, t.event.hold_effect())?;
    let reason = t.event.failure_reason().map(|r| r.as_str());
    let status_reason = t.event.status_reason().map(|r| r.as_str());
    let updated = sqlx::query(
        "UPDATE payments SET status = $3, version = version + 1, updated_at = now(),
             failure_reason = coalesce($4, failure_reason),
             hot_wallet = coalesce($5, hot_wallet), tx_hash = coalesce($6, tx_hash),
             nonce = coalesce($7, nonce), block_hash = coalesce($8, block_hash),
             block_number = coalesce($9, block_number),
             network_fee_actual = coalesce($10::text::numeric, network_fee_actual),
             status_reason = $11
         WHERE id = $1 AND version = $2",
    )
    .bind(t.payment_id.as_uuid())
    .bind(t.expected_version)
    .bind(to.as_str())
    .bind(reason)
    .bind(t.patch.hot_wallet.map(|a| a.to_checksum(None)))
    .bind(t.patch.tx_hash.map(|h| h.to_string()))
    .bind(opt_i64(t.patch.nonce, "nonce")?)
    .bind(t.patch.block_hash.map(|h| h.to_string()))
    .bind(opt_i64(t.patch.block_number, "block number")?)
    .bind(t.event.network_fee_charged().map(|fee| fee.to_string()))
    .bind(status_reason)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::Conflict {
            expected: t.expected_version,
        });
    }
    // From here on the row is locked by our UPDATE: nobody else can change it until we commit.
    if let Some((outcome, resolution)) = &resolution {
        ledger::resolve_holds(conn, &current, *outcome, resolution).await?;
    }
    let version = t.expected_version + 1;
    let event = EventRow {
        payment: t.payment_id,
        version,
        event: t.event.kind(),
        from: current.status,
        to,
        reason: reason.or(status_reason),
        data: &t.data,
    };
    insert_event(conn, &event).await?;
    observe(&current, to, &t.patch);
    let mut messages = vec![webhook_event(t.payment_id, to, version)];
    messages.extend(t.outbox.iter().cloned());
    outbox::insert(
        conn,
        Some(current.merchant_id),
        Some(t.payment_id),
        &messages,
    )
    .await?;
    select_payment(conn, None, t.payment_id)
        .await?
        .ok_or_else(vanished)
}

/// The transition on the current span (the step's invocation) and in the metrics. Counted
/// when written: a caller's transaction that later rolls back has still counted it.
fn observe(current: &Payment, to: PaymentStatus, patch: &PaymentPatch) {
    use meshpay_telemetry::span::{attr, record};
    record(attr::PAYMENT_ID, current.id.to_string());
    record(attr::CHAIN_ID, current.chain().to_owned());
    record(attr::OUTCOME, to.as_str());
    if let Some(wallet) = patch.hot_wallet.or(current.hot_wallet) {
        record(attr::WALLET, wallet.to_checksum(None));
    }
    if let Some(nonce) = patch.nonce.or(current.nonce) {
        record(attr::NONCE, i64::try_from(nonce).unwrap_or(i64::MAX));
    }
    if let Some(hash) = patch.tx_hash.or(current.tx_hash) {
        record(attr::TX_HASH, hash.to_string());
    }
    meshpay_telemetry::metrics::payment_transition(current.status.as_str(), to.as_str());
    if to == PaymentStatus::Settled {
        let elapsed = time::OffsetDateTime::now_utc() - current.created_at;
        let elapsed = std::time::Duration::try_from(elapsed).unwrap_or_default();
        meshpay_telemetry::metrics::authorize_to_settled(current.chain(), elapsed);
    }
}

impl Store {
    /// Applies one status change in its own transaction (see [`apply_transition`]).
    pub async fn transition_payment(&self, t: &Transition) -> Result<Payment> {
        let mut tx = self.pool.begin().await?;
        let payment = apply_transition(&mut tx, t).await?;
        tx.commit().await?;
        Ok(payment)
    }

    /// Cancels the merchant's authorized payment and releases its hold. NotFound for another
    /// merchant's payment; IllegalTransition once it is past `authorized`; Conflict if it changed
    /// while we were cancelling (e.g. the broadcast step took it).
    pub async fn cancel_payment(&self, merchant_id: MerchantId, id: PaymentId) -> Result<Payment> {
        let mut tx = self.pool.begin().await?;
        let current = select_payment(&mut tx, Some(merchant_id), id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut t = Transition::new(id, current.version, PaymentEvent::Cancel);
        t.merchant_id = Some(merchant_id);
        let payment = apply_transition(&mut tx, &t).await?;
        tx.commit().await?;
        Ok(payment)
    }
}
