//! `settle`: queue `payments-settle` → [`Pipeline::settle`]: the confirming block is checked to
//! still be canonical, then the store's `Settle` transition posts the settlement in one
//! transaction (hold captured; amount to outflow, service fee and the network fee the chain
//! charged to their accounts, the unused held network fee released). Idempotent by
//! payment id: a second delivery finds the payment settled and completes without a change.
//!
//! Output `confirm` (`payments-confirm`): only after a reorg took the confirming block away
//! (the payment went back to broadcast and polling starts again).

use std::sync::Arc;

use meshpay_confirm::{ConfirmError, Pipeline, SettleOutcome};
use meshpay_domain::PaymentMessage;
use meshpay_shim::{Function, FunctionJson, OutputError, Outputs, QueueInvocation};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("settle");

/// Output binding name in function.json (queue `payments-confirm`).
pub const CONFIRM_OUTPUT: &str = "confirm";

/// The function, sharing one pipeline. A message of another version is refused by its type
/// before `handle` runs.
pub fn function(pipeline: Arc<Pipeline>) -> Function {
    Function::queue_with(FUNCTION, pipeline, handle)
}

pub async fn handle(
    pipeline: Arc<Pipeline>,
    invocation: QueueInvocation<PaymentMessage>,
) -> Result<Outputs, ConfirmError> {
    let outcome = pipeline.settle(invocation.message.payment_id).await?;
    outputs_for(&outcome).map_err(|e| ConfirmError::Output(e.into()))
}

/// The messages and log line each outcome produces.
pub fn outputs_for(outcome: &SettleOutcome) -> Result<Outputs, OutputError> {
    let outputs = Outputs::new();
    Ok(match outcome {
        SettleOutcome::Settled { payment_id } => outputs.log(format!("{payment_id} settled")),
        SettleOutcome::AlreadySettled { payment_id } => {
            outputs.log(format!("{payment_id} was already settled: no change"))
        }
        SettleOutcome::Reorged {
            payment_id,
            next,
            detail,
        } => outputs
            .message(CONFIRM_OUTPUT, next)?
            .log(format!("{payment_id} back to broadcast: {detail}")),
        SettleOutcome::NeedsReview { payment_id, detail } => {
            outputs.log(format!("{payment_id} flagged for review: {detail}"))
        }
        SettleOutcome::Ignored { payment_id, status } => {
            outputs.log(format!("{payment_id}: nothing to settle ({status:?})"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_confirm::ConfirmMessage;
    use meshpay_domain::PaymentId;
    use serde_json::json;

    #[test]
    fn function_json_reads_payments_settle_and_can_write_payments_confirm() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger().queue_name.as_deref(), Some("payments-settle"));
        let out = def.output(CONFIRM_OUTPUT).unwrap();
        assert_eq!(out.queue_name.as_deref(), Some("payments-confirm"));
    }

    #[test]
    fn a_message_of_another_version_is_refused_by_decode() {
        let id = PaymentId::new();
        let current = json!({"v": 1, "payment_id": id});
        let decoded = meshpay_shim::decode_message::<PaymentMessage>(current).unwrap();
        assert_eq!(decoded, PaymentMessage::new(id));
        let future = json!({"v": 2, "payment_id": id});
        let error = meshpay_shim::decode_message::<PaymentMessage>(future).unwrap_err();
        assert!(error.to_string().contains("version"), "{error}");
    }

    #[test]
    fn only_a_reorg_emits_a_message() {
        let id = PaymentId::new();
        let settled = outputs_for(&SettleOutcome::Settled { payment_id: id }).unwrap();
        assert!(settled.queues().is_empty());
        let again = outputs_for(&SettleOutcome::AlreadySettled { payment_id: id }).unwrap();
        assert!(again.queues().is_empty());
        let review = outputs_for(&SettleOutcome::NeedsReview {
            payment_id: id,
            detail: "network fee above the hold".into(),
        })
        .unwrap();
        assert!(review.queues().is_empty());
        let reorged = outputs_for(&SettleOutcome::Reorged {
            payment_id: id,
            next: ConfirmMessage::new(id),
            detail: "block left the chain".into(),
        })
        .unwrap();
        assert_eq!(
            reorged.queues().get(CONFIRM_OUTPUT).unwrap(),
            &[json!({"v": 1, "payment_id": id})]
        );
    }
}
