//! Nonce allocation: gap-free and unique under concurrency, the chain as a floor, holes closed.

use std::collections::BTreeMap;

use alloy::primitives::Address;
use futures::StreamExt as _;
use meshpay_relay::{
    BroadcastOutcome, Delivery, Fault, FaultMode, FaultPoint, RelayConfig, RelayError,
};
use meshpay_store::StoreError;
use meshpay_store::transactions::{self, AttemptStatus, NonceRelease, NonceSource};
use serde_json::json;

use crate::faulty::{FaultyRpc, rpc_error};
use crate::support::RelayStack;

/// Nonces of live transactions per wallet, sorted.
async fn live_nonces(stack: &RelayStack) -> BTreeMap<String, Vec<i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT from_address, nonce FROM payment_transactions
          WHERE status IN ('signed', 'sent') ORDER BY from_address, nonce",
    )
    .fetch_all(stack.store.pool())
    .await
    .unwrap();
    let mut by_wallet: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (wallet, nonce) in rows {
        by_wallet.entry(wallet).or_default().push(nonce);
    }
    by_wallet
}

#[tokio::test]
async fn concurrent_payments_get_gap_free_unique_nonces_per_wallet() {
    let stack = RelayStack::start().await;
    let relay = stack.relay();
    let n = 200;
    let mut payments = Vec::with_capacity(n);
    for i in 0..n {
        let symbol = if i % 2 == 0 { "ETH" } else { "USDC" };
        payments.push(stack.payment(symbol, 1_000 + i as u128).await);
    }
    let outcomes: Vec<_> = futures::stream::iter(payments.iter())
        .map(|p| relay.broadcast(p.id, Delivery::FIRST))
        .buffer_unordered(64)
        .collect()
        .await;
    let mut sent = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            BroadcastOutcome::Sent(_) => sent += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sent, n);
    stack.mine_all().await;

    let by_wallet = live_nonces(&stack).await;
    assert_eq!(by_wallet.len(), 2, "both wallets used");
    let mut total = 0;
    for (wallet, nonces) in &by_wallet {
        let expected: Vec<i64> = (0..nonces.len() as i64).collect();
        assert_eq!(nonces, &expected, "{wallet}: gap-free, no duplicates");
        let address: Address = wallet.parse().unwrap();
        assert_eq!(
            stack.mined_nonce(address).await,
            nonces.len() as u64,
            "{wallet}: all mined"
        );
        assert!(
            nonces.len() >= 60,
            "{wallet} got {} of {n}: spread is lopsided",
            nonces.len()
        );
        total += nonces.len();
    }
    assert_eq!(total, n);
    for p in &payments {
        let attempts = stack.store.payment_transactions(p.id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        let receipt = stack.receipt(attempts[0].tx_hash).await;
        assert_eq!(receipt["status"], json!("0x1"));
    }
    stack.finish().await;
}

#[tokio::test]
async fn counter_behind_the_chain_jumps_to_the_pending_nonce() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    // The wallet was used outside meshpay: three transactions the database knows nothing of.
    for _ in 0..3 {
        stack
            .anvil
            .send_and_wait(
                json!({"from": wallet, "to": meshpay_testkit::payment::fresh_address(), "value": "0x1"}),
            )
            .await;
    }
    let relay = stack.relay();
    let payment = stack.payment("ETH", 77).await;
    let BroadcastOutcome::Sent(tx) = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!(tx.nonce, 3);
    let events = stack.store.payment_events(payment.id).await.unwrap();
    assert_eq!(
        events.last().unwrap().data["nonce_source"],
        json!("chainfloor")
    );
    assert_eq!(stack.nonce_state(wallet).await.next_nonce, 4);
    stack.finish().await;
}

#[tokio::test]
async fn nonce_taken_by_another_sender_is_resynced_and_the_payment_re_signed() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    let config = RelayConfig {
        fault: Some(Fault {
            point: FaultPoint::AfterPersistBeforeSend,
            mode: FaultMode::Error,
        }),
        ..RelayConfig::default()
    };
    let relay = stack.relay_with(stack.rpc(), config);
    let payment = stack.payment("ETH", 5_000).await;
    relay
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap_err();
    let first = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    assert_eq!(first.nonce, 0);

    // Someone else uses nonce 0 of the wallet before our send.
    stack
        .anvil
        .send_and_wait(json!({"from": wallet, "to": meshpay_testkit::payment::fresh_address(), "value": "0x1", "nonce": "0x0"}))
        .await;

    let BroadcastOutcome::Sent(tx) = relay
        .broadcast(payment.id, Delivery::new(Some(2)))
        .await
        .unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!(tx.attempt, 2);
    assert_eq!(tx.nonce, 1);
    assert_ne!(tx.tx_hash, first.tx_hash);
    stack.receipt(tx.tx_hash).await;
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        vec![AttemptStatus::Superseded, AttemptStatus::Sent]
    );
    let stored = stack.stored(payment.id).await;
    assert_eq!((stored.tx_hash, stored.nonce), (Some(tx.tx_hash), Some(1)));
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        alloy::primitives::U256::from(5_000)
    );
    stack.finish().await;
}

