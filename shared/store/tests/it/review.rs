//! The operator's review list and clearing a review flag.

use crate::support::{Ctx, authorize, merchant_with_usdc, quote};

#[tokio::test]
async fn review_list_is_newest_first_bounded_and_skips_terminal_and_cleared_payments() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 100).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let q = quote(s, m, 1).await;
        ids.push(authorize(s, m, &q, &format!("review-{i}")).await.id);
    }
    for (i, id) in ids.iter().enumerate() {
        s.flag_for_review(*id, &format!("reason {i}"))
            .await
            .unwrap();
        // Distinct flag times so the order is the flagging order.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let listed = s.list_review(50).await.unwrap();
    let got: Vec<_> = listed.iter().map(|r| r.payment_id).collect();
    assert_eq!(got, vec![ids[2], ids[1], ids[0]]);
    assert_eq!(listed[0].reason.as_deref(), Some("reason 2"));
    assert_eq!(listed[0].merchant_id, m);
    assert_eq!(listed[0].chain, "anvil");
    assert!(listed[0].flagged_at.is_some());
    assert_eq!(s.list_review(1).await.unwrap().len(), 1);

    // A terminal payment is not listed even though its flag row remains.
    s.cancel_payment(m, ids[0]).await.unwrap();
    let cleared = s.clear_review(ids[1]).await.unwrap().unwrap();
    assert_eq!(cleared.reason.as_deref(), Some("reason 1"));
    let got: Vec<_> = s
        .list_review(50)
        .await
        .unwrap()
        .iter()
        .map(|r| r.payment_id)
        .collect();
    assert_eq!(got, vec![ids[2]]);
    ctx.finish().await;
}

#[tokio::test]
async fn clearing_a_payment_that_is_not_flagged_reports_none_and_is_repeatable() {
    let ctx = Ctx::new().await;
    let s = &ctx.store;
    let m = merchant_with_usdc(s, 0, 100).await;
    let q = quote(s, m, 1).await;
    let p = authorize(s, m, &q, "not-flagged").await;
    assert_eq!(s.clear_review(p.id).await.unwrap(), None);

    s.flag_for_review(p.id, "why").await.unwrap();
    assert!(s.clear_review(p.id).await.unwrap().is_some());
    assert_eq!(s.clear_review(p.id).await.unwrap(), None);
    let state = s.confirmation(p.id).await.unwrap().unwrap();
    assert_eq!(state.last_outcome, None);
    // Reconcile may nudge it again: it can be re-flagged as usual.
    s.flag_for_review(p.id, "again").await.unwrap();
    assert_eq!(s.list_review(10).await.unwrap().len(), 1);
    ctx.finish().await;
}
