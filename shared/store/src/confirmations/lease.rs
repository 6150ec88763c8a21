//! The confirm polling lease: claiming it, recording each check, ending or releasing the
//! chain; and observations made outside a chain (settle's reorg, a payment parked for review).

use std::time::Duration;

use meshpay_domain::PaymentId;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    CheckOutcome, CheckRecord, ConfirmClaim, ConfirmationState, QueueDelivery, inclusion_of, ms,
    seen_columns, truncated,
};
use crate::Store;
use crate::error::Result;

/// Whether the chain `poller` still holds the payment's lease and no review flag stands, read
/// under the confirmation row's lock (held until the caller's transaction ends), so a flag
/// raised meanwhile cannot be overtaken by the status change the chain is about to apply.
pub async fn lock_confirm_chain(
    conn: &mut PgConnection,
    payment: PaymentId,
    poller: Uuid,
) -> Result<bool> {
    let row: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM payment_confirmations
          WHERE payment_id = $1 AND poller = $2
            AND last_outcome IS DISTINCT FROM 'needs_review'
          FOR UPDATE",
    )
    .bind(payment.as_uuid())
    .bind(poller)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
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
             -- A review flag stays until an operator clears it (`Store::clear_review`).
             last_outcome = CASE WHEN last_outcome = 'needs_review' THEN last_outcome ELSE $3 END,
             last_detail = CASE WHEN last_outcome = 'needs_review' THEN last_detail ELSE $4 END,
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
    /// only start a chain. `delivery`: the queue message this claim comes from, remembered so
    /// that a redelivery of it (same id, higher dequeue count: the invocation that claimed died)
    /// resumes the chain it claimed instead of being refused. `None` back: another chain holds
    /// the lease (or this is a duplicate), or the payment is flagged for review (no chain runs
    /// until an operator clears the flag).
    pub async fn claim_confirm_poller(
        &self,
        payment: PaymentId,
        message: Option<(Uuid, i32)>,
        delivery: Option<&QueueDelivery>,
        lease: Duration,
    ) -> Result<Option<ConfirmClaim>> {
        let (token, seq) = match message {
            Some((token, seq)) => (Some(token), Some(seq)),
            None => (None, None),
        };
        let message_id = delivery.map(|d| d.message_id.as_str());
        // A dequeue count beyond i64 cannot happen; saturating keeps "higher" meaningful.
        let dequeue_count = delivery.map(|d| i64::try_from(d.dequeue_count).unwrap_or(i64::MAX));
        // Resuming: the active chain was claimed by this same queue message on an earlier
        // delivery; it keeps its token and sequence (its next message is the one that claim
        // would have written). Continuing: same token, expected seq, lease still valid.
        // Starting: no active lease. The previous row is read as it was before this statement.
        let row: Option<ClaimRow> = sqlx::query_as(
            "WITH prev AS (
                 SELECT poller, poller_seq, tx_hash, block_number, block_hash
                   FROM payment_confirmations WHERE payment_id = $1
             ), claimed AS (
                 INSERT INTO payment_confirmations (payment_id, poller, poller_seq, lease_until,
                                                    chain_started_at, claim_message_id,
                                                    claim_dequeue_count)
                 VALUES ($1, gen_random_uuid(), 1, now() + $4 * interval '1 millisecond', now(),
                         $5, $6)
                 ON CONFLICT (payment_id) DO UPDATE SET
                     poller = CASE WHEN (payment_confirmations.poller IS NOT NULL
                                         AND payment_confirmations.claim_message_id = $5
                                         AND payment_confirmations.claim_dequeue_count < $6)
                                     OR (payment_confirmations.poller = $2
                                         AND payment_confirmations.poller_seq = $3
                                         AND payment_confirmations.lease_until >= now())
                                   THEN payment_confirmations.poller ELSE gen_random_uuid() END,
                     chain_started_at = CASE WHEN (payment_confirmations.poller IS NOT NULL
                                         AND payment_confirmations.claim_message_id = $5
                                         AND payment_confirmations.claim_dequeue_count < $6)
                                     OR (payment_confirmations.poller = $2
                                         AND payment_confirmations.poller_seq = $3
                                         AND payment_confirmations.lease_until >= now())
                                   THEN payment_confirmations.chain_started_at ELSE now() END,
                     poller_seq = CASE WHEN payment_confirmations.poller IS NOT NULL
                                        AND payment_confirmations.claim_message_id = $5
                                        AND payment_confirmations.claim_dequeue_count < $6
                                   THEN payment_confirmations.poller_seq
                                   WHEN payment_confirmations.poller = $2
                                        AND payment_confirmations.poller_seq = $3
                                        AND payment_confirmations.lease_until >= now()
                                   THEN payment_confirmations.poller_seq + 1 ELSE 1 END,
                     lease_until = EXCLUDED.lease_until,
                     claim_message_id = $5, claim_dequeue_count = $6,
                     updated_at = now()
                 WHERE payment_confirmations.last_outcome IS DISTINCT FROM 'needs_review'
                   AND (payment_confirmations.poller IS NULL
                        OR payment_confirmations.lease_until < now()
                        OR (payment_confirmations.poller = $2
                            AND payment_confirmations.poller_seq = $3)
                        OR (payment_confirmations.claim_message_id = $5
                            AND payment_confirmations.claim_dequeue_count < $6))
                 RETURNING poller, poller_seq, chain_started_at
             )
             SELECT c.poller, c.poller_seq, c.chain_started_at,
                    c.poller IS DISTINCT FROM p.poller AS new_chain,
                    COALESCE(c.poller = p.poller AND c.poller_seq = p.poller_seq, false) AS resumed,
                    p.tx_hash, p.block_number, p.block_hash
               FROM claimed c LEFT JOIN prev p ON true",
        )
        .bind(payment.as_uuid())
        .bind(token)
        .bind(seq)
        .bind(ms(lease)?)
        .bind(message_id)
        .bind(dequeue_count)
        .fetch_optional(&self.pool)
        .await?;
        let Some((poller, next_seq, chain_started_at, new_chain, resumed, tx, number, hash)) = row
        else {
            return Ok(None);
        };
        Ok(Some(ConfirmClaim {
            poller,
            next_seq,
            chain_started_at,
            new_chain,
            resumed,
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

    /// Parks a payment for an operator outside a polling chain (the broadcast or settle step
    /// found something it must not act on, e.g. a network fee above the hold): `needs_review`
    /// with `detail`, which [`Store::payments_needing_review`] reports and reconcile stops
    /// nudging. A polling chain that is running loses its lease: its next check records
    /// nothing and no new chain starts until [`Store::clear_review`].
    pub async fn flag_for_review(&self, payment: PaymentId, detail: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO payment_confirmations (payment_id, last_outcome, last_detail, last_checked_at)
             VALUES ($1, 'needs_review', $2, now())
             ON CONFLICT (payment_id) DO UPDATE SET
                 last_outcome = 'needs_review', last_detail = $2, last_checked_at = now(),
                 poller = NULL, lease_until = NULL, updated_at = now()",
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
}
