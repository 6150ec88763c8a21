//! Funding a merchant and reading its balances.

use std::collections::BTreeMap;

use meshpay_domain::{Amount, AssetId, MerchantId};
use uuid::Uuid;

use super::accounts::{lock_merchant_accounts, system_account};
use super::postings::{Leg, check_balanced, write_legs};
use super::{AccountKind, TxKind};
use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};

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
}
