//! Reads, listing, cancel and the transition primitive through the whole pipeline.

use meshpay_domain::{Amount, B256, PaymentEvent, PaymentStatus};
use meshpay_store::{ListPayments, NewOutboxMessage, PaymentPatch, StoreError, Transition, topics};
use meshpay_testkit::assets::usdc;

use crate::support::*;

#[tokio::test]
async fn cancel_releases_the_hold_and_records_the_event() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let before = s.balances(m).await.unwrap();
    let p = authorize(s, m, &quote(s, m, 250).await, "k").await;

    let cancelled = s.cancel_payment(m, p.id).await.unwrap();
    assert_eq!(cancelled.status, PaymentStatus::Cancelled);
    assert_eq!(cancelled.version, 2);
    assert_eq!(s.balances(m).await.unwrap(), before);
    let events = s.payment_events(p.id).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["authorize", "cancel"]
    );
    let outbox = s.outbox_for_payment(p.id).await.unwrap();
    assert_eq!(outbox.last().unwrap().1["type"], "payment.cancelled");

    let again = s.cancel_payment(m, p.id).await.unwrap_err();
    assert!(
        matches!(again, StoreError::IllegalTransition(_)),
        "{again:?}"
    );
    ctx.finish().await;
}

#[tokio::test]
async fn another_merchant_can_neither_read_nor_cancel_a_payment() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let owner = merchant_with_usdc(s, 0, 100).await;
    let other = merchant_with_usdc(s, 0, 100).await;
    let p = authorize(s, owner, &quote(s, owner, 1).await, "k").await;
    assert_eq!(s.get_payment(other, p.id).await.unwrap(), None);
    assert!(matches!(
        s.cancel_payment(other, p.id).await.unwrap_err(),
        StoreError::NotFound
    ));
    let page = s
        .list_payments(
            other,
            &ListPayments {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let mut t = Transition::new(p.id, 1, PaymentEvent::Cancel);
    t.merchant_id = Some(other);
    assert!(matches!(
        s.transition_payment(&t).await.unwrap_err(),
        StoreError::NotFound
    ));
    assert_eq!(
        s.get_payment(owner, p.id).await.unwrap().unwrap().status,
        PaymentStatus::Authorized
    );
    ctx.finish().await;
}

#[tokio::test]
async fn list_is_newest_first_with_keyset_cursor_and_status_filter() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 1000).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            authorize(s, m, &quote(s, m, 1).await, &format!("k{i}"))
                .await
                .id,
        );
    }
    s.cancel_payment(m, ids[1]).await.unwrap();
    ids.reverse();

    let page1 = s
        .list_payments(
            m,
            &ListPayments {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page1.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        ids[..2]
    );
    let page2 = s
        .list_payments(
            m,
            &ListPayments {
                limit: 2,
                before: page1.next_cursor,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page2.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        ids[2..4]
    );
    let page3 = s
        .list_payments(
            m,
            &ListPayments {
                limit: 2,
                before: page2.next_cursor,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page3.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        ids[4..]
    );
    assert_eq!(page3.next_cursor, None);

    let cancelled = s
        .list_payments(
            m,
            &ListPayments {
                status: Some(PaymentStatus::Cancelled),
                limit: 10,
                before: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(cancelled.items.len(), 1);
    assert_eq!(cancelled.items[0].status, PaymentStatus::Cancelled);
    ctx.finish().await;
}

#[tokio::test]
async fn pipeline_transitions_through_a_reorg_to_settled_and_posts_the_settlement() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 1000).await;
    let p = authorize(s, m, &quote(s, m, 250).await, "k").await;
    let hash = B256::repeat_byte(0xab);

    let mut t = Transition::new(p.id, 1, PaymentEvent::Broadcast);
    t.patch = PaymentPatch {
        tx_hash: Some(hash),
        nonce: Some(7),
        hot_wallet: Some(recipient()),
        ..Default::default()
    };
    t.outbox = vec![NewOutboxMessage::new(
        topics::PAYMENTS_CONFIRM,
        serde_json::json!({"v": 1}),
    )];
    let p = s.transition_payment(&t).await.unwrap();
    assert_eq!(
        (p.status, p.version, p.tx_hash, p.nonce),
        (PaymentStatus::Broadcast, 2, Some(hash), Some(7))
    );

    let mut t = Transition::new(p.id, 2, PaymentEvent::Confirm);
    t.patch.block_number = Some(100);
    let p = s.transition_payment(&t).await.unwrap();
    let p = s
        .transition_payment(&Transition::new(p.id, 3, PaymentEvent::Reorg))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Broadcast);
    let p = s
        .transition_payment(&Transition::new(p.id, 4, PaymentEvent::Confirm))
        .await
        .unwrap();
    let p = s
        .transition_payment(&Transition::new(
            p.id,
            5,
            PaymentEvent::Settle {
                network_fee: network_fee(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        (p.status, p.version, p.block_number),
        (PaymentStatus::Settled, 6, Some(100))
    );

    let usdc_bal = s
        .balances(m)
        .await
        .unwrap()
        .into_iter()
        .find(|b| b.asset == usdc())
        .unwrap();
    assert_eq!(usdc_bal.held, Amount::ZERO);
    assert_eq!(
        usdc_bal.available,
        Amount::from(1_000_000_000u64 - 250_625_000)
    );
    // Settled exactly once: a second Settle is illegal.
    let err = s
        .transition_payment(&Transition::new(
            p.id,
            6,
            PaymentEvent::Settle {
                network_fee: network_fee(),
            },
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition(_)), "{err:?}");
    let types: Vec<String> = s
        .outbox_for_payment(p.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|(topic, _)| topic == topics::WEBHOOK)
        .map(|(_, payload)| payload["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "payment.authorized",
            "payment.broadcast",
            "payment.confirmed",
            "payment.broadcast",
            "payment.confirmed",
            "payment.settled"
        ]
    );
    ctx.finish().await;
}

#[tokio::test]
async fn a_stale_version_is_a_conflict_and_changes_nothing() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 100).await;
    let p = authorize(s, m, &quote(s, m, 1).await, "k").await;
    s.transition_payment(&Transition::new(p.id, 1, PaymentEvent::Broadcast))
        .await
        .unwrap();
    let err = s
        .transition_payment(&Transition::new(p.id, 1, PaymentEvent::fail("late")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { expected: 1 }),
        "{err:?}"
    );
    let now = s.get_payment(m, p.id).await.unwrap().unwrap();
    assert_eq!((now.status, now.version), (PaymentStatus::Broadcast, 2));
    ctx.finish().await;
}

#[tokio::test]
async fn failing_a_broadcast_payment_releases_the_hold_and_keeps_the_reason() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 25, 100).await;
    let before = s.balances(m).await.unwrap();
    let p = authorize(s, m, &quote(s, m, 10).await, "k").await;
    s.transition_payment(&Transition::new(p.id, 1, PaymentEvent::Broadcast))
        .await
        .unwrap();
    let p = s
        .transition_payment(&Transition::new(
            p.id,
            2,
            PaymentEvent::fail("execution reverted"),
        ))
        .await
        .unwrap();
    assert_eq!(p.status, PaymentStatus::Failed);
    assert_eq!(p.failure_reason.as_deref(), Some("execution reverted"));
    // Nothing was mined: no fee, everything back.
    assert_eq!(p.network_fee_actual, None);
    assert_eq!(s.balances(m).await.unwrap(), before);
    assert_eq!(
        s.payment_events(p.id).await.unwrap()[2].reason.as_deref(),
        Some("execution reverted")
    );
    ctx.finish().await;
}

