//! Fee replacement, `stalled` and cancellation after broadcast, on anvil with blocks mined by
//! the test and the base fee set per block (`anvil_setNextBlockBaseFeePerGas`): the broadcast
//! step re-prices on the payment's nonce, the confirm step watches every attempt of that nonce.

use alloy::primitives::{Address, U256};
use meshpay_confirm::{ConfirmMessage, ConfirmOutcome, SettleOutcome};
use meshpay_domain::{Amount, PaymentStatus};
use meshpay_relay::{BroadcastOutcome, Delivery, RepriceOutcome};
use meshpay_store::StoreError;
use meshpay_store::transactions::AttemptStatus;
use meshpay_testkit::assets::asset;
use meshpay_testkit::payment::{PaymentSetup, QuotedGas, fresh_address};
use serde_json::json;

use crate::support::{ConfirmStack, MERCHANT_ETH};

const GWEI: u128 = 1_000_000_000;

impl ConfirmStack {
    /// The base fee of the next mined block.
    async fn next_base_fee(&self, wei: u128) {
        self.anvil
            .rpc(
                "anvil_setNextBlockBaseFeePerGas",
                json!([format!("{wei:#x}")]),
            )
            .await;
    }

    /// Mines `blocks` blocks, each at base fee `wei`.
    async fn mine_at(&self, wei: u128, blocks: u64) {
        for _ in 0..blocks {
            self.next_base_fee(wei).await;
            self.mine(1).await;
        }
    }

    /// One delivery of the payment's broadcast message (as the confirm step hands it over).
    async fn broadcast_again(&self, payment: &meshpay_store::Payment) -> BroadcastOutcome {
        self.relay()
            .broadcast(payment.id, Delivery::FIRST)
            .await
            .unwrap()
    }

    /// Confirm checks from `message` on (one block mined between them) until a decision.
    async fn settled_or_cancelled(
        &self,
        pipeline: &meshpay_confirm::Pipeline,
        message: ConfirmMessage,
    ) -> ConfirmOutcome {
        let (outcome, _) = self
            .confirm_until(pipeline, message, 1, |o| {
                matches!(
                    o,
                    ConfirmOutcome::Confirmed { .. } | ConfirmOutcome::Cancelled { .. }
                )
            })
            .await;
        outcome
    }
}

fn replaced(outcome: BroadcastOutcome) -> meshpay_relay::Replacement {
    match outcome {
        BroadcastOutcome::Repriced(RepriceOutcome::Replaced(replacement)) => replacement,
        other => panic!("expected a replacement, got {other:?}"),
    }
}

