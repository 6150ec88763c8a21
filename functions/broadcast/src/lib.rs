//! `broadcast`: consumes `payments-broadcast` (`{"v":1,"payment_id":"pay_…"}`), turns the
//! authorized payment into exactly one signed transaction on chain (meshpay-relay), and writes
//! the same message to `payments-confirm` (output binding `confirm`) once a node has it.
//!
//! How each delivery ends (the queue delivers at least once; a process can die at any line):
//! - sent (first time, re-sent stored bytes, "already known", already mined) → confirm message;
//! - payment failed with a recorded reason (hold released) → completed, no confirm message;
//! - payment parked for review (the node refused, but its signed bytes may still be mined, e.g.
//!   "replacement transaction underpriced": nonce and hold kept) → completed, no confirm
//!   message; the reconcile timer reports it;
//! - unknown payment, or not `authorized`/`broadcast` → logged, completed, nothing changed;
//! - anything not finished (RPC down, node refused for now, database busy) → invocation error:
//!   the host redelivers and the next delivery resumes from the database;
//! - a body that is not a `PaymentMessage` (or an unknown version) → invocation error, so the
//!   message ends in `payments-broadcast-poison` after the host's retries. Nothing is signed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use meshpay_domain::PaymentMessage;
use meshpay_relay::{BroadcastOutcome, Delivery, LazyRelay, Relay, RelayError, RelaySetup};
use meshpay_shim::{FunctionJson, OutputError, Outputs, QueueInvocation};

pub const FUNCTION: FunctionJson = meshpay_shim::function_json!("broadcast");

/// Output binding (function.json) to `payments-confirm`.
pub const CONFIRM: &str = "confirm";

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error("unsupported message version {0} (expected {expected})", expected = PaymentMessage::VERSION)]
    UnsupportedVersion(u8),
    #[error("broadcast step is not configured: {0}")]
    Init(#[source] RelayError),
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// The handler's state: the relay, built on first use from its setup (so the process starts,
/// and serves every other function, before the database or the signers are reached), or given
/// (tests).
#[derive(Clone)]
pub struct Broadcast {
    relay: LazyRelay,
}

impl Broadcast {
    /// The relay `setup` describes, built at the first invocation; a failed build is retried
    /// by the next.
    pub fn lazy(setup: RelaySetup) -> Self {
        Broadcast {
            relay: LazyRelay::new(setup),
        }
    }

    pub fn with_relay(relay: Arc<Relay>) -> Self {
        Broadcast {
            relay: LazyRelay::ready(relay),
        }
    }

    /// The same relay, for the reconcile timer's wallet healing (one pool, one set of signers).
    pub fn shared_relay(&self) -> LazyRelay {
        self.relay.clone()
    }

    async fn relay(&self) -> Result<&Arc<Relay>, BroadcastError> {
        self.relay.get().await.map_err(BroadcastError::Init)
    }

    pub async fn handle(
        &self,
        invocation: QueueInvocation<PaymentMessage>,
    ) -> Result<Outputs, BroadcastError> {
        let message = invocation.message;
        if message.v != PaymentMessage::VERSION {
            tracing::error!(
                version = message.v,
                "broadcast message of an unknown version"
            );
            return Err(BroadcastError::UnsupportedVersion(message.v));
        }
        let payment_id = message.payment_id;
        let delivery = Delivery::new(invocation.metadata.dequeue_count);
        let relay = self.relay().await?;
        match relay.broadcast(payment_id, delivery).await {
            Ok(BroadcastOutcome::Sent(tx)) => {
                tracing::info!(
                    payment = %payment_id, tx_hash = %tx.tx_hash, nonce = tx.nonce,
                    from = %tx.from, ack = ?tx.ack, "payment broadcast"
                );
                Ok(Outputs::new()
                    .message(CONFIRM, &PaymentMessage::new(payment_id))?
                    .log(format!("{payment_id} broadcast as {}", tx.tx_hash)))
            }
            Ok(BroadcastOutcome::Failed { reason, .. }) => {
                tracing::warn!(payment = %payment_id, %reason, "payment failed at broadcast");
                Ok(Outputs::new().log(format!("{payment_id} failed: {reason}")))
            }
            Ok(BroadcastOutcome::Parked { reason, .. }) => {
                tracing::error!(payment = %payment_id, %reason, "payment parked for review at broadcast");
                Ok(Outputs::new().log(format!("{payment_id} parked for review: {reason}")))
            }
            Ok(BroadcastOutcome::Ignored { reason, .. }) => {
                tracing::warn!(payment = %payment_id, ?reason, "broadcast message ignored");
                Ok(Outputs::new().log(format!("{payment_id} ignored: {reason:?}")))
            }
            Err(error) => {
                tracing::warn!(
                    payment = %payment_id, dequeue_count = delivery.dequeue_count, %error,
                    "broadcast not finished; the message will be retried"
                );
                Err(error.into())
            }
        }
    }

    /// The function to register: `.queue(FUNCTION, Broadcast::lazy(setup).into_handler())`.
    pub fn into_handler(
        self,
    ) -> impl Fn(QueueInvocation<PaymentMessage>) -> HandlerFuture + Send + Sync + 'static {
        move |invocation| {
            let this = self.clone();
            Box::pin(async move { this.handle(invocation).await })
        }
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Outputs, BroadcastError>> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_domain::PaymentId;
    use meshpay_shim::{InvocationContext, QueueMetadata};

    #[test]
    fn function_json_consumes_broadcast_and_writes_confirm() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger().name, "message");
        assert_eq!(
            def.trigger().queue_name.as_deref(),
            Some("payments-broadcast")
        );
        assert_eq!(
            def.output(CONFIRM).unwrap().queue_name.as_deref(),
            Some("payments-confirm")
        );
    }

    /// A relay setup whose database does not exist (its pool connects on first use).
    fn unreachable_setup() -> RelaySetup {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://meshpay@127.0.0.1:1/unused")
            .unwrap();
        let chains = include_str!("../../../chains.dev.toml");
        RelaySetup {
            store: meshpay_store::Store::from_pool(pool),
            chains: Arc::new(meshpay_chain::ChainsConfig::from_toml_str(chains).unwrap()),
            signers: meshpay_relay::SignersFile::from_toml_str("").unwrap(),
            secrets: Default::default(),
            config: meshpay_relay::RelayConfig::default(),
        }
    }

    #[tokio::test]
    async fn unknown_message_version_fails_without_touching_the_relay() {
        // No database and no signers: were the relay needed, this would fail with Init instead.
        let handler = Broadcast::lazy(unreachable_setup()).into_handler();
        let invocation = QueueInvocation {
            message: PaymentMessage {
                v: 2,
                payment_id: PaymentId::new(),
            },
            metadata: QueueMetadata::default(),
            context: InvocationContext::for_function("broadcast"),
        };
        let error = handler(invocation).await.unwrap_err();
        assert!(
            matches!(error, BroadcastError::UnsupportedVersion(2)),
            "{error}"
        );
    }
}
