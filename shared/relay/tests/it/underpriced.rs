//! A node that refuses a transaction for its price ("transaction underpriced": its minimum tip,
//! or a full pool) gets a same-nonce replacement through the bump path at once, within the
//! quoted ceiling; above it the payment shows `stalled` with its reason. Never parked with a
//! live nonce.

use meshpay_domain::PaymentStatus;
use meshpay_relay::{BroadcastOutcome, Delivery, RelayConfig, RepriceOutcome};
use meshpay_store::transactions::AttemptStatus;
use meshpay_testkit::payment::{QuotedGas, fresh_address};

use crate::faulty::{FaultyRpc, rpc_error};
use crate::support::RelayStack;

const GWEI: u128 = 1_000_000_000;

#[tokio::test]
async fn an_underpriced_refusal_is_replaced_on_the_same_nonce_with_both_fees_bumped() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let rpc = FaultyRpc::new(stack.rpc());
    let relay = stack.relay_with(rpc.clone(), RelayConfig::default());
    let quoted = QuotedGas {
        gas_limit: 21_000,
        max_fee_per_gas: 50 * GWEI,
        max_priority_fee_per_gas: 10 * GWEI,
    };
    let payment = stack
        .payment_quoted("ETH", 7, fresh_address(), None, quoted)
        .await;
    rpc.fail_next_send(rpc_error("transaction underpriced"));

    let outcome = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap();
    let BroadcastOutcome::Sent(sent) = outcome else {
        panic!("expected the replacement sent, got {outcome:?}");
    };
    assert_eq!(sent.attempt, 2);
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    let [refused, replacement] = &attempts[..] else {
        panic!("expected two attempts, got {attempts:?}");
    };
    assert_eq!(refused.nonce, replacement.nonce);
    assert_eq!(
        (refused.status, replacement.status),
        (AttemptStatus::Replaced, AttemptStatus::Sent)
    );
    assert!(!refused.may_be_public(), "the refused bytes never left");
    assert!(replacement.max_fee_per_gas_wei * 1000 >= refused.max_fee_per_gas_wei * 1125);
    assert!(
        replacement.max_priority_fee_per_gas_wei * 1000
            >= refused.max_priority_fee_per_gas_wei * 1125
    );
    assert!(replacement.max_fee_per_gas_wei <= quoted.max_fee_per_gas);
    assert_eq!(rpc.sends_forwarded(), 1);
    let receipt = stack.receipt(sent.tx_hash).await;
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(
        stack
            .count("SELECT count(*) FROM payment_confirmations WHERE last_outcome = 'needs_review'")
            .await,
        0
    );
    stack.finish().await;
}

#[tokio::test]
async fn an_underpriced_refusal_without_room_under_the_ceiling_stalls_the_payment_with_its_reason()
{
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let rpc = FaultyRpc::new(stack.rpc());
    let relay = stack.relay_with(rpc.clone(), RelayConfig::default());
    // The ceiling is what broadcast signs at (the fresh estimate is above it): no room to bump.
    let quoted = QuotedGas {
        gas_limit: 21_000,
        max_fee_per_gas: 1_000,
        max_priority_fee_per_gas: 1_000,
    };
    let payment = stack
        .payment_quoted("ETH", 7, fresh_address(), None, quoted)
        .await;
    rpc.fail_next_send(rpc_error("transaction underpriced"));

    let outcome = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap();
    assert!(
        matches!(
            outcome,
            BroadcastOutcome::Repriced(RepriceOutcome::AboveCeiling {
                stalled_now: true,
                ..
            })
        ),
        "{outcome:?}"
    );
    let stalled = stack.stored(payment.id).await;
    assert_eq!(stalled.status, PaymentStatus::Stalled);
    assert!(
        stalled
            .status_reason
            .unwrap()
            .starts_with("fee market above the quoted maximum")
    );
    assert_eq!(
        stack
            .count("SELECT count(*) FROM payment_confirmations WHERE last_outcome = 'needs_review'")
            .await,
        0
    );
    stack.finish().await;
}
