//! Review: a flag stops the confirm chain and stays until an operator clears it; a mined
//! transaction of the payment other than its live one parks it.

use meshpay_confirm::{CheckOutcome, ConfirmMessage, ConfirmOutcome};
use meshpay_domain::PaymentStatus;
use meshpay_relay::transfer::{self, TransferCall, TxParams};
use meshpay_store::transactions::{self, AttemptStatus, NewTxAttempt, TxAttempt};
use meshpay_testkit::anvil::HOT_WALLET_ACCOUNTS;

use crate::support::{ConfirmStack, parked_reason};

#[tokio::test]
async fn a_review_flag_stops_the_polling_chain_and_survives_later_confirm_messages() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline();
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let next = match pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap()
    {
        ConfirmOutcome::Waiting { next, .. } => next,
        other => panic!("expected Waiting, got {other:?}"),
    };
    // The broadcast step (or settle) parks the payment while its chain is polling.
    stack
        .store
        .flag_for_review(payment.id, "an operator must look")
        .await
        .unwrap();
    stack.mine(3).await;
    // Neither the chain's next message nor a fresh hint moves the payment or clears the flag.
    for message in [next, ConfirmMessage::new(payment.id)] {
        let outcome = pipeline.confirm(message).await.unwrap();
        assert!(
            matches!(outcome, ConfirmOutcome::Ignored { .. }),
            "{outcome:?}"
        );
        let state = stack.store.confirmation(payment.id).await.unwrap().unwrap();
        assert_eq!(state.last_outcome, Some(CheckOutcome::NeedsReview));
        assert_eq!(state.last_detail.as_deref(), Some("an operator must look"));
        assert_eq!(state.poller, None);
        assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);
    }
    // The operator clears the flag: the next message confirms it.
    assert!(
        stack
            .store
            .clear_review(payment.id)
            .await
            .unwrap()
            .is_some()
    );
    let outcome = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
    stack.finish().await;
}

/// What a re-sign on a guess left behind: the payment's first transaction (mined) superseded
/// by a second one on the next nonce, which was never sent.
async fn resigned_over_a_mined_attempt(
    stack: &ConfirmStack,
    payment: &meshpay_store::Payment,
) -> TxAttempt {
    let first = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    let key: alloy::signers::local::PrivateKeySigner = stack
        .anvil
        .private_key(HOT_WALLET_ACCOUNTS[0])
        .parse()
        .unwrap();
    let key = if key.address() == first.from {
        key
    } else {
        stack
            .anvil
            .private_key(HOT_WALLET_ACCOUNTS[1])
            .parse()
            .unwrap()
    };
    let call = TransferCall {
        to: first.to,
        value_wei: first.value_wei,
        input: Default::default(),
    };
    let params = TxParams {
        chain_id: first.chain_id,
        nonce: first.nonce + 1,
        gas_limit: first.gas_limit,
        max_fee_per_gas_wei: first.max_fee_per_gas_wei,
        max_priority_fee_per_gas_wei: first.max_priority_fee_per_gas_wei,
    };
    let signed = transfer::sign(&key, first.from, &call, params)
        .await
        .unwrap();
    let mut db = stack.store.begin().await.unwrap();
    transactions::set_attempt_status(&mut db, first.id, AttemptStatus::Superseded, None)
        .await
        .unwrap();
    let second = transactions::insert_attempt(
        &mut db,
        &NewTxAttempt {
            payment_id: payment.id,
            chain: first.chain.clone(),
            chain_id: first.chain_id,
            from: first.from,
            nonce: params.nonce,
            to: call.to,
            value_wei: call.value_wei,
            gas_limit: params.gas_limit,
            max_fee_per_gas_wei: params.max_fee_per_gas_wei,
            max_priority_fee_per_gas_wei: params.max_priority_fee_per_gas_wei,
            tx_hash: signed.hash,
            raw: signed.raw,
        },
    )
    .await
    .unwrap();
    transactions::point_payment_at(&mut db, &second)
        .await
        .unwrap();
    db.commit().await.unwrap();
    second
}

#[tokio::test]
async fn a_mined_earlier_attempt_is_seen_and_the_live_one_is_never_sent() {
    let stack = ConfirmStack::start(1).await;
    let amount = 4_000u128;
    let (payment, _) = stack.broadcast("ETH", amount).await;
    stack.mine(2).await;
    let second = resigned_over_a_mined_attempt(&stack, &payment).await;

    let outcome = stack
        .pipeline()
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    let reason = parked_reason(outcome, CheckOutcome::NeedsReview);
    assert!(reason.contains("earlier transaction"), "{reason}");
    assert!(
        stack
            .anvil
            .rpc(
                "eth_getTransactionByHash",
                serde_json::json!([second.tx_hash])
            )
            .await
            .is_null(),
        "the second transfer never reached the node"
    );
    stack.mine(2).await;
    assert_eq!(
        stack.anvil.eth_balance(payment.recipient).await,
        alloy::primitives::U256::from(amount)
    );
    assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);
    stack.finish().await;
}
