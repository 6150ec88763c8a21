//! Payments reach the chain with the quoted amounts, exactly once, whatever the deliveries.

use alloy::primitives::U256;
use meshpay_domain::{PaymentId, PaymentStatus};
use meshpay_relay::{
    Ack, BroadcastOutcome, Delivery, Fault, FaultMode, FaultPoint, Ignored, RelayConfig,
    RelayError, SentTransaction,
};
use meshpay_store::transactions::AttemptStatus;
use meshpay_testkit::hex::hex_u64;
use serde_json::json;

use crate::support::RelayStack;

const TRANSFER_TOPIC: &str = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

fn sent(outcome: BroadcastOutcome) -> SentTransaction {
    match outcome {
        BroadcastOutcome::Sent(sent) => sent,
        other => panic!("expected Sent, got {other:?}"),
    }
}

fn topic_address(topic: &serde_json::Value) -> String {
    let t = topic.as_str().unwrap();
    format!("0x{}", &t[t.len() - 40..])
}

#[tokio::test]
async fn native_payment_lands_with_the_quoted_amount() {
    let stack = RelayStack::start().await;
    let relay = stack.relay();
    let amount = 1_234_567_890_123_456_789u128;
    let payment = stack.payment("ETH", amount).await;
    let recipient = payment.recipient;

    let tx = sent(relay.broadcast(payment.id, Delivery::FIRST).await.unwrap());
    assert_eq!(tx.ack, Ack::Accepted);
    let receipt = stack.receipt(tx.tx_hash).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(stack.anvil.eth_balance(recipient).await, U256::from(amount));

    let stored = stack.stored(payment.id).await;
    assert_eq!(stored.status, PaymentStatus::Broadcast);
    assert_eq!(stored.tx_hash, Some(tx.tx_hash));
    assert_eq!(stored.nonce, Some(tx.nonce));
    assert_eq!(stored.hot_wallet, Some(tx.from));
    assert!(stack.wallets.contains(&tx.from));
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, AttemptStatus::Sent);
    assert_eq!(attempts[0].value_wei, U256::from(amount));
    assert_eq!(
        attempts[0].gas_limit, payment.gas_limit,
        "the quoted gas limit is signed (the hold covers it)"
    );
    assert!(attempts[0].max_priority_fee_per_gas_wei <= attempts[0].max_fee_per_gas_wei);
    let events = stack.store.payment_events(payment.id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.from_status, last.to_status),
        (PaymentStatus::Authorized, PaymentStatus::Broadcast)
    );
    assert_eq!(last.data["tx_hash"], json!(tx.tx_hash));
    stack.finish().await;
}

#[tokio::test]
async fn usdc_payment_transfers_exactly_the_quoted_amount() {
    let stack = RelayStack::start().await;
    let relay = stack.relay();
    let amount = 250_000_000u128; // 250.00 USDC
    let payment = stack.payment("USDC", amount).await;

    let tx = sent(relay.broadcast(payment.id, Delivery::FIRST).await.unwrap());
    let receipt = stack.receipt(tx.tx_hash).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(stack.anvil.usdc_balance(payment.recipient).await, amount);
    let logs = receipt["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert_eq!(
        log["address"].as_str().unwrap().to_ascii_lowercase(),
        meshpay_testkit::anvil::DEV_USDC_ADDRESS.to_ascii_lowercase()
    );
    let topics = log["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 3);
    assert_eq!(topics[0], json!(TRANSFER_TOPIC));
    assert_eq!(topic_address(&topics[1]), format!("{:#x}", tx.from));
    assert_eq!(
        topic_address(&topics[2]),
        format!("{:#x}", payment.recipient)
    );
    assert_eq!(hex_u64(&log["data"]) as u128, amount);
    let attempt = &stack.store.payment_transactions(payment.id).await.unwrap()[0];
    assert_eq!(attempt.value_wei, U256::ZERO);
    assert!(
        attempt.gas_limit > 21_000,
        "token transfer gets estimate + margin"
    );
    stack.finish().await;
}

#[tokio::test]
async fn same_message_delivered_five_times_sends_one_transaction() {
    let stack = RelayStack::start().await;
    let relay = stack.relay();
    let payment = stack.payment("ETH", 10u128.pow(15)).await;

    // Concurrent duplicates (the queue may hand copies to several instances) ...
    let first: Vec<_> = futures::future::join_all(
        (1..=3).map(|n| relay.broadcast(payment.id, Delivery::new(Some(n)))),
    )
    .await;
    // ... and late ones after the transaction is mined.
    let hash = sent(first.into_iter().next().unwrap().unwrap()).tx_hash;
    stack.receipt(hash).await;
    for n in 4..=5 {
        let again = sent(
            relay
                .broadcast(payment.id, Delivery::new(Some(n)))
                .await
                .unwrap(),
        );
        assert_eq!(again.tx_hash, hash);
        assert_eq!(again.ack, Ack::OnChain);
    }
    assert_eq!(
        stack
            .store
            .payment_transactions(payment.id)
            .await
            .unwrap()
            .len(),
        1
    );
    let wallet = stack.stored(payment.id).await.hot_wallet.unwrap();
    assert_eq!(
        stack.mined_nonce(wallet).await,
        1,
        "exactly one transaction from the wallet"
    );
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        U256::from(10u128.pow(15))
    );
    stack.finish().await;
}

