//! Funding, balances, and the database's own guards on the ledger.

use meshpay_domain::Amount;
use meshpay_store::StoreError;
use meshpay_testkit::assets::{eth, usdc};

use crate::support::*;

#[tokio::test]
async fn funding_is_idempotent_by_reference() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    let first = s
        .fund(m, &usdc(), usdc_units(1000), "wire-42")
        .await
        .unwrap();
    let again = s
        .fund(m, &usdc(), usdc_units(1000), "wire-42")
        .await
        .unwrap();
    assert!(first.created && !again.created);
    assert_eq!(first.transaction_id, again.transaction_id);
    let bal = s.balances(m).await.unwrap();
    assert_eq!(bal.len(), 1);
    assert_eq!(
        (bal[0].available, bal[0].held),
        (usdc_units(1000), Amount::ZERO)
    );
    ctx.finish().await;
}

#[tokio::test]
async fn a_funding_reference_reused_with_other_details_is_rejected() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    let other = merchant(s, 0).await;
    s.fund(m, &usdc(), usdc_units(10), "ref").await.unwrap();
    for (who, asset, amount) in [
        (m, usdc(), usdc_units(11)),
        (m, eth(), usdc_units(10)),
        (other, usdc(), usdc_units(10)),
    ] {
        let err = s.fund(who, &asset, amount, "ref").await.unwrap_err();
        assert!(matches!(err, StoreError::ReferenceReused), "{err:?}");
    }
    assert_eq!(s.balances(m).await.unwrap()[0].available, usdc_units(10));
    assert!(s.balances(other).await.unwrap().is_empty());
    ctx.finish().await;
}

#[tokio::test]
async fn funding_rejects_zero_unknown_merchants_and_bad_references() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    assert!(matches!(
        s.fund(m, &usdc(), Amount::ZERO, "r").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.fund(m, &usdc(), usdc_units(1), "").await,
        Err(StoreError::Invalid(_))
    ));
    let ghost = meshpay_domain::MerchantId::new();
    assert!(matches!(
        s.fund(ghost, &usdc(), usdc_units(1), "r").await,
        Err(StoreError::NotFound)
    ));
    ctx.finish().await;
}

#[tokio::test]
async fn the_database_refuses_an_unbalanced_posting_at_commit() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    s.fund(m, &usdc(), usdc_units(10), "r").await.unwrap();
    let mut tx = s.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO ledger_transactions (id, kind) VALUES (gen_random_uuid(), 'fund')")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO ledger_entries (transaction_id, account_id, asset, amount)
         SELECT t.id, a.id, a.asset, 5 FROM ledger_transactions t, ledger_accounts a
         WHERE t.reference IS NULL AND t.kind = 'fund' AND a.kind = 'merchant_available'",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(err.to_string().contains("does not balance"), "{err}");
    ctx.finish().await;
}

#[tokio::test]
async fn history_tables_are_append_only() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 10).await;
    authorize(s, m, &quote(s, m, 1).await, "k").await;
    for sql in [
        "UPDATE ledger_entries SET amount = amount * 2",
        "DELETE FROM ledger_entries",
        "DELETE FROM ledger_transactions",
        "UPDATE payment_events SET to_status = 'settled'",
    ] {
        let err = sqlx::query(sql).execute(s.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    ctx.finish().await;
}

#[tokio::test]
async fn a_merchant_balance_can_never_be_written_negative() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    s.fund(m, &usdc(), usdc_units(1), "r").await.unwrap();
    let err = sqlx::query(
        "UPDATE ledger_accounts SET balance = balance - 2000000 WHERE kind = 'merchant_available'",
    )
    .execute(s.pool())
    .await
    .unwrap_err();
    assert!(err.to_string().contains("check constraint"), "{err}");
    ctx.finish().await;
}

#[tokio::test]
async fn invariant_check_reports_a_tampered_cached_balance() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    s.fund(m, &usdc(), usdc_units(1), "r").await.unwrap();
    sqlx::query(
        "UPDATE ledger_accounts SET balance = balance + 1 WHERE kind = 'merchant_available'",
    )
    .execute(s.pool())
    .await
    .unwrap();
    let err = s.check_ledger_invariants().await.unwrap_err();
    match err {
        StoreError::InvariantViolated(v) => {
            assert!(v.iter().any(|x| x.contains("cached balance")), "{v:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn kinds_are_rows_seeded_from_the_checks_they_replaced_and_referenced_by_foreign_keys() {
    let ctx = Ctx::new().await;
    let pool = ctx.store.pool();
    let kinds = |table: &'static str| async move {
        let kinds: Vec<String> =
            sqlx::query_scalar(&format!("SELECT kind FROM {table} ORDER BY kind"))
                .fetch_all(pool)
                .await
                .unwrap();
        kinds
    };
    let sorted = |v: Vec<&str>| {
        let mut v: Vec<String> = v.into_iter().map(str::to_owned).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(
        kinds("ledger_transaction_kinds").await,
        sorted(vec![
            "fund",
            "hold",
            "release",
            "settle",
            "network_fee",
            "wallet_opening",
            "wallet_topup",
            "gap_fill_fee",
            "fee_adjustment",
            "invoice_credit",
            "invoice_reversal",
            "sweep",
        ])
    );
    assert_eq!(
        kinds("ledger_account_kinds").await,
        sorted(vec![
            "merchant_available",
            "merchant_held",
            "funding",
            "outflow",
            "service_fees",
            "network_fees",
            "hot_wallets",
            "payins",
            "unrecognized",
        ])
    );
    assert_eq!(
        kinds("reconcile_discrepancy_kinds").await,
        sorted(vec![
            "nonce",
            "balance",
            "unknown_transaction",
            "settled_reorged",
            "settled_not_on_chain",
            "sweep_not_empty",
            "receipt_reorged",
            "sweep_reorged",
        ])
    );
    let (foreign, checks): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE contype = 'f'), count(*) FILTER (WHERE contype = 'c')
           FROM pg_constraint
          WHERE conname IN ('ledger_transactions_kind_fkey', 'ledger_accounts_kind_fkey',
                            'reconcile_discrepancies_kind_fkey', 'ledger_transactions_kind_check',
                            'ledger_accounts_kind_check', 'reconcile_discrepancies_kind_check')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((foreign, checks), (3, 0));
}
