//! The double-entry ledger: accounts, balanced postings, holds, funding, balances, invariants.
//!
//! Every posting is one `ledger_transactions` row plus entries that sum to zero per asset (checked
//! here before writing and again by a deferred trigger at commit). Merchant accounts come in
//! pairs per asset, `merchant_available` and `merchant_held`; a hold moves funds from the first to
//! the second, a release moves them back, a capture (settlement) moves them out to the outflow
//! and fee accounts. The network fee is held at its quoted maximum but only what the chain
//! charged is captured (settlement, or a mined transaction that reverted); the unused rest is
//! released in the same database transaction ([`resolve_holds`]). Funding moves money from the
//! asset's `funding` account (the outside world, which goes negative) to the merchant's
//! available balance.
//!
//! Concurrency (the Blnk #238/#239 lessons): a posting locks *every* merchant account it touches,
//! source and destination, with `SELECT … ORDER BY id FOR UPDATE` (one global order, so no
//! deadlocks), checks balances under the lock, and applies deltas with
//! `balance = balance + delta` (never a read-modify-write of a value computed in the app and
//! never a version number that can race). `CHECK (balance >= 0)` backs this up.

use std::collections::BTreeMap;

use meshpay_domain::{Amount, AssetId, CaptureTo, HoldResolution, MerchantId, PaymentId, U256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountKind {
    MerchantAvailable,
    MerchantHeld,
    Funding,
    Outflow,
    ServiceFees,
    NetworkFees,
}

impl AccountKind {
    const fn as_str(self) -> &'static str {
        match self {
            AccountKind::MerchantAvailable => "merchant_available",
            AccountKind::MerchantHeld => "merchant_held",
            AccountKind::Funding => "funding",
            AccountKind::Outflow => "outflow",
            AccountKind::ServiceFees => "service_fees",
            AccountKind::NetworkFees => "network_fees",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxKind {
    Fund,
    Hold,
    Release,
    Settle,
    /// A failed payment's mined transaction, paid from its hold.
    NetworkFee,
}

impl TxKind {
    const fn as_str(self) -> &'static str {
        match self {
            TxKind::Fund => "fund",
            TxKind::Hold => "hold",
            TxKind::Release => "release",
            TxKind::Settle => "settle",
            TxKind::NetworkFee => "network_fee",
        }
    }
}

/// One entry of a posting: `amount` added to (`credit`) or taken from the account.
#[derive(Debug, Clone)]
pub(crate) struct Leg {
    pub account: Uuid,
    pub asset: AssetId,
    pub amount: Amount,
    pub credit: bool,
    /// Merchant accounts keep a cached balance that must be updated.
    pub tracked: bool,
}

impl Leg {
    fn signed_text(&self) -> String {
        if self.credit {
            self.amount.to_string()
        } else {
            convert::neg(self.amount)
        }
    }
}

/// Rejects a posting whose legs do not sum to zero per asset (before anything is written).
fn check_balanced(legs: &[Leg]) -> Result<()> {
    let mut sums: BTreeMap<&AssetId, (U256, U256)> = BTreeMap::new();
    for leg in legs {
        if leg.amount.is_zero() {
            return Err(StoreError::Invalid("zero ledger entry".into()));
        }
        let (credits, debits) = sums.entry(&leg.asset).or_default();
        let side = if leg.credit { credits } else { debits };
        *side = side
            .checked_add(leg.amount.base_units())
            .ok_or_else(|| StoreError::Invalid("ledger posting overflows".into()))?;
    }
    match sums.iter().find(|(_, (c, d))| c != d) {
        Some((asset, _)) => Err(StoreError::Invalid(format!(
            "posting does not balance in {asset}"
        ))),
        None => Ok(()),
    }
}

/// Writes a balanced posting: the transaction row, its entries, and cached balance deltas. The
/// caller has locked the tracked accounts and checked that debits are covered.
pub(crate) async fn post(
    conn: &mut PgConnection,
    kind: TxKind,
    payment: Option<PaymentId>,
    legs: &[Leg],
) -> Result<Uuid> {
    check_balanced(legs)?;
    let tx_id = Uuid::now_v7();
    sqlx::query("INSERT INTO ledger_transactions (id, kind, payment_id) VALUES ($1, $2, $3)")
        .bind(tx_id)
        .bind(kind.as_str())
        .bind(payment.map(|p| p.as_uuid()))
        .execute(&mut *conn)
        .await?;
    write_legs(conn, tx_id, legs).await?;
    Ok(tx_id)
}

async fn write_legs(conn: &mut PgConnection, tx_id: Uuid, legs: &[Leg]) -> Result<()> {
    let accounts: Vec<Uuid> = legs.iter().map(|l| l.account).collect();
    let assets: Vec<String> = legs.iter().map(|l| l.asset.to_string()).collect();
    let amounts: Vec<String> = legs.iter().map(Leg::signed_text).collect();
    sqlx::query(
        "INSERT INTO ledger_entries (transaction_id, account_id, asset, amount)
         SELECT $1, a, s, n::numeric FROM unnest($2::uuid[], $3::text[], $4::text[]) AS t(a, s, n)",
    )
    .bind(tx_id)
    .bind(&accounts)
    .bind(&assets)
    .bind(&amounts)
    .execute(&mut *conn)
    .await?;
    let tracked: Vec<&Leg> = legs.iter().filter(|l| l.tracked).collect();
    if !tracked.is_empty() {
        let ids: Vec<Uuid> = tracked.iter().map(|l| l.account).collect();
        let deltas: Vec<String> = tracked.iter().map(|l| l.signed_text()).collect();
        // Several legs may hit one account: aggregate first (UPDATE … FROM applies one row once).
        sqlx::query(
            "UPDATE ledger_accounts a SET balance = a.balance + d.delta
             FROM (SELECT id, sum(n::numeric) AS delta FROM unnest($1::uuid[], $2::text[]) AS t(id, n)
                   GROUP BY id) d
             WHERE a.id = d.id",
        )
        .bind(&ids)
        .bind(&deltas)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A merchant's pair of accounts for one asset, locked, with balances read under the lock.
#[derive(Debug, Clone)]
pub(crate) struct LockedPair {
    pub available: Uuid,
    pub held: Uuid,
    pub available_balance: Amount,
}

/// Creates the merchant's account pairs for `assets` if missing.
async fn ensure_merchant_accounts(
    conn: &mut PgConnection,
    merchant: MerchantId,
    assets: &[String],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ledger_accounts (id, kind, merchant_id, asset, balance)
         SELECT gen_random_uuid(), k, $1, s, 0
         FROM unnest($2::text[]) AS s CROSS JOIN unnest($3::text[]) AS k
         ON CONFLICT (kind, merchant_id, asset) DO NOTHING",
    )
    .bind(merchant.as_uuid())
    .bind(assets)
    .bind([
        AccountKind::MerchantAvailable.as_str(),
        AccountKind::MerchantHeld.as_str(),
    ])
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the merchant's account pairs for `assets` in id order. Assets without accounts are
/// absent from the result (never funded: nothing available). With `create`, missing pairs are
/// created first.
pub(crate) async fn lock_merchant_accounts(
    conn: &mut PgConnection,
    merchant: MerchantId,
    assets: &[AssetId],
    create: bool,
) -> Result<BTreeMap<AssetId, LockedPair>> {
    let names: Vec<String> = assets.iter().map(ToString::to_string).collect();
    if create {
        ensure_merchant_accounts(conn, merchant, &names).await?;
    }
    let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
        "SELECT id, kind, asset, balance::text FROM ledger_accounts
         WHERE merchant_id = $1 AND asset = ANY($2) AND kind IN ('merchant_available', 'merchant_held')
         ORDER BY id FOR UPDATE",
    )
    .bind(merchant.as_uuid())
    .bind(&names)
    .fetch_all(conn)
    .await?;
    let mut available: BTreeMap<AssetId, (Uuid, Amount)> = BTreeMap::new();
    let mut held: BTreeMap<AssetId, Uuid> = BTreeMap::new();
    for (id, kind, asset, balance) in rows {
        let asset = convert::asset(&asset)?;
        if kind == AccountKind::MerchantAvailable.as_str() {
            available.insert(asset, (id, convert::amount(&balance)?));
        } else {
            held.insert(asset, id);
        }
    }
    let mut pairs = BTreeMap::new();
    for (asset, (available, available_balance)) in available {
        let held = held.get(&asset).copied().ok_or_else(|| {
            StoreError::Corrupt(format!("merchant held account missing for {asset}"))
        })?;
        pairs.insert(
            asset,
            LockedPair {
                available,
                held,
                available_balance,
            },
        );
    }
    Ok(pairs)
}

/// The id of a system account (funding, outflow, fees) for `asset`, created on first use.
async fn system_account(
    conn: &mut PgConnection,
    kind: AccountKind,
    asset: &AssetId,
) -> Result<Uuid> {
    let select =
        "SELECT id FROM ledger_accounts WHERE kind = $1 AND merchant_id IS NULL AND asset = $2";
    let found: Option<(Uuid,)> = sqlx::query_as(select)
        .bind(kind.as_str())
        .bind(asset.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    if let Some((id,)) = found {
        return Ok(id);
    }
    // A separate statement after the insert: it sees a row another session committed while
    // our INSERT waited on it (a CTE would not, sharing the insert's snapshot).
    sqlx::query(
        "INSERT INTO ledger_accounts (id, kind, merchant_id, asset, balance)
         VALUES (gen_random_uuid(), $1, NULL, $2, NULL) ON CONFLICT (kind, merchant_id, asset) DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(asset.to_string())
    .execute(&mut *conn)
    .await?;
    let (id,): (Uuid,) = sqlx::query_as(select)
        .bind(kind.as_str())
        .bind(asset.to_string())
        .fetch_one(&mut *conn)
        .await?;
    Ok(id)
}

/// Places the holds of a new payment: for each debit, available → held, after checking the
/// locked available balance. `pairs` come from [`lock_merchant_accounts`].
pub(crate) async fn place_holds(
    conn: &mut PgConnection,
    merchant: MerchantId,
    payment: PaymentId,
    debits: &[(AssetId, Amount)],
    pairs: &BTreeMap<AssetId, LockedPair>,
) -> Result<()> {
    let mut legs = Vec::with_capacity(debits.len() * 2);
    for (asset, amount) in debits {
        let pair = pairs
            .get(asset)
            .ok_or_else(|| StoreError::InsufficientFunds {
                asset: asset.clone(),
                available: Amount::ZERO,
                required: *amount,
            })?;
        if pair.available_balance < *amount {
            return Err(StoreError::InsufficientFunds {
                asset: asset.clone(),
                available: pair.available_balance,
                required: *amount,
            });
        }
        legs.push(Leg {
            account: pair.available,
            asset: asset.clone(),
            amount: *amount,
            credit: false,
            tracked: true,
        });
        legs.push(Leg {
            account: pair.held,
            asset: asset.clone(),
            amount: *amount,
            credit: true,
            tracked: true,
        });
    }
    post(conn, TxKind::Hold, Some(payment), &legs).await?;
    let assets: Vec<String> = debits.iter().map(|(a, _)| a.to_string()).collect();
    let amounts: Vec<String> = debits.iter().map(|(_, n)| n.to_string()).collect();
    sqlx::query(
        "INSERT INTO holds (payment_id, asset, merchant_id, amount, status)
         SELECT $1, s, $2, n::numeric, 'held' FROM unnest($3::text[], $4::text[]) AS t(s, n)",
    )
    .bind(payment.as_uuid())
    .bind(merchant.as_uuid())
    .bind(&assets)
    .bind(&amounts)
    .execute(conn)
    .await?;
    Ok(())
}

/// The payment's open holds, locked; marks them `to_status` (released / captured).
async fn take_open_holds(
    conn: &mut PgConnection,
    payment: PaymentId,
    to_status: &str,
) -> Result<(MerchantId, Vec<(AssetId, Amount)>)> {
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "UPDATE holds SET status = $2, resolved_at = now()
         WHERE payment_id = $1 AND status = 'held'
         RETURNING merchant_id, asset, amount::text",
    )
    .bind(payment.as_uuid())
    .bind(to_status)
    .fetch_all(&mut *conn)
    .await?;
    let Some((merchant, _, _)) = rows.first() else {
        return Err(StoreError::Corrupt(format!(
            "payment {payment} holds funds but has no open hold"
        )));
    };
    let merchant = MerchantId::from_uuid(*merchant);
    let mut holds = rows
        .iter()
        .map(|(_, asset, amount)| Ok((convert::asset(asset)?, convert::amount(amount)?)))
        .collect::<Result<Vec<_>>>()?;
    holds.sort();
    Ok((merchant, holds))
}

/// How a payment's holds end (see [`HoldResolution`] for the amounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldOutcome {
    /// Cancelled, or failed before anything was mined: everything back to available.
    Released,
    /// Failed after its transaction was mined: the network fee paid, the rest released.
    FeeCharged,
    /// Settled: amount, service fee and network fee paid, the unused fee released.
    Captured,
}

impl HoldOutcome {
    /// `holds.status` afterwards.
    const fn hold_status(self) -> &'static str {
        match self {
            HoldOutcome::Released | HoldOutcome::FeeCharged => "released",
            HoldOutcome::Captured => "captured",
        }
    }

    /// The ledger transaction kind of the captured part.
    const fn capture_kind(self) -> TxKind {
        match self {
            HoldOutcome::Captured => TxKind::Settle,
            HoldOutcome::Released | HoldOutcome::FeeCharged => TxKind::NetworkFee,
        }
    }
}

const fn capture_account(to: CaptureTo) -> AccountKind {
    match to {
        CaptureTo::Recipient => AccountKind::Outflow,
        CaptureTo::ServiceFee => AccountKind::ServiceFees,
        CaptureTo::NetworkFee => AccountKind::NetworkFees,
    }
}

/// Resolves a payment's open holds: the captured parts leave the merchant's held balance to
/// their system accounts (one posting of `outcome`'s capture kind), the rest goes back to
/// available (one `release` posting). The open holds must be exactly the payment's debits and
/// `resolution` must split each of them exactly (checked here, before anything is posted; the
/// caller's transaction is rolled back on error).
pub(crate) async fn resolve_holds(
    conn: &mut PgConnection,
    payment: &crate::payments::Payment,
    outcome: HoldOutcome,
    resolution: &HoldResolution,
) -> Result<()> {
    let (merchant, holds) = take_open_holds(conn, payment.id, outcome.hold_status()).await?;
    if holds != payment.charges.debits() {
        return Err(StoreError::Corrupt(format!(
            "holds of {} differ from its debits",
            payment.id
        )));
    }
    check_split(payment.id, &holds, resolution)?;
    let assets: Vec<AssetId> = holds.iter().map(|(a, _)| a.clone()).collect();
    let pairs = lock_merchant_accounts(conn, merchant, &assets, false).await?;
    let pair = |asset: &AssetId| {
        pairs.get(asset).ok_or_else(|| {
            StoreError::Corrupt(format!("hold on {asset} without merchant accounts"))
        })
    };
    if !resolution.captured.is_empty() {
        // One debit per held account (the sum of its captured parts), one credit per part.
        let mut per_asset: BTreeMap<&AssetId, Amount> = BTreeMap::new();
        for part in &resolution.captured {
            let sum = per_asset.entry(&part.asset).or_default();
            *sum = sum.checked_add(part.amount).ok_or_else(|| {
                StoreError::Corrupt(format!("capture of {} overflows", payment.id))
            })?;
        }
        let mut legs = Vec::with_capacity(per_asset.len() + resolution.captured.len());
        for (asset, amount) in per_asset {
            legs.push(Leg {
                account: pair(asset)?.held,
                asset: asset.clone(),
                amount,
                credit: false,
                tracked: true,
            });
        }
        for part in &resolution.captured {
            legs.push(Leg {
                account: system_account(conn, capture_account(part.to), &part.asset).await?,
                asset: part.asset.clone(),
                amount: part.amount,
                credit: true,
                tracked: false,
            });
        }
        post(conn, outcome.capture_kind(), Some(payment.id), &legs).await?;
    }
    if !resolution.released.is_empty() {
        let mut legs = Vec::with_capacity(resolution.released.len() * 2);
        for (asset, amount) in &resolution.released {
            let pair = pair(asset)?;
            legs.push(Leg {
                account: pair.held,
                asset: asset.clone(),
                amount: *amount,
                credit: false,
                tracked: true,
            });
            legs.push(Leg {
                account: pair.available,
                asset: asset.clone(),
                amount: *amount,
                credit: true,
                tracked: true,
            });
        }
        post(conn, TxKind::Release, Some(payment.id), &legs).await?;
    }
    Ok(())
}

/// Per asset, captured + released must be exactly the open hold: nothing is taken from the
/// merchant's available balance and nothing stays held.
fn check_split(
    payment: PaymentId,
    holds: &[(AssetId, Amount)],
    resolution: &HoldResolution,
) -> Result<()> {
    let mut out: BTreeMap<&AssetId, U256> = BTreeMap::new();
    let parts = resolution
        .captured
        .iter()
        .map(|c| (&c.asset, c.amount))
        .chain(resolution.released.iter().map(|(a, n)| (a, *n)));
    for (asset, amount) in parts {
        let sum = out.entry(asset).or_default();
        *sum = sum
            .checked_add(amount.base_units())
            .ok_or_else(|| StoreError::Corrupt(format!("resolution of {payment} overflows")))?;
    }
    let held: BTreeMap<&AssetId, U256> = holds.iter().map(|(a, n)| (a, n.base_units())).collect();
    if out != held {
        return Err(StoreError::Corrupt(format!(
            "resolution of {payment} does not split its holds exactly"
        )));
    }
    Ok(())
}

/// Result of [`Store::fund`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundOutcome {
    pub transaction_id: Uuid,
    /// `false` when the reference had already funded exactly this (an idempotent replay).
    pub created: bool,
}

/// A merchant's balance in one asset (base units).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Balance {
    pub asset: AssetId,
    pub available: Amount,
    pub held: Amount,
}