#[tokio::test]
async fn a_transaction_under_a_rising_base_fee_is_replaced_and_settles_once_at_the_replacements_fee()
 {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline();
    let amount = 10u128.pow(15);
    let recipient = fresh_address();
    let quoted = QuotedGas {
        gas_limit: 21_000,
        max_fee_per_gas: 20 * GWEI,
        max_priority_fee_per_gas: 2 * GWEI,
    };
    let payment = PaymentSetup::new(asset("ETH"), amount)
        .recipient(recipient)
        .gas(quoted)
        .authorize(&stack.store, stack.merchant)
        .await;
    let BroadcastOutcome::Sent(first) = stack.broadcast_again(&payment).await else {
        panic!("first broadcast not sent");
    };
    let original = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    assert!(
        original.max_fee_per_gas_wei < quoted.max_fee_per_gas,
        "signed below the ceiling"
    );

    // The base fee jumps above the signed max fee (below the ceiling) and stays there.
    let base = original.max_fee_per_gas_wei * 3 / 2;
    stack.mine_at(base, 3).await;
    assert!(
        stack.receipt(first.tx_hash).await.is_null(),
        "cannot be included"
    );
    // The confirm step sees it not mined (anvil even drops it from its pool and refuses it
    // again under this base fee) and hands it to the broadcast step for a fee check.
    stack.next_base_fee(base).await;
    let waiting = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    let ConfirmOutcome::Waiting {
        next,
        rebroadcast: true,
        ..
    } = waiting
    else {
        panic!("expected a pending check handed over, got {waiting:?}");
    };
    stack.next_base_fee(base).await;
    let replacement = replaced(stack.broadcast_again(&payment).await);
    assert_eq!(replacement.nonce, original.nonce);
    assert!(!replacement.cancellation && replacement.refused.is_none());
    assert!(replacement.max_fee_per_gas_wei >= base);
    assert!(replacement.max_fee_per_gas_wei * 1000 >= original.max_fee_per_gas_wei * 1125);
    assert!(
        replacement.max_priority_fee_per_gas_wei * 1000
            >= original.max_priority_fee_per_gas_wei * 1125
    );
    assert!(replacement.max_fee_per_gas_wei <= quoted.max_fee_per_gas);
    // A second delivery finds the replacement live and priced above the base fee: no third.
    stack.next_base_fee(base).await;
    assert_eq!(
        stack.broadcast_again(&payment).await,
        BroadcastOutcome::Sent(meshpay_relay::SentTransaction {
            payment_id: payment.id,
            chain: "anvil".into(),
            from: original.from,
            nonce: original.nonce,
            tx_hash: replacement.tx_hash,
            attempt: 2,
            ack: meshpay_relay::Ack::AlreadyKnown,
        })
    );

    stack.mine_at(base, 1).await;
    let ConfirmOutcome::Confirmed { tx_hash, .. } =
        stack.settled_or_cancelled(&pipeline, next).await
    else {
        panic!("not confirmed");
    };
    assert_eq!(tx_hash, replacement.tx_hash);
    assert_eq!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled {
            payment_id: payment.id
        }
    );
    let settled = stack.payment_now(payment.id).await;
    assert_eq!(settled.status, PaymentStatus::Settled);
    assert_eq!(settled.tx_hash, Some(replacement.tx_hash));
    let charged = stack.charged_fee(replacement.tx_hash).await;
    assert_eq!(settled.network_fee_actual, Some(charged));
    // Paid once, exactly the amount; the replaced transaction can never be mined.
    assert_eq!(stack.anvil.eth_balance(recipient).await, U256::from(amount));
    assert!(stack.receipt(first.tx_hash).await.is_null());
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    let statuses: Vec<_> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [AttemptStatus::Replaced, AttemptStatus::Sent]);
    let eth = stack.balance("ETH").await;
    assert_eq!(eth.held, Amount::ZERO);
    assert_eq!(
        eth.available.base_units(),
        U256::from(MERCHANT_ETH)
            - U256::from(amount)
            - charged.base_units()
            - settled.charges.service_fee.base_units()
    );
    stack.finish().await;
}

