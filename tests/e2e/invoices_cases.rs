//! Invoice outcomes through devhost and `meshpay` on anvil, detected by the `invoices-detect`
//! timer (every second, so each case is also re-run many times: a repeated run changes
//! nothing): under, over and late payments, two partial payments summing to paid, a wrong
//! token (recorded as unrecognized, never credited); and a reorg removing credited payments
//! (invoices back, reversals posted, credits kept; the one the merchant had spent parked for
//! review, then posted by an operator). Each case ends with [`assert_invoice_books`], the
//! `sweep` timer running every second: what is final and recognized is swept, nothing else.
//!
//! A sweep moves only final payments, so a reorg can take back a swept payment only by going
//! deeper than finality: out of scope (the books re-check a confirmed sweep's block and report
//! one mined again with other amounts; one still in flight is re-sent on the new branch and
//! posts only what its receipt moved). The reorg case removes
//! payments that were final (deeper than finality, to exercise reversals), so its sweep is held
//! off until the reorg is over: then the timer finds the removed payments not due and sweeps
//! nothing.

use std::time::Duration;

use meshpay_testkit::stack::{HandlerSettings, Stack};
use serde_json::{Value, json};

use crate::invoices_support::{
    Receiver, Treasury, USDC, assert_invoice_books, block_every_second, create_invoice, pay_token,
    pay_usdc, wait_for_status, with_sweeps, with_webhooks,
};
use crate::support::{admin_command, json_answer};

fn settings() -> HandlerSettings {
    with_sweeps(with_webhooks(HandlerSettings::default()))
        .env("INVOICES_DETECT_SCHEDULE", "*/1 * * * * *")
        .disabled(&["broadcast", "confirm", "settle", "reconcile"])
}

fn admin_ok(stack: &Stack, args: &[&str]) -> Value {
    json_answer(
        admin_command(stack, args)
            .env("AzureWebJobsStorage", stack.azurite.connection_string())
            .env_remove("MESHPAY_CHAINS_CONFIG"),
    )
}

