//! Detection asked for by chain webhooks (address-activity hints), coalesced per chain in
//! `payin_detect_requests`: a hint enqueues a run only when none is pending, a queued run is
//! skipped when a run that started after its request has completed, and a hint that arrives
//! while a run is going asks for one more. All times are the database's, so the webhook's and
//! the runs' clocks cannot disagree.

use meshpay_domain::Address;
use time::OffsetDateTime;

use crate::Store;
use crate::error::Result;

impl Store {
    /// The chains with a watched (not cancelled) invoice at one of `addresses`. An address no
    /// invoice uses is simply not matched: the caller cannot tell it from one on another chain.
    pub async fn chains_watching(&self, addresses: &[Address]) -> Result<Vec<String>> {
        if addresses.is_empty() {
            return Ok(Vec::new());
        }
        let addresses: Vec<String> = addresses.iter().map(|a| a.to_checksum(None)).collect();
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT chain FROM invoices
             WHERE deposit_address = ANY($1) AND status <> 'cancelled' ORDER BY chain",
        )
        .bind(&addresses)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// Records a hint for `chain`. `Some(requested_at)` when a run must be enqueued (none is
    /// pending); `None` when a pending one will cover it.
    pub async fn request_payin_detection(&self, chain: &str) -> Result<Option<OffsetDateTime>> {
        let (enqueue, requested_at): (bool, OffsetDateTime) = sqlx::query_as(
            "INSERT INTO payin_detect_requests AS r (chain, requested_at, hinted_at)
             VALUES ($1, now(), now())
             ON CONFLICT (chain) DO UPDATE SET
                 hinted_at = now(), updated_at = now(),
                 requested_at = CASE
                     WHEN r.covered_through IS NOT NULL AND r.covered_through >= r.requested_at
                     THEN now() ELSE r.requested_at END
             RETURNING requested_at = hinted_at, requested_at",
        )
        .bind(chain)
        .fetch_one(&self.pool)
        .await?;
        Ok(enqueue.then_some(requested_at))
    }

    /// The database's clock: when a detection run starts.
    pub async fn db_now(&self) -> Result<OffsetDateTime> {
        let (now,): (OffsetDateTime,) =
            sqlx::query_as("SELECT now()").fetch_one(&self.pool).await?;
        Ok(now)
    }

    /// Whether a run that started at or after `requested_at` has completed on `chain` (a
    /// queued request it covers needs no run of its own).
    pub async fn payin_detection_covered(
        &self,
        chain: &str,
        requested_at: OffsetDateTime,
    ) -> Result<bool> {
        let row: Option<(bool,)> = sqlx::query_as(
            "SELECT covered_through >= $2 FROM payin_detect_requests
             WHERE chain = $1 AND covered_through IS NOT NULL",
        )
        .bind(chain)
        .bind(requested_at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some_and(|(covered,)| covered))
    }

    /// Records that a run on `chain` that started at `started` completed. With `follow_up`
    /// (the caller can enqueue), a hint newer than `started` becomes a new request:
    /// `Some(requested_at)` is returned and the caller enqueues it.
    pub async fn complete_payin_detection(
        &self,
        chain: &str,
        started: OffsetDateTime,
        follow_up: bool,
    ) -> Result<Option<OffsetDateTime>> {
        let row: Option<(bool, OffsetDateTime)> = sqlx::query_as(
            "UPDATE payin_detect_requests SET
                 covered_through = GREATEST(coalesce(covered_through, $2), $2),
                 requested_at = CASE WHEN $3 AND hinted_at > $2 THEN now() ELSE requested_at END,
                 updated_at = now()
             WHERE chain = $1
             RETURNING $3 AND hinted_at > $2, requested_at",
        )
        .bind(chain)
        .bind(started)
        .bind(follow_up)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(again, at)| again.then_some(at)))
    }
}
