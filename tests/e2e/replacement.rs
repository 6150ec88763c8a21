//! Cancellation after broadcast through devhost + `meshpay` (anvil mining on demand, the dev
//! signers): `POST /api/payments/{id}/cancel` answers 202 `cancelling`, the broadcast step
//! replaces the pending transfer with a 0-value self-transfer on its nonce, and the payment is
//! `cancelled` once that is mined: the recipient gets nothing and the merchant pays only the
//! cancellation's fee. Once a payment is settled, cancel answers 409.

use std::time::{Duration, Instant};

use meshpay_domain::{Amount, PaymentId, PaymentStatus};
use meshpay_testkit::api::Method;
use meshpay_testkit::hex::hex_u128;
use meshpay_testkit::payment::fresh_recipient as recipient;
use meshpay_testkit::stack::HandlerSettings;
use serde_json::json;

use crate::support::{
    LOG_LINES, MERCHANT_ETH, PipelineStack, RECONCILE_IDLE, WAIT, funded_merchant, on_demand_chain,
};

struct Replacement;
type Ctx = PipelineStack<Replacement>;

impl PipelineStack<Replacement> {
    async fn start() -> Ctx {
        let settings = HandlerSettings::default()
            .dev_signers()
            .env("MESHPAY_CONFIRM_POLL_INTERVAL_MS", "100")
            .env("MESHPAY_CONFIRM_INVOCATION_WAIT_MS", "1000")
            .env("RECONCILE_SCHEDULE", RECONCILE_IDLE);
        Ctx::start_with(on_demand_chain().devhost(settings), funded_merchant()).await
    }

    async fn cancel(&self, id: PaymentId) -> meshpay_testkit::api::Reply {
        self.api()
            .send(
                Method::POST,
                &format!("/payments/{id}/cancel"),
                Some(&self.merchant.key),
                None,
                None,
            )
            .await
    }
}

#[tokio::test]
async fn cancel_after_broadcast_mines_a_self_transfer_on_the_nonce_and_a_settled_payment_is_409() {
    let ctx = Ctx::start().await;
    let to = recipient();
    let (id, _) = ctx.pay("ETH", "0.001", &to).await;
    ctx.wait_until(id, false, |p| p.status == PaymentStatus::Broadcast)
        .await;

    let reply = ctx.cancel(id).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "cancelling");
    // The broadcast step sends the cancellation on the payment's nonce before a block is mined.
    let store = ctx.store.clone();
    let deadline = Instant::now() + WAIT;
    loop {
        let attempts = store.payment_transactions(id).await.unwrap();
        if attempts.len() == 2 && attempts[1].first_sent_at.is_some() {
            assert_eq!(attempts[0].nonce, attempts[1].nonce);
            assert_eq!(attempts[1].to, attempts[1].from);
            break;
        }
        assert!(Instant::now() < deadline, "{}", ctx.log_tail(LOG_LINES));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A retried cancel answers the same.
    assert_eq!(ctx.cancel(id).await.status, 202);

    ctx.wait_until(id, true, |p| p.status == PaymentStatus::Cancelled)
        .await;
    let cancelled = ctx.payment(id).await;
    let receipt = ctx
        .anvil()
        .rpc(
            "eth_getTransactionReceipt",
            json!([cancelled.tx_hash.unwrap()]),
        )
        .await;
    let fee = hex_u128(&receipt["gasUsed"]) * hex_u128(&receipt["effectiveGasPrice"]);
    assert_eq!(cancelled.network_fee_actual, Some(Amount::from_u128(fee)));
    assert!(ctx.anvil().eth_balance(&to).await.is_zero());
    let view = ctx.payment_view(id).await;
    assert_eq!(view["status"], "cancelled");
    assert_eq!(view["attempts"][0]["status"], "replaced");
    let balances = ctx.store.balances(ctx.merchant.id).await.unwrap();
    let eth = balances.iter().find(|b| b.asset.symbol() == "ETH").unwrap();
    assert_eq!(eth.held, Amount::ZERO);
    assert_eq!(
        eth.available,
        Amount::from_u128(MERCHANT_ETH - fee),
        "the hold was released minus the cancellation's fee"
    );
    let reply = ctx.cancel(id).await;
    assert_eq!(
        (reply.status, reply.body["status"].clone()),
        (200, json!("cancelled"))
    );

    // The wallet's next payment settles, and a settled payment cannot be cancelled.
    let (next, _) = ctx.pay("ETH", "0.001", &recipient()).await;
    ctx.wait_until(next, true, |p| p.status == PaymentStatus::Settled)
        .await;
    let reply = ctx.cancel(next).await;
    assert_eq!(
        (reply.status, reply.code()),
        (409, "invalid_state"),
        "{:?}",
        reply.body
    );
    ctx.assert_ledger_invariants().await;
}
