//! authorize_payment: holds, outbox, idempotency, quote and limit rules.

use meshpay_domain::{Amount, FeeBps, PaymentMessage, PaymentStatus};
use meshpay_store::{
    AssetLimit, AuthorizeOutcome, LimitKind, NewMerchant, StoreError, request_fingerprint, topics,
};
use meshpay_testkit::assets::{eth, usdc};

use crate::support::*;

#[tokio::test]
async fn authorize_holds_the_total_debit_and_the_network_fee_and_queues_the_broadcast() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let q = quote(s, m, 250).await;
    let p = authorize(s, m, &q, "k1").await;

    assert_eq!(p.status, PaymentStatus::Authorized);
    assert_eq!(p.version, 1);
    assert_eq!(p.charges.total_debit, Amount::from(250_625_000u64));
    assert_eq!(s.get_payment(m, p.id).await.unwrap().unwrap(), p);

    let balances = s.balances(m).await.unwrap();
    let usdc_bal = balances.iter().find(|b| b.asset == usdc()).unwrap();
    assert_eq!(usdc_bal.held, Amount::from(250_625_000u64));
    assert_eq!(
        usdc_bal.available,
        Amount::from(1_000_000_000u64 - 250_625_000)
    );
    let eth_bal = balances.iter().find(|b| b.asset == eth()).unwrap();
    assert_eq!(eth_bal.held, network_fee());

    let outbox = s.outbox_for_payment(p.id).await.unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].0, topics::PAYMENTS_BROADCAST);
    assert_eq!(
        serde_json::from_value::<PaymentMessage>(outbox[0].1.clone()).unwrap(),
        PaymentMessage::new(p.id)
    );
    assert_eq!(outbox[1].1["type"], "payment.authorized");

    let events = s.payment_events(p.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].from_status, events[0].to_status),
        (PaymentStatus::Quoted, PaymentStatus::Authorized)
    );
    assert_eq!(
        s.get_quote(m, q.id).await.unwrap().unwrap().used_by_payment,
        Some(p.id)
    );
    ctx.finish().await;
}

#[tokio::test]
async fn same_key_and_request_replays_the_original_response_without_a_second_payment() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 1000).await;
    let q = quote(s, m, 10).await;
    let first = s
        .authorize_payment(&request(m, &q, "k"), render)
        .await
        .unwrap();
    let second = s
        .authorize_payment(&request(m, &q, "k"), |_| panic!("must not render"))
        .await
        .unwrap();
    assert!(matches!(first, AuthorizeOutcome::Created { .. }));
    assert!(matches!(second, AuthorizeOutcome::Replayed { .. }));
    assert_eq!(first.response(), second.response());
    assert_eq!(first.payment_id(), second.payment_id());
    assert_eq!(count(s, "SELECT count(*) FROM payments").await, 1);
    ctx.finish().await;
}

#[tokio::test]
async fn same_key_with_a_different_request_is_rejected_and_writes_nothing() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 1000).await;
    let q1 = quote(s, m, 10).await;
    let q2 = quote(s, m, 20).await;
    authorize(s, m, &q1, "k").await;
    let err = s
        .authorize_payment(&request(m, &q2, "k"), render)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyKeyReused), "{err:?}");
    assert_eq!(
        s.get_quote(m, q2.id)
            .await
            .unwrap()
            .unwrap()
            .used_by_payment,
        None
    );
    assert_eq!(count(s, "SELECT count(*) FROM payments").await, 1);
    ctx.finish().await;
}

#[tokio::test]
async fn one_key_is_independent_per_merchant() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let a = merchant_with_usdc(s, 0, 100).await;
    let b = merchant_with_usdc(s, 0, 100).await;
    let (qa, qb) = (quote(s, a, 1).await, quote(s, b, 1).await);
    authorize(s, a, &qa, "shared-key").await;
    authorize(s, b, &qb, "shared-key").await;
    ctx.finish().await;
}

#[tokio::test]
async fn a_failed_authorization_does_not_consume_the_key() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 5).await;
    let q = quote(s, m, 10).await;
    let err = s
        .authorize_payment(&request(m, &q, "k"), render)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InsufficientFunds { .. }),
        "{err:?}"
    );
    s.fund(m, &usdc(), usdc_units(10), "top-up").await.unwrap();
    authorize(s, m, &q, "k").await;
    ctx.finish().await;
}

