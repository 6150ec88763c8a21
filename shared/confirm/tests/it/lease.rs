//! The confirm polling lease and the webhook bookkeeping, at the store level.

use std::time::Duration;

use meshpay_confirm::{ConfirmMessage, ConfirmOutcome, Ignored};
use meshpay_domain::{B256, PaymentStatus};
use meshpay_store::confirmations::{CheckOutcome, CheckRecord, QueueDelivery};

use crate::support::ConfirmStack;

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn one_polling_chain_per_payment_and_duplicates_are_refused() {
    let stack = ConfirmStack::start(1).await;
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let store = &stack.store;

    let first = store
        .claim_confirm_poller(payment.id, None, None, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(first.new_chain);
    assert_eq!(first.next_seq, 1);
    // A webhook hint or a reconcile nudge while the chain is active starts nothing.
    assert_eq!(
        store
            .claim_confirm_poller(payment.id, None, None, LEASE)
            .await
            .unwrap(),
        None
    );
    // The chain's own next message continues it...
    let second = store
        .claim_confirm_poller(payment.id, Some((first.poller, 1)), None, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (second.poller, second.next_seq, second.new_chain),
        (first.poller, 2, false)
    );
    assert_eq!(second.chain_started_at, first.chain_started_at);
    // ...but a second delivery of that same message does not.
    assert_eq!(
        store
            .claim_confirm_poller(payment.id, Some((first.poller, 1)), None, LEASE)
            .await
            .unwrap(),
        None
    );
    stack.finish().await;
}

fn delivery(message_id: &str, dequeue_count: u64) -> QueueDelivery {
    QueueDelivery {
        message_id: message_id.to_owned(),
        dequeue_count,
    }
}

#[tokio::test]
async fn a_redelivery_of_the_claiming_message_resumes_its_chain_and_copies_stay_refused() {
    let stack = ConfirmStack::start(1).await;
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let store = &stack.store;
    let claim = |chain, delivery: Option<QueueDelivery>| async move {
        store
            .claim_confirm_poller(payment.id, chain, delivery.as_ref(), LEASE)
            .await
            .unwrap()
    };

    // The broadcast step's request (queue message A) starts a chain; the chain's next message
    // (B) continues it, and B's invocation is killed after its claim.
    let first = claim(None, Some(delivery("A", 1))).await.unwrap();
    assert!(first.new_chain && !first.resumed);
    let chain = Some((first.poller, 1));
    let second = claim(chain, Some(delivery("B", 1))).await.unwrap();
    assert_eq!((second.next_seq, second.resumed), (2, false));
    // The host delivers B again: it resumes B's claim (same token, same sequence).
    let resumed = claim(chain, Some(delivery("B", 2))).await.unwrap();
    assert_eq!(
        (
            resumed.poller,
            resumed.next_seq,
            resumed.new_chain,
            resumed.resumed
        ),
        (first.poller, 2, false, true)
    );
    assert_eq!(resumed.chain_started_at, first.chain_started_at);
    // A copy of B sent as another message, the same delivery of B again, a late redelivery
    // of A (no longer the chain's last claim), and a delivery without queue metadata (cannot be
    // told from a copy) are all refused.
    assert_eq!(claim(chain, Some(delivery("B-copy", 1))).await, None);
    assert_eq!(claim(chain, Some(delivery("B", 2))).await, None);
    assert_eq!(claim(None, Some(delivery("A", 2))).await, None);
    assert_eq!(claim(chain, None).await, None);

    // Through the confirm step: B's next redelivery polls the chain and hands on its next
    // message; a copy of B is still "nothing to do".
    let pipeline = stack.pipeline();
    let message = ConfirmMessage::chained(payment.id, first.poller, 1);
    let outcome = pipeline
        .confirm_delivery(message, Some(delivery("B", 3)))
        .await
        .unwrap();
    let ConfirmOutcome::Waiting { next, outcome, .. } = outcome else {
        panic!("expected the resumed chain to poll, got {outcome:?}");
    };
    assert_eq!(
        (next, outcome),
        (
            ConfirmMessage::chained(payment.id, first.poller, 2),
            CheckOutcome::NotMined
        )
    );
    assert_eq!(
        pipeline
            .confirm_delivery(message, Some(delivery("B-copy", 2)))
            .await
            .unwrap(),
        ConfirmOutcome::Ignored {
            payment_id: payment.id,
            reason: Ignored::ChainActive
        }
    );
    stack.finish().await;
}

#[tokio::test]
async fn an_expired_or_released_lease_lets_a_new_chain_start() {
    let stack = ConfirmStack::start(1).await;
    let (payment, _) = stack.broadcast("ETH", 1_000).await;
    let store = &stack.store;

    let dead = store
        .claim_confirm_poller(payment.id, None, None, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Its process died: the lease ran out, so anyone may start over (with a new token).
    let taken = store
        .claim_confirm_poller(payment.id, None, None, LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(taken.new_chain);
    assert_ne!(taken.poller, dead.poller);
    // The dead chain's late message cannot continue.
    assert_eq!(
        store
            .claim_confirm_poller(payment.id, Some((dead.poller, 1)), None, LEASE)
            .await
            .unwrap(),
        None
    );
    // Ending the chain (a decision, or giving up) frees the payment for the next request.
    let record = CheckRecord::new(CheckOutcome::Stalled);
    store
        .record_confirm_check(payment.id, taken.poller, &record, None)
        .await
        .unwrap();
    let state = store.confirmation(payment.id).await.unwrap().unwrap();
    assert_eq!(
        (state.poller, state.last_outcome),
        (None, Some(CheckOutcome::Stalled))
    );
    assert!(
        store
            .claim_confirm_poller(payment.id, None, None, LEASE)
            .await
            .unwrap()
            .is_some()
    );
    stack.finish().await;
}

#[tokio::test]
async fn webhook_ids_are_remembered_and_hashes_map_to_payments() {
    let stack = ConfirmStack::start(1).await;
    let (payment, hash) = stack.broadcast("ETH", 1_000).await;
    let store = &stack.store;

    assert!(
        store
            .record_chain_webhook("alchemy", "whevt_1", 2, 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_chain_webhook("alchemy", "whevt_1", 2, 1)
            .await
            .unwrap()
    );
    // Another source may reuse the id.
    assert!(
        store
            .record_chain_webhook("standard", "whevt_1", 0, 0)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .prune_chain_webhooks(Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .prune_chain_webhooks(Duration::ZERO, 100)
            .await
            .unwrap(),
        2
    );

    let found = store
        .payments_by_tx_hashes(&[hash, B256::repeat_byte(7)])
        .await
        .unwrap();
    assert_eq!(found, vec![(payment.id, PaymentStatus::Broadcast, hash)]);
    stack.finish().await;
}
