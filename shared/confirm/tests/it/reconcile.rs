//! The reconcile sweep: stuck payments get a message for their next step, once per period;
//! ledger discrepancies are reported and recorded.

use std::time::Duration;

use meshpay_confirm::{ConfirmConfig, ConfirmMessage, ConfirmOutcome, ReconcileConfig};
use meshpay_domain::PaymentId;

use crate::support::ConfirmStack;

/// Makes a payment look as if it has been waiting for an hour (test-only SQL: ages the row
/// instead of sleeping).
async fn age(stack: &ConfirmStack, id: PaymentId) {
    sqlx::query("UPDATE payments SET updated_at = now() - interval '1 hour' WHERE id = $1")
        .bind(id.as_uuid())
        .execute(stack.store.pool())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE payment_confirmations SET last_checked_at = now() - interval '1 hour'
          WHERE payment_id = $1",
    )
    .bind(id.as_uuid())
    .execute(stack.store.pool())
    .await
    .unwrap();
}

fn config() -> ConfirmConfig {
    let base = ConfirmStack::config();
    ConfirmConfig {
        reconcile: ReconcileConfig {
            stale_after: Duration::from_secs(600),
            ..base.reconcile.clone()
        },
        ..base
    }
}

#[tokio::test]
async fn stuck_payments_are_nudged_to_their_next_step_once_per_period() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline_with(config());
    // Authorized, its broadcast message lost.
    let authorized = stack.payment("ETH", 1_000).await;
    // Broadcast, its confirm message lost (never checked).
    let (broadcast, _) = stack.broadcast("ETH", 2_000).await;
    // Confirmed, its settle message lost.
    let (confirmed, _) = stack.broadcast("USDC", 3_000).await;
    stack.mine(2).await;
    let outcome = pipeline
        .confirm(ConfirmMessage::new(confirmed.id))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
    // A fresh broadcast payment is not stuck yet.
    let (fresh, _) = stack.broadcast("ETH", 4_000).await;
    for id in [authorized.id, broadcast.id, confirmed.id] {
        age(&stack, id).await;
    }

    let report = pipeline.reconcile().await;
    assert_eq!(report.broadcast, [authorized.id]);
    assert_eq!(report.confirm, [broadcast.id]);
    assert_eq!(report.settle, [confirmed.id]);
    assert!(!report.confirm.contains(&fresh.id));
    assert!(
        report.violations.is_empty() && report.errors.is_empty(),
        "{report:?}"
    );
    assert!(report.run_id.is_some());

    // Within the same period nobody is nudged again (a step that is down is not flooded).
    let again = pipeline.reconcile().await;
    assert!(again.broadcast.is_empty() && again.confirm.is_empty() && again.settle.is_empty());

    // The nudges work: the confirm message confirms, the settle message settles.
    stack.mine(2).await;
    let outcome = pipeline
        .confirm(ConfirmMessage::new(broadcast.id))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
    for id in [broadcast.id, confirmed.id] {
        pipeline.settle(id).await.unwrap();
    }
    stack.finish().await;
}

#[tokio::test]
async fn a_broadcast_payment_with_an_active_polling_chain_is_not_nudged() {
    let stack = ConfirmStack::start(3).await;
    let pipeline = stack.pipeline_with(config());
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let outcome = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    assert!(matches!(outcome, ConfirmOutcome::Waiting { .. }));
    sqlx::query("UPDATE payments SET updated_at = now() - interval '1 hour' WHERE id = $1")
        .bind(payment.id.as_uuid())
        .execute(stack.store.pool())
        .await
        .unwrap();
    // Its chain holds a valid lease: its own message is on the way.
    assert!(pipeline.reconcile().await.confirm.is_empty());
    stack.finish().await;
}

#[tokio::test]
async fn a_ledger_discrepancy_is_reported_and_recorded() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline_with(config());
    let pool = stack.store.pool().clone();
    let tamper = |delta: &'static str| {
        let pool = pool.clone();
        let sql = format!(
            "UPDATE ledger_accounts SET balance = balance {delta} 1
              WHERE kind = 'merchant_available' AND asset = 'anvil:ETH'"
        );
        async move {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        }
    };
    tamper("+").await;
    let report = pipeline.reconcile().await;
    assert_eq!(report.violations.len(), 1, "{report:?}");
    assert!(report.violations[0].contains("cached balance differs"));
    assert!(report.has_discrepancies());
    let (flagged,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM reconcile_runs WHERE cardinality(violations) > 0")
            .fetch_one(stack.store.pool())
            .await
            .unwrap();
    assert_eq!(flagged, 1);
    tamper("-").await;
    assert!(pipeline.reconcile().await.violations.is_empty());
    stack.finish().await;
}

