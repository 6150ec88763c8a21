//! Balanced postings: one `ledger_transactions` row, its entries, and the cached balance deltas.

use std::collections::BTreeMap;

use meshpay_domain::{Amount, AssetId, PaymentId, U256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::TxKind;
use crate::convert;
use crate::error::{Result, StoreError};

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
pub(super) fn check_balanced(legs: &[Leg]) -> Result<()> {
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

pub(super) async fn write_legs(conn: &mut PgConnection, tx_id: Uuid, legs: &[Leg]) -> Result<()> {
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
