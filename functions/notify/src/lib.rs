//! `notify`: the merchant webhook dispatcher, a timer on `%NOTIFY_SCHEDULE%` (an app setting;
//! every 5 s in `local.settings.json`, every second in tests).
//!
//! Each run fans new `webhook` outbox rows out to the merchants' endpoints and sends due
//! deliveries, bounded in batch size and run time (see `meshpay_webhooks::dispatch`). Timer
//! runs of one function never overlap on one host (Functions timers are singletons), and
//! concurrent dispatchers elsewhere are safe anyway: deliveries are claimed with
//! `FOR UPDATE SKIP LOCKED` and fan-out is serialized by an advisory lock. A failed run (the
//! database unreachable) fails the invocation; the next tick starts over, nothing is lost.

use std::sync::Arc;

use meshpay_shim::{Function, FunctionJson, Outputs, TimerInvocation};
use meshpay_webhooks::{DispatchError, Dispatcher};

const FUNCTION: FunctionJson = meshpay_shim::function_json!("notify");

/// The function, over a shared dispatcher.
pub fn function(dispatcher: Arc<Dispatcher>) -> Function {
    Function::timer_with(FUNCTION, dispatcher, run)
}

/// One run; its summary goes to the invocation's logs.
pub async fn run(
    dispatcher: Arc<Dispatcher>,
    invocation: TimerInvocation,
) -> Result<Outputs, DispatchError> {
    let report = dispatcher.run_once().await?;
    let f = report.fanned_out;
    if f.outbox_rows + report.attempted > 0 || report.pruned > 0 {
        tracing::info!(
            past_due = invocation.timer.is_past_due,
            events = f.events,
            deliveries_created = f.deliveries,
            skipped = f.skipped,
            attempted = report.attempted,
            succeeded = report.succeeded,
            retrying = report.retrying,
            failed = report.failed,
            endpoints_disabled = report.endpoints_disabled,
            stale = report.stale,
            pruned = report.pruned,
            "notify run"
        );
    }
    Ok(Outputs::new().log(format!(
        "notify: {} events fanned out, {} attempts ({} ok, {} retrying, {} failed)",
        f.events, report.attempted, report.succeeded, report.retrying, report.failed
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_json_is_a_timer_on_an_app_setting_without_outputs() {
        let def = FUNCTION.parse().unwrap();
        assert_eq!(def.name(), "notify");
        assert_eq!(def.trigger().schedule.as_deref(), Some("%NOTIFY_SCHEDULE%"));
    }
}
