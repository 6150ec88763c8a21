//! The reconcile timer's scans: nudges claimed atomically, review and quote counts, the run log.

use std::time::Duration;

use meshpay_domain::{PaymentId, PaymentStatus};
use time::OffsetDateTime;
use uuid::Uuid;

use super::ms;
use crate::Store;
use crate::error::Result;

/// The pipeline step a reconcile nudge re-enqueues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NudgeStep {
    /// `authorized` payments not broadcast in time.
    Broadcast,
    /// `broadcast` (or `stalled`, `cancelling`) payments without an active confirm chain.
    Confirm,
    /// `confirmed` payments not settled in time.
    Settle,
}

impl NudgeStep {
    pub const fn as_str(self) -> &'static str {
        match self {
            NudgeStep::Broadcast => "broadcast",
            NudgeStep::Confirm => "confirm",
            NudgeStep::Settle => "settle",
        }
    }

    /// The status a payment waiting for this step is in.
    pub const fn status(self) -> PaymentStatus {
        match self {
            NudgeStep::Broadcast => PaymentStatus::Authorized,
            NudgeStep::Confirm => PaymentStatus::Broadcast,
            NudgeStep::Settle => PaymentStatus::Confirmed,
        }
    }
}

impl Store {
    /// Claims up to `limit` payments waiting for `step` for longer than `older_than` and not
    /// nudged within `older_than` either, records the nudge, and returns them with their nudge
    /// count (oldest first). Confirm nudges skip payments with an active polling lease; confirm
    /// and settle nudges skip those waiting for an operator (`needs_review`).
    pub async fn nudge_stale(
        &self,
        step: NudgeStep,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<(PaymentId, i32)>> {
        let rows: Vec<(Uuid, i32)> = sqlx::query_as(
            "WITH due AS (
                 SELECT p.id FROM payments p
                   LEFT JOIN reconcile_nudges n ON n.payment_id = p.id AND n.step = $1
                   LEFT JOIN payment_confirmations c ON c.payment_id = p.id
                  WHERE (p.status = $2
                         OR ($1 = 'confirm' AND p.status IN ('stalled', 'cancelling')))
                    AND greatest(p.updated_at, coalesce(c.last_checked_at, p.updated_at))
                        < now() - $3 * interval '1 millisecond'
                    AND (n.last_nudged_at IS NULL
                         OR n.last_nudged_at < now() - $3 * interval '1 millisecond')
                    AND ($1 <> 'confirm' OR c.payment_id IS NULL OR (
                         (c.poller IS NULL OR c.lease_until < now())
                         AND c.last_outcome IS DISTINCT FROM 'needs_review'))
                    AND ($1 <> 'settle' OR c.last_outcome IS DISTINCT FROM 'needs_review')
                  ORDER BY p.updated_at LIMIT $4
             )
             INSERT INTO reconcile_nudges (payment_id, step)
             SELECT id, $1 FROM due
             ON CONFLICT (payment_id, step) DO UPDATE
                 SET nudges = reconcile_nudges.nudges + 1, last_nudged_at = now()
             RETURNING payment_id, nudges",
        )
        .bind(step.as_str())
        .bind(step.status().as_str())
        .bind(ms(older_than)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, n)| (PaymentId::from_uuid(id), n))
            .collect())
    }

    /// In-flight payments an operator must look at (the receipt did not prove the transfer, or
    /// the chain charged more network fee than was held), at most `limit`, with the reason.
    pub async fn payments_needing_review(
        &self,
        limit: u32,
    ) -> Result<Vec<(PaymentId, Option<String>)>> {
        let rows: Vec<(Uuid, Option<String>)> = sqlx::query_as(
            "SELECT c.payment_id, c.last_detail FROM payment_confirmations c
               JOIN payments p ON p.id = c.payment_id
              WHERE c.last_outcome = 'needs_review'
                AND p.status IN ('broadcast', 'stalled', 'cancelling', 'confirmed')
              ORDER BY c.payment_id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, detail)| (PaymentId::from_uuid(id), detail))
            .collect())
    }

    /// Unused quotes past their expiry (informational: they hold nothing), counted up to `cap`.
    pub async fn count_expired_quotes(&self, cap: u32) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM (SELECT 1 FROM quotes
               WHERE used_by_payment IS NULL AND expires_at < now() LIMIT $1) q",
        )
        .bind(i64::from(cap))
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Appends a reconcile run to `reconcile_runs`.
    pub async fn record_reconcile_run(
        &self,
        started_at: OffsetDateTime,
        report: &serde_json::Value,
        violations: &[String],
    ) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO reconcile_runs (started_at, report, violations) VALUES ($1, $2, $3)
             RETURNING id",
        )
        .bind(started_at)
        .bind(report)
        .bind(violations)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Opens a reconcile run's row before its checks (their discrepancies name it); the run
    /// fills it in with [`Store::finish_reconcile_run`].
    pub async fn open_reconcile_run(&self, started_at: OffsetDateTime) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO reconcile_runs (started_at, report) VALUES ($1, '{}'::jsonb) RETURNING id",
        )
        .bind(started_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Writes the report of a run opened with [`Store::open_reconcile_run`].
    pub async fn finish_reconcile_run(
        &self,
        id: i64,
        report: &serde_json::Value,
        violations: &[String],
    ) -> Result<()> {
        sqlx::query(
            "UPDATE reconcile_runs SET report = $2, violations = $3, finished_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(report)
        .bind(violations)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
