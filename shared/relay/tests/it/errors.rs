//! What a real anvil answers, classified: success-ish duplicates, refusals that are retried and
//! then fail the payment (hold released, nonce handed back), and unknown outcomes that never
//! fail a payment.

use alloy::primitives::U256;
use meshpay_domain::PaymentStatus;
use meshpay_relay::{
    Ack, BroadcastOutcome, Delivery, Fault, FaultMode, FaultPoint, RelayConfig, RelayError,
    RpcFailure, SendClass,
};
use meshpay_store::transactions::AttemptStatus;
use serde_json::json;

use crate::faulty::{FaultyRpc, rpc_error};
use meshpay_testkit::assets::eth;
use meshpay_testkit::payment::{QuotedGas, fresh_address};

use crate::support::{LAST, RelayStack, failure_reason};

async fn eth_balance_of_merchant(stack: &RelayStack) -> (U256, U256) {
    let balances = stack.store.balances(stack.merchant).await.unwrap();
    let b = balances.iter().find(|b| b.asset == eth()).unwrap();
    (b.available.base_units(), b.held.base_units())
}

#[tokio::test]
async fn resending_while_pending_is_already_known() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let relay = stack.relay();
    let payment = stack.payment("ETH", 9).await;
    let first = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap();
    let second = relay
        .broadcast(payment.id, Delivery::new(Some(2)))
        .await
        .unwrap();
    let (BroadcastOutcome::Sent(a), BroadcastOutcome::Sent(b)) = (first, second) else {
        panic!("not sent")
    };
    assert_eq!((a.ack, b.ack), (Ack::Accepted, Ack::AlreadyKnown));
    assert_eq!(a.tx_hash, b.tx_hash);
    let attempt = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    assert_eq!(attempt.send_count, 2);
    stack.finish().await;
}

#[tokio::test]
async fn insufficient_funds_is_retried_then_fails_the_payment_and_rewinds_the_nonce() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    let amount = 10u128.pow(18);
    // Enough for the value (so eth_estimateGas passes) but not for value + gas.
    stack.set_eth_balance(wallet, U256::from(amount + 1)).await;
    let relay = stack.relay();
    let (available_before, _) = eth_balance_of_merchant(&stack).await;
    let payment = stack.payment("ETH", amount).await;

    let error = relay
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap_err();
    match &error {
        RelayError::Send { class, failure } => {
            assert_eq!(*class, SendClass::Rejected, "{failure}");
            let text = failure.to_string().to_ascii_lowercase();
            assert!(text.contains("insufficient funds"), "{failure}");
        }
        other => panic!("expected a rejected send, got {other}"),
    }
    let stored = stack.stored(payment.id).await;
    assert_eq!(
        stored.status,
        PaymentStatus::Broadcast,
        "kept for the retry"
    );

    let reason = failure_reason(relay.broadcast(payment.id, LAST).await.unwrap());
    assert!(
        reason.to_ascii_lowercase().contains("insufficient funds"),
        "{reason}"
    );
    let failed = stack.stored(payment.id).await;
    assert_eq!(failed.status, PaymentStatus::Failed);
    let recorded = failed.failure_reason.unwrap().to_ascii_lowercase();
    assert!(recorded.contains("insufficient funds"), "{recorded}");
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(attempts[0].status, AttemptStatus::Rejected);
    let state = stack.nonce_state(wallet).await;
    assert_eq!(state.next_nonce, 0, "the only nonce was handed back");
    let (available_after, held_after) = eth_balance_of_merchant(&stack).await;
    assert_eq!(
        (available_after, held_after),
        (available_before, U256::ZERO),
        "hold released"
    );

    // Topped up, the next payment reuses nonce 0.
    stack
        .set_eth_balance(wallet, U256::from(10u128.pow(21)))
        .await;
    let next = stack.payment("ETH", 1).await;
    let BroadcastOutcome::Sent(tx) = relay.broadcast(next.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!(tx.nonce, 0);
    stack.finish().await;
}

#[tokio::test]
async fn intrinsic_gas_too_low_fails_the_payment_at_once() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let faulty = FaultyRpc::new(stack.rpc());
    // The quoted gas limit is what gets signed: 18,000 is below a transfer's intrinsic 21,000
    // (the estimate, 15,000 + the 20 % margin, fits within it).
    faulty.override_gas(15_000);
    let relay = stack.relay_with(faulty.clone(), RelayConfig::default());
    let quoted = QuotedGas {
        gas_limit: 18_000,
        ..QuotedGas::default()
    };
    let payment = stack
        .payment_quoted("ETH", 1_000, fresh_address(), None, quoted)
        .await;

    let outcome = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap();
    let reason = failure_reason(outcome);
    assert!(
        reason
            .to_ascii_lowercase()
            .contains("intrinsic gas too low"),
        "{reason}"
    );
    assert_eq!(faulty.sends_forwarded(), 1, "anvil itself refused it");
    let state = stack.nonce_state(stack.wallets[0]).await;
    assert_eq!(state.next_nonce, 0);
    let (_, held) = eth_balance_of_merchant(&stack).await;
    assert_eq!(held, U256::ZERO);
    stack.finish().await;
}

