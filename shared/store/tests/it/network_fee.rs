//! The network fee at the end of a payment: held at its quoted maximum, charged at what the chain
//! actually took (settlement, or a mined transaction that reverted), the rest released.

use meshpay_domain::{Amount, AssetId, MerchantId, PaymentEvent, PaymentStatus};
use meshpay_store::{Payment, Store, StoreError, Transition};
use meshpay_testkit::assets::{eth, usdc};

use crate::support::*;

/// 1 ETH, as funded by `merchant_with_usdc`.
const FUNDED_ETH: u64 = 1_000_000_000_000_000_000;

/// What the chain charged in the review example: far below the quoted maximum.
fn charged() -> Amount {
    Amount::from(86_207_104_363_380u64)
}

fn wei(n: u64) -> Amount {
    Amount::from(n)
}

async fn balance(s: &Store, m: MerchantId, asset: &AssetId) -> (Amount, Amount) {
    let b = s
        .balances(m)
        .await
        .unwrap()
        .into_iter()
        .find(|b| &b.asset == asset)
        .unwrap();
    (b.available, b.held)
}

/// Sum of the entries of the asset's network-fee account.
async fn network_fee_account(s: &Store, asset: &AssetId) -> Amount {
    let (sum,): (Option<String>,) = sqlx::query_as(
        "SELECT sum(e.amount)::text FROM ledger_entries e
           JOIN ledger_accounts a ON a.id = e.account_id
          WHERE a.kind = 'network_fees' AND a.asset = $1",
    )
    .bind(asset.to_string())
    .fetch_one(s.pool())
    .await
    .unwrap();
    sum.map_or(Amount::ZERO, |n| n.parse().unwrap())
}

/// The payment's ledger transactions, in order.
async fn postings(s: &Store, p: &Payment) -> Vec<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT kind FROM ledger_transactions WHERE payment_id = $1 ORDER BY id")
            .bind(p.id.as_uuid())
            .fetch_all(s.pool())
            .await
            .unwrap();
    rows.into_iter().map(|(k,)| k).collect()
}

/// Authorizes, broadcasts and (with `confirm`) confirms a payment of `asset`.
async fn in_flight(
    s: &Store,
    m: MerchantId,
    asset: AssetId,
    amount: Amount,
    confirm: bool,
) -> Payment {
    let q = quote_with(s, m, asset, amount, time::Duration::seconds(60)).await;
    let p = authorize(s, m, &q, &q.id.to_string()).await;
    let mut p = s
        .transition_payment(&Transition::new(p.id, 1, PaymentEvent::Broadcast))
        .await
        .unwrap();
    if confirm {
        p = s
            .transition_payment(&Transition::new(p.id, 2, PaymentEvent::Confirm))
            .await
            .unwrap();
    }
    p
}

fn settle(p: &Payment, network_fee: Amount) -> Transition {
    Transition::new(p.id, p.version, PaymentEvent::Settle { network_fee })
}

#[tokio::test]
async fn settling_charges_the_actual_network_fee_and_releases_the_rest_of_the_hold() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let p = in_flight(s, m, usdc(), usdc_units(250), true).await;
    assert_eq!(balance(s, m, &eth()).await.1, network_fee());

    let settled = s.transition_payment(&settle(&p, charged())).await.unwrap();

    assert_eq!(settled.status, PaymentStatus::Settled);
    assert_eq!(settled.network_fee_actual, Some(charged()));
    // Only the actual fee left the merchant's native balance; nothing is held any more.
    assert_eq!(
        balance(s, m, &eth()).await,
        (
            wei(FUNDED_ETH).checked_sub(charged()).unwrap(),
            Amount::ZERO
        )
    );
    assert_eq!(
        balance(s, m, &usdc()).await,
        (
            usdc_units(1000).checked_sub(p.charges.total_debit).unwrap(),
            Amount::ZERO
        )
    );
    assert_eq!(network_fee_account(s, &eth()).await, charged());
    assert_eq!(postings(s, &p).await, ["hold", "settle", "release"]);
    let event = s.payment_events(p.id).await.unwrap().pop().unwrap();
    assert_eq!(event.event, "settle");
    ctx.finish().await;
}

