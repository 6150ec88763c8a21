//! Signing outside the wallet lock: the nonce is reserved in a short transaction, signed with no
//! lock held, then stored. Gap-free under a slow, throttling Key Vault; a reserved nonce is
//! signed again by the next delivery or handed back; the window and the lock timeout hold.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt as _;
use meshpay_domain::PaymentId;
use meshpay_relay::transfer::{self, TransferCall, TxParams};
use meshpay_relay::{
    BroadcastOutcome, Delivery, Fault, FaultMode, FaultPoint, Relay, RelayConfig, RelayError,
};
use meshpay_signer::RetryConfig;
use meshpay_signer::testing::{DoubleOptions, ThrottleBursts};
use meshpay_store::transactions::{NonceSource, TxTimeouts};

use crate::support::RelayStack;

fn stopping_at(point: FaultPoint) -> RelayConfig {
    RelayConfig {
        fault: Some(Fault {
            point,
            mode: FaultMode::Error,
        }),
        ..RelayConfig::default()
    }
}

/// Delivers the message until the payment's transaction is sent (the queue's redelivery).
async fn deliver_until_sent(relay: &Relay, id: PaymentId) -> u64 {
    for dequeue_count in 1..=20 {
        match relay.broadcast(id, Delivery { dequeue_count }).await {
            Ok(BroadcastOutcome::Sent(tx)) => return tx.nonce,
            Ok(other) => panic!("{id}: {other:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("{id} not sent after 20 deliveries")
}

#[tokio::test]
async fn payments_signed_by_a_slow_throttling_key_vault_get_gap_free_nonces_one_transaction_each() {
    let stack = RelayStack::start().await;
    let (doubles, signers) = stack
        .key_vault_signers(
            || DoubleOptions {
                sign_latency: Duration::from_millis(20),
                throttle: Some(ThrottleBursts {
                    every: 20,
                    burst: 2,
                    retry_after_secs: 1,
                }),
                ..DoubleOptions::new()
            },
            RetryConfig {
                initial_backoff_ms: 10,
                ..RetryConfig::default()
            },
        )
        .await;
    let relay = stack.relay_signing_with(signers, RelayConfig::default());
    let n = 60;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let symbol = if i % 2 == 0 { "ETH" } else { "USDC" };
        ids.push(stack.payment(symbol, 1_000 + i as u128).await.id);
    }
    futures::stream::iter(ids.iter())
        .map(|&id| deliver_until_sent(&relay, id))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let throttled: u64 = doubles.iter().map(|d| d.sign_stats().throttled).sum();
    assert!(throttled > 0, "the bursts were met");
    stack.mine_all().await;

    let rows: Vec<(sqlx::types::Uuid, String, i64, String)> = sqlx::query_as(
        "SELECT payment_id, from_address, nonce, status FROM payment_transactions
          ORDER BY from_address, nonce",
    )
    .fetch_all(stack.store.pool())
    .await
    .unwrap();
    assert_eq!(
        rows.len(),
        n,
        "exactly one transaction per payment: {rows:?}"
    );
    let payments: BTreeSet<_> = rows.iter().map(|(p, ..)| *p).collect();
    assert_eq!(payments.len(), n, "no payment has two transactions");
    assert!(rows.iter().all(|(.., status)| status == "sent"), "{rows:?}");
    let mut by_wallet: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (_, wallet, nonce, _) in &rows {
        by_wallet.entry(wallet).or_default().push(*nonce);
    }
    assert_eq!(by_wallet.len(), 2, "both wallets signed");
    for (&wallet, nonces) in &by_wallet {
        let expected: Vec<i64> = (0..nonces.len() as i64).collect();
        assert_eq!(nonces, &expected, "{wallet}: gap-free, none reused");
        let address = wallet.parse().unwrap();
        let state = stack.nonce_state(address).await;
        assert_eq!(state.next_nonce, nonces.len() as u64, "{wallet}");
        assert!(state.gaps.is_empty(), "{wallet}: {:?}", state.gaps);
        assert_eq!(stack.mined_nonce(address).await, state.next_nonce);
    }
    assert!(
        stack
            .store
            .nonce_reservations("anvil")
            .await
            .unwrap()
            .is_empty()
    );
    stack.finish().await;
}

#[tokio::test]
async fn a_delivery_stopped_after_signing_leaves_the_nonce_reserved_and_the_next_signs_the_same_bytes()
 {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let payment = stack.payment("USDC", 1_234).await;
    let stopped = stack.relay_with(stack.rpc(), stopping_at(FaultPoint::AfterSignBeforeStore));
    let error = stopped
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap_err();
    assert!(matches!(error, RelayError::InjectedFault(_)), "{error}");
    let reserved = stack
        .store
        .nonce_reservation(payment.id)
        .await
        .unwrap()
        .expect("the nonce stays reserved");
    assert_eq!((reserved.nonce, reserved.source), (0, NonceSource::Counter));
    assert!(
        stack
            .store
            .payment_transactions(payment.id)
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );

    // The reserved fields, signed by the same (RFC 6979, deterministic) key: the bytes the
    // next delivery must produce.
    let call = TransferCall {
        to: reserved.to,
        value_wei: reserved.value_wei,
        input: reserved.input.clone().into(),
    };
    let params = TxParams {
        chain_id: reserved.chain_id,
        nonce: reserved.nonce,
        gas_limit: reserved.gas_limit,
        max_fee_per_gas_wei: reserved.max_fee_per_gas_wei,
        max_priority_fee_per_gas_wei: reserved.max_priority_fee_per_gas_wei,
    };
    let signer = stack.signers().remove(0);
    let expected = transfer::sign(signer.as_ref(), reserved.from, &call, params)
        .await
        .unwrap();

    let relay = stack.relay();
    let BroadcastOutcome::Sent(tx) = relay
        .broadcast(payment.id, Delivery::new(Some(2)))
        .await
        .unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!((tx.nonce, tx.tx_hash), (0, expected.hash));
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].raw, expected.raw);
    assert!(
        stack
            .store
            .nonce_reservation(payment.id)
            .await
            .unwrap()
            .is_none()
    );
    let next = stack.payment("ETH", 5).await;
    let BroadcastOutcome::Sent(later) = relay.broadcast(next.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!(later.nonce, 1, "the counter moved once");
    stack.receipt(later.tx_hash).await;
    stack.finish().await;
}

#[tokio::test]
async fn a_signing_failure_hands_the_reserved_nonce_back_and_a_later_delivery_reuses_it() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let (doubles, signers) = stack
        .key_vault_signers(DoubleOptions::new, RetryConfig::default())
        .await;
    let relay = stack.relay_signing_with(signers, RelayConfig::default());
    let wallet = stack.wallets[0];
    // Reserve nonce 0 and stop before signing, so a second payment takes nonce 1 behind it.
    let first = stack.payment("ETH", 100).await;
    let stopped = stack.relay_with(stack.rpc(), stopping_at(FaultPoint::AfterReserveBeforeSign));
    stopped
        .broadcast(first.id, Delivery::FIRST)
        .await
        .unwrap_err();
    let second = stack.payment("ETH", 200).await;
    assert_eq!(deliver_until_sent(&relay, second.id).await, 1);

    // Key Vault refuses for good (403: no retry helps): nothing stored, nonce 0 handed back.
    doubles[0].inject(meshpay_signer::testing::Fault::Status(403), 1);
    let error = relay
        .broadcast(first.id, Delivery::new(Some(2)))
        .await
        .unwrap_err();
    assert!(matches!(error, RelayError::Sign(_)), "{error}");
    assert!(
        stack
            .store
            .nonce_reservation(first.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        stack
            .store
            .payment_transactions(first.id)
            .await
            .unwrap()
            .is_empty()
    );
    let state = stack.nonce_state(wallet).await;
    assert_eq!(
        (state.next_nonce, state.gaps),
        (2, vec![0]),
        "a gap, not a hole"
    );

    // The next delivery reserves afresh and fills the gap; both transactions are mined.
    let BroadcastOutcome::Sent(tx) = relay
        .broadcast(first.id, Delivery::new(Some(3)))
        .await
        .unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!(tx.nonce, 0);
    stack.mine_all().await;
    assert_eq!(stack.mined_nonce(wallet).await, 2);
    drop(doubles);
    stack.finish().await;
}

#[tokio::test]
async fn beyond_the_in_flight_window_a_delivery_allocates_nothing_and_is_retried() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let window = RelayConfig {
        max_in_flight_per_wallet: 2,
        ..stopping_at(FaultPoint::AfterReserveBeforeSign)
    };
    let stopped = stack.relay_with(stack.rpc(), window.clone());
    for amount in [1, 2] {
        let p = stack.payment("ETH", amount).await;
        stopped.broadcast(p.id, Delivery::FIRST).await.unwrap_err();
    }
    let third = stack.payment("ETH", 3).await;
    let error = stopped
        .broadcast(third.id, Delivery::FIRST)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RelayError::WalletBacklog { limit: 2, .. }),
        "{error}"
    );
    assert!(
        stack
            .store
            .nonce_reservation(third.id)
            .await
            .unwrap()
            .is_none()
    );
    let state = stack.nonce_state(stack.wallets[0]).await;
    assert_eq!(state.next_nonce, 2, "no nonce handed out beyond the window");
    stack.finish().await;
}

