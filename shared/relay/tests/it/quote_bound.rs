//! The signed transaction never costs more than the merchant's hold (quoted `gas_limit ×
//! max_fee_per_gas`): fees are clamped to the quote, the quoted gas limit is signed, and a
//! transfer that needs more gas than quoted is never signed.

use alloy::primitives::U256;
use meshpay_domain::{AssetId, PaymentStatus};
use meshpay_relay::{BroadcastOutcome, Delivery, RelayError, RepriceOutcome};
use meshpay_testkit::assets::{eth, usdc};
use meshpay_testkit::hex::hex_u128;
use meshpay_testkit::payment::{QuotedGas, fresh_address};
use serde_json::json;

use crate::support::{LAST, RelayStack, failure_reason};

const GWEI: u128 = 1_000_000_000;

/// (available, held) of the merchant in `asset`.
async fn merchant_balance(stack: &RelayStack, asset: &AssetId) -> (U256, U256) {
    let balances = stack.store.balances(stack.merchant).await.unwrap();
    let b = balances.iter().find(|b| &b.asset == asset).unwrap();
    (b.available.base_units(), b.held.base_units())
}

/// Makes the next block's base fee `wei` and mines it.
async fn raise_base_fee(stack: &RelayStack, wei: u128) {
    stack
        .rpc_call(
            "anvil_setNextBlockBaseFeePerGas",
            json!([format!("{wei:#x}")]),
        )
        .await;
    stack.rpc_call("evm_mine", json!([])).await;
}

#[tokio::test]
async fn fees_risen_since_the_quote_are_signed_at_the_quoted_max_fee_and_gas_limit() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let quoted = QuotedGas {
        gas_limit: 100_000,
        max_fee_per_gas: 2 * GWEI,
        max_priority_fee_per_gas: GWEI,
    };
    let payment = stack
        .payment_quoted("USDC", 5_000_000, fresh_address(), None, quoted)
        .await;
    // Fresh estimate (2 × base fee + tip) is now well above the quoted 2 gwei, while the base
    // fee itself stays below it, so the clamped transaction is still mined.
    raise_base_fee(&stack, 1_800_000_000).await;
    let latest = stack
        .rpc_call("eth_getBlockByNumber", json!(["latest", false]))
        .await;
    assert!(2 * hex_u128(&latest["baseFeePerGas"]) > quoted.max_fee_per_gas);
    let relay = stack.relay();

    let outcome = relay.broadcast(payment.id, Delivery::FIRST).await.unwrap();
    let BroadcastOutcome::Sent(sent) = outcome else {
        panic!("expected Sent, got {outcome:?}")
    };
    let attempts = stack.store.payment_transactions(payment.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    let attempt = &attempts[0];
    assert_eq!(attempt.gas_limit, quoted.gas_limit);
    assert_eq!(attempt.max_fee_per_gas_wei, quoted.max_fee_per_gas);
    assert!(attempt.max_priority_fee_per_gas_wei <= quoted.max_priority_fee_per_gas);

    let tx = stack
        .rpc_call("eth_getTransactionByHash", json!([sent.tx_hash]))
        .await;
    assert_eq!(hex_u128(&tx["gas"]), u128::from(quoted.gas_limit));
    assert_eq!(hex_u128(&tx["maxFeePerGas"]), quoted.max_fee_per_gas);
    assert!(hex_u128(&tx["maxPriorityFeePerGas"]) <= quoted.max_priority_fee_per_gas);
    let worst = U256::from(hex_u128(&tx["gas"]) * hex_u128(&tx["maxFeePerGas"]));
    assert!(worst <= payment.charges.network_fee.base_units());

    let receipt = stack.receipt(sent.tx_hash).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(stack.anvil.usdc_balance(payment.recipient).await, 5_000_000);
    stack.finish().await;
}

#[tokio::test]
async fn quoted_max_fee_below_the_base_fee_stalls_the_payment_and_its_bytes_are_resent_when_blocks_are_cheaper()
 {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let quoted = QuotedGas {
        gas_limit: 21_000,
        max_fee_per_gas: 2 * GWEI,
        max_priority_fee_per_gas: GWEI,
    };
    let payment = stack
        .payment_quoted("ETH", 1_000, fresh_address(), None, quoted)
        .await;
    raise_base_fee(&stack, 10 * GWEI).await;
    let relay = stack.relay();

    // Signed within the quote; anvil (unlike geth, which pools it) refuses a max fee below
    // the base fee outright. No replacement fits under the quoted maximum: the payment shows
    // `stalled` with its reason and keeps its stored transaction and nonce.
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
    let attempt = stack.store.live_attempt(payment.id).await.unwrap().unwrap();
    assert_eq!(attempt.gas_limit, 21_000);
    assert_eq!(attempt.max_fee_per_gas_wei, quoted.max_fee_per_gas);
    let stored = stack.stored(payment.id).await;
    assert_eq!(stored.status, PaymentStatus::Stalled);
    assert!(
        stored
            .status_reason
            .unwrap()
            .starts_with("fee market above the quoted maximum")
    );

    // Cheaper blocks: the next delivery resumes it and sends the same bytes, never dearer ones.
    raise_base_fee(&stack, GWEI).await;
    let outcome = relay
        .broadcast(payment.id, Delivery::new(Some(2)))
        .await
        .unwrap();
    let BroadcastOutcome::Sent(sent) = outcome else {
        panic!("expected Sent, got {outcome:?}")
    };
    assert_eq!(sent.tx_hash, attempt.tx_hash);
    let tx = stack
        .rpc_call("eth_getTransactionByHash", json!([sent.tx_hash]))
        .await;
    assert_eq!(hex_u128(&tx["maxFeePerGas"]), quoted.max_fee_per_gas);
    assert_eq!(stack.receipt(sent.tx_hash).await["status"], json!("0x1"));
    let resumed = stack.stored(payment.id).await;
    assert_eq!(
        (resumed.status, resumed.status_reason),
        (PaymentStatus::Broadcast, None)
    );
    stack.finish().await;
}

#[tokio::test]
async fn transfer_needing_more_gas_than_quoted_is_never_signed_and_fails_on_the_last_delivery() {
    let stack = RelayStack::start_with_wallets(&[1]).await;
    let (eth_before, _) = merchant_balance(&stack, &eth()).await;
    let (usdc_before, _) = merchant_balance(&stack, &usdc()).await;
    // An ERC-20 transfer to a fresh holder needs far more than 30,000 gas.
    let quoted = QuotedGas {
        gas_limit: 30_000,
        ..QuotedGas::default()
    };
    let payment = stack
        .payment_quoted("USDC", 7_000_000, fresh_address(), None, quoted)
        .await;
    assert!(merchant_balance(&stack, &eth()).await.1 > U256::ZERO);
    let relay = stack.relay();

    let error = relay
        .broadcast(payment.id, Delivery::FIRST)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RelayError::GasAboveQuote { needed, quoted: 30_000 } if needed > 30_000),
        "{error}"
    );
    let reason = failure_reason(relay.broadcast(payment.id, LAST).await.unwrap());
    assert!(reason.contains("above the quoted 30000"), "{reason}");

    stack.assert_nothing_signed().await;
    let stored = stack.stored(payment.id).await;
    assert_eq!(stored.status, PaymentStatus::Failed);
    assert_eq!(
        merchant_balance(&stack, &eth()).await,
        (eth_before, U256::ZERO),
        "network fee hold released"
    );
    assert_eq!(
        merchant_balance(&stack, &usdc()).await,
        (usdc_before, U256::ZERO),
        "amount and service fee hold released"
    );
    stack.finish().await;
}
