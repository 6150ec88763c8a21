//! Detection requests from address-activity hints, coalesced per chain: one queued run while
//! one is pending, a request covered by a completed run that started after it, and one
//! follow-up for hints that arrive during a run.

use crate::support::Ctx;

#[tokio::test]
async fn hints_enqueue_one_run_while_pending_and_one_follow_up_for_hints_during_a_run() {
    let ctx = Ctx::new().await;
    let store = &ctx.store;

    let first = store.request_payin_detection("anvil").await.unwrap();
    let first = first.expect("the first hint enqueues a run");
    assert_eq!(store.request_payin_detection("anvil").await.unwrap(), None);
    assert!(!store.payin_detection_covered("anvil", first).await.unwrap());
    // Another chain is its own request.
    assert!(
        store
            .request_payin_detection("base")
            .await
            .unwrap()
            .is_some()
    );

    // A run that started after both hints completes: covered, and no follow-up.
    let started = store.db_now().await.unwrap();
    let follow = store
        .complete_payin_detection("anvil", started, true)
        .await
        .unwrap();
    assert_eq!(follow, None);
    assert!(store.payin_detection_covered("anvil", first).await.unwrap());

    // Nothing pending now: the next hint enqueues again.
    let second = store.request_payin_detection("anvil").await.unwrap();
    let second = second.expect("a new request once the last is covered");
    // A run starts, a hint arrives while it goes (coalesced), the run completes: one follow-up.
    let started = store.db_now().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(store.request_payin_detection("anvil").await.unwrap(), None);
    let follow = store
        .complete_payin_detection("anvil", started, true)
        .await
        .unwrap()
        .expect("a hint during the run asks for one more");
    assert!(follow > second);
    assert!(
        !store
            .payin_detection_covered("anvil", follow)
            .await
            .unwrap()
    );
    assert_eq!(store.request_payin_detection("anvil").await.unwrap(), None);

    // A timer run (no queue output) completing later covers it.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let started = store.db_now().await.unwrap();
    let none = store
        .complete_payin_detection("anvil", started, false)
        .await
        .unwrap();
    assert_eq!(none, None);
    assert!(
        store
            .payin_detection_covered("anvil", follow)
            .await
            .unwrap()
    );
    // A completion on a chain no hint ever named records nothing.
    assert_eq!(
        store
            .complete_payin_detection("other", started, true)
            .await
            .unwrap(),
        None
    );
    ctx.finish().await;
}