#[tokio::test]
async fn refused_nonce_in_the_middle_becomes_a_gap_the_next_payment_fills() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    let faulty = FaultyRpc::new(stack.rpc());
    let hold = RelayConfig {
        fault: Some(Fault {
            point: FaultPoint::AfterPersistBeforeSend,
            mode: FaultMode::Error,
        }),
        ..RelayConfig::default()
    };
    let holding = stack.relay_with(faulty.clone(), hold);
    let relay = stack.relay_with(faulty.clone(), RelayConfig::default());

    // A (nonce 0) and B (nonce 1) are stored, not yet sent.
    let a = stack.payment("ETH", 100).await;
    let b = stack.payment("ETH", 200).await;
    holding.broadcast(a.id, Delivery::FIRST).await.unwrap_err();
    holding.broadcast(b.id, Delivery::FIRST).await.unwrap_err();

    // The node refuses A's bytes for good: A fails, nonce 0 becomes a gap.
    faulty.fail_next_send(rpc_error("intrinsic gas too low"));
    let outcome = relay.broadcast(a.id, Delivery::new(Some(2))).await.unwrap();
    assert!(
        matches!(outcome, BroadcastOutcome::Failed { .. }),
        "{outcome:?}"
    );
    let failed = stack.stored(a.id).await;
    assert!(
        failed
            .failure_reason
            .unwrap()
            .contains("intrinsic gas too low")
    );
    assert_eq!(stack.nonce_state(wallet).await.gaps, vec![0]);

    // C takes the gap; B and C then both mine: the wallet's sequence has no hole.
    let c = stack.payment("ETH", 300).await;
    let BroadcastOutcome::Sent(tc) = relay.broadcast(c.id, Delivery::FIRST).await.unwrap() else {
        panic!("C not sent")
    };
    assert_eq!(tc.nonce, 0);
    let BroadcastOutcome::Sent(tb) = relay.broadcast(b.id, Delivery::new(Some(2))).await.unwrap()
    else {
        panic!("B not sent")
    };
    assert_eq!(tb.nonce, 1);
    stack.mine_all().await;
    assert_eq!(stack.mined_nonce(wallet).await, 2);
    assert!(stack.nonce_state(wallet).await.gaps.is_empty());
    // A's hold went back to the merchant; B and C keep theirs.
    assert_eq!(
        stack.anvil.eth_balance(a.recipient).await,
        alloy::primitives::U256::ZERO
    );
    stack.finish().await;
}

#[tokio::test]
async fn releasing_the_latest_nonce_rewinds_the_counter_over_adjacent_gaps() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    // Three payments hold nonces 0..3 (stored by the relay with the fault hook).
    let relay = stack.relay_with(
        stack.rpc(),
        RelayConfig {
            fault: Some(Fault {
                point: FaultPoint::AfterPersistBeforeSend,
                mode: FaultMode::Error,
            }),
            ..RelayConfig::default()
        },
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let p = stack.payment("ETH", 1).await;
        relay.broadcast(p.id, Delivery::FIRST).await.unwrap_err();
        ids.push(p.id);
    }
    let mut db = stack.store.begin().await.unwrap();
    assert_eq!(
        transactions::release_nonce(&mut db, "anvil", wallet, 1, 0, ids[1])
            .await
            .unwrap(),
        NonceRelease::Gap
    );
    assert_eq!(
        transactions::release_nonce(&mut db, "anvil", wallet, 2, 0, ids[2])
            .await
            .unwrap(),
        NonceRelease::Rewound
    );
    db.commit().await.unwrap();
    let state = stack.nonce_state(wallet).await;
    assert_eq!((state.next_nonce, state.gaps), (1, vec![]));

    // Below the chain's floor a nonce is consumed: nothing to hand back; gaps under the floor
    // are forgotten at the next allocation.
    let mut db = stack.store.begin().await.unwrap();
    assert_eq!(
        transactions::release_nonce(&mut db, "anvil", wallet, 0, 1, ids[0])
            .await
            .unwrap(),
        NonceRelease::Consumed
    );
    let alloc = transactions::allocate_nonce(&mut db, "anvil", wallet, 1)
        .await
        .unwrap();
    assert_eq!((alloc.nonce, alloc.source), (1, NonceSource::Counter));
    db.rollback().await.unwrap();
    stack.finish().await;
}

