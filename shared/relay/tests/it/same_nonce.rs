//! A payment may only fail (hold released, nonce handed back) when none of its signed bytes can
//! ever be mined. Against a real anvil: another transaction holding our nonce in the pool
//! ("replacement transaction underpriced"), our own transaction behind such an answer, and a
//! refusal after a send whose outcome was unknown.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use meshpay_domain::{PaymentId, PaymentStatus};
use meshpay_relay::{
    Ack, BroadcastOutcome, Delivery, Fault, FaultMode, FaultPoint, HealBudget, RelayConfig,
    RelayError, RpcFailure, SendClass,
};
use meshpay_store::transactions::AttemptStatus;
use serde_json::json;

use crate::faulty::{FaultyRpc, rpc_error};
use meshpay_testkit::assets::eth;
use meshpay_testkit::payment::fresh_address;

use crate::support::{LAST, RelayStack};

/// Stores the payment's signed transaction without sending it (the fault hook stops the first
/// delivery between persisting and sending).
fn storing_config() -> RelayConfig {
    RelayConfig {
        fault: Some(Fault {
            point: FaultPoint::AfterPersistBeforeSend,
            mode: FaultMode::Error,
        }),
        ..RelayConfig::default()
    }
}

async fn eth_held(stack: &RelayStack) -> U256 {
    let balances = stack.store.balances(stack.merchant).await.unwrap();
    balances
        .iter()
        .find(|b| b.asset == eth())
        .unwrap()
        .held
        .base_units()
}

async fn next_nonce(stack: &RelayStack, wallet: Address) -> u64 {
    let state = stack.store.wallet_nonce("anvil", wallet).await.unwrap();
    let state = state.unwrap();
    assert!(state.gaps.is_empty(), "no nonce handed back: {state:?}");
    state.next_nonce
}

async fn review_reason(stack: &RelayStack, payment: PaymentId) -> Option<String> {
    let flagged = stack.store.payments_needing_review(100).await.unwrap();
    flagged
        .into_iter()
        .find(|(id, _)| *id == payment)
        .map(|(_, reason)| reason.unwrap_or_default())
}

async fn status(stack: &RelayStack, payment: PaymentId) -> PaymentStatus {
    stack.stored(payment).await.status
}

#[tokio::test]
async fn replacement_underpriced_keeps_the_payment_and_its_nonce_until_the_other_is_mined() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let relay = stack.relay_with(stack.rpc(), storing_config());
    let payment = stack.payment("ETH", 7_000).await;
    relay
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap_err();
    let ours = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    assert_eq!(ours.nonce, 0);
    let held = eth_held(&stack).await;
    assert!(held > U256::ZERO);

    // Another transaction of the wallet takes nonce 0 in the pool first, with far higher fees.
    let other = stack
        .rpc_call(
            "eth_sendTransaction",
            json!([{"from": wallet, "to": fresh_address(), "value": "0x1", "nonce": "0x0",
                    "gas": "0x5208", "maxFeePerGas": "0x174876e800",
                    "maxPriorityFeePerGas": "0x174876e800"}]),
        )
        .await;
    assert!(other.is_string(), "{other}");

    let error = relay
        .broadcast(payment.id, Delivery::new(Some(2)))
        .await
        .unwrap_err();
    match &error {
        RelayError::Send { class, failure } => {
            assert_eq!(*class, SendClass::NonceInUse, "{failure}");
            let text = failure.to_string().to_ascii_lowercase();
            assert!(text.contains("underpriced"), "{failure}");
        }
        other => panic!("expected a refused send, got {other}"),
    }

    // The last delivery parks the payment: not failed, nonce and hold kept.
    let outcome = relay.broadcast(payment.id, LAST).await.unwrap();
    let BroadcastOutcome::Parked { reason, .. } = outcome else {
        panic!("expected Parked, got {outcome:?}")
    };
    assert!(reason.contains("held by another transaction"), "{reason}");
    assert_eq!(status(&stack, payment.id).await, PaymentStatus::Broadcast);
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, AttemptStatus::Signed, "still live");
    assert_eq!(next_nonce(&stack, wallet).await, 1, "nonce 0 kept");
    assert_eq!(eth_held(&stack).await, held, "hold kept");
    let flagged = review_reason(&stack, payment.id).await;
    assert!(
        flagged
            .as_deref()
            .is_some_and(|r| r.contains("held by another transaction")),
        "{flagged:?}"
    );

    // The other transaction is mined: the next delivery re-signs the payment on nonce 1.
    stack.rpc_call("evm_mine", json!([])).await;
    let BroadcastOutcome::Sent(tx) = relay
        .broadcast(payment.id, Delivery::new(Some(2)))
        .await
        .unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!((tx.attempt, tx.nonce), (2, 1));
    stack.receipt(tx.tx_hash).await;
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        U256::from(7_000)
    );
    stack.finish().await;
}

