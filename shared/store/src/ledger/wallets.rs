//! Postings of the hot wallets' books: an opening balance or a top-up (the asset's `funding`
//! account, the outside world, to its `hot_wallets` account) and a gap fill's network fee
//! (`hot_wallets` to `network_fees`). Each is idempotent by its reference.

use meshpay_domain::{Amount, AssetId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::accounts::system_account;
use super::postings::{Leg, check_balanced, write_legs};
use super::{AccountKind, TxKind};
use crate::error::Result;

/// What a hot-wallet posting records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WalletPosting {
    Opening,
    Topup,
    GapFillFee,
    /// The chain charged more (`true`: `hot_wallets` to `network_fees`) or less than posted.
    FeeAdjustment {
        increase: bool,
    },
}

/// Posts `amount` of `asset` for `posting` under `reference` (unique per kind), with `details`.
/// Returns the ledger transaction; an existing one with the same reference is returned as is.
pub(crate) async fn post_wallet(
    conn: &mut PgConnection,
    posting: WalletPosting,
    asset: &AssetId,
    amount: Amount,
    reference: &str,
    details: &serde_json::Value,
) -> Result<Uuid> {
    let (kind, from, to) = match posting {
        WalletPosting::Opening => (
            TxKind::WalletOpening,
            AccountKind::Funding,
            AccountKind::HotWallets,
        ),
        WalletPosting::Topup => (
            TxKind::WalletTopup,
            AccountKind::Funding,
            AccountKind::HotWallets,
        ),
        WalletPosting::GapFillFee | WalletPosting::FeeAdjustment { increase: true } => (
            if posting == WalletPosting::GapFillFee {
                TxKind::GapFillFee
            } else {
                TxKind::FeeAdjustment
            },
            AccountKind::HotWallets,
            AccountKind::NetworkFees,
        ),
        WalletPosting::FeeAdjustment { increase: false } => (
            TxKind::FeeAdjustment,
            AccountKind::NetworkFees,
            AccountKind::HotWallets,
        ),
    };
    let tx_id = Uuid::now_v7();
    let inserted: Option<(Uuid,)> = sqlx::query_as(
        "INSERT INTO ledger_transactions (id, kind, reference, details) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kind, reference) WHERE reference IS NOT NULL DO NOTHING RETURNING id",
    )
    .bind(tx_id)
    .bind(kind.as_str())
    .bind(reference)
    .bind(details)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        let (existing,): (Uuid,) =
            sqlx::query_as("SELECT id FROM ledger_transactions WHERE kind = $1 AND reference = $2")
                .bind(kind.as_str())
                .bind(reference)
                .fetch_one(&mut *conn)
                .await?;
        return Ok(existing);
    }
    let from = system_account(conn, from, asset).await?;
    let to = system_account(conn, to, asset).await?;
    let legs = [
        Leg {
            account: from,
            asset: asset.clone(),
            amount,
            credit: false,
            tracked: false,
        },
        Leg {
            account: to,
            asset: asset.clone(),
            amount,
            credit: true,
            tracked: false,
        },
    ];
    check_balanced(&legs)?;
    write_legs(conn, tx_id, &legs).await?;
    Ok(tx_id)
}
