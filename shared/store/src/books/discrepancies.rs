//! Discrepancies between the books and the chain: one open row per dedupe key, refreshed by
//! every run that finds it again, resolved by a run that checks its scope and finds it gone, or
//! by an operator with a note.

use meshpay_domain::PaymentId;
use time::OffsetDateTime;

use crate::Store;
use crate::error::{Result, StoreError};

/// What a run found (amounts as base-unit decimal text; `difference` = actual - expected).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FoundDiscrepancy {
    /// Kind and scope: the same problem found again has the same key.
    pub dedupe_key: String,
    pub kind: &'static str,
    pub chain: String,
    pub wallet: Option<String>,
    pub asset: Option<String>,
    pub payment_id: Option<PaymentId>,
    pub expected: Option<String>,
    pub actual: Option<String>,
    pub difference: Option<String>,
    pub transactions: serde_json::Value,
    pub detail: String,
}

/// A stored discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discrepancy {
    pub id: i64,
    pub kind: String,
    pub chain: String,
    pub wallet: Option<String>,
    pub asset: Option<String>,
    pub payment_id: Option<PaymentId>,
    pub expected: Option<String>,
    pub actual: Option<String>,
    pub difference: Option<String>,
    pub transactions: serde_json::Value,
    pub detail: String,
    pub first_run_id: i64,
    pub last_run_id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    pub resolved_by_run: Option<i64>,
    pub resolution_note: Option<String>,
}

/// Whether [`Store::record_discrepancy`] opened a new row or refreshed an open one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub id: i64,
    pub new: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscrepancyFilter {
    Open,
    All,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    kind: String,
    chain: String,
    wallet: Option<String>,
    asset: Option<String>,
    payment_id: Option<uuid::Uuid>,
    expected: Option<String>,
    actual: Option<String>,
    difference: Option<String>,
    transactions: serde_json::Value,
    detail: String,
    first_run_id: i64,
    last_run_id: i64,
    first_seen: OffsetDateTime,
    last_seen: OffsetDateTime,
    resolved_at: Option<OffsetDateTime>,
    resolved_by_run: Option<i64>,
    resolution_note: Option<String>,
}

const COLUMNS: &str = "id, kind, chain, wallet, asset, payment_id, expected::text AS expected,
    actual::text AS actual, difference::text AS difference, transactions, detail, first_run_id, last_run_id, first_seen, last_seen,
    resolved_at, resolved_by_run, resolution_note";

fn from_row(r: Row) -> Discrepancy {
    Discrepancy {
        id: r.id,
        kind: r.kind,
        chain: r.chain,
        wallet: r.wallet,
        asset: r.asset,
        payment_id: r.payment_id.map(PaymentId::from_uuid),
        expected: r.expected,
        actual: r.actual,
        difference: r.difference,
        transactions: r.transactions,
        detail: r.detail,
        first_run_id: r.first_run_id,
        last_run_id: r.last_run_id,
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        resolved_at: r.resolved_at,
        resolved_by_run: r.resolved_by_run,
        resolution_note: r.resolution_note,
    }
}

fn clip(text: &str) -> String {
    text.replace('\0', "\u{FFFD}").chars().take(2000).collect()
}

impl Store {
    /// Opens the discrepancy, or refreshes the open one with the same key (figures, last run,
    /// last seen).
    pub async fn record_discrepancy(
        &self,
        run_id: i64,
        found: &FoundDiscrepancy,
    ) -> Result<Recorded> {
        let (id, new): (i64, bool) = sqlx::query_as(
            "INSERT INTO reconcile_discrepancies (dedupe_key, kind, chain, wallet, asset, payment_id,
                 expected, actual, difference, transactions, detail, first_run_id, last_run_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8::numeric, $9::numeric, $10, $11, $12, $12)
             ON CONFLICT (dedupe_key) WHERE resolved_at IS NULL DO UPDATE SET
                 expected = EXCLUDED.expected, actual = EXCLUDED.actual,
                 difference = EXCLUDED.difference, transactions = EXCLUDED.transactions,
                 detail = EXCLUDED.detail, last_run_id = EXCLUDED.last_run_id, last_seen = now()
             RETURNING id, (xmax = 0)",
        )
        .bind(&found.dedupe_key)
        .bind(found.kind)
        .bind(&found.chain)
        .bind(&found.wallet)
        .bind(&found.asset)
        .bind(found.payment_id.map(|p| p.as_uuid()))
        .bind(&found.expected)
        .bind(&found.actual)
        .bind(&found.difference)
        .bind(&found.transactions)
        .bind(clip(&found.detail))
        .bind(run_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(Recorded { id, new })
    }

    /// Resolves the open discrepancies with these keys: run `run_id` checked their scope and
    /// found them gone. Returns the ids resolved.
    pub async fn clear_discrepancies(&self, run_id: i64, keys: &[String]) -> Result<Vec<i64>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<(i64,)> = sqlx::query_as(
            "UPDATE reconcile_discrepancies
             SET resolved_at = now(), resolved_by_run = $1,
                 resolution_note = 'not found again by reconcile run ' || $1
             WHERE dedupe_key = ANY($2) AND resolved_at IS NULL RETURNING id",
        )
        .bind(run_id)
        .bind(keys)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Newest first.
    pub async fn discrepancies(
        &self,
        filter: DiscrepancyFilter,
        limit: u32,
    ) -> Result<Vec<Discrepancy>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM reconcile_discrepancies
             WHERE $1 OR resolved_at IS NULL ORDER BY id DESC LIMIT $2"
        );
        let rows: Vec<Row> = sqlx::query_as(&sql)
            .bind(filter == DiscrepancyFilter::All)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    pub async fn discrepancy(&self, id: i64) -> Result<Option<Discrepancy>> {
        let sql = format!("SELECT {COLUMNS} FROM reconcile_discrepancies WHERE id = $1");
        let row: Option<Row> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(from_row))
    }

    /// An operator's resolution with a note. `NotFound` for an unknown id; an already resolved
    /// one is returned as it is, with its first note. Resolving an `unknown_transaction`
    /// explains it: the books count that transaction from then on (so the nonce and balance
    /// checks agree again); any other discrepancy still true is found again by the next run.
    pub async fn resolve_discrepancy(&self, id: i64, note: &str) -> Result<Discrepancy> {
        let note = note.trim();
        if note.is_empty() {
            return Err(StoreError::Invalid("a resolution note is required".into()));
        }
        let mut tx = self.pool.begin().await?;
        let resolved: Option<(String, String, serde_json::Value)> = sqlx::query_as(
            "UPDATE reconcile_discrepancies SET resolved_at = now(), resolution_note = $2
             WHERE id = $1 AND resolved_at IS NULL RETURNING kind, chain, transactions",
        )
        .bind(id)
        .bind(clip(note))
        .fetch_optional(&mut *tx)
        .await?;
        // Resolving an unknown transaction explains it: the books count it from now on.
        if let Some((_, chain, transactions)) =
            resolved.filter(|(kind, _, _)| kind == "unknown_transaction")
        {
            let hashes: Vec<String> = transactions
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("tx_hash").and_then(|h| h.as_str()).map(str::to_owned))
                .collect();
            sqlx::query(
                "UPDATE hot_wallet_nonces SET acknowledged_at = now()
                 WHERE chain = $1 AND tx_hash = ANY($2) AND source = 'unknown' AND acknowledged_at IS NULL",
            )
            .bind(&chain)
            .bind(&hashes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.discrepancy(id).await?.ok_or(StoreError::NotFound)
    }
}
