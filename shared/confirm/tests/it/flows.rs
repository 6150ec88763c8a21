//! Confirm and settle against a real chain: finality, reverts, duplicates, review.

use std::sync::Arc;

use alloy::primitives::{B256, Bytes, U256};
use meshpay_confirm::finality::ChainHead;
use meshpay_confirm::receipt::{LogFacts, ReceiptFacts, TRANSFER_TOPIC};
use meshpay_confirm::{
    CheckOutcome, ConfirmConfig, ConfirmMessage, ConfirmOutcome, ConfirmRpc, Ignored, SettleOutcome,
};
use meshpay_domain::{Amount, PaymentStatus};
use meshpay_relay::RpcFailure;
use std::time::Duration;

use crate::support::{ConfirmStack, MERCHANT_ETH, MERCHANT_USDC, parked_reason};

fn waiting(outcome: &ConfirmOutcome) -> (ConfirmMessage, CheckOutcome) {
    match outcome {
        ConfirmOutcome::Waiting { next, outcome, .. } => (*next, *outcome),
        other => panic!("expected Waiting, got {other:?}"),
    }
}

fn is_confirmed(outcome: &ConfirmOutcome) -> bool {
    matches!(outcome, ConfirmOutcome::Confirmed { .. })
}

#[tokio::test]
async fn native_payment_confirms_only_once_deep_enough_then_settles_once() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline();
    let amount = 10u128.pow(15);
    let (payment, hash) = stack.broadcast("ETH", amount).await;

    // In the pool, not mined: nothing is decided.
    let (next, outcome) = waiting(
        &pipeline
            .confirm(ConfirmMessage::new(payment.id))
            .await
            .unwrap(),
    );
    assert_eq!(outcome, CheckOutcome::NotMined);
    // Mined, but no block on top yet (confirmations = 1).
    stack.mine(1).await;
    let inclusion = stack.block_number().await;
    let (next, outcome) = waiting(&pipeline.confirm(next).await.unwrap());
    assert_eq!(outcome, CheckOutcome::NotFinal);
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);
    // One block on top: confirmed, with the block recorded.
    stack.mine(1).await;
    let confirmed = pipeline.confirm(next).await.unwrap();
    let ConfirmOutcome::Confirmed {
        block_number,
        block_hash,
        tx_hash,
        ..
    } = confirmed
    else {
        panic!("expected Confirmed, got {confirmed:?}");
    };
    assert_eq!((block_number, tx_hash), (inclusion, hash));
    let stored = stack.payment_now(payment.id).await;
    assert_eq!(stored.status, PaymentStatus::Confirmed);
    assert_eq!(stored.block_hash, Some(block_hash));
    assert_eq!(stored.block_number, Some(inclusion));
    let receipt = stack.receipt(hash).await;
    assert_eq!(
        receipt["blockHash"].as_str().unwrap(),
        block_hash.to_string()
    );

    assert_eq!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled {
            payment_id: payment.id
        }
    );
    // A second delivery of the settle message changes nothing.
    assert_eq!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::AlreadySettled {
            payment_id: payment.id
        }
    );
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Settled);
    // A late confirm message for a settled payment is ignored.
    assert!(matches!(
        pipeline
            .confirm(ConfirmMessage::new(payment.id))
            .await
            .unwrap(),
        ConfirmOutcome::Ignored {
            reason: Ignored::Status(PaymentStatus::Settled),
            ..
        }
    ));
    // Exactly the quoted amount arrived, once; the merchant paid amount, service fee and the
    // network fee the chain charged (below the held maximum: the rest was released), once.
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        U256::from(amount)
    );
    let charged = stack.charged_fee(hash).await;
    assert!(charged < payment.charges.network_fee, "{charged}");
    assert_eq!(
        stack.payment_now(payment.id).await.network_fee_actual,
        Some(charged)
    );
    let eth = stack.balance("ETH").await;
    let paid = payment
        .charges
        .amount
        .checked_add(payment.charges.service_fee)
        .and_then(|n| n.checked_add(charged))
        .unwrap();
    assert_eq!(eth.held, Amount::ZERO);
    assert_eq!(
        eth.available,
        Amount::from_u128(MERCHANT_ETH).checked_sub(paid).unwrap()
    );
    let events: Vec<String> = stack
        .store
        .payment_events(payment.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["authorize", "broadcast", "confirm", "settle"]);
    stack.finish().await;
}

