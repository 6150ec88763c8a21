//! Reversals the merchant cannot cover: parked once (the invoice still moves back), left alone
//! by later refreshes, closed by themselves when the payment is final again, and due again if
//! a later reorg removes it once more.

use meshpay_domain::{Address, B256, InvoiceStatus};
use meshpay_store::PaymentSeen;
use meshpay_store::invoices::detection::ObservedTransfer;
use meshpay_testkit::assets::usdc;
use meshpay_testkit::payment::PaymentSetup;
use time::OffsetDateTime;

use crate::support::{Ctx, merchant_with_usdc, usdc_invoice, usdc_units};

#[tokio::test]
async fn a_parked_reversal_is_left_alone_closes_when_the_payment_returns_and_parks_again() {
    let ctx = Ctx::new().await;
    let store = &ctx.store;
    let merchant = merchant_with_usdc(store, 0, 0).await;
    let id = usdc_invoice(store, merchant, Address::repeat_byte(0xde)).await;
    let transfer = ObservedTransfer {
        invoice: id,
        tx_hash: B256::repeat_byte(1),
        log_index: 0,
        token: Address::repeat_byte(0x70),
        asset: Some(usdc()),
        amount: usdc_units(25),
        block_number: 10,
        block_hash: B256::repeat_byte(0xb1),
        dust: false,
    };
    let mark = |status| store.mark_invoice_transfer(id, transfer.tx_hash, 0, status);
    let now = OffsetDateTime::now_utc();
    let available = || async {
        store
            .balances(merchant)
            .await
            .unwrap()
            .into_iter()
            .find(|b| b.asset == usdc())
            .map(|b| b.available)
            .unwrap_or_default()
    };

    store.record_invoice_transfer(&transfer).await.unwrap();
    mark(PaymentSeen::Final).await.unwrap();
    let done = store.refresh_invoice(id, now).await.unwrap();
    assert_eq!(
        (done.invoice.status, done.credits_posted),
        (InvoiceStatus::Paid, 1)
    );
    // The merchant spends 20 of the 25 credited.
    PaymentSetup::new(usdc(), 20_000_000)
        .authorize(store, merchant)
        .await;
    assert_eq!(available().await, usdc_units(5));

    mark(PaymentSeen::Removed).await.unwrap();
    let done = store.refresh_invoice(id, now).await.unwrap();
    assert_eq!(
        done.invoice.status,
        InvoiceStatus::Open,
        "moves back all the same"
    );
    assert_eq!((done.reversals_posted, done.reversals_parked), (0, 1));
    let done = store.refresh_invoice(id, now).await.unwrap();
    assert_eq!(done.reversals_parked, 0, "left alone while parked");
    assert_eq!(store.invoice_reversal_reviews(true).await.unwrap().len(), 1);

    // The transaction is back (same log): final again, nothing to reverse, the review closes.
    store.record_invoice_transfer(&transfer).await.unwrap();
    mark(PaymentSeen::Final).await.unwrap();
    let done = store.refresh_invoice(id, now).await.unwrap();
    assert_eq!(
        (done.invoice.status, done.credits_posted),
        (InvoiceStatus::Paid, 0)
    );
    assert!(
        store
            .invoice_reversal_reviews(true)
            .await
            .unwrap()
            .is_empty()
    );
    let all = store.invoice_reversal_reviews(false).await.unwrap();
    assert_eq!(all[0].resolution.as_deref(), Some("final_again"));

    // Removed once more: the reversal is due again, and parks again.
    mark(PaymentSeen::Removed).await.unwrap();
    let done = store.refresh_invoice(id, now).await.unwrap();
    assert_eq!(done.reversals_parked, 1);
    assert_eq!(store.invoice_reversal_reviews(true).await.unwrap().len(), 1);
    assert_eq!(
        available().await,
        usdc_units(5),
        "nothing taken while parked"
    );
    assert!(
        store
            .close_invoice_reversal_review(all[0].id, "again")
            .await
            .is_ok_and(|closed| !closed),
        "a resolved review is not closed twice"
    );
    ctx.finish().await;
}
