//! Sweeps: wallet transactions that belong to no payment. A hot wallet calls the chain's
//! `DepositFactory.sweep(salts, tokens)`, which deploys the missing forwarders of a batch of
//! invoices and flushes them to the factory's treasury.
//!
//! The same discipline as a payment's broadcast, on the same nonce counter:
//! [`Store::plan_sweep`] allocates the nonce and stores every field to sign in one transaction
//! (the sweep is `planned`: the nonce is never lost, the next run signs the same fields);
//! signing happens with no transaction open; [`Store::store_sweep_attempt`] stores the signed
//! bytes (`broadcast`) before anything is sent; each send's start is recorded first
//! ([`Store::begin_sweep_send`]); [`Store::finish_sweep`] records the final receipt and posts
//! the ledger once. Every status change is a legal [`SweepStatus`] move with the version check
//! and a `sweep_events` row.

use meshpay_domain::{Address, Amount, AssetId, B256, InvoiceId, U256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::ledger::post_sweep;
use crate::transactions::{NonceAllocation, SendLog, TxTimeouts, allocate_nonce, set_timeouts};
use crate::{Store, convert};

/// Reverted sweeps of a payment after which the timer stops trying it.
pub const MAX_FAILED_SWEEPS: i64 = 3;

/// Where a sweep is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepStatus {
    /// Nonce allocated, every field to sign stored; nothing signed yet.
    Planned,
    /// A signed transaction is stored (and sent, or about to be).
    Broadcast,
    /// Mined and successful in a final block; posted.
    Confirmed,
    /// Mined and reverted in a final block; its gas posted, its payments due again.
    Failed,
}

impl SweepStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            SweepStatus::Planned => "planned",
            SweepStatus::Broadcast => "broadcast",
            SweepStatus::Confirmed => "confirmed",
            SweepStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<SweepStatus> {
        Ok(match text {
            "planned" => SweepStatus::Planned,
            "broadcast" => SweepStatus::Broadcast,
            "confirmed" => SweepStatus::Confirmed,
            "failed" => SweepStatus::Failed,
            other => return Err(convert::corrupt("sweep status", other)),
        })
    }

    /// The state machine: planned → broadcast → confirmed | failed, nothing else.
    pub const fn can_move_to(self, to: SweepStatus) -> bool {
        matches!(
            (self, to),
            (SweepStatus::Planned, SweepStatus::Broadcast)
                | (
                    SweepStatus::Broadcast,
                    SweepStatus::Confirmed | SweepStatus::Failed
                )
        )
    }
}

/// What a sweep is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepKind {
    /// The `sweep` timer's batch of final, recognized invoice payments.
    Invoices,
    /// An operator's sweep of a token the chain's configuration does not know.
    Operator,
}

impl SweepKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            SweepKind::Invoices => "invoices",
            SweepKind::Operator => "operator",
        }
    }

    fn parse(text: &str) -> Result<SweepKind> {
        match text {
            "invoices" => Ok(SweepKind::Invoices),
            "operator" => Ok(SweepKind::Operator),
            other => Err(convert::corrupt("sweep kind", other)),
        }
    }
}

/// One final, recognized invoice payment a sweep moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuePayment {
    pub invoice: InvoiceId,
    pub tx_hash: String,
    pub log_index: i64,
    /// The token contract (the zero address: native coin).
    pub token: Address,
}

/// An invoice with final payments no sweep moved yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueInvoice {
    pub invoice: InvoiceId,
    pub salt: B256,
    pub deposit: Address,
    pub payments: Vec<DuePayment>,
}

/// A sweep to plan: the wallet, the call and its price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSweep {
    pub chain: String,
    pub kind: SweepKind,
    pub wallet: Address,
    /// The chain's pending nonce of the wallet, read just before.
    pub chain_floor: u64,
    pub factory: Address,
    pub treasury: Address,
    pub input: Vec<u8>,
    /// The tokens `input` flushes.
    pub tokens: Vec<Address>,
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    pub payments: Vec<DuePayment>,
}

