//! [`Pipeline::reconcile`]: the periodic sweep (function `reconcile`, a timer). A bounded run:
//! each scan takes at most `batch_limit` payments, and no new scan starts after `budget`. The
//! function runs the scans ([`Pipeline::reconcile_scans`]), then the broadcast step's wallet
//! healing within the same [`RunClock`], and records both ([`Pipeline::record_reconcile`]).
//!
//! | finds | does |
//! |---|---|
//! | `authorized` for longer than `stale_after` (broadcast message lost or poisoned) | re-enqueues a broadcast message (the broadcast step is idempotent per payment) |
//! | `broadcast` without an active confirm lease, unchecked for `stale_after` | re-enqueues a confirm message, which re-sends the stored raw bytes if the chain does not know them |
//! | `confirmed` for longer than `stale_after` (settle message lost or poisoned) | re-enqueues a settle message |
//! | payments parked for review | reports them |
//! | halted hot wallets (counter found behind the chain) | reports them until an operator resumes them |
//! | expired unused quotes | counts them (they hold nothing) |
//! | chain webhook ids past their retention | deletes them |
//! | the ledger invariants | reports every violation |
//! | outbox queue messages undelivered after `outbox_grace` | dispatches them (see `meshpay_store::Store::dispatch_outbox`); prunes dispatched rows after `outbox_retention` |
//!
//! The reconcile function adds the books against the chain ([`crate::books`]) to each run;
//! [`Pipeline::reconcile_books_now`] runs that part alone (`meshpay admin reconcile`).
//!
//! A payment is nudged at most once per `stale_after` per step (`reconcile_nudges`), so a step
//! that is down does not get one more message per payment on every run; one nudged
//! `flag_after_nudges` times is reported. Each run is written to `reconcile_runs`.

use std::time::Instant;

use meshpay_domain::PaymentId;
use meshpay_store::StoreError;
use meshpay_store::confirmations::NudgeStep;
use meshpay_store::topics;
use serde::Serialize;
use time::OffsetDateTime;

use crate::books::{BooksReport, DiscrepancyView};
use crate::{ConfirmError, Pipeline};

/// Most expired quotes counted per run (the count is informational).
const EXPIRED_QUOTES_CAP: u32 = 10_000;

/// A payment the run found needing attention, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub payment_id: PaymentId,
    pub reason: String,
}

/// A halted hot wallet (see `meshpay_store::transactions::halt_wallet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaltedWalletFlag {
    pub chain: String,
    pub wallet: meshpay_domain::Address,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
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
    /// Hot wallets that hand out no nonces until an operator resumes them.
    pub halted_wallets: Vec<HaltedWalletFlag>,
    pub expired_quotes: i64,
    pub webhooks_pruned: u64,
    /// Outbox queue messages dispatched by this run (their payments are in `broadcast`), and
    /// dispatched rows pruned.
    pub outbox_dispatched: u32,
    pub outbox_pruned: u64,
    /// The books against the chain (absent when the run did not check them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub books: Option<BooksReport>,
    /// Ledger invariant violations (empty when the ledger is sound).
    pub violations: Vec<String>,
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
            || !self.halted_wallets.is_empty()
            || !self.errors.is_empty()
            || self
                .books
                .as_ref()
                .is_some_and(|b| !b.found.is_empty() || !b.errors.is_empty())
    }
}

/// When a reconcile run started, and after when it starts no more work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunClock {
    pub started_at: OffsetDateTime,
    pub deadline: Instant,
}

impl Pipeline {
    /// Starts a run's clock: its deadline is the configured `budget` from now.
    pub fn start_reconcile(&self) -> RunClock {
        RunClock {
            started_at: OffsetDateTime::now_utc(),
            deadline: Instant::now() + self.config.reconcile.budget,
        }
    }

    /// One reconcile run: the scans, recorded in `reconcile_runs`.
    pub async fn reconcile(&self) -> ReconcileReport {
        let clock = self.start_reconcile();
        let mut report = self.reconcile_scans(clock).await;
        self.record_reconcile(clock, &mut report, &serde_json::Value::Null)
            .await;
        report
    }

    /// Opens the run's `reconcile_runs` row (its discrepancies name it); `None` when the
    /// database refused (the run still goes on and is recorded at the end).
    pub async fn open_reconcile_run(&self, clock: RunClock, report: &mut ReconcileReport) {
        match self.store.open_reconcile_run(clock.started_at).await {
            Ok(id) => report.run_id = Some(id),
            Err(error) => report.errors.push(format!("run not opened: {error}")),
        }
    }

