//! The confirm, settle and reconcile steps' own state (see `migrations/*_confirm.sql`):
//!
//! - the per-payment confirm polling lease ([`Store::claim_confirm_poller`]) and what the chain
//!   was last seen to say ([`Store::record_confirm_check`], [`finish_confirm_chain`]);
//! - chain webhook replay dedupe ([`Store::record_chain_webhook`]) and the tx-hash → payment
//!   lookup a webhook hint needs ([`Store::payments_by_tx_hashes`]);
//! - reconcile scans that claim a "nudge" atomically ([`Store::nudge_stale`]) and the run log.
//!
//! # The polling lease
//! A confirm message that finds its transaction not yet deep enough writes a fresh message for
//! itself. Only the holder of the payment's lease may do so: a message carries `(poller, seq)`;
//! a claim succeeds when it continues the current chain (`poller` matches and `seq` is the one
//! expected, which each claim advances, so a duplicate delivery is refused), or when no chain is
//! active (none yet, ended, or its lease expired: its process died). Everything else (webhook
//! hints, reconcile nudges, duplicates) completes without starting a second chain.

use std::time::Duration;

use meshpay_domain::{B256, PaymentId, PaymentStatus};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};

/// What a confirm check concluded (`payment_confirmations.last_outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckOutcome {
    /// No receipt; the node still has the transaction (pending).
    NotMined,
    /// No receipt and the node did not know the transaction: the stored bytes were re-sent.
    Resent,
    /// Mined, not yet deep enough (or not yet finalized).
    NotFinal,
    Confirmed,
    Reverted,
    /// Mined with status 1 but the receipt does not prove the transfer: an operator decides.
    NeedsReview,
    /// The chain of messages gave up after its bounded total wait (reconcile starts another).
    Stalled,
    RpcError,
    /// A confirmed payment's block left the canonical chain (settle noticed).
    Reorged,
}

impl CheckOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::NotMined => "not_mined",
            CheckOutcome::Resent => "resent",
            CheckOutcome::NotFinal => "not_final",
            CheckOutcome::Confirmed => "confirmed",
            CheckOutcome::Reverted => "reverted",
            CheckOutcome::NeedsReview => "needs_review",
            CheckOutcome::Stalled => "stalled",
            CheckOutcome::RpcError => "rpc_error",
            CheckOutcome::Reorged => "reorged",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        const ALL: [CheckOutcome; 9] = [
            CheckOutcome::NotMined,
            CheckOutcome::Resent,
            CheckOutcome::NotFinal,
            CheckOutcome::Confirmed,
            CheckOutcome::Reverted,
            CheckOutcome::NeedsReview,
            CheckOutcome::Stalled,
            CheckOutcome::RpcError,
            CheckOutcome::Reorged,
        ];
        ALL.into_iter()
            .find(|o| o.as_str() == text)
            .ok_or_else(|| convert::corrupt("confirm outcome", text))
    }
}

/// Where a transaction was seen mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inclusion {
    pub tx_hash: B256,
    pub block_number: u64,
    pub block_hash: B256,
}

/// A successful lease claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmClaim {
    pub poller: Uuid,
    /// The `seq` the chain's next message must carry.
    pub next_seq: i32,
    /// When this chain started (for its bounded total wait).
    pub chain_started_at: OffsetDateTime,
    /// True when this claim started a new chain (no token, or took over an expired lease).
    pub new_chain: bool,
    /// The inclusion recorded by the previous check, if it saw one.
    pub last_seen: Option<Inclusion>,
}

/// One check's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    pub outcome: CheckOutcome,
    /// Why (kept as the payment's reason when the chain ends); at most 1000 chars are stored.
    pub detail: Option<String>,
    /// What the check saw (`None`: not mined), replacing the previous observation.
    pub seen: Option<Inclusion>,
    pub reorg_seen: bool,
    pub resent: bool,
}

impl CheckRecord {
    pub fn new(outcome: CheckOutcome) -> Self {
        CheckRecord {
            outcome,
            detail: None,
            seen: None,
            reorg_seen: false,
            resent: false,
        }
    }
}

