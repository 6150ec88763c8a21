//! Which wallet a new payment goes to: stuck and halted wallets are avoided while another one
//! is healthy.

use std::collections::BTreeSet;
use std::time::Duration;

use alloy::primitives::Address;
use meshpay_relay::{BroadcastOutcome, Delivery, Relay, RelayConfig};
use serde_json::json;

use crate::support::RelayStack;

async fn broadcast_new(stack: &RelayStack, relay: &Relay, n: usize) -> BTreeSet<Address> {
    let mut wallets = BTreeSet::new();
    for _ in 0..n {
        let p = stack.payment("ETH", 1_000).await;
        match relay.broadcast(p.id, Delivery::FIRST).await.unwrap() {
            BroadcastOutcome::Sent(tx) => wallets.insert(tx.from),
            other => panic!("{other:?}"),
        };
    }
    wallets
}

/// Test-only SQL: the wallet's unmined transactions look an hour old (instead of sleeping).
async fn age_transactions(stack: &RelayStack, wallet: Address) {
    sqlx::query(
        "UPDATE payment_transactions SET created_at = now() - interval '1 hour'
          WHERE from_address = $1",
    )
    .bind(wallet.to_checksum(None))
    .execute(stack.store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn a_wallet_whose_head_transaction_is_stuck_gets_no_new_payment_while_another_is_healthy() {
    let stack = RelayStack::start().await;
    stack.rpc_call("evm_setAutomine", json!([false])).await;
    let (stuck, healthy) = (stack.wallets[0], stack.wallets[1]);
    let relay = stack.relay_with(
        stack.rpc(),
        RelayConfig {
            wallet_stuck_after: Duration::from_secs(60),
            ..RelayConfig::default()
        },
    );
    // A payment of the first wallet waits in the pool, unmined, for an hour.
    let head = stack
        .payment_to(
            "ETH",
            1_000,
            meshpay_testkit::payment::fresh_address(),
            Some(stuck),
        )
        .await;
    relay.broadcast(head.id, Delivery::FIRST).await.unwrap();
    age_transactions(&stack, stuck).await;

    assert_eq!(
        broadcast_new(&stack, &relay, 20).await,
        BTreeSet::from([healthy])
    );

    // Both stuck: no wallet is healthier, so payments spread over both as before.
    age_transactions(&stack, healthy).await;
    assert_eq!(
        broadcast_new(&stack, &relay, 20).await,
        BTreeSet::from([stuck, healthy])
    );
    stack.mine_all().await;
    stack.finish().await;
}
