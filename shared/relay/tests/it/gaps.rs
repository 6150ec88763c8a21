//! Nonce gaps on a quiet wallet: filled by the reconcile pass with a 0-value self-send, never
//! blocked by the backlog limit.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use meshpay_relay::{BroadcastOutcome, Delivery, Fault, FaultMode, FaultPoint, Relay, RelayConfig};
use meshpay_store::Payment;
use serde_json::json;

use crate::faulty::{FaultyRpc, rpc_error};
use crate::support::RelayStack;

fn holding(limit: u64) -> RelayConfig {
    RelayConfig {
        fault: Some(Fault {
            point: FaultPoint::AfterPersistBeforeSend,
            mode: FaultMode::Error,
        }),
        max_in_flight_per_wallet: limit,
        ..RelayConfig::default()
    }
}

/// Stores `n` payments of the wallet (nonces 0..n, not sent), then has the node refuse the
/// first one for good: it fails and nonce 0 becomes a gap below the counter.
async fn gap_at_zero(
    stack: &RelayStack,
    faulty: &std::sync::Arc<FaultyRpc>,
    n: usize,
) -> Vec<Payment> {
    let hold = stack.relay_with(faulty.clone(), holding(1_000));
    let mut payments = Vec::new();
    for i in 0..n {
        let p = stack.payment("ETH", 100 + i as u128).await;
        hold.broadcast(p.id, Delivery::FIRST).await.unwrap_err();
        payments.push(p);
    }
    faulty.fail_next_send(rpc_error("intrinsic gas too low"));
    let relay = stack.relay_with(faulty.clone(), RelayConfig::default());
    let outcome = relay
        .broadcast(payments[0].id, Delivery::new(Some(2)))
        .await
        .unwrap();
    assert!(
        matches!(outcome, BroadcastOutcome::Failed { .. }),
        "{outcome:?}"
    );
    let wallet = stack.wallets[0];
    let state = stack.nonce_state(wallet).await;
    assert_eq!((state.next_nonce, state.gaps), (n as u64, vec![0]));
    payments
}

#[tokio::test]
async fn a_payment_filling_a_gap_is_not_refused_by_the_backlog_limit() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let faulty = FaultyRpc::new(stack.rpc());
    gap_at_zero(&stack, &faulty, 3).await;
    // Three nonces ahead of the chain with a limit of two: a new nonce would be refused, but
    // the gap at 0 is what the two stored transactions behind it wait for.
    let strict: Relay = stack.relay_with(
        faulty.clone(),
        RelayConfig {
            max_in_flight_per_wallet: 2,
            ..RelayConfig::default()
        },
    );
    let next = stack.payment("ETH", 500).await;
    let BroadcastOutcome::Sent(tx) = strict.broadcast(next.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("the gap was not filled")
    };
    assert_eq!(tx.nonce, 0);
    // Past the gap the limit holds again.
    let over = stack.payment("ETH", 600).await;
    strict
        .broadcast(over.id, Delivery::FIRST)
        .await
        .unwrap_err();
    strict.heal_wallet("anvil", stack.wallets[0]).await.unwrap();
    stack.mine_all().await;
    assert_eq!(stack.mined_nonce(stack.wallets[0]).await, 3);
    assert_eq!(
        stack.anvil.eth_balance(next.recipient).await,
        U256::from(500)
    );
    stack.finish().await;
}