/// A payment's confirm state (`payment_confirmations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationState {
    pub payment_id: PaymentId,
    /// The active chain, if any, and until when its lease runs.
    pub poller: Option<Uuid>,
    pub lease_until: Option<OffsetDateTime>,
    pub total_checks: i64,
    pub last_checked_at: Option<OffsetDateTime>,
    pub last_outcome: Option<CheckOutcome>,
    pub last_detail: Option<String>,
    pub last_seen: Option<Inclusion>,
    pub reorgs_seen: i32,
    pub resends: i32,
}

/// The pipeline step a reconcile nudge re-enqueues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NudgeStep {
    /// `authorized` payments not broadcast in time.
    Broadcast,
    /// `broadcast` payments without an active confirm chain.
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

fn ms(d: Duration) -> Result<i64> {
    i64::try_from(d.as_millis()).map_err(|_| StoreError::Invalid("duration too large".into()))
}

fn truncated(detail: Option<&str>) -> Option<String> {
    detail.map(|d| d.chars().take(1000).collect())
}

fn inclusion_of(
    tx_hash: Option<String>,
    number: Option<i64>,
    hash: Option<String>,
) -> Result<Option<Inclusion>> {
    match (tx_hash, number, hash) {
        (Some(tx), Some(number), Some(hash)) => Ok(Some(Inclusion {
            tx_hash: convert::b256(&tx)?,
            block_number: convert::u64_from_i64(number, "block_number")?,
            block_hash: convert::b256(&hash)?,
        })),
        _ => Ok(None),
    }
}

fn seen_columns(seen: Option<&Inclusion>) -> Result<(Option<String>, Option<i64>, Option<String>)> {
    let Some(s) = seen else {
        return Ok((None, None, None));
    };
    let number = i64::try_from(s.block_number)
        .map_err(|_| StoreError::Invalid("block number too large".into()))?;
    Ok((
        Some(s.tx_hash.to_string()),
        Some(number),
        Some(s.block_hash.to_string()),
    ))
}

/// Ends the payment's polling chain inside the caller's transaction (with the status change the
/// check decided), recording the final check. A no-op for a chain that no longer holds the
/// lease (the status change itself is guarded by the payment's version).
pub async fn finish_confirm_chain(
    conn: &mut PgConnection,
    payment: PaymentId,
    poller: Uuid,
    record: &CheckRecord,
) -> Result<()> {
    write_check(conn, payment, poller, record, None).await
}

async fn write_check(
    conn: &mut PgConnection,
    payment: PaymentId,
    poller: Uuid,
    record: &CheckRecord,
    extend: Option<Duration>,
) -> Result<()> {
    let (tx_hash, number, hash) = seen_columns(record.seen.as_ref())?;
    let extend_ms = extend.map(ms).transpose()?;
    sqlx::query(
        "UPDATE payment_confirmations SET
             total_checks = total_checks + 1, last_checked_at = now(),
             last_outcome = $3, last_detail = $4,
             tx_hash = $5, block_number = $6, block_hash = $7,
             reorgs_seen = reorgs_seen + CASE WHEN $8 THEN 1 ELSE 0 END,
             resends = resends + CASE WHEN $9 THEN 1 ELSE 0 END,
             poller = CASE WHEN $10::bigint IS NULL THEN NULL ELSE poller END,
             lease_until = CASE WHEN $10::bigint IS NULL THEN NULL
                                ELSE now() + $10 * interval '1 millisecond' END,
             updated_at = now()
         WHERE payment_id = $1 AND poller = $2",
    )
    .bind(payment.as_uuid())
    .bind(poller)
    .bind(record.outcome.as_str())
    .bind(truncated(record.detail.as_deref()))
    .bind(tx_hash)
    .bind(number)
    .bind(hash)
    .bind(record.reorg_seen)
    .bind(record.resent)
    .bind(extend_ms)
    .execute(conn)
    .await?;
    Ok(())
}

type ClaimRow = (
    Uuid,
    i32,
    OffsetDateTime,
    bool,
    Option<String>,
    Option<i64>,
    Option<String>,
);

type StateRow = (
    Option<Uuid>,
    Option<OffsetDateTime>,
    i64,
    Option<OffsetDateTime>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    i32,
    i32,
);

