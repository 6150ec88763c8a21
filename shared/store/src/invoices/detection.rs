//! What detection writes: transfers seen to deposit addresses, their finality or removal, the
//! per-chain log cursor, and [`Store::refresh_invoice`], which derives the invoice's status
//! from its transfers and posts (or reverses) the ledger credits, in one transaction.

use meshpay_domain::{Address, Amount, AssetId, B256, InvoiceId, Received};
use time::OffsetDateTime;

use sqlx::Acquire as _;

use super::{Invoice, PaymentSeen, Totals, apply, reviews, select_for_update};
use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};
use crate::ledger::{PayinPosting, post_invoice_credit, post_invoice_reversal};

/// The native coin an invoice's deposit address should hold at a block, as the books know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeBook {
    /// Native transfers recorded for the invoice, not removed.
    pub recorded: Amount,
    /// Taken out by confirmed sweeps mined at or below the block.
    pub swept: Amount,
    /// A sweep of the invoice is sent and not finished: it may have moved coin at or below
    /// the block by an amount not known yet.
    pub sweep_in_flight: bool,
}

/// A transfer read from the chain.
#[derive(Debug, Clone)]
pub struct ObservedTransfer {
    pub invoice: InvoiceId,
    pub tx_hash: B256,
    pub log_index: u64,
    pub token: Address,
    /// `None`: not a configured asset of the invoice's chain (never credited).
    pub asset: Option<AssetId>,
    pub amount: Amount,
    pub block_number: u64,
    pub block_hash: B256,
    /// Below the configured minimum: recorded, never credited.
    pub dust: bool,
}

/// A watched deposit address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedAddress {
    pub invoice: InvoiceId,
    pub deposit_address: Address,
    pub asset: AssetId,
}

/// A recorded transfer still on the canonical chain, for finality and reorg checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTransfer {
    pub invoice: InvoiceId,
    pub tx_hash: B256,
    pub log_index: u64,
    pub block_number: u64,
    pub block_hash: B256,
    pub status: PaymentSeen,
}

/// What [`Store::refresh_invoice`] did.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub invoice: Invoice,
    pub credits_posted: usize,
    pub reversals_posted: usize,
    /// Reversals the merchant's balance could not cover, parked for an operator
    /// ([`super::reviews`]).
    pub reversals_parked: usize,
}

type TransferRow = (String, i64, Option<String>, String, String, bool, bool);