#[tokio::test]
async fn unknown_payments_are_not_found() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant(s, 0).await;
    let id = meshpay_domain::PaymentId::new();
    assert_eq!(s.get_payment(m, id).await.unwrap(), None);
    assert!(matches!(
        s.cancel_payment(m, id).await.unwrap_err(),
        StoreError::NotFound
    ));
    assert!(s.payment_events(id).await.unwrap().is_empty());
    ctx.finish().await;
}

#[tokio::test]
async fn outbox_messages_are_claimed_once_until_completed_or_released() {
    use std::time::Duration;
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 100).await;
    let p = authorize(s, m, &quote(s, m, 1).await, "k").await;
    let lease = Duration::from_secs(60);

    let claimed = s
        .claim_outbox(topics::PAYMENTS_BROADCAST, 10, lease)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].payment_id, claimed[0].attempts),
        (Some(p.id), 1)
    );
    assert!(
        s.claim_outbox(topics::PAYMENTS_BROADCAST, 10, lease)
            .await
            .unwrap()
            .is_empty()
    );

    s.retry_outbox(claimed[0].id, Duration::ZERO, "queue unavailable")
        .await
        .unwrap();
    let again = s
        .claim_outbox(topics::PAYMENTS_BROADCAST, 10, lease)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 2));
    s.complete_outbox(again[0].id).await.unwrap();
    s.retry_outbox(again[0].id, Duration::ZERO, "late")
        .await
        .unwrap();
    assert!(
        s.claim_outbox(topics::PAYMENTS_BROADCAST, 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.claim_outbox(topics::WEBHOOK, 10, lease)
            .await
            .unwrap()
            .len(),
        1
    );
    ctx.finish().await;
}