impl Store {
    /// Claims the payment's confirm polling lease for `lease` (see the module docs).
    /// `message`: the `(poller, seq)` a chain message carries, `None` for a message that may
    /// only start a chain. `None` back: another chain holds the lease (or this is a duplicate).
    pub async fn claim_confirm_poller(
        &self,
        payment: PaymentId,
        message: Option<(Uuid, i32)>,
        lease: Duration,
    ) -> Result<Option<ConfirmClaim>> {
        let (token, seq) = match message {
            Some((token, seq)) => (Some(token), Some(seq)),
            None => (None, None),
        };
        // Continuing: same token, expected seq, lease still valid. Starting: no active lease.
        // The previous observation is returned as it was before this statement.
        let row: Option<ClaimRow> = sqlx::query_as(
            "WITH prev AS (
                 SELECT tx_hash, block_number, block_hash FROM payment_confirmations
                  WHERE payment_id = $1
             ), claimed AS (
                 INSERT INTO payment_confirmations (payment_id, poller, poller_seq, lease_until,
                                                    chain_started_at)
                 VALUES ($1, gen_random_uuid(), 1, now() + $4 * interval '1 millisecond', now())
                 ON CONFLICT (payment_id) DO UPDATE SET
                     poller = CASE WHEN payment_confirmations.poller = $2
                                    AND payment_confirmations.poller_seq = $3
                                    AND payment_confirmations.lease_until >= now()
                                   THEN payment_confirmations.poller ELSE gen_random_uuid() END,
                     chain_started_at = CASE WHEN payment_confirmations.poller = $2
                                    AND payment_confirmations.poller_seq = $3
                                    AND payment_confirmations.lease_until >= now()
                                   THEN payment_confirmations.chain_started_at ELSE now() END,
                     poller_seq = CASE WHEN payment_confirmations.poller = $2
                                    AND payment_confirmations.poller_seq = $3
                                    AND payment_confirmations.lease_until >= now()
                                   THEN payment_confirmations.poller_seq + 1 ELSE 1 END,
                     lease_until = EXCLUDED.lease_until,
                     updated_at = now()
                 WHERE payment_confirmations.poller IS NULL
                    OR payment_confirmations.lease_until < now()
                    OR (payment_confirmations.poller = $2 AND payment_confirmations.poller_seq = $3)
                 RETURNING poller, poller_seq, chain_started_at, poller_seq = 1 AS new_chain
             )
             SELECT c.poller, c.poller_seq, c.chain_started_at, c.new_chain,
                    p.tx_hash, p.block_number, p.block_hash
               FROM claimed c LEFT JOIN prev p ON true",
        )
        .bind(payment.as_uuid())
        .bind(token)
        .bind(seq)
        .bind(ms(lease)?)
        .fetch_optional(&self.pool)
        .await?;
        let Some((poller, next_seq, chain_started_at, new_chain, tx, number, hash)) = row else {
            return Ok(None);
        };
        Ok(Some(ConfirmClaim {
            poller,
            next_seq,
            chain_started_at,
            new_chain,
            last_seen: inclusion_of(tx, number, hash)?,
        }))
    }

    /// Records a check of the chain that holds the lease. `extend`: the chain goes on and its
    /// lease now runs this long; `None` ends the chain (releases the lease).
    pub async fn record_confirm_check(
        &self,
        payment: PaymentId,
        poller: Uuid,
        record: &CheckRecord,
        extend: Option<Duration>,
    ) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        write_check(&mut conn, payment, poller, record, extend).await
    }

    /// Gives the lease up without recording a check (after an error), so the message's next
    /// delivery or the reconcile timer can start a new chain at once.
    pub async fn release_confirm_poller(&self, payment: PaymentId, poller: Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE payment_confirmations SET poller = NULL, lease_until = NULL, updated_at = now()
              WHERE payment_id = $1 AND poller = $2",
        )
        .bind(payment.as_uuid())
        .bind(poller)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a settle-time observation (a reorg) for a payment that has no active chain.
    pub async fn record_reorg(&self, payment: PaymentId, detail: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO payment_confirmations (payment_id, last_outcome, last_detail, reorgs_seen,
                                                last_checked_at)
             VALUES ($1, 'reorged', $2, 1, now())
             ON CONFLICT (payment_id) DO UPDATE SET
                 last_outcome = 'reorged', last_detail = $2, last_checked_at = now(),
                 reorgs_seen = payment_confirmations.reorgs_seen + 1,
                 tx_hash = NULL, block_number = NULL, block_hash = NULL, updated_at = now()",
        )
        .bind(payment.as_uuid())
        .bind(truncated(Some(detail)))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Parks a payment for an operator outside a polling chain (the settle step found something
    /// it must not post, e.g. a network fee above the hold): `needs_review` with `detail`, which
    /// [`Store::payments_needing_review`] reports and reconcile stops nudging.
    pub async fn flag_for_review(&self, payment: PaymentId, detail: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO payment_confirmations (payment_id, last_outcome, last_detail, last_checked_at)
             VALUES ($1, 'needs_review', $2, now())
             ON CONFLICT (payment_id) DO UPDATE SET
                 last_outcome = 'needs_review', last_detail = $2, last_checked_at = now(),
                 updated_at = now()",
        )
        .bind(payment.as_uuid())
        .bind(truncated(Some(detail)))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The payment's confirm state (`None` before its first check).
    pub async fn confirmation(&self, payment: PaymentId) -> Result<Option<ConfirmationState>> {
        let row: Option<StateRow> = sqlx::query_as(
            "SELECT poller, lease_until, total_checks, last_checked_at, last_outcome, last_detail,
                    tx_hash, block_number, block_hash, reorgs_seen, resends
               FROM payment_confirmations WHERE payment_id = $1",
        )
        .bind(payment.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        let Some((poller, lease, total, last, outcome, detail, tx, number, hash, reorgs, resends)) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(ConfirmationState {
            payment_id: payment,
            poller,
            lease_until: lease,
            total_checks: total,
            last_checked_at: last,
            last_outcome: outcome.as_deref().map(CheckOutcome::parse).transpose()?,
            last_detail: detail,
            last_seen: inclusion_of(tx, number, hash)?,
            reorgs_seen: reorgs,
            resends,
        }))
    }

    /// Payments whose transactions (any attempt) have one of `hashes`, with their status.
    pub async fn payments_by_tx_hashes(
        &self,
        hashes: &[B256],
    ) -> Result<Vec<(PaymentId, PaymentStatus, B256)>> {
        let texts: Vec<String> = hashes.iter().map(ToString::to_string).collect();
        let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT DISTINCT p.id, p.status, t.tx_hash FROM payment_transactions t
               JOIN payments p ON p.id = t.payment_id
              WHERE t.tx_hash = ANY($1) ORDER BY p.id",
        )
        .bind(&texts)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, status, hash)| {
                Ok((
                    PaymentId::from_uuid(id),
                    convert::status(&status)?,
                    convert::b256(&hash)?,
                ))
            })
            .collect()
    }

    /// Remembers a chain webhook. `false`: this `(source, id)` was seen before (a replay).
    pub async fn record_chain_webhook(
        &self,
        source: &str,
        webhook_id: &str,
        tx_hashes: usize,
        enqueued: usize,
    ) -> Result<bool> {
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let inserted = sqlx::query(
            "INSERT INTO chain_webhook_receipts (source, webhook_id, tx_hashes, enqueued)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(source)
        .bind(webhook_id)
        .bind(count(tx_hashes))
        .bind(count(enqueued))
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Deletes at most `limit` webhook receipts older than `older_than`; returns how many.
    pub async fn prune_chain_webhooks(&self, older_than: Duration, limit: u32) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM chain_webhook_receipts WHERE (source, webhook_id) IN (
                 SELECT source, webhook_id FROM chain_webhook_receipts
                  WHERE received_at < now() - $1 * interval '1 millisecond'
                  ORDER BY received_at LIMIT $2)",
        )
        .bind(ms(older_than)?)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

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
                  WHERE p.status = $2
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
              WHERE c.last_outcome = 'needs_review' AND p.status IN ('broadcast', 'confirmed')
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
}