impl Store {
    /// The deposit addresses detection watches on `chain`.
    pub async fn watched_deposit_addresses(&self, chain: &str) -> Result<Vec<WatchedAddress>> {
        let rows: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
            "SELECT id, deposit_address, asset FROM invoices
             WHERE chain = $1 AND status <> 'cancelled' ORDER BY created_at",
        )
        .bind(chain)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, address, asset)| {
                Ok(WatchedAddress {
                    invoice: InvoiceId::from_uuid(id),
                    deposit_address: convert::address(&address)?,
                    asset: convert::asset(&asset)?,
                })
            })
            .collect()
    }

    /// The next block whose logs detection reads on `chain` (`None` before the first run).
    pub async fn payin_cursor(&self, chain: &str) -> Result<Option<u64>> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT next_block FROM payin_cursors WHERE chain = $1")
                .bind(chain)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(b,)| convert::u64_from_i64(b, "payin cursor"))
            .transpose()
    }

    /// Moves the cursor from `expected` (`None`: not set) to `next`; `false` when another run
    /// moved it first (this run's range is then read again by the next one, harmlessly).
    pub async fn advance_payin_cursor(
        &self,
        chain: &str,
        expected: Option<u64>,
        next: u64,
    ) -> Result<bool> {
        let next = i64::try_from(next).map_err(|_| StoreError::Invalid("block number".into()))?;
        let done = match expected {
            None => {
                sqlx::query(
                    "INSERT INTO payin_cursors (chain, next_block) VALUES ($1, $2)
                 ON CONFLICT (chain) DO NOTHING",
                )
                .bind(chain)
                .bind(next)
                .execute(&self.pool)
                .await?
            }
            Some(expected) => {
                sqlx::query(
                    "UPDATE payin_cursors SET next_block = $3, updated_at = now()
                 WHERE chain = $1 AND next_block = $2",
                )
                .bind(chain)
                .bind(
                    i64::try_from(expected)
                        .map_err(|_| StoreError::Invalid("block number".into()))?,
                )
                .bind(next)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// What native detection compares a deposit address's balance at `block` with: the
    /// native coin recorded for the invoice (transfers not removed) and what confirmed sweeps
    /// mined at or below `block` took out of its deposit address (`sweep_flows`). Read after
    /// the head `block` was derived from: a sweep still `planned` then was never sent, so it
    /// cannot be in a block up to `block`; a `broadcast` one may be, and its amount is not
    /// known until it is confirmed, so `sweep_in_flight` tells detection to wait.
    pub async fn native_book(&self, invoice: InvoiceId, block: u64) -> Result<NativeBook> {
        let native = Address::ZERO.to_checksum(None);
        let (recorded, swept, in_flight): (String, String, bool) = sqlx::query_as(
            "SELECT
               (SELECT coalesce(sum(amount), 0)::text FROM invoice_payments
                 WHERE invoice_id = $1 AND token = $2 AND status <> 'removed'),
               (SELECT coalesce(sum(f.amount), 0)::text FROM sweep_flows f
                  JOIN sweeps s ON s.id = f.sweep_id
                  JOIN invoices i ON i.chain = s.chain AND i.deposit_address = f.deposit_address
                 WHERE i.id = $1 AND f.token = $2 AND s.status = 'confirmed'
                   AND s.block_number <= $3),
               EXISTS (SELECT 1 FROM sweep_payments sp JOIN sweeps s ON s.id = sp.sweep_id
                        WHERE sp.invoice_id = $1 AND s.status = 'broadcast')",
        )
        .bind(invoice.as_uuid())
        .bind(native)
        .bind(i64::try_from(block).map_err(|_| StoreError::Invalid("block number".into()))?)
        .fetch_one(&self.pool)
        .await?;
        Ok(NativeBook {
            recorded: convert::amount(&recorded)?,
            swept: convert::amount(&swept)?,
            sweep_in_flight: in_flight,
        })
    }

    /// Moves the cursor back to `block` (never forward): a reorg replaced blocks from there.
    pub async fn rewind_payin_cursor(&self, chain: &str, block: u64) -> Result<()> {
        sqlx::query(
            "UPDATE payin_cursors SET next_block = LEAST(next_block, $2), updated_at = now()
             WHERE chain = $1",
        )
        .bind(chain)
        .bind(i64::try_from(block).map_err(|_| StoreError::Invalid("block number".into()))?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a transfer (idempotent by invoice, tx hash and log index: a repeat changes
    /// nothing, except that a transfer a reorg had removed and that is back is `seen` again at
    /// its new block). `true` when something was written.
    pub async fn record_invoice_transfer(&self, t: &ObservedTransfer) -> Result<bool> {
        // One statement: the transfer and the invoice's refresh flag change together.
        let done: Option<(i32,)> = sqlx::query_as(
            "WITH written AS (
                 INSERT INTO invoice_payments (invoice_id, tx_hash, log_index, token, asset, amount,
                     block_number, block_hash, status, dust, late)
                 SELECT $1, $2, $3, $4, $5, $6::numeric, $7, $8, 'seen', $9, now() > i.expires_at
                   FROM invoices i WHERE i.id = $1
                 ON CONFLICT (invoice_id, tx_hash, log_index) DO UPDATE
                    SET status = 'seen', block_number = EXCLUDED.block_number,
                        block_hash = EXCLUDED.block_hash, updated_at = now()
                  WHERE invoice_payments.status = 'removed'
                 RETURNING invoice_id)
             UPDATE invoices SET refresh_due = true WHERE id IN (SELECT invoice_id FROM written)
             RETURNING 1",
        )
        .bind(t.invoice.as_uuid())
        .bind(t.tx_hash.to_string())
        .bind(i64::try_from(t.log_index).map_err(|_| StoreError::Invalid("log index".into()))?)
        .bind(t.token.to_checksum(None))
        .bind(t.asset.as_ref().map(ToString::to_string))
        .bind(t.amount.to_string())
        .bind(i64::try_from(t.block_number).map_err(|_| StoreError::Invalid("block".into()))?)
        .bind(t.block_hash.to_string())
        .bind(t.dust)
        .fetch_optional(&self.pool)
        .await?;
        Ok(done.is_some())
    }

    /// Recorded transfers on `chain` not removed, oldest block first: what finality and reorg
    /// checks re-read.
    pub async fn live_invoice_transfers(&self, chain: &str) -> Result<Vec<LiveTransfer>> {
        let rows: Vec<(uuid::Uuid, String, i64, i64, String, String)> = sqlx::query_as(
            "SELECT p.invoice_id, p.tx_hash, p.log_index, p.block_number, p.block_hash, p.status
             FROM invoice_payments p JOIN invoices i ON i.id = p.invoice_id
             WHERE i.chain = $1 AND p.status <> 'removed'
             ORDER BY p.block_number, p.log_index",
        )
        .bind(chain)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(invoice, tx, log, block, hash, status)| {
                Ok(LiveTransfer {
                    invoice: InvoiceId::from_uuid(invoice),
                    tx_hash: convert::b256(&tx)?,
                    log_index: convert::u64_from_i64(log, "log index")?,
                    block_number: convert::u64_from_i64(block, "block number")?,
                    block_hash: convert::b256(&hash)?,
                    status: PaymentSeen::parse(&status)?,
                })
            })
            .collect()
    }

    /// Sets a recorded transfer's standing: `final` (past the chain's finality, in the block
    /// it was recorded in) or `removed` (its block left the canonical chain and the
    /// transaction is not mined elsewhere).
    pub async fn mark_invoice_transfer(
        &self,
        invoice: InvoiceId,
        tx_hash: B256,
        log_index: u64,
        status: PaymentSeen,
    ) -> Result<()> {
        sqlx::query(
            "WITH changed AS (
                 UPDATE invoice_payments SET status = $4, updated_at = now()
                  WHERE invoice_id = $1 AND tx_hash = $2 AND log_index = $3 AND status <> $4
                 RETURNING invoice_id)
             UPDATE invoices SET refresh_due = true WHERE id IN (SELECT invoice_id FROM changed)",
        )
        .bind(invoice.as_uuid())
        .bind(tx_hash.to_string())
        .bind(i64::try_from(log_index).map_err(|_| StoreError::Invalid("log index".into()))?)
        .bind(status.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Invoices whose status may be due to change on `chain` at `now`: with a transfer change
    /// not yet reflected (`refresh_due`), or open past their expiry.
    pub async fn invoices_to_refresh(
        &self,
        chain: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<InvoiceId>> {
        let rows: Vec<(uuid::Uuid,)> = sqlx::query_as(
            "SELECT i.id FROM invoices i
             WHERE i.chain = $1 AND i.status <> 'cancelled'
               AND (i.refresh_due OR (i.status = 'open' AND i.expires_at <= $2))",
        )
        .bind(chain)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id,)| InvoiceId::from_uuid(id))
            .collect())
    }

    /// Derives the invoice's status from its recorded transfers at `now` and applies it (a
    /// legal transition, optimistic, with its event and webhook); credits every final,
    /// recognized, non-dust transfer not yet credited and reverses the credit of every removed
    /// one; all in one transaction, so a crash anywhere leaves either all of it or none.
    pub async fn refresh_invoice(&self, id: InvoiceId, now: OffsetDateTime) -> Result<Refreshed> {
        let mut tx = self.pool.begin().await?;
        let invoice = select_for_update(&mut tx, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let rows: Vec<TransferRow> = sqlx::query_as(
            "SELECT tx_hash, log_index, asset, amount::text, status, dust, late
             FROM invoice_payments WHERE invoice_id = $1",
        )
        .bind(id.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        let asset = invoice.asset.to_string();
        let mut seen = Amount::ZERO;
        let mut final_ = Amount::ZERO;
        let mut late = false;
        let mut credits = Vec::new();
        let mut reversals = Vec::new();
        for (tx_hash, log_index, row_asset, amount, status, dust, row_late) in rows {
            let amount = convert::amount(&amount)?;
            let reference = format!("{id}:{tx_hash}:{log_index}");
            let counted = row_asset.as_deref() == Some(asset.as_str()) && !dust;
            match (counted, status.as_str()) {
                (true, "seen") => {
                    seen = add(seen, amount)?;
                    late |= row_late;
                }
                (true, "final") => {
                    seen = add(seen, amount)?;
                    final_ = add(final_, amount)?;
                    late |= row_late;
                    credits.push((reference, amount));
                }
                (true, _) => reversals.push((reference, amount)),
                (false, _) => {}
            }
        }
        let expired = now >= invoice.expires_at;
        let received = Received { seen, final_, late };
        let to =
            meshpay_domain::invoice_transition(invoice.status, invoice.amount, received, expired)?;
        let mut credits_posted = 0;
        let mut reversals_posted = 0;
        for (reference, amount) in &credits {
            let posting = PayinPosting {
                merchant: invoice.merchant_id,
                asset: &invoice.asset,
                amount: *amount,
                fee_bps: invoice.service_fee_bps,
                reference,
            };
            credits_posted += usize::from(post_invoice_credit(&mut tx, &posting).await?);
        }
        // A credit whose payment is final again needs no reversal: its parked review closes.
        for (reference, _) in &credits {
            reviews::close_final_again(&mut tx, reference).await?;
        }
        let mut parked = Vec::new();
        for (reference, amount) in &reversals {
            let credited: Option<(i32,)> = sqlx::query_as(
                "SELECT 1 FROM ledger_transactions WHERE kind = 'invoice_credit' AND reference = $1",
            )
            .bind(reference)
            .fetch_optional(&mut *tx)
            .await?;
            // Parked (or settled by an operator): not retried by every run.
            if credited.is_none() || reviews::holds(&mut tx, reference).await? {
                continue;
            }
            let posting = PayinPosting {
                merchant: invoice.merchant_id,
                asset: &invoice.asset,
                amount: *amount,
                fee_bps: invoice.service_fee_bps,
                reference,
            };
            // A savepoint: a reversal the merchant's balance cannot cover is undone alone and
            // parked, and the rest of the refresh (status, other postings) still commits.
            let mut savepoint = tx.begin().await?;
            match post_invoice_reversal(&mut savepoint, &posting).await {
                Ok(posted) => {
                    savepoint.commit().await?;
                    reversals_posted += usize::from(posted);
                }
                Err(StoreError::InsufficientFunds {
                    available,
                    required,
                    ..
                }) => {
                    savepoint.rollback().await?;
                    let review =
                        reviews::park(&mut tx, &invoice, reference, *amount, required, available)
                            .await?;
                    tracing::warn!(
                        invoice = %id, reference, review, %required, %available,
                        "invoice reversal parked for review: the merchant spent the credit"
                    );
                    parked.push(review);
                }
                Err(error) => return Err(error),
            }
        }
        let totals = Totals {
            received: seen,
            final_,
            late,
        };
        let unchanged = to == invoice.status
            && totals.received == invoice.amount_received
            && totals.final_ == invoice.amount_final
            && late == invoice.late;
        let nothing_posted = credits_posted == 0 && reversals_posted == 0 && parked.is_empty();
        let invoice = if unchanged && nothing_posted {
            // Nothing changed: the transfers are reflected, so the invoice is not picked again.
            sqlx::query("UPDATE invoices SET refresh_due = false WHERE id = $1")
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await?;
            invoice
        } else {
            let data = serde_json::json!({
                "amount_received": seen, "amount_final": final_,
                "credits_posted": credits_posted, "reversals_posted": reversals_posted,
                "reversals_parked": parked,
            });
            apply(&mut tx, &invoice, to, &totals, data).await?
        };
        tx.commit().await?;
        Ok(Refreshed {
            invoice,
            credits_posted,
            reversals_posted,
            reversals_parked: parked.len(),
        })
    }
}

fn add(a: Amount, b: Amount) -> Result<Amount> {
    a.checked_add(b)
        .ok_or_else(|| StoreError::Invalid("invoice amounts overflow".into()))
}