#[tokio::test]
async fn unknown_send_outcome_never_fails_the_payment_even_on_the_last_delivery() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let faulty = FaultyRpc::new(stack.rpc());
    let relay = stack.relay_with(faulty.clone(), RelayConfig::default());
    let payment = stack.payment("ETH", 1_000).await;
    for failure in [
        RpcFailure::Timeout {
            method: "eth_sendRawTransaction",
        },
        RpcFailure::Http {
            method: "eth_sendRawTransaction",
            status: 503,
            body: "upstream unavailable".into(),
        },
    ] {
        faulty.fail_next_send(failure);
        let error = relay.broadcast(payment.id, LAST).await.unwrap_err();
        assert!(
            matches!(
                error,
                RelayError::Send {
                    class: SendClass::Unknown,
                    ..
                }
            ),
            "{error}"
        );
        let stored = stack.stored(payment.id).await;
        assert_eq!(stored.status, PaymentStatus::Broadcast);
    }
    // The node recovers: the same stored bytes go out.
    let first_hash = stack
        .store
        .live_attempt(payment.id)
        .await
        .unwrap()
        .unwrap()
        .tx_hash;
    let BroadcastOutcome::Sent(tx) = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!(tx.tx_hash, first_hash);
    let attempt = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    assert_eq!(attempt.send_count, 3);
    assert_eq!(attempt.last_error, None);
    stack.finish().await;
}

#[tokio::test]
async fn transfer_that_would_revert_is_retried_then_fails_before_signing() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let relay = stack.relay();
    // More USDC than the hot wallet holds: eth_estimateGas reverts.
    let payment = stack.payment("USDC", crate::support::WALLET_USDC + 1).await;

    let error = relay
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RelayError::Rpc(f) if f.is_revert()),
        "{error}"
    );
    let reason = failure_reason(relay.broadcast(payment.id, LAST).await.unwrap());
    assert!(reason.contains("revert"), "{reason}");
    stack.assert_nothing_signed().await;
    stack.finish().await;
}

#[tokio::test]
async fn crash_after_send_then_insufficient_funds_never_fails_a_payment_whose_bytes_can_land() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let wallet = stack.wallets[0];
    let faulty = FaultyRpc::new(stack.rpc());
    let config = RelayConfig {
        fault: Some(Fault {
            point: FaultPoint::AfterSendBeforeRecord,
            mode: FaultMode::Error,
        }),
        ..RelayConfig::default()
    };
    let relay = stack.relay_with(faulty.clone(), config);
    let amount = 10u128.pow(15);
    let payment = stack.payment("ETH", amount).await;

    // The node takes the bytes, then the process dies before the answer is recorded.
    let error = relay
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap_err();
    assert!(matches!(error, RelayError::InjectedFault(_)), "{error}");
    let attempt = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    assert!(attempt.may_be_public(), "{attempt:?}");
    // Our node loses it; a peer still holds the bytes.
    stack
        .rpc_call("anvil_dropTransaction", json!([attempt.tx_hash]))
        .await;

    // Every later delivery is refused outright, up to the last one.
    for dequeue_count in 2..=LAST.dequeue_count {
        faulty.fail_next_send(rpc_error("insufficient funds for gas * price + value"));
        let outcome = relay
            .broadcast(payment.id, Delivery::new(Some(dequeue_count)))
            .await;
        assert!(
            !matches!(outcome, Ok(BroadcastOutcome::Failed { .. })),
            "{outcome:?}"
        );
    }
    let stored = stack.stored(payment.id).await;
    assert_eq!(
        stored.status,
        PaymentStatus::Broadcast,
        "nonce and hold kept"
    );
    let state = stack.nonce_state(wallet).await;
    assert_eq!(state.next_nonce, 1, "the nonce was not handed back");

    // The peer's copy lands: the payment is still there to be confirmed.
    stack
        .rpc_call(
            "eth_sendRawTransaction",
            json!([alloy::primitives::Bytes::from(attempt.raw.clone())]),
        )
        .await;
    stack.mine_all().await;
    stack.receipt(attempt.tx_hash).await;
    assert_eq!(
        stack.stored(payment.id).await.status,
        PaymentStatus::Broadcast,
        "never failed while its bytes could land"
    );
    stack.finish().await;
}
