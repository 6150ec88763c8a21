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
//! - a body that is not a `PaymentMessage` (or an unknown version) → refused by the shim's
//!   decode before the handler runs, so the message ends in `payments-broadcast-poison` after
//!   the host's retries. Nothing is signed.

use std::sync::Arc;

use meshpay_domain::PaymentMessage;
use meshpay_relay::{
    BroadcastOutcome, Delivery, LazyRelay, Relay, RelayError, RelaySetup, RepriceOutcome,
};
use meshpay_shim::{Function, FunctionJson, OutputError, Outputs, QueueInvocation};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("broadcast");

/// The function over `broadcast`'s relay.
pub fn function(broadcast: Broadcast) -> Function {
    Function::queue_with(
        FUNCTION,
        broadcast,
        |broadcast: Broadcast, invocation| async move { broadcast.handle(invocation).await },
    )
}

/// Output binding (function.json) to `payments-confirm`.
pub const CONFIRM: &str = "confirm";

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
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
        let payment_id = invocation.message.payment_id;
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
            Ok(BroadcastOutcome::Repriced(RepriceOutcome::Replaced(replacement))) => {
                // The confirm step watches every attempt of the nonce; a check request starts
                // its polling chain again if none is active.
                Ok(Outputs::new()
                    .message(CONFIRM, &PaymentMessage::new(payment_id))?
                    .log(format!(
                        "{payment_id} replaced on nonce {}: {} -> {}{}",
                        replacement.nonce,
                        replacement.replaced,
                        replacement.tx_hash,
                        if replacement.cancellation {
                            " (cancellation)"
                        } else {
                            ""
                        }
                    )))
            }
            Ok(BroadcastOutcome::Repriced(outcome)) => {
                Ok(Outputs::new().log(format!("{payment_id} fee check: {outcome:?}")))
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_domain::PaymentId;
    use serde_json::json;

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

    #[test]
    fn a_message_of_another_version_is_refused_by_decode_before_the_relay() {
        let id = PaymentId::new();
        let current = json!({"v": 1, "payment_id": id});
        let decoded = meshpay_shim::decode_message::<PaymentMessage>(current).unwrap();
        assert_eq!(decoded, PaymentMessage::new(id));
        let future = json!({"v": 2, "payment_id": id});
        let error = meshpay_shim::decode_message::<PaymentMessage>(future).unwrap_err();
        assert!(error.to_string().contains("version 2"), "{error}");
    }
}
