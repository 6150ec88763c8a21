//! A sweep's posting: what it brought to the treasury moves from each asset's `payins` account
//! (the outside world pay-ins come from) to `hot_wallets`, and its gas from `hot_wallets` to
//! `network_fees`; a token the configuration does not know (an operator's sweep) goes from
//! `payins` to `unrecognized`, never to a merchant. One ledger transaction per sweep (`sweep`, reference `sweep:<id>`), so a
//! repeated confirmation posts nothing twice.

use meshpay_domain::{Amount, AssetId};
use sqlx::PgConnection;
use uuid::Uuid;

use super::accounts::system_account;
use super::postings::{Leg, check_balanced, write_legs};
use super::{AccountKind, TxKind};
use crate::error::Result;

/// Posts the sweep under `reference`; `false` when it was posted before (nothing written).
pub(crate) async fn post_sweep(
    conn: &mut PgConnection,
    reference: &str,
    flows: &[(AssetId, Amount)],
    unrecognized: &[(AssetId, Amount)],
    fee: Option<(&AssetId, Amount)>,
    details: &serde_json::Value,
) -> Result<bool> {
    let tx_id = Uuid::now_v7();
    let inserted: Option<(Uuid,)> = sqlx::query_as(
        "INSERT INTO ledger_transactions (id, kind, reference, details) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kind, reference) WHERE reference IS NOT NULL DO NOTHING RETURNING id",
    )
    .bind(tx_id)
    .bind(TxKind::Sweep.as_str())
    .bind(reference)
    .bind(details)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        return Ok(false);
    }
    let mut legs = Vec::new();
    let mut pair = |from: Uuid, to: Uuid, asset: &AssetId, amount: Amount| {
        for (account, credit) in [(from, false), (to, true)] {
            legs.push(Leg {
                account,
                asset: asset.clone(),
                amount,
                credit,
                tracked: false,
            });
        }
    };
    let mut accounts = Vec::new();
    for (asset, amount) in flows.iter().filter(|(_, a)| !a.is_zero()) {
        let payins = system_account(conn, AccountKind::Payins, asset).await?;
        let wallets = system_account(conn, AccountKind::HotWallets, asset).await?;
        accounts.push((payins, wallets, asset, *amount));
    }
    for (asset, amount) in unrecognized.iter().filter(|(_, a)| !a.is_zero()) {
        let payins = system_account(conn, AccountKind::Payins, asset).await?;
        let held = system_account(conn, AccountKind::Unrecognized, asset).await?;
        accounts.push((payins, held, asset, *amount));
    }
    for (from, to, asset, amount) in accounts {
        pair(from, to, asset, amount);
    }
    if let Some((native, fee)) = fee.filter(|(_, f)| !f.is_zero()) {
        let wallets = system_account(conn, AccountKind::HotWallets, native).await?;
        let fees = system_account(conn, AccountKind::NetworkFees, native).await?;
        pair(wallets, fees, native, fee);
    }
    if !legs.is_empty() {
        check_balanced(&legs)?;
        write_legs(conn, tx_id, &legs).await?;
    }
    Ok(true)
}