#[tokio::test]
async fn reconcile_with_the_relay_re_sends_a_transaction_the_node_lost() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline_with(config());
    let relay = stack.relay();
    let (payment, hash) = stack.broadcast("ETH", 5_000).await;
    // The node loses it (restart, eviction): the wallet's counter is now ahead of the chain,
    // and every later nonce of the wallet would wait behind the hole.
    let by_hash = serde_json::json!([hash]);
    stack
        .anvil
        .rpc("anvil_dropTransaction", by_hash.clone())
        .await;
    let known = stack.anvil.rpc("eth_getTransactionByHash", by_hash.clone());
    assert!(known.await.is_null(), "dropped");

    let report = meshpay_fn_reconcile::run(&pipeline, Some(&relay)).await;
    assert_eq!(report.healed.len(), 1, "{report:?}");
    let healed = report.healed[0].report.clone().unwrap();
    assert_eq!((healed.chain_nonce, healed.next_nonce), (0, Some(1)));
    assert_eq!((healed.resent, healed.stopped_at), (1, None));
    assert!(!report.has_discrepancies(), "{report:?}");
    let known = stack.anvil.rpc("eth_getTransactionByHash", by_hash.clone());
    assert!(!known.await.is_null(), "back in the pool");
    // Healthy wallets are left out of the report.
    assert!(
        meshpay_fn_reconcile::run(&pipeline, Some(&relay))
            .await
            .healed
            .is_empty()
    );
    stack.mine(1).await;
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        alloy::primitives::U256::from(5_000)
    );
    stack.finish().await;
}

#[tokio::test]
async fn a_wallet_used_behind_meshpays_back_is_halted_and_reported_by_every_run() {
    let stack = ConfirmStack::start(1).await;
    let relay = stack.relay();
    let (first, _) = stack.broadcast("ETH", 1_000).await;
    let wallet = first.hot_wallet.unwrap();
    stack.mine(1).await;
    // Someone uses the key outside meshpay.
    stack
        .anvil
        .rpc(
            "eth_sendTransaction",
            serde_json::json!([{"from": wallet, "to": meshpay_testkit::payment::fresh_address(), "value": "0x1"}]),
        )
        .await;
    stack.mine(1).await;

    let next =
        meshpay_testkit::payment::PaymentSetup::new(meshpay_testkit::assets::asset("ETH"), 2_000)
            .recipient(meshpay_testkit::payment::fresh_address())
            .hot_wallet(Some(wallet))
            .authorize(&stack.store, stack.merchant)
            .await;
    relay
        .broadcast(next.id, meshpay_relay::Delivery::FIRST)
        .await
        .unwrap_err();
    assert!(
        stack
            .store
            .payment_transactions(next.id)
            .await
            .unwrap()
            .is_empty(),
        "nothing signed on a halted wallet"
    );

    for _ in 0..2 {
        let report = stack.pipeline_with(config()).reconcile().await;
        assert!(report.has_discrepancies());
        assert_eq!(report.halted_wallets.len(), 1, "{report:?}");
        let halted = &report.halted_wallets[0];
        assert_eq!((halted.chain.as_str(), halted.wallet), ("anvil", wallet));
        assert!(
            halted.reason.contains("pending nonce 2"),
            "{}",
            halted.reason
        );
    }
    stack.finish().await;
}

#[tokio::test]
async fn reconcile_fills_a_stale_nonce_gap_so_the_quiet_wallets_payment_is_mined() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline_with(config());
    let relay = stack.relay();
    // Nonce 0 of each wallet was handed out and handed back an hour ago (its payment failed
    // without any node accepting it), and no payment came since to reuse it.
    let wallets: Vec<alloy::primitives::Address> =
        relay.wallets("anvil").unwrap().addresses().collect();
    let mut db = stack.store.begin().await.unwrap();
    for &wallet in &wallets {
        meshpay_store::transactions::allocate_nonce(&mut db, "anvil", wallet, 0)
            .await
            .unwrap();
    }
    db.commit().await.unwrap();
    let (payment, hash) = stack.broadcast("ETH", 5_000).await;
    assert_eq!(stack.payment_now(payment.id).await.nonce, Some(1));
    for wallet in &wallets {
        sqlx::query(
            "INSERT INTO wallet_nonce_gaps (chain, address, nonce, created_at)
             VALUES ('anvil', $1, 0, now() - interval '1 hour')",
        )
        .bind(wallet.to_checksum(None))
        .execute(stack.store.pool())
        .await
        .unwrap();
    }
    stack.mine(1).await;
    assert!(
        stack
            .anvil
            .rpc("eth_getTransactionReceipt", serde_json::json!([hash]))
            .await
            .is_null(),
        "stuck behind the gap"
    );

    let report = meshpay_fn_reconcile::run(&pipeline, Some(&relay)).await;
    assert_eq!(report.gap_fills.len(), 2, "{report:?}");
    assert!(!report.has_discrepancies(), "{report:?}");
    stack.mine(1).await;
    for fill in &report.gap_fills {
        let receipt = stack.receipt(fill.tx_hash.unwrap()).await;
        assert_eq!(receipt["status"], serde_json::json!("0x1"));
        assert_eq!(receipt["to"], receipt["from"], "a self-transfer");
    }
    stack.receipt(hash).await;
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        alloy::primitives::U256::from(5_000)
    );
    // The gaps are gone: the next run has nothing to fill.
    let again = meshpay_fn_reconcile::run(&pipeline, Some(&relay)).await;
    assert!(again.gap_fills.is_empty(), "{again:?}");
    stack.finish().await;
}