#[tokio::test]
async fn insufficient_funds_names_the_asset_and_amounts_and_changes_nothing() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 5).await;
    let q = quote(s, m, 6).await;
    match s
        .authorize_payment(&request(m, &q, "k"), render)
        .await
        .unwrap_err()
    {
        StoreError::InsufficientFunds {
            asset,
            available,
            required,
        } => {
            assert_eq!(asset, usdc());
            assert_eq!(available, usdc_units(5));
            assert_eq!(required, usdc_units(6));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count(s, "SELECT count(*) FROM payments").await, 0);
    assert_eq!(count(s, "SELECT count(*) FROM outbox").await, 0);
    ctx.finish().await;
}

#[tokio::test]
async fn an_unfunded_network_fee_asset_is_insufficient_funds() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    s.fund(m, &usdc(), usdc_units(100), "usdc-only")
        .await
        .unwrap();
    let q = quote(s, m, 10).await;
    let err = s
        .authorize_payment(&request(m, &q, "k"), render)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InsufficientFunds { ref asset, .. } if *asset == eth()),
        "{err:?}"
    );
    ctx.finish().await;
}

#[tokio::test]
async fn expired_quotes_cannot_be_authorized() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 100).await;
    let q = quote_with(s, m, usdc(), usdc_units(1), time::Duration::seconds(-1)).await;
    let err = s
        .authorize_payment(&request(m, &q, "k"), render)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QuoteExpired), "{err:?}");
    ctx.finish().await;
}

#[tokio::test]
async fn a_used_quote_cannot_pay_twice_under_another_key() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 100).await;
    let q = quote(s, m, 1).await;
    authorize(s, m, &q, "k1").await;
    let err = s
        .authorize_payment(&request(m, &q, "k2"), render)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QuoteAlreadyUsed), "{err:?}");
    ctx.finish().await;
}

#[tokio::test]
async fn another_merchants_quote_is_not_found() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let owner = merchant_with_usdc(s, 0, 100).await;
    let thief = merchant_with_usdc(s, 0, 100).await;
    let q = quote(s, owner, 1).await;
    let err = s
        .authorize_payment(&request(thief, &q, "k"), render)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(s.get_quote(thief, q.id).await.unwrap(), None);
    assert!(s.get_quote(owner, q.id).await.unwrap().is_some());
    ctx.finish().await;
}

#[tokio::test]
async fn per_payment_and_daily_limits_are_enforced() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = s
        .create_merchant(&NewMerchant {
            name: "Limited".into(),
            service_fee_bps: FeeBps::ZERO,
            limits: vec![AssetLimit {
                asset: usdc(),
                max_per_payment: Some(usdc_units(50)),
                daily_max: Some(usdc_units(100)),
            }],
        })
        .await
        .unwrap()
        .id;
    s.fund(m, &usdc(), usdc_units(1000), "f1").await.unwrap();
    s.fund(m, &eth(), Amount::from(10u64.pow(18)), "f2")
        .await
        .unwrap();

    let big = quote(s, m, 51).await;
    let err = s
        .authorize_payment(&request(m, &big, "big"), render)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::LimitExceeded {
                which: LimitKind::PerPayment,
                ..
            }
        ),
        "{err:?}"
    );

    let p1 = authorize(s, m, &quote(s, m, 50).await, "a").await;
    authorize(s, m, &quote(s, m, 40).await, "b").await;
    let over = quote(s, m, 11).await;
    let err = s
        .authorize_payment(&request(m, &over, "c"), render)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::LimitExceeded {
                which: LimitKind::Daily,
                ..
            }
        ),
        "{err:?}"
    );
    // A cancelled payment no longer counts against the day.
    s.cancel_payment(m, p1.id).await.unwrap();
    authorize(s, m, &over, "c").await;
    ctx.finish().await;
}

#[tokio::test]
async fn native_asset_payments_hold_one_debit_including_the_network_fee() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 100, 0).await;
    let q = quote_with(
        s,
        m,
        eth(),
        Amount::from(10u64.pow(17)),
        time::Duration::seconds(60),
    )
    .await;
    let p = authorize(s, m, &q, "k").await;
    let expected = 10u64.pow(17) + 10u64.pow(15) + 130_000_000_000_000;
    assert_eq!(p.charges.total_debit, Amount::from(expected));
    let bal = s
        .balances(m)
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.asset == eth())
        .unwrap();
    assert_eq!(bal.held, Amount::from(expected));
    ctx.finish().await;
}

#[test]
fn fingerprints_of_distinct_quotes_differ() {
    let a = request_fingerprint(&serde_json::json!({"quote_id": "quo_1"}));
    let b = request_fingerprint(&serde_json::json!({"quote_id": "quo_2"}));
    assert_ne!(a, b);
}
