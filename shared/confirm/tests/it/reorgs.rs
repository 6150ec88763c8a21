//! Reorgs (anvil_reorg): a transaction whose block leaves the chain is detected, re-sent from
//! its stored bytes, confirmed again, and lands exactly once.

use alloy::primitives::U256;
use meshpay_confirm::{CheckOutcome, ConfirmError, ConfirmMessage, ConfirmOutcome, SettleOutcome};
use meshpay_domain::PaymentStatus;
use meshpay_store::confirmations::CheckOutcome as Outcome;

use crate::support::{ConfirmStack, LaggingNode};

fn is_confirmed(outcome: &ConfirmOutcome) -> bool {
    matches!(outcome, ConfirmOutcome::Confirmed { .. })
}

#[tokio::test]
async fn a_transaction_reorged_out_before_it_is_final_is_resent_and_confirmed() {
    let stack = ConfirmStack::start(2).await;
    let pipeline = stack.pipeline();
    let amount = 7_000_000_000u128;
    let (payment, hash) = stack.broadcast("ETH", amount).await;
    stack.mine(1).await;
    let first = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    let ConfirmOutcome::Waiting {
        next,
        outcome: CheckOutcome::NotFinal,
        ..
    } = first
    else {
        panic!("expected NotFinal, got {first:?}");
    };
    // The block with our transaction is replaced by an empty one.
    stack.reorg(1).await;
    assert!(stack.receipt(hash).await.is_null());

    let second = pipeline.confirm(next).await.unwrap();
    let ConfirmOutcome::Waiting { next, outcome, .. } = second else {
        panic!("expected Waiting, got {second:?}");
    };
    assert_eq!(outcome, Outcome::Resent);
    let state = stack.store.confirmation(payment.id).await.unwrap().unwrap();
    assert_eq!((state.reorgs_seen, state.resends), (1, 1));

    let (done, _) = stack.confirm_until(&pipeline, next, 1, is_confirmed).await;
    assert!(is_confirmed(&done));
    assert!(matches!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled { .. }
    ));
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        U256::from(amount)
    );
    stack.finish().await;
}

#[tokio::test]
async fn a_reorg_after_confirmation_returns_the_payment_to_broadcast_and_heals() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline();
    let amount = 3_000_000u128;
    let (payment, hash) = stack.broadcast("USDC", amount).await;
    stack.mine(2).await;
    let confirmed = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    let ConfirmOutcome::Confirmed {
        block_hash: first_block,
        ..
    } = confirmed
    else {
        panic!("expected Confirmed, got {confirmed:?}");
    };

    // Both blocks (inclusion and the one on top) leave the chain before settlement.
    stack.reorg(2).await;
    assert!(stack.receipt(hash).await.is_null());
    let reorged = pipeline.settle(payment.id).await.unwrap();
    let SettleOutcome::Reorged { next, .. } = reorged else {
        panic!("expected Reorged, got {reorged:?}");
    };
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);
    // Nothing was posted: the hold is still held, the merchant not yet debited.
    assert_eq!(
        stack.balance("USDC").await.held,
        payment.charges.total_debit
    );

    // Polling starts again: the dropped transaction is re-sent from its stored bytes.
    let resent = pipeline.confirm(next).await.unwrap();
    let ConfirmOutcome::Waiting {
        next,
        outcome: Outcome::Resent,
        ..
    } = resent
    else {
        panic!("expected Resent, got {resent:?}");
    };
    let (done, _) = stack.confirm_until(&pipeline, next, 1, is_confirmed).await;
    let ConfirmOutcome::Confirmed {
        block_hash: second_block,
        tx_hash,
        ..
    } = done
    else {
        unreachable!()
    };
    assert_eq!(tx_hash, hash, "the same signed transaction, not a new one");
    assert_ne!(second_block, first_block);
    assert!(matches!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled { .. }
    ));

    let events: Vec<(String, PaymentStatus)> = stack
        .store
        .payment_events(payment.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.to_status))
        .collect();
    assert_eq!(
        events,
        [
            ("authorize".into(), PaymentStatus::Authorized),
            ("broadcast".into(), PaymentStatus::Broadcast),
            ("confirm".into(), PaymentStatus::Confirmed),
            ("reorg".into(), PaymentStatus::Broadcast),
            ("confirm".into(), PaymentStatus::Confirmed),
            ("settle".into(), PaymentStatus::Settled),
        ]
    );
    assert_eq!(
        stack.payment_now(payment.id).await.block_hash,
        Some(second_block),
        "the payment names the block that is canonical now"
    );
    // Exactly one transfer arrived.
    assert_eq!(stack.anvil.usdc_balance(payment.recipient).await, amount);
    stack.finish().await;
}

#[tokio::test]
async fn a_missing_receipt_alone_is_not_a_reorg_at_settle() {
    let stack = ConfirmStack::start(1).await;
    let amount = 3_000_000_000u128;
    let (payment, hash) = stack.broadcast("ETH", amount).await;
    stack.mine(2).await;
    let pipeline = stack.pipeline();
    assert!(is_confirmed(
        &pipeline
            .confirm(ConfirmMessage::new(payment.id))
            .await
            .unwrap()
    ));
    // The settle step's node lags: it has the blocks, not the receipt.
    let lagging = LaggingNode::new(&stack);
    lagging.forget(hash);
    let settle = stack.pipeline().with_rpc("anvil", lagging.clone());
    let error = settle.settle(payment.id).await.unwrap_err();
    assert!(matches!(error, ConfirmError::Inconclusive(_)), "{error}");
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Confirmed);
    // The block really leaves the chain: the same node now shows another block at that height.
    stack.reorg(2).await;
    assert!(matches!(
        settle.settle(payment.id).await.unwrap(),
        SettleOutcome::Reorged { .. }
    ));
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);
    stack.finish().await;
}