impl Store {
    /// Credits a merchant's available balance from the asset's funding account. Idempotent by
    /// `reference`: the same reference with the same merchant, asset and amount returns the first
    /// posting (`created: false`); with anything different it is [`StoreError::ReferenceReused`].
    pub async fn fund(
        &self,
        merchant_id: MerchantId,
        asset: &AssetId,
        amount: Amount,
        reference: &str,
    ) -> Result<FundOutcome> {
        if amount.is_zero() {
            return Err(StoreError::Invalid(
                "funding amount must be positive".into(),
            ));
        }
        if reference.is_empty() || reference.len() > 255 {
            return Err(StoreError::Invalid(
                "funding reference must be 1 to 255 bytes".into(),
            ));
        }
        let details = serde_json::json!({
            "merchant_id": merchant_id, "asset": asset, "amount": amount,
        });
        let mut tx = self.pool.begin().await?;
        let merchant_exists: Option<(i32,)> =
            sqlx::query_as("SELECT 1 FROM merchants WHERE id = $1")
                .bind(merchant_id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
        if merchant_exists.is_none() {
            return Err(StoreError::NotFound);
        }
        // Claim the reference first: a concurrent duplicate blocks here until we commit, then
        // sees our row (the same pattern as idempotency keys).
        let tx_id = Uuid::now_v7();
        let inserted: Option<(Uuid,)> = sqlx::query_as(
            "INSERT INTO ledger_transactions (id, kind, reference, details) VALUES ($1, $4, $2, $3)
             ON CONFLICT (kind, reference) WHERE reference IS NOT NULL DO NOTHING RETURNING id",
        )
        .bind(tx_id)
        .bind(reference)
        .bind(&details)
        .bind(TxKind::Fund.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            let (existing, existing_details): (Uuid, serde_json::Value) = sqlx::query_as(
                "SELECT id, details FROM ledger_transactions WHERE kind = 'fund' AND reference = $1",
            )
            .bind(reference)
            .fetch_one(&mut *tx)
            .await?;
            return if existing_details == details {
                Ok(FundOutcome {
                    transaction_id: existing,
                    created: false,
                })
            } else {
                Err(StoreError::ReferenceReused)
            };
        }
        let funding = system_account(&mut tx, AccountKind::Funding, asset).await?;
        let pairs =
            lock_merchant_accounts(&mut tx, merchant_id, std::slice::from_ref(asset), true).await?;
        let pair = pairs
            .get(asset)
            .ok_or_else(|| StoreError::Corrupt(format!("merchant accounts missing for {asset}")))?;
        let legs = [
            Leg {
                account: funding,
                asset: asset.clone(),
                amount,
                credit: false,
                tracked: false,
            },
            Leg {
                account: pair.available,
                asset: asset.clone(),
                amount,
                credit: true,
                tracked: true,
            },
        ];
        check_balanced(&legs)?;
        write_legs(&mut tx, tx_id, &legs).await?;
        tx.commit().await?;
        Ok(FundOutcome {
            transaction_id: tx_id,
            created: true,
        })
    }

    /// Per asset: available and held, for every asset the merchant has ever been funded in.
    pub async fn balances(&self, merchant_id: MerchantId) -> Result<Vec<Balance>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT asset, kind, balance::text FROM ledger_accounts
             WHERE merchant_id = $1 AND kind IN ('merchant_available', 'merchant_held')
             ORDER BY asset",
        )
        .bind(merchant_id.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        let mut balances: BTreeMap<AssetId, Balance> = BTreeMap::new();
        for (asset, kind, balance) in rows {
            let asset = convert::asset(&asset)?;
            let amount = convert::amount(&balance)?;
            let entry = balances.entry(asset.clone()).or_insert(Balance {
                asset,
                available: Amount::ZERO,
                held: Amount::ZERO,
            });
            if kind == AccountKind::MerchantAvailable.as_str() {
                entry.available = amount;
            } else {
                entry.held = amount;
            }
        }
        Ok(balances.into_values().collect())
    }

