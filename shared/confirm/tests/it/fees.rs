//! A chain that charged more network fee than was held (possible when the broadcast step prices
//! the transaction above the quote): never taken from the merchant, flagged for review.

use std::sync::Arc;

use alloy::primitives::B256;
use meshpay_confirm::finality::ChainHead;
use meshpay_confirm::receipt::ReceiptFacts;
use meshpay_confirm::{CheckOutcome, ConfirmMessage, ConfirmOutcome, ConfirmRpc, SettleOutcome};
use meshpay_domain::PaymentStatus;
use meshpay_relay::RpcFailure;

use crate::support::{ConfirmStack, parked_reason};

/// A node that answers every receipt request with one scripted receipt.
struct ScriptedNode {
    receipt: ReceiptFacts,
}

#[async_trait::async_trait]
impl ConfirmRpc for ScriptedNode {
    async fn receipt(&self, _: B256) -> Result<Option<ReceiptFacts>, RpcFailure> {
        Ok(Some(self.receipt.clone()))
    }
    async fn head(&self, _: bool) -> Result<ChainHead, RpcFailure> {
        Ok(ChainHead {
            latest: self.receipt.block_number + 100,
            finalized: None,
        })
    }
    async fn block_hash(&self, _: u64) -> Result<Option<B256>, RpcFailure> {
        Ok(Some(self.receipt.block_hash))
    }
    async fn transaction_known(&self, _: B256) -> Result<bool, RpcFailure> {
        Ok(true)
    }
    async fn send_raw(&self, _: &[u8]) -> Result<B256, RpcFailure> {
        Err(RpcFailure::Timeout {
            method: "eth_sendRawTransaction",
        })
    }
}

/// Gas price that makes 65 000 gas (the held gas limit) cost one wei more than the hold.
fn too_expensive_receipt(hash: B256, success: bool, block_hash: B256) -> ReceiptFacts {
    ReceiptFacts {
        tx_hash: hash,
        success,
        block_number: 50,
        block_hash,
        from: alloy::primitives::Address::ZERO,
        to: None,
        gas_used: 65_000,
        effective_gas_price_wei: 2_000_000_001,
        l1_fee_wei: 0,
        logs: Vec::new(),
    }
}

#[tokio::test]
async fn settlement_refuses_a_network_fee_above_the_hold_and_flags_the_payment() {
    let stack = ConfirmStack::start(1).await;
    let (payment, hash) = stack.broadcast("USDC", 5_000_000).await;
    stack.mine(2).await;
    let pipeline = stack.pipeline();
    assert!(matches!(
        pipeline
            .confirm(ConfirmMessage::new(payment.id))
            .await
            .unwrap(),
        ConfirmOutcome::Confirmed { .. }
    ));
    let confirmed = stack.payment_now(payment.id).await;
    let balances = stack.balances().await;
    let node = ScriptedNode {
        receipt: too_expensive_receipt(hash, true, confirmed.block_hash.unwrap()),
    };
    let pipeline = pipeline.with_rpc("anvil", Arc::new(node));

    let outcome = pipeline.settle(payment.id).await.unwrap();

    let SettleOutcome::NeedsReview { detail, .. } = outcome else {
        panic!("expected NeedsReview, got {outcome:?}");
    };
    assert!(detail.contains("more than"), "{detail}");
    // Nothing posted: still confirmed, the holds intact, no fee recorded.
    let now = stack.payment_now(payment.id).await;
    assert_eq!(
        (now.status, now.version, now.network_fee_actual),
        (PaymentStatus::Confirmed, confirmed.version, None)
    );
    assert_eq!(stack.balances().await, balances);
    let flagged = stack.store.payments_needing_review(10).await.unwrap();
    assert_eq!(flagged, vec![(payment.id, Some(detail))]);
    // A redelivery decides the same and changes nothing.
    assert!(matches!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::NeedsReview { .. }
    ));
    assert_eq!(stack.balances().await, balances);
    // Reconcile reports it and does not keep re-sending settle messages for it.
    sqlx::query("UPDATE payments SET updated_at = now() - interval '1 hour' WHERE id = $1")
        .bind(payment.id.as_uuid())
        .execute(stack.store.pool())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE payment_confirmations SET last_checked_at = now() - interval '1 hour'
          WHERE payment_id = $1",
    )
    .bind(payment.id.as_uuid())
    .execute(stack.store.pool())
    .await
    .unwrap();
    let report = pipeline.reconcile().await;
    assert!(report.settle.is_empty(), "{report:?}");
    assert_eq!(
        report
            .flagged
            .iter()
            .map(|f| f.payment_id)
            .collect::<Vec<_>>(),
        [payment.id]
    );
    assert!(report.violations.is_empty(), "{report:?}");
    stack.finish().await;
}

#[tokio::test]
async fn a_reverted_transaction_charged_above_the_hold_is_parked_not_failed() {
    let stack = ConfirmStack::start(1).await;
    let (payment, hash) = stack.broadcast("USDC", 5_000_000).await;
    let balances = stack.balances().await;
    let node = ScriptedNode {
        receipt: too_expensive_receipt(hash, false, B256::repeat_byte(7)),
    };
    let pipeline = stack.pipeline().with_rpc("anvil", Arc::new(node));

    let outcome = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();

    let reason = parked_reason(outcome, CheckOutcome::NeedsReview);
    assert!(reason.contains("more than"), "{reason}");
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);
    assert_eq!(stack.balances().await, balances);
    let flagged = stack.store.payments_needing_review(10).await.unwrap();
    assert_eq!(flagged.len(), 1);
    stack.finish().await;
}
