//! `reconcile`: a timer on `%RECONCILE_SCHEDULE%` (an app setting; e.g. `0 */5 * * * *`) running
//! [`Pipeline::reconcile`]: re-enqueues payments stuck without a pending message (authorized →
//! `broadcast`, broadcast without a confirm chain → `confirm`, confirmed → `settle`), reports
//! payments parked for review and every ledger invariant violation (logged at error level and
//! stored in `reconcile_runs`). With the broadcast step's relay it also heals hot wallets:
//! stored transactions the chain never saw are re-sent, lowest nonce first
//! (`Relay::heal_wallets`, bounded per run). A bounded run; timers are not retried, the next run
//! carries on.

use std::sync::Arc;

use meshpay_confirm::{ConfirmMessage, Pipeline, ReconcileReport};
use meshpay_domain::PaymentMessage;
use meshpay_relay::LazyRelay;
use meshpay_shim::{Function, FunctionJson, OutputError, Outputs, TimerInvocation};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("reconcile");

/// Output binding names in function.json.
pub const BROADCAST_OUTPUT: &str = "broadcast";
pub const CONFIRM_OUTPUT: &str = "confirm";
pub const SETTLE_OUTPUT: &str = "settle";

/// The function, sharing one pipeline and (for wallet healing) the broadcast step's relay;
/// `None`: no healing.
pub fn function(pipeline: Arc<Pipeline>, relay: Option<LazyRelay>) -> Function {
    Function::timer_with(
        FUNCTION,
        (pipeline, relay),
        |(pipeline, relay), invocation| async move {
            handle(&pipeline, relay.as_ref(), invocation).await
        },
    )
}

pub async fn handle(
    pipeline: &Pipeline,
    relay: Option<&LazyRelay>,
    invocation: TimerInvocation,
) -> Result<Outputs, OutputError> {
    if invocation.timer.is_past_due {
        tracing::info!("reconcile timer is past due: running now");
    }
    // The relay is built on first use (signers, Key Vault); if that fails the rest of the
    // run still happens.
    let mut unavailable = None;
    let ready = match relay {
        Some(lazy) => match lazy.get().await {
            Ok(relay) => Some(relay.as_ref()),
            Err(error) => {
                tracing::error!(%error, "relay unavailable: hot wallets not healed this run");
                unavailable = Some(error.to_string());
                None
            }
        },
        None => None,
    };
    let report = pipeline.reconcile_with(ready).await;
    let outputs = outputs_for(&report)?;
    Ok(match unavailable {
        Some(error) => outputs.log(format!("wallet healing unavailable: {error}")),
        None => outputs,
    })
}

/// One message per nudged payment, and a summary line for the host's log.
pub fn outputs_for(report: &ReconcileReport) -> Result<Outputs, OutputError> {
    let broadcast: Vec<PaymentMessage> = report
        .broadcast
        .iter()
        .map(|id| PaymentMessage::new(*id))
        .collect();
    let confirm: Vec<ConfirmMessage> = report
        .confirm
        .iter()
        .map(|id| ConfirmMessage::new(*id))
        .collect();
    let settle: Vec<PaymentMessage> = report
        .settle
        .iter()
        .map(|id| PaymentMessage::new(*id))
        .collect();
    let mut outputs = Outputs::new()
        .messages(BROADCAST_OUTPUT, &broadcast)?
        .messages(CONFIRM_OUTPUT, &confirm)?
        .messages(SETTLE_OUTPUT, &settle)?
        .log(format!(
            "reconcile: {} broadcast, {} confirm, {} settle re-enqueued; {} flagged, {} ledger violations; {} wallets healed",
            broadcast.len(),
            confirm.len(),
            settle.len(),
            report.flagged.len(),
            report.violations.len(),
            report.healed.len()
        ));
    for violation in &report.violations {
        outputs = outputs.log(format!("LEDGER DISCREPANCY: {violation}"));
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_domain::PaymentId;
    use serde_json::json;

    #[test]
    fn function_json_schedule_comes_from_an_app_setting() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(
            def.trigger().schedule.as_deref(),
            Some("%RECONCILE_SCHEDULE%")
        );
        for (binding, queue) in [
            (BROADCAST_OUTPUT, "payments-broadcast"),
            (CONFIRM_OUTPUT, "payments-confirm"),
            (SETTLE_OUTPUT, "payments-settle"),
        ] {
            assert_eq!(
                def.output(binding).unwrap().queue_name.as_deref(),
                Some(queue)
            );
        }
    }

    #[test]
    fn every_nudged_payment_gets_a_message_on_its_steps_queue() {
        let (a, b, c) = (PaymentId::new(), PaymentId::new(), PaymentId::new());
        let report = ReconcileReport {
            broadcast: vec![a],
            confirm: vec![b],
            settle: vec![c],
            violations: vec!["entries do not sum to zero for asset anvil:ETH".into()],
            ..ReconcileReport::default()
        };
        let outputs = outputs_for(&report).unwrap();
        let q = outputs.queues();
        assert_eq!(
            q.get(BROADCAST_OUTPUT).unwrap(),
            &[json!({"v": 1, "payment_id": a})]
        );
        assert_eq!(
            q.get(CONFIRM_OUTPUT).unwrap(),
            &[json!({"v": 1, "payment_id": b})]
        );
        assert_eq!(
            q.get(SETTLE_OUTPUT).unwrap(),
            &[json!({"v": 1, "payment_id": c})]
        );
        assert!(
            outputs
                .logs()
                .iter()
                .any(|l| l.contains("LEDGER DISCREPANCY"))
        );
    }

    #[test]
    fn a_quiet_run_writes_no_message() {
        let outputs = outputs_for(&ReconcileReport::default()).unwrap();
        assert!(outputs.queues().is_empty());
    }
}