#[tokio::test]
async fn above_the_ceiling_a_payment_stalls_and_its_cancellation_mines_once_fees_allow() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline();
    let amount = 10u128.pow(15);
    let recipient = fresh_address();
    let quoted = QuotedGas::default();
    let payment = PaymentSetup::new(asset("ETH"), amount)
        .recipient(recipient)
        .gas(quoted)
        .authorize(&stack.store, stack.merchant)
        .await;
    let BroadcastOutcome::Sent(first) = stack.broadcast_again(&payment).await else {
        panic!("first broadcast not sent");
    };
    let wallet: Address = first.from;
    // Above the quoted maximum (2 gwei) and above what a cancellation may pay from the hold
    // (65,000 × 2 gwei / 21,000 ≈ 6.19 gwei).
    let spike = 8 * GWEI;
    stack.mine_at(spike, 2).await;
    stack.next_base_fee(spike).await;
    let outcome = stack.broadcast_again(&payment).await;
    let BroadcastOutcome::Repriced(RepriceOutcome::AboveCeiling {
        stalled_now: true,
        reason,
    }) = outcome
    else {
        panic!("expected a stall, got {outcome:?}");
    };
    let stalled = stack.payment_now(payment.id).await;
    assert_eq!(stalled.status, PaymentStatus::Stalled);
    let shown = stalled.status_reason.unwrap();
    assert!(
        shown.starts_with("fee market above the quoted maximum"),
        "{shown}"
    );
    assert_eq!(shown, reason);
    let webhook_types: Vec<(String,)> = sqlx::query_as(
        "SELECT payload->>'type' FROM outbox WHERE payment_id = $1 AND topic = 'webhook'
          ORDER BY id",
    )
    .bind(payment.id.as_uuid())
    .fetch_all(stack.store.pool())
    .await
    .unwrap();
    assert!(webhook_types.contains(&("payment.stalled".to_owned(),)));
    // Still watched while stalled: nothing mined yet.
    stack.next_base_fee(spike).await;
    let ConfirmOutcome::Waiting { next, .. } = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap()
    else {
        panic!("a stalled payment is not watched");
    };

    // The merchant cancels; the market is still too high for the cancellation's share of the
    // hold, so nothing is signed yet.
    let cancelling = stack
        .store
        .request_cancel(stack.merchant, payment.id)
        .await
        .unwrap();
    assert_eq!(cancelling.status, PaymentStatus::Cancelling);
    assert_eq!(cancelling.status_reason, None);
    stack.next_base_fee(spike).await;
    assert!(matches!(
        stack.broadcast_again(&payment).await,
        BroadcastOutcome::Repriced(RepriceOutcome::AboveCeiling {
            stalled_now: false,
            ..
        })
    ));
    assert_eq!(
        stack
            .store
            .payment_transactions(payment.id)
            .await
            .unwrap()
            .len(),
        1
    );

    // Fees come down within the hold (still above the original's max fee): the cancellation
    // replaces the transfer in the pool and is mined.
    let calmer = 4 * GWEI;
    stack.next_base_fee(calmer).await;
    let cancel = replaced(stack.broadcast_again(&payment).await);
    assert!(cancel.cancellation && cancel.refused.is_none());
    assert_eq!(cancel.nonce, first.nonce);
    assert!(
        U256::from(cancel.max_fee_per_gas_wei) * U256::from(21_000u64)
            <= quoted.network_fee().base_units()
    );
    stack.mine_at(calmer, 1).await;
    let outcome = stack.settled_or_cancelled(&pipeline, next).await;
    assert_eq!(
        outcome,
        ConfirmOutcome::Cancelled {
            payment_id: payment.id,
            tx_hash: cancel.tx_hash
        }
    );
    let cancelled = stack.payment_now(payment.id).await;
    assert_eq!(cancelled.status, PaymentStatus::Cancelled);
    let fee = stack.charged_fee(cancel.tx_hash).await;
    assert_eq!(cancelled.network_fee_actual, Some(fee));
    // The recipient got nothing; the merchant paid only the cancellation's fee.
    assert_eq!(stack.anvil.eth_balance(recipient).await, U256::ZERO);
    assert!(stack.receipt(first.tx_hash).await.is_null());
    let eth = stack.balance("ETH").await;
    assert_eq!(eth.held, Amount::ZERO);
    assert_eq!(
        eth.available.base_units(),
        U256::from(MERCHANT_ETH) - fee.base_units()
    );

    // The wallet moves on: its next payment settles.
    stack.next_base_fee(GWEI / 2).await;
    let next = PaymentSetup::new(asset("ETH"), amount)
        .recipient(fresh_address())
        .hot_wallet(Some(wallet))
        .authorize(&stack.store, stack.merchant)
        .await;
    let BroadcastOutcome::Sent(sent) = stack.broadcast_again(&next).await else {
        panic!("next payment not sent");
    };
    assert_eq!(sent.nonce, first.nonce + 1);
    stack.mine(1).await;
    assert!(matches!(
        stack
            .settled_or_cancelled(&pipeline, ConfirmMessage::new(next.id))
            .await,
        ConfirmOutcome::Confirmed { .. }
    ));
    assert!(matches!(
        pipeline.settle(next.id).await.unwrap(),
        SettleOutcome::Settled { .. }
    ));
    stack.finish().await;
}

#[tokio::test]
async fn a_cancel_that_loses_the_race_to_the_original_ends_settled_and_a_later_cancel_is_refused() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline();
    let amount = 10u128.pow(15);
    let (payment, hash) = stack.broadcast("ETH", amount).await;
    stack
        .store
        .request_cancel(stack.merchant, payment.id)
        .await
        .unwrap();
    // The original is mined before the cancellation goes out.
    stack.mine(1).await;
    let cancel = replaced(stack.broadcast_again(&payment).await);
    assert!(cancel.cancellation);
    assert!(cancel.refused.is_some(), "the nonce is already used");
    let ConfirmOutcome::Confirmed { tx_hash, .. } = stack
        .settled_or_cancelled(&pipeline, ConfirmMessage::new(payment.id))
        .await
    else {
        panic!("not confirmed");
    };
    assert_eq!(tx_hash, hash);
    assert!(matches!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled { .. }
    ));
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Settled);
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        U256::from(amount)
    );
    assert!(stack.receipt(cancel.tx_hash).await.is_null());
    assert!(matches!(
        stack.store.request_cancel(stack.merchant, payment.id).await,
        Err(StoreError::IllegalTransition(_))
    ));
    stack.finish().await;
}