#[tokio::test]
async fn usdc_payment_confirms_on_its_transfer_event_and_settles() {
    let stack = ConfirmStack::start(2).await;
    let pipeline = stack.pipeline();
    let amount = 250_000_000u128;
    let (payment, hash) = stack.broadcast("USDC", amount).await;
    let (outcome, before) = stack
        .confirm_until(&pipeline, ConfirmMessage::new(payment.id), 1, is_confirmed)
        .await;
    assert!(is_confirmed(&outcome));
    assert!(
        before.len() >= 2,
        "waited for two blocks on top: {before:?}"
    );
    assert!(matches!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled { .. }
    ));
    assert_eq!(stack.anvil.usdc_balance(payment.recipient).await, amount);
    let usdc = stack.balance("USDC").await;
    assert_eq!(usdc.held, Amount::ZERO);
    assert_eq!(
        usdc.available,
        Amount::from_u128(MERCHANT_USDC)
            .checked_sub(payment.charges.total_debit)
            .unwrap()
    );
    // The native balance paid only what the transfer cost on chain.
    let charged = stack.charged_fee(hash).await;
    assert!(charged < payment.charges.network_fee, "{charged}");
    let eth = stack.balance("ETH").await;
    assert_eq!(eth.held, Amount::ZERO);
    assert_eq!(
        eth.available,
        Amount::from_u128(MERCHANT_ETH)
            .checked_sub(charged)
            .unwrap()
    );
    stack.finish().await;
}

#[tokio::test]
async fn reverted_token_transfer_fails_the_payment_charges_its_gas_and_releases_the_rest() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline();
    let (payment, hash) = stack.broadcast("USDC", 5_000_000).await;
    let wallet = payment.hot_wallet.unwrap();
    // The hot wallet's tokens vanish before the block is mined: the transfer reverts.
    stack.set_usdc_balance(wallet, 0).await;
    stack.mine(1).await;
    assert_eq!(stack.receipt(hash).await["status"], "0x0");
    // Not final yet: a reverted receipt is not acted on before the block is deep enough.
    let (next, outcome) = waiting(
        &pipeline
            .confirm(ConfirmMessage::new(payment.id))
            .await
            .unwrap(),
    );
    assert_eq!(outcome, CheckOutcome::NotFinal);
    stack.mine(1).await;
    let failed = pipeline.confirm(next).await.unwrap();
    let ConfirmOutcome::Failed { reason, .. } = failed else {
        panic!("expected Failed, got {failed:?}");
    };
    assert!(reason.contains("reverted"), "{reason}");
    let stored = stack.payment_now(payment.id).await;
    assert_eq!(stored.status, PaymentStatus::Failed);
    assert_eq!(stored.failure_reason.as_deref(), Some(reason.as_str()));
    // The token hold is back in full; of the network-fee hold only the gas the reverted
    // transaction really burnt is gone.
    let charged = stack.charged_fee(hash).await;
    assert!(!charged.is_zero() && charged < payment.charges.network_fee);
    assert_eq!(stored.network_fee_actual, Some(charged));
    assert_eq!(stack.balance("USDC").await.held, Amount::ZERO);
    assert_eq!(
        stack.balance("USDC").await.available,
        Amount::from_u128(MERCHANT_USDC)
    );
    let eth = stack.balance("ETH").await;
    assert_eq!(eth.held, Amount::ZERO);
    assert_eq!(
        eth.available,
        Amount::from_u128(MERCHANT_ETH)
            .checked_sub(charged)
            .unwrap()
    );
    assert_eq!(stack.anvil.usdc_balance(payment.recipient).await, 0);
    let state = stack.store.confirmation(payment.id).await.unwrap().unwrap();
    assert_eq!(
        (state.last_outcome, state.poller),
        (Some(CheckOutcome::Reverted), None)
    );
    // Nothing to settle.
    assert!(matches!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Ignored {
            status: Some(PaymentStatus::Failed),
            ..
        }
    ));
    stack.finish().await;
}

