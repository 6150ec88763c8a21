//! Confirm hints between instances: a verified chain webhook names payments whose transaction
//! may be mined; every instance running one of their polling chains should check at once.
//! PostgreSQL `NOTIFY` carries the payment id to every listening instance (the one that took
//! the webhook included). A notification is only a wake-up: one lost (no listener, connection
//! down) costs latency, never correctness, since the chain's cadence still checks.

use meshpay_domain::PaymentId;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::Store;
use crate::error::Result;

/// The notification channel; the payload is a payment id.
pub const CONFIRM_HINT_CHANNEL: &str = "meshpay_confirm_hint";

/// This instance's subscription to confirm hints, on a connection of its own.
#[derive(Debug)]
pub struct ConfirmHints {
    listener: PgListener,
}

impl ConfirmHints {
    /// The next hinted payment. `Ok(None)`: the connection was lost (and re-established, so
    /// hints sent meanwhile are lost: the caller goes on). A payload that is not a payment id
    /// is skipped.
    pub async fn next(&mut self) -> Result<Option<PaymentId>> {
        loop {
            let Some(notification) = self.listener.try_recv().await? else {
                return Ok(None);
            };
            match Uuid::parse_str(notification.payload()) {
                Ok(id) => return Ok(Some(PaymentId::from_uuid(id))),
                Err(_) => {
                    tracing::warn!(
                        channel = CONFIRM_HINT_CHANNEL,
                        "confirm hint without a payment id ignored"
                    );
                }
            }
        }
    }
}

impl Store {
    /// Tells every listening instance that `payments` were hinted (one notification each,
    /// sent when this statement commits).
    pub async fn hint_confirmations(&self, payments: &[PaymentId]) -> Result<()> {
        if payments.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = payments.iter().map(PaymentId::as_uuid).collect();
        sqlx::query("SELECT pg_notify($1, id::text) FROM unnest($2::uuid[]) AS id")
            .bind(CONFIRM_HINT_CHANNEL)
            .bind(&ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Subscribes this instance to confirm hints. The subscription holds one of the pool's
    /// connections for as long as it lives; it takes its connections from the pool (not a pool
    /// of its own) so that a reconnection gets the pool's current credentials (an Entra token
    /// is renewed on the pool).
    pub async fn listen_confirm_hints(&self) -> Result<ConfirmHints> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CONFIRM_HINT_CHANNEL).await?;
        Ok(ConfirmHints { listener })
    }
}