#[tokio::test]
async fn crash_between_persist_and_send_resends_the_stored_bytes() {
    let stack = RelayStack::start().await;
    let config = RelayConfig {
        fault: Some(Fault {
            point: FaultPoint::AfterPersistBeforeSend,
            mode: FaultMode::Error,
        }),
        ..RelayConfig::default()
    };
    let relay = stack.relay_with(stack.rpc(), config);
    let payment = stack.payment("USDC", 5_000_000).await;

    let error = relay
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap_err();
    assert!(matches!(error, RelayError::InjectedFault(_)), "{error}");
    let stored = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, AttemptStatus::Signed);
    assert_eq!(stored[0].send_count, 0);
    let unknown = stack
        .rpc_call("eth_getTransactionByHash", json!([stored[0].tx_hash]))
        .await;
    assert!(
        unknown.is_null(),
        "nothing reached the node before the crash"
    );

    // The redelivery (dequeue count 2) resumes: same bytes, same hash, same nonce.
    let tx = sent(
        relay
            .broadcast(payment.id, Delivery::new(Some(2)))
            .await
            .unwrap(),
    );
    assert_eq!(tx.tx_hash, stored[0].tx_hash);
    assert_eq!(tx.nonce, stored[0].nonce);
    stack.receipt(tx.tx_hash).await;
    assert_eq!(stack.anvil.usdc_balance(payment.recipient).await, 5_000_000);
    assert_eq!(stack.mined_nonce(tx.from).await, 1);
    assert_eq!(
        stack
            .store
            .payment_transactions(payment.id)
            .await
            .unwrap()
            .len(),
        1
    );
    stack.finish().await;
}

#[tokio::test]
async fn messages_for_unknown_or_finished_payments_change_nothing() {
    let stack = RelayStack::start().await;
    let relay = stack.relay();
    let unknown = PaymentId::new();
    assert_eq!(
        relay.broadcast(unknown, Delivery::FIRST).await.unwrap(),
        BroadcastOutcome::Ignored {
            payment_id: unknown,
            reason: Ignored::UnknownPayment
        }
    );
    let payment = stack.payment("ETH", 1_000).await;
    stack
        .store
        .cancel_payment(stack.merchant, payment.id)
        .await
        .unwrap();
    assert_eq!(
        relay.broadcast(payment.id, Delivery::FIRST).await.unwrap(),
        BroadcastOutcome::Ignored {
            payment_id: payment.id,
            reason: Ignored::Status(PaymentStatus::Cancelled)
        }
    );
    stack.assert_nothing_signed().await;
    for &w in &stack.wallets {
        assert_eq!(stack.pending_nonce(w).await, 0, "nothing signed or sent");
    }
    stack.finish().await;
}

#[tokio::test]
async fn payment_pinned_to_a_hot_wallet_is_sent_from_it() {
    let stack = RelayStack::start().await;
    let relay = stack.relay();
    let wallet = stack.wallets[1];
    let payment = stack
        .payment_to(
            "ETH",
            42,
            meshpay_testkit::payment::fresh_address(),
            Some(wallet),
        )
        .await;
    let tx = sent(relay.broadcast(payment.id, Delivery::FIRST).await.unwrap());
    assert_eq!(tx.from, wallet);
    stack.finish().await;
}
