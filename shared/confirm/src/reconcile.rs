//! [`Pipeline::reconcile`]: the periodic sweep (function `reconcile`, a timer). A bounded run:
//! each scan takes at most `batch_limit` payments, and no new scan starts after `budget`.
//!
//! | finds | does |
//! |---|---|
//! | `authorized` for longer than `stale_after` (broadcast message lost or poisoned) | re-enqueues a broadcast message (the broadcast step is idempotent per payment) |
//! | `broadcast` without an active confirm lease, unchecked for `stale_after` | re-enqueues a confirm message, which re-sends the stored raw bytes if the chain does not know them |
//! | `confirmed` for longer than `stale_after` (settle message lost or poisoned) | re-enqueues a settle message |
//! | payments parked for review | reports them |
//! | expired unused quotes | counts them (they hold nothing) |
//! | chain webhook ids past their retention | deletes them |
//! | the ledger invariants | reports every violation |
//! | hot wallets whose counter is ahead of the chain's pending nonce (with a relay: [`Pipeline::reconcile_with`]) | re-sends their stored transactions, lowest nonce first (`Relay::heal_wallets`, at most [`HEAL_MAX_SENDS`] per run, last so it never starves the scans above) |
//!
//! A payment is nudged at most once per `stale_after` per step (`reconcile_nudges`), so a step
//! that is down does not get one more message per payment on every run; one nudged
//! `flag_after_nudges` times is reported. Each run is written to `reconcile_runs`.

use std::time::Instant;

use meshpay_domain::PaymentId;
use meshpay_relay::{HealBudget, Relay, WalletHeal};
use meshpay_store::StoreError;
use meshpay_store::confirmations::NudgeStep;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{ConfirmError, Pipeline};

/// Most expired quotes counted per run (the count is informational).
const EXPIRED_QUOTES_CAP: u32 = 10_000;

/// Most stored transactions re-sent per run by wallet healing, all wallets together (each send
/// is bounded by the RPC timeout; a healthy wallet costs one `eth_getTransactionCount`).
pub const HEAL_MAX_SENDS: u32 = 64;

/// A payment the run found needing attention, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub payment_id: PaymentId,
    pub reason: String,
}

/// What one run did and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Payments to re-enqueue, per step.
    pub broadcast: Vec<PaymentId>,
    pub confirm: Vec<PaymentId>,
    pub settle: Vec<PaymentId>,
    /// Payments an operator should look at.
    pub flagged: Vec<Flag>,
    pub expired_quotes: i64,
    pub webhooks_pruned: u64,
    /// Ledger invariant violations (empty when the ledger is sound).
    pub violations: Vec<String>,
    /// Hot wallets that wallet healing re-sent transactions for, or could not heal.
    pub healed: Vec<WalletHeal>,
    /// Scans skipped because the run's budget was spent.
    pub skipped: Vec<&'static str>,
    /// Scans that failed (database errors); the run went on without them.
    pub errors: Vec<String>,
    /// The `reconcile_runs` row.
    pub run_id: Option<i64>,
}

impl ReconcileReport {
    /// Whether anything needs an operator.
    pub fn has_discrepancies(&self) -> bool {
        !self.violations.is_empty()
            || !self.flagged.is_empty()
            || !self.errors.is_empty()
            || self.healed.iter().any(WalletHeal::is_problem)
    }
}

impl Pipeline {
    /// One reconcile run. Never fails as a whole: a failing scan is recorded in
    /// `report.errors` and the others still run, so payments already nudged (recorded in the
    /// database) always get their messages.
    pub async fn reconcile(&self) -> ReconcileReport {
        self.reconcile_with(None).await
    }