#[tokio::test]
async fn a_native_payment_pays_amount_service_fee_and_only_the_actual_network_fee() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 100, 0).await;
    let amount = wei(10_000_000_000_000_000);
    let p = in_flight(s, m, eth(), amount, true).await;
    assert_eq!(
        p.charges.total_debit,
        amount
            .checked_add(p.charges.service_fee)
            .and_then(|n| n.checked_add(network_fee()))
            .unwrap()
    );

    s.transition_payment(&settle(&p, charged())).await.unwrap();

    let paid = amount
        .checked_add(p.charges.service_fee)
        .and_then(|n| n.checked_add(charged()))
        .unwrap();
    assert_eq!(
        balance(s, m, &eth()).await,
        (wei(FUNDED_ETH).checked_sub(paid).unwrap(), Amount::ZERO)
    );
    assert_eq!(network_fee_account(s, &eth()).await, charged());
    ctx.finish().await;
}

#[tokio::test]
async fn settling_at_the_quoted_maximum_releases_nothing() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let p = in_flight(s, m, usdc(), usdc_units(10), true).await;

    s.transition_payment(&settle(&p, network_fee()))
        .await
        .unwrap();

    assert_eq!(
        balance(s, m, &eth()).await,
        (
            wei(FUNDED_ETH).checked_sub(network_fee()).unwrap(),
            Amount::ZERO
        )
    );
    assert_eq!(postings(s, &p).await, ["hold", "settle"]);
    ctx.finish().await;
}

#[tokio::test]
async fn a_reverted_transaction_pays_its_network_fee_and_releases_everything_else() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let p = in_flight(s, m, usdc(), usdc_units(250), false).await;

    let failed = s
        .transition_payment(&Transition::new(
            p.id,
            p.version,
            PaymentEvent::fail_mined("transaction reverted", charged()),
        ))
        .await
        .unwrap();

    assert_eq!(failed.status, PaymentStatus::Failed);
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("transaction reverted")
    );
    assert_eq!(failed.network_fee_actual, Some(charged()));
    // The token hold (amount + service fee) is back in full; of the native hold only the gas
    // really spent is gone.
    assert_eq!(
        balance(s, m, &usdc()).await,
        (usdc_units(1000), Amount::ZERO)
    );
    assert_eq!(
        balance(s, m, &eth()).await,
        (
            wei(FUNDED_ETH).checked_sub(charged()).unwrap(),
            Amount::ZERO
        )
    );
    assert_eq!(network_fee_account(s, &eth()).await, charged());
    assert_eq!(postings(s, &p).await, ["hold", "network_fee", "release"]);
    ctx.finish().await;
}

#[tokio::test]
async fn a_failure_before_anything_was_mined_releases_the_whole_hold() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let before = s.balances(m).await.unwrap();
    let p = in_flight(s, m, usdc(), usdc_units(250), false).await;

    let failed = s
        .transition_payment(&Transition::new(
            p.id,
            p.version,
            PaymentEvent::fail("rejected by the node: nonce too low"),
        ))
        .await
        .unwrap();

    assert_eq!(failed.network_fee_actual, None);
    assert_eq!(s.balances(m).await.unwrap(), before);
    assert_eq!(network_fee_account(s, &eth()).await, Amount::ZERO);
    assert_eq!(postings(s, &p).await, ["hold", "release"]);
    ctx.finish().await;
}

