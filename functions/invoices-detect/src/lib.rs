//! `invoices-detect`: a timer on `%INVOICES_DETECT_SCHEDULE%` (an app setting; e.g.
//! `*/5 * * * * *`) running pay-in detection over every chain that takes pay-ins
//! ([`Detector::run`]): new transfers to deposit addresses, finality and reorgs, invoice
//! statuses and credits. Idempotent and bounded (one log range per chain per run); a failed
//! chain is logged and the next run carries on (timers are not retried).

use std::sync::Arc;

use meshpay_payins::detect::Detector;
use meshpay_shim::{Function, FunctionJson, OutputError, Outputs, TimerInvocation};
use time::OffsetDateTime;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("invoices-detect");

pub fn function(detector: Arc<Detector>) -> Function {
    Function::timer_with(FUNCTION, detector, |detector, invocation| async move {
        handle(&detector, invocation).await
    })
}

pub async fn handle(
    detector: &Detector,
    _invocation: TimerInvocation,
) -> Result<Outputs, OutputError> {
    for report in detector.run(OffsetDateTime::now_utc()).await {
        match report {
            Ok(report) => tracing::info!(
                chain = %report.chain,
                scanned = ?report.scanned,
                recorded = report.recorded,
                finalized = report.finalized,
                removed = report.removed,
                refreshed = report.refreshed,
                credits = report.credits,
                reversals = report.reversals,
                failed = report.failed,
                "pay-in detection"
            ),
            Err(error) => tracing::warn!(%error, "pay-in detection failed on a chain"),
        }
    }
    Ok(Outputs::new())
}
