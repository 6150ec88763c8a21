//! `reconcile`: a timer on `%RECONCILE_SCHEDULE%` (an app setting; e.g. `0 */5 * * * *`) running
//! two passes within one budget ([`run`]):
//!
//! 1. the confirm engine's scans ([`Pipeline::reconcile_scans`]): re-enqueues payments stuck
//!    without a pending message (authorized → `broadcast`, broadcast without a confirm chain →
//!    `confirm`, confirmed → `settle`), reports payments parked for review and every ledger
//!    invariant violation (logged at error level);
//! 2. with the broadcast step's relay, wallet healing ([`Relay::heal_wallets`]): hot wallets
//!    whose counter is ahead of the chain's pending nonce get their stored transactions re-sent,
//!    lowest nonce first, at most [`HEAL_MAX_SENDS`] per run; last, so it never starves the
//!    scans. Before it, stale nonce gaps of quiet wallets are filled with a 0-value
//!    self-transfer ([`Relay::fill_stale_gaps`], at most [`GAP_FILL_MAX`] per run).
//! 3. the books against the chain ([`Pipeline::reconcile_books`]): per hot wallet, nonce,
//!    balances and transactions meshpay did not send, read at a pinned final block, and a sample
//!    of settled payments re-checked; discrepancies stored (`meshpay admin discrepancies`).
//!    After healing: it only reads final blocks, and its cursor carries on next run.
//!
//! Both results are stored together in `reconcile_runs`. A bounded run; timers are not retried,
//! the next run carries on.

use std::sync::Arc;

use meshpay_confirm::{ConfirmMessage, Pipeline, ReconcileReport};
use meshpay_domain::PaymentMessage;
use meshpay_relay::{GapFillReport, HealBudget, LazyRelay, Relay, WalletHeal};
use meshpay_shim::{Function, FunctionJson, OutputError, Outputs, TimerInvocation};
use serde::Serialize;

const FUNCTION: FunctionJson = meshpay_shim::function_json!("reconcile");

/// Output binding names in function.json.
pub const BROADCAST_OUTPUT: &str = "broadcast";
pub const CONFIRM_OUTPUT: &str = "confirm";
pub const SETTLE_OUTPUT: &str = "settle";

/// Most stored transactions re-sent per run by wallet healing, all wallets together (each send
/// is bounded by the RPC timeout; a healthy wallet costs one `eth_getTransactionCount`).
pub const HEAL_MAX_SENDS: u32 = 64;

/// Most stale nonce gaps filled per run, all wallets together.
pub const GAP_FILL_MAX: u32 = 16;

/// What one run did and found: the scans' report, and the wallets healing touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub reconcile: ReconcileReport,
    /// Hot wallets that wallet healing re-sent transactions for, or could not heal.
    pub healed: Vec<WalletHeal>,
    /// Stale nonce gaps filled (or that could not be).
    pub gap_fills: Vec<GapFillReport>,
}

impl RunReport {
    /// Whether anything needs an operator.
    pub fn has_discrepancies(&self) -> bool {
        self.reconcile.has_discrepancies()
            || self.healed.iter().any(WalletHeal::is_problem)
            || self.gap_fills.iter().any(GapFillReport::is_problem)
    }
}

/// One run: the scans, then (with the broadcast step's `relay`) wallet healing within what is
/// left of the budget; recorded in `reconcile_runs` and logged.
pub async fn run(pipeline: &Pipeline, relay: Option<&Relay>) -> RunReport {
    let clock = pipeline.start_reconcile();
    let mut opened = ReconcileReport::default();
    pipeline.open_reconcile_run(clock, &mut opened).await;
    let mut reconcile = pipeline.reconcile_scans(clock).await;
    reconcile.run_id = opened.run_id;
    reconcile.errors.extend(opened.errors);
    let mut healed = Vec::new();
    let mut gap_fills = Vec::new();
    if let Some(relay) = relay {
        if std::time::Instant::now() > clock.deadline {
            reconcile.skipped.push("heal");
        } else {
            gap_fills = relay.fill_stale_gaps(GAP_FILL_MAX, clock.deadline).await;
            let budget = HealBudget {
                deadline: clock.deadline,
                max_sends: HEAL_MAX_SENDS,
            };
            healed = relay.heal_wallets(budget).await;
            healed.retain(WalletHeal::is_eventful);
        }
    }
    pipeline.reconcile_books(clock, &mut reconcile).await;
    let other_passes = serde_json::json!({ "healed": healed, "gap_fills": gap_fills });
    pipeline
        .record_reconcile(clock, &mut reconcile, &other_passes)
        .await;
    for heal in healed.iter().filter(|h| h.is_problem()) {
        tracing::error!(chain = %heal.chain, wallet = %heal.wallet, ?heal, "hot wallet not healed");
    }
    if relay.is_some() {
        tracing::info!(
            wallets_healed = healed.len(),
            gaps_filled = gap_fills.len(),
            "wallet healing done"
        );
    }
    RunReport {
        reconcile,
        healed,
        gap_fills,
    }
}

/// Quotes and completed idempotency keys are kept this long, then pruned.
pub const PRUNE_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// Rows of each pruned per run: a bounded delete; a backlog shrinks run by run.
pub const PRUNE_BATCH: u32 = 5_000;

/// Housekeeping after the run; a failure is logged and the next run tries again.
async fn prune(store: &meshpay_store::Store) {
    match store.prune_expired(PRUNE_RETENTION, PRUNE_BATCH).await {
        Ok(report) => tracing::info!(?report, "expired quotes and idempotency keys pruned"),
        Err(error) => tracing::warn!(%error, "pruning failed"),
    }
}

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
    let report = run(pipeline, ready).await;
    prune(pipeline.store()).await;
    let outputs = outputs_for(&report)?;
    Ok(match unavailable {
        Some(error) => outputs.log(format!("wallet healing unavailable: {error}")),
        None => outputs,
    })
}

/// One message per nudged payment, and a summary line for the host's log.
pub fn outputs_for(run: &RunReport) -> Result<Outputs, OutputError> {
    let report = &run.reconcile;
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
            "reconcile: {} broadcast, {} confirm, {} settle re-enqueued; {} flagged, {} ledger violations; {} wallets healed, {} nonce gaps filled; {} books discrepancies",
            broadcast.len(),
            confirm.len(),
            settle.len(),
            report.flagged.len(),
            report.violations.len(),
            run.healed.len(),
            run.gap_fills.len(),
            report.books.as_ref().map_or(0, |b| b.found.len())
        ));
    for violation in &report.violations {
        outputs = outputs.log(format!("LEDGER DISCREPANCY: {violation}"));
    }
    for found in report.books.iter().flat_map(|b| &b.found) {
        outputs = outputs.log(format!("BOOKS DISCREPANCY: {}", found.detail));
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
        let report = RunReport {
            reconcile: ReconcileReport {
                broadcast: vec![a],
                confirm: vec![b],
                settle: vec![c],
                violations: vec!["entries do not sum to zero for asset anvil:ETH".into()],
                ..ReconcileReport::default()
            },
            healed: Vec::new(),
            gap_fills: Vec::new(),
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
        let outputs = outputs_for(&RunReport::default()).unwrap();
        assert!(outputs.queues().is_empty());
    }
}
