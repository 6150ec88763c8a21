//! `confirm`: queue `payments-confirm` → [`Pipeline::confirm`] (the polling path: receipt,
//! finality, reverts, dropped transactions; see `meshpay-confirm`).
//!
//! Outputs: `settle` (`payments-settle`) once confirmed; `confirm` (`payments-confirm`) with the
//! chain's next message while not final (the "retry later" of this step: a fresh message, so
//! the dequeue count starts over, written after the invocation polled for up to
//! `MESHPAY_CONFIRM_INVOCATION_WAIT_MS`); `broadcast` (`payments-broadcast`) when re-sending
//! the stored bytes was refused and the broadcast step must decide, or the transaction is still
//! pending (the broadcast step re-prices it when due, or sends a requested cancellation). Errors (database) fail the
//! invocation: the host delivers the message again.

use std::sync::Arc;

use meshpay_confirm::{ConfirmError, ConfirmMessage, ConfirmOutcome, Pipeline, QueueDelivery};
use meshpay_domain::PaymentMessage;
use meshpay_shim::{Function, FunctionJson, OutputError, Outputs, QueueInvocation, QueueMetadata};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("confirm");

/// Output binding names in function.json.
pub const SETTLE_OUTPUT: &str = "settle";
pub const CONFIRM_OUTPUT: &str = "confirm";
pub const BROADCAST_OUTPUT: &str = "broadcast";

/// The function, sharing one pipeline. A message of another version is refused by its type
/// before `handle` runs.
pub fn function(pipeline: Arc<Pipeline>) -> Function {
    Function::queue_with(FUNCTION, pipeline, handle)
}

pub async fn handle(
    pipeline: Arc<Pipeline>,
    invocation: QueueInvocation<ConfirmMessage>,
) -> Result<Outputs, ConfirmError> {
    let message = invocation.message;
    tracing::debug!(
        payment = %message.payment_id, dequeue_count = ?invocation.metadata.dequeue_count,
        chain = ?message.chain(), "confirm message"
    );
    let delivery = delivery_of(&invocation.metadata);
    let outcome = pipeline.confirm_delivery(message, delivery).await?;
    // Our own message types always serialize; a failure would be a bug worth a retry.
    outputs_for(&outcome).map_err(|e| ConfirmError::Output(e.into()))
}

/// The queue message's id and dequeue count, when the host gave both (without them a
/// redelivery cannot be told from a duplicate and waits for the lease like one).
fn delivery_of(metadata: &QueueMetadata) -> Option<QueueDelivery> {
    Some(QueueDelivery {
        message_id: metadata.id.clone().filter(|id| !id.is_empty())?,
        dequeue_count: metadata.dequeue_count?,
    })
}