#[tokio::test]
async fn under_over_late_partial_and_wrong_token_payments_end_where_they_should_credited_once() {
    let stack = Stack::builder().devhost(settings()).start().await;
    let merchant = stack.merchant().await;
    let key = &merchant.key;
    let receiver = Receiver::start(&stack, key).await;
    let treasury = Treasury::measure(&stack).await;
    let miner = block_every_second(&stack);
    let under = create_invoice(&stack, key, "25.00").await;
    let over = create_invoice(&stack, key, "25.00").await;
    let partial = create_invoice(&stack, key, "25.00").await;
    let wrong = create_invoice(&stack, key, "25.00").await;
    let late = create_invoice(&stack, key, "25.00").await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let to = |v: &Value| v["deposit_address"].as_str().unwrap().to_owned();

    // The late one expires before anything arrives (the API's shortest expiry is a minute).
    sqlx::query(
        "UPDATE invoices SET expires_at = now() - interval '1 second' WHERE deposit_address = $1",
    )
    .bind(to(&late))
    .execute(stack.store.pool())
    .await
    .unwrap();
    wait_for_status(&stack, key, &id(&late), "expired").await;

    let other_token = stack.anvil().deploy_dev_usdc().await;
    pay_usdc(&stack, &to(&under), 10 * USDC).await;
    pay_usdc(&stack, &to(&over), 30 * USDC).await;
    pay_usdc(&stack, &to(&partial), 10 * USDC).await;
    pay_token(&stack, &other_token, &to(&wrong), 25 * USDC).await;
    pay_usdc(&stack, &to(&late), 25 * USDC).await;

    wait_for_status(&stack, key, &id(&under), "underpaid").await;
    wait_for_status(&stack, key, &id(&over), "overpaid").await;
    wait_for_status(&stack, key, &id(&partial), "underpaid").await;
    pay_usdc(&stack, &to(&partial), 15 * USDC).await;
    let paid = wait_for_status(&stack, key, &id(&partial), "paid").await;
    assert_eq!(paid["payments"].as_array().unwrap().len(), 2);
    let paid_late = wait_for_status(&stack, key, &id(&late), "paid_late").await;
    assert_eq!(paid_late["payments"][0]["late"], true);

    // The wrong token: recorded and shown as unrecognized, the invoice still open, never credited.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let wrong_view = loop {
        let view = stack
            .api()
            .get(&format!("invoices/{}", id(&wrong)), key)
            .await
            .body;
        if view["payments"].as_array().is_some_and(|p| !p.is_empty()) {
            break view;
        }
        assert!(std::time::Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(wrong_view["status"], "open");
    assert_eq!(wrong_view["payments"][0]["asset"], Value::Null);
    assert_eq!(
        wrong_view["payments"][0]["token"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        other_token.to_lowercase()
    );

    // Several more detection runs go by: nothing moves twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    miner.abort();
    assert_invoice_books(&stack, &receiver, &treasury, &id(&under), 10 * USDC).await;
    assert_invoice_books(&stack, &receiver, &treasury, &id(&over), 30 * USDC).await;
    assert_invoice_books(&stack, &receiver, &treasury, &id(&partial), 25 * USDC).await;
    assert_invoice_books(&stack, &receiver, &treasury, &id(&wrong), 0).await;
    assert_invoice_books(&stack, &receiver, &treasury, &id(&late), 25 * USDC).await;
    let fee = |gross: u128| gross * u128::from(meshpay_testkit::merchant::FEE_BPS) / 10_000;
    let credited: u128 = [10, 30, 25, 25]
        .iter()
        .map(|u| u * USDC - fee(u * USDC))
        .sum();
    let usdc = stack.api().balances(key).await;
    let usdc = usdc.iter().find(|(a, _, _)| a == "USDC").unwrap();
    assert_eq!(
        usdc.1, credited,
        "the merchant credited once per final transfer, less the fee"
    );
}

#[tokio::test]
async fn a_reorg_removing_credited_payments_reverses_them_and_parks_the_one_the_merchant_spent() {
    let mut stack = Stack::builder()
        .devhost(settings().disabled(&["sweep"]))
        .start()
        .await;
    let merchant = stack.merchant().await;
    let key = &merchant.key;
    let receiver = Receiver::start(&stack, key).await;
    let treasury = Treasury::measure(&stack).await;
    let big = create_invoice(&stack, key, "25.00").await;
    let small = create_invoice(&stack, key, "10.00").await;
    let (big_id, small_id) = (
        big["id"].as_str().unwrap().to_owned(),
        small["id"].as_str().unwrap().to_owned(),
    );
    let snapshot = stack.anvil().rpc("evm_snapshot", json!([])).await;
    pay_usdc(&stack, big["deposit_address"].as_str().unwrap(), 25 * USDC).await;
    pay_usdc(
        &stack,
        small["deposit_address"].as_str().unwrap(),
        10 * USDC,
    )
    .await;
    stack.anvil().mine(2).await;
    wait_for_status(&stack, key, &big_id, "paid").await;
    wait_for_status(&stack, key, &small_id, "paid").await;

    // The merchant spends 20 of the 35 credited (less the fee): a payout holds it (broadcast is off).
    stack.fund(merchant.id, "anvil:ETH", "1").await;
    stack
        .api()
        .pay(
            key,
            "USDC",
            "20.00",
            &meshpay_testkit::payment::fresh_recipient(),
        )
        .await;

    // Both payments leave the chain; a longer branch replaces their blocks.
    stack.anvil().rpc("evm_revert", json!([snapshot])).await;
    stack.anvil().mine(6).await;
    let big_back = wait_for_status(&stack, key, &big_id, "open").await;
    let small_back = wait_for_status(&stack, key, &small_id, "open").await;
    assert_eq!(big_back["payments"][0]["status"], "removed");
    assert_eq!(small_back["payments"][0]["status"], "removed");
    // The sweep comes back after the reorg: nothing is due.
    stack.restart_devhost(settings()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.count("SELECT count(*) FROM sweeps").await, 0);

    // The small one is reversed (credit kept, reversal posted); the big one the merchant can
    // no longer cover is parked with its reason, not retried by the runs that went by.
    assert_invoice_books(&stack, &receiver, &treasury, &small_id, 0).await;
    assert_invoice_books(&stack, &receiver, &treasury, &big_id, 25 * USDC).await;
    let kinds = stack
        .count("SELECT count(*) FROM ledger_transactions WHERE kind IN ('invoice_credit', 'invoice_reversal')")
        .await;
    assert_eq!(kinds, 3, "two credits kept, one reversal");
    let reviews = admin_ok(&stack, &["invoices", "reviews"]);
    assert_eq!(reviews["count"], 1, "{reviews}");
    let review = &reviews["reviews"][0];
    assert_eq!(review["invoice_id"], big_id.as_str());
    let net = 25 * USDC - 25 * USDC * u128::from(meshpay_testkit::merchant::FEE_BPS) / 10_000;
    assert_eq!(review["required"], net.to_string());
    assert!(
        review["reason"]
            .as_str()
            .unwrap()
            .contains("no longer covers")
    );

    // The way out: the merchant's balance is made good, the operator posts the reversal.
    stack.fund(merchant.id, "anvil:USDC", "25").await;
    let review_id = review["id"].as_i64().unwrap().to_string();
    admin_ok(&stack, &["invoices", "retry-reversal", "--id", &review_id]);
    assert_eq!(admin_ok(&stack, &["invoices", "reviews"])["count"], 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_invoice_books(&stack, &receiver, &treasury, &big_id, 0).await;
}