#[tokio::test]
async fn a_second_settlement_changes_nothing() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let p = in_flight(s, m, usdc(), usdc_units(250), true).await;
    let settled = s.transition_payment(&settle(&p, charged())).await.unwrap();
    let balances = s.balances(m).await.unwrap();

    // A redelivery that read the payment before it settled (stale version), one that read it
    // after (settled is terminal), and one with another fee: all refused.
    let stale = s
        .transition_payment(&settle(&p, charged()))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { .. }), "{stale:?}");
    let again = s
        .transition_payment(&settle(&settled, wei(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(again, StoreError::IllegalTransition(_)),
        "{again:?}"
    );

    assert_eq!(s.balances(m).await.unwrap(), balances);
    assert_eq!(postings(s, &p).await, ["hold", "settle", "release"]);
    let now = s.get_payment(m, p.id).await.unwrap().unwrap();
    assert_eq!(
        (now.version, now.network_fee_actual),
        (settled.version, Some(charged()))
    );
    ctx.finish().await;
}

#[tokio::test]
async fn concurrent_settlements_post_once() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let p = in_flight(s, m, usdc(), usdc_units(250), true).await;
    let t = settle(&p, charged());

    let results = settle_concurrently(s, &t, 8).await;

    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert_eq!(network_fee_account(s, &eth()).await, charged());
    assert_eq!(postings(s, &p).await, ["hold", "settle", "release"]);
    ctx.finish().await;
}

async fn settle_concurrently(
    s: &Store,
    t: &Transition,
    n: usize,
) -> Vec<Result<Payment, StoreError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (s, t) = (s.clone(), t.clone());
        tasks.spawn(async move { s.transition_payment(&t).await });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn a_network_fee_above_the_hold_is_refused_and_nothing_is_written() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let confirmed = in_flight(s, m, usdc(), usdc_units(250), true).await;
    let broadcast = in_flight(s, m, usdc(), usdc_units(5), false).await;
    let balances = s.balances(m).await.unwrap();
    let more = network_fee().checked_add(wei(1)).unwrap();

    let err = s
        .transition_payment(&settle(&confirmed, more))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NetworkFeeExceedsHold { payment, charged, held }
            if payment == confirmed.id && charged == more && held == network_fee()),
        "{err:?}"
    );
    let err = s
        .transition_payment(&Transition::new(
            broadcast.id,
            broadcast.version,
            PaymentEvent::fail_mined("reverted", more),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NetworkFeeExceedsHold { .. }),
        "{err:?}"
    );

    // Nothing moved, nothing changed: both still hold their funds.
    assert_eq!(s.balances(m).await.unwrap(), balances);
    for p in [&confirmed, &broadcast] {
        let now = s.get_payment(m, p.id).await.unwrap().unwrap();
        assert_eq!(
            (now.status, now.version, now.network_fee_actual),
            (p.status, p.version, None)
        );
        assert_eq!(postings(s, p).await, ["hold"]);
    }
    // The database refuses a recorded fee above the hold as well.
    let direct =
        sqlx::query("UPDATE payments SET network_fee_actual = network_fee + 1 WHERE id = $1")
            .bind(confirmed.id.as_uuid())
            .execute(s.pool())
            .await;
    assert!(direct.is_err(), "{direct:?}");
    ctx.finish().await;
}

#[tokio::test]
async fn the_invariant_check_reports_a_recorded_fee_that_differs_from_its_posting() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let p = in_flight(s, m, usdc(), usdc_units(250), true).await;
    s.transition_payment(&settle(&p, charged())).await.unwrap();
    s.check_ledger_invariants().await.unwrap();

    sqlx::query("UPDATE payments SET network_fee_actual = network_fee_actual - 1 WHERE id = $1")
        .bind(p.id.as_uuid())
        .execute(s.pool())
        .await
        .unwrap();
    let err = s.check_ledger_invariants().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("recorded network fee differs from its postings"),
        "{err}"
    );
    // Put it back so the closing check passes.
    sqlx::query("UPDATE payments SET network_fee_actual = network_fee_actual + 1 WHERE id = $1")
        .bind(p.id.as_uuid())
        .execute(s.pool())
        .await
        .unwrap();
    ctx.finish().await;
}