/// The state a node's pool can leave a transaction in for good: in the pool (re-sending its
/// bytes answers "already known"), next in line on its wallet, priced above the base fee, and
/// never mined. anvil gets there when a block mines the previous nonce between the moment it
/// validates the transaction (finding it one ahead of the chain: "requires the previous
/// nonce") and the moment it inserts it (after that block pruned the previous nonce's marker).
/// Reproduced without the race: the wallet's nonce is set one back, the bytes sent (parked
/// behind the missing nonce), and the nonce set forward again (the pool is not told).
async fn park_in_pool_for_good(
    stack: &ConfirmStack,
    attempt: &meshpay_store::transactions::TxAttempt,
) {
    let wallet = attempt.from.to_string();
    stack
        .anvil
        .rpc("anvil_dropTransaction", json!([attempt.tx_hash]))
        .await;
    let nonce = |n: u64| json!([wallet, format!("{n:#x}")]);
    stack
        .anvil
        .rpc("anvil_setNonce", nonce(attempt.nonce - 1))
        .await;
    let raw = format!("0x{}", alloy::hex::encode(&attempt.raw));
    stack
        .anvil
        .rpc("eth_sendRawTransaction", json!([raw]))
        .await;
    stack
        .anvil
        .rpc("anvil_setNonce", nonce(attempt.nonce))
        .await;
    let status = stack.anvil.rpc("txpool_status", json!([])).await;
    assert_eq!(
        status["queued"], "0x1",
        "parked behind a nonce already used"
    );
}

#[tokio::test]
async fn a_transaction_next_in_line_that_the_pool_never_mines_is_replaced_and_settles_once() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline();
    // Each hot wallet starts one nonce up, so the payment's nonce has one before it.
    for wallet in meshpay_testkit::anvil::HOT_WALLETS {
        stack
            .anvil
            .rpc("anvil_setNonce", json!([wallet, "0x1"]))
            .await;
    }
    let replace_after = std::time::Duration::from_secs(1);
    let relay = stack.relay_with(meshpay_relay::RelayConfig {
        replace_after,
        ..meshpay_relay::RelayConfig::default()
    });
    let amount = 10u128.pow(15);
    let recipient = fresh_address();
    let payment = PaymentSetup::new(asset("ETH"), amount)
        .recipient(recipient)
        .gas(QuotedGas {
            gas_limit: 21_000,
            max_fee_per_gas: 20 * GWEI,
            max_priority_fee_per_gas: 2 * GWEI,
        })
        .authorize(&stack.store, stack.merchant)
        .await;
    let BroadcastOutcome::Sent(first) = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap()
    else {
        panic!("first broadcast not sent");
    };
    let original = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    assert_eq!(original.nonce, 1);
    park_in_pool_for_good(&stack, &original).await;

    // Blocks come and go with room to spare and a falling base fee: nothing includes it, and
    // nothing about the fee market says it is outbid.
    stack.mine(3).await;
    assert!(stack.receipt(first.tx_hash).await.is_null());
    let waiting = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    let ConfirmOutcome::Waiting {
        next,
        rebroadcast: true,
        ..
    } = waiting
    else {
        panic!("expected a pending check handed to the broadcast step, got {waiting:?}");
    };
    tokio::time::sleep(replace_after).await;
    let replacement = replaced(relay.broadcast(payment.id, Delivery::FIRST).await.unwrap());
    assert_eq!(replacement.nonce, original.nonce);
    assert_eq!(replacement.replaced, first.tx_hash);
    assert!(!replacement.cancellation && replacement.refused.is_none());
    assert!(replacement.max_fee_per_gas_wei * 1000 >= original.max_fee_per_gas_wei * 1125);
    assert!(replacement.max_fee_per_gas_wei <= payment.max_fee_per_gas);

    stack.mine(1).await;
    let ConfirmOutcome::Confirmed { tx_hash, .. } =
        stack.settled_or_cancelled(&pipeline, next).await
    else {
        panic!("not confirmed");
    };
    assert_eq!(tx_hash, replacement.tx_hash);
    assert_eq!(
        pipeline.settle(payment.id).await.unwrap(),
        SettleOutcome::Settled {
            payment_id: payment.id
        }
    );
    let settled = stack.payment_now(payment.id).await;
    assert_eq!(settled.status, PaymentStatus::Settled);
    assert_eq!(
        settled.network_fee_actual,
        Some(stack.charged_fee(replacement.tx_hash).await)
    );
    // Paid once; the parked bytes can never be mined now that their nonce is used.
    assert_eq!(stack.anvil.eth_balance(recipient).await, U256::from(amount));
    assert!(stack.receipt(first.tx_hash).await.is_null());
    stack.finish().await;
}