#[tokio::test]
async fn replacement_underpriced_while_the_node_has_our_own_transaction_counts_as_sent() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let faulty = FaultyRpc::new(stack.rpc());
    let relay = stack.relay_with(faulty.clone(), RelayConfig::default());
    let payment = stack.payment("ETH", 8_000).await;
    let BroadcastOutcome::Sent(first) = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("not sent")
    };

    // Another node behind the same endpoint answers as if a different transaction held the
    // nonce: it is ours, so the payment is sent, never failed.
    faulty.fail_next_send(rpc_error("replacement transaction underpriced"));
    let BroadcastOutcome::Sent(again) = relay.broadcast(payment.id, LAST).await.unwrap() else {
        panic!("not sent")
    };
    assert_eq!(again.ack, Ack::Known);
    assert_eq!((again.tx_hash, again.nonce), (first.tx_hash, first.nonce));
    assert_eq!(status(&stack, payment.id).await, PaymentStatus::Broadcast);
    assert_eq!(review_reason(&stack, payment.id).await, None);
    stack.receipt(first.tx_hash).await;
    stack.finish().await;
}

#[tokio::test]
async fn a_refusal_after_a_send_with_unknown_outcome_parks_instead_of_failing() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    let amount = 10u128.pow(18);
    // Enough for the value (so eth_estimateGas passes) but not for value + gas.
    stack.set_eth_balance(wallet, U256::from(amount + 1)).await;
    let faulty = FaultyRpc::new(stack.rpc());
    let relay = stack.relay_with(faulty.clone(), RelayConfig::default());
    let payment = stack.payment("ETH", amount).await;
    let held = eth_held(&stack).await;

    // The first send times out: the bytes may have reached a pool (and anyone who saw them can
    // submit them again later), so a later refusal no longer proves they can never be mined.
    faulty.fail_next_send(RpcFailure::Timeout {
        method: "eth_sendRawTransaction",
    });
    relay
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap_err();
    let outcome = relay.broadcast(payment.id, LAST).await.unwrap();
    let BroadcastOutcome::Parked { reason, .. } = outcome else {
        panic!("expected Parked, got {outcome:?}")
    };
    assert!(
        reason.to_ascii_lowercase().contains("insufficient funds"),
        "{reason}"
    );
    assert_eq!(status(&stack, payment.id).await, PaymentStatus::Broadcast);
    assert_eq!(next_nonce(&stack, wallet).await, 1);
    assert_eq!(eth_held(&stack).await, held);

    // And indeed: funded again, the very same bytes are mined.
    stack
        .set_eth_balance(wallet, U256::from(10u128.pow(21)))
        .await;
    let live = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    let BroadcastOutcome::Sent(tx) = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!(tx.tx_hash, live.tx_hash);
    stack.receipt(tx.tx_hash).await;
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        U256::from(amount)
    );
    stack.finish().await;
}

#[tokio::test]
async fn healing_all_wallets_stops_at_its_budget_and_the_next_pass_carries_on() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let relay = stack.relay_with(stack.rpc(), storing_config());
    let mut payments = Vec::new();
    for i in 0..3 {
        let p = stack.payment("ETH", 20 + i).await;
        relay.broadcast(p.id, Delivery::FIRST).await.unwrap_err();
        payments.push(p);
    }
    let budget = |max_sends| HealBudget {
        deadline: Instant::now() + Duration::from_secs(60),
        max_sends,
    };

    let first = relay.heal_wallets(budget(2)).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let report = first[0].report.clone().unwrap();
    assert_eq!((report.chain_nonce, report.resent), (0, 2));
    assert!(report.out_of_budget && first[0].is_eventful() && !first[0].is_problem());
    assert_eq!(stack.pending_nonce(wallet).await, 2);

    let second = relay.heal_wallets(budget(64)).await;
    let report = second[0].report.clone().unwrap();
    assert_eq!((report.chain_nonce, report.resent), (2, 1));
    assert!(!report.out_of_budget);
    let quiet = relay.heal_wallets(budget(64)).await;
    assert!(!quiet[0].is_eventful(), "{quiet:?}");

    stack.mine_all().await;
    for (i, p) in payments.iter().enumerate() {
        assert_eq!(
            stack.anvil.eth_balance(p.recipient).await,
            U256::from(20 + i as u64)
        );
    }
    stack.finish().await;
}
