//! "nonce too low" with our hash unknown to the node we asked: re-signed on a new nonce only
//! with proof (bytes never exposed, or a final block naming a transaction that is not ours),
//! never on one negative read of a lagging backend.

use alloy::primitives::U256;
use meshpay_domain::PaymentStatus;
use meshpay_relay::{Ack, BroadcastOutcome, Delivery, RelayConfig, RelayError, SendClass};
use meshpay_store::transactions::AttemptStatus;
use meshpay_testkit::payment::fresh_address;
use serde_json::json;

use crate::faulty::FaultyRpc;
use crate::support::{LAST, RelayStack};

#[tokio::test]
async fn a_lagging_node_never_gets_a_mined_payment_signed_twice() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let lagging = FaultyRpc::new(stack.rpc());
    let relay = stack.relay_with(lagging.clone(), RelayConfig::default());
    // Blocks are mined by hand: with automine a receipt poll can mine an extra block before it
    // sees the transaction's, making that block final (proof) earlier than this test means.
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let amount = 10u128.pow(15);
    let payment = stack.payment("ETH", amount).await;
    let BroadcastOutcome::Sent(tx) = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("not sent")
    };
    stack.rpc_call("evm_mine", json!([])).await;
    let receipt = stack
        .rpc_call("eth_getTransactionReceipt", json!([tx.tx_hash]))
        .await;
    assert!(!receipt.is_null(), "mined in the block just made");
    // A redelivery reaches a backend that has the block state ("nonce too low") but not our
    // transaction ("unknown hash").
    lagging.forget(tx.tx_hash);

    // Its block is not final yet (1 confirmation): no proof, so nothing is signed.
    let error = relay
        .broadcast(payment.id, Delivery::new(Some(2)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RelayError::Send {
                class: SendClass::NonceTooLow,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        stack
            .store
            .payment_transactions(payment.id)
            .await
            .unwrap()
            .len(),
        1
    );
    // Once it is final, the block names our transaction: sent, not re-signed.
    stack.rpc_call("evm_mine", json!([])).await;
    let BroadcastOutcome::Sent(again) = relay
        .broadcast(payment.id, Delivery::new(Some(3)))
        .await
        .unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!((again.tx_hash, again.ack), (tx.tx_hash, Ack::OnChain));
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    stack.mine_all().await;
    assert_eq!(stack.mined_nonce(tx.from).await, 1);
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        U256::from(amount),
        "exactly one transfer"
    );
    stack.finish().await;
}

#[tokio::test]
async fn without_proof_the_last_delivery_parks_the_payment_instead_of_re_signing() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let lagging = FaultyRpc::new(stack.rpc());
    let relay = stack.relay_with(lagging.clone(), RelayConfig::default());
    let payment = stack.payment("ETH", 1_000).await;
    let BroadcastOutcome::Sent(tx) = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("not sent")
    };
    // Mined in the newest block only (never final here), and unknown to the backend we ask.
    stack.rpc_call("evm_mine", json!([])).await;
    lagging.forget(tx.tx_hash);
    let outcome = relay.broadcast(payment.id, LAST).await.unwrap();
    let BroadcastOutcome::Parked { reason, .. } = outcome else {
        panic!("expected Parked, got {outcome:?}")
    };
    assert!(reason.contains("not re-signing on a guess"), "{reason}");
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, AttemptStatus::Sent);
    assert_eq!(
        stack.stored(payment.id).await.status,
        PaymentStatus::Broadcast
    );
    stack.finish().await;
}

#[tokio::test]
async fn exposed_bytes_whose_nonce_a_final_block_shows_taken_by_another_are_re_signed() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let wallet = stack.wallets[0];
    let relay = stack.relay();
    let payment = stack.payment("ETH", 2_000).await;
    let BroadcastOutcome::Sent(first) = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("not sent")
    };
    // Our transaction leaves the pool; someone else's takes nonce 0 and is buried.
    stack
        .rpc_call("anvil_dropTransaction", json!([first.tx_hash]))
        .await;
    stack
        .rpc_call(
            "eth_sendTransaction",
            json!([{"from": wallet, "to": fresh_address(), "value": "0x1", "nonce": "0x0"}]),
        )
        .await;
    stack.rpc_call("evm_mine", json!([])).await;
    stack.rpc_call("evm_mine", json!([])).await;

    let BroadcastOutcome::Sent(second) = relay
        .broadcast(payment.id, Delivery::new(Some(2)))
        .await
        .unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!((second.attempt, second.nonce), (2, 1));
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(attempts[0].status, AttemptStatus::Superseded);
    let proof = attempts[0].last_error.as_deref().unwrap_or_default();
    assert!(proof.contains("final block"), "{proof}");
    stack.mine_all().await;
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        U256::from(2_000)
    );
    stack.finish().await;
}
