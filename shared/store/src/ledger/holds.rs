//! Holds: placed when a payment is authorized, resolved (captured in part, released for the
//! rest) when it ends.

use std::collections::BTreeMap;

use meshpay_domain::{Amount, AssetId, CaptureTo, HoldResolution, MerchantId, PaymentId, U256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::accounts::{LockedPair, lock_merchant_accounts, system_account};
use super::postings::{Leg, post};
use super::{AccountKind, TxKind};
use crate::convert;
use crate::error::{Result, StoreError};

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