#[tokio::test]
async fn heal_resends_stored_transactions_the_chain_never_saw() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    let relay = stack.relay_with(
        stack.rpc(),
        RelayConfig {
            fault: Some(Fault {
                point: FaultPoint::AfterPersistBeforeSend,
                mode: FaultMode::Error,
            }),
            ..RelayConfig::default()
        },
    );
    let mut payments = Vec::new();
    for i in 0..3 {
        let p = stack.payment("ETH", 10 + i).await;
        relay.broadcast(p.id, Delivery::FIRST).await.unwrap_err();
        payments.push(p);
    }
    assert_eq!(
        stack.pending_nonce(wallet).await,
        0,
        "counter at 3, chain at 0: drift"
    );

    let report = relay.heal_wallet("anvil", wallet).await.unwrap();
    assert_eq!(
        (report.chain_nonce, report.next_nonce, report.resent),
        (0, Some(3), 3)
    );
    assert!(report.stopped_at.is_none());
    stack.mine_all().await;
    assert_eq!(stack.mined_nonce(wallet).await, 3);
    for (i, p) in payments.iter().enumerate() {
        assert_eq!(
            stack.anvil.eth_balance(p.recipient).await,
            alloy::primitives::U256::from(10 + i as u64)
        );
    }
    stack.finish().await;
}

#[tokio::test]
async fn counter_behind_the_chain_halts_the_wallet_and_nothing_is_re_signed() {
    let stack = RelayStack::start().await;
    let holding = stack.relay_with(
        stack.rpc(),
        RelayConfig {
            fault: Some(Fault {
                point: FaultPoint::AfterPersistBeforeSend,
                mode: FaultMode::Error,
            }),
            ..RelayConfig::default()
        },
    );
    let relay = stack.relay();
    let (wallet, other) = (stack.wallets[0], stack.wallets[1]);
    let fresh = meshpay_testkit::payment::fresh_address;
    // A holds nonce 0 of the wallet, stored and not sent yet.
    let a = stack.payment_to("ETH", 100, fresh(), Some(wallet)).await;
    holding.broadcast(a.id, Delivery::FIRST).await.unwrap_err();
    // The key is used behind meshpay's back: nonces 0 and 1 go to someone else.
    for nonce in ["0x0", "0x1"] {
        stack
            .anvil
            .send_and_wait(json!({"from": wallet, "to": fresh(), "value": "0x1", "nonce": nonce}))
            .await;
    }

    // A's re-send finds its nonce taken and the chain beyond every nonce handed out: the
    // wallet halts instead of A being re-signed on a new nonce.
    let error = relay
        .broadcast(a.id, Delivery::new(Some(2)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RelayError::Store(StoreError::WalletHalted { .. })),
        "{error}"
    );
    let attempts = stack.store.payment_transactions(a.id).await.unwrap();
    assert_eq!(attempts.len(), 1, "not re-signed");
    let state = stack.nonce_state(wallet).await;
    assert_eq!(state.next_nonce, 1, "the counter did not jump");
    assert!(state.halted.is_some(), "{state:?}");
    let halted = stack.store.halted_wallets(None).await.unwrap();
    assert_eq!(
        halted.iter().map(|h| h.address).collect::<Vec<_>>(),
        vec![wallet]
    );

    // Later deliveries wait too; a payment pinned to the wallet is not signed at all.
    relay
        .broadcast(a.id, Delivery::new(Some(3)))
        .await
        .unwrap_err();
    assert_eq!(
        stack.store.payment_transactions(a.id).await.unwrap().len(),
        1
    );
    let pinned = stack.payment_to("ETH", 200, fresh(), Some(wallet)).await;
    relay
        .broadcast(pinned.id, Delivery::FIRST)
        .await
        .unwrap_err();
    assert!(
        stack
            .store
            .payment_transactions(pinned.id)
            .await
            .unwrap()
            .is_empty()
    );
    // New payments go to the other wallet only.
    for i in 0..6 {
        let p = stack.payment("ETH", 300 + i).await;
        let BroadcastOutcome::Sent(tx) = relay.broadcast(p.id, Delivery::FIRST).await.unwrap()
        else {
            panic!("not sent")
        };
        assert_eq!(tx.from, other);
    }
    assert_eq!(
        stack.pending_nonce(wallet).await,
        2,
        "nothing more sent from it"
    );

    // The operator resumes it at the chain's nonce: A is re-signed only then.
    assert!(stack.store.resume_wallet("anvil", wallet, 2).await.unwrap());
    let BroadcastOutcome::Sent(tx) = relay.broadcast(a.id, Delivery::new(Some(4))).await.unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!((tx.from, tx.nonce, tx.attempt), (wallet, 2, 2));
    stack.finish().await;
}
