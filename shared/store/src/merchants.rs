//! Merchants (tenants) and their per-asset limits.

use meshpay_domain::{Amount, AssetId, FeeBps, MerchantId};
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};

/// Limits for one asset, in its base units; `None` = unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetLimit {
    pub asset: AssetId,
    pub max_per_payment: Option<Amount>,
    pub daily_max: Option<Amount>,
}

#[derive(Debug, Clone)]
pub struct NewMerchant {
    pub name: String,
    pub service_fee_bps: FeeBps,
    pub limits: Vec<AssetLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub service_fee_bps: FeeBps,
    pub limits: Vec<AssetLimit>,
    pub created_at: OffsetDateTime,
}

impl Store {
    pub async fn create_merchant(&self, new: &NewMerchant) -> Result<Merchant> {
        let name = new.name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(StoreError::Invalid(
                "merchant name must be 1 to 200 bytes".into(),
            ));
        }
        let id = MerchantId::new();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO merchants (id, name, service_fee_bps) VALUES ($1, $2, $3)")
            .bind(id.as_uuid())
            .bind(name)
            .bind(i32::from(new.service_fee_bps.get()))
            .execute(&mut *tx)
            .await?;
        for limit in &new.limits {
            upsert_limit(&mut tx, id, limit).await?;
        }
        tx.commit().await?;
        self.get_merchant(id).await?.ok_or(StoreError::NotFound)
    }

    pub async fn get_merchant(&self, id: MerchantId) -> Result<Option<Merchant>> {
        let mut conn = self.pool.acquire().await?;
        let row: Option<(String, i32, OffsetDateTime)> =
            sqlx::query_as("SELECT name, service_fee_bps, created_at FROM merchants WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(&mut *conn)
                .await?;
        let Some((name, bps, created_at)) = row else {
            return Ok(None);
        };
        let limits = limits(&mut conn, id).await?;
        Ok(Some(Merchant {
            id,
            name,
            service_fee_bps: convert::fee_bps(bps)?,
            limits,
            created_at,
        }))
    }

    /// Sets (replaces) the merchant's limits for one asset.
    pub async fn set_limit(&self, merchant_id: MerchantId, limit: &AssetLimit) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        upsert_limit(&mut conn, merchant_id, limit).await
    }
}

async fn upsert_limit(conn: &mut PgConnection, id: MerchantId, limit: &AssetLimit) -> Result<()> {
    let result = sqlx::query(
        "INSERT INTO merchant_limits (merchant_id, asset, max_per_payment, daily_max)
         SELECT $1, $2, $3::numeric, $4::numeric WHERE EXISTS (SELECT 1 FROM merchants WHERE id = $1)
         ON CONFLICT (merchant_id, asset)
         DO UPDATE SET max_per_payment = EXCLUDED.max_per_payment, daily_max = EXCLUDED.daily_max",
    )
    .bind(id.as_uuid())
    .bind(limit.asset.to_string())
    .bind(limit.max_per_payment.map(|a| a.to_string()))
    .bind(limit.daily_max.map(|a| a.to_string()))
    .execute(conn)
    .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn limits(conn: &mut PgConnection, id: MerchantId) -> Result<Vec<AssetLimit>> {
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT asset, max_per_payment::text, daily_max::text FROM merchant_limits
         WHERE merchant_id = $1 ORDER BY asset",
    )
    .bind(id.as_uuid())
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(asset, max, daily)| {
            Ok(AssetLimit {
                asset: convert::asset(&asset)?,
                max_per_payment: max.as_deref().map(convert::amount).transpose()?,
                daily_max: daily.as_deref().map(convert::amount).transpose()?,
            })
        })
        .collect()
}
