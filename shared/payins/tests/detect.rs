//! Detection on a real anvil (blocks mined by the test, finality 2 blocks) and a fresh
//! PostgreSQL database: each payment shape ends in the right status, credited exactly once at
//! finality (less the 1% fee), a reorg reverses a credit, and the ledger stays balanced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use meshpay_domain::{Address, Amount, AssetId, InvoiceStatus};
use meshpay_payins::detect::{DetectConfig, Detector};
use meshpay_store::Invoice;
use meshpay_testkit::anvil::DEV_USDC_ADDRESS;
use serde_json::json;
use time::OffsetDateTime;

mod support;

use support::{PAYER, PayinStack, USDC, usdc_asset};

struct Env {
    base: PayinStack,
    detector: Detector,
}

impl std::ops::Deref for Env {
    type Target = PayinStack;
    fn deref(&self) -> &PayinStack {
        &self.base
    }
}

async fn env() -> Env {
    let base = PayinStack::start(2, 1_000 * USDC).await;
    base.anvil.rpc("evm_setAutomine", json!([false])).await;
    let config = DetectConfig {
        dust_below: [(usdc_asset(), Amount::from_u128(10_000))]
            .into_iter()
            .collect(),
        ..DetectConfig::default()
    };
    let detector = Detector::new(base.store.clone(), base.chains.clone(), config);
    Env { base, detector }
}

impl Env {
    async fn invoice(&self, amount: u128, expires_in: Duration) -> Invoice {
        self.invoice_in(usdc_asset(), amount, expires_in).await
    }

    /// Sends `amount` of `token` from the payer to `to` and mines it.
    async fn pay(&self, token: &str, to: Address, amount: u128) {
        let data = format!("0xa9059cbb{}{amount:064x}", hex_word(to));
        self.anvil
            .rpc(
                "eth_sendTransaction",
                json!([{"from": self.anvil.address(PAYER), "to": token, "data": data}]),
            )
            .await;
        self.anvil.mine(1).await;
    }

    async fn detect(&self) {
        for report in self.detector.run(OffsetDateTime::now_utc()).await {
            let report = report.unwrap();
            assert_eq!(report.failed, 0, "{report:?}");
        }
    }

    async fn status(&self, invoice: &Invoice) -> Invoice {
        self.invoice_now(invoice).await
    }

    async fn available(&self) -> Amount {
        self.store
            .balances(self.merchant)
            .await
            .unwrap()
            .into_iter()
            .find(|b| b.asset == usdc_asset())
            .map(|b| b.available)
            .unwrap_or_default()
    }

    /// A 25 USDC invoice paid in full, final and credited (24.75 USDC after the fee), and an
    /// anvil snapshot taken before the payment (reverting to it reorgs the payment out).
    async fn credited_after_snapshot(&self) -> (Invoice, serde_json::Value) {
        let invoice = self.invoice(25 * USDC, Duration::from_secs(3600)).await;
        let snapshot = self.anvil.rpc("evm_snapshot", json!([])).await;
        self.pay(DEV_USDC_ADDRESS, invoice.deposit_address, 25 * USDC)
            .await;
        self.finalize().await;
        assert_eq!(self.status(&invoice).await.status, InvoiceStatus::Paid);
        assert_eq!(self.available().await, Amount::from_u128(24_750_000));
        (invoice, snapshot)
    }

    async fn finalize(&self) {
        self.anvil.mine(2).await;
        self.detect().await;
    }
}

fn hex_word(address: Address) -> String {
    format!("{:0>64}", alloy_hex(address))
}

fn alloy_hex(address: Address) -> String {
    address
        .to_string()
        .trim_start_matches("0x")
        .to_ascii_lowercase()
}

