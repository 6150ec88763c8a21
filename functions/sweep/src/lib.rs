//! `sweep`: a timer on `%SWEEP_SCHEDULE%` (an app setting; e.g. `*/5 * * * * *`) moving what
//! final invoices received from their deposit addresses to the treasury, batched per chain
//! ([`Sweeper::run`]). A timer rather than a queue: the due work is derived from the database
//! each run (final payments no sweep covers, the sweep in flight), so there is no message to
//! lose, redeliver or poison, batching is natural, and a run that dies anywhere is resumed by
//! the next one. Timers are not retried: a failed chain is logged and the next run carries on.

use std::sync::Arc;

use meshpay_payins::sweep::Sweeper;
use meshpay_shim::{Function, FunctionJson, OutputError, Outputs, TimerInvocation};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("sweep");

pub fn function(sweeper: Arc<Sweeper>) -> Function {
    Function::timer_with(FUNCTION, sweeper, |sweeper, invocation| async move {
        handle(&sweeper, invocation).await
    })
}

pub async fn handle(
    sweeper: &Sweeper,
    _invocation: TimerInvocation,
) -> Result<Outputs, OutputError> {
    for report in sweeper.run().await {
        match report {
            Ok(report) => tracing::info!(
                chain = %report.chain,
                planned = ?report.planned,
                finished = ?report.finished,
                sent = ?report.sent,
                waiting = ?report.waiting,
                "sweep run"
            ),
            Err(error) => tracing::warn!(%error, "sweep run failed on a chain"),
        }
    }
    Ok(Outputs::new())
}