/// The messages and log line each outcome produces.
pub fn outputs_for(outcome: &ConfirmOutcome) -> Result<Outputs, OutputError> {
    let outputs = Outputs::new();
    Ok(match outcome {
        ConfirmOutcome::Confirmed {
            payment_id,
            tx_hash,
            block_number,
            ..
        } => outputs
            .message(SETTLE_OUTPUT, &PaymentMessage::new(*payment_id))?
            .log(format!(
                "{payment_id} confirmed: {tx_hash} in block {block_number}"
            )),
        ConfirmOutcome::AlreadyConfirmed { payment_id } => outputs
            .message(SETTLE_OUTPUT, &PaymentMessage::new(*payment_id))?
            .log(format!(
                "{payment_id} already confirmed: settle message sent again"
            )),
        ConfirmOutcome::Failed { payment_id, reason } => {
            outputs.log(format!("{payment_id} failed: {reason}"))
        }
        ConfirmOutcome::Cancelled {
            payment_id,
            tx_hash,
        } => outputs.log(format!(
            "{payment_id} cancelled: its cancellation {tx_hash} is final"
        )),
        ConfirmOutcome::Waiting {
            next,
            outcome,
            rebroadcast,
        } => {
            let mut outputs = outputs.message(CONFIRM_OUTPUT, next)?;
            if *rebroadcast {
                outputs =
                    outputs.message(BROADCAST_OUTPUT, &PaymentMessage::new(next.payment_id))?;
            }
            outputs.log(format!(
                "{} not final ({}): checking again",
                next.payment_id,
                outcome.as_str()
            ))
        }
        ConfirmOutcome::Parked {
            payment_id,
            outcome,
            reason,
        } => outputs.log(format!(
            "{payment_id} parked ({}): {reason}",
            outcome.as_str()
        )),
        ConfirmOutcome::Ignored { payment_id, reason } => {
            outputs.log(format!("{payment_id}: nothing to do ({reason:?})"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_confirm::{CheckOutcome, Ignored};
    use meshpay_domain::{B256, PaymentId};
    use serde_json::json;

    #[test]
    fn function_json_reads_payments_confirm_and_writes_settle_confirm_and_broadcast() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(
            def.trigger().queue_name.as_deref(),
            Some("payments-confirm")
        );
        for (binding, queue) in [
            (SETTLE_OUTPUT, "payments-settle"),
            (CONFIRM_OUTPUT, "payments-confirm"),
            (BROADCAST_OUTPUT, "payments-broadcast"),
        ] {
            let out = def.output(binding).unwrap();
            assert_eq!(out.queue_name.as_deref(), Some(queue));
            assert_eq!(out.connection.as_deref(), Some("AzureWebJobsStorage"));
        }
    }

    #[test]
    fn confirmed_payment_emits_one_settle_message() {
        let id = PaymentId::new();
        let outputs = outputs_for(&ConfirmOutcome::Confirmed {
            payment_id: id,
            tx_hash: B256::ZERO,
            block_number: 7,
            block_hash: B256::ZERO,
        })
        .unwrap();
        assert_eq!(
            outputs.queues().get(SETTLE_OUTPUT).unwrap(),
            &[json!({"v": 1, "payment_id": id})]
        );
        assert!(outputs.queues().get(CONFIRM_OUTPUT).is_none());
    }

    #[test]
    fn waiting_payment_re_enqueues_its_chain_message_and_nothing_else() {
        let id = PaymentId::new();
        let poller = uuid::Uuid::new_v4();
        let outputs = outputs_for(&ConfirmOutcome::Waiting {
            next: ConfirmMessage::chained(id, poller, 4),
            outcome: CheckOutcome::NotFinal,
            rebroadcast: false,
        })
        .unwrap();
        assert_eq!(
            outputs.queues().get(CONFIRM_OUTPUT).unwrap(),
            &[json!({"v": 1, "payment_id": id, "poller": poller, "seq": 4})]
        );
        assert!(outputs.queues().get(SETTLE_OUTPUT).is_none());
        assert!(outputs.queues().get(BROADCAST_OUTPUT).is_none());
    }

    #[test]
    fn refused_resend_also_hands_the_payment_to_the_broadcast_step() {
        let id = PaymentId::new();
        let outputs = outputs_for(&ConfirmOutcome::Waiting {
            next: ConfirmMessage::chained(id, uuid::Uuid::new_v4(), 2),
            outcome: CheckOutcome::NotFinal,
            rebroadcast: true,
        })
        .unwrap();
        assert_eq!(
            outputs.queues().get(BROADCAST_OUTPUT).unwrap(),
            &[json!({"v": 1, "payment_id": id})]
        );
    }

    #[test]
    fn ignored_failed_and_parked_outcomes_emit_no_message() {
        let id = PaymentId::new();
        for outcome in [
            ConfirmOutcome::Ignored {
                payment_id: id,
                reason: Ignored::ChainActive,
            },
            ConfirmOutcome::Failed {
                payment_id: id,
                reason: "reverted".into(),
            },
        ] {
            let outputs = outputs_for(&outcome).unwrap();
            assert!(outputs.queues().is_empty());
            assert_eq!(outputs.logs().len(), 1);
        }
    }
}