#[tokio::test]
async fn reconcile_fills_a_stale_gap_on_a_quiet_wallet_with_a_self_transfer() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let faulty = FaultyRpc::new(stack.rpc());
    let payments = gap_at_zero(&stack, &faulty, 2).await;
    let config = RelayConfig {
        gap_fill_after: Duration::from_secs(60),
        ..RelayConfig::default()
    };
    let relay = stack.relay_with(stack.rpc(), config);
    // The payment behind the gap reaches the node but cannot be mined: nonce 0 is missing.
    relay.heal_wallet("anvil", wallet).await.unwrap();
    stack.rpc_call("evm_mine", json!([])).await;
    assert_eq!(stack.mined_nonce(wallet).await, 0);
    let deadline = || Instant::now() + Duration::from_secs(30);

    // A fresh gap is left to the next payment.
    assert!(relay.fill_stale_gaps(8, deadline()).await.is_empty());
    sqlx::query("UPDATE wallet_nonce_gaps SET created_at = now() - interval '10 minutes'")
        .execute(stack.store.pool())
        .await
        .unwrap();
    // A halted wallet's gap waits for the operator.
    stack
        .store
        .halt_wallet("anvil", wallet, "test")
        .await
        .unwrap();
    assert!(relay.fill_stale_gaps(8, deadline()).await.is_empty());
    assert!(stack.store.resume_wallet("anvil", wallet, 0).await.unwrap());

    let reports = relay.fill_stale_gaps(8, deadline()).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let (nonce, hash) = (reports[0].nonce, reports[0].tx_hash.unwrap());
    assert_eq!((nonce, reports[0].error.as_deref()), (0, None));
    let receipt = stack.receipt(hash).await;
    assert_eq!(receipt["status"], json!("0x1"));
    let tx = stack
        .rpc_call("eth_getTransactionByHash", json!([hash]))
        .await;
    let from: Address = serde_json::from_value(tx["from"].clone()).unwrap();
    let to: Address = serde_json::from_value(tx["to"].clone()).unwrap();
    assert_eq!(
        (from, to, tx["value"].clone()),
        (wallet, wallet, json!("0x0"))
    );
    assert_eq!(tx["nonce"], json!("0x0"));

    // The chain's nonce moved past the gap and the payment behind it was mined.
    stack.mine_all().await;
    assert_eq!(stack.mined_nonce(wallet).await, 2);
    assert_eq!(
        stack.anvil.eth_balance(payments[1].recipient).await,
        U256::from(101)
    );
    let state = stack.nonce_state(wallet).await;
    assert_eq!((state.next_nonce, state.gaps), (2, vec![]));
    assert_eq!(
        stack
            .count("SELECT count(*) FROM wallet_gap_fills WHERE nonce = 0 AND status = 'sent'")
            .await,
        1
    );
    // Nothing left to fill.
    assert!(relay.fill_stale_gaps(8, deadline()).await.is_empty());
    stack.finish().await;
}

#[tokio::test]
async fn a_gap_fill_left_under_a_rising_base_fee_is_re_priced_on_its_nonce_and_mined() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let wallet = stack.wallets[0];
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let faulty = FaultyRpc::new(stack.rpc());
    gap_at_zero(&stack, &faulty, 2).await;
    sqlx::query("UPDATE wallet_nonce_gaps SET created_at = now() - interval '10 minutes'")
        .execute(stack.store.pool())
        .await
        .unwrap();
    let config = RelayConfig {
        gap_fill_after: Duration::from_secs(60),
        ..RelayConfig::default()
    };
    let relay = stack.relay_with(stack.rpc(), config);
    let deadline = || Instant::now() + Duration::from_secs(30);
    let filled = relay.fill_stale_gaps(8, deadline()).await;
    assert_eq!(filled.len(), 1, "{filled:?}");
    let first = filled[0].tx_hash.unwrap();
    let (max_fee,): (String,) =
        sqlx::query_as("SELECT max_fee_per_gas::text FROM wallet_gap_fills WHERE nonce = 0")
            .fetch_one(stack.store.pool())
            .await
            .unwrap();
    let max_fee: u128 = max_fee.parse().unwrap();

    // The base fee rises above the fill's max fee and stays there: it cannot be mined.
    let base = max_fee * 3 / 2;
    let set_base = || {
        stack.rpc_call(
            "anvil_setNextBlockBaseFeePerGas",
            json!([format!("{base:#x}")]),
        )
    };
    set_base().await;
    stack.rpc_call("evm_mine", json!([])).await;
    assert_eq!(stack.mined_nonce(wallet).await, 0);
    set_base().await;
    let repriced = relay.fill_stale_gaps(8, deadline()).await;
    assert_eq!(repriced.len(), 1, "{repriced:?}");
    assert_eq!((repriced[0].nonce, repriced[0].error.as_deref()), (0, None));
    let second = repriced[0].tx_hash.unwrap();
    assert_ne!(second, first);
    let (new_max, replaced): (String, Vec<String>) = sqlx::query_as(
        "SELECT max_fee_per_gas::text, replaced_hashes FROM wallet_gap_fills WHERE nonce = 0",
    )
    .fetch_one(stack.store.pool())
    .await
    .unwrap();
    let new_max: u128 = new_max.parse().unwrap();
    assert!(new_max >= base && new_max * 1000 >= max_fee * 1125);
    assert_eq!(replaced, vec![first.to_string()]);
    set_base().await;
    stack.rpc_call("evm_mine", json!([])).await;
    let receipt = stack
        .rpc_call("eth_getTransactionReceipt", json!([second]))
        .await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(stack.mined_nonce(wallet).await, 1);
    stack.finish().await;
}