#[tokio::test]
async fn a_wallet_row_locked_elsewhere_ends_the_delivery_at_the_lock_timeout_for_a_retry() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let relay = stack.relay();
    let first = stack.payment("ETH", 1).await;
    deliver_until_sent(&relay, first.id).await;
    // Another session holds the wallet's counter row.
    let mut holder = stack.store.pool().begin().await.unwrap();
    sqlx::query("SELECT next_nonce FROM wallet_nonces FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let impatient = stack.relay_with(
        stack.rpc(),
        RelayConfig {
            db_timeouts: TxTimeouts {
                lock: Duration::from_millis(200),
                statement: Duration::from_secs(5),
            },
            ..RelayConfig::default()
        },
    );
    let second = stack.payment("ETH", 2).await;
    let error = impatient
        .broadcast(second.id, Delivery::FIRST)
        .await
        .unwrap_err();
    let RelayError::Store(store) = &error else {
        panic!("{error}")
    };
    assert_eq!(store.db_code().as_deref(), Some("55P03"), "{error}");
    assert!(store.is_retryable());
    holder.rollback().await.unwrap();
    assert_eq!(deliver_until_sent(&impatient, second.id).await, 1);
    stack.mine_all().await;
    stack.finish().await;
}

#[tokio::test]
async fn a_nonce_reserved_for_a_payment_cancelled_before_it_was_signed_is_handed_back_by_reconcile()
{
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let stopped = stack.relay_with(stack.rpc(), stopping_at(FaultPoint::AfterReserveBeforeSign));
    let cancelled = stack.payment("ETH", 1).await;
    let behind = stack.payment("ETH", 2).await;
    for p in [&cancelled, &behind] {
        stopped.broadcast(p.id, Delivery::FIRST).await.unwrap_err();
    }
    // The process died after reserving nonce 0; the merchant cancels before any redelivery.
    stack
        .store
        .cancel_payment(stack.merchant, cancelled.id)
        .await
        .unwrap();
    let relay = stack.relay();
    let ignored = relay
        .broadcast(cancelled.id, Delivery::new(Some(2)))
        .await
        .unwrap();
    assert!(
        matches!(ignored, BroadcastOutcome::Ignored { .. }),
        "{ignored:?}"
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    relay.fill_stale_gaps(16, deadline).await;
    assert!(
        stack
            .store
            .nonce_reservation(cancelled.id)
            .await
            .unwrap()
            .is_none()
    );
    let wallet = stack.wallets[0];
    let state = stack.nonce_state(wallet).await;
    assert_eq!((state.next_nonce, state.gaps), (2, vec![0]));

    // The payment behind it is signed on its reserved nonce 1; the next one fills nonce 0.
    assert_eq!(deliver_until_sent(&relay, behind.id).await, 1);
    let next = stack.payment("ETH", 3).await;
    assert_eq!(deliver_until_sent(&relay, next.id).await, 0);
    stack.mine_all().await;
    assert_eq!(stack.mined_nonce(wallet).await, 2);
    stack.finish().await;
}
