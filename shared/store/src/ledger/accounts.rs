//! Merchant account pairs (locked in id order) and the system accounts, created on first use.

use std::collections::BTreeMap;

use meshpay_domain::{Amount, AssetId, MerchantId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::AccountKind;
use crate::convert;
use crate::error::{Result, StoreError};

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
pub(super) async fn system_account(
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