    /// Checks the ledger's invariants over the whole database (tests, reconciliation):
    /// entries sum to zero per asset and per ledger transaction and asset; cached balances equal
    /// their entries; no merchant balance is negative; held balances equal open holds; a payment
    /// has open holds exactly while its status holds funds; every settled payment is captured;
    /// no payment paid more network fee than was held for it, and a recorded actual network fee
    /// is exactly what was posted to the network-fee account.
    pub async fn check_ledger_invariants(&self) -> Result<()> {
        let checks: [(&str, &str); 9] = [
            (
                "entries do not sum to zero for asset",
                "SELECT asset FROM ledger_entries GROUP BY asset HAVING sum(amount) <> 0",
            ),
            (
                "ledger transaction does not balance",
                "SELECT transaction_id::text || ' ' || asset FROM ledger_entries
                 GROUP BY transaction_id, asset HAVING sum(amount) <> 0",
            ),
            (
                "cached balance differs from entries for account",
                "SELECT a.id::text FROM ledger_accounts a
                 LEFT JOIN (SELECT account_id, sum(amount) AS s FROM ledger_entries GROUP BY account_id) e
                   ON e.account_id = a.id
                 WHERE a.balance IS NOT NULL AND a.balance <> coalesce(e.s, 0)",
            ),
            (
                "negative merchant balance in account",
                "SELECT a.id::text FROM ledger_accounts a
                 LEFT JOIN (SELECT account_id, sum(amount) AS s FROM ledger_entries GROUP BY account_id) e
                   ON e.account_id = a.id
                 WHERE a.merchant_id IS NOT NULL AND (a.balance < 0 OR coalesce(e.s, 0) < 0)",
            ),
            (
                "held balance differs from open holds for account",
                "SELECT a.id::text FROM ledger_accounts a
                 LEFT JOIN (SELECT merchant_id, asset, sum(amount) AS s FROM holds WHERE status = 'held'
                            GROUP BY merchant_id, asset) h
                   ON h.merchant_id = a.merchant_id AND h.asset = a.asset
                 WHERE a.kind = 'merchant_held' AND a.balance <> coalesce(h.s, 0)",
            ),
            (
                "open holds disagree with status for payment",
                "SELECT p.id::text FROM payments p
                 WHERE (p.status IN ('authorized', 'broadcast', 'confirmed'))
                    <> EXISTS (SELECT 1 FROM holds h WHERE h.payment_id = p.id AND h.status = 'held')",
            ),
            (
                "settled payment without a settlement posting",
                "SELECT p.id::text FROM payments p WHERE p.status = 'settled' AND NOT EXISTS
                   (SELECT 1 FROM ledger_transactions t WHERE t.kind = 'settle' AND t.payment_id = p.id)",
            ),
            (
                "network fee captured above its hold for payment",
                "WITH f AS (SELECT t.payment_id, sum(e.amount) AS s FROM ledger_transactions t
                              JOIN ledger_entries e ON e.transaction_id = t.id
                              JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'network_fees'
                             WHERE t.payment_id IS NOT NULL GROUP BY t.payment_id)
                 SELECT p.id::text FROM payments p JOIN f ON f.payment_id = p.id
                  WHERE f.s > p.network_fee",
            ),
            (
                "recorded network fee differs from its postings for payment",
                "WITH f AS (SELECT t.payment_id, sum(e.amount) AS s FROM ledger_transactions t
                              JOIN ledger_entries e ON e.transaction_id = t.id
                              JOIN ledger_accounts a ON a.id = e.account_id AND a.kind = 'network_fees'
                             WHERE t.payment_id IS NOT NULL GROUP BY t.payment_id)
                 SELECT p.id::text FROM payments p LEFT JOIN f ON f.payment_id = p.id
                  WHERE p.network_fee_actual IS NOT NULL AND coalesce(f.s, 0) <> p.network_fee_actual",
            ),
        ];
        let mut violations = Vec::new();
        for (what, sql) in checks {
            let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&self.pool).await?;
            violations.extend(rows.into_iter().map(|(item,)| format!("{what} {item}")));
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(StoreError::InvariantViolated(violations))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(asset: &str, amount: u64, credit: bool) -> Leg {
        Leg {
            account: Uuid::nil(),
            asset: asset.parse().unwrap(),
            amount: Amount::from(amount),
            credit,
            tracked: false,
        }
    }

    #[test]
    fn balanced_postings_pass_per_asset() {
        let legs = [
            leg("a:X", 5, false),
            leg("a:X", 5, true),
            leg("a:Y", 2, false),
            leg("a:Y", 2, true),
        ];
        assert!(check_balanced(&legs).is_ok());
    }

    #[test]
    fn unbalanced_or_cross_asset_postings_are_rejected() {
        assert!(check_balanced(&[leg("a:X", 5, false), leg("a:X", 4, true)]).is_err());
        // Balanced in total but not per asset.
        assert!(check_balanced(&[leg("a:X", 5, false), leg("a:Y", 5, true)]).is_err());
        assert!(check_balanced(&[leg("a:X", 0, false), leg("a:X", 0, true)]).is_err());
    }
}