#[tokio::test]
async fn duplicate_confirm_messages_do_not_fork_the_polling_chain() {
    let stack = ConfirmStack::start(3).await;
    let pipeline = stack.pipeline();
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let (next, _) = waiting(
        &pipeline
            .confirm(ConfirmMessage::new(payment.id))
            .await
            .unwrap(),
    );
    // A webhook hint and a reconcile nudge arrive while the chain polls.
    for _ in 0..2 {
        assert!(matches!(
            pipeline
                .confirm(ConfirmMessage::new(payment.id))
                .await
                .unwrap(),
            ConfirmOutcome::Ignored {
                reason: Ignored::ChainActive,
                ..
            }
        ));
    }
    // The chain's message is delivered twice: only the first continues.
    let (after, _) = waiting(&pipeline.confirm(next).await.unwrap());
    assert!(matches!(
        pipeline.confirm(next).await.unwrap(),
        ConfirmOutcome::Ignored {
            reason: Ignored::ChainActive,
            ..
        }
    ));
    stack.mine(4).await;
    assert!(is_confirmed(&pipeline.confirm(after).await.unwrap()));
    assert!(matches!(
        pipeline
            .confirm(ConfirmMessage::new(payment.id))
            .await
            .unwrap(),
        ConfirmOutcome::AlreadyConfirmed { .. }
    ));
    assert!(matches!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled { .. }
    ));
    stack.finish().await;
}

#[tokio::test]
async fn one_invocation_keeps_polling_until_final_within_its_wait() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline_with(ConfirmConfig {
        poll_interval: Duration::from_millis(50),
        invocation_wait: Duration::from_secs(30),
        ..ConfirmStack::config()
    });
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let miner = async {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            stack.mine(1).await;
        }
    };
    let (outcome, ()) = tokio::join!(pipeline.confirm(ConfirmMessage::new(payment.id)), miner);
    assert!(is_confirmed(&outcome.unwrap()));
    let state = stack.store.confirmation(payment.id).await.unwrap().unwrap();
    assert_eq!(state.last_outcome, Some(CheckOutcome::Confirmed));
    assert!(matches!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled { .. }
    ));
    stack.finish().await;
}

#[tokio::test]
async fn a_polling_chain_gives_up_after_its_total_wait_and_records_why() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline_with(ConfirmConfig {
        max_chain_wait: Duration::ZERO,
        ..ConfirmStack::config()
    });
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let parked = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    let reason = parked_reason(parked, CheckOutcome::Stalled);
    assert!(reason.contains("not_mined"), "{reason}");
    let state = stack.store.confirmation(payment.id).await.unwrap().unwrap();
    assert_eq!(
        state.poller, None,
        "no chain holds the payment: reconcile may start one"
    );
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);
    // It is not lost: a new request starts a new chain, which confirms it.
    stack.mine(2).await;
    assert!(is_confirmed(
        &stack
            .pipeline()
            .confirm(ConfirmMessage::new(payment.id))
            .await
            .unwrap()
    ));
    assert!(matches!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled { .. }
    ));
    stack.finish().await;
}

/// A node that reports a successful token transfer of one base unit less than the payment's.
struct ShortTransferNode {
    receipt: ReceiptFacts,
}

#[async_trait::async_trait]
impl ConfirmRpc for ShortTransferNode {
    async fn receipt(&self, _: B256) -> Result<Option<ReceiptFacts>, RpcFailure> {
        Ok(Some(self.receipt.clone()))
    }
    async fn head(&self, _: bool) -> Result<ChainHead, RpcFailure> {
        Ok(ChainHead {
            latest: 100,
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

#[tokio::test]
async fn a_success_receipt_that_does_not_prove_the_transfer_is_parked_for_review() {
    let stack = ConfirmStack::start(1).await;
    let amount = 5_000_000u64;
    let (payment, hash) = stack.broadcast("USDC", u128::from(amount)).await;
    let wallet = payment.hot_wallet.unwrap();
    let token = meshpay_testkit::anvil::DEV_USDC_ADDRESS.parse().unwrap();
    let receipt = ReceiptFacts {
        tx_hash: hash,
        success: true,
        block_number: 50,
        block_hash: B256::repeat_byte(5),
        from: wallet,
        to: Some(token),
        gas_used: 40_000,
        effective_gas_price_wei: 1,
        l1_fee_wei: 0,
        logs: vec![LogFacts {
            address: token,
            topics: vec![
                TRANSFER_TOPIC,
                wallet.into_word(),
                payment.recipient.into_word(),
            ],
            data: Bytes::from(U256::from(amount - 1).to_be_bytes::<32>().to_vec()),
        }],
    };
    let pipeline = stack
        .pipeline()
        .with_rpc("anvil", Arc::new(ShortTransferNode { receipt }));
    let parked = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    let reason = parked_reason(parked, CheckOutcome::NeedsReview);
    assert!(reason.contains("no Transfer"), "{reason}");
    // Neither settled nor released: the hold stays until an operator decides.
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);
    assert_eq!(
        stack.balance("USDC").await.held,
        payment.charges.total_debit
    );
    let flagged = stack.store.payments_needing_review(10).await.unwrap();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].0, payment.id);
    stack.finish().await;
}
