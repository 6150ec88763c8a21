//! A review flag stops the confirm chain and stays until an operator clears it.

use meshpay_confirm::{CheckOutcome, ConfirmMessage, ConfirmOutcome};
use meshpay_domain::PaymentStatus;

use crate::support::ConfirmStack;

#[tokio::test]
async fn a_review_flag_stops_the_polling_chain_and_survives_later_confirm_messages() {
    let stack = ConfirmStack::start(1).await;
    let pipeline = stack.pipeline();
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let next = match pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap()
    {
        ConfirmOutcome::Waiting { next, .. } => next,
        other => panic!("expected Waiting, got {other:?}"),
    };
    // The broadcast step (or settle) parks the payment while its chain is polling.
    stack
        .store
        .flag_for_review(payment.id, "an operator must look")
        .await
        .unwrap();
    stack.mine(3).await;
    // Neither the chain's next message nor a fresh hint moves the payment or clears the flag.
    for message in [next, ConfirmMessage::new(payment.id)] {
        let outcome = pipeline.confirm(message).await.unwrap();
        assert!(
            matches!(outcome, ConfirmOutcome::Ignored { .. }),
            "{outcome:?}"
        );
        let state = stack.store.confirmation(payment.id).await.unwrap().unwrap();
        assert_eq!(state.last_outcome, Some(CheckOutcome::NeedsReview));
        assert_eq!(state.last_detail.as_deref(), Some("an operator must look"));
        assert_eq!(state.poller, None);
        assert_eq!(stack.status(payment.id).await, PaymentStatus::Broadcast);
    }
    // The operator clears the flag: the next message confirms it.
    assert!(
        stack
            .store
            .clear_review(payment.id)
            .await
            .unwrap()
            .is_some()
    );
    let outcome = pipeline
        .confirm(ConfirmMessage::new(payment.id))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ConfirmOutcome::Confirmed { .. }),
        "{outcome:?}"
    );
    stack.finish().await;
}
