//! Pay-ins through devhost and `meshpay` on anvil (a block a second, finality 1 block): an
//! invoice created over the API, paid in USDC by anvil account 5, seen by the `invoices-detect`
//! timer, paid and credited once, swept to the treasury; its public pay page, in a headless Chromium, shows the
//! address and QR code and turns to paid by itself.

use std::time::{Duration, Instant};

use meshpay_testkit::api::Method;
use meshpay_testkit::browser::Browser;
use meshpay_testkit::stack::{HandlerSettings, Stack};

use crate::invoices_support::{
    Receiver, Treasury, USDC, assert_invoice_books, block_every_second, create_invoice, pay_usdc,
    wait_for_status, with_sweeps, with_webhooks,
};

async fn start() -> Stack {
    let settings = with_sweeps(with_webhooks(HandlerSettings::default()))
        .env("INVOICES_DETECT_SCHEDULE", "*/1 * * * * *")
        .disabled(&["broadcast", "confirm", "settle", "reconcile"]);
    Stack::builder().devhost(settings).start().await
}

#[tokio::test]
async fn an_invoice_paid_in_usdc_turns_paid_credits_the_merchant_once_and_its_pay_page_follows() {
    let stack = start().await;
    let merchant = stack.merchant().await;
    let key = &merchant.key;
    let receiver = Receiver::start(&stack, key).await;
    let invoice = create_invoice(&stack, key, "25.00").await;
    let id = invoice["id"].as_str().unwrap();
    let address = invoice["deposit_address"].as_str().unwrap();

    // The public status shows only what the page shows.
    let public = stack
        .api()
        .send(Method::GET, &format!("pay/{id}/status"), None, None, None)
        .await;
    assert_eq!(public.status, 200);
    let mut fields: Vec<&str> = public
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "amount",
            "amount_received",
            "asset",
            "chain",
            "deposit_address",
            "expires_at",
            "id",
            "payment_uri",
            "status"
        ]
    );

    let browser = Browser::start().await;
    browser.goto(invoice["pay_url"].as_str().unwrap()).await;
    assert_eq!(browser.text("#address").await.as_deref(), Some(address));
    assert_eq!(browser.text("#amount").await.as_deref(), Some("25.00"));
    assert!(browser.exists("#qr svg").await, "the QR code renders");
    assert_eq!(
        browser.text("#status").await.as_deref(),
        Some("Waiting for payment")
    );

    let treasury = Treasury::measure(&stack).await;
    let miner = block_every_second(&stack);
    pay_usdc(&stack, address, 25 * USDC).await;
    let mined = Instant::now();
    let paid = wait_for_status(&stack, key, id, "paid").await;
    println!(
        "pay-in: payer's transfer mined -> invoice paid in {:?}",
        mined.elapsed()
    );
    browser
        .wait_for_text("#status", "Paid", Duration::from_secs(30))
        .await;
    miner.abort();

    assert_eq!(paid["amount_final"]["base_units"], "25000000");
    let payments = paid["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "final");
    // Credited once, less the merchant's fee, however many detection runs went by.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let balances = stack.api().balances(key).await;
    let usdc = balances
        .iter()
        .find(|(asset, _, _)| asset == "USDC")
        .unwrap();
    let fee = 25 * USDC * u128::from(meshpay_testkit::merchant::FEE_BPS) / 10_000;
    assert_eq!(usdc.1, 25 * USDC - fee);
    assert_invoice_books(&stack, &receiver, &treasury, id, 25 * USDC).await;

    // Paid: too late to cancel.
    let cancel = stack
        .api()
        .send(
            Method::POST,
            &format!("invoices/{id}/cancel"),
            Some(key),
            None,
            None,
        )
        .await;
    assert_eq!(cancel.status, 409);
    assert_eq!(cancel.code(), "invalid_state");
}