#[tokio::test]
async fn an_exact_payment_is_pending_then_paid_and_credited_once_less_the_fee() {
    let env = env().await;
    let invoice = env.invoice(25 * USDC, Duration::from_secs(3600)).await;
    env.pay(DEV_USDC_ADDRESS, invoice.deposit_address, 25 * USDC)
        .await;
    env.detect().await;
    let seen = env.status(&invoice).await;
    assert_eq!(seen.status, InvoiceStatus::Pending);
    assert_eq!(seen.amount_received, Amount::from_u128(25 * USDC));
    assert_eq!(
        env.available().await,
        Amount::ZERO,
        "nothing credited before finality"
    );

    env.finalize().await;
    let paid = env.status(&invoice).await;
    assert_eq!(paid.status, InvoiceStatus::Paid);
    // 1% service fee.
    assert_eq!(env.available().await, Amount::from_u128(24_750_000));
    // A repeat run, as after a crash or a duplicate trigger, changes nothing.
    env.detect().await;
    env.detect().await;
    assert_eq!(env.available().await, Amount::from_u128(24_750_000));
    let payments = env.store.invoice_payments(invoice.id).await.unwrap();
    assert_eq!(payments.len(), 1);
    // One merchant webhook per status reached, in order.
    let events: Vec<(String,)> = sqlx::query_as(
        "SELECT payload->>'type' FROM outbox WHERE topic = 'webhook' AND payload->>'invoice_id' = $1 ORDER BY id",
    )
    .bind(invoice.id.to_string())
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    let events: Vec<&str> = events.iter().map(|(t,)| t.as_str()).collect();
    assert_eq!(events, ["invoice.pending", "invoice.paid"]);
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn under_over_partial_late_dust_and_wrong_token_payments_end_where_they_should() {
    let env = env().await;
    let hour = Duration::from_secs(3600);
    let under = env.invoice(10 * USDC, hour).await;
    let over = env.invoice(10 * USDC, hour).await;
    let partial = env.invoice(10 * USDC, hour).await;
    let late = env.invoice(10 * USDC, Duration::from_secs(1)).await;
    let dust = env.invoice(10 * USDC, hour).await;
    let wrong = env.invoice(10 * USDC, hour).await;
    // Another ERC-20 (a second DevUSDC the configuration does not know).
    env.anvil.rpc("evm_setAutomine", json!([true])).await;
    let other = env.anvil.deploy_dev_usdc().await;
    env.anvil
        .mint_usdc(&other, env.anvil.address(PAYER), 100 * USDC)
        .await;
    env.anvil.rpc("evm_setAutomine", json!([false])).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.pay(DEV_USDC_ADDRESS, under.deposit_address, 4 * USDC)
        .await;
    env.pay(DEV_USDC_ADDRESS, over.deposit_address, 12 * USDC)
        .await;
    env.pay(DEV_USDC_ADDRESS, partial.deposit_address, 6 * USDC)
        .await;
    env.pay(DEV_USDC_ADDRESS, late.deposit_address, 10 * USDC)
        .await;
    env.pay(DEV_USDC_ADDRESS, dust.deposit_address, 5_000).await;
    env.pay(&other, wrong.deposit_address, 10 * USDC).await;
    env.finalize().await;
    assert_eq!(env.status(&partial).await.status, InvoiceStatus::Underpaid);
    env.pay(DEV_USDC_ADDRESS, partial.deposit_address, 4 * USDC)
        .await;
    env.finalize().await;

    assert_eq!(env.status(&under).await.status, InvoiceStatus::Underpaid);
    assert_eq!(env.status(&over).await.status, InvoiceStatus::Overpaid);
    assert_eq!(env.status(&partial).await.status, InvoiceStatus::Paid);
    let late = env.status(&late).await;
    assert_eq!(late.status, InvoiceStatus::PaidLate);
    assert!(late.late);
    assert_eq!(env.status(&dust).await.status, InvoiceStatus::Open);
    let wrong_payments = env.store.invoice_payments(wrong.id).await.unwrap();
    assert_eq!(wrong_payments.len(), 1);
    assert_eq!(wrong_payments[0].asset, None, "unrecognized token");
    assert_eq!(env.status(&wrong).await.status, InvoiceStatus::Open);
    let dust_payments = env.store.invoice_payments(dust.id).await.unwrap();
    assert!(dust_payments[0].dust);

    // Credited: 4 + 12 + 10 + 10 (late) = 36 USDC, less 1%; never the dust or the wrong token.
    assert_eq!(
        env.available().await,
        Amount::from_u128(36 * USDC * 99 / 100)
    );
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn a_reorg_removing_a_credited_payment_moves_the_invoice_back_and_reverses_the_credit() {
    let env = env().await;
    let (invoice, snapshot) = env.credited_after_snapshot().await;

    // The payment's block and those after it leave the chain; a longer branch replaces them.
    env.anvil.rpc("evm_revert", json!([snapshot])).await;
    env.anvil.mine(6).await;
    env.detect().await;
    let back = env.status(&invoice).await;
    assert_eq!(back.status, InvoiceStatus::Open);
    assert_eq!(back.amount_received, Amount::ZERO);
    assert_eq!(env.available().await, Amount::ZERO);
    env.detect().await;
    assert_eq!(env.available().await, Amount::ZERO, "reversed once");

    // Paid again on the new branch: credited again, once.
    env.pay(DEV_USDC_ADDRESS, invoice.deposit_address, 25 * USDC)
        .await;
    env.finalize().await;
    assert_eq!(env.status(&invoice).await.status, InvoiceStatus::Paid);
    assert_eq!(env.available().await, Amount::from_u128(24_750_000));
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn a_native_payment_is_found_by_balance_at_finality_and_credited_once() {
    let env = env().await;
    let eth = AssetId::new("anvil", "ETH").unwrap();
    let half_eth: u128 = 500_000_000_000_000_000;
    let invoice = env
        .invoice_in(eth.clone(), half_eth, Duration::from_secs(3600))
        .await;
    env.anvil
        .rpc(
            "eth_sendTransaction",
            json!([{"from": env.anvil.address(PAYER), "to": invoice.deposit_address.to_string(), "value": format!("{half_eth:#x}")}]),
        )
        .await;
    env.anvil.mine(1).await;
    env.detect().await;
    assert_eq!(
        env.status(&invoice).await.status,
        InvoiceStatus::Open,
        "not final yet"
    );
    env.finalize().await;
    env.detect().await;
    assert_eq!(env.status(&invoice).await.status, InvoiceStatus::Paid);
    let balances = env.store.balances(env.merchant).await.unwrap();
    let credited = balances.iter().find(|b| b.asset == eth).unwrap().available;
    assert_eq!(credited, Amount::from_u128(half_eth / 100 * 99));
    assert_eq!(
        env.store.invoice_payments(invoice.id).await.unwrap().len(),
        1
    );
    env.store.check_ledger_invariants().await.unwrap();
}

#[tokio::test]
async fn a_reversal_the_merchant_cannot_cover_is_parked_once_then_posted_by_an_operator_retry() {
    let env = env().await;
    let (invoice, snapshot) = env.credited_after_snapshot().await;

    // The merchant spends most of the credit: a payout holds 20 USDC (+ its fee and gas).
    let eth = AssetId::new("anvil", "ETH").unwrap();
    env.store
        .fund(env.merchant, &eth, Amount::from_u128(10u128.pow(18)), "gas")
        .await
        .unwrap();
    meshpay_testkit::payment::PaymentSetup::new(usdc_asset(), 20 * USDC)
        .authorize(&env.store, env.merchant)
        .await;
    let left = env.available().await;
    assert!(left < Amount::from_u128(24_750_000), "{left}");

    env.anvil.rpc("evm_revert", json!([snapshot])).await;
    env.anvil.mine(6).await;
    env.detect().await;
    // The invoice moves back all the same; the reversal is parked, not failing every run.
    let back = env.status(&invoice).await;
    assert_eq!(back.status, InvoiceStatus::Open);
    assert_eq!(back.amount_final, Amount::ZERO);
    let reviews = env.store.invoice_reversal_reviews(true).await.unwrap();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    let review = &reviews[0];
    assert_eq!(review.invoice, invoice.id);
    assert_eq!(review.required, Amount::from_u128(24_750_000));
    assert_eq!(review.available, left);
    assert!(
        review.reason.contains("no longer covers"),
        "{}",
        review.reason
    );
    for _ in 0..2 {
        env.detect().await;
    }
    assert_eq!(
        env.store
            .invoice_reversal_reviews(false)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(env.available().await, left, "nothing reversed while parked");
    env.store.check_ledger_invariants().await.unwrap();

    // Still short: refused with the figures, nothing posted.
    assert_eq!(
        env.store.retry_invoice_reversal(review.id).await.unwrap(),
        meshpay_store::RetryOutcome::StillShort {
            available: left,
            required: Amount::from_u128(24_750_000)
        }
    );
    // The operator tops the merchant up (say, the merchant paid it back): the retry posts it.
    env.store
        .fund(
            env.merchant,
            &usdc_asset(),
            Amount::from_u128(25 * USDC),
            "repaid",
        )
        .await
        .unwrap();
    assert_eq!(
        env.store.retry_invoice_reversal(review.id).await.unwrap(),
        meshpay_store::RetryOutcome::Reversed
    );
    let expected = left
        .checked_add(Amount::from_u128(25 * USDC))
        .and_then(|a| a.checked_sub(Amount::from_u128(24_750_000)))
        .unwrap();
    assert_eq!(env.available().await, expected);
    assert!(
        env.store
            .invoice_reversal_reviews(true)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(env.store.retry_invoice_reversal(review.id).await.is_err());
    env.detect().await;
    assert_eq!(env.available().await, expected, "reversed once");
    env.store.check_ledger_invariants().await.unwrap();
}
