//! Pay-ins driven by chain webhooks through devhost on anvil, with the `invoices-detect` timer
//! set to once an hour: an Alchemy address-activity hint naming a deposit address brings the
//! invoice to `pending` and, after finality, `paid` (the chain is re-read: the hint's amounts
//! are made up); floods and replays of hints are coalesced; an unknown address gets the same
//! answer as a known one. A queued detection run killed (SIGKILL-like abort) at each step ends
//! paid and credited exactly once after the redelivery.

use std::time::{Duration, Instant};

use meshpay_confirm::webhook::{WebhookKey, sign_alchemy};
use meshpay_testkit::stack::{HandlerSettings, Stack};
use serde_json::{Value, json};

use crate::invoices_support::{
    PAYER, Receiver, Treasury, USDC, assert_invoice_books, create_invoice, pay_usdc,
    wait_for_status, with_sweeps, with_webhooks,
};
const WEBHOOK_KEY: &str = "whsec_bWVzaHBheS1lMmUtaW52b2ljZS1oaW50cy1rZXk=";

fn settings() -> HandlerSettings {
    with_sweeps(with_webhooks(HandlerSettings::default()))
        .env("INVOICES_DETECT_SCHEDULE", "0 0 * * * *")
        .env("MESHPAY_CHAIN_WEBHOOK_KEY", WEBHOOK_KEY)
        .fast_retries()
        .disabled(&["broadcast", "confirm", "settle", "reconcile"])
}

/// A signed Alchemy Address Activity event naming `to`, with a made-up amount and hash.
async fn hint(stack: &Stack, to: &str) -> (u16, Value) {
    post_signed(stack, &hint_body(stack, to)).await
}

fn hint_body(stack: &Stack, to: &str) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({
        "webhookId": "wh_e2e", "id": format!("whevt_{}", uuid::Uuid::new_v4().simple()),
        "createdAt": now, "type": "ADDRESS_ACTIVITY",
        "event": {"network": "ETH_MAINNET", "activity": [{
            "hash": format!("0x{:064x}", 7), "value": 1_000_000_000, "asset": "USDC",
            "category": "token", "fromAddress": stack.anvil().address(PAYER), "toAddress": to,
        }]}
    })
    .to_string()
}

async fn post_signed(stack: &Stack, body: &str) -> (u16, Value) {
    let signature = sign_alchemy(&WebhookKey::new(WEBHOOK_KEY.into()), body.as_bytes()).unwrap();
    let reply = stack
        .api()
        .post_unauthenticated(
            "webhooks/chain",
            body,
            &[("X-Alchemy-Signature", signature)],
        )
        .await;
    (reply.status, reply.body)
}

#[tokio::test]
async fn address_activity_hints_bring_an_invoice_to_paid_without_polling_and_floods_coalesce() {
    let stack = Stack::builder().devhost(settings()).start().await;
    let merchant = stack.merchant().await;
    let key = &merchant.key;
    let receiver = Receiver::start(&stack, key).await;
    let treasury = Treasury::measure(&stack).await;
    let invoice = create_invoice(&stack, key, "25.00").await;
    let id = invoice["id"].as_str().unwrap();
    let address = invoice["deposit_address"].as_str().unwrap();

    // An address no invoice uses: the same answer as for a watched one, and nothing queued.
    let (status, unknown) = hint(&stack, "0x000000000000000000000000000000000000bEEF").await;
    assert_eq!(status, 200);

    pay_usdc(&stack, address, 25 * USDC).await;
    let mined = Instant::now();
    let (status, known) = hint(&stack, address).await;
    assert_eq!(status, 200);
    assert_eq!(
        known, unknown,
        "whether an address is watched does not show"
    );
    wait_for_status(&stack, key, id, "pending").await;
    let to_pending = mined.elapsed();

    // Finality (1 block) and a flood of hints: a few runs, not one per hint.
    stack.anvil().mine(2).await;
    let flood = Instant::now();
    for _ in 0..20 {
        assert_eq!(hint(&stack, address).await.0, 200);
    }
    wait_for_status(&stack, key, id, "paid").await;
    println!(
        "pay-in with hints, timer hourly: transfer mined -> pending in {to_pending:?}; \
         20 hints after finality -> paid in {:?}",
        flood.elapsed()
    );
    stack
        .drained("payins-detect", Duration::from_secs(30))
        .await;
    let runs = stack
        .devhost()
        .log_tail(100_000)
        .matches("pay-in detection (hinted)")
        .count();
    println!("21 hints on a watched address: {runs} detection runs");
    // One run per pending request, plus one for hints that arrived while it went.
    assert!(
        (1..=10).contains(&runs),
        "21 hints ran detection {runs} times"
    );

    // A duplicate of an old request is covered by a completed run: acknowledged, no run.
    let message = json!({"v": 1, "chain": "anvil", "requested_at": "2026-01-01T00:00:00Z"});
    stack
        .azurite
        .send("payins-detect", &message.to_string())
        .await;
    stack
        .drained("payins-detect", Duration::from_secs(30))
        .await;
    let after = stack
        .devhost()
        .log_tail(100_000)
        .matches("pay-in detection (hinted)")
        .count();
    assert_eq!(after, runs, "a covered request runs nothing");

    // The same event delivered twice by the provider: the replay has no effect.
    let body = hint_body(&stack, address);
    assert_eq!(post_signed(&stack, &body).await.1["status"], "accepted");
    assert_eq!(post_signed(&stack, &body).await.1["status"], "duplicate");
    stack
        .drained("payins-detect", Duration::from_secs(30))
        .await;
    let last = stack
        .devhost()
        .log_tail(100_000)
        .matches("pay-in detection (hinted)")
        .count();
    assert!(last <= runs + 1, "{last} runs after one new event");
    assert_invoice_books(&stack, &receiver, &treasury, id, 25 * USDC).await;
    let poisoned = stack
        .azurite
        .queue("payins-detect-poison")
        .await
        .approximate_count()
        .await
        .unwrap_or(0);
    assert_eq!(poisoned, 0);
}

#[tokio::test]
async fn a_hinted_detection_killed_at_each_step_ends_paid_and_credited_once() {
    let mut stack = Stack::builder().devhost(settings()).start().await;
    let merchant = stack.merchant().await;
    let receiver = Receiver::start(&stack, &merchant.key).await;
    let treasury = Treasury::measure(&stack).await;
    for fault in [
        "after_record_before_cursor",
        "after_final_before_credit",
        "after_credit_before_complete",
    ] {
        stack
            .restart_devhost(settings().env("MESHPAY_PAYIN_FAULT", fault))
            .await;
        let invoice = create_invoice(&stack, &merchant.key, "10.00").await;
        let id = invoice["id"].as_str().unwrap();
        let address = invoice["deposit_address"].as_str().unwrap();
        pay_usdc(&stack, address, 10 * USDC).await;
        // Final before the run, so one delivery records, finalizes and credits.
        stack.anvil().mine(2).await;
        assert_eq!(hint(&stack, address).await.0, 200);
        wait_for_status(&stack, &merchant.key, id, "paid").await;
        assert!(
            stack
                .devhost()
                .log_tail(100_000)
                .contains(&format!("injected fault: aborting at {fault}")),
            "{fault} fired: {}",
            stack.log_tail(40)
        );
        stack
            .drained("payins-detect", Duration::from_secs(30))
            .await;
        assert_invoice_books(&stack, &receiver, &treasury, id, 10 * USDC).await;
    }
}