/// A stored sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub id: Uuid,
    pub chain: String,
    pub kind: SweepKind,
    pub status: SweepStatus,
    pub version: i64,
    pub wallet: Address,
    pub nonce: u64,
    pub factory: Address,
    pub treasury: Address,
    pub input: Vec<u8>,
    pub gas_limit: u64,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    pub tx_hash: Option<B256>,
}

/// A signed transaction of a sweep.
#[derive(Clone, PartialEq, Eq)]
pub struct SweepTx {
    pub id: Uuid,
    pub sweep_id: Uuid,
    pub tx_hash: B256,
    pub raw: Vec<u8>,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
    /// Live (signed/sent) or replaced.
    pub live: bool,
}

// The raw bytes are long: print their size.
impl std::fmt::Debug for SweepTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SweepTx")
            .field("sweep_id", &self.sweep_id)
            .field("tx_hash", &self.tx_hash)
            .field("max_fee_per_gas_wei", &self.max_fee_per_gas_wei)
            .field("live", &self.live)
            .field("raw_len", &self.raw.len())
            .finish_non_exhaustive()
    }
}

/// A signed transaction to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSweepTx {
    pub tx_hash: B256,
    pub raw: Vec<u8>,
    pub max_fee_per_gas_wei: u128,
    pub max_priority_fee_per_gas_wei: u128,
}

/// What the chain shows of a sweep's mined transaction in a final block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReceipt {
    pub tx_hash: B256,
    pub block_number: u64,
    pub block_hash: B256,
    pub success: bool,
    pub gas_used: u64,
    /// `gasUsed × effectiveGasPrice` (+ the L1 data fee on OP-stack chains), wei.
    pub fee: U256,
    /// The native asset the fee is paid in.
    pub native: AssetId,
    /// What reached the treasury, per configured asset (empty when reverted).
    pub flows: Vec<(AssetId, Amount)>,
    /// What reached the treasury in tokens the configuration does not know (operator sweeps),
    /// under their ledger asset (`<chain>:T<first 15 hex digits of the contract>`).
    pub unrecognized: Vec<(AssetId, Amount)>,
    /// What each deposit address sent, per token (the zero address: native coin).
    pub deposits: Vec<DepositFlow>,
}

/// One `Flushed(token, amount)` of a sweep's receipt: a deposit address sent `amount` of
/// `token` (the zero address: the native coin) to the treasury.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositFlow {
    pub deposit: Address,
    pub token: Address,
    pub amount: Amount,
}

/// What [`Store::plan_sweep`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanOutcome {
    Planned(Box<Sweep>, NonceAllocation),
    /// Another sweep of the chain is in flight (or was planned meanwhile): nothing written.
    InFlight,
}

type SweepRow = (
    Uuid,
    String,
    String,
    String,
    i64,
    String,
    i64,
    String,
    String,
    Vec<u8>,
    i64,
    String,
    String,
    Option<String>,
);

const SWEEP_COLUMNS: &str =
    "id, chain, kind, status, version, wallet, nonce, factory, treasury, input,
    gas_limit, max_fee_per_gas::text, max_priority_fee_per_gas::text, tx_hash";

fn sweep_of(row: SweepRow) -> Result<Sweep> {
    let (
        id,
        chain,
        kind,
        status,
        version,
        wallet,
        nonce,
        factory,
        treasury,
        input,
        gas,
        fee,
        tip,
        hash,
    ) = row;
    Ok(Sweep {
        id,
        chain,
        kind: SweepKind::parse(&kind)?,
        status: SweepStatus::parse(&status)?,
        version,
        wallet: convert::address(&wallet)?,
        nonce: convert::u64_from_i64(nonce, "nonce")?,
        factory: convert::address(&factory)?,
        treasury: convert::address(&treasury)?,
        input,
        gas_limit: convert::u64_from_i64(gas, "gas_limit")?,
        max_fee_per_gas_wei: convert::u128_text(&fee)?,
        max_priority_fee_per_gas_wei: convert::u128_text(&tip)?,
        tx_hash: hash.as_deref().map(convert::b256).transpose()?,
    })
}