    /// The books against the chain for a run opened with [`Pipeline::open_reconcile_run`]
    /// (skipped without a run id or past the deadline).
    pub async fn reconcile_books(&self, clock: RunClock, report: &mut ReconcileReport) {
        match report.run_id {
            Some(_) if Instant::now() > clock.deadline => report.skipped.push("books"),
            Some(run_id) => report.books = Some(self.check_books(run_id, clock.deadline).await),
            None => report.skipped.push("books"),
        }
    }

    /// One run of the books alone (and the ledger invariants), recorded; then every open
    /// discrepancy. Nothing is nudged: this is the operator's `meshpay admin reconcile`.
    pub async fn reconcile_books_now(&self) -> (ReconcileReport, Vec<DiscrepancyView>) {
        let clock = self.start_reconcile();
        let mut report = ReconcileReport::default();
        self.open_reconcile_run(clock, &mut report).await;
        self.reconcile_books(clock, &mut report).await;
        match self.store.check_ledger_invariants().await {
            Ok(()) => {}
            Err(StoreError::InvariantViolated(found)) => report.violations = found,
            Err(error) => report.errors.push(format!("ledger check: {error}")),
        }
        self.record_reconcile(clock, &mut report, &serde_json::Value::Null)
            .await;
        let open = match self.open_discrepancies().await {
            Ok(open) => open,
            Err(error) => {
                report.errors.push(format!("open discrepancies: {error}"));
                Vec::new()
            }
        };
        (report, open)
    }

    /// The scans of one run, not recorded yet. Never fails as a whole: a failing scan is
    /// recorded in `report.errors` and the others still run, so payments already nudged
    /// (recorded in the database) always get their messages.
    pub async fn reconcile_scans(&self, clock: RunClock) -> ReconcileReport {
        let deadline = clock.deadline;
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
        report
    }

    /// Writes the run to `reconcile_runs` (the report, with the fields of `other_passes`, a
    /// JSON object, merged in) and logs it.
    pub async fn record_reconcile(
        &self,
        clock: RunClock,
        report: &mut ReconcileReport,
        other_passes: &serde_json::Value,
    ) {
        let mut json = serde_json::to_value(&*report).unwrap_or_default();
        if let (Some(fields), Some(other)) = (json.as_object_mut(), other_passes.as_object()) {
            fields.extend(other.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let recorded = match report.run_id {
            Some(id) => self
                .store
                .finish_reconcile_run(id, &json, &report.violations)
                .await
                .map(|()| id),
            None => {
                self.store
                    .record_reconcile_run(clock.started_at, &json, &report.violations)
                    .await
            }
        };
        match recorded {
            Ok(id) => report.run_id = Some(id),
            Err(error) => report.errors.push(format!("run not recorded: {error}")),
        }
        self.log(report);
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
        for halted in self.store.halted_wallets(None).await? {
            report.halted_wallets.push(HaltedWalletFlag {
                chain: halted.chain,
                wallet: halted.address,
                reason: halted.reason,
                since: halted.since,
            });
        }
        report.expired_quotes = self.store.count_expired_quotes(EXPIRED_QUOTES_CAP).await?;
        report.webhooks_pruned = self
            .store
            .prune_chain_webhooks(self.config.reconcile.webhook_retention, limit)
            .await?;
        let c = &self.config.reconcile;
        for message in self
            .store
            .dispatch_outbox(topics::PAYMENTS_BROADCAST, c.outbox_grace, limit)
            .await?
        {
            report.outbox_dispatched += 1;
            if let Some(payment) = message.payment_id
                && !report.broadcast.contains(&payment)
            {
                report.broadcast.push(payment);
            }
        }
        report.outbox_pruned = self.store.prune_outbox(c.outbox_retention, limit).await?;
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
        for halted in &report.halted_wallets {
            tracing::error!(chain = %halted.chain, wallet = %halted.wallet, reason = %halted.reason,
                "hot wallet halted");
        }
        for flag in &report.flagged {
            tracing::error!(payment = %flag.payment_id, reason = %flag.reason, "payment needs attention");
        }
        tracing::info!(
            broadcast = report.broadcast.len(),
            confirm = report.confirm.len(),
            settle = report.settle.len(),
            flagged = report.flagged.len(),
            halted_wallets = report.halted_wallets.len(),
            violations = report.violations.len(),
            expired_quotes = report.expired_quotes,
            webhooks_pruned = report.webhooks_pruned,
            skipped = ?report.skipped,
            "reconcile run done"
        );
    }
}
