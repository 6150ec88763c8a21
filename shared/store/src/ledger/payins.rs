//! Invoice credits: a final payment moves from the asset's `payins` account to the merchant's
//! available balance, the service fee to `service_fees`; a reorg that removes the payment posts
//! the exact opposite. Both are idempotent by reference (one per invoice, tx hash and log
//! index), so a redelivered or re-run detection never credits twice.

use meshpay_domain::{Amount, AssetId, FeeBps, MerchantId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::accounts::{lock_merchant_accounts, system_account};
use super::postings::{Leg, check_balanced, write_legs};
use super::{AccountKind, TxKind};
use crate::error::{Result, StoreError};

/// One payment to credit (or reverse).
#[derive(Debug, Clone)]
pub(crate) struct PayinPosting<'a> {
    pub merchant: MerchantId,
    pub asset: &'a AssetId,
    pub amount: Amount,
    pub fee_bps: FeeBps,
    /// `<invoice id>:<tx hash>:<log index>`.
    pub reference: &'a str,
}

/// Posts the credit; `false` when this reference was credited before.
pub(crate) async fn post_invoice_credit(
    conn: &mut PgConnection,
    posting: &PayinPosting<'_>,
) -> Result<bool> {
    post(conn, posting, TxKind::InvoiceCredit).await
}

/// Posts the reversal of a credit; `false` when it was reversed before.
pub(crate) async fn post_invoice_reversal(
    conn: &mut PgConnection,
    posting: &PayinPosting<'_>,
) -> Result<bool> {
    post(conn, posting, TxKind::InvoiceReversal).await
}

async fn post(conn: &mut PgConnection, posting: &PayinPosting<'_>, kind: TxKind) -> Result<bool> {
    let fee = posting
        .amount
        .fee(posting.fee_bps)
        .map_err(|e| StoreError::Invalid(format!("invoice fee: {e}")))?;
    let net = posting
        .amount
        .checked_sub(fee)
        .ok_or_else(|| StoreError::Invalid("invoice fee above amount".into()))?;
    let tx_id = Uuid::now_v7();
    let details = serde_json::json!({
        "merchant_id": posting.merchant, "asset": posting.asset,
        "amount": posting.amount, "service_fee": fee,
    });
    let inserted: Option<(Uuid,)> = sqlx::query_as(
        "INSERT INTO ledger_transactions (id, kind, reference, details) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kind, reference) WHERE reference IS NOT NULL DO NOTHING RETURNING id",
    )
    .bind(tx_id)
    .bind(kind.as_str())
    .bind(posting.reference)
    .bind(&details)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        return Ok(false);
    }
    let credit = kind == TxKind::InvoiceCredit;
    let payins = system_account(conn, AccountKind::Payins, posting.asset).await?;
    let fees = system_account(conn, AccountKind::ServiceFees, posting.asset).await?;
    let pairs = lock_merchant_accounts(
        conn,
        posting.merchant,
        std::slice::from_ref(posting.asset),
        true,
    )
    .await?;
    let pair = pairs.get(posting.asset).ok_or_else(|| {
        StoreError::Corrupt(format!("merchant accounts missing for {}", posting.asset))
    })?;
    if !credit && pair.available_balance < net {
        // The merchant already spent the credit: the reversal cannot be posted without an
        // overdraft, so it waits (visible on the invoice) until the balance covers it.
        return Err(StoreError::InsufficientFunds {
            asset: posting.asset.clone(),
            available: pair.available_balance,
            required: net,
        });
    }
    let leg = |account, amount: Amount, up: bool, tracked| Leg {
        account,
        asset: posting.asset.clone(),
        amount,
        credit: up == credit,
        tracked,
    };
    let mut legs = vec![
        leg(payins, posting.amount, false, false),
        leg(pair.available, net, true, true),
    ];
    if !fee.is_zero() {
        legs.push(leg(fees, fee, true, false));
    }
    legs.retain(|l| !l.amount.is_zero());
    check_balanced(&legs)?;
    write_legs(conn, tx_id, &legs).await?;
    Ok(true)
}