fn i64_of(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} {value} too large")))
}

/// Moves the locked sweep to `to` (version checked) and appends its event.
async fn move_sweep(
    conn: &mut PgConnection,
    sweep: &Sweep,
    to: SweepStatus,
    data: &serde_json::Value,
) -> Result<i64> {
    if !sweep.status.can_move_to(to) {
        return Err(StoreError::Invalid(format!(
            "sweep {}: {} → {} is not a legal move",
            sweep.id,
            sweep.status.as_str(),
            to.as_str()
        )));
    }
    let moved = sqlx::query(
        "UPDATE sweeps SET status = $3, version = version + 1, updated_at = now()
          WHERE id = $1 AND version = $2",
    )
    .bind(sweep.id)
    .bind(sweep.version)
    .bind(to.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(StoreError::Conflict {
            expected: sweep.version,
        });
    }
    let version = sweep.version + 1;
    insert_event(
        conn,
        sweep.id,
        version,
        sweep.status.as_str(),
        to.as_str(),
        data,
    )
    .await?;
    Ok(version)
}

async fn insert_event(
    conn: &mut PgConnection,
    sweep: Uuid,
    version: i64,
    from: &str,
    to: &str,
    data: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sweep_events (sweep_id, version, from_status, to_status, data)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(sweep)
    .bind(version)
    .bind(from)
    .bind(to)
    .bind(data)
    .execute(conn)
    .await?;
    Ok(())
}

