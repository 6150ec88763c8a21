//! `invoices-hint`: queue `payins-detect` → [`Detector::run_hinted`]: one detection run of the
//! message's chain, asked for by an address-activity hint (`confirm-webhook`). Nothing from the
//! hint's payload reaches here but the chain: the run re-reads the chain like the timer's.
//! Idempotent and coalesced: a message that a completed run (timer or queued) already covers
//! is acknowledged without a run, so duplicates and redeliveries cost one read; hints that
//! arrived during the run leave one follow-up message (output `detect`). A failed run fails
//! the invocation (retried, then poisoned); the timer covers the chain meanwhile.

use std::sync::Arc;

use meshpay_payins::detect::{Detector, HintedRun};
use meshpay_payins::hint::DetectMessage;
use meshpay_shim::{BoxError, Function, FunctionJson, Outputs, QueueInvocation};
use time::OffsetDateTime;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("invoices-hint");

/// Output binding name in function.json (queue `payins-detect`: the follow-up request).
pub const DETECT_OUTPUT: &str = "detect";

pub fn function(detector: Arc<Detector>) -> Function {
    Function::queue_with(FUNCTION, detector, handle)
}

pub async fn handle(
    detector: Arc<Detector>,
    invocation: QueueInvocation<DetectMessage>,
) -> Result<Outputs, BoxError> {
    let message = invocation.message;
    let first_delivery = invocation.metadata.dequeue_count.unwrap_or(1) <= 1;
    let outcome = detector
        .run_hinted(&message, OffsetDateTime::now_utc(), first_delivery)
        .await?;
    let outputs = Outputs::new();
    Ok(match outcome {
        HintedRun::NotAPayinChain => {
            outputs.log(format!("{}: not a pay-in chain, ignored", message.chain))
        }
        HintedRun::Covered => outputs.log(format!(
            "{}: a completed run covers this request",
            message.chain
        )),
        HintedRun::Ran { report, follow_up } => {
            tracing::info!(
                chain = %report.chain, scanned = ?report.scanned, recorded = report.recorded,
                finalized = report.finalized, credits = report.credits,
                reversals = report.reversals, parked = report.parked, failed = report.failed,
                "pay-in detection (hinted)"
            );
            let outputs = outputs.log(format!("{}: detection ran", message.chain));
            match follow_up {
                Some(next) => outputs.message(DETECT_OUTPUT, &next)?,
                None => outputs,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_json_reads_and_can_write_payins_detect() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.trigger().queue_name.as_deref(), Some("payins-detect"));
        let out = def.output(DETECT_OUTPUT).unwrap();
        assert_eq!(out.queue_name.as_deref(), Some("payins-detect"));
        assert_eq!(
            meshpay_payins::hint::DETECT_QUEUE,
            def.trigger().queue_name.as_deref().unwrap()
        );
    }

    #[test]
    fn a_message_of_another_version_is_refused_by_decode() {
        let current =
            serde_json::json!({"v": 1, "chain": "anvil", "requested_at": "2026-12-08T00:00:00Z"});
        assert!(meshpay_shim::decode_message::<DetectMessage>(current).is_ok());
        let future =
            serde_json::json!({"v": 2, "chain": "anvil", "requested_at": "2026-12-08T00:00:00Z"});
        assert!(meshpay_shim::decode_message::<DetectMessage>(future).is_err());
    }
}
