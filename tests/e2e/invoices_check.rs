//! The one check every pay-in end-to-end case ends with: the ledger balanced, the invoice's
//! final recognized transfers each credited exactly once (amount − fee, none reversed unless
//! removed), the merchant's share being the credit less the fee (posted by the credit itself,
//! checked by the ledger invariants), and its webhook events queued once each, in version order. A sweep check
//! ("deposit address empty, treasury up by the sum") belongs here too once sweeps run.

use meshpay_testkit::stack::Stack;

/// `credited`: the sum of the invoice's transfers that must stand credited (base units).
pub async fn assert_invoice_books(stack: &Stack, invoice_id: &str, credited: u128) {
    stack.assert_ledger_invariants().await;
    let pool = stack.store.pool();
    let reference = format!("{invoice_id}:%");
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT kind, reference, (details->>'amount') FROM ledger_transactions
         WHERE kind IN ('invoice_credit', 'invoice_reversal') AND reference LIKE $1",
    )
    .bind(&reference)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut standing: i128 = 0;
    for (kind, _, amount) in &rows {
        let amount: i128 = amount.parse().unwrap();
        standing += if kind == "invoice_credit" { amount } else { -amount };
    }
    assert_eq!(standing, credited as i128, "credited once: {rows:?}");
    // Each reference credited at most once and reversed at most once (a reversal only of a
    // credit): what "credited exactly once per final transfer" means in the ledger.
    for (kind, reference, _) in &rows {
        let same = rows.iter().filter(|(k, r, _)| k == kind && r == reference).count();
        assert_eq!(same, 1, "{kind} {reference} posted {same} times");
        if kind == "invoice_reversal" {
            assert!(rows.iter().any(|(k, r, _)| k == "invoice_credit" && r == reference));
        }
    }
    let events: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT payload->>'type', (payload->>'version')::bigint FROM outbox
         WHERE payload->>'invoice_id' = $1 ORDER BY id",
    )
    .bind(invoice_id)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        events.windows(2).all(|w| w[0].1 < w[1].1),
        "webhooks once each, in order: {events:?}"
    );
}