async fn lock_sweep(conn: &mut PgConnection, id: Uuid) -> Result<Sweep> {
    let row: Option<SweepRow> = sqlx::query_as(&format!(
        "SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(sweep_of).transpose()?.ok_or(StoreError::NotFound)
}

impl Store {
    /// Invoices of the chain whose final, recognized payments no sweep (other than a failed
    /// one) covers, oldest change first, at most `limit` invoices. A payment whose sweeps
    /// reverted [`MAX_FAILED_SWEEPS`] times is left out (each try burns gas): it stays at its
    /// deposit address, the failed sweeps and their reason on record, for an operator.
    pub async fn due_sweeps(&self, chain: &str, limit: usize) -> Result<Vec<DueInvoice>> {
        let rows: Vec<(Uuid, Vec<u8>, String, String, i64, String)> = sqlx::query_as(
            "SELECT i.id, i.salt, i.deposit_address, p.tx_hash, p.log_index, p.token
               FROM invoices i JOIN invoice_payments p ON p.invoice_id = i.id
              WHERE i.chain = $1 AND i.status IN ('paid', 'overpaid', 'underpaid', 'paid_late')
                AND p.status = 'final' AND p.asset IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM sweep_payments sp JOIN sweeps s ON s.id = sp.sweep_id
                                 WHERE sp.invoice_id = p.invoice_id AND sp.tx_hash = p.tx_hash
                                   AND sp.log_index = p.log_index AND s.status <> 'failed')
                AND (SELECT count(*) FROM sweep_payments sp JOIN sweeps s ON s.id = sp.sweep_id
                      WHERE sp.invoice_id = p.invoice_id AND sp.tx_hash = p.tx_hash
                        AND sp.log_index = p.log_index AND s.status = 'failed') < $2
              ORDER BY i.updated_at, i.id, p.tx_hash, p.log_index
              LIMIT 1000",
        )
        .bind(chain)
        .bind(MAX_FAILED_SWEEPS)
        .fetch_all(&self.pool)
        .await?;
        let mut due: Vec<DueInvoice> = Vec::new();
        for (id, salt, deposit, tx_hash, log_index, token) in rows {
            let invoice = InvoiceId::from_uuid(id);
            let payment = DuePayment {
                invoice,
                tx_hash,
                log_index,
                token: convert::address(&token)?,
            };
            let full = due.len() >= limit;
            match due.last_mut() {
                Some(last) if last.invoice == invoice => last.payments.push(payment),
                _ if full => break,
                _ => {
                    let salt: [u8; 32] = salt
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("invoice salt".into()))?;
                    due.push(DueInvoice {
                        invoice,
                        salt: B256::from(salt),
                        deposit: convert::address(&deposit)?,
                        payments: vec![payment],
                    });
                }
            }
        }
        Ok(due)
    }

    /// The invoice's chain, salt and deposit address, and its payments in `token` that the
    /// configuration does not know (recorded, never credited) and that no sweep (other than a
    /// failed one) covers.
    pub async fn unrecognized_due(
        &self,
        invoice: InvoiceId,
        token: Address,
    ) -> Result<Option<(String, DueInvoice)>> {
        let head: Option<(String, Vec<u8>, String)> =
            sqlx::query_as("SELECT chain, salt, deposit_address FROM invoices WHERE id = $1")
                .bind(invoice.as_uuid())
                .fetch_optional(&self.pool)
                .await?;
        let Some((chain, salt, deposit)) = head else {
            return Ok(None);
        };
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT p.tx_hash, p.log_index FROM invoice_payments p
              WHERE p.invoice_id = $1 AND lower(p.token) = lower($2) AND p.asset IS NULL
                AND p.status <> 'removed'
                AND NOT EXISTS (SELECT 1 FROM sweep_payments sp JOIN sweeps s ON s.id = sp.sweep_id
                                 WHERE sp.invoice_id = p.invoice_id AND sp.tx_hash = p.tx_hash
                                   AND sp.log_index = p.log_index AND s.status <> 'failed')
              ORDER BY p.tx_hash, p.log_index",
        )
        .bind(invoice.as_uuid())
        .bind(token.to_string())
        .fetch_all(&self.pool)
        .await?;
        let salt: [u8; 32] = salt
            .try_into()
            .map_err(|_| StoreError::Corrupt("invoice salt".into()))?;
        let payments = rows
            .into_iter()
            .map(|(tx_hash, log_index)| DuePayment {
                invoice,
                tx_hash,
                log_index,
                token,
            })
            .collect();
        Ok(Some((
            chain,
            DueInvoice {
                invoice,
                salt: B256::from(salt),
                deposit: convert::address(&deposit)?,
                payments,
            },
        )))
    }

    /// Allocates the wallet's next nonce and stores the sweep `planned` with every field to
    /// sign and the payments it covers, in one transaction.
    pub async fn plan_sweep(&self, new: &NewSweep, timeouts: TxTimeouts) -> Result<PlanOutcome> {
        let mut tx = self.pool.begin().await?;
        set_timeouts(&mut tx, timeouts).await?;
        let in_flight: Option<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM sweeps WHERE chain = $1 AND status IN ('planned', 'broadcast')",
        )
        .bind(&new.chain)
        .fetch_optional(&mut *tx)
        .await?;
        if in_flight.is_some() {
            return Ok(PlanOutcome::InFlight);
        }
        let allocation = allocate_nonce(&mut tx, &new.chain, new.wallet, new.chain_floor).await?;
        let id = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO sweeps (id, chain, status, version, wallet, nonce, factory, treasury,
                 input, gas_limit, max_fee_per_gas, max_priority_fee_per_gas, kind, tokens)
             VALUES ($1, $2, 'planned', 1, $3, $4, $5, $6, $7, $8, $9::numeric, $10::numeric, $11,
                 $12)",
        )
        .bind(id)
        .bind(&new.chain)
        .bind(new.wallet.to_checksum(None))
        .bind(i64_of(allocation.nonce, "nonce")?)
        .bind(new.factory.to_checksum(None))
        .bind(new.treasury.to_checksum(None))
        .bind(&new.input)
        .bind(i64_of(new.gas_limit, "gas_limit")?)
        .bind(new.max_fee_per_gas_wei.to_string())
        .bind(new.max_priority_fee_per_gas_wei.to_string())
        .bind(new.kind.as_str())
        .bind(
            new.tokens
                .iter()
                .map(|t| t.to_checksum(None))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await;
        if let Err(error) = inserted {
            let error = StoreError::from(error);
            // Another planner won the chain's one in-flight slot: our nonce rolls back.
            if error.db_code().as_deref() == Some("23505") {
                return Ok(PlanOutcome::InFlight);
            }
            return Err(error);
        }
        for p in &new.payments {
            sqlx::query(
                "INSERT INTO sweep_payments (sweep_id, invoice_id, tx_hash, log_index)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(p.invoice.as_uuid())
            .bind(&p.tx_hash)
            .bind(p.log_index)
            .execute(&mut *tx)
            .await?;
        }
        let data = serde_json::json!({"nonce": allocation.nonce, "wallet": new.wallet,
            "payments": new.payments.len()});
        insert_event(&mut tx, id, 1, "new", "planned", &data).await?;
        tx.commit().await?;
        let sweep = self.sweep(id).await?.ok_or(StoreError::NotFound)?;
        Ok(PlanOutcome::Planned(Box::new(sweep), allocation))
    }

    pub async fn sweep(&self, id: Uuid) -> Result<Option<Sweep>> {
        let row: Option<SweepRow> =
            sqlx::query_as(&format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(sweep_of).transpose()
    }

    /// The chain's sweeps still in flight (planned or broadcast).
    pub async fn open_sweeps(&self, chain: &str) -> Result<Vec<Sweep>> {
        let rows: Vec<SweepRow> = sqlx::query_as(&format!(
            "SELECT {SWEEP_COLUMNS} FROM sweeps
              WHERE chain = $1 AND status IN ('planned', 'broadcast') ORDER BY created_at"
        ))
        .bind(chain)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(sweep_of).collect()
    }

    /// Every sweep of the chain, newest first, at most `limit`.
    pub async fn recent_sweeps(&self, chain: &str, limit: i64) -> Result<Vec<Sweep>> {
        let rows: Vec<SweepRow> = sqlx::query_as(&format!(
            "SELECT {SWEEP_COLUMNS} FROM sweeps WHERE chain = $1 ORDER BY created_at DESC LIMIT $2"
        ))
        .bind(chain)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(sweep_of).collect()
    }

    /// The sweep that moved this invoice payment (not failed), if any.
    pub async fn sweep_of_invoice(&self, invoice: InvoiceId) -> Result<Option<Sweep>> {
        let row: Option<SweepRow> = sqlx::query_as(&format!(
            "SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id IN
               (SELECT sweep_id FROM sweep_payments WHERE invoice_id = $1)
               AND status <> 'failed' ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(invoice.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.map(sweep_of).transpose()
    }

    /// The deposit addresses a sweep flushes (one per invoice it covers).
    pub async fn sweep_deposits(&self, sweep: Uuid) -> Result<Vec<Address>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT i.deposit_address FROM sweep_payments sp
               JOIN invoices i ON i.id = sp.invoice_id WHERE sp.sweep_id = $1
              ORDER BY 1",
        )
        .bind(sweep)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|(a,)| convert::address(a)).collect()
    }

    /// Stores the first signed transaction of a `planned` sweep and moves it to `broadcast`.
    /// `None`: the sweep is no longer planned (another run stored its own signature): these
    /// bytes are dropped unsent.
    pub async fn store_sweep_attempt(
        &self,
        sweep: Uuid,
        new: &NewSweepTx,
        timeouts: TxTimeouts,
    ) -> Result<Option<SweepTx>> {
        let mut tx = self.pool.begin().await?;
        set_timeouts(&mut tx, timeouts).await?;
        let locked = lock_sweep(&mut tx, sweep).await?;
        if locked.status != SweepStatus::Planned {
            return Ok(None);
        }
        let stored = insert_attempt(&mut tx, sweep, new).await?;
        let data = serde_json::json!({"tx_hash": new.tx_hash});
        move_sweep(&mut tx, &locked, SweepStatus::Broadcast, &data).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    /// Swaps a re-priced transaction in for `previous` on the sweep's nonce. `None`: `previous`
    /// is no longer the live one (another run replaced it, or the sweep ended).
    pub async fn replace_sweep_attempt(
        &self,
        previous: &SweepTx,
        new: &NewSweepTx,
        timeouts: TxTimeouts,
    ) -> Result<Option<SweepTx>> {
        let mut tx = self.pool.begin().await?;
        set_timeouts(&mut tx, timeouts).await?;
        let locked = lock_sweep(&mut tx, previous.sweep_id).await?;
        if locked.status != SweepStatus::Broadcast {
            return Ok(None);
        }
        let replaced = sqlx::query(
            "UPDATE sweep_transactions SET status = 'replaced'
              WHERE id = $1 AND status IN ('signed', 'sent')",
        )
        .bind(previous.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if replaced == 0 {
            return Ok(None);
        }
        let stored = insert_attempt(&mut tx, previous.sweep_id, new).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    /// Every signed transaction of the sweep, oldest first.
    pub async fn sweep_attempts(&self, sweep: Uuid) -> Result<Vec<SweepTx>> {
        let rows: Vec<(Uuid, String, Vec<u8>, String, String, String)> = sqlx::query_as(
            "SELECT id, tx_hash, raw_tx, max_fee_per_gas::text, max_priority_fee_per_gas::text,
                    status
               FROM sweep_transactions WHERE sweep_id = $1 ORDER BY created_at, id",
        )
        .bind(sweep)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, hash, raw, fee, tip, status)| {
                Ok(SweepTx {
                    id,
                    sweep_id: sweep,
                    tx_hash: convert::b256(&hash)?,
                    raw,
                    max_fee_per_gas_wei: convert::u128_text(&fee)?,
                    max_priority_fee_per_gas_wei: convert::u128_text(&tip)?,
                    live: status != "replaced",
                })
            })
            .collect()
    }

    /// Records, before the bytes go out, that the attempt is about to be sent (an earlier start
    /// whose answer was never recorded turns into `exposed_at`).
    pub async fn begin_sweep_send(&self, attempt: Uuid) -> Result<()> {
        SendLog::SweepTransactions.begin(&self.pool, attempt).await
    }

    /// Records one send: `Ok` = a node has it; `exposed`: the bytes may be in a pool.
    pub async fn record_sweep_send(
        &self,
        attempt: Uuid,
        outcome: std::result::Result<(), &str>,
        exposed: bool,
    ) -> Result<()> {
        SendLog::SweepTransactions
            .record(&self.pool, attempt, outcome, exposed)
            .await
    }

    /// Records the sweep's final receipt, moves it to `confirmed` (or `failed` when it
    /// reverted) and posts it (`sweep`: the flows to the treasury, the gas), in one transaction.
    /// `false`: it was finished before (nothing done).
    pub async fn finish_sweep(&self, sweep: Uuid, receipt: &SweepReceipt) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let locked = lock_sweep(&mut tx, sweep).await?;
        if locked.status != SweepStatus::Broadcast {
            return Ok(false);
        }
        let to = if receipt.success {
            SweepStatus::Confirmed
        } else {
            SweepStatus::Failed
        };
        sqlx::query(
            "UPDATE sweeps SET tx_hash = $2, block_number = $3, block_hash = $4, gas_used = $5,
                    network_fee = $6::numeric,
                    status_reason = CASE WHEN $7 THEN NULL ELSE 'the sweep transaction reverted' END
              WHERE id = $1",
        )
        .bind(sweep)
        .bind(receipt.tx_hash.to_string())
        .bind(i64_of(receipt.block_number, "block")?)
        .bind(receipt.block_hash.to_string())
        .bind(i64_of(receipt.gas_used, "gas_used")?)
        .bind(receipt.fee.to_string())
        .bind(receipt.success)
        .execute(&mut *tx)
        .await?;
        let flows: Vec<serde_json::Value> = receipt
            .flows
            .iter()
            .chain(&receipt.unrecognized)
            .map(|(asset, amount)| serde_json::json!({"asset": asset, "amount": amount}))
            .collect();
        let data = serde_json::json!({
            "tx_hash": receipt.tx_hash, "block_number": receipt.block_number,
            "gas_used": receipt.gas_used, "fee": receipt.fee.to_string(), "flows": flows,
        });
        move_sweep(&mut tx, &locked, to, &data).await?;
        for flow in receipt.deposits.iter().filter(|f| !f.amount.is_zero()) {
            sqlx::query(
                "INSERT INTO sweep_flows (sweep_id, deposit_address, token, amount)
                 VALUES ($1, $2, $3, $4::numeric)
                 ON CONFLICT (sweep_id, deposit_address, token)
                 DO UPDATE SET amount = sweep_flows.amount + EXCLUDED.amount",
            )
            .bind(sweep)
            .bind(flow.deposit.to_checksum(None))
            .bind(flow.token.to_checksum(None))
            .bind(flow.amount.to_string())
            .execute(&mut *tx)
            .await?;
        }
        let details = serde_json::json!({
            "chain": locked.chain, "wallet": locked.wallet, "treasury": locked.treasury,
            "nonce": locked.nonce, "tx_hash": receipt.tx_hash, "flows": flows,
            "fee": receipt.fee.to_string(),
        });
        post_sweep(
            &mut tx,
            &format!("sweep:{sweep}"),
            &receipt.flows,
            &receipt.unrecognized,
            Some((&receipt.native, Amount::from_base_units(receipt.fee))),
            &details,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

async fn insert_attempt(conn: &mut PgConnection, sweep: Uuid, new: &NewSweepTx) -> Result<SweepTx> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sweep_transactions (id, sweep_id, max_fee_per_gas, max_priority_fee_per_gas,
             tx_hash, raw_tx, status)
         VALUES ($1, $2, $3::numeric, $4::numeric, $5, $6, 'signed')",
    )
    .bind(id)
    .bind(sweep)
    .bind(new.max_fee_per_gas_wei.to_string())
    .bind(new.max_priority_fee_per_gas_wei.to_string())
    .bind(new.tx_hash.to_string())
    .bind(&new.raw)
    .execute(conn)
    .await?;
    Ok(SweepTx {
        id,
        sweep_id: sweep,
        tx_hash: new.tx_hash,
        raw: new.raw.clone(),
        max_fee_per_gas_wei: new.max_fee_per_gas_wei,
        max_priority_fee_per_gas_wei: new.max_priority_fee_per_gas_wei,
        live: true,
    })
}

/// A confirmed sweep whose deposit addresses the books have not yet found empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepToVerify {
    pub id: Uuid,
    pub block_number: u64,
    pub block_hash: B256,
    pub deposits: Vec<Address>,
    /// The tokens it flushed (the native coin always).
    pub tokens: Vec<Address>,
}

impl Store {
    /// Confirmed sweeps of the chain mined at or below `block` whose deposit addresses the
    /// books have not yet found empty, oldest first, at most `limit`.
    pub async fn sweeps_to_verify(
        &self,
        chain: &str,
        block: u64,
        limit: i64,
    ) -> Result<Vec<SweepToVerify>> {
        let rows: Vec<(Uuid, i64, String, Vec<String>)> = sqlx::query_as(
            "SELECT id, block_number, block_hash, tokens FROM sweeps
              WHERE chain = $1 AND status = 'confirmed' AND deposits_verified_at IS NULL
                AND block_number <= $2
              ORDER BY block_number, id LIMIT $3",
        )
        .bind(chain)
        .bind(i64_of(block, "block")?)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, number, hash, tokens) in rows {
            out.push(SweepToVerify {
                id,
                block_number: convert::u64_from_i64(number, "block_number")?,
                block_hash: convert::b256(&hash)?,
                deposits: self.sweep_deposits(id).await?,
                tokens: tokens
                    .iter()
                    .map(|t| convert::address(t))
                    .collect::<Result<_>>()?,
            });
        }
        Ok(out)
    }

    /// Records that the books found every deposit address of the sweep empty at its block.
    pub async fn mark_sweep_verified(&self, sweep: Uuid) -> Result<()> {
        sqlx::query("UPDATE sweeps SET deposits_verified_at = now() WHERE id = $1")
            .bind(sweep)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