    /// [`Pipeline::reconcile`], then (with the broadcast step's `relay`) wallet healing within
    /// what is left of the budget.
    pub async fn reconcile_with(&self, relay: Option<&Relay>) -> ReconcileReport {
        let started_at = OffsetDateTime::now_utc();
        let deadline = Instant::now() + self.config.reconcile.budget;
        let mut report = ReconcileReport::default();
        for step in [NudgeStep::Broadcast, NudgeStep::Confirm, NudgeStep::Settle] {
            if Instant::now() > deadline {
                report.skipped.push(step.as_str());
            } else if let Err(error) = self.nudge(step, &mut report).await {
                report
                    .errors
                    .push(format!("{} scan: {error}", step.as_str()));
            }
        }
        if Instant::now() > deadline {
            report.skipped.push("review");
        } else if let Err(error) = self.housekeeping(&mut report).await {
            report.errors.push(format!("housekeeping: {error}"));
        }
        if Instant::now() > deadline {
            report.skipped.push("ledger");
        } else {
            match self.store.check_ledger_invariants().await {
                Ok(()) => {}
                Err(StoreError::InvariantViolated(found)) => report.violations = found,
                Err(error) => report.errors.push(format!("ledger check: {error}")),
            }
        }
        if let Some(relay) = relay {
            if Instant::now() > deadline {
                report.skipped.push("heal");
            } else {
                let budget = HealBudget {
                    deadline,
                    max_sends: HEAL_MAX_SENDS,
                };
                let mut healed = relay.heal_wallets(budget).await;
                healed.retain(WalletHeal::is_eventful);
                report.healed = healed;
            }
        }
        let json = serde_json::to_value(&report).unwrap_or_default();
        match self
            .store
            .record_reconcile_run(started_at, &json, &report.violations)
            .await
        {
            Ok(id) => report.run_id = Some(id),
            Err(error) => report.errors.push(format!("run not recorded: {error}")),
        }
        self.log(&report);
        report
    }

    /// Review flags, the expired-quote count and webhook-id pruning.
    async fn housekeeping(&self, report: &mut ReconcileReport) -> Result<(), ConfirmError> {
        let limit = self.config.reconcile.batch_limit;
        for (payment_id, reason) in self.store.payments_needing_review(limit).await? {
            report.flagged.push(Flag {
                payment_id,
                reason: reason.unwrap_or_else(|| "needs review".into()),
            });
        }
        report.expired_quotes = self.store.count_expired_quotes(EXPIRED_QUOTES_CAP).await?;
        report.webhooks_pruned = self
            .store
            .prune_chain_webhooks(self.config.reconcile.webhook_retention, limit)
            .await?;
        Ok(())
    }

    async fn nudge(
        &self,
        step: NudgeStep,
        report: &mut ReconcileReport,
    ) -> Result<(), ConfirmError> {
        let c = &self.config.reconcile;
        let nudged = self
            .store
            .nudge_stale(step, c.stale_after, c.batch_limit)
            .await?;
        for (payment_id, nudges) in nudged {
            if nudges >= c.flag_after_nudges {
                report.flagged.push(Flag {
                    payment_id,
                    reason: format!("still waiting for {} after {nudges} nudges", step.as_str()),
                });
            }
            let list = match step {
                NudgeStep::Broadcast => &mut report.broadcast,
                NudgeStep::Confirm => &mut report.confirm,
                NudgeStep::Settle => &mut report.settle,
            };
            list.push(payment_id);
        }
        Ok(())
    }

    fn log(&self, report: &ReconcileReport) {
        for error in &report.errors {
            tracing::error!(%error, "reconcile scan failed");
        }
        for violation in &report.violations {
            tracing::error!(%violation, "ledger invariant violated");
        }
        for heal in report.healed.iter().filter(|h| h.is_problem()) {
            tracing::error!(chain = %heal.chain, wallet = %heal.wallet, ?heal, "hot wallet not healed");
        }
        for flag in &report.flagged {
            tracing::error!(payment = %flag.payment_id, reason = %flag.reason, "payment needs attention");
        }
        tracing::info!(
            broadcast = report.broadcast.len(),
            confirm = report.confirm.len(),
            settle = report.settle.len(),
            flagged = report.flagged.len(),
            violations = report.violations.len(),
            wallets_healed = report.healed.len(),
            expired_quotes = report.expired_quotes,
            webhooks_pruned = report.webhooks_pruned,
            skipped = ?report.skipped,
            "reconcile run done"
        );
    }
}
