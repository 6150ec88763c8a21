//! Operator state: merchant suspension and open-payment caps, the admin audit trail, and the
//! pruning of quotes and idempotency keys past their retention.

use std::time::Duration;

use meshpay_domain::MerchantId;
use time::OffsetDateTime;

use crate::Store;
use crate::error::{Result, StoreError};

/// A merchant's operator-set state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantControls {
    pub id: MerchantId,
    pub suspended_at: Option<OffsetDateTime>,
    pub suspended_reason: Option<String>,
    pub max_open_payments: Option<u32>,
}

/// One admin command as recorded before it runs.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Who: `MESHPAY_ADMIN_ACTOR`, else the OS user.
    pub actor: &'a str,
    /// What: the subcommand path (`api-key create`).
    pub command: &'a str,
    /// Its options, with secrets already left out.
    pub args: &'a serde_json::Value,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub actor: String,
    pub command: String,
    pub args: serde_json::Value,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub outcome: Option<String>,
    pub error: Option<String>,
}

/// What [`Store::prune_expired`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub quotes: u64,
    pub idempotency_keys: u64,
}

type ControlsRow = (Option<OffsetDateTime>, Option<String>, Option<i32>);

impl Store {
    /// Suspends the merchant (idempotent; the first time and reason stay): its keys stop
    /// authenticating, it authorizes nothing, and the broadcast step parks its payments.
    pub async fn suspend_merchant(&self, id: MerchantId, reason: &str) -> Result<MerchantControls> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 500 {
            return Err(StoreError::Invalid(
                "a suspension reason of 1 to 500 bytes is required".into(),
            ));
        }
        let row: Option<ControlsRow> = sqlx::query_as(
            "UPDATE merchants SET suspended_at = coalesce(suspended_at, now()),
                 suspended_reason = coalesce(suspended_reason, $2)
             WHERE id = $1 RETURNING suspended_at, suspended_reason, max_open_payments",
        )
        .bind(id.as_uuid())
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        controls(id, row)
    }

    /// Lifts a suspension (idempotent). Payments parked meanwhile stay parked until requeued.
    pub async fn resume_merchant(&self, id: MerchantId) -> Result<MerchantControls> {
        let row: Option<ControlsRow> = sqlx::query_as(
            "UPDATE merchants SET suspended_at = NULL, suspended_reason = NULL WHERE id = $1
             RETURNING suspended_at, suspended_reason, max_open_payments",
        )
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        controls(id, row)
    }

    /// Sets the merchant's cap on open payments (`None`: the default).
    pub async fn set_max_open_payments(
        &self,
        id: MerchantId,
        cap: Option<u32>,
    ) -> Result<MerchantControls> {
        let cap = cap
            .map(|c| {
                i32::try_from(c)
                    .ok()
                    .filter(|c| *c > 0)
                    .ok_or_else(|| StoreError::Invalid(format!("open payments cap {c}")))
            })
            .transpose()?;
        let row: Option<ControlsRow> = sqlx::query_as(
            "UPDATE merchants SET max_open_payments = $2 WHERE id = $1
             RETURNING suspended_at, suspended_reason, max_open_payments",
        )
        .bind(id.as_uuid())
        .bind(cap)
        .fetch_optional(&self.pool)
        .await?;
        controls(id, row)
    }

    /// Whether the merchant is suspended (an unknown merchant is not).
    pub async fn merchant_suspended(&self, id: MerchantId) -> Result<bool> {
        let suspended: Option<bool> =
            sqlx::query_scalar("SELECT suspended_at IS NOT NULL FROM merchants WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        Ok(suspended.unwrap_or(false))
    }

    /// Records an admin command before it runs; [`Store::finish_audit`] records its outcome. A
    /// row left without one means the process died or lost the database mid-command.
    pub async fn start_audit(&self, entry: &AuditEntry<'_>) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO admin_audit (actor, command, args) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(entry.actor)
        .bind(entry.command)
        .bind(entry.args)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// The outcome of audit row `id`: `error` is the failure's message, if it failed.
    pub async fn finish_audit(&self, id: i64, error: Option<&str>) -> Result<()> {
        sqlx::query(
            "UPDATE admin_audit SET finished_at = now(), outcome = $2, error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(if error.is_some() { "error" } else { "ok" })
        .bind(error.map(|e| e.replace('\0', "")))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest `limit` audit rows, newest first.
    pub async fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>> {
        type Row = (
            i64,
            String,
            String,
            serde_json::Value,
            OffsetDateTime,
            Option<OffsetDateTime>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, actor, command, args, started_at, finished_at, outcome, error
             FROM admin_audit ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, actor, command, args, started_at, finished_at, outcome, error)| AuditRecord {
                    id,
                    actor,
                    command,
                    args,
                    started_at,
                    finished_at,
                    outcome,
                    error,
                },
            )
            .collect())
    }

    /// Deletes quotes that expired unused more than `retention` ago and completed idempotency
    /// keys older than `retention`, at most `batch` rows of each (a bounded step; call again).
    /// A pruned key may be reused for a new request, as with any idempotency window; the
    /// payment keeps its `idempotency_key` column.
    pub async fn prune_expired(&self, retention: Duration, batch: u32) -> Result<PruneReport> {
        let secs = i64::try_from(retention.as_secs())
            .map_err(|_| StoreError::Invalid("retention out of range".into()))?;
        let quotes = sqlx::query(
            "DELETE FROM quotes WHERE id IN (
                 SELECT id FROM quotes WHERE used_by_payment IS NULL
                   AND expires_at < now() - make_interval(secs => $1)
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(secs as f64)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?
        .rows_affected();
        let idempotency_keys = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (merchant_id, key) IN (
                 SELECT merchant_id, key FROM idempotency_keys WHERE state = 'completed'
                   AND created_at < now() - make_interval(secs => $1)
                 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(secs as f64)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(PruneReport {
            quotes,
            idempotency_keys,
        })
    }
}

fn controls(id: MerchantId, row: Option<ControlsRow>) -> Result<MerchantControls> {
    let (suspended_at, suspended_reason, cap) = row.ok_or(StoreError::NotFound)?;
    Ok(MerchantControls {
        id,
        suspended_at,
        suspended_reason,
        max_open_payments: cap.and_then(|c| u32::try_from(c).ok()),
    })
}
