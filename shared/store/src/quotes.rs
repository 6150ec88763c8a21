//! Quotes: a priced offer to pay `amount` of an asset to `recipient`, valid until `expires_at`,
//! usable by at most one payment.

use meshpay_domain::{Address, Charges, MerchantId, PaymentId, QuoteId};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::convert;
use crate::error::{Result, StoreError};

#[derive(Debug, Clone)]
pub struct NewQuote {
    pub merchant_id: MerchantId,
    /// From [`Charges::compute`]; the store re-checks the arithmetic.
    pub charges: Charges,
    pub recipient: Address,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub id: QuoteId,
    pub merchant_id: MerchantId,
    pub charges: Charges,
    pub recipient: Address,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The payment that used this quote, if any.
    pub used_by_payment: Option<PaymentId>,
}

impl Quote {
    /// The chain name (`anvil`): the asset's chain.
    pub fn chain(&self) -> &str {
        self.charges.asset.chain()
    }
}

/// Columns shared by quotes and payments (the payment copies the quote's terms).
#[derive(sqlx::FromRow)]
pub(crate) struct TermsRow {
    pub asset: String,
    pub amount: String,
    pub recipient: String,
    pub service_fee_bps: i32,
    pub service_fee: String,
    pub network_fee_asset: String,
    pub network_fee: String,
    pub total_debit: String,
    pub gas_limit: i64,
    pub max_fee_per_gas: String,
    pub max_priority_fee_per_gas: String,
}

/// SELECT list for [`TermsRow`].
pub(crate) const TERMS_COLUMNS: &str = "asset, amount::text AS amount, recipient, service_fee_bps, \
     service_fee::text AS service_fee, network_fee_asset, network_fee::text AS network_fee, \
     total_debit::text AS total_debit, gas_limit, max_fee_per_gas::text AS max_fee_per_gas, \
     max_priority_fee_per_gas::text AS max_priority_fee_per_gas";

pub(crate) struct Terms {
    pub charges: Charges,
    pub recipient: Address,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

impl TermsRow {
    pub(crate) fn into_terms(self) -> Result<Terms> {
        Ok(Terms {
            charges: Charges {
                asset: convert::asset(&self.asset)?,
                amount: convert::amount(&self.amount)?,
                service_fee_bps: convert::fee_bps(self.service_fee_bps)?,
                service_fee: convert::amount(&self.service_fee)?,
                network_fee_asset: convert::asset(&self.network_fee_asset)?,
                network_fee: convert::amount(&self.network_fee)?,
                total_debit: convert::amount(&self.total_debit)?,
            },
            recipient: convert::address(&self.recipient)?,
            gas_limit: convert::u64_from_i64(self.gas_limit, "gas_limit")?,
            max_fee_per_gas: convert::u128_text(&self.max_fee_per_gas)?,
            max_priority_fee_per_gas: convert::u128_text(&self.max_priority_fee_per_gas)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct QuoteRow {
    id: Uuid,
    merchant_id: Uuid,
    #[sqlx(flatten)]
    terms: TermsRow,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    used_by_payment: Option<Uuid>,
}

impl QuoteRow {
    fn into_quote(self) -> Result<Quote> {
        let terms = self.terms.into_terms()?;
        Ok(Quote {
            id: QuoteId::from_uuid(self.id),
            merchant_id: MerchantId::from_uuid(self.merchant_id),
            charges: terms.charges,
            recipient: terms.recipient,
            gas_limit: terms.gas_limit,
            max_fee_per_gas: terms.max_fee_per_gas,
            max_priority_fee_per_gas: terms.max_priority_fee_per_gas,
            created_at: self.created_at,
            expires_at: self.expires_at,
            used_by_payment: self.used_by_payment.map(PaymentId::from_uuid),
        })
    }
}

fn check_charges(c: &Charges) -> Result<()> {
    let recomputed = Charges::compute(
        c.asset.clone(),
        c.amount,
        c.service_fee_bps,
        c.network_fee_asset.clone(),
        c.network_fee,
    )
    .map_err(|e| StoreError::Invalid(format!("quote charges: {e}")))?;
    if &recomputed != c {
        return Err(StoreError::Invalid("quote charges do not add up".into()));
    }
    if c.asset.chain() != c.network_fee_asset.chain() {
        return Err(StoreError::Invalid(
            "network fee asset is on another chain".into(),
        ));
    }
    Ok(())
}

impl Store {
    /// Stores a quote (NotFound if the merchant does not exist).
    pub async fn insert_quote(&self, new: &NewQuote) -> Result<Quote> {
        check_charges(&new.charges)?;
        let gas_limit = i64::try_from(new.gas_limit)
            .map_err(|_| StoreError::Invalid("gas limit too large".into()))?;
        let c = &new.charges;
        let id = QuoteId::new();
        let inserted = sqlx::query(
            "INSERT INTO quotes (id, merchant_id, chain, asset, amount, recipient, service_fee_bps,
                 service_fee, network_fee_asset, network_fee, total_debit, gas_limit,
                 max_fee_per_gas, max_priority_fee_per_gas, expires_at)
             SELECT $1, $2, $3, $4, $5::numeric, $6, $7, $8::numeric, $9, $10::numeric,
                 $11::numeric, $12, $13::numeric, $14::numeric, $15
             WHERE EXISTS (SELECT 1 FROM merchants WHERE id = $2)",
        )
        .bind(id.as_uuid())
        .bind(new.merchant_id.as_uuid())
        .bind(c.asset.chain())
        .bind(c.asset.to_string())
        .bind(c.amount.to_string())
        .bind(new.recipient.to_checksum(None))
        .bind(i32::from(c.service_fee_bps.get()))
        .bind(c.service_fee.to_string())
        .bind(c.network_fee_asset.to_string())
        .bind(c.network_fee.to_string())
        .bind(c.total_debit.to_string())
        .bind(gas_limit)
        .bind(new.max_fee_per_gas.to_string())
        .bind(new.max_priority_fee_per_gas.to_string())
        .bind(new.expires_at)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_quote(new.merchant_id, id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// The merchant's quote, or `None` (also when it belongs to another merchant).
    pub async fn get_quote(&self, merchant_id: MerchantId, id: QuoteId) -> Result<Option<Quote>> {
        let mut conn = self.pool.acquire().await?;
        select_quote(&mut conn, merchant_id, id, false).await
    }
}

/// Reads a quote of `merchant_id`, optionally locking it (`FOR UPDATE`) for the transaction.
pub(crate) async fn select_quote(
    conn: &mut PgConnection,
    merchant_id: MerchantId,
    id: QuoteId,
    lock: bool,
) -> Result<Option<Quote>> {
    let sql = format!(
        "SELECT id, merchant_id, {TERMS_COLUMNS}, created_at, expires_at, used_by_payment
         FROM quotes WHERE id = $1 AND merchant_id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row: Option<QuoteRow> = sqlx::query_as(&sql)
        .bind(id.as_uuid())
        .bind(merchant_id.as_uuid())
        .fetch_optional(conn)
        .await?;
    row.map(QuoteRow::into_quote).transpose()
}
